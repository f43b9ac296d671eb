"""Video quality against ground truth: per-frame PSNR/SSIM, flicker in static regions, and the warping error.

All frames are (H, W, 3) float sRGB in [0, 1]; flows follow :mod:`darkc.video.flow` (``F_a->b``, x then y, px).

* **Flicker** of frame pair (t-1, t): mean over the static pixels and channels of
  ``|(O_t - O_{t-1}) - (T_t - T_{t-1})|``: the change between consecutive outputs that the truth does not
  have. Static pixels are those whose truth changes by less than :data:`STATIC_THRESHOLD` in every channel.
* **Warping error** E_warp (Lai et al. 2018, "Learning Blind Video Temporal Consistency", eq. 9 and their
  evaluation code): ``O_t`` is warped back to frame t-1 with ``F_{t-1->t}``; pixels of t-1 that are occluded
  (forward-backward check of ``F_{t-1->t}`` against ``F_{t->t-1}``, :func:`darkc.video.flow.occlusion_mask`)
  or leave the frame are masked out; E = sum over non-occluded pixels of the squared RGB difference (the L2
  norm over the three channels, as in the paper, i.e. 3x the per-channel MSE) divided by their count.
* **Ghosting**: PSNR pooled over the *revealed* pixels of each frame: those of frame t with no counterpart in
  frame t-1 (occluded there by the forward-backward check of ``F_{t->t-1}`` against ``F_{t-1->t}``: background a
  moving object uncovers, content entering the frame) and every pixel of the first frame after a scene cut. A
  recursive filter that carries history into them shows what is no longer there; per-frame processing sets the
  reference.
* **PSNR on changing pixels**: PSNR pooled over the pixels whose truth changes by more than
  :data:`CHANGE_THRESHOLD` in some channel from the previous frame (moving edges and texture, and what a moving
  object uncovers), where a recursive filter that keeps too much history leaves trails.
"""
from __future__ import annotations

import numpy as np

from ..metrics import psnr, ssim
from .flow import occlusion_mask, warp

#: truth change (sRGB, every channel) below which a pixel counts as static for flicker: about 1/255
STATIC_THRESHOLD = 1.0 / 255.0
#: truth change above which a pixel counts as changing, for the ghosting PSNR
CHANGE_THRESHOLD = 0.05


def _check(*imgs: np.ndarray) -> None:
    shape = imgs[0].shape
    for im in imgs:
        if im.shape != shape or im.ndim != 3 or im.shape[2] != 3:
            raise ValueError(f"frames must all be (H, W, 3), got {[i.shape for i in imgs]}")


def static_mask(truth_prev: np.ndarray, truth: np.ndarray, threshold: float = STATIC_THRESHOLD) -> np.ndarray:
    """(H, W) bool: pixels whose truth changes by less than ``threshold`` in every channel."""
    _check(truth_prev, truth)
    return (np.abs(truth.astype(np.float32) - truth_prev.astype(np.float32)) < threshold).all(axis=2)


def flicker(out_prev: np.ndarray, out: np.ndarray, truth_prev: np.ndarray, truth: np.ndarray) -> float | None:
    """Mean |change of the output - change of the truth| over static pixels and channels; None if none is static.

    Args:
        out_prev, out: consecutive outputs O_{t-1}, O_t, (H, W, 3) in [0, 1].
        truth_prev, truth: the ground truth T_{t-1}, T_t.

    Returns:
        float in [0, 1] (sRGB units), or None when no pixel is static.
    """
    _check(out_prev, out, truth_prev, truth)
    mask = static_mask(truth_prev, truth)
    if not mask.any():
        return None
    d = (out.astype(np.float32) - out_prev) - (truth.astype(np.float32) - truth_prev)
    return float(np.abs(d[mask]).mean())


def warp_error(out_prev: np.ndarray, out: np.ndarray, fwd: np.ndarray, bwd: np.ndarray) -> tuple[float, float]:
    """Lai et al.'s E_warp between O_{t-1} and O_t.

    Args:
        out_prev, out: O_{t-1}, O_t, (H, W, 3) in [0, 1].
        fwd: F_{t-1->t}, (H, W, 2); bwd: F_{t->t-1}, used only for the occlusion mask.

    Returns:
        ``(error, valid_fraction)``: the mean over non-occluded pixels of the squared RGB distance between O_{t-1}
        and O_t warped to t-1, and the fraction of pixels that were not occluded.
    """
    _check(out_prev, out)
    if fwd.shape != out.shape[:2] + (2,):
        raise ValueError(f"flow {fwd.shape} does not match frames {out.shape}")
    valid = ~occlusion_mask(fwd, bwd)
    n = int(valid.sum())
    if n == 0:
        return float("nan"), 0.0
    diff = warp(out, fwd) - out_prev.astype(np.float32)
    err = (diff.astype(np.float64) ** 2).sum(axis=2)[valid].sum() / n
    return float(err), n / valid.size


def frame_quality(out: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(PSNR dB, SSIM) of one output frame vs its truth (:func:`darkc.metrics.psnr` / :func:`darkc.metrics.ssim`)."""
    _check(out, truth)
    return psnr(truth, out), ssim(truth, out)


class VideoScore:
    """Accumulates the metrics over a clip, frame by frame (streaming: keeps only the previous frame).

    Call :meth:`add` with each output, its truth, and the true flows to the previous frame (``fwd`` = F_{t-1->t},
    ``bwd`` = F_{t->t-1}; None for the first frame or after a gap). :meth:`summary` gives the means.
    """

    def __init__(self):
        self.psnr: list[float] = []
        self.ssim: list[float] = []
        self.flicker: list[float] = []
        self.warp: list[float] = []
        self.truth_warp: list[float] = []
        self._changing = [0.0, 0]        # squared error sum, sample count
        self._revealed = [0.0, 0]
        self._prev: tuple[np.ndarray, np.ndarray] | None = None

    def add(self, out: np.ndarray, truth: np.ndarray, fwd: np.ndarray | None = None,
            bwd: np.ndarray | None = None, cut: bool = False) -> None:
        """``cut``: the frame starts a new shot (all its pixels are revealed; no temporal metrics across it)."""
        if cut:
            self._prev = None
        p, s = frame_quality(out, truth)
        self.psnr.append(p)
        self.ssim.append(s)
        if self._prev is not None and fwd is not None:
            o0, t0 = self._prev
            f = flicker(o0, out, t0, truth)
            if f is not None:
                self.flicker.append(f)
            self.warp.append(warp_error(o0, out, fwd, bwd)[0])
            self.truth_warp.append(warp_error(t0, truth, fwd, bwd)[0])
        revealed = None
        if cut:
            revealed = np.ones(out.shape[:2], bool)
        elif self._prev is not None and fwd is not None:
            revealed = occlusion_mask(bwd, fwd)
        if revealed is not None and revealed.any():
            self._revealed[0] += float(((out[revealed] - truth[revealed]).astype(np.float64) ** 2).sum())
            self._revealed[1] += int(revealed.sum()) * out.shape[2]
        if self._prev is not None:
            changing = (np.abs(truth - self._prev[1]) > CHANGE_THRESHOLD).any(axis=2)
            self._changing[0] += float(((out[changing] - truth[changing]).astype(np.float64) ** 2).sum())
            self._changing[1] += int(changing.sum()) * out.shape[2]
        self._prev = (out, truth)

    def gap(self) -> None:
        """The next frame does not follow the last one (a skipped frame): no temporal metrics across it."""
        self._prev = None

    def summary(self) -> dict:
        mean = lambda v: float(np.mean(v)) if v else None  # noqa: E731
        pooled = lambda sse, count: ((float("inf") if sse == 0 else float(10 * np.log10(count / sse)))  # noqa: E731
                                     if count else None)
        return {"psnr": mean(self.psnr), "ssim": mean(self.ssim), "flicker": mean(self.flicker),
                "warp_error": mean(self.warp), "warp_error_truth": mean(self.truth_warp),
                "psnr_changing": pooled(*self._changing), "psnr_revealed": pooled(*self._revealed),
                "per_frame": {"psnr": self.psnr, "ssim": self.ssim, "flicker": self.flicker,
                              "warp_error": self.warp}}


#: estimated flow (px) below which a pixel counts as still, for the no-reference flicker
STILL_FLOW_PX = 0.5
#: fraction of pixels passing the forward-backward check below which a pair is taken for a scene cut (no metric), a
#: heuristic: across the cut in the real clip of benchmarks/results/video 1 % passed, within its shots 35-90 %
#: (per-frame output) and 83-90 % (filtered); pairs of unrelated photos at 96x144 px: 3-19 %
CUT_VALID_FRACTION = 0.25


class NoRefScore:
    """Temporal metrics without ground truth, on the output itself (streaming).

    The flow between consecutive *outputs* is estimated with OpenCV DIS (``medium`` preset) on their channel
    means, both ways; then

    * ``warp_error``: Lai et al.'s E_warp between O_{t-1} and O_t with that flow (non-occluded pixels);
    * ``flicker``: mean |O_t - O_{t-1}| over the pixels the flow finds still (under :data:`STILL_FLOW_PX` px both
      ways, not occluded) and channels; None for a pair with under 1 % still pixels.

    A pair where under :data:`CUT_VALID_FRACTION` of the pixels pass the forward-backward check is taken for a
    scene cut and gets neither (None in the per-frame lists).

    Both trust the estimated flow: a filter that blurs motion away also makes its flow smoother, so they rank
    filters of similar sharpness, not sharpness itself.
    """

    def __init__(self):
        from .flow import DISFlow

        self.dis = DISFlow("medium")
        self.flicker: list[float | None] = []
        self.warp: list[float | None] = []
        self._prev: tuple[np.ndarray, np.ndarray] | None = None

    def add(self, out: np.ndarray) -> None:
        from .flow import luma_u8

        grey = luma_u8(out)
        if self._prev is not None:
            o0, g0 = self._prev
            fwd, bwd = self.dis(g0, grey), self.dis(grey, g0)
            err, valid = warp_error(o0, out, fwd, bwd)
            if valid < CUT_VALID_FRACTION:
                self.warp.append(None)
                self.flicker.append(None)
                self._prev = (out, grey)
                return
            self.warp.append(err)
            occ = occlusion_mask(fwd, bwd)
            still = ~occ & (np.hypot(fwd[..., 0], fwd[..., 1]) < STILL_FLOW_PX) & \
                (np.hypot(bwd[..., 0], bwd[..., 1]) < STILL_FLOW_PX)
            self.flicker.append(float(np.abs(out[still] - o0[still]).mean()) if still.mean() >= 0.01 else None)
        self._prev = (out, grey)

    def gap(self) -> None:
        self._prev = None

    def summary(self) -> dict:
        flick = [f for f in self.flicker if f is not None]
        warps = [e for e in self.warp if e is not None]
        return {"flicker": float(np.mean(flick)) if flick else None,
                "warp_error": float(np.mean(warps)) if warps else None,
                "pairs_taken_for_cuts": sum(e is None for e in self.warp),
                "per_frame": {"flicker": self.flicker, "warp_error": self.warp}}

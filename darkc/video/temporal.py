"""Temporal filters for enhanced video: each makes frame ``t`` a per-pixel blend of the current frame and its own
previous output (a recursive filter), so the noise that the per-frame network leaves, and that shows as flicker,
is averaged over time.

    filt = make_filter("flow", strength=0.8)
    for x in frames:                # (H, W, C) float32: sRGB network outputs, or packed raw, any C
        y = filt(x)

Kinds:

* ``none``: per-frame, ``y_t = x_t``.
* ``ema``: exponential moving average, ``y_t = (1 - s) x_t + s y_{t-1}``: the baseline; it ghosts on motion.
* ``motion-adaptive``: ``y_t = x_t + k (y_{t-1} - x_t)`` with a per-pixel ``k`` from the local difference
  between ``x_t`` and ``y_{t-1}`` relative to the noise expected at that pixel's intensity (:class:`NoiseModel`):
  ``k = s`` where noise explains the difference, falling linearly to 0 where it is :data:`RAMP` times larger
  (motion), so static regions are smoothed and moving ones are not ghosted.
* ``flow``: the same blend against the previous output warped to frame ``t`` with OpenCV DIS optical flow
  between consecutive input frames. Pixels that fail the forward-backward consistency check (occlusions, flow
  errors) cannot use the warped history; each pixel takes whichever history, warped or still, matches the
  current frame better, so flat regions where flow is unreliable are still smoothed.
* ``fast-flow`` (the default of ``darkc video``): the same idea with every decision at 1/:data:`FAST_SCALE`
  (one-way DIS flow, photometric occlusion test, scene-cut reset) and the history moved by one translation per
  :data:`FAST_TILE` px tile, so that full resolution costs two area downscales, the move and the blend: on 8-bit
  frames (what ``darkc video`` filters) two fused Numba passes (:mod:`darkc.video.kernels`), on float ones OpenCV
  calls (:class:`FastFlowFilter`).

For ``motion-adaptive`` and ``flow``, all decisions (noise level, difference, occlusion) are made at
1/:data:`STAT_SCALE` resolution on local means
(area averaging then a 3x3 box: a ~6 px window), which averages noise and keeps the cost small; the flow is
computed at 1/:data:`FLOW_SCALE`. At full resolution a frame costs one area resize, the upsampling of ``k``
(and of the flow), one warp and the blend.
"""
from __future__ import annotations

import cv2
import numpy as np

from ..errors import DarkcError
from . import kernels
from .flow import FB_ALPHA, FB_BETA, DISFlow, luma_u8, occlusion_mask, warp

KINDS = ("none", "ema", "motion-adaptive", "flow", "fast-flow")
#: default largest history weight per kind (benchmarks/results/video/video_temporal.md measures them)
DEFAULT_STRENGTH = {"none": 0.0, "ema": 0.8, "motion-adaptive": 0.8, "flow": 0.8, "fast-flow": 0.8}
#: resolution divisor of the statistics and decisions (2: a ~6 px window; 4 halves the cost but ghosts more) and
#: of the optical flow (computed coarser, then upsampled)
STAT_SCALE = 2
FLOW_SCALE = 4
#: resolution divisor of every decision of ``fast-flow`` (flow, noise, blend weights)
FAST_SCALE = 4
#: fraction of mismatching low-res pixels above which ``fast-flow`` takes a frame for a scene cut
CUT_FRACTION = 0.5
#: normalised difference above which a low-res pixel counts as mismatching for the scene-cut test
CUT_M = 3.0
#: normalised-difference ramp: k = s for m <= RAMP[0], 0 for m >= RAMP[1]
RAMP = (1.0, 2.5)
#: ``fast-flow``'s ramp: its low-res means (4x4, no box blur) are noisier relative to motion than ``flow``'s, and
#: the warped history differs from the frame by sub-pixel misalignment of texture as well as by noise; pixels past
#: the ramp, dilated by one low-res px, get no history. (1.0, 2.5) reduced flicker by only 49 % on the worst of 6
#: clips (16 frames, 384 px); (1.5, 3.0) missed on the low-noise (x100) hand-held X-Trans clip of
#: benchmarks/results/video (flicker -49 %, E_warp -44 %; with the true flow instead of DIS -56 % / -48 %: not the
#: flow), where that misalignment is large next to the noise; (2.0, 4.0): -57 % / -53 %, revealed pixels +0.07 dB.
#: A tolerance scaled by the local gradient instead (1 px of misalignment) met it too but ghosted a moving square.
#: With tile translations judged by a bicubic low-res warp (:class:`FastFlowFilter`), (2.0, 4.0) left E_warp at
#: -50 % on that clip; (2.5, 5.0): -54 %, revealed pixels -0.32 dB on the worst clip; (3.0, 6.0) ghosted (-0.51 dB)
FAST_RAMP = (2.5, 5.0)
#: side (full-resolution px) of the tiles that ``fast-flow`` moves its history by, one translation each: 96 px at
#: 1920x1080 is 240 tiles, a Python call or two each (64 px: twice the calls); on the 9 clips of
#: benchmarks/results/video (320 px, where 96 px is a third of the frame: a zoom's flow varies across it as it
#: would at 1080p) tiles of 16-96 px met the same targets within 2 points
FAST_TILE = 96
#: ``fast-flow`` moves its full-resolution history by multiples of this (px): neighbouring tiles that then move
#: alike are moved in one call, and a still region (|shift| < half a step) by a copy. Whole px (1.0) missed the
#: flicker / E_warp targets on 2 of the 9 clips of benchmarks/results/video (x100 hand-held, -44 % / -46 %).
SHIFT_STEP = 1 / kernels.SUBPX
#: a tile takes its own median flow instead of the camera's affine motion where they differ by more (low-res px)
TILE_OWN_FLOW = 0.25


def _low(img: np.ndarray) -> np.ndarray:
    """Area-average by STAT_SCALE then a 3x3 box: local means over a ~3*STAT_SCALE px window, (h, w, C)."""
    h, w = img.shape[:2]
    small = cv2.resize(img, (max(1, w // STAT_SCALE), max(1, h // STAT_SCALE)), interpolation=cv2.INTER_AREA)
    small = cv2.blur(small, (3, 3), borderType=cv2.BORDER_REFLECT)
    return small if small.ndim == 3 else small[..., None]


class _Blender:
    """x + k (hist - x) at full resolution (one fused torch.lerp pass), k upsampled from the statistics
    resolution into a reused buffer."""

    def __init__(self):
        self._k: np.ndarray | None = None

    def __call__(self, x: np.ndarray, hist: np.ndarray, k_low: np.ndarray, hist_is_scratch: bool = False) -> np.ndarray:
        import torch

        h, w, c = x.shape
        if self._k is None or self._k.shape != x.shape:
            self._k = np.empty(x.shape, np.float32)
        k_src = cv2.merge([k_low] * c) if c > 1 else k_low
        cv2.resize(k_src, (w, h), dst=self._k if c > 1 else self._k[..., 0], interpolation=cv2.INTER_LINEAR)
        out = hist if hist_is_scratch else np.empty_like(x)
        torch.lerp(torch.from_numpy(x), torch.from_numpy(hist), torch.from_numpy(self._k), out=torch.from_numpy(out))
        return out


def _warp_rel(img: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """:func:`darkc.video.flow.warp` without building the pixel grid: OpenCV's relative map."""
    out = cv2.remap(img, flow, None, cv2.INTER_LINEAR | cv2.WARP_RELATIVE_MAP, borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(img.shape)


def _chan_mean(a: np.ndarray) -> np.ndarray:
    """Mean over the (few) channels of (h, w, C): summing slices is much faster than a reduction over axis 2."""
    out = a[..., 0].copy()
    for c in range(1, a.shape[2]):
        out += a[..., c]
    out *= 1.0 / a.shape[2]
    return out


def _ramp(m: np.ndarray, s: float, ramp: tuple[float, float] | None = None) -> np.ndarray:
    lo, hi = RAMP if ramp is None else ramp
    return (s * np.clip((hi - m) / (hi - lo), 0.0, 1.0)).astype(np.float32)


class NoiseModel:
    """Expected standard deviation of the local-mean temporal difference of two noisy frames, per channel, as a
    function of local intensity (the channel mean), estimated from the frames themselves.

    Each update takes the local-mean difference of two consecutive *inputs* (motion-compensated for ``flow``),
    splits the pixels into :attr:`bins` intensity bins and takes a robust scale per bin and channel: the 25th
    percentile of ``|d|`` divided by 0.3186 (its value for a zero-mean Gaussian), which moving content, in the
    upper tail, barely shifts. Estimates are smoothed over time (``momentum``); bins with too few pixels
    borrow from their neighbours. Works the same for network outputs and for raw (Poisson-Gaussian) input.
    """

    bins = 16
    momentum = 0.7
    min_count = 32
    #: pixels sampled per update (a regular grid): ~250 per bin, and with ``momentum`` the estimate averages
    #: several frames; 10000 cost 7M more guest instructions per 1080p frame of ``fast-flow`` on aarch64 (one
    #: sort of them), the same filtering on the clips of benchmarks/results/video (which have fewer pixels)
    max_samples = 4000

    def __init__(self):
        self.sigma: np.ndarray | None = None        # (bins, C)

    def update(self, diff: np.ndarray, level: np.ndarray, valid: np.ndarray | None = None) -> None:
        """diff: (h, w, C) local-mean difference of two inputs; level: (h, w) local intensity, float in [0, 1] or
        uint8 (0-255)."""
        c = diff.shape[2]
        step = max(1, int(np.sqrt(level.size / self.max_samples)))
        d = np.abs(diff[::step, ::step]).reshape(-1, c)
        lev = level[::step, ::step].reshape(-1)
        lev = lev * (1 / 255.0) if lev.dtype == np.uint8 else lev
        idx = np.clip((lev * self.bins).astype(np.int64), 0, self.bins - 1)
        if valid is not None:
            keep = valid[::step, ::step].reshape(-1)
            d, idx = d[keep], idx[keep]
        est = self._quartiles(d, idx) / 0.3186
        ok = ~np.isnan(est[:, 0])
        if not ok.any():
            if len(d) == 0:
                return
            est[:] = np.percentile(d, 25, axis=0) / 0.3186      # too few pixels to split by intensity
            ok[:] = True
        centres = np.arange(self.bins)
        est = np.stack([np.interp(centres, centres[ok], est[ok, j]) for j in range(c)], axis=1)
        est = np.maximum(est, 1e-4)
        if self.sigma is None or self.sigma.shape != est.shape:
            self.sigma = est
        else:
            self.sigma = self.momentum * self.sigma + (1 - self.momentum) * est
        bin_of_u8 = np.minimum((np.arange(256) * (self.bins / 255.0)).astype(np.int64), self.bins - 1)
        self._table = self.sigma[bin_of_u8].astype(np.float32)         # (256, C): sigma per 8-bit intensity

    def _quartiles(self, d: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """(bins, C) 25th percentile of ``d`` (n, C) within each bin of ``idx`` (n,) (np.percentile's linear
        interpolation), NaN for bins with under :attr:`min_count` samples: one sort for all bins."""
        c = d.shape[1]
        est = np.full((self.bins, c), np.nan)
        counts = np.bincount(idx, minlength=self.bins)
        if not len(d):
            return est
        span = float(d.max()) * 1.0001 + 1e-12
        keys = np.sort(idx[:, None] + d / span, axis=0)          # bins in order, values sorted within each bin
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        full = counts >= self.min_count
        pos = starts[full] + 0.25 * (counts[full] - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, starts[full] + counts[full] - 1)
        frac = (pos - lo)[:, None]
        vals = keys[lo] * (1 - frac) + keys[hi] * frac
        est[full] = (vals - np.nonzero(full)[0][:, None]) * span
        return est

    def __call__(self, level: np.ndarray) -> np.ndarray | None:
        """(h, w) intensity -> (h, w, C) expected std of the difference; None before any estimate. ``level``
        float in [0, 1], or uint8 (0-255: a table look-up, cheaper)."""
        if self.sigma is None:
            return None
        if level.dtype == np.uint8:       # cv2.LUT: a fifth of the instructions of numpy's gather on aarch64
            lut = self._table.reshape(256, 1, -1)
            return cv2.LUT(cv2.merge([level] * lut.shape[2]) if lut.shape[2] > 1 else level, lut).reshape(
                level.shape + (lut.shape[2],))
        idx = np.clip((level * self.bins).astype(np.int64), 0, self.bins - 1)
        return self.sigma[idx].astype(np.float32)


class TemporalFilter:
    """A recursive filter over (H, W, C) float32 frames; call it on each frame in order. This base is ``none``.

    A filter whose :attr:`takes_uint8` is true also filters 8-bit frames (0-255) in place of float ones and gives
    8-bit frames back: ``darkc video`` hands it the 8-bit frame the writer encodes, which moves a quarter of the
    bytes of a float frame through every full-resolution pass."""

    kind = "none"
    takes_uint8 = True

    def __init__(self, strength: float | None = None):
        s = DEFAULT_STRENGTH[self.kind] if strength is None else strength
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not 0.0 <= s < 1.0:
            raise DarkcError(f"--strength {s!r} for --temporal {self.kind}: pass a history weight in [0, 1) "
                             f"(default {DEFAULT_STRENGTH[self.kind]})")
        self.strength = float(s)
        self.reset()

    def reset(self) -> None:
        """Forget the history (start of a clip, or after a gap)."""
        self.prev_out: np.ndarray | None = None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if x.ndim != 3:
            raise ValueError(f"frames must be (H, W, C), got shape {x.shape}")
        x = np.ascontiguousarray(x, dtype=np.uint8 if x.dtype == np.uint8 and self.takes_uint8 else np.float32)
        if self.prev_out is not None and self.prev_out.shape != x.shape:
            raise DarkcError(f"a frame of shape {x.shape} follows one of shape {self.prev_out.shape}: every frame "
                             f"of a video must have the same size")
        if self.prev_out is not None and self.prev_out.dtype != x.dtype:
            raise DarkcError(f"a {x.dtype} frame follows {self.prev_out.dtype} ones: give a filter frames of one type "
                             f"(or reset it)")
        y = (self._first(x) if self.prev_out is None else self._step(x)).reshape(x.shape)
        self.prev_out = y
        return y

    def _first(self, x: np.ndarray) -> np.ndarray:
        return x

    def _step(self, x: np.ndarray) -> np.ndarray:
        return x


class EMAFilter(TemporalFilter):
    kind = "ema"

    def _step(self, x: np.ndarray) -> np.ndarray:
        return cv2.addWeighted(x, 1.0 - self.strength, self.prev_out, self.strength, 0.0)


class MotionAdaptiveFilter(TemporalFilter):
    kind = "motion-adaptive"
    takes_uint8 = False

    def reset(self) -> None:
        super().reset()
        self.blend = _Blender()
        self.noise = NoiseModel()
        self.prev_in_low: np.ndarray | None = None   # local means of the previous input
        self.prev_out_low: np.ndarray | None = None  # ... and of the previous output

    def _first(self, x: np.ndarray) -> np.ndarray:
        self.prev_in_low = self.prev_out_low = _low(x)
        return x

    def _m(self, x_low: np.ndarray, hist_low: np.ndarray, sigma: np.ndarray) -> np.ndarray:
        """Normalised difference: the largest over channels of |local mean of x - history| / expected noise
        (infinite, so no history is used, while the noise level is unknown)."""
        if sigma is None:
            return np.full(x_low.shape[:2], np.inf, np.float32)
        r = np.abs(x_low - hist_low)
        r /= sigma
        return np.maximum.reduce([r[..., c] for c in range(r.shape[2])])

    def _step(self, x: np.ndarray) -> np.ndarray:
        x_low = _low(x)
        level = _chan_mean(x_low)
        self.noise.update(x_low - self.prev_in_low, level)
        k = _ramp(self._m(x_low, self.prev_out_low, self.noise(level)), self.strength)
        y = self.blend(x, self.prev_out, k)
        self.prev_out_low = x_low + k[..., None] * (self.prev_out_low - x_low)
        self.prev_in_low = x_low
        return y


class FlowFilter(MotionAdaptiveFilter):
    """Motion-adaptive blend against the motion-compensated previous output.

    Flow: DIS (``preset``) both ways between the channel means of consecutive *inputs* at 1/:data:`FLOW_SCALE`;
    the forward-backward check there (``fb_alpha``, ``fb_beta`` in full-resolution px^2) marks occlusions.
    """

    kind = "flow"

    def __init__(self, strength: float | None = None, preset: str = "fast", fb_alpha: float = FB_ALPHA,
                 fb_beta: float = FB_BETA):
        self.dis = DISFlow(preset)
        self.fb_alpha, self.fb_beta = fb_alpha, fb_beta
        super().__init__(strength)

    def reset(self) -> None:
        super().reset()
        self.prev_grey: np.ndarray | None = None

    def _grey(self, x_low: np.ndarray) -> np.ndarray:
        """The channel mean at 1/FLOW_SCALE, 8 bit (what DIS takes)."""
        h, w = x_low.shape[:2]
        f = max(1, FLOW_SCALE // STAT_SCALE)
        small = x_low if f == 1 else cv2.resize(x_low, (max(8, w // f), max(8, h // f)), interpolation=cv2.INTER_AREA)
        return luma_u8(small if small.ndim == 3 else small[..., None])

    def _first(self, x: np.ndarray) -> np.ndarray:
        super()._first(x)
        self.prev_grey = self._grey(self.prev_in_low)
        return x

    @staticmethod
    def _resize_flow(flow: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """A flow field resampled to ``size`` (H, W), its vectors rescaled to the new pixel size."""
        h, w = size
        fh, fw = flow.shape[:2]
        if (fh, fw) == (h, w):
            return flow
        return cv2.resize(flow * np.array([w / fw, h / fh], np.float32), (w, h), interpolation=cv2.INTER_LINEAR)

    def _step(self, x: np.ndarray) -> np.ndarray:
        h, w = x.shape[:2]
        x_low = _low(x)
        lh, lw = x_low.shape[:2]
        grey = self._grey(x_low)
        gh, gw = grey.shape
        bwd = self.dis(grey, self.prev_grey)                 # F_t->t-1 at 1/FLOW_SCALE
        fwd = self.dis(self.prev_grey, grey)                 # F_t-1->t
        occ = occlusion_mask(bwd, fwd, alpha=self.fb_alpha, beta=self.fb_beta * (gw / w) * (gh / h))
        bwd = self._resize_flow(bwd, (lh, lw))
        if (gh, gw) != (lh, lw):
            occ = cv2.resize(occ.astype(np.uint8), (lw, lh), interpolation=cv2.INTER_NEAREST).astype(bool)
        level = _chan_mean(x_low)
        self.noise.update(x_low - warp(self.prev_in_low, bwd), level, valid=~occ)
        sigma = self.noise(level)
        warped_low = warp(self.prev_out_low, bwd)
        m_warped = self._m(x_low, warped_low, sigma)
        m_warped[occ] = np.inf
        m_still = self._m(x_low, self.prev_out_low, sigma)
        use_warped = m_warped <= m_still
        k = _ramp(np.minimum(m_warped, m_still), self.strength)
        chosen = np.where(use_warped[..., None], bwd, 0.0).astype(np.float32)
        hist = cv2.remap(self.prev_out, self._resize_flow(chosen, (h, w)), None,
                         cv2.INTER_LINEAR | cv2.WARP_RELATIVE_MAP, borderMode=cv2.BORDER_REPLICATE)
        hist = hist if hist.ndim == 3 else hist[..., None]
        y = self.blend(x, hist, k, hist_is_scratch=True)
        hist_low = np.where(use_warped[..., None], warped_low, self.prev_out_low)
        self.prev_out_low = x_low + k[..., None] * (hist_low - x_low)
        self.prev_in_low, self.prev_grey = x_low, grey
        return y


def _tile_bounds(n_low: int, t: int, n_full: int) -> list[tuple[int, int, int, int]]:
    """Tiles of ``t`` low-res px along one axis of ``n_low`` low-res px: (low start, low stop, full start, full
    stop), full-resolution bounds in proportion (``n_full`` / ``n_low`` need not be whole); the last tile runs to
    both ends."""
    out = []
    for a in range(0, n_low, t):
        b = min(n_low, a + t)
        out.append((a, b, round(a * n_full / n_low), n_full if b == n_low else round(b * n_full / n_low)))
    return out


def _per_tile(a: np.ndarray, t: int, fn) -> np.ndarray:
    """``fn`` (a numpy reduction taking ``axis``) over each t x t tile of ``a`` (h, w, ...): (ceil(h/t), ceil(w/t),
    ...); partial edge tiles are padded by repeating their last row / column."""
    h, w = a.shape[:2]
    nty, ntx = -(-h // t), -(-w // t)
    pad = [(0, nty * t - h), (0, ntx * t - w)] + [(0, 0)] * (a.ndim - 2)
    a = np.pad(a, pad, mode="edge") if pad[0][1] or pad[1][1] else a
    return fn(a.reshape((nty, t, ntx, t) + a.shape[2:]).swapaxes(1, 2).reshape((nty, ntx, t * t) + a.shape[2:]),
              axis=2)


def _median(a: np.ndarray, axis: int) -> np.ndarray:
    """``np.median`` along ``axis`` by a sort: ``np.median``'s first call loads helpers costing 39M guest
    instructions under QEMU, which would land in the first filtered frame's count."""
    a = np.sort(a, axis=axis)
    n = a.shape[axis]
    lo, hi = np.take(a, (n - 1) // 2, axis=axis), np.take(a, n // 2, axis=axis)
    return (lo + hi) * 0.5


def _affine_flow(flow: np.ndarray, step: int = 8, iters: int = 3) -> np.ndarray:
    """(3, 2) robust least-squares affine model of ``flow`` (h, w, 2): ``f(x, y) = c0 + c1 x + c2 y`` per component,
    fitted on every ``step``-th px with weights that bound each residual's pull (iteratively reweighted: outliers
    such as moving objects are down-weighted). The 3x3 normal equations are solved in closed form: numpy's LAPACK
    solvers load on first use, which under QEMU cost 40M instructions in the first filtered frame."""
    h, w = flow.shape[:2]
    ys, xs = np.mgrid[0:h:step, 0:w:step]
    f = flow[::step, ::step].reshape(-1, 2).astype(np.float64)
    a = np.stack([np.ones(xs.size), xs.ravel(), ys.ravel()], 1)
    wts = np.ones(len(a))
    coef = np.zeros((3, 2))
    coef[0] = f.mean(axis=0)
    for _ in range(iters):
        aw = a * wts[:, None]
        g = aw.T @ a
        adj = np.array([[g[1, 1] * g[2, 2] - g[1, 2] * g[2, 1], g[0, 2] * g[2, 1] - g[0, 1] * g[2, 2],
                         g[0, 1] * g[1, 2] - g[0, 2] * g[1, 1]],
                        [g[1, 2] * g[2, 0] - g[1, 0] * g[2, 2], g[0, 0] * g[2, 2] - g[0, 2] * g[2, 0],
                         g[0, 2] * g[1, 0] - g[0, 0] * g[1, 2]],
                        [g[1, 0] * g[2, 1] - g[1, 1] * g[2, 0], g[0, 1] * g[2, 0] - g[0, 0] * g[2, 1],
                         g[0, 0] * g[1, 1] - g[0, 1] * g[1, 0]]])
        det = g[0, 0] * adj[0, 0] + g[0, 1] * adj[1, 0] + g[0, 2] * adj[2, 0]
        if abs(det) < 1e-9 * max(1.0, abs(g[0, 0])) ** 3:
            break                                    # degenerate (a frame a few px wide): the mean, or the last fit
        coef = (adj @ (aw.T @ f)) / det
        r = np.hypot(*(a @ coef - f).T)
        wts = 1.0 / np.maximum(1.0, r / max(1.5 * float(_median(r, 0)), 0.05))
    return coef


def _shift_tile(src: np.ndarray, dst: np.ndarray, y0: int, x0: int, dx: float, dy: float) -> None:
    """``dst`` (th, tw, C), the tile of ``src`` (H, W, C) at (y0, x0) seen through a translation:
    ``dst(p) = src(p + (dx, dy))``, bilinear, samples outside ``src`` repeating its border (as ``cv2.remap`` with
    BORDER_REPLICATE): ``cv2.getRectSubPix`` for 1 or 3 channels, a remap otherwise."""
    th, tw = dst.shape[:2]
    if src.shape[2] in (1, 3):
        cv2.getRectSubPix(src, (tw, th), (x0 + (tw - 1) / 2 + dx, y0 + (th - 1) / 2 + dy),
                          patch=dst if src.shape[2] == 3 else dst[..., 0])
        return
    gx, gy = np.meshgrid(np.arange(x0, x0 + tw, dtype=np.float32) + np.float32(dx),
                         np.arange(y0, y0 + th, dtype=np.float32) + np.float32(dy))
    dst[...] = cv2.remap(src, gx, gy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).reshape(dst.shape)


def _move(src: np.ndarray, dst: np.ndarray, y0: int, x0: int, dx: float, dy: float) -> None:
    """:func:`_shift_tile`; for a whole-px translation a copy of the part inside ``src`` and its edge rows and
    columns repeated outward (as BORDER_REPLICATE) for the part past it."""
    if not (dx.is_integer() and dy.is_integer()):
        _shift_tile(src, dst, y0, x0, dx, dy)
        return
    h, w = src.shape[:2]
    th, tw = dst.shape[:2]
    ys, xs = y0 + int(dy), x0 + int(dx)                       # src window of dst
    a, b = max(0, -ys), th - max(0, ys + th - h)                # dst rows / cols that lie inside src
    c, d = max(0, -xs), tw - max(0, xs + tw - w)
    if a >= b or c >= d:                                        # wholly past the frame
        _shift_tile(src, dst, y0, x0, dx, dy)
        return
    np.copyto(dst[a:b, c:d], src[ys + a:ys + b, xs + c:xs + d])
    if a:
        dst[:a, c:d] = dst[a:a + 1, c:d]
    if b < th:
        dst[b:, c:d] = dst[b - 1:b, c:d]
    if c:
        dst[:, :c] = dst[:, c:c + 1]
    if d < tw:
        dst[:, d:] = dst[:, d - 1:d]


def _move_runs(src: np.ndarray, dst: np.ndarray, rows: list, cols: list, shifts: list) -> None:
    """``dst`` = ``src`` moved by ``shifts[ty][tx]`` (px, (x, y)) per tile of ``rows`` x ``cols``
    (:func:`_tile_bounds`), one :func:`_move` per run of neighbouring tiles that move alike (a pan: one per row of
    tiles): the float-frame path of ``fast-flow``."""
    for (_, _, y0, y1), row in zip(rows, shifts):
        j = 0
        while j < len(cols):
            end = j + 1
            while end < len(cols) and row[end] == row[j]:
                end += 1
            _move(src, dst[y0:y1, cols[j][2]:cols[end - 1][3]], y0, cols[j][2], *row[j])
            j = end


class FastFlowFilter(TemporalFilter):
    """Motion-compensated recursive filter whose every decision is taken at 1/:data:`FAST_SCALE` resolution and
    whose history is moved by one translation per :data:`FAST_TILE` px tile, so that full resolution costs the
    move, two area downscales and one blend (the weights upsampled inside it).

    Per frame ``x``:

    1. ``x_low``: ``x`` at 1/FAST_SCALE by a Gaussian pyramid step then bilinear halving (every pixel weighs in,
       as with area averaging, at under half its instructions on aarch64 under QEMU). Bilinear sampling of 2x2 of
       every 4x4 px alone would save 5 of the host's 64 ms and 28M of 175M guest instructions per 1080p frame,
       and at strength 0.85 still met the targets on the 9 clips of benchmarks/results/video, but gained 3.0 dB
       instead of 6.5 dB on a textured sub-pixel pan (tests/test_video.py; its low-res px average 4 px, not all
       16);
    2. flow ``F_t->t-1``: DIS (``preset``) on the 8-bit channel mean of ``x_low`` against the previous one (one
       direction only: occlusions are found photometrically, not by a forward-backward check);
    3. a scene cut, taken as more than :data:`CUT_FRACTION` of the low-res pixels differing by over :data:`CUT_M`
       sigma from the motion-compensated previous input (:class:`NoiseModel`, estimated from consecutive
       motion-compensated inputs), resets the history: the frame is passed through;
    4. one translation per tile (:meth:`_tile_flows`): a robust affine fit of the whole flow field at the tile's
       centre (pans, zooms and shake are affine, and a fit over the frame is steadier than a local estimate where
       the image is flat), or the tile's median flow where that differs (a moving object, a nearer plane);
    5. full resolution: the previous output moved tile by tile (bilinear, shifts rounded to :data:`SHIFT_STEP`):
       8-bit frames by one Numba pass (:func:`darkc.video.kernels.move_tiles`, 16-bit fixed point; it and the
       fused blend of step 6 cut the filter from 120.5M to 84.5M guest instructions per 1080p frame on aarch64,
       benchmarks/results/video/filter_ops.md), float frames by ``cv2.getRectSubPix`` per run of neighbouring
       tiles that move alike (a still run by a copy);
    6. per low-res pixel, that moved history or the previous output not moved at all, each as the blend will see
       it (downscaled from full resolution like ``x_low``), whichever matches ``x_low`` better: still history
       keeps flat regions free of the interpolation blur that changes with each frame's sub-pixel shift (flicker
       -48 % instead of -54 % on the x100 hand-held clip without it); ``m``, its normalised difference, gives
       ``k = ramp(m)`` (:data:`FAST_RAMP`), zeroed one low-res px around every mismatch so that the bilinear
       upsampling of ``k`` does not blend history across the edge of a moving object; the still pixels take the
       previous output unmoved, then ``y = x + k (hist - x)`` with ``k`` upsampled (8-bit frames: all of it one
       Numba pass, :func:`darkc.video.kernels.blend_rows`; and the same blend at low resolution is the next
       frame's low-res previous output). Judging the downscaled full-resolution history
       replaced a bicubic warp of the low-res previous output (18M of 152M guest instructions per 1080p frame on
       aarch64) and filters the 9 clips of benchmarks/results/video as well (every target met, each figure within
       0.05 dB and 1 point).

    Tile-constant translation instead of a per-pixel warp: ``cv2.remap`` of a 3-channel float 1920x1080 frame costs
    16-20 ms CPU on the host (its 3-channel path is not vectorised in OpenCV 5.0) and 93M guest instructions on
    aarch64, patch extraction per 96 px tile about half the time and a sixth of the instructions; a zoom's flow
    varies across a tile (0.7 % per frame: 0.7 px over 96 px), which the low-res judgement sees as a mismatch and
    filters less.
    """

    kind = "fast-flow"

    def __init__(self, strength: float | None = None, preset: str = "ultrafast", scale: int | None = None,
                 tile: int | None = None):
        self.dis = DISFlow(preset)
        self.scale = FAST_SCALE if scale is None else int(scale)
        self.tile = FAST_TILE if tile is None else int(tile)
        if self.tile < self.scale:
            raise DarkcError(f"fast-flow tile {self.tile} px is smaller than its decision scale 1/{self.scale}: use "
                             f"a tile of at least {self.scale} px")
        super().__init__(strength)

    def reset(self) -> None:
        super().reset()
        self.noise = NoiseModel()
        self.prev_in_low: np.ndarray | None = None
        self.prev_out_low: np.ndarray | None = None
        self.prev_grey: np.ndarray | None = None
        self._hist: np.ndarray | None = None                 # full-resolution scratch for the translated history
        self._ones: np.ndarray | None = None                 # full-resolution blend weight of the frame
        self.cuts = 0

    def _low(self, x: np.ndarray) -> np.ndarray:
        """``x`` at 1/scale, every px weighing in (so a thin strip a moving object left is not missed, as bilinear
        sampling of 2x2 of every 4x4 px misses it): 8-bit frames by area averaging (OpenCV's integer-factor path:
        1.7M guest instructions per 1080p frame on aarch64 against 14.6M for a pyramid step and a halving); float
        ones by a Gaussian pyramid step then bilinear halving (under half the instructions of area averaging)."""
        h, w = x.shape[:2]
        size = (max(8, w // self.scale), max(8, h // self.scale))
        if x.dtype == np.uint8:
            small = cv2.resize(x, size, interpolation=cv2.INTER_AREA)
            return (small if small.ndim == 3 else small[..., None]) * np.float32(1 / 255)
        half = cv2.pyrDown(x, borderType=cv2.BORDER_REPLICATE) if self.scale >= 4 and x.shape[2] <= 4 else x
        small = cv2.resize(half, size, interpolation=cv2.INTER_LINEAR if half is not x else cv2.INTER_AREA)
        return small if small.ndim == 3 else small[..., None]

    def _first(self, x: np.ndarray) -> np.ndarray:
        self.prev_in_low = self.prev_out_low = self._low(x)
        self.prev_grey = luma_u8(self.prev_in_low)
        return x

    def _m(self, x_low: np.ndarray, hist_low: np.ndarray, sigma: np.ndarray) -> np.ndarray:
        r = np.abs(x_low - hist_low)
        r /= sigma
        return np.maximum.reduce([r[..., c] for c in range(r.shape[2])])

    def _tile_flows(self, bwd: np.ndarray, t: int) -> np.ndarray:
        """One translation per tile, (nty, ntx, 2) low-res px: the robust affine fit of the whole flow field at the
        tile's centre (camera motion: steadier than a local estimate where the image is flat), or the tile's own
        median flow (on every 4th px) where that differs from the fit by over :data:`TILE_OWN_FLOW` low-res px (a
        moving object or a nearer plane)."""
        lh, lw = bwd.shape[:2]
        sub = next(d for d in (4, 2, 1) if t % d == 0)
        median = _per_tile(bwd[::sub, ::sub], t // sub, _median).astype(np.float32)
        cy = np.array([(a + b - 1) / 2 for a, b, _, _ in _tile_bounds(lh, t, lh)])
        cx = np.array([(a + b - 1) / 2 for a, b, _, _ in _tile_bounds(lw, t, lw)])
        coef = _affine_flow(bwd)
        gx, gy = np.meshgrid(cx, cy)
        affine = (coef[0] + gx[..., None] * coef[1] + gy[..., None] * coef[2]).astype(np.float32)
        own = np.hypot(*(median - affine).transpose(2, 0, 1)) > TILE_OWN_FLOW
        return np.where(own[..., None], median, affine)

    def _step(self, x: np.ndarray) -> np.ndarray:
        h, w = x.shape[:2]
        x_low = self._low(x)
        lh, lw = x_low.shape[:2]
        grey = luma_u8(x_low)
        bwd = self.dis(grey, self.prev_grey)                       # F_t->t-1, low-res px
        in_diff = x_low - _warp_rel(self.prev_in_low, bwd)
        self.prev_in_low, self.prev_grey = x_low, grey
        sigma = self.noise(grey[::2, ::2])
        if sigma is not None and np.mean(self._m(in_diff[::2, ::2], 0.0, sigma) > CUT_M) > CUT_FRACTION:
            # a scene cut (judged on every other px with the noise level before it): start again from this frame
            self.cuts += 1
            self.prev_out_low = x_low
            return x
        self.noise.update(in_diff, grey)
        sigma = self.noise(grey)
        # 4. one translation per tile; the previous output moved by them at full resolution
        t = max(1, round(self.tile * lw / w))
        tiles = self._tile_flows(bwd, t)
        scale = np.float32([w / lw, h / lh])
        steps = np.round(tiles * scale / SHIFT_STEP)                # shifts in SHIFT_STEP px
        if self._hist is None or self._hist.shape != x.shape:
            self._hist = np.empty_like(x)
        hist, prev = self._hist, self.prev_out
        rows, cols = _tile_bounds(lh, t, h), _tile_bounds(lw, t, w)
        if x.dtype == np.uint8:
            ybounds = np.array([r[2] for r in rows] + [h], np.int64)
            xbounds = np.array([c[2] for c in cols] + [w], np.int64)
            kernels.move_tiles(prev.reshape(h, -1), hist.reshape(h, -1), ybounds, xbounds, steps.astype(np.int32),
                               x.shape[2])
        else:
            _move_runs(prev, hist, rows, cols, (steps * SHIFT_STEP).tolist())
        # 5. per low-res px: moved or still history, whichever matches x_low better (both as the blend will see
        # them: the moved full-resolution history and the previous output, downscaled), and the blend weight
        hist_low = self._low(hist)
        m_warped = self._m(x_low, hist_low, sigma)
        m_still = self._m(x_low, self.prev_out_low, sigma)
        still = (m_still < m_warped).view(np.uint8)
        m = np.minimum(m_warped, m_still)
        k = _ramp(m, self.strength, FAST_RAMP)
        k[cv2.dilate((m > FAST_RAMP[1]).astype(np.uint8), np.ones((3, 3), np.uint8)).view(bool)] = 0.0
        cv2.copyTo(self.prev_out_low, still, hist_low)
        self.prev_out_low = cv2.blendLinear(x_low, hist_low, 1.0 - k, k).reshape(x_low.shape)
        if x.dtype == np.uint8:
            return self._blend_u8(x, hist, prev, k, still)
        if still.any():                             # 4x bilinear then a threshold: nearest, at a third of its cost
            still_full = cv2.threshold(cv2.resize(still * np.uint8(255), (w, h), interpolation=cv2.INTER_LINEAR),
                                       127, 1, cv2.THRESH_BINARY)[1]
            cv2.copyTo(prev, still_full, hist)
        # cv2.blendLinear divides by the sum of the weights (tests/test_video.py pins it): weights 1 and k / (1 - k)
        # give x + k (hist - x) with one full-resolution resize instead of two (k <= strength < 1)
        if self._ones is None or self._ones.shape != (h, w):
            self._ones = np.ones((h, w), np.float32)
        odds = cv2.resize(k / (1.0 - k), (w, h), interpolation=cv2.INTER_LINEAR)
        return cv2.blendLinear(x, hist, self._ones, odds).reshape(x.shape)

    @staticmethod
    def _blend_u8(x: np.ndarray, hist: np.ndarray, prev: np.ndarray, k: np.ndarray, still: np.ndarray) -> np.ndarray:
        """``x + k (h - x)`` on 8-bit frames in one fused pass (:func:`darkc.video.kernels.blend_rows`): ``h`` the
        moved history, or ``prev`` where ``still``; ``k`` and ``still`` (lh, lw) upsampled along the rows here (a
        low-res number of rows), down the columns inside the pass."""
        h, w, c = x.shape
        lh = k.shape[0]
        # 8-bit at low resolution, then OpenCV's fixed-point row resize and channel merge (float rows cost 3x)
        k8 = np.minimum(np.rint(k * kernels.K_ONE), kernels.K_ONE - 1).astype(np.uint8)
        k_rows = cv2.resize(k8, (w, lh), interpolation=cv2.INTER_LINEAR)
        still_rows = cv2.resize(still * np.uint8(255), (w, lh), interpolation=cv2.INTER_NEAREST)
        if c > 1:
            k_rows, still_rows = cv2.merge([k_rows] * c), cv2.merge([still_rows] * c)
        out = np.empty_like(x)
        kernels.blend_rows(x.reshape(h, -1), hist.reshape(h, -1), prev.reshape(h, -1), k_rows.reshape(lh, -1),
                           still_rows.reshape(lh, -1), out.reshape(h, -1))
        return out

_FILTERS = {f.kind: f for f in (TemporalFilter, EMAFilter, MotionAdaptiveFilter, FlowFilter, FastFlowFilter)}


def make_filter(kind: str, strength: float | None = None, **options) -> TemporalFilter:
    """A fresh filter of ``kind`` (one of :data:`KINDS`); ``strength`` is the largest weight of the history."""
    if kind not in _FILTERS:
        raise DarkcError(f"unknown --temporal {kind!r}: use one of {', '.join(KINDS)}")
    return _FILTERS[kind](strength, **options)

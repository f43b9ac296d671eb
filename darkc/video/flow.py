"""Optical flow helpers: backward warping, forward-backward occlusion check, OpenCV DIS flow, .flo files.

Convention everywhere in :mod:`darkc.video`: a flow ``F_a->b`` is float32 ``(H, W, 2)`` in pixels, channel 0
the x (column) and channel 1 the y (row) displacement, such that the content at pixel ``p`` of frame ``a``
is at ``p + F_a->b(p)`` in frame ``b``. Warping frame ``b`` with it, ``warp(b, F_a->b)``, gives frame ``b``
seen from frame ``a`` (backward warping, bilinear).
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from ..errors import DarkcError, atomic_path

#: Forward-backward consistency thresholds of Sundaram et al. 2010 as used by Ruder et al. 2016 and by Lai et
#: al. 2018's evaluation code: occluded where |F + B'|^2 > ALPHA (|F|^2 + |B'|^2) + BETA (B' = B sampled at p+F).
FB_ALPHA = 0.01
FB_BETA = 0.5


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    return np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))


def warp(img: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Backward-warp ``img`` (H, W) or (H, W, C) with ``flow`` (H, W, 2): ``out(p) = img(p + flow(p))``.

    Bilinear; samples outside the frame repeat the border (mask them with :func:`in_frame`).
    """
    h, w = flow.shape[:2]
    if img.shape[:2] != (h, w):
        raise ValueError(f"image {img.shape} and flow {flow.shape} differ in size")
    gx, gy = _grid(h, w)
    mx, my = gx + flow[..., 0], gy + flow[..., 1]
    out = cv2.remap(np.ascontiguousarray(img, dtype=np.float32), mx, my, cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(img.shape)


def in_frame(flow: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels whose target ``p + flow(p)`` lies inside the frame."""
    h, w = flow.shape[:2]
    gx, gy = _grid(h, w)
    x, y = gx + flow[..., 0], gy + flow[..., 1]
    return (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)


def occlusion_mask(fwd: np.ndarray, bwd: np.ndarray, alpha: float = FB_ALPHA, beta: float = FB_BETA) -> np.ndarray:
    """(H, W) bool, True where pixels of frame ``a`` are occluded in (or leave) frame ``b``.

    Args:
        fwd: ``F_a->b``, (H, W, 2).
        bwd: ``F_b->a``, (H, W, 2).
        alpha, beta: forward-backward consistency thresholds (Sundaram et al. 2010).
    """
    if fwd.shape != bwd.shape or fwd.ndim != 3 or fwd.shape[2] != 2:
        raise ValueError(f"flows must both be (H, W, 2), got {fwd.shape} and {bwd.shape}")
    back = warp(bwd, fwd)
    sq = lambda f: f[..., 0] * f[..., 0] + f[..., 1] * f[..., 1]  # noqa: E731
    bad = sq(fwd + back) > alpha * (sq(fwd) + sq(back)) + beta
    return bad | ~in_frame(fwd)


def luma_u8(img: np.ndarray) -> np.ndarray:
    """(H, W, C) float in [0, 1] -> (H, W) uint8: the channel mean (what DIS flow is computed on)."""
    if img.ndim == 3:
        g = img[..., 0].astype(np.float32)
        for c in range(1, img.shape[2]):
            g += img[..., c]
        g *= 255.0 / img.shape[2]
    else:
        g = img * 255.0
    return cv2.convertScaleAbs(g)


class DISFlow:
    """OpenCV DIS optical flow (Kroeger et al. 2016) between 8-bit grey frames of one size."""

    PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
               "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}

    def __init__(self, preset: str = "ultrafast"):
        if preset not in self.PRESETS:
            raise DarkcError(f"unknown DIS preset {preset!r}: use one of {', '.join(self.PRESETS)}")
        self.dis = cv2.DISOpticalFlow_create(self.PRESETS[preset])
        self.preset = preset

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """``F_a->b`` (H, W, 2) float32 between two (H, W) uint8 frames."""
        return self.dis.calc(a, b, None)


def write_flo(path: str | os.PathLike, flow: np.ndarray) -> None:
    """Write a flow as a Middlebury ``.flo`` file (what ``cv2.readOpticalFlow`` reads), atomically."""
    with atomic_path(path, suffix=".flo") as tmp:
        if not cv2.writeOpticalFlow(str(tmp), np.ascontiguousarray(flow, dtype=np.float32)):
            raise DarkcError(f"cannot write {path}: OpenCV failed to write the flow; check the path and free space")


def read_flo(path: str | os.PathLike) -> np.ndarray:
    """Read a Middlebury ``.flo`` file -> (H, W, 2) float32."""
    path = Path(path)
    if not path.is_file():
        raise DarkcError(f"flow file {path} does not exist: regenerate the clip with darkc synth --video")
    bad = f"cannot read flow file {path}: not a .flo flow field"
    # the header (magic 202021.25, width, height) must match the file's size before OpenCV allocates for it
    with open(path, "rb") as fh:
        header = fh.read(12)
    if len(header) < 12 or header[:4] != b"PIEH":
        raise DarkcError(f"{bad} (no PIEH header); regenerate the clip")
    w, h = (int.from_bytes(header[i:i + 4], "little", signed=True) for i in (4, 8))
    if w <= 0 or h <= 0 or 12 + 8 * w * h != path.stat().st_size:
        raise DarkcError(f"{bad} (its header declares {w}x{h}, which its {path.stat().st_size} bytes do not hold; "
                         f"truncated or corrupt); regenerate the clip")
    try:
        flow = cv2.readOpticalFlow(str(path))
    except cv2.error as exc:
        raise DarkcError(f"{bad} ({' '.join(str(exc).split())[:120]}); regenerate the clip") from None
    if flow is None or flow.ndim != 3 or flow.shape[2] != 2:
        raise DarkcError(f"{bad}; regenerate the clip")
    return flow

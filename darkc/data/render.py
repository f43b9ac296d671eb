"""The SID target: a raw file rendered by LibRaw exactly as SID renders its long exposures."""
from __future__ import annotations

import io

import numpy as np
import rawpy

from ..errors import DarkcError

# LibRaw's X-Trans demosaic works on 512-px tiles and refuses smaller images.
XTRANS_MIN = 516


#: LibRaw's default: where a frame's own maximum exceeds this fraction of the white level, it becomes the white
#: level (so brightness depends on content); SID's targets keep it, video ground truth turns it off (0)
ADJUST_MAXIMUM_THR = 0.75


def libraw_render(raw: "rawpy.RawPy", adjust_maximum_thr: float = ADJUST_MAXIMUM_THR,
                  u16: bool = False) -> np.ndarray:
    """rawpy.postprocess(use_camera_wb=True, half_size=False, no_auto_bright=True, output_bps=16) / 65535,
    on the sensor's grid (``user_flip=0``: not turned to the file's orientation, so it aligns with the raw);
    ``u16``: LibRaw's uint16 image as it is (half the float image's memory)."""
    img = raw.postprocess(use_camera_wb=True, half_size=False, no_auto_bright=True, output_bps=16,
                          adjust_maximum_thr=adjust_maximum_thr, user_flip=0)
    return img if u16 else img.astype(np.float32) / 65535.0


def render_dng_bytes(data: bytes, name: str = "<in-memory DNG>",
                     adjust_maximum_thr: float = ADJUST_MAXIMUM_THR) -> np.ndarray:
    try:
        with rawpy.imread(io.BytesIO(data)) as raw:
            return libraw_render(raw, adjust_maximum_thr)
    except (rawpy.LibRawError, ValueError) as exc:
        raise DarkcError(f"LibRaw could not render {name}: {exc}") from exc


def render_mosaic(mosaic: np.ndarray, kind: str, adjust_maximum_thr: float = ADJUST_MAXIMUM_THR,
                  **dng_tags) -> np.ndarray:
    """Render a canonical-phase uint16 mosaic through LibRaw via an in-memory DNG -> (H, W, 3) float32.

    X-Trans mosaics smaller than LibRaw's minimum are padded with whole CFA tiles (wrap-around,
    so the phase is kept) and the render is cropped back.
    """
    from .dng import dng_bytes

    h, w = mosaic.shape
    src = mosaic
    if kind == "xtrans" and (h < XTRANS_MIN or w < XTRANS_MIN):
        ph = max(0, -(-(XTRANS_MIN - h) // 6) * 6)
        pw = max(0, -(-(XTRANS_MIN - w) // 6) * 6)
        src = np.pad(mosaic, ((0, ph), (0, pw)), mode="wrap")
    out = render_dng_bytes(dng_bytes(src, kind, **dng_tags), adjust_maximum_thr=adjust_maximum_thr)
    return out[:h, :w]

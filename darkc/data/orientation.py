"""Turning a rendered image the way LibRaw turns it for the raw file's orientation.

LibRaw reads the orientation (EXIF/TIFF tag 274, or the maker's own field) into ``sizes.flip``, three bits
applied to the image as dcraw's ``flip_index`` does: bit 2 swaps rows and columns, bit 1 mirrors the rows,
bit 0 the columns, the mirrors counted on the unrotated image. For the EXIF orientations that LibRaw maps:

====  ==========  =================================
EXIF  flip        output
====  ==========  =================================
1     0           as on the sensor
3     3           rotated 180 degrees
6     6           rotated 90 degrees clockwise
8     5           rotated 90 degrees counter-clockwise
2/4   1/2         mirrored left-right / top-bottom
5/7   4/7         transposed / transverse
====  ==========  =================================
"""
from __future__ import annotations

import numpy as np


def apply_flip(img: np.ndarray, flip: int, channel_axis: int | None = None) -> np.ndarray:
    """``img`` turned as LibRaw turns its render for ``sizes.flip == flip`` (0-7); a view where possible.

    Args:
        img: (H, W) or an image with one channel axis, e.g. (H, W, 3) or (3, H, W).
        flip: LibRaw's flip bits (``rawpy.RawPy.sizes.flip``); 0 returns ``img`` unchanged.
        channel_axis: the channel axis of a 3-D image (-1 or 0); None for (H, W) or (H, W, C).
    """
    if not 0 <= int(flip) <= 7:
        raise ValueError(f"LibRaw flip {flip!r} is not in 0-7")
    if img.ndim == 3 and channel_axis in (0, -3):
        return np.moveaxis(apply_flip(np.moveaxis(img, 0, -1), flip), -1, 0)
    out = img
    if flip & 2:
        out = out[::-1]
    if flip & 1:
        out = out[:, ::-1]
    if flip & 4:
        out = out.swapaxes(0, 1)
    return out

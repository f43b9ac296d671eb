"""Reading raw files with rawpy/LibRaw into normalised, canonical-phase, packed network inputs."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rawpy

from ..errors import DarkcError
from . import cfa as cfa_mod
from .render import libraw_render

SID_MAX_RATIO = 300.0


@dataclass
class RawFrame:
    """A raw frame, black-level subtracted and divided by (white - black): float32 (H, W) in [0, 1],
    cut to the canonical CFA phase (RGGB / SID's X-Trans phase) and to whole CFA tiles."""
    path: str
    cfa: str
    mosaic: np.ndarray
    black: list
    white: int
    offset: tuple[int, int]          # (dy, dx) cut from the top-left to reach the canonical phase
    wb: tuple                        # as-shot white-balance multipliers (R, G, B)
    flip: int = 0                    # LibRaw's orientation bits (sizes.flip), see darkc.data.orientation

    def packed(self) -> np.ndarray:
        """(C, H/s, W/s) float32: 4 channels (Bayer) or 9 (X-Trans)."""
        return cfa_mod.pack(self.mosaic, self.cfa)


def open_raw(path: str | os.PathLike) -> "rawpy.RawPy":
    """The rawpy handle of ``path`` (use it in a ``with``); a one-line DarkcError when LibRaw cannot read it."""
    path = Path(path)
    if not path.is_file():
        raise DarkcError(f"raw file {path} does not exist: check the path")
    try:
        return rawpy.imread(str(path))
    except rawpy.LibRawFileUnsupportedError as exc:
        raise DarkcError(f"cannot read raw file {path}: LibRaw does not recognise the format ({exc}); "
                         f"pass a camera raw such as DNG/ARW/RAF/NEF/CR2") from exc
    except (rawpy.LibRawError, OSError) as exc:
        raise DarkcError(f"cannot read raw file {path}: {exc}; the file may be truncated or corrupt, "
                         f"copy it again") from exc


def read_raw(path: str | os.PathLike, signed: bool = False) -> RawFrame:
    """Read a Bayer (any 2x2 phase) or X-Trans raw file into a :class:`RawFrame`. ``signed``: the mosaic not
    clipped at black, so in [-black / (white - black), 1] rather than [0, 1] (values below 0 kept: read noise is
    zero-mean there, so local means stay the signal's; see :func:`darkc.inference.anchor_means`)."""
    with open_raw(path) as raw:
        try:
            if raw.num_colors != 3 and raw.color_desc not in (b"RGBG",):
                raise DarkcError(f"unsupported CFA in {path}: colours {raw.color_desc!r}; darkc handles RGB Bayer and X-Trans")
            desc = raw.color_desc.decode(errors="replace")
            if raw.raw_pattern is None:
                raise DarkcError(f"unsupported sensor in {path}: no colour filter array (Foveon or linear DNG)")
            try:
                pattern = cfa_mod.colour_pattern(raw.raw_pattern, desc)
                kind = cfa_mod.cfa_kind(pattern)
                dy, dx = cfa_mod.phase_offset(pattern)
            except DarkcError as exc:
                raise DarkcError(f"{path}: {exc}") from None
            img = raw.raw_image_visible.astype(np.float32)
            colors = raw.raw_colors_visible
            black = np.asarray(raw.black_level_per_channel, np.float32)
            white = int(raw.white_level)
            wb = tuple(float(v) for v in raw.camera_whitebalance[:3])
            flip = int(raw.sizes.flip)
        except rawpy.LibRawError as exc:
            raise DarkcError(f"cannot decode raw data in {path}: {exc}; the file may be truncated") from exc
    blk = black[colors]
    span = np.maximum(white - blk, 1.0)
    norm = (img - blk) / span
    norm = (np.minimum(norm, 1.0) if signed else np.clip(norm, 0.0, 1.0))[dy:, dx:]
    norm = cfa_mod.crop_to_tiles(norm, kind)
    if norm.shape[0] < 2 * cfa_mod.tile(kind) or norm.shape[1] < 2 * cfa_mod.tile(kind):
        raise DarkcError(f"raw image in {path} is too small ({norm.shape[1]}x{norm.shape[0]}) to pack")
    return RawFrame(str(path), kind, norm, black.tolist(), white, (dy, dx), wb, flip)


def render_raw(path: str | os.PathLike) -> np.ndarray:
    """SID's target rendering of a (long-exposure) raw file: LibRaw, camera WB, no auto-bright, 16 bit.

    Returns (H, W, 3) float32 in [0, 1], cut like :func:`read_raw` so it aligns with the network output.
    """
    with open_raw(path) as raw:
        return render_open(raw, path)


def render_open(raw: "rawpy.RawPy", source, u16: bool = False) -> np.ndarray:
    """:func:`render_raw` of an already open (possibly modified in memory) rawpy file; ``source`` names it in
    errors; ``u16``: LibRaw's uint16 values instead of float32 in [0, 1]."""
    try:
        desc = raw.color_desc.decode()
        pattern = cfa_mod.colour_pattern(raw.raw_pattern, desc)
        kind = cfa_mod.cfa_kind(pattern)
        dy, dx = cfa_mod.phase_offset(pattern)
        img = libraw_render(raw, u16=u16)
    except rawpy.LibRawError as exc:
        raise DarkcError(f"LibRaw could not render {source}: {exc}; the file may be truncated") from exc
    img = img[dy:, dx:]
    t = cfa_mod.tile(kind)
    return img[: img.shape[0] // t * t, : img.shape[1] // t * t]


def render_packed(path: str | os.PathLike, packed: np.ndarray, u16: bool = False) -> np.ndarray:
    """Render a packed raw (C, h, w) in [0, 1] (the scale of :func:`read_raw`'s frame of ``path``, e.g. a raw-output
    model's clean estimate) through LibRaw with the file's own black/white levels, white balance and colour matrix:
    SID's target render (:func:`render_raw`), so the result is comparable with it. Sensor pixels the packed frame
    does not cover (the phase cut and partial tiles) are set to black. Returns (H, W, 3) float32 in [0, 1], cut
    like :func:`read_raw` (``u16``: LibRaw's uint16 values)."""
    packed = np.asarray(packed, np.float32)
    with open_raw(path) as raw:
        try:
            pattern = cfa_mod.colour_pattern(raw.raw_pattern, raw.color_desc.decode())
            kind = cfa_mod.cfa_kind(pattern)
            dy, dx = cfa_mod.phase_offset(pattern)
            vis = raw.raw_image_visible
            black = np.asarray(raw.black_level_per_channel, np.float32)[raw.raw_colors_visible]
            white = float(raw.white_level)
        except rawpy.LibRawError as exc:
            raise DarkcError(f"cannot decode raw data in {path}: {exc}; the file may be truncated") from exc
        mosaic = cfa_mod.unpack(np.clip(packed, 0.0, 1.0), kind)
        h, w = mosaic.shape
        if dy + h > vis.shape[0] or dx + w > vis.shape[1]:
            raise DarkcError(f"packed raw of {h}x{w} px does not fit {path} ({vis.shape[1]}x{vis.shape[0]} visible): "
                             f"render it with the file it was read from")
        blk = black[dy:dy + h, dx:dx + w]
        dn = blk + mosaic * (white - blk)
        vis[...] = np.round(black).astype(vis.dtype)
        vis[dy:dy + h, dx:dx + w] = np.clip(np.round(dn), 0, white).astype(vis.dtype)
        img = render_open(raw, path, u16=u16)
    return img[:h, :w]


def amplify(packed: np.ndarray, ratio: float) -> np.ndarray:
    """Multiply by the exposure ratio and clip to 1, as SID does. Checks the input is finite."""
    check_finite(packed, "raw input")
    if not np.isfinite(ratio) or ratio <= 0:
        raise DarkcError(f"exposure ratio {ratio} is invalid: pass a positive --ratio (SID uses 100-300)")
    return np.minimum(packed * float(ratio), 1.0).astype(np.float32)


def check_finite(arr: np.ndarray, what: str) -> None:
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise DarkcError(f"{what} contains {bad} NaN/Inf values: check the file or the upstream step that made it")

"""Colour filter arrays: canonical phases, phase normalisation, packing and mosaicking.

Colour indices are 0=R, 1=G, 2=B throughout (rawpy's ``raw_pattern`` uses 3 for the second green;
:func:`colour_pattern` folds it to 1).

Packed layouts (what the networks take):

* Bayer: canonical phase RGGB; 4 channels at half size in SID's order R, G(0,1), B(1,1), G(1,0).
* X-Trans: canonical 6x6 phase below; 9 channels at a third of the size, SID's Fuji packing: every
  6x6 tile becomes a 2x2 block of 9-channel pixels and each channel sees one colour only
  (ch 0,3 red; ch 2,4 blue; ch 1,5-8 green).
"""
from __future__ import annotations

import numpy as np

from ..errors import DarkcError

R, G, B = 0, 1, 2

BAYER_RGGB = np.array([[R, G], [G, B]])
# position (row, col) inside the 2x2 tile of each packed channel
_BAYER_POS = [(0, 0), (0, 1), (1, 1), (1, 0)]

# SID's Fuji packing as a table: channel -> positions inside a 6x6 tile, listed for the output
# sub-pixels (0,0), (0,1), (1,0), (1,1) of the 2x2 block the tile becomes.
_XTRANS_POS = [
    [(0, 0), (0, 4), (3, 1), (3, 3)],
    [(0, 2), (0, 5), (3, 2), (3, 5)],
    [(0, 1), (0, 3), (3, 0), (3, 4)],
    [(1, 2), (2, 5), (5, 2), (4, 5)],
    [(2, 2), (1, 5), (4, 2), (5, 5)],
    [(1, 0), (1, 3), (4, 0), (4, 3)],
    [(1, 1), (1, 4), (4, 1), (4, 4)],
    [(2, 0), (2, 3), (5, 0), (5, 3)],
    [(2, 1), (2, 4), (5, 1), (5, 4)],
]
_XTRANS_CH_COLOUR = [R, G, B, R, B, G, G, G, G]


def _xtrans_canonical() -> np.ndarray:
    pat = np.full((6, 6), -1)
    for ch, positions in enumerate(_XTRANS_POS):
        for r, c in positions:
            pat[r, c] = _XTRANS_CH_COLOUR[ch]
    assert (pat >= 0).all()
    return pat


XTRANS_CANONICAL = _xtrans_canonical()


def colour_pattern(raw_pattern: np.ndarray, colour_desc: str = "RGBG") -> np.ndarray:
    """Map a rawpy ``raw_pattern`` (indices into ``color_desc``) to 0=R, 1=G, 2=B."""
    lut = {"R": R, "G": G, "B": B}
    out = np.empty_like(np.asarray(raw_pattern))
    for idx, name in enumerate(colour_desc):
        if name not in lut:
            raise DarkcError(f"unsupported CFA colour {name!r} in {colour_desc!r}: only RGB Bayer and X-Trans are supported")
        out[np.asarray(raw_pattern) == idx] = lut[name]
    return out


def cfa_kind(pattern: np.ndarray) -> str:
    """'bayer' for a 2x2 pattern, 'xtrans' for 6x6; anything else is unsupported."""
    shape = np.asarray(pattern).shape
    if shape == (2, 2):
        return "bayer"
    if shape == (6, 6):
        return "xtrans"
    raise DarkcError(f"unsupported CFA pattern of size {shape}: darkc handles 2x2 Bayer and 6x6 X-Trans")


def phase_offset(pattern: np.ndarray) -> tuple[int, int]:
    """Offset (dy, dx) such that ``mosaic[dy:, dx:]`` has the canonical phase of its CFA kind."""
    pattern = np.asarray(pattern)
    kind = cfa_kind(pattern)
    canon = BAYER_RGGB if kind == "bayer" else XTRANS_CANONICAL
    n = canon.shape[0]
    for dy in range(n):
        for dx in range(n):
            if np.array_equal(np.roll(pattern, (-dy, -dx), axis=(0, 1)), canon):
                return dy, dx
    raise DarkcError(f"unsupported {kind} CFA layout {pattern.tolist()}: it is no phase of "
                     f"{'RGGB' if kind == 'bayer' else 'Fuji X-Trans'}")


def tile(kind: str) -> int:
    """Side of the repeating CFA tile the packed layout needs whole (2 Bayer, 6 X-Trans)."""
    return {"bayer": 2, "xtrans": 6}[_check_kind(kind)]


def scale(kind: str) -> int:
    """Raw pixels per packed pixel along each axis (2 Bayer, 3 X-Trans)."""
    return {"bayer": 2, "xtrans": 3}[_check_kind(kind)]


def channel_colours(kind: str) -> list[int]:
    """Colour (0=R, 1=G, 2=B) of each packed channel."""
    return [R, G, B, G] if _check_kind(kind) == "bayer" else list(_XTRANS_CH_COLOUR)


def channels(kind: str) -> int:
    return {"bayer": 4, "xtrans": 9}[_check_kind(kind)]


def _check_kind(kind: str) -> str:
    if kind not in ("bayer", "xtrans"):
        raise DarkcError(f"unknown CFA kind {kind!r}: use 'bayer' or 'xtrans'")
    return kind


def canonical_pattern(kind: str) -> np.ndarray:
    return BAYER_RGGB.copy() if _check_kind(kind) == "bayer" else XTRANS_CANONICAL.copy()


def crop_to_tiles(mosaic: np.ndarray, kind: str) -> np.ndarray:
    t = tile(kind)
    h, w = mosaic.shape[-2:]
    return mosaic[..., : h // t * t, : w // t * t]


def pack(mosaic: np.ndarray, kind: str) -> np.ndarray:
    """Canonical-phase mosaic (..., H, W) -> packed (..., C, H/s, W/s); trailing partial tiles are cut."""
    m = crop_to_tiles(np.asarray(mosaic), kind)
    h, w = m.shape[-2:]
    if kind == "bayer":
        return np.stack([m[..., r::2, c::2] for r, c in _BAYER_POS], axis=-3)
    out = np.empty(m.shape[:-2] + (9, h // 3, w // 3), dtype=m.dtype)
    for ch, positions in enumerate(_XTRANS_POS):
        for (a, b), (r, c) in zip([(0, 0), (0, 1), (1, 0), (1, 1)], positions):
            out[..., ch, a::2, b::2] = m[..., r::6, c::6]
    return out


def unpack(packed: np.ndarray, kind: str) -> np.ndarray:
    """Inverse of :func:`pack`: packed (..., C, h, w) -> mosaic (..., h*s, w*s)."""
    p = np.asarray(packed)
    c = channels(kind)
    if p.ndim < 3 or p.shape[-3] != c:
        raise DarkcError(f"packed {kind} input must have {c} channels, got shape {tuple(p.shape)}")
    h, w = p.shape[-2:]
    if kind == "bayer":
        out = np.empty(p.shape[:-3] + (h * 2, w * 2), dtype=p.dtype)
        for ch, (r, cc) in enumerate(_BAYER_POS):
            out[..., r::2, cc::2] = p[..., ch, :, :]
        return out
    if h % 2 or w % 2:
        raise DarkcError(f"packed X-Trans input needs even height and width, got {h}x{w}")
    out = np.empty(p.shape[:-3] + (h * 3, w * 3), dtype=p.dtype)
    for ch, positions in enumerate(_XTRANS_POS):
        for (a, b), (r, cc) in zip([(0, 0), (0, 1), (1, 0), (1, 1)], positions):
            out[..., r::6, cc::6] = p[..., ch, a::2, b::2]
    return out


def mosaic(rgb: np.ndarray, kind: str) -> np.ndarray:
    """Sample an (H, W, 3) image through the canonical CFA of ``kind`` -> (H, W) mosaic."""
    pat = canonical_pattern(kind)
    n = pat.shape[0]
    h, w = rgb.shape[:2]
    reps = (-(-h // n), -(-w // n))
    idx = np.tile(pat, reps)[:h, :w]
    return np.take_along_axis(rgb, idx[..., None], axis=2)[..., 0]

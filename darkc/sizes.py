"""Frame sizes, MAC budgets and size multiples: the parsing and packing every stage shares.

A raw frame is ``(W, H)`` in raw pixels; a CFA packs it to ``(C, H/s, W/s)`` (``s`` = 2 for Bayer, 3 for
X-Trans); a network runs at packed H and W padded up to its size multiple (:data:`DEFAULT_MULTIPLE` for a
network that does not state one: the SID U-Net's four 2x poolings).
"""
from __future__ import annotations

import math
import re

from darkc.errors import DarkcError

#: Packed H and W multiple of a network without a ``size_multiple`` of its own (SID U-Net: four 2x poolings).
DEFAULT_MULTIPLE = 16
_SUFFIX = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}


def size_multiple(model) -> int:
    """The packed multiple ``model`` runs at: its ``size_multiple`` attribute, else :data:`DEFAULT_MULTIPLE`."""
    return int(getattr(model, "size_multiple", DEFAULT_MULTIPLE))


def round_up(value: int, multiple: int) -> int:
    """``value`` rounded up to a multiple of ``multiple``."""
    return -(-int(value) // multiple) * multiple


def parse_resolution(text: str, what: str = "resolution") -> tuple[int, int]:
    """``'1920x1080'`` -> ``(1920, 1080)``: a raw frame's width and height in pixels."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX*]\s*(\d+)\s*", str(text))
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise DarkcError(f"{what} {text!r} is not WIDTHxHEIGHT in raw pixels; write e.g. 1920x1080")
    return int(m.group(1)), int(m.group(2))


def parse_budget(text: str) -> tuple[float, tuple[int, int]]:
    """``'5G@1920x1080'`` -> ``(5e9, (1920, 1080))``: MACs per frame and the raw frame size (W, H).

    Suffixes K, M, G, T (powers of 1000, case-insensitive; a trailing ``MACs`` is allowed); without
    ``@WxH`` the frame is 1920x1080.
    """
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[+-]?\d+)?)\s*([kmgt]?)(?:macs?)?\s*(?:@(.+))?", str(text),
                     flags=re.IGNORECASE)
    if not m:
        raise DarkcError(f"--target-macs {text!r} is not a MAC budget; write e.g. 5G@1920x1080 or 800M@1280x720 "
                         f"(MACs per raw frame of WIDTHxHEIGHT px)")
    value = float(m.group(1)) * _SUFFIX[m.group(2).lower()]
    if not value > 0 or not math.isfinite(value):
        raise DarkcError(f"--target-macs {text!r}: the MAC budget must be positive")
    res = parse_resolution(m.group(3), "--target-macs resolution") if m.group(3) else (1920, 1080)
    return value, res


def packed_shape(cfa: str, resolution: tuple[int, int], channels: int | None = None) -> tuple[int, int, int]:
    """Packed input ``(C, H, W)`` of a raw frame of ``resolution = (W, H)`` px (before padding); ``channels``
    overrides C (a model's ``in_channels``, e.g. with the noise-std channel), default the CFA's."""
    from darkc.data import cfa as cfa_mod

    w, h = resolution
    s = cfa_mod.scale(cfa)
    if w < s or h < s:
        raise DarkcError(f"frame {w}x{h} is smaller than one {cfa} packing tile")
    return channels or cfa_mod.channels(cfa), h // s, w // s


def padded_hw(raw_wh: tuple[int, int], cfa: str, multiple: int = DEFAULT_MULTIPLE) -> tuple[int, int]:
    """Packed ``(h, w)`` a raw ``(W, H)`` frame runs at: packed, then padded up to ``multiple``."""
    _, h, w = packed_shape(cfa, raw_wh)
    return round_up(h, multiple), round_up(w, multiple)

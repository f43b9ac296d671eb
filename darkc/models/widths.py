"""Checking the widths of a U-Net spec: ``widths`` (one per level) and ``channels`` (one per width layer), shared by
the built-in architectures' normalisers."""
from __future__ import annotations

from typing import Callable

from darkc.errors import DarkcError


def is_pos_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def normalize_level_widths(spec: dict, where: str, *, default_widths, width_layers, to_channels: Callable,
                           to_widths: Callable, levels: str) -> dict:
    """Fill and check ``spec["widths"]`` (``len(default_widths)`` positive ints; ``levels`` says what they are in
    the error) and ``spec["channels"]`` (exactly ``width_layers``). ``channels`` wins when both are given;
    ``widths`` is then rewritten from it by ``to_widths`` (None when the per-layer widths are uneven)."""
    widths = spec.get("widths")
    if widths is not None and (not isinstance(widths, (list, tuple)) or len(widths) != len(default_widths)
                               or not all(is_pos_int(w) for w in widths)):
        raise DarkcError(f"{where}: field 'widths' is {widths!r}; it needs {len(default_widths)} positive integers "
                         f"({levels}), e.g. {list(default_widths)}")
    channels = spec.get("channels")
    if channels is None:
        channels = to_channels(widths if widths is not None else default_widths)
    else:
        if not isinstance(channels, dict):
            raise DarkcError(f"{where}: field 'channels' must be an object mapping each of {list(width_layers)} "
                             f"to a positive integer")
        missing = [n for n in width_layers if n not in channels]
        unknown = [n for n in channels if n not in width_layers]
        if missing or unknown:
            raise DarkcError(f"{where}: field 'channels' lacks {missing} and has unknown {unknown}; it needs exactly "
                             f"the layers {list(width_layers)}")
        bad = {n: c for n, c in channels.items() if not is_pos_int(c)}
        if bad:
            raise DarkcError(f"{where}: field 'channels' has non-positive or non-integer widths {bad}")
        channels = {n: channels[n] for n in width_layers}
    spec["channels"] = channels
    spec["widths"] = to_widths(channels)
    return spec


def check_layer_channels(channels: dict, width_layers) -> None:
    """ValueError unless ``channels`` maps exactly ``width_layers`` to positive ints (a network constructor's check)."""
    missing = [n for n in width_layers if n not in channels]
    unknown = [n for n in channels if n not in width_layers]
    if missing or unknown:
        raise ValueError(f"channels must have exactly the keys {list(width_layers)}; "
                         f"missing {missing}, unknown {unknown}")
    bad = {n: c for n, c in channels.items() if not is_pos_int(c)}
    if bad:
        raise ValueError(f"channels must be positive integers, got {bad}")

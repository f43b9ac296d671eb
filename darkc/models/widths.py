"""Checks the built-in U-Nets share: the widths of a spec, ``widths`` (one per level) and ``channels`` (one per width
layer), in their normalisers and constructors, and the output kind in their constructors."""
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
        problem = channels_problem(channels, width_layers)
        if problem:
            raise DarkcError(f"{where}: field {problem}")
        channels = {n: channels[n] for n in width_layers}
    spec["channels"] = channels
    spec["widths"] = to_widths(channels)
    return spec


def channels_problem(channels, width_layers) -> str | None:
    """What is wrong with ``channels`` as the widths of exactly ``width_layers`` (positive ints), as a phrase that
    starts with ``'channels'``; None when nothing is."""
    if not isinstance(channels, dict):
        return f"'channels' must be an object mapping each of {list(width_layers)} to a positive integer"
    missing = [n for n in width_layers if n not in channels]
    unknown = [n for n in channels if n not in width_layers]
    if missing or unknown:
        return f"'channels' lacks {missing} and has unknown {unknown}; it needs exactly the layers {list(width_layers)}"
    bad = {n: c for n, c in channels.items() if not is_pos_int(c)}
    if bad:
        return f"'channels' has non-positive or non-integer widths {bad}"
    return None


def check_layer_channels(channels: dict, width_layers) -> None:
    """ValueError unless ``channels`` maps exactly ``width_layers`` to positive ints (a network constructor's check;
    a spec's is :func:`normalize_level_widths`)."""
    problem = channels_problem(channels, width_layers)
    if problem:
        raise ValueError(problem)


def check_output(output: str, scale: int, in_channels: int, raw_channels: int | None) -> int:
    """A U-Net constructor's output options: ``output`` is ``srgb`` or ``raw``, and a raw output has scale 1 and at
    most ``in_channels`` channels. Returns the raw output channels (``raw_channels``, default ``in_channels``).

    Raises:
        ValueError: naming the option and its allowed values.
    """
    if output not in ("srgb", "raw"):
        raise ValueError(f"output must be 'srgb' or 'raw', got {output!r}")
    raw_channels = raw_channels if raw_channels is not None else in_channels
    if output == "raw" and (scale != 1 or raw_channels > in_channels):
        raise ValueError(f"a raw-output U-Net has scale 1 and at most in_channels ({in_channels}) raw channels, "
                         f"got scale {scale}, raw_channels {raw_channels}")
    return raw_channels

"""The SID dataset layout: ``Sony/short/ID_NN_0.1s.ARW``, ``Sony/long/ID_00_10s.ARW`` and list files
(``Sony_train_list.txt`` ...) whose lines are ``./Sony/short/X.ARW ./Sony/long/Y.ARW ISO200 F9``.

The amplification ratio is min(long exposure / short exposure, 300), exposures read from the names.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import DarkcError
from .raw import SID_MAX_RATIO

_EXPOSURE = re.compile(r"_(\d+(?:\.\d+)?)s(?:\.[A-Za-z0-9]+)?$")


@dataclass(frozen=True)
class SIDPair:
    short: Path
    long: Path
    ratio: float
    scene: str          # the 5-digit SID scene id


def exposure_from_name(name: str | os.PathLike) -> float:
    """'10003_00_0.04s.ARW' -> 0.04 (seconds)."""
    m = _EXPOSURE.search(Path(name).name)
    if not m:
        raise DarkcError(f"cannot read an exposure time from {Path(name).name!r}: SID names end in "
                         f"'_<seconds>s.<ext>' (e.g. 10003_00_0.04s.ARW); pass --ratio instead")
    seconds = float(m.group(1))
    if seconds <= 0:
        raise DarkcError(f"exposure time in {Path(name).name!r} is {seconds} s: it must be positive; pass --ratio instead")
    return seconds


def ratio_from_names(short: str | os.PathLike, long: str | os.PathLike) -> float:
    return min(exposure_from_name(long) / exposure_from_name(short), SID_MAX_RATIO)


def read_list(list_file: str | os.PathLike, root: str | os.PathLike | None = None) -> list[SIDPair]:
    """Parse a SID list file; paths are relative to ``root`` (default: the list's folder)."""
    list_file = Path(list_file)
    if not list_file.is_file():
        raise DarkcError(f"SID list {list_file} does not exist: point --data at a folder holding e.g. Sony_test_list.txt")
    root = Path(root) if root is not None else list_file.parent
    pairs = []
    for n, line in enumerate(list_file.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 2:
            raise DarkcError(f"{list_file}:{n}: expected '<short> <long> [ISO] [F]', got {line!r}")
        short, long = root / parts[0], root / parts[1]
        pairs.append(SIDPair(short, long, ratio_from_names(short, long), Path(parts[0]).name.split("_")[0]))
    if not pairs:
        raise DarkcError(f"SID list {list_file} is empty")
    return pairs


def find_lists(root: str | os.PathLike, split: str | None = None) -> list[Path]:
    """The ``*_list.txt`` files in ``root`` (for ``split`` 'train'/'val'/'test' only those)."""
    root = Path(root)
    if not root.is_dir():
        raise DarkcError(f"data folder {root} does not exist: run `darkc synth -o {root}` or point at the SID data")
    pattern = f"*_{split}_list.txt" if split else "*_list.txt"
    return sorted(root.glob(pattern))


def load_pairs(data: str | os.PathLike, split: str | None = None) -> list[SIDPair]:
    """Pairs from a list file, or from every matching list in a SID-layout folder."""
    data = Path(data)
    if data.is_file():
        return read_list(data)
    lists = find_lists(data, split)
    if not lists and split:
        lists = find_lists(data)
    if not lists:
        raise DarkcError(f"no SID list files (*_list.txt) in {data}: run `darkc synth -o {data}` or pass the list file")
    return [p for lst in lists for p in read_list(lst)]

"""Camera profiles as TOML files (what ``darkc calibrate`` writes and ``--profile FILE`` reads).

One top-level key per :class:`~darkc.data.profiles.CameraProfile` field, tuples as arrays, plus an
optional ``[calibration]`` table (the per-ISO measurements a calibration made; kept for the record,
not part of the profile). Writing and reading are exact inverses: ``read_profile(write_profile(p))
== p`` (floats are written with Python's shortest round-tripping repr, ints stay ints).
"""
from __future__ import annotations

import dataclasses
import os
import tomllib
from pathlib import Path

import tomli_w

from ..errors import DarkcError, atomic_path
from .camera_profile import CameraProfile

FORMAT = "darkc-profile/1"


def is_profile_path(name: str) -> bool:
    """True when a ``--profile`` value names a file rather than a built-in profile."""
    return name.endswith(".toml") or os.sep in name or Path(name).is_file()


def profile_dict(profile: CameraProfile) -> dict:
    """The profile's fields as TOML-ready values (tuples -> lists)."""
    out = {"format": FORMAT}
    for f in dataclasses.fields(CameraProfile):
        v = getattr(profile, f.name)
        out[f.name] = list(v) if isinstance(v, tuple) else v
    return out


def write_profile(profile: CameraProfile, path: str | os.PathLike, calibration: dict | None = None) -> Path:
    """Write ``profile`` (and an optional ``calibration`` record) to ``path`` atomically."""
    data = profile_dict(profile)
    if calibration:
        data["calibration"] = calibration
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(tomli_w.dumps(data).encode())
    return path


def read_profile(path: str | os.PathLike) -> CameraProfile:
    """Read a profile file; every fault is one :class:`DarkcError` naming the file and the field."""
    path = Path(path)
    if not path.is_file():
        raise DarkcError(f"profile file {path} does not exist: pass a built-in profile name or a TOML written "
                         f"by 'darkc calibrate'")
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DarkcError(f"profile file {path} is not valid TOML ({' '.join(str(exc).split())}): "
                         f"write it again with 'darkc calibrate'") from None
    if data.get("format") != FORMAT:
        raise DarkcError(f"profile file {path} has format {data.get('format')!r}, expected {FORMAT!r}: "
                         f"write it again with 'darkc calibrate'")
    fields = {f.name: f for f in dataclasses.fields(CameraProfile)}
    unknown = sorted(set(data) - set(fields) - {"format", "calibration"})
    if unknown:
        raise DarkcError(f"profile file {path} has unknown field(s) {', '.join(unknown)}: "
                         f"known are {', '.join(fields)}")
    missing = [n for n, f in fields.items() if n not in data
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise DarkcError(f"profile file {path} lacks field(s) {', '.join(missing)}")
    kwargs = {}
    for name, value in data.items():
        if name not in fields:
            continue
        default = fields[name].default
        tuple_field = isinstance(value, list) or isinstance(default, tuple)
        if tuple_field and not (isinstance(value, list) and all(isinstance(v, (int, float)) for v in value)):
            raise DarkcError(f"profile file {path}: field {name} must be an array of numbers, got {value!r}")
        kwargs[name] = tuple(value) if tuple_field else value
    try:
        profile = CameraProfile(**kwargs)
        _check(profile)
    except (TypeError, ValueError) as exc:
        raise DarkcError(f"profile file {path}: {exc}") from None
    return profile


def _check(p: CameraProfile) -> None:
    if p.cfa not in ("bayer", "xtrans"):
        raise ValueError(f"cfa must be 'bayer' or 'xtrans', got {p.cfa!r}")
    if not 0 <= p.black < p.white:
        raise ValueError(f"black ({p.black}) must be below white ({p.white})")
    if len(p.xyz_to_cam) != 9:
        raise ValueError(f"xyz_to_cam needs 9 numbers (3x3, row-major), got {len(p.xyz_to_cam)}")
    if len(p.gain_range) != 2 or not 0 < p.gain_range[0] <= p.gain_range[1]:
        raise ValueError(f"gain_range must be [K_min, K_max] with 0 < K_min <= K_max, got {list(p.gain_range)}")

"""Minimal DNG writer (uncompressed CFA) readable by LibRaw/rawpy, through tifffile."""
from __future__ import annotations

import io
import os
from fractions import Fraction

import numpy as np
import tifffile

from ..errors import atomic_path
from . import cfa as cfa_mod

_SRATIONAL_DEN = 10000


def _srational(values) -> tuple:
    out: list[int] = []
    for v in values:
        out += [int(round(float(v) * _SRATIONAL_DEN)), _SRATIONAL_DEN]
    return tuple(out)


def _exposure_rational(seconds: float) -> tuple:
    f = Fraction(seconds).limit_denominator(100000)
    return (f.numerator, f.denominator)


def dng_bytes(mosaic: np.ndarray, kind: str, *, black: int, white: int, xyz_to_cam: np.ndarray,
              as_shot_neutral, exposure_time: float, iso: int = 100, model: str = "darkc synthetic",
              pattern: np.ndarray | None = None, make: str = "darkc", orientation: int = 1,
              datetime: str | None = None, noise_profile: tuple[float, float] | None = None) -> bytes:
    """Encode a uint16 mosaic (H, W) as a DNG 1.4 file and return its bytes.

    ``pattern`` is the CFA tile at the mosaic's top-left (0=R, 1=G, 2=B), default the canonical phase
    of ``kind``; another phase of the same CFA (e.g. GRBG) writes a file like a camera with that phase.
    Tags: CFA pattern and repeat size, black/white level, ColorMatrix1 (XYZ->camera, D65),
    AsShotNeutral (1 / white-balance multipliers), ExposureTime, ISO, Make/Model, Orientation (EXIF 1-8, as
    a camera held upright or turned writes it), when given DateTimeOriginal ("YYYY:MM:DD HH:MM:SS"), and with
    ``noise_profile`` = (S, O) the DNG NoiseProfile (variance = S * x + O for x the signal normalised to [0, 1]
    above black).
    """
    mosaic = np.ascontiguousarray(mosaic, dtype=np.uint16)
    pat = cfa_mod.canonical_pattern(kind) if pattern is None else np.asarray(pattern)
    if cfa_mod.cfa_kind(pat) != kind:
        raise ValueError(f"CFA pattern of shape {pat.shape} is not a {kind} pattern")
    cfa_mod.phase_offset(pat)
    n = pat.shape[0]
    if mosaic.shape[0] % n or mosaic.shape[1] % n:
        raise ValueError(f"mosaic shape {mosaic.shape} is not a whole number of {n}x{n} CFA tiles")
    extratags = [
        (50706, "B", 4, (1, 4, 0, 0), True),            # DNGVersion
        (50707, "B", 4, (1, 1, 0, 0), True),            # DNGBackwardVersion
        (271, "s", 0, make, True),                      # Make
        (272, "s", 0, model, True),                     # Model
        (50708, "s", 0, model, True),                   # UniqueCameraModel
        (33421, "H", 2, (n, n), True),                  # CFARepeatPatternDim
        (33422, "B", n * n, tuple(int(v) for v in pat.ravel()), True),  # CFAPattern
        (50710, "B", 3, (0, 1, 2), True),               # CFAPlaneColor
        (50711, "H", 1, 1, True),                       # CFALayout rectangular
        (50714, "H", 1, int(black), True),              # BlackLevel
        (50717, "H", 1, int(white), True),              # WhiteLevel
        (50721, "2i", 9, _srational(np.asarray(xyz_to_cam).ravel()), True),  # ColorMatrix1
        (50778, "H", 1, 21, True),                      # CalibrationIlluminant1 = D65
        (50728, "2I", 3, _srational(as_shot_neutral), True),  # AsShotNeutral
        (33434, "2I", 1, _exposure_rational(exposure_time), True),  # ExposureTime
        (34855, "H", 1, int(iso), True),                # ISOSpeedRatings
        (274, "H", 1, int(orientation), True),          # Orientation
    ]
    if datetime is not None:
        extratags.append((36867, "s", 0, datetime, True))   # DateTimeOriginal
    if noise_profile is not None:
        extratags.append((51041, "d", 2, tuple(float(v) for v in noise_profile), True))   # NoiseProfile
    buf = io.BytesIO()
    tifffile.imwrite(buf, mosaic, photometric=32803, extratags=extratags, compression=None,
                     metadata=None, subfiletype=0)
    return buf.getvalue()


def write_dng(path: str | os.PathLike, mosaic: np.ndarray, kind: str, **tags) -> None:
    """Write :func:`dng_bytes` to ``path`` atomically (temp file, then rename)."""
    data = dng_bytes(mosaic, kind, **tags)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)

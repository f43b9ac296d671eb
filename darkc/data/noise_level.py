"""The noise level a noise-conditioned model sees, and where it comes from for a given raw file.

A capture's noise, in darkc's normalised raw units ``x = (raw - black) / (white - black)``, is modelled as
``var(x) = gain * x + read**2`` (shot noise with a normalised system gain, plus read/row/quantisation noise
folded into one Gaussian term): the DNG ``NoiseProfile`` convention (DNG 1.3 tag 51041, pairs (S, O) with
``var = S * x + O``). After amplification by the exposure ratio ``r`` (``a = r * x``) the variance is
``A * a + B`` with ``A = r * gain`` and ``B = (r * read)**2``.

Models with ``input.noise = "std-map"`` take one channel after the packed raw: the predicted noise standard
deviation at every packed pixel, ``sqrt(A * mean_c(a) + B)`` (mean over the packed channels as the local
signal level), so the network sees both how noisy the capture is and where.

Where the level comes from, in order (:func:`level_of_file`): the file's own DNG ``NoiseProfile`` (phones'
DNGs carry it, darkc's synthetic DNGs too); a darkc camera profile matching the file's camera model, at the
file's ISO; else an estimate from the file itself (:mod:`darkc.data.noise_estimate`).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DarkcError

#: DNG tag 51041: NoiseProfile, (S, O) per CFA plane or one pair for all.
NOISE_PROFILE_TAG = 51041


@dataclass(frozen=True)
class NoiseLevel:
    """Noise of one capture in normalised raw units: ``var(x) = gain * x + read**2``."""
    gain: float
    read: float
    source: str = "given"

    def __post_init__(self):
        if not (math.isfinite(self.gain) and math.isfinite(self.read) and self.gain >= 0 and self.read >= 0):
            raise DarkcError(f"noise level from {self.source} is invalid (gain {self.gain}, read {self.read}): "
                             f"both must be finite and non-negative")

    def amplified(self, ratio: float) -> tuple[float, float]:
        """``(A, B)``: variance of the ratio-amplified input ``a`` is ``A * a + B``."""
        return float(ratio) * self.gain, (float(ratio) * self.read) ** 2

    def as_dng(self) -> tuple[float, float]:
        """The DNG NoiseProfile pair (S, O)."""
        return self.gain, self.read ** 2


def level_of_profile(profile, k: float, source: str | None = None) -> NoiseLevel:
    """The calibrated level of ``profile`` at system gain ``k`` (DN / electron): median read and row sigmas of its
    log-linear fits plus quantisation (1/12 DN^2), in normalised units."""
    span = float(profile.white - profile.black)
    read_dn2 = profile.read_sigma(k) ** 2 + profile.row_sigma(k) ** 2 + 1.0 / 12.0
    return NoiseLevel(k / span, math.sqrt(read_dn2) / span, source or f"profile {profile.name} at K={k:.3g}")


def std_map(packed: np.ndarray, ratio: float, level: NoiseLevel) -> np.ndarray:
    """(C, h, w) amplified packed input -> (1, h, w) float32 predicted noise std ``sqrt(A * mean_c + B)``."""
    a_coef, b_coef = level.amplified(ratio)
    mean = np.clip(np.asarray(packed, np.float32).mean(axis=-3, keepdims=True), 0.0, 1.0)
    return np.sqrt(a_coef * mean + b_coef).astype(np.float32)


def condition(packed: np.ndarray, ratio: float, level: NoiseLevel | None, noise_input: str = "std-map") -> np.ndarray:
    """The network input for a model whose ``input.noise`` is ``noise_input``: the amplified packed raw, with the
    noise-std channel appended for ``"std-map"``; unchanged for ``"none"``."""
    if noise_input == "none":
        return packed
    if noise_input != "std-map":
        raise DarkcError(f"unknown noise input {noise_input!r}: use 'none' or 'std-map'")
    if level is None:
        raise DarkcError("this model needs the capture's noise level and none was given")
    return np.concatenate([packed, std_map(packed, ratio, level)], axis=-3)


# ---------------------------------------------------------------- where a file's level comes from
def _tiff_tags(path: Path) -> dict:
    """IFD0 + EXIF tags of a TIFF-based raw (DNG, ARW, NEF, CR2, ...) by code; {} for other containers."""
    import tifffile

    try:
        with tifffile.TiffFile(str(path)) as tif:
            tags = {t.code: t.value for t in tif.pages[0].tags.values()}
            exif = tags.get(34665)
            if isinstance(exif, dict):
                tags.update({tifffile.TIFF.TAGS.get(k, k) if isinstance(k, str) else k: v for k, v in exif.items()})
            return tags
    except Exception:  # noqa: BLE001 - not TIFF-based (RAF, CR3, ...) or unreadable metadata: no tags
        return {}


def _iso(tags: dict) -> float | None:
    for key in (34855, "ISOSpeedRatings", "PhotographicSensitivity"):
        v = tags.get(key)
        if v is not None:
            v = v[0] if isinstance(v, (tuple, list)) else v
            try:
                return float(v) if float(v) > 0 else None
            except (TypeError, ValueError):
                return None
    return None


def level_from_dng_tag(tags: dict, source: str) -> NoiseLevel | None:
    """The DNG NoiseProfile (first plane's pair; planes of one sensor share the gain) or None."""
    v = tags.get(NOISE_PROFILE_TAG)
    if v is None:
        return None
    vals = [float(x) for x in (v if isinstance(v, (tuple, list)) else [v])]
    if len(vals) < 2 or not all(math.isfinite(x) for x in vals[:2]) or vals[0] < 0 or vals[1] < 0:
        raise DarkcError(f"{source}: its DNG NoiseProfile tag {vals} is malformed; remove the tag or pass --noise")
    return NoiseLevel(vals[0], math.sqrt(vals[1]), f"DNG NoiseProfile of {Path(source).name}")


def profile_for_camera(model: str | None):
    """The darkc camera profile whose recorded camera model is ``model`` (darkc's synthetic DNGs), or None."""
    from .profiles import PROFILES

    if not model:
        return None
    model = str(model).strip("\x00 ")
    for prof in PROFILES.values():
        if prof.model == model:
            return prof
    return None


def level_of_file(path: str | os.PathLike, profile=None) -> NoiseLevel:
    """The noise level of a raw file: DNG NoiseProfile, else ``profile`` (or the darkc profile of the file's camera
    model) at the file's ISO, else an estimate from the pixels (:func:`darkc.data.noise_estimate.estimate_noise`)."""
    path = Path(path)
    tags = _tiff_tags(path)
    found = level_from_dng_tag(tags, str(path))
    if found is not None:
        return found
    prof = profile or profile_for_camera(tags.get(272))
    iso = _iso(tags)
    if prof is not None and iso is not None:
        return level_of_profile(prof, prof.gain_of_iso(iso), f"profile {prof.name} at ISO {iso:g}")
    from .noise_estimate import estimate_noise_file

    est = estimate_noise_file(path)
    return NoiseLevel(float(est.gain), float(est.read), f"estimated from {path.name} ({est.source})")

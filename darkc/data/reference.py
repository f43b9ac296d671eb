"""What defines darkc's reference validation set and its out-of-distribution twin: photos, sensor, size, seed.

It lives with the data (``darkc synth --split val|ood`` writes these scenes); :mod:`darkc.evaluate` builds frames,
files and digests from it.
"""
from __future__ import annotations

from ..errors import DarkcError
from .profiles import OOD_PROFILE, get_profile
from .sources import validation_images

REFERENCE_SEED = 2026
REFERENCE_SIZE = {"bayer": 768, "xtrans": 1152}


def reference_scenes(cfa: str = "bayer", split: str = "val"):
    """(CleanImage list, profile, size, seed) that define the reference validation set (``split="val"``) or the
    out-of-distribution set (``split="ood"``: the same held-out photos, size and seeds on the sensor that no
    training pool contains, :data:`darkc.data.profiles.OOD_PROFILE`)."""
    if split == "ood":
        if OOD_PROFILE.get(cfa) is None:
            raise DarkcError(f"there is no held-out {cfa} sensor: the out-of-distribution set is Bayer only")
        return validation_images(), get_profile(OOD_PROFILE[cfa], cfa), REFERENCE_SIZE[cfa], REFERENCE_SEED
    return validation_images(), get_profile(None, cfa), REFERENCE_SIZE[cfa], REFERENCE_SEED

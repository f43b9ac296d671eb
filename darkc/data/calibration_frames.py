"""A synthetic calibration shoot from a known profile: the frames ``darkc calibrate`` takes, with the truth.

Dark frames (no light) and flat-field pairs (a uniform target with 20 % vignetting, several exposures),
at each ISO, through the profile's noise model (:func:`darkc.data.noise.expose`) at the median read/row
sigmas of K (a real sensor's noise does not jitter per capture like the training augmentation's). ISO
maps to K as :func:`darkc.data.synth.make_pair` maps it: ``K = gain_range[0] * ISO / 100``.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from . import cfa as cfa_mod
from .dng import write_dng
from .noise import expose
from .profiles import CameraProfile


def iso_gain(profile: CameraProfile, iso: int) -> float:
    return profile.gain_range[0] * iso / 100.0


def write_shoot(out: str | os.PathLike, profile: CameraProfile, isos=(100, 400, 1200), *, size=(256, 384),
                darks: int = 2, levels=(0.05, 0.2, 0.5), seed: int = 0, dark_isos=None) -> list[Path]:
    """Write ``darks`` dark frames per ISO (``dark_isos``, default all) and one flat pair per level (fraction of
    white - black at the image centre) per ISO as DNGs into ``out``; returns the paths."""
    out = Path(out)
    rng = np.random.default_rng(seed)
    t = cfa_mod.tile(profile.cfa)
    h, w = size[0] // t * t, size[1] // t * t           # whole CFA tiles
    yy, xx = np.mgrid[0:h, 0:w]
    r2 = ((yy - h / 2) ** 2 + (xx - w / 2) ** 2) / ((h / 2) ** 2 + (w / 2) ** 2)
    flat = 1.0 - 0.2 * r2                                 # vignetting
    span = float(profile.white - profile.black)
    tags = dict(black=profile.black, white=profile.white, xyz_to_cam=profile.xyz_to_cam_matrix,
                as_shot_neutral=(0.5, 1.0, 0.6), model=profile.model)
    paths = []
    for iso in isos:
        k = iso_gain(profile, iso)
        sig = (profile.read_sigma(k), profile.row_sigma(k))
        for i in range(darks if dark_isos is None or iso in dark_isos else 0):
            p = out / f"dark_iso{iso}_{i}.dng"
            write_dng(p, expose(np.zeros((h, w)), k, profile, rng, sigmas=sig), profile.cfa,
                      exposure_time=1 / 100, iso=iso, **tags)
            paths.append(p)
        for level in levels:
            for j in range(2):
                p = out / f"flat_iso{iso}_{level:g}_{j}.dng"
                write_dng(p, expose(flat * level * span, k, profile, rng, sigmas=sig), profile.cfa,
                          exposure_time=level / 10, iso=iso, **tags)
                paths.append(p)
    return paths

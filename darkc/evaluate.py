"""``darkc eval``: PSNR/SSIM of any model (artifact, ONNX, TFLite) on the reference validation set or a
SID-layout folder, per ratio and overall, and the classical baselines on the same pairs.

The reference validation set: pip-shipped photos held out from training (sporco kodim23/tulips,
skimage chelsea/coffee) and 4 held-out dead-leaves images, longer side 768 px (Bayer) / 1152 px
(X-Trans), ratios 100/250/300, scene seeds from ``REFERENCE_SEED``. ``darkc synth --split val``
writes exactly these pairs as DNG files.
"""
from __future__ import annotations

import numpy as np

from .data import cfa as cfa_mod
from .data.profiles import get_profile
from .data.raw import amplify
from .data.sources import validation_images
from .data.synth import SID_RATIOS, fit_size, make_pair, normalise

REFERENCE_SEED = 2026
REFERENCE_SIZE = {"bayer": 768, "xtrans": 1152}


def reference_scenes(cfa: str = "bayer"):
    """(CleanImage list, profile, size, seed) that define the reference validation set."""
    return validation_images(), get_profile(None, cfa), REFERENCE_SIZE[cfa], REFERENCE_SEED


def reference_frames(cfa: str = "bayer", ratios=SID_RATIOS, limit: int | None = None):
    """The reference validation set in memory: list of (name, amplified packed input, target (3,H,W), ratio)."""
    from .data.datasets import FullFrames

    images, profile, size, seed = reference_scenes(cfa)
    items = []
    for i, im in enumerate(images[:limit] if limit else images):
        clean = fit_size(im.load(), size, cfa)
        target = None
        for j, ratio in enumerate(ratios):
            pair = make_pair(clean, profile, ratio, seed * 100003 + i)
            if target is None:
                target = np.ascontiguousarray(pair.target().transpose(2, 0, 1))
            inp = amplify(cfa_mod.pack(normalise(pair.short, profile), cfa), ratio)
            items.append((f"{10001 + i:05d}_{j:02d} ({im.name})", inp, target, float(ratio)))
    return FullFrames(items)

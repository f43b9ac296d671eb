"""Synthetic SID-style low-light raw pairs from clean sRGB images.

One function, :func:`make_pair`, makes every pair, whether it is written to DNG files by
``darkc synth`` or generated on the fly for training, so both give the same pairs for the same
image, seed and ratio. The target is what SID trains on: the long-exposure raw rendered by LibRaw.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from ..errors import DarkcError, atomic_path
from .dng import write_dng
from .sources import CleanImage

from . import cfa as cfa_mod
from .noise import expose, sample_gain
from .profiles import CameraProfile
from .render import render_mosaic
from .unprocess import UnprocessParams, sample_params, unprocess

SID_RATIOS = (100, 250, 300)
DEFAULT_SIZE = {"bayer": 768, "xtrans": 1152}
# LibRaw renders X-Trans only from 516 px per side up (its demosaic works on 512-px tiles); smaller
# X-Trans scenes are enlarged to reach it
XTRANS_MIN_SIDE = 516
# SID's short exposure times for a 10 s long exposure; the ratio read back from names is min(10/t, 300)
_SHORT_EXPOSURE = {100: 0.1, 250: 0.04, 300: 0.033}


def short_exposure_time(long_exposure: float, ratio: float) -> float:
    if long_exposure == 10.0 and ratio in _SHORT_EXPOSURE:
        return _SHORT_EXPOSURE[ratio]
    return long_exposure / ratio


@dataclass
class RawPair:
    """A synthetic pair. Mosaics are canonical-phase uint16 DN (black level included)."""
    short: np.ndarray
    long: np.ndarray
    ratio: float
    short_exposure: float
    long_exposure: float
    gain: float                 # K, DN per electron
    iso: int
    params: UnprocessParams
    profile: CameraProfile

    def noise_level(self):
        """The calibrated noise level of both exposures (the profile's median fits at this pair's gain)."""
        from .noise_level import level_of_profile

        return level_of_profile(self.profile, self.gain)

    def dng_tags(self, exposure: float) -> dict:
        return dict(black=self.profile.black, white=self.profile.white,
                    xyz_to_cam=self.profile.xyz_to_cam_matrix, as_shot_neutral=self.params.as_shot_neutral,
                    exposure_time=exposure, iso=self.iso, model=self.profile.model,
                    noise_profile=self.noise_level().as_dng())

    def target(self) -> np.ndarray:
        """The long exposure rendered by LibRaw, (H, W, 3) float32 sRGB in [0, 1]."""
        return render_mosaic(self.long, self.profile.cfa, **self.dng_tags(self.long_exposure))


def make_pair(clean_srgb: np.ndarray, profile: CameraProfile, ratio: float, seed: int) -> RawPair:
    """Clean (H, W, 3) sRGB in [0, 1] -> short/long raw pair with physical noise, deterministic in ``seed``.

    The image is cut to whole CFA tiles. Long exposure: unprocessed scene scaled to the sensor's range,
    with shot/read/row noise at a sampled system gain K. Short exposure: the same scene with 1/ratio
    of the light at the same K (same ISO), so amplifying it by ``ratio`` matches the long exposure.
    The scene (colour parameters, K, long-exposure noise) depends on ``seed`` only, so the pairs of
    one scene at several ratios share their long exposure, as in SID.
    """
    scene_rng = np.random.default_rng([seed, 0])
    img = cfa_mod.crop_to_tiles(np.moveaxis(np.asarray(clean_srgb), -1, 0), profile.cfa)
    img = np.moveaxis(img, 0, -1)
    params = sample_params(scene_rng, profile)
    linear = unprocess(img, params)
    signal = cfa_mod.mosaic(linear, profile.cfa) * float(profile.white - profile.black)
    k = sample_gain(scene_rng, profile)
    iso = profile.iso_of_gain(k)
    long_raw = expose(signal, k, profile, scene_rng)
    short_rng = np.random.default_rng([seed, 1, int(round(ratio * 1000))])
    short_raw = expose(signal / ratio, k, profile, short_rng)
    return RawPair(short=short_raw, long=long_raw, ratio=float(ratio),
                   short_exposure=short_exposure_time(profile.long_exposure, ratio),
                   long_exposure=profile.long_exposure, gain=k, iso=iso, params=params, profile=profile)


def normalise(mosaic: np.ndarray, profile: CameraProfile) -> np.ndarray:
    """uint16 DN -> float32 in [0, 1]: (raw - black) / (white - black), clipped (what read_raw does)."""
    span = float(profile.white - profile.black)
    return np.clip((mosaic.astype(np.float32) - profile.black) / span, 0.0, 1.0)


def fit_size(img: np.ndarray, size: int | None, cfa: str) -> np.ndarray:
    """Resize so the longer side is ``size`` (None: keep), then cut to whole CFA tiles.

    X-Trans images are enlarged where needed so both sides reach LibRaw's X-Trans minimum (516 px).
    """
    h, w = img.shape[:2]
    s = size / max(h, w) if size else 1.0
    if cfa == "xtrans":
        s = max(s, (XTRANS_MIN_SIDE + 6) / min(h, w))
    if abs(s - 1) > 1e-9:
        img = cv2.resize(img, (max(6, round(w * s)), max(6, round(h * s))),
                         interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
    t = cfa_mod.tile(cfa)
    return img[: img.shape[0] // t * t, : img.shape[1] // t * t]


def write_dataset(out: str | os.PathLike, images: list[CleanImage], profile: CameraProfile, *,
                  ratios=SID_RATIOS, seed: int = 0, size: int | None = None, id_start: int = 10001,
                  split: str = "test", progress: bool = True) -> Path:
    """Write SID-layout DNG pairs: ``<Cam>/short/ID_NN_<t>s.dng``, ``<Cam>/long/ID_00_<T>s.dng`` and
    ``<Cam>_<split>_list.txt``, plus ``synth.json`` recording sources, profile and seeds.

    Scene ``i`` uses seed ``seed * 100003 + i``; each ratio gives one short exposure of that scene.
    Files are written atomically; the list file is written last.
    """
    out = Path(out)
    cam = "Sony" if profile.cfa == "bayer" else "Fuji"
    (out / cam / "short").mkdir(parents=True, exist_ok=True)
    (out / cam / "long").mkdir(parents=True, exist_ok=True)
    lines, record = [], []
    for i, im in enumerate(tqdm(images, desc="darkc synth", unit="scene", disable=not progress)):
        sid = id_start + i
        clean = fit_size(im.load(), size, profile.cfa)
        scene_seed = seed * 100003 + i
        for j, ratio in enumerate(ratios):
            pair = make_pair(clean, profile, ratio, scene_seed)
            long_name = f"{cam}/long/{sid:05d}_00_{_fmt(pair.long_exposure)}s.dng"
            short_name = f"{cam}/short/{sid:05d}_{j:02d}_{_fmt(pair.short_exposure)}s.dng"
            if j == 0:
                write_dng(out / long_name, pair.long, profile.cfa, **pair.dng_tags(pair.long_exposure))
            write_dng(out / short_name, pair.short, profile.cfa, **pair.dng_tags(pair.short_exposure))
            lines.append(f"./{short_name} ./{long_name} ISO{pair.iso} F8")
        record.append({"id": f"{sid:05d}", "source": im.name, "licence": im.licence, "seed": scene_seed,
                       "size": list(clean.shape[:2]), "gain_dn_per_e": pair.gain, "iso": pair.iso})
    meta = {"profile": profile.name, "cfa": profile.cfa, "ratios": list(ratios), "seed": seed,
            "split": split, "scenes": record}
    with atomic_path(out / "synth.json") as tmp:
        tmp.write_text(json.dumps(meta, indent=1))
    list_file = out / f"{cam}_{split}_list.txt"
    with atomic_path(list_file) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return list_file


def _fmt(seconds: float) -> str:
    return f"{seconds:g}"


def synthesize(out: str | os.PathLike, *, count: int | None = None, size: int | None = None, seed: int = 0,
               cfa: str = "bayer", profile: str | None = None, images: list[str] | None = None,
               split: str = "test", ratios=SID_RATIOS, progress: bool = True) -> dict:
    """``darkc synth``: write SID-layout DNG pairs.

    Sources: the user's ``images`` folders if given; else the built-in photos of the split (test and val
    use the held-out photos, train the training photos) topped up with dead-leaves images to ``count``.
    ``split='val'`` writes the project's reference validation set exactly (fixed images, size and seed);
    ``split='ood'`` the out-of-distribution set (the same scenes on the sensor held out of training).
    """
    from . import sources
    from .profiles import get_profile

    prof = get_profile(profile, cfa)
    if split in ("val", "ood") and not images:
        from .reference import reference_scenes
        imgs, prof, size, seed = reference_scenes(cfa, split)
        if count:
            imgs = imgs[:count]
    else:
        size = size or DEFAULT_SIZE[cfa]
        if images:
            imgs = [im for f in images for im in sources.folder_images(f)]
        else:
            imgs = sources.builtin_photos("train" if split == "train" else "val")
            n_dl = max(0, (count or len(imgs)) - len(imgs))
            imgs += sources.dead_leaves_images(n_dl, (size * 2 // 3, size), "val" if split != "train" else "train")
        if count is not None:
            if count <= 0:
                raise DarkcError(f"--count must be positive, got {count}")
            imgs = imgs[:count]
    if size is not None and size < 64:
        raise DarkcError(f"--size {size} is too small: use at least 64 px")
    list_file = write_dataset(out, imgs, prof, ratios=ratios, seed=seed, size=size, split=split, progress=progress)
    return {"scenes": len(imgs), "pairs": len(imgs) * len(ratios), "list": str(list_file), "profile": prof.name}

"""Torch datasets of (packed amplified short exposure, LibRaw-rendered long exposure) patches.

Both are index-deterministic: item ``i`` is a pure function of (seed, i), so training resumes and
distributed ranks see exactly the samples a single process would.
"""
from __future__ import annotations

from collections import OrderedDict

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import DarkcError
from . import cfa as cfa_mod
from .profiles import CameraProfile
from .raw import amplify, read_raw, render_raw
from .sid import SIDPair
from .sources import CleanImage
from .synth import SID_RATIOS, make_pair, normalise

# photos larger than this (longer side, px) are kept downscaled in memory
_MAX_SIDE = 1536


def patch_multiple(cfa: str) -> int:
    """Raw patch sides must be multiples of this: whole CFA tiles and packed sizes divisible by 16."""
    return 16 * cfa_mod.scale(cfa) * (2 if cfa == "xtrans" else 1)


def check_patch(patch: int, cfa: str) -> int:
    m = patch_multiple(cfa)
    if patch < m or patch % m:
        raise DarkcError(f"--patch {patch} must be a positive multiple of {m} raw pixels for {cfa} "
                         f"(whole CFA tiles, packed size divisible by 16); try {max(m, patch // m * m)}")
    return patch


def _augment(img: np.ndarray, code: int) -> np.ndarray:
    """One of 8 flips/transposes of an (H, W, C) image (applied before mosaicking: CFA phase is kept)."""
    if code & 1:
        img = img[:, ::-1]
    if code & 2:
        img = img[::-1]
    if code & 4:
        img = img.transpose(1, 0, 2)
    return np.ascontiguousarray(img)


class SyntheticPairs(Dataset):
    """Synthetic pairs generated on the fly from clean images with :func:`darkc.data.make_pair`.

    Item: dict(input=(C[+1], p/s, p/s) float32 amplified and clipped [with the noise-std channel], target, ratio);
    the target is the LibRaw-rendered long exposure (3, p, p) for ``target="srgb"``, the long exposure's packed
    raw (C, p/s, p/s), normalised like the input, for ``target="raw"``.

    ``profile`` is one camera profile or several of one CFA (a sensor pool): each item then draws its sensor.
    """

    def __init__(self, images: list[CleanImage], profile: CameraProfile | list[CameraProfile], patch: int = 512,
                 ratios=SID_RATIOS, seed: int = 0, length: int = 10**9, cache: int = 128, target: str = "srgb",
                 noise_input: str = "none"):
        if not images:
            raise DarkcError("no clean images to synthesise from: pass --images DIR or use the built-in set")
        profiles = list(profile) if isinstance(profile, (list, tuple)) else [profile]
        if not profiles or len({p.cfa for p in profiles}) != 1:
            raise DarkcError(f"a sensor pool needs profiles of one CFA, got {[p.name for p in profiles]}")
        if target not in ("srgb", "raw"):
            raise DarkcError(f"unknown training target {target!r}: use 'srgb' or 'raw'")
        self.images, self.profiles, self.profile = images, profiles, profiles[0]
        self.target_kind, self.noise_input = target, noise_input
        self.patch = check_patch(patch, profiles[0].cfa)
        self.ratios, self.seed, self.length = tuple(ratios), seed, length
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cache_size = cache

    def __len__(self) -> int:
        return self.length

    def _image(self, k: int) -> np.ndarray:
        if k in self._cache:
            self._cache.move_to_end(k)
            return self._cache[k]
        img = self.images[k].load()
        h, w = img.shape[:2]
        if max(h, w) > _MAX_SIDE:
            s = _MAX_SIDE / max(h, w)
            img = cv2.resize(img, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
        self._cache[k] = img
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return img

    def __getitem__(self, i: int) -> dict:
        rng = np.random.default_rng([self.seed, i, 7])
        img = self._image(int(rng.integers(len(self.images))))
        p = self.patch
        # random down-scaling (photos are sharper than sensor data at native size) and crop
        scale = rng.uniform(max(p / min(img.shape[:2]), 0.5), 1.0) if min(img.shape[:2]) > p else p / min(img.shape[:2])
        if abs(scale - 1.0) > 1e-3:
            h, w = img.shape[:2]
            sh, sw = max(p, round(h * scale)), max(p, round(w * scale))
            y0 = int(rng.integers(0, h - min(h, round(sh / scale)) + 1))
            x0 = int(rng.integers(0, w - min(w, round(sw / scale)) + 1))
            region = img[y0:y0 + round(sh / scale), x0:x0 + round(sw / scale)]
            img = cv2.resize(region, (sw, sh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
        y = int(rng.integers(0, img.shape[0] - p + 1))
        x = int(rng.integers(0, img.shape[1] - p + 1))
        crop = _augment(img[y:y + p, x:x + p], int(rng.integers(8)))
        ratio = float(self.ratios[int(rng.integers(len(self.ratios)))])
        scene_seed = int(rng.integers(2**62))
        # one profile: the random stream is the single-sensor one (items stay as they were before pools)
        prof = self.profiles[int(rng.integers(len(self.profiles)))] if len(self.profiles) > 1 else self.profile
        pair = make_pair(crop, prof, ratio, seed=scene_seed)
        return model_io(pair, self.target_kind, self.noise_input)


def isp_matrix(pair) -> np.ndarray:
    """(3, C) float32 linear map from the pair's packed raw channels to linear sRGB, as LibRaw renders the file: mean
    of each colour's CFA channels, the as-shot white balance (normalised to its smallest gain), and the inverse of
    the camera's sRGB-to-camera matrix (rows summing to 1, as in unprocessing)."""
    cfa = pair.profile.cfa
    colours = cfa_mod.channel_colours(cfa)
    avg = np.zeros((3, len(colours)))
    for ch, colour in enumerate(colours):
        avg[colour, ch] = 1.0
    avg /= avg.sum(axis=1, keepdims=True)
    wb = np.array([pair.params.red_gain, 1.0, pair.params.blue_gain])
    wb /= wb.min()
    return (np.linalg.inv(pair.params.rgb_to_cam) @ np.diag(wb) @ avg).astype(np.float32)


def model_io(pair, target: str | None = "srgb", noise_input: str = "none") -> dict:
    """A synthetic :class:`RawPair` as a training/validation item: amplified packed input (with the noise channel
    the model takes) and the target of the model's output kind (none for ``target=None``)."""
    from .noise_level import condition

    cfa = pair.profile.cfa
    inp = amplify(cfa_mod.pack(normalise(pair.short, pair.profile), cfa), pair.ratio)
    inp = condition(inp, pair.ratio, pair.noise_level(), noise_input)
    item = {"input": torch.from_numpy(np.ascontiguousarray(inp, np.float32)), "ratio": torch.tensor(pair.ratio)}
    if target is not None:
        tgt = cfa_mod.pack(normalise(pair.long, pair.profile), cfa) if target == "raw" else \
            pair.target().transpose(2, 0, 1)
        item["target"] = torch.from_numpy(np.ascontiguousarray(tgt, np.float32))
        if target == "raw":
            item["isp"] = torch.from_numpy(isp_matrix(pair))
    return item


def model_pairs(spec: dict, images: list[CleanImage], patch: int, seed: int = 0, ratios=None,
                targets: bool = True, profile: str | None = None) -> SyntheticPairs:
    """Synthetic pairs as ``darkc train`` makes them by default for the model of ``spec``: its noise input, its
    output kind as the target, drawn from the sensors it trains on (the CFA's pool for raw-output models, the CFA's
    default sensor for sRGB ones; see :class:`darkc.train.DataOptions`).

    ``targets=False``: only the inputs are used (calibration, parity, data-free fine-tuning); the target is then the
    packed long exposure whatever the kind, which costs no LibRaw render and leaves the inputs unchanged.
    ``profile`` (a name, 'pool' or a profile file) replaces the default sensors.
    """
    from ..models.builder import io_kind
    from .profiles import training_profiles
    from .synth import SID_RATIOS

    output, noise = io_kind(spec)
    profiles = training_profiles(profile, spec["cfa"], pool=profile is None and output == "raw")
    return SyntheticPairs(images, profiles, patch=patch, ratios=SID_RATIOS if ratios is None else ratios, seed=seed,
                          target=output if targets else "raw", noise_input=noise)


class SIDPatches(Dataset):
    """Random patches from SID-layout pairs (real SID data or ``darkc synth`` output).

    Decoded short exposures and rendered long exposures are cached (LRU) since many pairs share a long
    exposure. Flips/transposes are applied to packed input and target together, as SID does.
    """

    def __init__(self, pairs: list[SIDPair], patch: int = 512, seed: int = 0, length: int = 10**9,
                 cache: int = 64):
        if not pairs:
            raise DarkcError("no SID pairs to train on: check the list file")
        self.pairs, self.seed, self.length = pairs, seed, length
        self.cfa = read_raw(pairs[0].short).cfa
        self.patch = check_patch(patch, self.cfa)
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache

    def __len__(self) -> int:
        return self.length

    def _get(self, key: str, fn):
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        val = fn()
        self._cache[key] = val
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return val

    def __getitem__(self, i: int) -> dict:
        rng = np.random.default_rng([self.seed, i, 11])
        pair = self.pairs[int(rng.integers(len(self.pairs)))]
        packed = self._get(str(pair.short), lambda: read_raw(pair.short).packed())
        target = self._get(str(pair.long), lambda: render_raw(pair.long).transpose(2, 0, 1))
        s = cfa_mod.scale(self.cfa)
        ps = self.patch // s
        h, w = packed.shape[1:]
        if h < ps or w < ps:
            raise DarkcError(f"{pair.short} is smaller than the training patch ({self.patch} px): lower --patch")
        y = int(rng.integers(0, h - ps + 1))
        x = int(rng.integers(0, w - ps + 1))
        inp = amplify(packed[:, y:y + ps, x:x + ps], pair.ratio)
        tgt = target[:, y * s:(y + ps) * s, x * s:(x + ps) * s]
        code = int(rng.integers(8))
        if code & 1:
            inp, tgt = inp[:, :, ::-1], tgt[:, :, ::-1]
        if code & 2:
            inp, tgt = inp[:, ::-1], tgt[:, ::-1]
        if code & 4:
            inp, tgt = inp.transpose(0, 2, 1), tgt.transpose(0, 2, 1)
        return {"input": torch.from_numpy(np.ascontiguousarray(inp)),
                "target": torch.from_numpy(np.ascontiguousarray(tgt)), "ratio": torch.tensor(pair.ratio)}


class FullFrames(Dataset):
    """Whole validation frames: SID pairs from disk, or in-memory synthetic pairs (packed input, target)."""

    def __init__(self, items: list[tuple[str, np.ndarray, np.ndarray, float]]):
        self.items = items   # (name, amplified packed input, target (3, H, W), ratio)

    @classmethod
    def from_pairs(cls, pairs: list[SIDPair]) -> "FullFrames":
        items = []
        targets: dict[str, np.ndarray] = {}
        for p in pairs:
            frame = read_raw(p.short)
            if str(p.long) not in targets:
                targets[str(p.long)] = render_raw(p.long).transpose(2, 0, 1)
            items.append((p.short.name, amplify(frame.packed(), p.ratio), targets[str(p.long)], p.ratio))
        return cls(items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        return self.items[i]

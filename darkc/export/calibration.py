"""INT8 calibration samples: packed raw model inputs, synthetic or cropped from a folder of dark raw files.

Both INT8 paths take them: ONNX Runtime QDQ (:mod:`darkc.export.onnx_int8`) and TFLite
(:mod:`darkc.export.tflite`); :mod:`darkc.export.parity` draws its synthetic check inputs here too.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from darkc.data.files import example_exts, find_raw_files
from darkc.errors import DarkcError

#: Default calibration: samples and packed side of each sample (synthetic or crops of raw files).
DEFAULT_SAMPLES = 32
DEFAULT_CALIB_SIZE = 256


def check_count(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise DarkcError(f"{what} is {value!r}; pass a positive integer")
    return int(value)


# ---------------------------------------------------------------- calibration data
def synthetic_inputs(cfa: str, samples: int, size: tuple[int, int], seed: int = 0, split: str = "train",
                     spec: dict | None = None) -> tuple[list[np.ndarray], dict]:
    """``samples`` inputs (1, C[+1], h, w) of the model of ``spec`` (default: a plain sRGB model of ``cfa``) as
    :func:`darkc.data.datasets.model_pairs` makes them (amplified packed raw clipped to [0, 1], with the noise-std
    channel of a noise-conditioned model, from the sensors it trains on) made from darkc's built-in ``split``
    photos, and a record of how they were made."""
    from darkc.data import cfa as cfa_mod
    from darkc.data.datasets import model_pairs, patch_multiple
    from darkc.data.sources import builtin_photos
    from darkc.data.synth import SID_RATIOS

    spec = spec if spec is not None else {"cfa": cfa}
    h, w = size
    m = patch_multiple(cfa)
    patch = math.ceil(max(h, w) * cfa_mod.scale(cfa) / m) * m
    photos = builtin_photos(split)
    ds = model_pairs({**spec, "cfa": cfa}, photos, patch=patch, seed=seed, ratios=SID_RATIOS, targets=False)
    inputs = [ds[i]["input"].numpy()[None, :, :h, :w].copy() for i in range(samples)]
    record = {"source": "synthetic", "photos": [p.name for p in photos], "seed": seed, "ratios": list(SID_RATIOS),
              "sensors": [p.name for p in ds.profiles], "noise_input": ds.noise_input}
    if ds.noise_input != "none":
        std = np.concatenate([x[0, -1].ravel() for x in inputs])
        record["noise_std_range"] = [float(std.min()), float(std.max())]
    return inputs, record


def _crops(shape: tuple[int, int], size: tuple[int, int], count: int, rng: np.random.Generator) -> list[tuple]:
    """``count`` top-left corners of ``size`` windows in a frame of ``shape``, first the centre then random."""
    (fh, fw), (h, w) = shape, size
    corners = [((fh - h) // 2, (fw - w) // 2)]
    while len(corners) < count:
        corners.append((int(rng.integers(0, fh - h + 1)), int(rng.integers(0, fw - w + 1))))
    return corners[:count]


def _load_frame(path: Path, cfa: str, size: tuple[int, int], ratio: float | None,
                noise_input: str = "none") -> tuple[np.ndarray | None, str]:
    """(model input: amplified packed frame [+ noise-std channel], ratio) or (None, why it is unusable)."""
    from darkc.data.noise_level import condition, level_of_file
    from darkc.data.raw import amplify, read_raw
    from darkc.enhance import sid_ratio

    r = sid_ratio(path) or ratio
    if r is None:
        return None, "no exposure ratio"
    try:
        frame = read_raw(path)
    except DarkcError as exc:
        return None, str(exc)
    if frame.cfa != cfa:
        return None, f"{frame.cfa} sensor, the model is {cfa}"
    packed = frame.packed()
    if packed.shape[1] < size[0] or packed.shape[2] < size[1]:
        return None, f"packed {packed.shape[1]}x{packed.shape[2]} is smaller than {size[0]}x{size[1]}"
    amp = amplify(packed, r)
    if noise_input != "none":
        try:
            amp = condition(amp, r, level_of_file(path), noise_input)
        except DarkcError as exc:
            return None, f"no noise level ({exc})"
    return amp, float(r)


def _folder_inputs(folder: Path, cfa: str, samples: int, size: tuple[int, int], ratio: float | None,
                   seed: int, noise_input: str = "none") -> tuple[list[np.ndarray], dict]:
    """Crops of raw files in ``folder``: up to ``samples`` files (a seeded random pick), read one at a time."""
    if not folder.is_dir():
        raise DarkcError(f"--calib {folder} is neither 'synthetic' nor a folder; pass a folder of raw files "
                         f"(e.g. SID Sony/short) or 'synthetic'")
    files = find_raw_files(folder, skip_references=True)
    if not files:
        raise DarkcError(f"--calib {folder} holds no raw files ({example_exts()}); add dark raw "
                         f"captures or use --calib synthetic")
    if ratio is not None and (isinstance(ratio, bool) or not isinstance(ratio, (int, float))
                              or not math.isfinite(ratio) or ratio <= 0):
        raise DarkcError(f"--calib-ratio {ratio!r} is invalid; pass a positive exposure ratio (SID uses 100-300)")
    h, w = size
    rng = np.random.default_rng(seed)
    order = [files[i] for i in rng.permutation(len(files))]
    target = min(samples, len(files))
    quota = [samples // target + (k < samples % target) for k in range(target)]
    inputs, used, skipped = [], [], []

    def take(path: Path, amp: np.ndarray, r: float, n: int) -> None:
        for y, x in _crops(amp.shape[1:], size, n, rng):
            inputs.append(np.ascontiguousarray(amp[None, :, y:y + h, x:x + w]))
        used.append({"file": str(path), "ratio": r, "crops": n})

    for path in order:
        if len(used) == target:
            break
        amp, note = _load_frame(path, cfa, size, ratio, noise_input)
        if amp is None:
            skipped.append(f"{path.name}: {note}")
            continue
        take(path, amp, note, quota[len(used)])
    if not used:
        why = "; ".join(skipped[:3]) + (f"; ... ({len(skipped)} files)" if len(skipped) > 3 else "")
        hint = " pass --calib-ratio for files without SID names," if any("ratio" in s for s in skipped) else ""
        raise DarkcError(f"--calib {folder}: none of its {len(files)} raw files is usable ({why});{hint} "
                         f"or use --calib synthetic")
    missing = samples - len(inputs)                  # some files were unusable: more crops of the usable ones
    for k, entry in enumerate(list(used)):
        n = missing // len(used) + (k < missing % len(used))
        if n:
            path = Path(entry["file"])
            take(path, _load_frame(path, cfa, size, ratio, noise_input)[0], entry["ratio"], n)
    return inputs, {"source": str(folder), "files": used, "skipped": skipped[:20], "skipped_count": len(skipped),
                    "seed": seed, "noise_input": noise_input}


def calibration_inputs(calib: str | os.PathLike, cfa: str, samples: int = DEFAULT_SAMPLES,
                       size: tuple[int, int] = (DEFAULT_CALIB_SIZE, DEFAULT_CALIB_SIZE), ratio: float | None = None,
                       seed: int = 0, spec: dict | None = None) -> tuple[list[np.ndarray], dict]:
    """Packed raw calibration samples and a record of where they come from.

    Args:
        calib: ``"synthetic"`` (SyntheticPairs inputs from darkc's built-in training photos, SID ratios
            100/250/300) or a folder of raw files (recursively; SID ``long/`` folders are skipped). A file's ratio
            comes from SID names (``short/ID_NN_<t>s.*`` with ``long/ID_00_<T>s.*``), else from ``ratio``.
        cfa: the model's CFA; raw files of another sensor are skipped.
        spec: the model's spec (default: a plain sRGB model of ``cfa``): synthetic samples come from the sensors it
            trains on, and a noise-conditioned model's samples carry the noise-std channel (a raw file's level from
            :func:`darkc.data.noise_level.level_of_file`: its DNG NoiseProfile, a known profile, else estimated).
        samples: number of samples; raw frames are cut into ``size`` crops (centre first, then random) spread
            evenly over the usable files.
        size: packed (h, w) of each sample, multiples of 16.
        ratio: exposure ratio for raw files without SID names.
        seed: makes synthetic pairs and crop positions reproducible.

    Returns:
        ``(inputs, record)``: ``samples`` arrays (1, C[+1], h, w) float32 packed raw, black-level subtracted,
        amplified by the ratio and clipped to [0, 1] [, noise-std channel]; ``record`` names the source, files,
        ratios and skipped files.

    Raises:
        DarkcError: no usable raw file (none found, none readable, no ratio, wrong sensor, too small).
    """
    samples = check_count(samples, "--samples")
    size = (int(size[0]), int(size[1]))
    if str(calib) == "synthetic":
        inputs, record = synthetic_inputs(cfa, samples, size, seed, spec=spec)
    else:
        from darkc.models.builder import io_kind

        noise = io_kind(spec)[1] if spec is not None else "none"
        inputs, record = _folder_inputs(Path(calib), cfa, samples, size, ratio, seed, noise)
    return inputs, {**record, "samples": len(inputs), "size": list(size)}

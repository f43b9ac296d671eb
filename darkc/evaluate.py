"""``darkc eval``: PSNR/SSIM of any model (artifact, ONNX, TFLite) on the reference validation set or a
SID-layout folder, per ratio and overall, and the classical baselines on the same pairs.

The reference validation set: pip-shipped photos held out from training (sporco kodim23/tulips,
skimage chelsea/coffee) and 4 held-out dead-leaves images, longer side 768 px (Bayer) / 1152 px
(X-Trans), ratios 100/250/300, scene seeds from ``REFERENCE_SEED``. ``darkc synth --split val``
writes exactly these pairs as DNG files.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .data.reference import REFERENCE_SEED, REFERENCE_SIZE, reference_scenes  # noqa: F401  (re-exported)
from .data.synth import SID_RATIOS, fit_size, make_pair


def reference_frames(cfa: str = "bayer", ratios=SID_RATIOS, limit: int | None = None, target: str = "srgb",
                     noise_input: str = "none", split: str = "val"):
    """The reference validation set in memory: list of (name, model input, target, ratio); input and target as
    the model takes and gives them (see :func:`darkc.data.datasets.model_io`), sRGB targets (3, H, W)."""
    from .data.datasets import FullFrames, model_io

    images, profile, size, seed = reference_scenes(cfa, split)
    items = []
    for i, im in enumerate(images[:limit] if limit else images):
        clean = fit_size(im.load(), size, cfa)
        scene_target = None       # the ratios of a scene share their long exposure, so their target
        for j, ratio in enumerate(ratios):
            item = model_io(make_pair(clean, profile, ratio, seed * 100003 + i), target if j == 0 else None,
                            noise_input)
            scene_target = item["target"].numpy() if j == 0 else scene_target
            items.append((f"{10001 + i:05d}_{j:02d} ({im.name})", item["input"].numpy(), scene_target, float(ratio)))
    return FullFrames(items)


# ---------------------------------------------------------------- the reference set on disk
def reference_dir(cfa: str = "bayer", split: str = "val") -> Path:
    """The reference validation set (or with ``split="ood"`` the out-of-distribution set) as SID-layout DNG files,
    written once into the cache.

    Location: ``$DARKC_CACHE`` or ``~/.cache/darkc``, subfolder ``reference-<cfa>-v2`` (``ood-<cfa>-v1``); v2 files
    carry the DNG NoiseProfile tag.
    """
    import os
    import shutil
    import tempfile

    from .data.synth import write_dataset

    root = Path(os.environ.get("DARKC_CACHE") or Path.home() / ".cache" / "darkc")
    dest = root / (f"reference-{cfa}-v2" if split == "val" else f"ood-{cfa}-v1")
    if (dest / "synth.json").is_file():
        return dest
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".reference-", dir=root))
    try:
        images, profile, size, seed = reference_scenes(cfa, split)
        write_dataset(tmp, images, profile, seed=seed, size=size, split=split, progress=False)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


#: ``--data`` values that mean the reference validation set (of the model's CFA)
REFERENCE_DATA = ("synthetic", "reference")
#: ``--data`` value that means the out-of-distribution set (the held-out sensor)
OOD_DATA = "ood"

#: :func:`reference_digest` of the set every quality figure in the README and reports rests on; a change to the
#: photos, seeds, sizes, camera profiles or the noise model changes it (tests/test_reference_set.py checks it).
REFERENCE_SHA256 = {"bayer": "2bf1c566f7b9cf9f38d6971df6ae08fbcfaa71d4c03403b93d587de02de315a8",
                    "xtrans": "ae45bb93003bacb6ab63a428495dd66f568c77d180dd7f585df46335f8e57277"}


def reference_digest(cfa: str = "bayer") -> str:
    """sha256 over the reference set's scene names, size, seed and profile, and the first scene's frames (inputs
    and target as float32, every ratio): cheap enough to check in CI, and what any change to it moves."""
    import hashlib

    images, profile, size, seed = reference_scenes(cfa)
    digest = hashlib.sha256(repr(([im.name for im in images], size, seed, profile.name)).encode())
    for name, inp, target, ratio in reference_frames(cfa, limit=1).items:
        digest.update(name.encode() + repr(ratio).encode())
        digest.update(np.ascontiguousarray(inp, np.float32).tobytes())
        digest.update(np.ascontiguousarray(target, np.float32).tobytes())
    return digest.hexdigest()


def resolve_data(data: str, cfa: str = "bayer"):
    """'synthetic' (or 'reference') -> the reference set's pairs; 'ood' -> the out-of-distribution set's; a folder
    or list file -> its SID pairs."""
    from .data.sid import load_pairs

    if data in REFERENCE_DATA:
        return load_pairs(reference_dir(cfa), "val")
    if data == OOD_DATA:
        return load_pairs(reference_dir(cfa, "ood"), "ood")
    return load_pairs(data, "test")


# ---------------------------------------------------------------- baselines
# h = 2 x estimated sigma: the best of 1/2/3/4/6 on synthetic pairs of training photos (not the validation set)
NLM_STRENGTH = 2.0


def libraw_baseline(short_path, ratio: float) -> np.ndarray:
    """Baseline (a): amplify the short exposure by ``ratio`` in the raw domain (above black, clipped
    at white), then LibRaw renders it exactly like the target. (H, W, 3) float32, canonical phase."""
    from .data.raw import open_raw, render_open

    with open_raw(short_path) as raw:
        vis = raw.raw_image_visible
        black = np.asarray(raw.black_level_per_channel, np.float32)[raw.raw_colors_visible]
        amp = black + (vis.astype(np.float32) - black) * float(ratio)
        vis[...] = np.clip(np.round(amp), 0, raw.white_level).astype(vis.dtype)
        return render_open(raw, short_path)


def nlm_denoise(img: np.ndarray, strength: float = NLM_STRENGTH) -> np.ndarray:
    """Baseline (b)'s denoiser: OpenCV fast non-local means (colour), its filter strength set from the
    noise level skimage estimates on the image (h = strength * sigma in 8-bit units)."""
    import cv2
    from skimage.restoration import estimate_sigma

    sigma = float(estimate_sigma(img, channel_axis=-1, average_sigmas=True)) * 255.0
    h = max(1.0, strength * sigma)
    u8 = np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)
    den = cv2.fastNlMeansDenoisingColored(u8[..., ::-1], None, h, h, 7, 21)[..., ::-1]
    return den.astype(np.float32) / 255.0


BASELINES = {
    "libraw": ("amplify + LibRaw demosaic (rawpy.postprocess), no denoise", lambda p: libraw_baseline(p.short, p.ratio)),
    "libraw+nlm": ("amplify + LibRaw + OpenCV non-local means (h = 2 x estimated sigma)",
                   lambda p: nlm_denoise(libraw_baseline(p.short, p.ratio))),
}


# ---------------------------------------------------------------- evaluation
METRICS = ("psnr", "ssim", "deltae", "checker")


def score(out: np.ndarray, target: np.ndarray) -> dict:
    """PSNR, SSIM, mean CIEDE2000 against the target, and the output's checkerboard amplitude (/255)."""
    from .metrics import checkerboard, deltae, psnr, ssim

    return {"psnr": psnr(out, target), "ssim": ssim(out, target), "deltae": deltae(out, target),
            "checker": checkerboard(out)["checker"]}


def _summarise(rows: list[dict]) -> dict:
    by_ratio: dict[str, list] = {}
    for r in rows:
        by_ratio.setdefault(f"x{r['ratio']:g}", []).append(r)
    worst = min(rows, key=lambda r: r["psnr"])
    # raw_psnr: raw-output models' packed raw vs the long exposure
    mean = lambda rs: {m: float(np.mean([r[m] for r in rs])) for m in METRICS + ("raw_psnr",)  # noqa: E731
                       if all(m in r for r in rs)}
    return {
        **mean(rows),
        "n": len(rows),
        "per_ratio": {k: {**mean(v), "n": len(v)} for k, v in sorted(by_ratio.items(), key=lambda kv: float(kv[0][1:]))},
        "worst": {"image": worst["image"], "psnr": worst["psnr"], "ssim": worst["ssim"], "ratio": worst["ratio"]},
        "images": rows,
    }


def evaluate(model="teacher", data: str = "synthetic", *, baselines: bool = False, threads: int | None = None,
             tile: int = 1024, limit: int | None = None, progress: bool = True, srgb_anchor: bool = False) -> dict:
    """``darkc eval``: PSNR/SSIM of ``model`` (shipped name, artifact dir, .onnx or .tflite) on ``data``.

    Outputs and targets are compared as float sRGB in [0, 1] (no 8-bit rounding), SSIM as scikit-image's
    (7x7 uniform window); also mean CIEDE2000 against the target (``deltae``) and the output's coherent
    2x2 pattern amplitude in levels of 255 (``checker``, :func:`darkc.metrics.checkerboard`). With
    ``baselines`` the classical pipelines are scored on the same pairs.

    Returns a dict with top-level ``psnr``/``ssim``/``deltae``/``checker`` (means over all pairs),
    ``per_ratio``, ``worst``, per-image rows, and ``baselines`` (name -> same structure) when asked.
    ``srgb_anchor``: score an sRGB model with its colour put back to each file's own render
    (:func:`darkc.inference.anchor_srgb`, ``darkc enhance --srgb-anchor``); raw-output models are always anchored.
    """
    import time

    from tqdm import tqdm

    from .data.raw import read_raw, render_raw
    from .inference import load_runner, run_raw_file
    from .metrics import psnr
    from .models.pretrained import pretrained_for_cfa

    pairs = None
    # "teacher" on a folder of X-Trans raw files means teacher-xtrans where it ships: read the folder's CFA first,
    # but only when the name could change (so a missing model is still reported before the data)
    if data not in REFERENCE_DATA + (OOD_DATA,) and pretrained_for_cfa(model, "xtrans") != model:
        pairs = resolve_data(data)
        if pairs:
            model = pretrained_for_cfa(model, read_raw(pairs[0].short).cfa)
    runner = load_runner(model, threads=threads) if model is not None else None
    if pairs is None:    # the reference set of the model's CFA
        pairs = resolve_data(data, runner.cfa if runner is not None else "bayer")
    if limit:
        pairs = pairs[:limit]
    targets: dict[str, np.ndarray] = {}
    long_raw: dict[str, np.ndarray] = {}
    rows: list[dict] = []
    base_rows: dict[str, list] = {k: [] for k in BASELINES} if baselines else {}
    t0 = time.time()
    for p in tqdm(pairs, desc="darkc eval", unit="image", disable=not progress):
        key = str(p.long)
        if key not in targets:
            targets = {key: render_raw(p.long)}      # pairs are grouped by scene: keep one target
        target = targets[key]
        if runner is not None:
            out, packed = run_raw_file(runner, p.short, p.ratio, tile=tile, progress=False, srgb_anchor=srgb_anchor)
            out = out.transpose(1, 2, 0)
            rows.append({"image": p.short.name, "ratio": p.ratio, **score(out, target)})
            if packed is not None:      # raw-output models: also the raw-domain PSNR against the long exposure
                if key not in long_raw:
                    long_raw = {key: read_raw(p.long).packed()}
                rows[-1]["raw_psnr"] = psnr(packed, long_raw[key])
        for name, (_desc, fn) in BASELINES.items() if baselines else ():
            out = fn(p)
            base_rows[name].append({"image": p.short.name, "ratio": p.ratio, **score(out, target)})
    result = _summarise(rows) if rows else {}
    result.update({"model": str(model), "data": str(data), "seconds": time.time() - t0, "srgb_anchor": srgb_anchor,
                   "protocol": "float sRGB [0,1] vs LibRaw-rendered long exposure; SSIM 7x7 uniform (skimage)"})
    if baselines:
        result["baselines"] = {k: dict(_summarise(v), description=BASELINES[k][0]) for k, v in base_rows.items()}
    return result


def format_result(result: dict, fmt: str = "table") -> str:
    """Render an :func:`evaluate` result as 'json', 'md' (markdown table) or 'table' (plain text)."""
    import json

    if fmt == "json":
        return json.dumps({k: v for k, v in result.items()}, indent=1)
    entries = []
    if "psnr" in result:
        entries.append((result["model"], result))
    for name, res in (result.get("baselines") or {}).items():
        entries.append((f"baseline {name}", res))
    ratios = sorted({k for _, r in entries for k in r["per_ratio"]}, key=lambda k: float(k[1:]))
    head = (["model"] + [f"{k} PSNR/SSIM/dE/checker" for k in ratios]
            + ["overall PSNR/SSIM", "CIEDE2000", "checker /255", "worst image (PSNR)"])
    cell = lambda m: (f"{m['psnr']:.2f} / {m['ssim']:.4f} / {m['deltae']:.2f} / {m['checker']:.2f}" if "deltae" in m  # noqa: E731
                      else f"{m['psnr']:.2f} / {m['ssim']:.4f}")
    lines = []
    for name, r in entries:
        cells = [name] + [cell(r["per_ratio"][k]) if k in r["per_ratio"] else "-" for k in ratios]
        cells += [f"{r['psnr']:.2f} / {r['ssim']:.4f}", f"{r['deltae']:.2f}" if "deltae" in r else "-",
                  f"{r['checker']:.2f}" if "checker" in r else "-", f"{r['worst']['image']} ({r['worst']['psnr']:.2f})"]
        lines.append(cells)
    if fmt == "md":
        out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        out += ["| " + " | ".join(c) + " |" for c in lines]
        return "\n".join(out) + (f"\n\nData: {result['data']}; PSNR in dB, {result['protocol']}; dE = mean CIEDE2000 "
                                  f"(skimage, sRGB -> Lab); checker = coherent 2x2 pattern amplitude of the output "
                                  f"in levels of 255 (darkc.metrics.checkerboard).\n")
    widths = [max(len(str(row[i])) for row in [head] + lines) for i in range(len(head))]
    fmt_row = lambda row: "  ".join(str(c).ljust(w) for c, w in zip(row, widths))  # noqa: E731
    return "\n".join([fmt_row(head), fmt_row(["-" * w for w in widths])] + [fmt_row(r) for r in lines])

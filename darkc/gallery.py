"""Galleries: the outputs of several models and the classical baselines side by side on the same raw pairs.

::

    report = make_gallery(["teacher", "student", "runs/s/model-int8.tflite"], "g.png", baselines=True)

For a few pairs (best, median and worst by the first model's PSNR, or the IDs asked for), one row of crops:
the short exposure amplified by its ratio and rendered by LibRaw, each baseline, each model, and the
reference (the LibRaw-rendered long exposure). Every panel is labelled with its method and its PSNR/SSIM on
that image (whole frame, float sRGB, as ``darkc eval``), and carries a nearest-neighbour zoom of a detail
region so noise, checkerboard and colour shifts are visible at print size. ``OUT.json`` beside the PNG holds
the plotted numbers.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .errors import DarkcError, atomic_path

#: Side of the crop shown per panel (px), of the zoomed detail region inside it (px), and the zoom factor.
CROP, DETAIL, ZOOM = 320, 56, 3
#: Pairs shown when no IDs are asked for: best, median and worst by the first model.
PICKS = ("best", "median", "worst")


def pair_id(pair) -> str:
    """A pair's ID: its short exposure's name up to the exposure time (``10003_00`` of ``10003_00_0.04s.ARW``)."""
    return "_".join(pair.short.name.split("_")[:2])


def _warn(msg: str) -> None:
    tqdm.write(f"warning: {msg}", file=sys.stderr)


def detail_centre(target: np.ndarray, size: int = DETAIL) -> tuple[int, int]:
    """(y, x) centre of the ``size``-px window of the reference with the most fine detail (Laplacian energy of
    its luminance); the crop around it is shifted inside the frame, so it always holds the window."""
    import cv2

    lum = target.astype(np.float32) @ np.array([0.2126, 0.7152, 0.0722], np.float32)
    energy = cv2.boxFilter(np.abs(cv2.Laplacian(lum, cv2.CV_32F)), -1, (size, size), borderType=cv2.BORDER_CONSTANT)
    m = min(size // 2, (min(lum.shape) - 1) // 2)                  # keep the window inside the frame
    inner = energy[m:energy.shape[0] - m, m:energy.shape[1] - m]
    y, x = np.unravel_index(int(np.argmax(inner)), inner.shape)
    return int(y) + m, int(x) + m


def _window(centre: int, side: int, length: int) -> slice:
    start = min(max(centre - side // 2, 0), max(length - side, 0))
    return slice(start, start + min(side, length))


def _choose(pairs: list, scores: dict[str, float] | None, ids: list[str] | None, count: int, source) -> list:
    """``[(pair, why)]``: the pairs named by ``ids``, else best/median/worst by ``scores`` (pair ID -> PSNR)."""
    by_id = {pair_id(p): p for p in pairs}
    if ids:
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise DarkcError(f"--images {','.join(missing)}: no such pair in {source}; its IDs are "
                             f"{', '.join(by_id)}")
        return [(by_id[i], "asked") for i in ids]
    ranked = sorted(by_id, key=lambda i: -scores[i])
    if len(ranked) < count:
        _warn(f"{source} has {len(ranked)} pair(s), fewer than the {count} asked for; the gallery shows them all")
        return [(by_id[i], f"#{k + 1} of {len(ranked)}") for k, i in enumerate(ranked)]
    picks = {"best": ranked[0], "median": ranked[len(ranked) // 2], "worst": ranked[-1]}
    if count != len(PICKS):
        step = (len(ranked) - 1) / max(count - 1, 1)
        picks = {f"#{round(k * step) + 1} of {len(ranked)}": ranked[round(k * step)] for k in range(count)}
    return [(by_id[i], why) for why, i in picks.items()]


def make_gallery(models: list, out: str | os.PathLike, data: str = "synthetic", *, baselines: bool = False,
                 images: list[str] | None = None, count: int = 3, threads: int | None = None,
                 labels: list[str] | None = None, progress: bool = True, srgb_anchor: bool = False) -> dict:
    """Write the gallery PNG (and its numbers as JSON beside it) and return the numbers.

    Args:
        models: one or more ``--model`` references (shipped name, artifact folder, ``.onnx``, ``.tflite``); the
            first one ranks the pairs. A shipped Bayer name on X-Trans data means its X-Trans sibling.
        out: ``.png`` path; ``out`` with ``.json`` gets the plotted numbers.
        data: ``synthetic`` (the reference validation set of the first model's CFA) or a SID folder / list file.
        baselines: also show the classical pipelines of :data:`darkc.evaluate.BASELINES` (besides the amplified
            LibRaw render, which every gallery shows as its input).
        images: pair IDs (``10003_00``) to show instead of best/median/worst.
        count: pairs shown when ``images`` is None (3: best, median, worst).
        threads: CPU threads for the models.
        labels: what the panels call the models (default: the references as given).
        srgb_anchor: show (and rank) sRGB-output models with their colour put back to each file's own render, as
            ``darkc enhance`` does by default (:func:`darkc.inference.anchor_srgb`); raw-output models always are.

    Raises:
        DarkcError: no model, an output that is not ``.png``, an ``--images`` ID not in the data (the message
            lists the IDs), or any error of loading the models or reading the data. Nothing is written then.
    """
    from .data.raw import read_raw, render_raw
    from .evaluate import BASELINES, REFERENCE_DATA, evaluate, libraw_baseline, resolve_data
    from .inference import load_runner, run_raw_file
    from .metrics import psnr, ssim
    from .models.pretrained import pretrained_for_cfa

    out = Path(out)
    if not models:
        raise DarkcError("a gallery needs at least one --model (e.g. --model teacher --model student)")
    if out.suffix.lower() != ".png":
        raise DarkcError(f"--gallery {out} must end in .png")
    if labels is not None and len(labels) != len(models):
        raise DarkcError(f"{len(labels)} gallery labels for {len(models)} models: pass one label per model")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise DarkcError(f"gallery count {count!r}: pass a positive number of pairs")
    pairs = None
    cfa = None
    if data not in REFERENCE_DATA:
        pairs = resolve_data(data)
        if not pairs:
            raise DarkcError(f"no raw pairs in {data}: pass a SID folder (short/ and long/) or list file")
        cfa = read_raw(pairs[0].short).cfa
    runners = [load_runner(pretrained_for_cfa(m, cfa) if cfa else m, threads) for m in models]
    cfa = cfa or runners[0].cfa
    pairs = pairs if pairs is not None else resolve_data(data, cfa)
    source = "the reference set" if data in REFERENCE_DATA else str(data)
    ids = [i.strip() for i in images if i.strip()] if images else None
    scores = None
    if not ids:
        ranking = evaluate(runners[0], data, threads=threads, progress=progress, srgb_anchor=srgb_anchor)
        scores = {"_".join(r["image"].split("_")[:2]): r["psnr"] for r in ranking["images"]}
    chosen = _choose(pairs, scores, ids, count, source)

    names = [("input", "input x{ratio:g}: LibRaw render")]
    names += [(b, f"baseline {b}") for b in BASELINES if baselines and b != "libraw"]
    names += [(f"model{k}", str(m)) for k, m in enumerate(labels or models)]
    names += [("reference", "reference (long exposure)")]
    rows = []
    for pair, why in tqdm(chosen, desc="darkc gallery", unit="pair", disable=not progress):
        target = render_raw(pair.long)
        panels = {"input": libraw_baseline(pair.short, pair.ratio)}
        for b in BASELINES:
            if baselines and b != "libraw":
                panels[b] = BASELINES[b][1](pair)
        for k, runner in enumerate(runners):
            if runner.cfa != cfa:
                raise DarkcError(f"model {runner.name} is for {runner.cfa} raw but {pair.short} is {cfa}; pass "
                                 f"models for one sensor")
            # as darkc eval scores it: noise level for noise-conditioned models, raw output rendered (and anchored);
            # an sRGB model's own colour unless srgb_anchor (darkc enhance anchors it by default)
            panels[f"model{k}"] = run_raw_file(runner, pair.short, pair.ratio, progress=False,
                                               srgb_anchor=srgb_anchor)[0].transpose(1, 2, 0)
        panels["reference"] = target
        rows.append({"id": pair_id(pair), "image": pair.short.name, "ratio": pair.ratio, "why": why,
                     "centre": detail_centre(target), "pixels": panels,
                     "panels": [{"key": key, "label": label.format(ratio=pair.ratio),
                                 **({} if key == "reference" else
                                    {"psnr": psnr(panels[key], target), "ssim": ssim(panels[key], target)})}
                                for key, label in names]})
    ranked_by = str((labels or models)[0]) if not ids else None
    _draw(rows, out, ranked_by, source)
    record = {"data": str(data), "ranked_by": ranked_by, "models": [str(m) for m in models],
              "protocol": "whole-frame float sRGB [0,1] vs LibRaw-rendered long exposure; SSIM 7x7 uniform "
                          "(skimage), as darkc eval",
              "crop_px": CROP, "detail_px": DETAIL, "zoom": ZOOM,
              "images": [{k: v for k, v in r.items() if k != "pixels"} for r in rows]}
    from .provenance import portable

    with atomic_path(out.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(portable(record), indent=1) + "\n")
    return {"output": str(out), **record}


def _draw(rows: list[dict], out: Path, ranked_by: str | None, source: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    ncols = len(rows[0]["panels"])
    fig, axes = plt.subplots(len(rows), ncols, figsize=(2.7 * ncols, 3.05 * len(rows) + 0.5), squeeze=False)
    for r, row in enumerate(rows):
        any_img = row["pixels"]["reference"]
        cy, cx = row["centre"]
        ys, xs = _window(cy, CROP, any_img.shape[0]), _window(cx, CROP, any_img.shape[1])
        dy, dx = _window(cy, DETAIL, any_img.shape[0]), _window(cx, DETAIL, any_img.shape[1])
        for c, panel in enumerate(row["panels"]):
            ax = axes[r, c]
            img = np.clip(row["pixels"][panel["key"]], 0, 1)
            ax.imshow(img[ys, xs], interpolation="nearest")
            ax.add_patch(Rectangle((dx.start - xs.start - 0.5, dy.start - ys.start - 0.5), dx.stop - dx.start,
                                   dy.stop - dy.start, fill=False, edgecolor="yellow", linewidth=0.8))
            inset = ax.inset_axes([0.58, 0.0, 0.42, 0.42])
            inset.imshow(np.repeat(np.repeat(img[dy, dx], ZOOM, 0), ZOOM, 1), interpolation="nearest")
            inset.set_xticks([])
            inset.set_yticks([])
            for spine in inset.spines.values():
                spine.set_edgecolor("yellow")
            ax.set_xticks([])
            ax.set_yticks([])
            score = "" if "psnr" not in panel else f"\n{panel['psnr']:.2f} dB / SSIM {panel['ssim']:.3f}"
            ax.set_title(_short(panel["label"]) + score, fontsize=7.5)
            if c == 0:
                ax.set_ylabel(f"{row['id']} (x{row['ratio']:g})\n{row['why']}", fontsize=8)
    how = f"pairs: best, median, worst by {_short(ranked_by)}" if ranked_by else "pairs as asked"
    fig.suptitle(f"darkc gallery on {source}: {CROP}-px crops, inset {DETAIL}-px detail at {ZOOM}x "
                 f"(nearest); PSNR/SSIM on the whole frame; {how}", fontsize=8.5)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def _short(label: str, width: int = 34) -> str:
    """A panel label that fits its column: long paths keep their last parts."""
    return label if len(label) <= width else "..." + label[-(width - 3):]

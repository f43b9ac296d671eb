"""What does putting an sRGB model's colour back to each file's own render do, per set and ratio?

    python benchmarks/srgb_anchor.py --model teacher --model student --model teacher-xtrans \
        --out benchmarks/results/srgb_anchor

An sRGB-output model (SID's kind) learns one camera's colour transform and applies it to every camera: on the
held-out sensor that costs the sRGB teacher about 1.1 dB (benchmarks/results/ood_decompose.md, its "held-out
colour" column). `darkc enhance --srgb-anchor` / `darkc eval --srgb-anchor` (:func:`darkc.inference.anchor_srgb`)
keep the model's brightness and detail and take the local ratios between R, G and B (Gaussian, 16 packed px, in
linear light) from LibRaw's render of the file's own raw averaged at that scale before the black clip. This script
scores each model with and without it on the reference set and, for Bayer models, the held-out sensor set: PSNR /
SSIM / CIEDE2000 / checkerboard per ratio and overall (`darkc eval`'s protocol), writes <out>.md/.json/.png.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

from darkc.errors import DarkcError
from darkc.evaluate import evaluate
from darkc.inference import load_runner

SETS = {"synthetic": "reference", "ood": "held-out sensor"}


def measure(model: str, threads: int, limit: int | None) -> dict:
    cfa = load_runner(model, threads=threads).cfa
    rows = {}
    for data in ("synthetic", "ood") if cfa == "bayer" else ("synthetic",):
        for anchor in (False, True):
            r = evaluate(model, data, threads=threads, limit=limit, progress=False, srgb_anchor=anchor)
            rows[f"{data}/{'anchored' if anchor else 'as is'}"] = {
                k: r[k] for k in ("psnr", "ssim", "deltae", "checker", "per_ratio", "seconds")}
    return {"cfa": cfa, "rows": rows}


def report_md(res: dict, cmd: str) -> str:
    lines = ["# sRGB models with their colour put back to each file's own render (`--srgb-anchor`)", "",
             f"Command: `{cmd}` ({res['seconds']:.0f} s, {platform.machine()} CPU, {res['threads']} thread(s); "
             "wall time on a host shared with other jobs). What it measures: this script's docstring. Protocol: "
             "`darkc eval` (float sRGB against the LibRaw-rendered long exposure; CIEDE2000 mean; checker in levels "
             "of 255); Bayer models on the reference set and the held-out sensor set (`--data ood`), X-Trans on its "
             "reference set (there is no X-Trans held-out sensor).", "",
             "| model | set | anchor | x100 PSNR / SSIM | x250 | x300 | all PSNR / SSIM | CIEDE2000 | checker |",
             "|---|---|---|---|---|---|---|---|---|"]
    for model, m in res["models"].items():
        for key, r in m["rows"].items():
            data, anchor = key.split("/")
            pr = r["per_ratio"]
            cells = " | ".join(f"{pr[k]['psnr']:.2f} / {pr[k]['ssim']:.3f}" if k in pr else "-"
                               for k in ("x100", "x250", "x300"))
            lines.append(f"| {model} | {SETS[data]} | {anchor} | {cells} | {r['psnr']:.2f} / {r['ssim']:.3f} | "
                         f"{r['deltae']:.2f} | {r['checker']:.2f} |")
    lines += ["", "Change with the anchor (overall PSNR dB / SSIM / CIEDE2000):", ""]
    for model, m in res["models"].items():
        for data in SETS:
            a, b = m["rows"].get(f"{data}/as is"), m["rows"].get(f"{data}/anchored")
            if a and b:
                lines.append(f"- {model}, {SETS[data]}: {b['psnr'] - a['psnr']:+.2f} dB, {b['ssim'] - a['ssim']:+.3f}, "
                             f"CIEDE2000 {a['deltae']:.2f} -> {b['deltae']:.2f}")
    lines += ["", "![PSNR with and without the anchor](srgb_anchor.png)", ""]
    return "\n".join(lines)


def figure(res: dict, png: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, off, on = [], [], []
    for model, m in res["models"].items():
        for data in SETS:
            a, b = m["rows"].get(f"{data}/as is"), m["rows"].get(f"{data}/anchored")
            if a and b:
                labels.append(f"{model}\n{SETS[data]}")
                off.append(a["psnr"])
                on.append(b["psnr"])
    fig, ax = plt.subplots(figsize=(1.6 * len(labels) + 2, 4))
    x = range(len(labels))
    ax.bar([i - 0.2 for i in x], off, 0.4, label="as is")
    ax.bar([i + 0.2 for i in x], on, 0.4, label="--srgb-anchor")
    ax.set_xticks(list(x), labels, fontsize=8)
    ax.set_ylim(min(off + on) - 2, max(off + on) + 1)
    ax.set_ylabel("PSNR (dB), sRGB vs LibRaw render of the long exposure")
    ax.set_title("sRGB models, darkc eval protocol, all ratios")
    ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", help="sRGB-output model, repeatable (default: teacher)")
    ap.add_argument("--out", default="benchmarks/results/srgb_anchor", help="output prefix")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--limit", type=int, default=None, help="only the first N pairs of each set")
    a = ap.parse_args(argv)
    models = a.model or ["teacher"]
    try:
        for m in models:
            if load_runner(m, threads=a.threads).output == "raw":
                raise DarkcError(f"{m} is a raw-output model: it is always anchored (darkc.inference.anchor_means); "
                                 f"pass sRGB-output models")
        t0 = time.time()
        res = {"models": {m: measure(m, a.threads, a.limit) for m in models}, "threads": a.threads}
    except DarkcError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    res["seconds"] = time.time() - t0
    cmd = "python benchmarks/srgb_anchor.py " + " ".join(f"--model {m}" for m in models) + f" --out {a.out}" + (
        f" --limit {a.limit}" if a.limit else "")
    res["command"] = cmd
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure(res, out.with_suffix(".png"))
    md = report_md(res, cmd).replace("srgb_anchor.png", out.with_suffix(".png").name)
    for path, text in ((out.with_suffix(".md"), md), (out.with_suffix(".json"), json.dumps(res, indent=1))):
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())

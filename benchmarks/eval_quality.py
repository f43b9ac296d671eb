"""Quality report: a model vs the classical baselines on the reference validation set.

    python benchmarks/eval_quality.py --model teacher [--out benchmarks/results/teacher_quality]

writes <out>.md, <out>.json and <out>.png (PSNR and SSIM per exposure ratio, model vs baselines).
Protocol: float sRGB in [0, 1] vs the LibRaw-rendered long exposure; SSIM is scikit-image's 7x7 uniform.
"""
from __future__ import annotations

import argparse
import json
import platform
import re
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from darkc.errors import atomic_path  # noqa: E402
from darkc.provenance import portable  # noqa: E402
from darkc.evaluate import evaluate, format_result  # noqa: E402


def plot(result: dict, png: Path) -> None:
    entries = [(result["model"], result)] + [(f"baseline {k}", v) for k, v in result.get("baselines", {}).items()]
    ratios = list(result["per_ratio"])
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    width = 0.8 / len(entries)
    for ax, metric in zip(axes, ("psnr", "ssim")):
        for i, (name, r) in enumerate(entries):
            xs = [j + i * width for j in range(len(ratios))]
            ax.bar(xs, [r["per_ratio"][k][metric] for k in ratios], width, label=name)
        ax.set_xticks([j + width * (len(entries) - 1) / 2 for j in range(len(ratios))], ratios)
        ax.set_xlabel("exposure ratio")
        ax.set_ylabel("PSNR (dB)" if metric == "psnr" else "SSIM")
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{result['model']} vs classical baselines ({result['data']} set, {result['n']} pairs)", fontsize=10)
    fig.tight_layout()
    with atomic_path(png) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="teacher")
    ap.add_argument("--data", default="synthetic")
    ap.add_argument("--out", default=None, help="output prefix (default: benchmarks/results/<model>_quality, "
                    "e.g. teacher_quality, teacher_xtrans_quality)")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--vs", default=None, help="also report agreement (PSNR/SSIM) with this model's outputs, "
                    "e.g. the teacher of a student (torch checkpoints, reference set only)")
    args = ap.parse_args(argv)
    res = evaluate(args.model, args.data, baselines=True, threads=args.threads, limit=args.limit, progress=True)
    extra = ""
    if args.vs:
        import torch

        from darkc.compress.distill import agreement_with_teacher
        from darkc.evaluate import reference_frames
        from darkc.models import count_macs, count_params, load_checkpoint, resolve_model_ref

        torch.set_num_threads(args.threads)
        mine, spec = load_checkpoint(resolve_model_ref(args.model)[1])
        other, ospec = load_checkpoint(resolve_model_ref(args.vs)[1])
        agree = agreement_with_teacher(mine.float(), other.float(), reference_frames(spec["cfa"]))
        shape = (spec["in_channels"], 544, 960)
        res["vs"] = {"model": args.vs, **agree,
                     "params": [count_params(mine), count_params(other)],
                     "macs_1920x1080": [count_macs(mine, shape), count_macs(other, shape)]}
        extra = (f"\nAgreement with `{args.vs}` on the reference frames (whole frames, torch): "
                 f"PSNR {agree['psnr']:.2f} dB, SSIM {agree['ssim']:.4f}. Params {count_params(mine):,} vs "
                 f"{count_params(other):,}; conv MACs per 1920x1080 raw frame {res['vs']['macs_1920x1080'][0] / 1e9:.2f} G"
                 f" vs {res['vs']['macs_1920x1080'][1] / 1e9:.2f} G.\n")
    res["host"] = {"machine": platform.machine(), "python": sys.version.split()[0], "threads": args.threads,
                   "runtime": "PyTorch CPU (artifacts) / ONNX Runtime / LiteRT per model file"}
    out = Path(args.out or f"benchmarks/results/{re.sub(r'[^A-Za-z0-9]+', '_', Path(args.model).stem)}_quality")
    out.parent.mkdir(parents=True, exist_ok=True)
    md = (f"# {args.model}: quality vs classical baselines\n\n"
          f"Command: `python benchmarks/eval_quality.py --model {args.model} --data {args.data}"
          f"{' --limit %d' % args.limit if args.limit else ''}{' --vs ' + args.vs if args.vs else ''}`\n\n"
          + format_result(res, "md") + extra
          + f"\n![PSNR/SSIM per ratio]({out.name}.png)\n")
    with atomic_path(out.with_suffix(".md")) as tmp:
        tmp.write_text(md)
    slim = {k: v for k, v in res.items() if k != "images"}
    with atomic_path(out.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(portable(slim), indent=1))
    plot(res, out.with_suffix(".png"))
    print(format_result(res, "table"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Quality report: a model vs the classical baselines on the reference validation set and, for Bayer models, the
out-of-distribution set (the same scenes on the camera held out of every training pool).

    python benchmarks/eval_quality.py --model teacher [--out benchmarks/results/teacher_quality]

writes <out>.md, <out>.json and <out>.png (PSNR and SSIM per exposure ratio, model vs baselines; one row of plots
per set). Protocol: float sRGB in [0, 1] vs the LibRaw-rendered long exposure; SSIM is scikit-image's 7x7
uniform. The JSON's top level is the reference-set result; its ``ood`` key holds the out-of-distribution one.
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


def plot(results: list[tuple[str, dict]], png: Path) -> None:
    """One row of PSNR/SSIM bar charts per (set name, evaluate() result)."""
    fig, all_axes = plt.subplots(len(results), 2, figsize=(10, 3.4 * len(results)), squeeze=False)
    for (set_name, result), axes in zip(results, all_axes):
        _plot_row(result, axes, set_name)
    fig.tight_layout()
    with atomic_path(png) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def _plot_row(result: dict, axes, set_name: str) -> None:
    entries = [(result["model"], result)] + [(f"baseline {k}", v) for k, v in result.get("baselines", {}).items()]
    ratios = list(result["per_ratio"])
    width = 0.8 / len(entries)
    for ax, metric in zip(axes, ("psnr", "ssim")):
        for i, (name, r) in enumerate(entries):
            xs = [j + i * width for j in range(len(ratios))]
            ax.bar(xs, [r["per_ratio"][k][metric] for k in ratios], width, label=name)
        ax.set_xticks([j + width * (len(entries) - 1) / 2 for j in range(len(ratios))], ratios)
        ax.set_xlabel("exposure ratio")
        ax.set_ylabel("PSNR (dB)" if metric == "psnr" else "SSIM")
        ax.grid(axis="y", alpha=0.3)
        ax.set_title(f"{set_name} set ({result['n']} pairs): {metric.upper()}", fontsize=9)
    axes[0].legend(fontsize=8)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="teacher")
    ap.add_argument("--data", default="synthetic")
    ap.add_argument("--no-ood", action="store_true", help="skip the out-of-distribution set (Bayer models only)")
    ap.add_argument("--out", default=None, help="output prefix (default: benchmarks/results/<model>_quality, "
                    "e.g. teacher_quality, teacher_xtrans_quality)")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--vs", default=None, help="also report agreement (PSNR/SSIM) with this model's outputs, "
                    "e.g. the teacher of a student (torch checkpoints, reference set only)")
    args = ap.parse_args(argv)
    res = evaluate(args.model, args.data, baselines=True, threads=args.threads, limit=args.limit, progress=True)
    ood = None
    if not args.no_ood and args.data in ("synthetic", "reference") and _cfa(args.model) == "bayer":
        ood = evaluate(args.model, "ood", baselines=True, threads=args.threads, limit=args.limit, progress=True)
    extra = ""
    if args.vs:
        import torch

        from darkc.compress.distill import agreement_with_teacher
        from darkc.evaluate import reference_frames
        from darkc.models import count_macs, count_params, load_checkpoint, resolve_model_ref
        from darkc.models.builder import io_kind

        torch.set_num_threads(args.threads)
        mine, spec = load_checkpoint(resolve_model_ref(args.model)[1])
        other, ospec = load_checkpoint(resolve_model_ref(args.vs)[1])
        output, noise = io_kind(spec)                 # raw-output models: their input has a noise channel
        agree = agreement_with_teacher(mine.float(), other.float(),
                                       reference_frames(spec["cfa"], target=output, noise_input=noise))
        shape = (spec["in_channels"], 544, 960)
        res["vs"] = {"model": args.vs, **agree,
                     "params": [count_params(mine), count_params(other)],
                     "macs_1920x1080": [count_macs(mine, shape), count_macs(other, shape)]}
        extra = (f"\nAgreement with `{args.vs}` on the reference frames (whole frames, torch"
                 f"{', the packed raw outputs' if output == 'raw' else ''}): "
                 f"PSNR {agree['psnr']:.2f} dB, SSIM {agree['ssim']:.4f}. Params {count_params(mine):,} vs "
                 f"{count_params(other):,}; conv MACs per 1920x1080 raw frame {res['vs']['macs_1920x1080'][0] / 1e9:.2f} G"
                 f" vs {res['vs']['macs_1920x1080'][1] / 1e9:.2f} G.\n")
    res["host"] = {"machine": platform.machine(), "python": sys.version.split()[0], "threads": args.threads,
                   "runtime": "PyTorch CPU (artifacts) / ONNX Runtime / LiteRT per model file"}
    out = Path(args.out or f"benchmarks/results/{re.sub(r'[^A-Za-z0-9]+', '_', Path(args.model).stem)}_quality")
    out.parent.mkdir(parents=True, exist_ok=True)
    md = (f"# {args.model}: quality vs classical baselines\n\n"
          f"Command: `python benchmarks/eval_quality.py --model {args.model} --data {args.data}"
          f"{' --limit %d' % args.limit if args.limit else ''}{' --vs ' + args.vs if args.vs else ''}"
          f"{' --no-ood' if args.no_ood else ''}`\n\n"
          + "## Reference validation set\n\n" + format_result(res, "md") + extra)
    if ood is not None:
        md += ("\n## Out-of-distribution set (the held-out sensor, `darkc eval --data ood`)\n\n"
               + format_result(ood, "md"))
        res["ood"] = {k: v for k, v in ood.items() if k != "images"}
    md += f"\n![PSNR/SSIM per ratio]({out.name}.png)\n"
    with atomic_path(out.with_suffix(".md")) as tmp:
        tmp.write_text(md)
    slim = {k: v for k, v in res.items() if k != "images"}
    with atomic_path(out.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(portable(slim), indent=1))
    plot([("reference", res)] + ([("out-of-distribution", ood)] if ood is not None else []), out.with_suffix(".png"))
    print(format_result(res, "table"))
    return 0


def _cfa(model) -> str:
    from darkc.inference import load_runner

    return load_runner(model).cfa


if __name__ == "__main__":
    sys.exit(main())

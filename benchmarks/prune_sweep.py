"""Pruning sweep: the teacher pruned at several ratios, before and after fine-tuning against itself.

    python benchmarks/prune_sweep.py --model teacher --ratios 0.25,0.5,0.75 --finetune-iters 150 \
        --out benchmarks/results/prune_sweep

For each ratio: ``darkc prune --ratio R`` without fine-tuning, and with ``--finetune-iters K`` (data-free:
synthetic inputs, L1 to the unpruned model's output). Reports params, conv MACs at 1920x1080 and 4240x2832
(packed, padded to 16), PSNR/SSIM on the reference validation set, and host latency (torch CPU, 1 thread,
median of N forwards of one packed 1920x1080 frame). Writes ``OUT.md``, ``OUT.json`` and ``OUT.png``.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import torch


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="teacher")
    ap.add_argument("--ratios", default="0.25,0.5,0.75")
    ap.add_argument("--scope", default="uniform")
    ap.add_argument("--importance", default="l1")
    ap.add_argument("--finetune-iters", type=int, default=150)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--patch", type=int, default=256)
    ap.add_argument("--eval-limit", type=int, default=None)
    ap.add_argument("--latency-size", default="1920x1080")
    ap.add_argument("--latency-runs", type=int, default=3)
    ap.add_argument("--work", default=None)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from darkc.compress.prune import prune
    from darkc.sizes import packed_shape, parse_resolution
    from darkc.timing import measure
    from darkc.errors import atomic_path
    from darkc.provenance import portable
    from darkc.evaluate import evaluate
    from darkc.models import load_checkpoint, resolve_model_ref

    out = Path(args.out)
    work = Path(args.work) if args.work else out.parent / (out.name + "-runs")
    lat = None if args.latency_size == "none" else parse_resolution(args.latency_size, "--latency-size")
    progress = sys.stderr.isatty()

    def score(ref) -> dict:
        model, spec = load_checkpoint(resolve_model_ref(ref)[1])
        m = measure(model.float().eval(), spec["cfa"], packed_shape(spec["cfa"], lat) if lat else None,
                     args.latency_runs)
        res = evaluate(str(ref), "synthetic", limit=args.eval_limit, threads=1, progress=progress)
        return {**m, "psnr": res["psnr"], "ssim": res["ssim"], "per_ratio": res["per_ratio"], "pairs": res["n"]}

    rows = {"unpruned": score(args.model)}
    for r in [float(x) for x in args.ratios.split(",")]:
        for iters in (0, args.finetune_iters):
            name = f"ratio {r:g}" + (f" + {iters} fine-tune iters" if iters else "")
            run = work / f"r{r:g}-ft{iters}"
            prune(args.model, run, ratio=r, scope=args.scope, importance=args.importance, finetune_iters=iters,
                  batch_size=args.batch_size, patch=args.patch, evaluate=False, latency_size=None,
                  progress=progress)
            rows[name] = {**score(run), "ratio": r, "finetune_iters": iters,
                          "widths": load_checkpoint(run)[1].get("widths")}
            print(f"{name}: {rows[name]['psnr']:.2f} dB, {rows[name]['macs']['1920x1080'] / 1e9:.2f} GMACs",
                  flush=True)
    meta = {"model": args.model, "scope": args.scope, "importance": args.importance,
            "finetune": f"{args.finetune_iters} iters, batch {args.batch_size}, patch {args.patch} raw px, "
                        f"L1 to the unpruned model on synthetic inputs",
            "latency": f"torch {torch.__version__} CPU ({platform.machine()}), 1 thread, median of "
                       f"{args.latency_runs}, one {args.latency_size} raw frame (packed, padded to 16), fp32",
            "macs": "conv + transposed conv MACs per raw frame, packed and padded to 16",
            "eval": "reference validation set, float sRGB vs LibRaw-rendered long exposure"}
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out.with_suffix(".json")) as tmp:
        Path(tmp).write_text(json.dumps(portable({"meta": meta, "rows": rows}), indent=1) + "\n")
    lines = [f"# Pruning sweep of `{args.model}`", "", *(f"- {k}: {v}" for k, v in meta.items()), "",
             "| model | widths | params | GMACs @1920x1080 | GMACs @4240x2832 | latency ms | PSNR | SSIM |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r.get('widths', '32,64,128,256,512')} | {r['params'] / 1e6:.2f} M | "
                     f"{r['macs']['1920x1080'] / 1e9:.2f} | {r['macs']['4240x2832'] / 1e9:.1f} | "
                     f"{r.get('latency_ms', float('nan')):.0f} | {r['psnr']:.2f} | {r['ssim']:.4f} |")
    lines += ["", f"![PSNR vs MACs]({out.name}.png)", "",
              f"Command: `python benchmarks/prune_sweep.py --model {args.model} --ratios {args.ratios} "
              f"--finetune-iters {args.finetune_iters} --out {args.out}`", ""]
    with atomic_path(out.with_suffix(".md")) as tmp:
        Path(tmp).write_text("\n".join(lines))
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for ft, marker in ((0, "o"), (args.finetune_iters, "s")):
        pts = [(r["macs"]["1920x1080"] / 1e9, r["psnr"]) for r in rows.values() if r.get("finetune_iters") == ft]
        if pts:
            ax.plot(*zip(*sorted(pts)), marker=marker, label=f"pruned, {ft} fine-tune iters")
    u = rows["unpruned"]
    ax.scatter([u["macs"]["1920x1080"] / 1e9], [u["psnr"]], color="k", label="unpruned", zorder=3)
    ax.set_xscale("log")
    ax.set_xlabel("GMACs per 1920x1080 raw frame (conv, log)")
    ax.set_ylabel("PSNR on the reference set (dB)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(out.with_suffix(".png")) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Distillation ablation: pruned-teacher init vs scratch, output-only vs output+feature KD, ground-truth term.

Every run distils the same teacher into the same student architecture (the teacher's widths pruned by
``--prune-ratio``, uniform, round-to 8: for the SID U-Net at 0.75 that is 8,16,32,64,128) with the same
data, steps and seed; only the initialisation, the KD terms and the ground-truth and chroma weights change.
Each student is scored on the reference validation set (``darkc eval --data synthetic``) against ground truth
and against the teacher.

    python benchmarks/distill_ablation.py --teacher teacher --steps 400 --out benchmarks/results/distill_ablation

Writes ``ablation.md`` and ``ablation.json`` in ``--out`` (run folders under ``--work``).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch

from darkc.provenance import portable

RUNS = [  # name, init, kd, ground-truth weight, chroma weight
    ("scratch / output", "scratch", "output", 0.0, 0.0),
    ("pruned / output", "pruned", "output", 0.0, 0.0),
    ("scratch / output+features", "scratch", "output,features", 0.0, 0.0),
    ("pruned / output+features", "pruned", "output,features", 0.0, 0.0),
    ("pruned / output+features + ground truth 0.5", "pruned", "output,features", 0.5, 0.0),
    ("pruned / output+features + chroma 2", "pruned", "output,features", 0.0, 2.0),
]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--teacher", default="teacher")
    ap.add_argument("--prune-ratio", type=float, default=0.75)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--patch", type=int, default=256)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--eval-limit", type=int, default=None, help="first N reference pairs only (tiny runs)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", default=None, help="comma-separated run indices (0-based) to run")
    ap.add_argument("--work", default=None, help="folder for the run directories (default: OUT/runs)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)

    from darkc.compress.distill import distill
    from darkc.compress.prune import prune
    from darkc.errors import atomic_path

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    work = Path(args.work) if args.work else out / "runs"
    work.mkdir(parents=True, exist_ok=True)
    pruned = work / "pruned"
    if not (pruned / "model.json").is_file():
        prune(args.teacher, pruned, ratio=args.prune_ratio, scope="uniform", round_to=8, evaluate=False,
              latency_size=None, progress=False)
    pruned_spec = json.loads((pruned / "model.json").read_text())
    widths = pruned_spec.get("widths")
    results_path = out / "ablation.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {"runs": {}}
    chosen = range(len(RUNS)) if args.only is None else [int(i) for i in args.only.split(",")]
    for i in chosen:
        name, init, kd, gt, chroma = RUNS[i]
        run_dir = work / f"run{i}"
        if run_dir.exists():
            shutil.rmtree(run_dir)
        t0 = time.time()
        kw = {"student": str(pruned)} if init == "pruned" else {"student_widths": widths}
        rep = distill(args.teacher, run_dir, kd=kd, gt_weight=gt, chroma_weight=chroma, steps=args.steps,
                      batch_size=args.batch_size, patch=args.patch, lr=args.lr, val_every=0, ckpt_every=max(50, args.steps // 4), threads=args.threads,
                      eval_limit=args.eval_limit, latency_size=None, progress=sys.stderr.isatty(), **kw)
        s, t = rep["student"], rep["teacher_stats"]
        results["runs"][name] = {"init": init, "kd": kd, "gt_weight": gt, "chroma_weight": chroma,
                                 "psnr": s["psnr"], "ssim": s["ssim"],
                                 "psnr_vs_teacher": s["psnr_vs_teacher"], "ssim_vs_teacher": s["ssim_vs_teacher"],
                                 "teacher_psnr": t["psnr"], "teacher_ssim": t["ssim"],
                                 "macs_1920x1080": s["macs"]["1920x1080"], "params": s["params"],
                                 "seconds": time.time() - t0, "threads": args.threads, "command": rep["command"]}
        results.pop("reading", None)  # a hand-written reading of the old figures no longer holds
        results.update(teacher=str(args.teacher), steps=args.steps, batch_size=args.batch_size, patch=args.patch,
                       lr=args.lr, widths=widths, eval_limit=args.eval_limit, host=f"torch {torch.__version__} CPU")
        out.mkdir(parents=True, exist_ok=True)
        with atomic_path(results_path) as tmp:
            Path(tmp).write_text(json.dumps(portable(results), indent=1) + "\n")
        print(f"{name}: PSNR {s['psnr']:.2f} dB, vs teacher {s['psnr_vs_teacher']:.2f} dB", flush=True)
    with atomic_path(out / "ablation.md") as tmp:
        Path(tmp).write_text(format_md(results))
    return 0


def format_md(results: dict) -> str:
    runs = results["runs"]
    lines = ["# Distillation ablation", "",
             f"Teacher `{results['teacher']}`; student widths {results['widths']} "
             f"({next(iter(runs.values()))['macs_1920x1080'] / 1e9:.2f} GMACs per 1920x1080 raw frame, conv-only, "
             f"packed and padded to 16); {results['steps']} steps, batch {results['batch_size']}, "
             f"patch {results['patch']} raw px, Adam lr {results['lr']} cosine, synthetic pairs, seed 0; "
             f"{results['host']} (minutes: wall time at the run's thread count). PSNR/SSIM on the reference validation set"
             + (f" (first {results['eval_limit']} pairs)" if results.get("eval_limit") else "") + ".", "",
             "| init / KD terms | PSNR vs GT | SSIM vs GT | PSNR vs teacher | teacher PSNR vs GT | minutes | threads |",
             "|---|---|---|---|---|---|---|"]
    for name, r in runs.items():
        lines.append(f"| {name} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['psnr_vs_teacher']:.2f} | "
                     f"{r['teacher_psnr']:.2f} | {r['seconds'] / 60:.1f} | {r['threads']} |")
    if results.get("reading"):
        lines += ["", "Reading: " + results["reading"]]
    lines += ["", "Commands: " + "; ".join(f"`{r['command']}`" for r in runs.values()), ""]
    return portable("\n".join(lines))


if __name__ == "__main__":
    raise SystemExit(main())

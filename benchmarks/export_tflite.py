"""Export report: one model as ONNX fp32/int8 and TFLite fp32/fp16/int8 - quality, parity, size, graph, latency.

    python benchmarks/export_tflite.py --model teacher --size 768x768 --out benchmarks/results/export_teacher

writes <out>.md and <out>.json (``--keep DIR`` keeps the exported artifact folder, else it is deleted). For each file:
PSNR/SSIM vs ground truth on the reference validation set (``darkc eval``; every reference image fits one
768x768 window, so fixed-size models run one tile per image), parity with PyTorch (``check_parity``), file size,
TFLite op counts / layout Transposes / dtype of DEPTH_TO_SPACE and TRANSPOSE_CONV, host latency (median of
``--repeat`` runs on one input at the export size, after one warm-up) and the per-layer INT8 SQNR tables.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from darkc.errors import atomic_path
from darkc.provenance import portable
from darkc.evaluate import evaluate
from darkc.export import export
from darkc.export.diagnose import format_table, layer_sqnr
from darkc.inference import load_runner

#: (label, target, precision, file name, extra export options)
VARIANTS = (
    ("ONNX FP32", "onnx", "fp32", "model.onnx", {}),
    ("ONNX INT8", "onnx", "int8", "model-int8.onnx", {}),
    ("TFLite FP32", "tflite", "fp32", "model.tflite", {}),
    ("TFLite FP16", "tflite", "fp16", "model-fp16.tflite", {}),
    ("TFLite INT8", "tflite", "int8", "model-int8.tflite", {}),
    ("TFLite INT8 PRELU", "tflite", "int8", "model-int8-prelu.tflite", {"int8_activation": "prelu"}),
)


def latency_ms(ref, size: tuple[int, int], channels: int, threads: int, repeat: int) -> float:
    runner = load_runner(ref, threads=threads)
    x = np.random.default_rng(0).uniform(0, 1, (1, channels, *size)).astype(np.float32)
    runner(x)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        runner(x)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="teacher")
    ap.add_argument("--size", default="768x768", help="fixed export size in raw px (HxW)")
    ap.add_argument("--samples", type=int, default=32, help="int8 calibration samples")
    ap.add_argument("--limit", type=int, default=None, help="only the first N reference pairs")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--only", default=None, help="comma-separated labels to run (default: all)")
    ap.add_argument("--out", default="benchmarks/results/export_teacher")
    ap.add_argument("--keep", default=None, help="keep the exported files in this folder")
    args = ap.parse_args(argv)

    from darkc.models import load_checkpoint, resolve_model_ref

    import tempfile

    out = Path(args.out)
    scratch = None if args.keep else tempfile.TemporaryDirectory(prefix="darkc-export-bench-")
    files = Path(args.keep) if args.keep else Path(scratch.name) / "art"
    _, src = resolve_model_ref(args.model)
    _, spec = load_checkpoint(src)
    h, w = (int(v) for v in args.size.lower().split("x"))
    packed = (h // spec["scale"], w // spec["scale"])
    rows = []

    t0 = time.time()
    torch_eval = evaluate(args.model, "synthetic", threads=args.threads, limit=args.limit, progress=False)
    rows.append({"label": "PyTorch FP32", "file": str(src / "model.safetensors"),
                 "bytes": (src / "model.safetensors").stat().st_size, "psnr": torch_eval["psnr"],
                 "ssim": torch_eval["ssim"], "per_ratio": torch_eval["per_ratio"],
                 "latency_ms": latency_ms(args.model, packed, spec["in_channels"], args.threads, args.repeat)})
    print(f"PyTorch FP32: {torch_eval['psnr']:.3f} dB ({time.time() - t0:.0f} s)", flush=True)
    only = set(args.only.split(",")) if args.only else None
    diagnoses = {}
    for label, target, precision, name, options in VARIANTS:
        if only and label not in only:
            continue
        t0 = time.time()
        rep = export(args.model, files / name, target=target, precision=precision, input_size=args.size,
                     samples=args.samples, command=" ".join(sys.argv), **options)
        export_s = time.time() - t0
        res = evaluate(rep["file"], "synthetic", threads=args.threads, limit=args.limit, progress=False)
        row = {"label": label, "file": rep["file"], "bytes": rep["bytes"], "export_s": round(export_s, 1),
               "parity_psnr_db": rep["parity"]["psnr_db"], "parity_max_abs": rep["parity"]["max_abs"],
               "psnr": res["psnr"], "ssim": res["ssim"], "per_ratio": res["per_ratio"],
               "latency_ms": latency_ms(rep["file"], packed, spec["in_channels"], args.threads, args.repeat)}
        if target == "tflite":
            row.update({k: rep[k] for k in ("layout_transposes", "depth_to_space", "transpose_conv")},
                       op_counts=rep["graph"]["op_counts"])
        if "kernels" in rep:
            row["xnnpack_vs_builtin_psnr_db"] = rep["kernels"]["xnnpack_vs_builtin_psnr_db"]
        if precision == "int8":
            diagnoses[label] = layer_sqnr(rep["file"], samples=2)
            row["calibration"] = {k: v for k, v in rep["calibration"].items() if k != "ranges"}
        rows.append(row)
        print(f"{label}: {res['psnr']:.3f} dB, parity {row['parity_psnr_db']} dB, {row['bytes'] / 1e6:.2f} MB, "
              f"{row['latency_ms']:.0f} ms ({time.time() - t0:.0f} s)", flush=True)

    host = {"machine": platform.machine(), "cpus": os.cpu_count(), "python": sys.version.split()[0],
            "threads": args.threads, "note": "2-core host shared with other jobs: latencies are upper bounds"}
    result = {"model": args.model, "size_raw": [h, w], "size_packed": list(packed), "samples": args.samples,
              "limit": args.limit, "repeat": args.repeat, "host": host, "rows": rows, "int8_layer_sqnr": diagnoses}
    ref = rows[0]["psnr"]
    lines = [f"# Export report: {args.model} at {h}x{w} raw px (packed {packed[0]}x{packed[1]})", "",
             f"Command: `python benchmarks/export_tflite.py --model {args.model} --size {args.size} "
             f"--samples {args.samples}{'' if args.limit is None else f' --limit {args.limit}'} --threads "
             f"{args.threads} --repeat {args.repeat}`", "",
             f"Quality: reference validation set ({torch_eval['n']} pairs), float sRGB vs the LibRaw-rendered long "
             f"exposure. Parity: PSNR of the file's output vs PyTorch on 3 synthetic inputs (range-based peak). "
             f"Latency: median of {args.repeat} runs, {args.threads} thread(s), one {packed[0]}x{packed[1]} packed "
             f"input; {host['note']}.", "",
             "| model | PSNR dB | Δ vs PyTorch | SSIM | parity dB | XNNPACK vs built-in dB | size MB | latency ms "
             "| TFLite graph |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        graph = ""
        if "op_counts" in r:
            graph = (f"{sum(r['op_counts'].values())} ops, {r['layout_transposes']} Transposes; DEPTH_TO_SPACE "
                     f"{r['depth_to_space']}; TRANSPOSE_CONV {r['transpose_conv']}")
        lines.append(f"| {r['label']} | {r['psnr']:.3f} | {r['psnr'] - ref:+.3f} | {r['ssim']:.4f} | "
                     f"{r.get('parity_psnr_db', '-')} | {r.get('xnnpack_vs_builtin_psnr_db', '-')} | "
                     f"{r['bytes'] / 1e6:.2f} | {r['latency_ms']:.0f} | {graph} |")
    for label, table in diagnoses.items():
        lines += ["", f"## {label}: per-layer SQNR (2 synthetic inputs)", "", format_table(table, "md")]
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out.with_suffix(".json")) as tmp:
        Path(tmp).write_text(json.dumps(portable(result), indent=2) + "\n")
    with atomic_path(out.with_suffix(".md")) as tmp:
        Path(tmp).write_text(portable("\n".join(lines)) + "\n")
    print(f"wrote {out.with_suffix('.md')} and {out.with_suffix('.json')}")
    if scratch is not None:
        scratch.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())

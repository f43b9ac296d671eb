"""What INT8 costs each shipped student in quality, on the reference set and the held-out sensor.

    python benchmarks/int8_quality.py --model student --model student-raw --out benchmarks/results/int8_quality

Each model is quantised the way `darkc quantize` does by default (minmax calibration on 32 synthetic samples from the
training sensors, float I/O) to a full-integer TFLite file and an ONNX Runtime QDQ file (per-channel weights), both at
a fixed 512x768 raw frame (the reference frames' size), and every file is scored with `darkc eval`'s protocol on the
reference set and the out-of-distribution set beside the FP32 model. Writes <out>.md/.json.
"""
from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

from darkc.errors import DarkcError
from darkc.evaluate import evaluate
from darkc.export import export
from darkc.provenance import write_records

SETS = {"reference": "synthetic", "held-out sensor": "ood"}
SIZE = "512x768"
FILES = {"TFLite int8": "tflite", "ONNX int8": "onnx"}


def scores(model, threads: int) -> dict:
    out = {}
    for name, data in SETS.items():
        r = evaluate(model, data, threads=threads, progress=False)
        out[name] = {k: r[k] for k in ("psnr", "ssim", "deltae", "checker")}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", action="append", help="shipped name or artifact dir; repeatable (default: student)")
    p.add_argument("--out", default="benchmarks/results/int8_quality")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    t0 = time.monotonic()
    rows = {}
    try:
        with tempfile.TemporaryDirectory(prefix="darkc-int8-quality-") as tmp:
            for model in a.model or ["student"]:
                rows[model] = {"FP32 (torch)": scores(model, a.threads)}
                for label, target in FILES.items():
                    rep = export(model, Path(tmp) / f"{Path(model).name}-{target}", target=target, precision="int8",
                                 input_size=SIZE, calib="synthetic",
                                 command=f"python benchmarks/int8_quality.py ({label} of {model})")
                    rows[model][label] = scores(rep["file"], a.threads)
                    print(f"{model} {label}: {rows[model][label]['reference']['psnr']:.2f} / "
                          f"{rows[model][label]['held-out sensor']['psnr']:.2f} dB", file=sys.stderr, flush=True)
    except DarkcError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    command = "python benchmarks/int8_quality.py " + " ".join(argv if argv is not None else sys.argv[1:])
    data = {"command": command, "size": SIZE, "rows": rows, "wall_s": time.monotonic() - t0,
            "host": f"{platform.machine()} CPU, {a.threads} threads; ONNX Runtime and LiteRT (XNNPACK) CPU"}
    write_records(a.out, data, markdown(data))
    print(f"wrote {a.out}.md/.json in {data['wall_s']:.0f} s", file=sys.stderr)
    return 0


def markdown(data: dict) -> str:
    lines = ["# What INT8 costs each student", "", f"Command: `{data['command']}` ({data['host']}, "
             f"{data['wall_s']:.0f} s).", "",
             f"INT8 files as `darkc quantize` makes them by default (minmax calibration, 32 synthetic samples from the "
             f"training sensors, float I/O), fixed {data['size']} raw px. Each cell: sRGB PSNR (change from FP32) / "
             "SSIM / CIEDE2000 / checker (levels of 255), `darkc eval`'s protocol, 24 pairs per set.", "",
             "| model | file | " + " | ".join(SETS) + " |", "|---|---|" + "---|" * len(SETS)]
    for model, files in data["rows"].items():
        fp32 = files["FP32 (torch)"]
        for label, s in files.items():
            cells = [f"{v['psnr']:.2f}" + ("" if label.startswith("FP32") else f" ({v['psnr'] - fp32[k]['psnr']:+.2f})")
                     + f" / {v['ssim']:.3f} / {v['deltae']:.2f} / {v['checker']:.2f}" for k, v in s.items()]
            lines.append(f"| {model} | {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())

"""Mobile U-Net design study: MACs, params, host INT8/FP32 time, emulated Cortex-A78 and Ethos-U cost, CPU fallback.

    python benchmarks/mobile_arch.py --out benchmarks/results/mobile_arch [--work DIR] [--only LABEL,...]

For each variant (SID U-Nets and mobile-unet designs, all raw output with the noise-std input, like teacher-raw;
seeded random weights: cost does not depend on the weights): conv MACs and params for a 1920x1080 raw frame
(packed 544x960 after padding, conv-only), then INT8 (int8 I/O) and FP32 TFLite files exported with darkc at
``--size`` raw px and

- host: LiteRT (XNNPACK), 1 thread, FP32 and INT8 timed interleaved in one process (CPU time of the calling
  thread, so host load inflates it less than wall time), and their ratio;
- cortex-a78: guest instructions of one INT8 inference counted under QEMU (darkc's ARM setup, -cpu cortex-a76),
  scaled by pixels to the frame, / (IPC x clock) of darkc's cortex-a78 profile (an estimate; IPC assumed);
- ethos-u65-512 and ethos-u55-256: Vela's estimate for the INT8 file (compiled, not run), scaled by pixels to the
  frame; NPU op share and every operator Vela leaves on the CPU, with its reason.

Everything is measured at ``--size`` (default 544x960 raw, a quarter of the frame, to keep the exports and the
emulation short on a shared host) and scaled by pixels: say so wherever a figure is quoted. Exports are kept in
``--work`` and reused when present.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from int8_speed import cpu_flags, cpu_name      # benchmarks/ is on sys.path when a script in it runs

from darkc.errors import atomic_path
from darkc.provenance import portable
from darkc.models import build_model, count_macs, count_params, normalize_spec, save_checkpoint

NOISE = {"output": "raw", "input": {"noise": "std-map"}}
#: (label, spec); SID rows are the baselines: the student's widths, and widths whose MACs match mobile-ds-16.
VARIANTS = (
    ("sid 8-128 (student widths)", {"arch": "sid-unet", "widths": [8, 16, 32, 64, 128], **NOISE}),
    ("sid 4-64 (MACs ~ mobile ds 16-128)", {"arch": "sid-unet", "widths": [4, 8, 16, 32, 64], **NOISE}),
    ("mobile ds 16-128", {"arch": "mobile-unet", "block": "ds", "widths": [16, 24, 48, 96, 128], **NOISE}),
    ("mobile ds 8-128", {"arch": "mobile-unet", "block": "ds", "widths": [8, 16, 32, 64, 128], **NOISE}),
    ("mobile ir 8-128", {"arch": "mobile-unet", "block": "ir", "widths": [8, 16, 32, 64, 128], **NOISE}),
    ("mobile conv 8-64", {"arch": "mobile-unet", "block": "conv", "widths": [8, 16, 24, 48, 64], **NOISE}),
    ("mobile ds s2 16-128", {"arch": "mobile-unet", "block": "ds", "stem": "s2", "widths": [16, 24, 48, 96, 128],
                             **NOISE}),
    ("mobile ds s2 24-160", {"arch": "mobile-unet", "block": "ds", "stem": "s2", "widths": [24, 32, 64, 128, 160],
                             **NOISE}),
    ("mobile ds s2 16-128 bilinear", {"arch": "mobile-unet", "block": "ds", "stem": "s2", "upsample": "bilinear",
                                      "widths": [16, 24, 48, 96, 128], **NOISE}),
)
FRAME = (1088, 1920)          # raw HxW of a 1920x1080 frame padded to the size multiple
NPUS = ("ethos-u65-512", "ethos-u55-256")
CORE = "cortex-a78"


def slug(label: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in label.split(" (")[0]).strip("-")


def export_pair(spec: dict, work: Path, size: str) -> tuple[Path, Path]:
    """FP32 and INT8 (int8 I/O) TFLite files of a seeded random ``spec`` model at ``size``; reused when present."""
    from darkc.export import export

    fp32, int8 = work / "model.tflite", work / "model-int8.tflite"
    if not (work / "model.json").exists():
        torch.manual_seed(0)
        save_checkpoint(build_model(spec), spec, work)
    if not fp32.exists():
        export(work, fp32, target="tflite", input_size=size)
    if not int8.exists():
        export(work, int8, target="tflite", precision="int8", input_size=size, samples=4, io="int8")
    return fp32, int8


def measure(label: str, spec: dict, work: Path, size: str) -> dict:
    from darkc.export.tflite import graph_info
    from darkc.latency import arm
    from darkc.latency.npu import vela_estimate
    from darkc.latency.op_profile import interleaved, op_profile

    spec = normalize_spec(spec)
    model = build_model(spec)
    h, w = (int(v) for v in size.split("x"))
    scale = (FRAME[0] * FRAME[1]) / (h * w)
    row = {"label": label, "spec": {k: spec[k] for k in ("arch", "widths", "output", "input") if k in spec},
           "block": spec.get("block"), "upsample": spec.get("upsample"), "stem": spec.get("stem"),
           "macs_frame": count_macs(model, (spec["in_channels"], FRAME[0] // 2, FRAME[1] // 2)),
           "params": count_params(model), "size": size, "pixel_scale": scale}
    fp32, int8 = export_pair(spec, work, size)
    info = graph_info(int8)
    row["int8_ops"] = info["op_counts"]
    row["int8_float_ops"] = len(info["float_ops"])
    timing = interleaved({"fp32": fp32, "int8": int8}, threads=1, rounds=5)
    row["host"] = {"fp32_ms": timing["models"]["fp32"]["median_ms"], "int8_ms": timing["models"]["int8"]["median_ms"],
                   "fp32_over_int8": timing["ratios"]["fp32/int8"]["median_round_ratio"],
                   "method": timing["method"]}
    prof = op_profile(int8, threads=1, runs=3)
    row["int8_by_op"] = {k: {"count": v["count"], "ms": round(v["ms"], 2), "share": round(v["share"], 3)}
                         for k, v in prof["by_op"].items()}
    profile = arm.PROFILES[CORE]
    counted = arm.count_instructions(int8, "litert", (1, h // 2, w // 2, spec["in_channels"]), profile)
    insn = counted["instructions"] * scale
    row[CORE] = {"instructions_frame": insn, "latency_ms": arm.estimate_ms(insn, profile),
                 "instructions_measured": counted["instructions"], "qemu_cpu": counted["qemu_cpu"],
                 "method": f"QEMU guest instructions at {size} raw x{scale:.2f} / (IPC {profile.ipc} x "
                           f"{profile.clock_ghz} GHz), 1 thread (estimated)"}
    for npu in NPUS:
        est = vela_estimate(int8, npu)
        row[npu] = {"latency_ms": est["latency_ms"] * scale, "latency_ms_measured_size": est["latency_ms"],
                    "npu_share": est["npu_share"], "cpu_ops": est["cpu_ops"], "fallbacks": est["fallbacks"],
                    "sram_used_kib": est["sram_used_kib"], "caveat": est["caveat"],
                    "method": f"Vela {est['vela']} estimate at {size} raw x{scale:.2f} (compiled, not run)"}
    return row


def format_md(rows: list[dict], args) -> str:
    lines = ["# Mobile U-Net design study", "",
             f"Command: `python benchmarks/mobile_arch.py --out {args.out} --size {args.size}`", "",
             f"All variants: raw output + noise-std input (like teacher-raw), seeded random weights (cost does not "
             f"depend on them). MACs: conv-only, per 1920x1080 raw frame (packed 544x960). Latencies were measured "
             f"at {args.size} raw px and scaled by pixels to the 1088x1920 frame (x{rows[0]['pixel_scale']:.2f}). "
             f"Host: {cpu_name()} ({', '.join(cpu_flags())}), LiteRT XNNPACK, 1 thread, CPU time of the calling "
             f"thread, FP32 and INT8 interleaved (the host is shared and loaded: compare ratios, not absolute ms). "
             f"{CORE}: estimated from QEMU instruction counts (IPC assumed), 1 core. Ethos-U: Vela estimates.", "",
             "| variant | GMACs | params | host INT8 ms | host FP32 ms | FP32/INT8 | A78 INT8 ms (est.) | U65-512 ms "
             "(Vela) | U55-256 ms (Vela) | NPU ops | CPU-fallback ops |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        fb = sorted({f["op"] for n in NPUS for f in r[n]["fallbacks"]}) or ["none"]
        lines.append(f"| {r['label']} | {r['macs_frame'] / 1e9:.2f} | {r['params']:,} | "
                     f"{r['host']['int8_ms'] * r['pixel_scale']:.0f} | {r['host']['fp32_ms'] * r['pixel_scale']:.0f} | "
                     f"{r['host']['fp32_over_int8']:.2f} | {r[CORE]['latency_ms']:.1f} | "
                     f"{r['ethos-u65-512']['latency_ms']:.1f} | {r['ethos-u55-256']['latency_ms']:.1f} | "
                     f"{100 * r['ethos-u65-512']['npu_share']:.0f} % | {', '.join(fb)} |")
    lines += ["", "Host INT8 time by operator (share of the summed one-operator times, LiteRT XNNPACK, 1 thread):", "",
              "| variant | top operators (share) |", "|---|---|"]
    for r in rows:
        top = ", ".join(f"{k} {100 * v['share']:.0f} %" for k, v in list(r["int8_by_op"].items())[:5])
        lines.append(f"| {r['label']} | {top} |")
    lines += ["", "Host INT8 operators LiteRT runs on its built-in kernels instead of XNNPACK (share of the INT8 time):",
              ""]
    for r in rows:
        off = [f"{k.split(' (')[0]} x{v['count']} ({100 * v['share']:.0f} %)" for k, v in r["int8_by_op"].items()
               if k.endswith("(builtin)")]
        lines.append(f"- {r['label']}: {', '.join(off) or 'none'}")
    lines += ["", "Note: a raw head is zero at initialisation (the untrained net is the identity), so in these "
              "random-weight files the INT8 residual ADD gets a head-output scale near 1e-11, outside the scale "
              "ratios XNNPACK's int8 ADD accepts: that ADD runs on the built-in kernel here; a trained head does not "
              "cause this.", "", "INT8 operator counts:", "", "| variant | ops |", "|---|---|"]
    for r in rows:
        lines.append(f"| {r['label']} | {', '.join(f'{k} {v}' for k, v in r['int8_ops'].items())} |")
    caveats = [f"- {r['label']} {n}: {r[n]['caveat']}" for r in rows for n in NPUS if r[n]["caveat"]]
    if caveats:
        lines += ["", "Vela SRAM caveats (at the measured size):", "", *caveats]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="benchmarks/results/mobile_arch")
    ap.add_argument("--size", default="544x960", help="raw HxW the files are exported and measured at")
    ap.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "darkc-mobile-arch"),
                    help="keep the exports here and reuse them")
    ap.add_argument("--only", default=None, help="comma-separated variant slugs to (re)measure; the others are "
                    "taken from --out's JSON when there")
    ap.add_argument("--merge", nargs="*", default=None, help="JSON files of other runs (same --size) whose variants "
                    "join --out's; nothing is measured")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    work = Path(args.work)
    rows_path = out.with_suffix(".json")
    old = {r["label"]: r for r in json.loads(rows_path.read_text())["variants"]} if rows_path.exists() else {}
    only = set(args.only.split(",")) if args.only else None
    if args.merge is not None:
        for path in args.merge:
            old.update({r["label"]: r for r in json.loads(Path(path).read_text())["variants"]})
        only = set()
    rows = []
    for label, spec in VARIANTS:
        if only is not None and slug(label) not in only:
            if label in old:
                rows.append(old[label])
            continue
        print(f"[mobile_arch] {label}", file=sys.stderr, flush=True)
        (work / slug(label)).mkdir(parents=True, exist_ok=True)
        rows.append(measure(label, spec, work / slug(label), args.size))
        record = {"variants": rows, "size": args.size, "frame": list(FRAME),
                  "host": {"cpu": cpu_name(), "simd": cpu_flags(), "cores": os.cpu_count()},
                  "command": f"python benchmarks/mobile_arch.py --out {args.out} --size {args.size}"}
        with atomic_path(rows_path) as tmp:
            Path(tmp).write_text(json.dumps(portable(record), indent=1, default=jsonable) + "\n")
    if args.merge is not None:
        record = {"variants": rows, "size": args.size, "frame": list(FRAME),
                  "host": {"cpu": cpu_name(), "simd": cpu_flags(), "cores": os.cpu_count()},
                  "command": f"python benchmarks/mobile_arch.py --out {args.out} --size {args.size}"}
        with atomic_path(rows_path) as tmp:
            Path(tmp).write_text(json.dumps(portable(record), indent=1, default=jsonable) + "\n")
    with atomic_path(out.with_suffix(".md")) as tmp:
        Path(tmp).write_text(format_md(rows, args))
    print(out.with_suffix(".md").read_text())
    return 0


def jsonable(v):
    """JSON for numpy scalars (and str of anything else) in the records."""
    if isinstance(v, (np.integer, np.floating)):
        return v.item()
    return str(v)


if __name__ == "__main__":
    sys.exit(main())

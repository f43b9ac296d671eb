"""Why INT8 is (not) faster than FP32 on this host: per-operator LiteRT profile of FP32 and INT8 TFLite exports.

    python benchmarks/int8_speed.py --model student --size 1088x1920 --out benchmarks/results/int8_speed \
        [--extra LABEL=MODEL ...] [--work DIR]

For each model (the shipped student and any ``--extra`` model) an FP32 and an INT8 (float I/O, darkc's
default) TFLite file are exported at ``--size`` raw px with ``darkc export`` (kept in ``--work`` and reused), then:

- every operator is cut out into a one-operator model and timed alone (LiteRT, XNNPACK delegate, 1 thread, CPU
  time of the calling thread, median of ``--runs``), and whether XNNPACK took it or LiteRT's built-in kernel ran
  it is read from the interpreter (see :mod:`darkc.latency.op_profile`);
- the whole FP32 and INT8 graphs are timed interleaved in one process (``--rounds`` rounds), and the ratio of
  the two is reported: the host is shared and loaded, so absolute times drift, the ratio much less.

Writes ``<out>.md`` and ``<out>.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

from darkc.errors import atomic_path
from darkc.provenance import portable


def cpu_flags() -> list[str]:
    """SIMD features that decide XNNPACK's int8 kernels on x86 (VNNI doubles int8 dot-product throughput)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next((ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), [])
    return sorted(f for f in set(flags) if f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8"))


def cpu_name() -> str:
    try:
        for ln in Path("/proc/cpuinfo").read_text().splitlines():
            if ln.startswith("model name"):
                return ln.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def export_pair(ref: str, work: Path, size: str, samples: int) -> tuple[Path, Path]:
    """FP32 and INT8 TFLite files of ``ref`` (a model reference, or a JSON model spec: a seeded random model)."""
    from darkc.export import export

    work.mkdir(parents=True, exist_ok=True)
    if ref.lstrip().startswith("{"):
        import torch

        from darkc.models import build_model, save_checkpoint

        spec = json.loads(ref)
        if not (work / "ckpt" / "model.json").exists():
            torch.manual_seed(0)
            save_checkpoint(build_model(spec), spec, work / "ckpt")
        ref = str(work / "ckpt")
    fp32, int8 = work / "model.tflite", work / "model-int8.tflite"
    if not fp32.exists():
        export(ref, fp32, target="tflite", input_size=size)
    if not int8.exists():
        export(ref, int8, target="tflite", precision="int8", input_size=size, samples=samples)
    return fp32, int8


def compare(label: str, fp32: Path, int8: Path, runs: int, rounds: int) -> dict:
    from darkc.latency.op_profile import interleaved, op_profile

    prof = {"fp32": op_profile(fp32, runs=runs), "int8": op_profile(int8, runs=runs)}
    timing = interleaved({"fp32": fp32, "int8": int8}, rounds=rounds)
    return {"label": label, "files": {"fp32": str(fp32), "int8": str(int8)}, "profile": prof, "interleaved": timing,
            "fp32_over_int8": timing["ratios"]["fp32/int8"]["median_round_ratio"]}


def paired_rows(result: dict) -> list[dict]:
    """FP32 and INT8 operators side by side: the INT8 graph's QUANTIZE/DEQUANTIZE ops have no FP32 twin."""
    fp = result["profile"]["fp32"]["ops"]
    q = [r for r in result["profile"]["int8"]["ops"] if r["op"] not in ("QUANTIZE", "DEQUANTIZE")]
    extra = [r for r in result["profile"]["int8"]["ops"] if r["op"] in ("QUANTIZE", "DEQUANTIZE")]
    rows = []
    for a, b in zip(fp, q):
        rows.append({"op": a["op"], "out_shape": a["out_shape"], "macs": a["macs"], "fp32_ms": a["ms"],
                     "fp32_kernel": a["kernel"], "int8_ms": b["ms"], "int8_kernel": b["kernel"],
                     "int8_dtypes": b["dtypes"]})
    for b in extra:
        rows.append({"op": b["op"], "out_shape": b["out_shape"], "macs": 0, "fp32_ms": 0.0, "fp32_kernel": "-",
                     "int8_ms": b["ms"], "int8_kernel": b["kernel"], "int8_dtypes": b["dtypes"]})
    return rows


def groups(result: dict) -> dict[str, list[dict]]:
    """Paired operators in three groups: thin conv-type (<= 16 output channels), wide conv-type, the rest."""
    out = {"conv-type, thin": [], "conv-type, wide": [], "other": []}
    for row in paired_rows(result):
        if row["fp32_kernel"] == "-":
            out["other"].append(row)
        elif row["macs"]:
            out["conv-type, thin" if row["out_shape"][-1] <= 16 else "conv-type, wide"].append(row)
        else:
            out["other"].append(row)
    return out


def format_md(results: list[dict], args, host: dict, arch: dict | None = None) -> str:
    lines = ["# INT8 vs FP32 on the host: per-operator LiteRT profile", "",
             f"Command: `python benchmarks/int8_speed.py --model {args.model} --size {args.size} --out {args.out}"
             + "".join(f" --extra '{e}'" for e in args.extra or [])
             + (f" --arch-json {args.arch_json}" if args.arch_json else "") + "`", "",
             f"Host: {host['cpu']}, SIMD {', '.join(host['simd']) or 'unknown'}; LiteRT {host['litert']} "
             f"(XNNPACK delegate), 1 thread. Times are CPU time of the calling thread (the host is shared and "
             f"loaded; wall time is several times longer and noisy): compare ratios, not absolute ms. INT8 files: "
             f"darkc's default export (ai-edge-quantizer static int8, per-channel weights, float I/O).", "",
             "## Whole graph, FP32 and INT8 interleaved", "",
             "| model | size | FP32 ms | INT8 ms | FP32 / INT8 | sum of one-op FP32 / INT8 ms | ops not on XNNPACK |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        t = r["interleaved"]["models"]
        fb = [f"{o['op']} ({p})" for p in ("fp32", "int8") for o in r["profile"][p]["ops"] if o["kernel"] != "xnnpack"]
        lines.append(f"| {r['label']} | {args.size} | {t['fp32']['median_ms']:.1f} | {t['int8']['median_ms']:.1f} | "
                     f"{r['fp32_over_int8']:.2f} | {r['profile']['fp32']['sum_ms']:.1f} / "
                     f"{r['profile']['int8']['sum_ms']:.1f} | {', '.join(fb) or 'none'} |")
    lines += ["", "## Where INT8 gains and where it does not", "",
              "Summed one-operator times by group (conv-type = CONV_2D, DEPTHWISE_CONV_2D, TRANSPOSE_CONV; "
              "\"thin\" = at most 16 output channels; other = element-wise and data-movement ops):", "",
              "| model | group | ops | FP32 ms | INT8 ms | FP32 / INT8 |", "|---|---|---|---|---|---|"]
    for r in results:
        for name, rows in groups(r).items():
            fp, q = sum(x["fp32_ms"] for x in rows), sum(x["int8_ms"] for x in rows)
            lines.append(f"| {r['label']} | {name} | {len(rows)} | {fp:.1f} | {q:.1f} | "
                         f"{fp / q if q else float('nan'):.2f} |")
    if arch is not None:
        lines += ["", f"## FP32 / INT8 by architecture (from {args.arch_json}, measured at {arch['size']} raw, "
                      "INT8 with int8 I/O, same timing method)", "",
                  "| variant | GMACs (1920x1080) | FP32 ms | INT8 ms | FP32 / INT8 |", "|---|---|---|---|---|"]
        for v in arch["variants"]:
            lines.append(f"| {v['label']} | {v['macs_frame'] / 1e9:.2f} | {v['host']['fp32_ms']:.1f} | "
                         f"{v['host']['int8_ms']:.1f} | {v['host']['fp32_over_int8']:.2f} |")
    for r in results:
        lines += ["", f"## {r['label']}: time by operator type", "",
                  "| operator (kernel) | FP32 count | FP32 ms | FP32 share | INT8 count | INT8 ms | INT8 share |",
                  "|---|---|---|---|---|---|---|"]
        keys = list(dict.fromkeys(list(r["profile"]["fp32"]["by_op"]) + list(r["profile"]["int8"]["by_op"])))
        for k in keys:
            a = r["profile"]["fp32"]["by_op"].get(k, {"count": 0, "ms": 0.0, "share": 0.0})
            b = r["profile"]["int8"]["by_op"].get(k, {"count": 0, "ms": 0.0, "share": 0.0})
            lines.append(f"| {k} | {a['count']} | {a['ms']:.1f} | {100 * a['share']:.1f} % | {b['count']} | "
                         f"{b['ms']:.1f} | {100 * b['share']:.1f} % |")
        lines += ["", f"## {r['label']}: every operator", "",
                  "| # | op | output NHWC | MMACs | FP32 ms | INT8 ms | FP32/INT8 | INT8 GMAC/s | kernel FP32/INT8 |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for i, row in enumerate(paired_rows(r)):
            ratio = f"{row['fp32_ms'] / row['int8_ms']:.2f}" if row["fp32_ms"] and row["int8_ms"] else "-"
            rate = f"{row['macs'] / row['int8_ms'] / 1e6:.1f}" if row["macs"] and row["int8_ms"] else "-"
            lines.append(f"| {i} | {row['op']} | {'x'.join(map(str, row['out_shape'][1:]))} | "
                         f"{row['macs'] / 1e6:.1f} | {row['fp32_ms']:.2f} | {row['int8_ms']:.2f} | {ratio} | {rate} | "
                         f"{row['fp32_kernel']}/{row['int8_kernel']} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="student")
    ap.add_argument("--size", default="1088x1920", help="fixed export size in raw px (HxW)")
    ap.add_argument("--extra", action="append", help="LABEL=MODEL: also profile this model (a checkpoint, shipped "
                    "name, or a JSON model spec for a seeded random model: latency does not depend on the weights)")
    ap.add_argument("--samples", type=int, default=8, help="int8 calibration samples")
    ap.add_argument("--runs", type=int, default=5, help="timed runs per one-operator model")
    ap.add_argument("--rounds", type=int, default=8, help="interleaved whole-graph rounds")
    ap.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "darkc-int8-speed"),
                    help="keep the exports here and reuse them")
    ap.add_argument("--out", default="benchmarks/results/int8_speed")
    ap.add_argument("--arch-json", default=None, help="also tabulate FP32/INT8 per variant from a "
                    "benchmarks/mobile_arch.py JSON")
    args = ap.parse_args(argv)
    from importlib.metadata import version

    host = {"cpu": cpu_name(), "simd": cpu_flags(), "cores": os.cpu_count(), "litert": version("ai-edge-litert")}
    models = [(args.model, args.model)] + [tuple(e.split("=", 1)) for e in args.extra or []]
    results = []
    for label, ref in models:
        print(f"[int8_speed] {label}", file=sys.stderr, flush=True)
        fp32, int8 = export_pair(ref, Path(args.work) / label.replace("/", "_").replace(" ", "_"), args.size,
                                 args.samples)
        results.append(compare(label, fp32, int8, args.runs, args.rounds))
    out = Path(args.out)
    with atomic_path(out.with_suffix(".json")) as tmp:
        Path(tmp).write_text(json.dumps(portable({"host": host, "size": args.size, "results": results}), indent=1) + "\n")
    with atomic_path(out.with_suffix(".md")) as tmp:
        arch = json.loads(Path(args.arch_json).read_text()) if args.arch_json else None
        Path(tmp).write_text(format_md(results, args, host, arch))
    print(out.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What INT8 costs each shipped student in quality and buys in speed, with and without float layers.

    python benchmarks/int8_quality.py --model student --model student-raw --out benchmarks/results/int8_quality

Each model is quantised the way `darkc quantize` does by default (minmax calibration on 32 synthetic samples from the
training sensors, float I/O, `--float-layers auto`: a raw-output model's full-resolution layers stay float) and, where
that keeps layers in float, also full-integer (`--float-layers none`), to a TFLite file and an ONNX Runtime QDQ file
(per-channel weights), both at a fixed 512x768 raw frame (the reference frames' size); every file is scored with
`darkc eval`'s protocol on the reference set and the out-of-distribution set beside the FP32 model. Then each TFLite
variant at 1920x1088 raw px: LiteRT (XNNPACK) on this host, 1 thread, measured, and one Cortex-A78, estimated from
instructions counted under QEMU (`darkc bench`). Writes <out>.md/.json.
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
from darkc.export.float_layers import resolve_float_layers
from darkc.latency.bench import bench, host_isa
from darkc.models import read_spec, resolve_model_ref
from darkc.provenance import write_records

SETS = {"reference": "synthetic", "held-out sensor": "ood"}
SIZE = "512x768"
FRAME = "1088x1920"
TARGETS = {"TFLite": "tflite", "ONNX": "onnx"}
ARM = "cortex-a78"
NPU = "ethos-u65-512"


def scores(model, threads: int) -> dict:
    out = {}
    for name, data in SETS.items():
        r = evaluate(model, data, threads=threads, progress=False)
        out[name] = {k: r[k] for k in ("psnr", "ssim", "deltae", "checker")}
    return out


def rules_of(model: str) -> list[str]:
    """``auto`` (the default), plus ``none`` and ``int16`` (--int16-layers full-res) when the default keeps layers of
    this model in float."""
    spec = read_spec(resolve_model_ref(model)[1])
    return ["auto"] + (["none", "int16"] if resolve_float_layers("auto", spec) != "none" else [])


def options(rule: str) -> dict:
    """export() options of a variant."""
    return {"float_layers": "auto", "int16_layers": "full-res"} if rule == "int16" else {"float_layers": rule}


def label(target: str, rule: str, model: str) -> str:
    if rule == "int16":
        return f"{target} int8, full-res int16 (--int16-layers full-res)"
    if rule == "none":
        return f"{target} int8, full integer (--float-layers none)"
    kept = resolve_float_layers(rule, read_spec(resolve_model_ref(model)[1]))
    return f"{target} int8 (default" + (": full-res layers float)" if kept != "none" else ": full integer)")


def speed(model: str, rules: list[str], tmp: Path, command: str) -> dict:
    """LiteRT host (1 thread, measured), one Cortex-A78 (estimated) and, for integer files, Ethos-U65-512 (Vela)
    latency of FP32 and each INT8 variant."""
    out = {}
    for name, precision, rule in [("FP32", "fp32", "auto")] + [(label("TFLite", r, model), "int8", r) for r in rules]:
        opts = {"samples": 4, **options(rule)} if precision == "int8" else {}
        rep = export(model, tmp / f"{Path(model).name}-{precision}-{rule}" / "model.tflite", target="tflite",
                     precision=precision, input_size=FRAME, command=command, **opts)
        integer = precision == "int8" and not rep["calibration"]["float_layers"]["ops"]
        r = bench(rep["file"], devices=["host", ARM] + ([NPU] if integer else []), threads=[1], runs=10,
                  parity=False)
        host, arm, npu = r["devices"]["host"], r["devices"][ARM], r["devices"].get(NPU)
        out[name] = {"host_ms": host["latency_ms"], "arm_ms": arm["latency_ms"], "arm_instructions":
                     arm.get("instructions"), "arm_method": arm.get("method"), "arm_error_band":
                     (arm.get("error_band") or {}).get("text"), "macs": (r.get("graph") or {}).get("macs"),
                     "npu_ms": npu["latency_ms"] if npu else None, "npu_tile": (npu or {}).get("tile")}
        print(f"{model} {name}: host {host['latency_ms']:.1f} ms, {ARM} {arm['latency_ms']:.1f} ms (estimated)"
              + (f", {NPU} {npu['latency_ms']:.1f} ms (Vela)" if npu else ""), file=sys.stderr, flush=True)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", action="append", help="shipped name or artifact dir; repeatable (default: student)")
    p.add_argument("--out", default="benchmarks/results/int8_quality")
    p.add_argument("--threads", type=int, default=2, help="threads for the quality runs (latency: 1)")
    a = p.parse_args(argv)
    t0 = time.monotonic()
    command = "python benchmarks/int8_quality.py " + " ".join(argv if argv is not None else sys.argv[1:])
    rows, latency = {}, {}
    try:
        with tempfile.TemporaryDirectory(prefix="darkc-int8-quality-") as tmp:
            for model in a.model or ["student"]:
                rules = rules_of(model)
                rows[model] = {"FP32 (torch)": scores(model, a.threads)}
                for target, key in TARGETS.items():
                    for rule in rules:
                        name = label(target, rule, model)
                        rep = export(model, Path(tmp) / f"{Path(model).name}-{key}-{rule}", target=key,
                                     precision="int8", input_size=SIZE, calib="synthetic", check=False,
                                     command=f"{command} ({name} of {model})", **options(rule))
                        rows[model][name] = scores(rep["file"], a.threads)
                        print(f"{model} {name}: {rows[model][name]['reference']['psnr']:.2f} / "
                              f"{rows[model][name]['held-out sensor']['psnr']:.2f} dB", file=sys.stderr, flush=True)
                latency[model] = speed(model, rules, Path(tmp), command)
    except DarkcError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    data = {"command": command, "size": SIZE, "frame": FRAME, "rows": rows, "latency": latency,
            "wall_s": time.monotonic() - t0,
            "host": f"{platform.machine()} CPU ({host_isa()}), {a.threads} threads for quality; ONNX Runtime and "
                    f"LiteRT (XNNPACK) CPU"}
    write_records(a.out, data, markdown(data))
    print(f"wrote {a.out}.md/.json in {data['wall_s']:.0f} s", file=sys.stderr)
    return 0


def markdown(data: dict) -> str:
    lines = ["# What INT8 costs each student, and what it buys", "", f"Command: `{data['command']}` ({data['host']}, "
             f"{data['wall_s']:.0f} s).", "",
             f"INT8 files as `darkc quantize` makes them (minmax calibration: each tensor's min and max over 32 "
             f"synthetic samples from the training sensors; float I/O) by default (`--float-layers auto`: a "
             f"raw-output model's full-resolution layers stay float, darkc.export.float_layers) and full-integer, "
             f"fixed {data['size']} raw px. Each cell: sRGB PSNR (change from FP32) / SSIM / CIEDE2000 / checker "
             "(levels of 255), `darkc eval`'s protocol, 24 pairs per set.", "",
             "| model | file | " + " | ".join(SETS) + " |", "|---|---|" + "---|" * len(SETS)]
    for model, files in data["rows"].items():
        fp32 = files["FP32 (torch)"]
        for name, s in files.items():
            cells = [f"{v['psnr']:.2f}" + ("" if name.startswith("FP32") else f" ({v['psnr'] - fp32[k]['psnr']:+.2f})")
                     + f" / {v['ssim']:.3f} / {v['deltae']:.2f} / {v['checker']:.2f}" for k, v in s.items()]
            lines.append(f"| {model} | {name} | " + " | ".join(cells) + " |")
    lat = data.get("latency") or {}
    if lat:
        band = next((v["arm_error_band"] for m in lat.values() for v in m.values() if v.get("arm_error_band")), None)
        lines += ["", f"## Latency per {data['frame']} raw frame (packed half size), TFLite", "",
                  f"Host: LiteRT with the XNNPACK delegate, 1 thread, measured (mean of 10 runs after 2 warm-ups) on "
                  f"{data['host'].split(',')[0]}. {ARM}: **estimated** by `darkc bench` (guest instructions of the "
                  f"same file counted under QEMU at raw 128x128, scaled by pixels, fitted IPC"
                  + (f"; {band}" if band else "") + "), not measured on a phone.", "",
                  f"| model | file | host ms | {ARM} ms (estimated) | {ARM} instructions | INT8 speed-up host / "
                  f"{ARM} | {NPU} ms (Vela, integer files) |", "|---|---|---|---|---|---|---|"]
        for model, files in lat.items():
            fp = files["FP32"]
            for name, v in files.items():
                up = "" if name == "FP32" else f"{fp['host_ms'] / v['host_ms']:.2f}x / {fp['arm_ms'] / v['arm_ms']:.2f}x"
                ins = f"{v['arm_instructions'] / 1e9:.2f}G" if v.get("arm_instructions") else "-"
                npu = "-" if v.get("npu_ms") is None else f"{v['npu_ms']:.1f}"
                lines.append(f"| {model} | {name} | {v['host_ms']:.1f} | {v['arm_ms']:.1f} | {ins} | {up} | {npu} |")
        lines += ["", f"{NPU}: Vela's estimate of the whole frame (tiled when it does not fit the configuration's "
                  "SRAM; CPU-fallback operators, here the float input's QUANTIZE and the output's DEQUANTIZE, not "
                  "included), for the files an NPU can run: full-integer and int16 ones. LiteRT runs int16 "
                  "activations on reference kernels: the host and ARM figures of that file are not what a CPU "
                  "deployment would use."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())

"""Which layers of a model INT8 hurts: each conv alone in INT8 (the rest float), then the float-layer rules.

    python benchmarks/int8_sensitivity.py --model student-raw --out benchmarks/results/int8_sensitivity

ONNX Runtime static QDQ (uint8 activations per tensor, int8 weights per channel, min/max over 32 synthetic samples
from the training sensors, as `darkc quantize`) of the model's FP32 ONNX graph at 512x768 raw px, scored with
`darkc eval`'s protocol on the first ``--pairs`` pairs of the reference set: every node INT8, no node INT8, each
conv alone INT8, `--float-layers full-res` (nodes at the input's height and width float), and the same nodes with
16-bit activations instead of float. This is the measurement behind darkc.export.float_layers. Writes <out>.md/.json.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import onnx

from darkc.evaluate import evaluate
from darkc.export import export
from darkc.export.calibration import synthetic_inputs
from darkc.export.float_layers import onnx_full_res_nodes
from darkc.models import read_spec
from darkc.provenance import write_records

SIZE = "512x768"


def main(argv=None) -> int:
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="student-raw")
    p.add_argument("--out", default="benchmarks/results/int8_sensitivity")
    p.add_argument("--pairs", type=int, default=8, help="reference pairs scored per variant")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    t0 = time.monotonic()
    command = "python benchmarks/int8_sensitivity.py " + " ".join(argv if argv is not None else sys.argv[1:])
    with tempfile.TemporaryDirectory(prefix="darkc-int8-sens-") as tmp:
        tmp = Path(tmp)
        rep = export(a.model, tmp / "fp32", precision="fp32", input_size=SIZE, command=command)
        spec = read_spec(tmp / "fp32")
        inputs, _ = synthetic_inputs(spec["cfa"], 32, tuple(inputs_hw(spec)), spec=spec)
        pre = tmp / "pre.onnx"
        quant_pre_process(rep["file"], str(pre), auto_merge=True)
        graph = onnx.load(str(pre)).graph
        nodes = [n.name for n in graph.node]
        convs = [n.name for n in graph.node if n.op_type in ("Conv", "ConvTranspose")]
        full = onnx_full_res_nodes(pre, inputs[0].shape)
        name_in = graph.input[0].name

        class Reader(CalibrationDataReader):
            def __init__(self):
                self.it = iter([{name_in: x} for x in inputs])

            def get_next(self):
                return next(self.it, None)

        work = tmp / "q"
        shutil.copytree(tmp / "fp32", work)

        def score(exclude=(), u16=()) -> float:
            overrides = {"TensorQuantOverrides": {t: [{"quant_type": QuantType.QUInt16}] for t in u16}} if u16 else None
            quantize_static(str(pre), str(work / "model.onnx"), Reader(), quant_format=QuantFormat.QDQ,
                            per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=list(exclude),
                            extra_options=overrides)
            r = evaluate(str(work / "model.onnx"), "synthetic", threads=a.threads, progress=False, limit=a.pairs)
            return float(r["psnr"])

        fp32 = float(evaluate(rep["file"], "synthetic", threads=a.threads, progress=False, limit=a.pairs)["psnr"])
        rows = {"every node INT8": score(), "no node INT8 (QDQ graph, all excluded)": score(nodes),
                "--float-layers full-res": score(full)}
        tensors = sorted({t for n in graph.node if n.name in full for t in list(n.output)} | {name_in})
        rows["full-res nodes with 16-bit activations"] = score(u16=tensors)
        alone = {}
        for c in convs:
            alone[c] = score([n for n in nodes if n != c])
            print(f"{c} alone INT8: {alone[c]:.2f} dB", file=sys.stderr, flush=True)
    data = {"command": command, "model": a.model, "size": SIZE, "pairs": a.pairs, "fp32_onnx": fp32, "rows": rows,
            "alone": alone, "full_res_nodes": full, "wall_s": time.monotonic() - t0}
    write_records(a.out, data, markdown(data))
    print(f"wrote {a.out}.md/.json in {data['wall_s']:.0f} s", file=sys.stderr)
    return 0


def inputs_hw(spec: dict) -> tuple[int, int]:
    """Packed (h, w) of a SIZE raw frame for the model's CFA."""
    from darkc.data import cfa as cfa_mod

    h, w = (int(v) for v in SIZE.split("x"))
    s = cfa_mod.scale(spec["cfa"])
    return h // s, w // s


def markdown(d: dict) -> str:
    fp = d["fp32_onnx"]
    lines = [f"# Which layers INT8 hurts: {d['model']}", "", f"Command: `{d['command']}` ({d['wall_s']:.0f} s).", "",
             f"ONNX Runtime static QDQ (uint8 activations per tensor, int8 weights per channel, min/max over 32 "
             f"synthetic samples) at {d['size']} raw px; sRGB PSNR on the first {d['pairs']} reference pairs "
             f"(`darkc eval`'s protocol; FP32 ONNX {fp:.2f} dB).", "",
             "| variant | PSNR dB | change from FP32 |", "|---|---|---|"]
    lines += [f"| {k} | {v:.2f} | {v - fp:+.2f} |" for k, v in d["rows"].items()]
    lines += ["", f"Full-resolution nodes (`--float-layers full-res`): {', '.join(d['full_res_nodes'])}.", "",
              "## One conv INT8, every other node float", "", "| conv | PSNR dB | change from FP32 |", "|---|---|---|"]
    lines += [f"| {k} | {v:.2f} | {v - fp:+.2f} |" for k, v in d["alone"].items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())

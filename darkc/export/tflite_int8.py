"""INT8 TFLite: ai-edge-quantizer's static recipe, calibrated on packed raw inputs, made all-integer (or all but the
layers ``--float-layers`` keeps in float, :mod:`darkc.export.float_layers`).

The TFLite counterpart of :mod:`darkc.export.onnx_int8`; :func:`darkc.export.tflite.export_tflite` calls
:func:`quantize_int8` on the float32 graph with samples from :mod:`darkc.export.calibration`.

ai-edge-quantizer's static recipe (``static_wi8_ai8``: int8 weights per output channel, int8 activations per
tensor, min/max calibrated on packed raw inputs) does not know LEAKY_RELU nor DEPTH_TO_SPACE and leaves them in
float between DEQUANTIZE/QUANTIZE pairs (an NPU compiler then runs most of the graph on the CPU). Both have int8
kernels in TFLite, so the graph is fixed (:mod:`darkc.export.tflite_rewrite`): each DEQUANTIZE -> LEAKY_RELU ->
QUANTIZE becomes one int8 LEAKY_RELU (input and output keep their calibrated scales), DEPTH_TO_SPACE is placed on
the int8 side by the exporter. Every operator is then integer, except those ``float_layers`` keeps in float (then
the float input feeds them directly, :func:`darkc.export.tflite_rewrite.fold_round_trips`); anything else left in
float is an error, never a silently float "INT8" model. I/O is float (a QUANTIZE after the input, a DEQUANTIZE
before the output) or int8 (``io="int8"``; scale and zero point in the tensors and in the contract).

Ranges are each tensor's min and max over all samples (:func:`_min_max`): ai-edge-quantizer's ``calibrate`` merges
samples by a moving average, which clips every sample wider than the average one.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from darkc.errors import DarkcError, one_line
from darkc.export.ai_edge import quiet_native, tool_version
from darkc.export.float_layers import tflite_full_res_outputs
from darkc.export.tflite_graph import INPUT_NAME, SIGNATURE, graph_info, read_model, unexpected_float_ops, write_model
from darkc.export.tflite_rewrite import (compact_tensors, float_io, fold_round_trips, integer_io, integerise,
                                         leaky_to_prelu)

#: ``io`` values for int8: dtype of the model's input and output tensors.
IO_TYPES = ("float", "int8")
#: ``int8_activation`` values: the int8 op that computes LeakyReLU (see :func:`quantize_int8`).
INT8_ACTIVATIONS = ("leaky_relu", "prelu")


def check_io(io: str) -> str:
    if io not in IO_TYPES:
        raise DarkcError(f"--io {io!r} is unknown; use one of {', '.join(IO_TYPES)}")
    return io


def quantize_int8(content: bytes, inputs: list[np.ndarray], io: str = "float", threads: int | None = None,
                  activation: str = "leaky_relu", float_layers: str = "none",
                  int16_layers: str = "none", depth_to_space: int | None = None) -> tuple[bytes, dict]:
    """INT8 of a float TFLite model, calibrated on ``inputs``: every operator integer, or every operator but those
    ``float_layers`` keeps in float.

    Args:
        content: the float32 flatbuffer (NHWC input).
        inputs: calibration samples (1, C, h, w) float32 packed raw (NCHW, as :func:`darkc.export.calibration.
            calibration_inputs` gives them); transposed to NHWC here.
        io: ``float`` (QUANTIZE/DEQUANTIZE at the boundary) or ``int8`` input and output tensors.
        threads: interpreter threads for calibration (None: up to 4).
        activation: the int8 op for LeakyReLU: ``leaky_relu`` (LEAKY_RELU; XNNPACK runs it fast and unbiased, but
            LiteRT's built-in and reference int8 kernels round its negative side with a bias of -0.1 to -0.3
            steps that accumulates: teacher at 768x768 raw, 47.1 dB parity on XNNPACK, 39.9 dB on built-in
            kernels) or ``prelu`` (PRELU with alpha 0.2 held exactly as int8 127 x 0.2/127: 47.5 dB on XNNPACK,
            built-in and reference kernels alike, but XNNPACK leaves int8 PRELU to the built-in kernels: 1.8x
            slower on an x86 host).
        float_layers: ``none`` (full integer) or ``full-res``: operators whose output has the input's height and
            width stay float (:mod:`darkc.export.float_layers`; ``auto`` is resolved by the caller); the input then
            stays float too (no QUANTIZE -> DEQUANTIZE round trip before the first float layer), and ``io`` must be
            ``float``.
        int16_layers: ``none`` or ``full-res``: the same operators integer with 16-bit activations (8-bit weights;
            ai-edge-quantizer's A16W8 config on their scopes), the int8 / int16 borders requantised
            (:func:`darkc.export.tflite_rewrite.integerise`); not with ``float_layers``.
        depth_to_space: the block of the DEPTH_TO_SPACE the exporter appends after this (None: none); the operator
            it reads from then counts as full resolution when the block brings it to the input's size.

    Raises:
        DarkcError: no samples, the quantizer failed, or an operator is left in float that ``float_layers`` does
            not keep.
    """
    from ai_edge_quantizer import quantizer, recipe

    io = check_io(io)
    if float_layers not in ("none", "full-res"):
        raise DarkcError(f"float_layers {float_layers!r}: resolve 'auto' with darkc.export.float_layers first")
    if float_layers != "none" and io != "float":
        raise DarkcError(f"--io {io} needs a full-integer model but --float-layers {float_layers} keeps layers in "
                         f"float; pass --float-layers none with --io {io}, or leave --io out")
    if activation not in INT8_ACTIVATIONS:
        raise DarkcError(f"--int8-activation {activation!r} is unknown; use one of {', '.join(INT8_ACTIVATIONS)}")
    if not inputs:
        raise DarkcError("INT8 quantisation needs calibration samples; got none")
    n, h, w, c = graph_info(content)["input"]["shape"]
    for i, x in enumerate(inputs):
        if np.ndim(x) != 4 or tuple(np.shape(x)) != (1, c, h, w):
            raise DarkcError(f"calibration sample {i} has shape {tuple(np.shape(x))} but the model takes "
                             f"{(1, c, h, w)} (packed raw, NCHW); calibrate with raws of the model's sensor at the "
                             f"export size")
    samples = [{INPUT_NAME: np.ascontiguousarray(np.asarray(x, np.float32).transpose(0, 2, 3, 1))} for x in inputs]
    threads = threads or min(4, os.cpu_count() or 1)
    if float_layers != "none" and int16_layers != "none":
        raise DarkcError("--float-layers and --int16-layers both claim the full-resolution layers; choose one")
    full_res = tflite_full_res_outputs(read_model(content).subgraphs[0], [h, w], depth_to_space)
    kept = full_res if float_layers == "full-res" else []
    wide = full_res if int16_layers == "full-res" else []
    # ai-edge-quantizer's scope of an op is its output names joined by ';' with a trailing ';'; the last match wins
    a16w8 = recipe.static_wi8_ai16()[0]
    rules = recipe.static_wi8_ai8() + [{"regex": "^" + re.escape(name) + ";$", "operation": "*",
                                         "algorithm_key": "no_quantize"} for name in kept] + \
        [{**a16w8, "regex": "^" + re.escape(name) + ";$"} for name in wide]
    try:
        import ai_edge_quantizer

        with quiet_native():
            qt = quantizer.Quantizer(bytearray(content), rules)
            calibration = _min_max(qt, samples, threads)
            if INPUT_NAME in calibration:      # the input's range is the contract's [0, 1], not the samples'
                seen = calibration[INPUT_NAME]
                calibration[INPUT_NAME] = {**seen, "min": np.zeros_like(seen["min"]),
                                           "max": np.ones_like(seen["max"])}
            result = qt.quantize(calibration, enable_progress_report=False)
        version = getattr(ai_edge_quantizer, "__version__", None) or tool_version("ai-edge-quantizer")
    except DarkcError:
        raise
    except Exception as exc:  # the quantizer raises ValueError/RuntimeError
        raise DarkcError(f"INT8 quantisation with ai-edge-quantizer failed: {one_line(exc)[:300]}; check the "
                         f"calibration inputs fit the model's input size") from exc
    m = read_model(bytes(result.quantized_model))
    integerised = integerise(m)
    if activation == "prelu":
        integerised = {"PRELU": leaky_to_prelu(m), **{k: v for k, v in integerised.items() if k != "LEAKY_RELU"}}
    if io == "int8":
        integer_io(m)
    else:
        float_io(m)
        if kept:
            fold_round_trips(m)
    compact_tensors(m, m.subgraphs[0])
    content = write_model(m)
    info = graph_info(content)
    left = unexpected_float_ops(content, [h, w] if kept else None, tuple(kept))
    if left:
        left = ", ".join(f"{k} x{v}" for k, v in _count(left).items())
        raise DarkcError(f"INT8 TFLite export left operators in float ({left}); ai-edge-quantizer has no int8 rule "
                         f"for them - use an activation/op with int8 support or export --target onnx")
    record = {"method": "minmax", "quantizer": f"ai-edge-quantizer {version} static_wi8_ai8 (min/max)",
              "weights": "int8 symmetric, per output channel",
              "activations": "int8 per tensor" + (" (symmetric)" if info["activation_zero_points"] == [0] else
                                                  ", asymmetric (zero points)"),
              "input_range": "[0, 1] (the input contract's range; calibrated ranges everywhere else)",
              "io": io, "integerised": integerised, "activation": activation,
              "float_layers": {"rule": float_layers, "ops": len(info["float_ops"]) if kept else 0},
              "int16_layers": {"rule": int16_layers, "ops": len(wide)},
              "samples": len(inputs),
              "sample_sizes": [list(s) for s in sorted({tuple(x.shape[2:]) for x in inputs})]}
    return content, record


def _min_max(qt, samples: list[dict], threads: int) -> dict:
    """Each tensor's min and max over all ``samples``. ``Quantizer.calibrate`` merges the samples' ranges by a
    moving average (smoothing 0.95), which lands near the mean sample's range: every sample beyond it is clipped,
    and frames of the held-out sensor (noisier than every training sensor) more than most. One sample per call,
    merged here, gives the true extremes, as ONNX Runtime's MinMax calibrator does
    (tests/test_float_layers.py::test_tflite_ranges_are_min_and_max_over_all_samples)."""
    merged: dict = {}
    for sample in samples:
        for name, qsv in qt.calibrate({SIGNATURE: [sample]}, num_threads=threads).items():
            old = merged.get(name)
            if old is None or "min" not in qsv or "max" not in qsv:
                merged[name] = dict(qsv)
            else:
                merged[name] = {**old, "min": np.minimum(old["min"], qsv["min"]),
                                "max": np.maximum(old["max"], qsv["max"])}
    return merged


def _count(items: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items:
        key = item.split(" ", 1)[0]
        counts[key] = counts.get(key, 0) + 1
    return counts


def kernel_agreement(model: bytes | str | os.PathLike, cfa: str, size: tuple[int, int],
                     spec: dict | None = None) -> dict:
    """PSNR between LiteRT's XNNPACK and built-in int8 kernels on one synthetic input (darkc's parity input).

    The two should agree to rounding (> 45 dB); a lower figure means an op rounds differently on the two (see
    ``activation`` in :func:`quantize_int8`), so a device without XNNPACK (an NPU, TFLite Micro) may score lower
    than the parity check, which runs XNNPACK.
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from darkc.export.parity import parity_inputs, psnr
    from darkc.inference import dequantize_tensor, quantize_tensor

    content = Path(model).read_bytes() if isinstance(model, (str, os.PathLike)) else model
    x = np.ascontiguousarray(parity_inputs(cfa, size, 1, spec=spec)[0].transpose(0, 2, 3, 1))
    outputs = {}
    for name, resolver in (("xnnpack", OpResolverType.AUTO),
                           ("builtin", OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)):
        interp = Interpreter(model_content=content, experimental_op_resolver_type=resolver)
        interp.allocate_tensors()
        inp, outp = interp.get_input_details()[0], interp.get_output_details()[0]
        interp.set_tensor(inp["index"], quantize_tensor(x, inp))
        interp.invoke()
        outputs[name] = dequantize_tensor(interp.get_tensor(outp["index"]), outp)
    return {"xnnpack_vs_builtin_psnr_db": round(psnr(outputs["builtin"], outputs["xnnpack"]), 2),
            "input": f"synthetic validation photo, packed {size[0]}x{size[1]}"}

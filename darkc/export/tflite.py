"""PyTorch -> TFLite (LiteRT): fp32, fp16 and full-integer int8, in NHWC, run by ai-edge-litert's interpreter.

Needs the ``darkc[tflite]`` extra: litert-torch (converts PyTorch directly, no TensorFlow), ai-edge-quantizer and
ai-edge-litert. ``tflite-runtime`` (last released 2023, 2.14) cannot load what today's converter writes
(SystemError in CreateWrapperFromFile): darkc runs ``.tflite`` files with ai-edge-litert only.

The graph (signature ``serving_default``) has one input ``raw`` (packed raw, **NHWC**, black-level subtracted,
amplified by the exposure ratio and clipped to [0, 1], then the noise-std channel for noise-conditioned models) and
one output ``srgb`` (NHWC sRGB at ``scale`` times the input size; ``clean_raw`` for raw-output models: the clean
packed raw at the input size, no DEPTH_TO_SPACE). NHWC I/O is TFLite's own layout, so no layout Transpose is left
in the graph. The input size is fixed (``--input-size HxW``; darkc's runners tile any frame with it): litert-torch
can trace dynamic H/W, but it writes each TRANSPOSE_CONV's output shape as a constant from the trace, so such a
graph is right on XNNPACK only and LiteRT's built-in kernels refuse it (transpose_conv.cc: computed_input_width !=
input width); NPU compilers want static shapes anyway.

How the graph is made (see :func:`export_tflite`):

- The PixelShuffle head becomes one ``DEPTH_TO_SPACE``: litert-torch lowers ``pixel_shuffle`` to four
  TRANSPOSE + RESHAPE pairs (and cannot lower it with dynamic H/W at all), so the net is converted without it, the
  head conv's output channels are permuted from PyTorch's (c, dy, dx) order to TFLite's (dy, dx, c) order, and a
  DEPTH_TO_SPACE op is appended to the flatbuffer. The permutation is checked numerically in PyTorch first; a net
  without a PixelShuffle head is converted as it is.
- fp16: float16 weights (ai-edge-quantizer ``float_casting``), each dequantised by a DEQUANTIZE op; compute is
  float32 on CPU (XNNPACK) and float16 on GPU delegates - TFLite's "float16 quantisation".
- int8: ai-edge-quantizer's static recipe, then the graph made all-integer (LEAKY_RELU rewired to int8,
  DEPTH_TO_SPACE on the int8 side), float or int8 I/O: :mod:`darkc.export.tflite_int8`.

The input contract (layout, packing, normalisation, ratio, dtypes) is stored in the file's ``metadata`` under
``darkc.contract`` (see :mod:`darkc.export.contract`).

This module converts and exports; reading a flatbuffer is :mod:`darkc.export.tflite_graph`, changing its graph
:mod:`darkc.export.tflite_rewrite`, full-integer quantisation :mod:`darkc.export.tflite_int8`.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from darkc.errors import DarkcError, one_line
from darkc.export.ai_edge import quiet_native, tool_version
from darkc.export.contract import METADATA_KEY, input_contract
from darkc.export.tflite_graph import (INPUT_NAME, LAYOUT, OUTPUT_NAME, graph_info, read_metadata, read_model,
                                       unexpected_float_ops, write_model)
from darkc.export.tflite_int8 import INT8_ACTIVATIONS, check_io, kernel_agreement, quantize_int8
from darkc.export.tflite_rewrite import append_depth_to_space, name_io, rename_output, set_metadata

#: The export entry points, and what callers import from here (graph facts, metadata, int8 quantisation).
__all__ = ["export_tflite", "graph_info", "quantize_fp16", "quantize_int8", "read_metadata", "split_pixel_shuffle",
           "torch_to_tflite"]


def _litert_torch():
    try:
        with quiet_native():
            import litert_torch
    except ImportError as exc:
        raise DarkcError(f"TFLite export needs litert-torch ({one_line(exc)}); install darkc[tflite]") from exc
    litert_torch.config.show_progress = False
    return litert_torch


# ---------------------------------------------------------------- PyTorch side
def _depth_to_space_nhwc(y, r: int):
    n, h, w, c = y.shape
    return y.reshape(n, h, w, r, r, c // (r * r)).permute(0, 1, 3, 2, 4, 5).reshape(n, h * r, w * r, c // (r * r))


def split_pixel_shuffle(model, in_channels: int):
    """``(body, r)``: a copy of ``model`` without its PixelShuffle head, whose output followed by TFLite's
    DEPTH_TO_SPACE(r) in NHWC equals ``model``'s output; ``(None, None)`` when the model has no such head.

    The head conv (the last Conv2d with ``C * r * r`` outputs, ``C`` the output channels: 3 for sRGB, the CFA's for
    a raw model whose output is its PixelShuffle's, mobile-unet ``head="half"``) gets its output channels permuted
    from PyTorch's pixel-shuffle order ``c * r * r + dy * r + dx`` to DEPTH_TO_SPACE's ``(dy * r + dx) * C + c``;
    the result is checked on a random input (a raw head that adds the input after its PixelShuffle, mobile-unet
    ``head="d2s"``, fails the check and is converted as it is).
    """
    import copy

    import torch
    from torch import nn

    from darkc.models import adapter_of

    adapter = adapter_of(model)
    found = adapter.pixel_shuffle(model)            # by module type, anywhere
    if found is None:
        return None, None
    name, shuffle = found
    r = int(shuffle.upscale_factor)
    side = 2 * adapter.size_multiple(model)
    x = torch.rand(1, in_channels, side, side, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = model.eval()(x).permute(0, 2, 3, 1)
    c_out = int(want.shape[-1])
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.out_channels == c_out * r * r]
    if not convs:
        return None, None
    body = copy.deepcopy(model).eval()
    parent, _, leaf = name.rpartition(".")
    setattr(body.get_submodule(parent) if parent else body, leaf, nn.Identity())
    head = [m for m in body.modules() if isinstance(m, nn.Conv2d) and m.out_channels == c_out * r * r][-1]
    perm = [c * r * r + dy * r + dx for dy in range(r) for dx in range(r) for c in range(c_out)]
    with torch.no_grad():
        head.weight.copy_(head.weight[perm].clone())
        if head.bias is not None:
            head.bias.copy_(head.bias[perm].clone())
        try:
            got = _depth_to_space_nhwc(body(x).permute(0, 2, 3, 1), r)
        except RuntimeError:            # the head adds something after its PixelShuffle (shapes no longer match)
            return None, None
    if got.shape != want.shape or not torch.allclose(got, want, atol=1e-5, rtol=1e-4):
        return None, None
    return body, r


def torch_to_tflite(model, in_channels: int, fixed_size: tuple[int, int]) -> tuple[bytes, int | None, dict]:
    """Convert ``model`` (NCHW PyTorch) to a float32 TFLite flatbuffer with NHWC I/O, without its PixelShuffle.

    Args:
        model: the PyTorch model (not modified).
        in_channels: packed channels (4 Bayer, 9 X-Trans).
        fixed_size: packed (h, w), multiples of the model's size multiple (16).

    Returns:
        ``(flatbuffer bytes, block, info)``: ``block`` is the DEPTH_TO_SPACE block size still to append with
        :func:`darkc.export.tflite_rewrite.append_depth_to_space` (after quantisation, so it lands on the integer
        side), None when the model's own head was converted; info names the converter and how the head is made.

    Raises:
        DarkcError: no fixed size, or the converter failed (an op it cannot lower).
    """
    import torch

    if fixed_size is None:
        raise DarkcError("TFLite export needs a fixed --input-size HxW in raw px (e.g. 1024x1024; darkc tiles larger "
                         "frames): LiteRT's TRANSPOSE_CONV keeps the traced output shape, so a dynamic-size graph is "
                         "only right on XNNPACK")
    litert_torch = _litert_torch()
    body, r = split_pixel_shuffle(model, in_channels)
    net = body if body is not None else model.eval()
    wrapped = litert_torch.to_channel_last_io(net, args=[0], outputs=[0]).eval()
    h, w = fixed_size
    example = torch.zeros(1, h, w, in_channels)
    try:
        with quiet_native(), torch.no_grad():
            edge = litert_torch.convert(wrapped, (example,))
            content = bytes(edge.model_content())
    except Exception as exc:  # the converter raises many types (torch export, jax lowering, MLIR)
        raise DarkcError(f"litert-torch could not convert the model: {one_line(exc)[:300]}; the model uses an op "
                         f"litert-torch cannot lower - use --target onnx or change the op") from exc
    info = {"converter": f"litert-torch {litert_torch.__version__} (to_channel_last_io: NHWC input and output)",
            "layout": LAYOUT,
            "pixel_shuffle": (f"DEPTH_TO_SPACE(block_size={r}) appended to the flatbuffer, head conv channels "
                              f"permuted to its order" if r else
                              "none at the end of the model (raw output)"
                              if getattr(model, "output", "srgb") == "raw" else "converted as the model computes it")}
    m = read_model(content)
    name_io(m)
    return write_model(m), r, info


# ---------------------------------------------------------------- precisions
def quantize_fp16(content: bytes) -> tuple[bytes, dict]:
    """Float16 weights (ai-edge-quantizer float casting), float32 compute on CPU, float32 I/O."""
    from ai_edge_quantizer import quantizer

    recipe = [{"regex": ".*", "operation": "*", "algorithm_key": "float_casting",
               "op_config": {"weight_tensor_config": {"num_bits": 16, "dtype": "FLOAT"},
                             "compute_precision": "FLOAT", "explicit_dequantize": True}}]
    try:
        with quiet_native():
            qt = quantizer.Quantizer(bytearray(content), recipe)
            result = qt.quantize(enable_progress_report=False)
    except Exception as exc:  # the quantizer raises ValueError/RuntimeError
        raise DarkcError(f"float16 conversion with ai-edge-quantizer failed: {one_line(exc)[:300]}") from exc
    return bytes(result.quantized_model), {"weights": "float16, dequantised by DEQUANTIZE ops",
                                           "compute": "float32 on CPU (XNNPACK), float16 on GPU delegates",
                                           "io": "float32", "quantizer": "ai-edge-quantizer float_casting"}


def _where(info: dict) -> dict:
    """Layout facts for the record: layout Transposes, and in what dtype the upsampling ops run."""
    def summary(dtypes: list[str]) -> str:
        if not dtypes:
            return "none"
        kinds = sorted(set(dtypes))
        return f"{len(dtypes)} op{'s' if len(dtypes) > 1 else ''}, {'/'.join(kinds)}"

    return {"layout_transposes": info["transposes"], "depth_to_space": summary(info["depth_to_space"]),
            "transpose_conv": summary(info["transpose_conv"])}


# ---------------------------------------------------------------- the exporter
def export_tflite(model, spec: dict, out: str | os.PathLike, precision: str = "fp32",
                  input_size: tuple[int, int] | None = None, calib: list[np.ndarray] | None = None, *,
                  io: str = "float", calib_method: str = "minmax", int8_activation: str = "leaky_relu",
                  float_layers: str = "none", int16_layers: str = "none") -> dict:
    """Write ``model`` as one ``.tflite`` file of the given precision (in place: pass a staging path).

    Args:
        model, spec: the PyTorch model and its normalised spec (``cfa``, ``in_channels``, ``scale``).
        out: the ``.tflite`` file to write.
        precision: ``fp32``; ``fp16`` (float16 weights); ``int8`` (full integer, see
            :func:`darkc.export.tflite_int8.quantize_int8`).
        input_size: packed (h, w); None (dynamic) is refused, see the module docstring.
        calib: int8 only: calibration samples (1, C, h, w) packed raw at ``input_size``.
        io: int8 only: ``float`` or ``int8`` input/output tensors.
        calib_method: int8 only: ``minmax`` (ai-edge-quantizer's static recipe calibrates min/max only).
        int8_activation: int8 only: ``leaky_relu`` or ``prelu``, see :func:`darkc.export.tflite_int8.quantize_int8`.
        float_layers, int16_layers: int8 only: ``none`` or ``full-res`` (see :mod:`darkc.export.float_layers`).

    Returns:
        The export record: converter, layout, graph facts (op list with dtypes, counts, layout transposes, where
        DEPTH_TO_SPACE and TRANSPOSE_CONV run), ``contract`` (also embedded in the file) and ``calibration``
        (int8) or ``fp16``.

    Raises:
        DarkcError: bad option, converter or quantizer failure, or an int8 model with a float operator.
    """
    from darkc.export.onnx import check_precision, output_name

    precision = check_precision(precision)
    io = check_io(io)
    if precision != "int8" and io != "float":
        raise DarkcError(f"--io {io} is for --precision int8; {precision} models have float32 input and output")
    if int8_activation not in INT8_ACTIVATIONS:
        raise DarkcError(f"--int8-activation {int8_activation!r} is unknown; use one of {', '.join(INT8_ACTIVATIONS)}")
    if precision != "int8" and int8_activation != "leaky_relu":
        raise DarkcError(f"--int8-activation {int8_activation} is for --precision int8; leave it out for {precision}")
    if precision == "int8" and calib_method != "minmax":
        raise DarkcError(f"--calib-method {calib_method} is not available for TFLite (ai-edge-quantizer calibrates "
                         f"min/max); use --calib-method minmax, or --target onnx for percentile/entropy")
    content, block, info = torch_to_tflite(model, spec["in_channels"], input_size)
    if precision == "fp16":
        content, info["fp16"] = quantize_fp16(content)
    elif precision == "int8":
        content, info["calibration"] = quantize_int8(content, calib or [], io, activation=int8_activation,
                                                     depth_to_space=block,
                                                     float_layers=float_layers, int16_layers=int16_layers)
    content = append_depth_to_space(content, block)
    graph = graph_info(content)
    if precision == "int8":
        left = unexpected_float_ops(content, list(input_size) if float_layers != "none" else None)
        if left:
            raise DarkcError(f"INT8 TFLite export has float operators: {left[:3]}; re-export or report")
    out_name = output_name(spec)
    contract = input_contract(spec, LAYOUT, graph["input"]["shape_signature"] or graph["input"]["shape"],
                              graph["input"]["dtype"], graph["input"]["quantization"],
                              graph["output"]["shape_signature"] or graph["output"]["shape"],
                              graph["output"]["dtype"], graph["output"]["quantization"], INPUT_NAME, out_name,
                              model=model)
    m = read_model(content)
    if out_name != OUTPUT_NAME:
        rename_output(m, out_name)
    set_metadata(m, METADATA_KEY, json.dumps(contract, sort_keys=True))
    content = write_model(m)
    Path(out).write_bytes(content)
    if precision == "int8":
        info["kernels"] = kernel_agreement(content, spec["cfa"], input_size, spec)
    info.update({
        "runtime": f"ai-edge-litert {tool_version('ai-edge-litert')}",
        "input": {"name": INPUT_NAME, "shape": graph["input"]["shape_signature"] or graph["input"]["shape"],
                  "dtype": graph["input"]["dtype"]},
        "output": out_name,
        "graph": {k: graph[k] for k in ("operators", "op_counts", "ops")},
        **_where(graph),
        "contract": contract,
    })
    return info

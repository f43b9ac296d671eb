"""PyTorch -> ONNX: the graph, its simplification and its precision (fp32 / fp16 / int8).

The graph has one input ``raw`` (packed raw, NCHW float32, black-level subtracted, amplified by the exposure ratio
and clipped to [0, 1], then the noise-std channel for noise-conditioned models) and one output: ``srgb`` (NCHW
float32 sRGB at ``scale`` times the input size) or, for raw-output models, ``clean_raw`` (the clean packed raw,
same size and CFA channels as the input). H and W are
dynamic (symbolic ``height``/``width``) unless a fixed size is asked for; fixed sizes are given in raw pixels
(``1088x1920``) and must pack to multiples of the model's size multiple (16 for the SID U-Net: raw multiples of 32
for Bayer, 48 for X-Trans).

The TorchScript exporter (``dynamo=False``) is used: the torch.export-based one needs ``onnxscript``, which darkc
does not depend on, and gives nothing this plain conv net needs. Opset :data:`OPSET`.
"""
from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

from darkc.errors import DarkcError, one_line

OPSET = 17
INPUT_NAME = "raw"
OUTPUT_NAME = "srgb"
#: Output name of raw-output models (their output is the clean packed raw, not sRGB).
RAW_OUTPUT_NAME = "clean_raw"
PRECISIONS = ("fp32", "fp16", "int8")
#: Packed side of the example input the dynamic graph is traced with.
_TRACE_SIDE = 64

_SIZE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")


def output_name(spec: dict) -> str:
    """The output tensor's name for the model of ``spec``: :data:`OUTPUT_NAME` or :data:`RAW_OUTPUT_NAME`."""
    from darkc.models.builder import io_kind

    return RAW_OUTPUT_NAME if io_kind(spec)[0] == "raw" else OUTPUT_NAME


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise DarkcError(f"--precision {precision!r} is unknown; use one of {', '.join(PRECISIONS)}")
    return precision


def parse_input_size(value: str | None, cfa: str, multiple: int) -> tuple[int, int] | None:
    """``--input-size`` -> packed (h, w), or None for ``dynamic``.

    Args:
        value: ``"dynamic"`` (or None), or ``"HxW"`` in raw pixels, e.g. ``"1088x1920"``.
        cfa: ``bayer`` (2 raw px per packed px) or ``xtrans`` (3).
        multiple: packed H and W must be multiples of this: the model's size multiple (:func:`darkc.models.size_multiple_of`;
            16 for the SID U-Net: four 2x poolings).

    Raises:
        DarkcError: not ``dynamic`` nor ``HxW``, or a size that does not pack to multiples of ``multiple``; the
            message names the nearest valid raw size.
    """
    from darkc.data import cfa as cfa_mod

    if value is None or str(value).strip().lower() == "dynamic":
        return None
    match = _SIZE.match(str(value))
    if not match:
        raise DarkcError(f"--input-size {value!r} is not 'dynamic' or HxW in raw pixels (e.g. 1088x1920)")
    s = cfa_mod.scale(cfa)
    step = multiple * s
    h, w = int(match.group(1)), int(match.group(2))
    if h % step or w % step or h == 0 or w == 0:
        near = [max(step, int(v / step + 0.5) * step) for v in (h, w)]
        raise DarkcError(f"--input-size {h}x{w} (raw px) does not pack to multiples of {multiple} for {cfa} "
                         f"(raw H and W must be multiples of {step}); nearest valid size: {near[0]}x{near[1]}")
    return h // s, w // s


def _dynamic_kept(model) -> bool:
    dims = model.graph.input[0].type.tensor_type.shape.dim
    return len(dims) == 4 and all(d.dim_param and not d.dim_value for d in dims[2:])


def torch_to_onnx(model, path: str | os.PathLike, in_channels: int, fixed_size: tuple[int, int] | None = None,
                  opset: int = OPSET, output: str = OUTPUT_NAME) -> dict:
    """Export ``model`` to ONNX at ``path`` and simplify it with onnxsim.

    Args:
        model: the PyTorch model (put in eval mode here).
        path: output ``.onnx`` file (written in place: pass a staging path).
        in_channels: input channels (4 Bayer, 9 X-Trans; one more with a noise-std channel).
        fixed_size: packed (h, w), or None for dynamic H and W.
        opset: ONNX opset (>= 17).
        output: the output tensor's name (:func:`output_name`).

    Returns:
        ``{"exporter", "opset", "input", "output", "simplified", ["simplify_error"]}``: when onnxsim fails or
        would drop the dynamic axes, the unsimplified graph is kept and the reason recorded.

    Raises:
        DarkcError: the PyTorch exporter failed.
    """
    import onnx
    import torch

    model = model.eval()
    h, w = fixed_size or (_TRACE_SIDE, _TRACE_SIDE)
    example = torch.zeros(1, in_channels, h, w)
    dynamic = None if fixed_size else {INPUT_NAME: {2: "height", 3: "width"},
                                       output: {2: "out_height", 3: "out_width"}}
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (example,), str(path), input_names=[INPUT_NAME], output_names=[output],
                              opset_version=opset, dynamic_axes=dynamic, dynamo=False, do_constant_folding=True)
    except Exception as exc:  # the exporter raises many types
        raise DarkcError(f"torch.onnx.export failed: {one_line(exc)[:300]}") from exc
    info = {"exporter": f"torch.onnx TorchScript (dynamo=False), torch {torch.__version__}", "opset": opset,
            "input": {"name": INPUT_NAME, "shape": [1, in_channels, *(fixed_size or ("height", "width"))]},
            "output": output}
    graph = onnx.load(str(path))
    try:
        import onnxsim

        simplified, ok = onnxsim.simplify(graph)
        if not ok:
            raise RuntimeError("onnxsim's check of the simplified graph failed")
        if not fixed_size and not _dynamic_kept(simplified):
            raise RuntimeError("the simplified graph lost the dynamic height/width")
    except Exception as exc:  # onnxsim raises RuntimeError / its C++ errors
        info["simplified"] = False
        info["simplify_error"] = one_line(exc)[:300]
        return info
    onnx.save(simplified, str(path))
    info["simplified"] = True
    info["nodes"] = len(simplified.graph.node)
    return info


def to_fp16(src: str | os.PathLike, dst: str | os.PathLike) -> dict:
    """Convert weights and activations of an FP32 graph to float16, keeping float32 input and output.

    Uses the converter that ships with onnxruntime (``onnxruntime.transformers.float16``, the same code as
    onnxconverter-common's); Cast nodes are inserted after the input and before the output.
    """
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # it warns about weights clipped to the float16 range
            half = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
        onnx.save(half, str(dst))
    except Exception as exc:  # converter and onnx raise many types
        raise DarkcError(f"float16 conversion of {src} failed: {one_line(exc)[:300]}") from exc
    return {"converter": "onnxruntime.transformers.float16.convert_float_to_float16(keep_io_types=True)",
            "io": "float32"}


def export_onnx(model, spec: dict, path: str | os.PathLike, precision: str = "fp32",
                fixed_size: tuple[int, int] | None = None, calib_inputs=None, calib_method: str = "minmax",
                reduce_range: bool | None = None, float_layers: str = "none", int16_layers: str = "none") -> dict:
    """Write ``model`` as one ONNX file of the given precision (in place: pass a staging path).

    Args:
        model, spec: the PyTorch model and its normalised spec (``in_channels``).
        path: the ``.onnx`` file to write.
        precision: ``fp32``; ``fp16`` (float16 inside, float32 I/O); ``int8`` (QDQ, see
            :func:`darkc.export.onnx_int8.quantize_onnx`).
        fixed_size: packed (h, w) or None for dynamic H/W.
        calib_inputs: int8 only: calibration samples (1, C, h, w), at ``fixed_size`` when it is set.
        calib_method, reduce_range, float_layers, int16_layers: int8 only, see
            :func:`darkc.export.onnx_int8.quantize_onnx`.

    Returns:
        The export record: graph info (exporter, opset, simplification) plus ``fp16`` or ``calibration``.
    """
    precision = check_precision(precision)
    path = Path(path)
    out_name = output_name(spec)
    if precision == "fp32":
        return torch_to_onnx(model, path, spec["in_channels"], fixed_size, output=out_name)
    fp32 = path.with_name(f".{path.stem}.fp32.onnx")
    try:
        info = torch_to_onnx(model, fp32, spec["in_channels"], fixed_size, output=out_name)
        if precision == "fp16":
            info["fp16"] = to_fp16(fp32, path)
        else:
            from darkc.export.onnx_int8 import quantize_onnx

            info["calibration"] = quantize_onnx(fp32, path, calib_inputs, calib_method, reduce_range,
                                                INPUT_NAME, out_name, float_layers, int16_layers)
    finally:
        fp32.unlink(missing_ok=True)
    return info

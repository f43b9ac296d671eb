"""Reading a TFLite (LiteRT) flatbuffer: its object-API model, operator and tensor-type names, the graph facts an
integrator asks about (:func:`graph_info`) and the text metadata (:func:`read_metadata`).

Also the names darkc gives every exported graph (signature, input, output, layout). Changing a graph is
:mod:`darkc.export.tflite_rewrite`; the exporter is :mod:`darkc.export.tflite`.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from darkc.errors import DarkcError, one_line

SIGNATURE = "serving_default"
INPUT_NAME = "raw"
OUTPUT_NAME = "srgb"
LAYOUT = "NHWC"
#: TFLite tensor types that are float (an int8 model has none but at its float I/O boundary).
FLOAT_TYPES = ("FLOAT32", "FLOAT16", "FLOAT64")


# ---------------------------------------------------------------- flatbuffer
def schema():
    """ai-edge-litert's generated flatbuffer schema module (object-API classes and enums)."""
    from ai_edge_litert import schema_py_generated

    return schema_py_generated


def _names(enum_cls) -> dict[int, str]:
    return {v: k for k, v in vars(enum_cls).items() if not k.startswith("_") and isinstance(v, int)}


def read_model(content: bytes):
    """The TFLite flatbuffer ``content`` as its object API model (``ModelT``)."""
    from ai_edge_litert.tools import flatbuffer_utils

    return flatbuffer_utils.read_model_from_bytearray(bytearray(content))


def write_model(m) -> bytes:
    """Model ``m`` (a ``ModelT``) as flatbuffer bytes."""
    from ai_edge_litert.tools import flatbuffer_utils

    return bytes(flatbuffer_utils.convert_object_to_bytearray(m))


def op_name(m, op) -> str:
    """Builtin operator name of ``op`` in model ``m`` (``CUSTOM`` for custom ops)."""
    from ai_edge_litert.tools import flatbuffer_utils

    code = m.operatorCodes[op.opcodeIndex]
    return _names(schema().BuiltinOperator).get(flatbuffer_utils.get_builtin_code_from_operator_code(code), "CUSTOM")


def type_name(t: int) -> str:
    """Name of TFLite ``TensorType`` ``t`` (``INT8``, ``FLOAT32``, ...)."""
    return _names(schema().TensorType)[t]


# ---------------------------------------------------------------- graph facts
def graph_info(model: bytes | str | os.PathLike) -> dict:
    """Operators with their tensor dtypes and the facts an integrator asks about, from a ``.tflite`` file or bytes.

    Returns:
        ``{"ops": ["CONV_2D int8,int8,int32 -> int8", ...] (graph order), "op_counts": {op: n},
        "transposes", "depth_to_space": [dtypes], "transpose_conv": [dtypes], "float_ops" (ops touching a float
        tensor, other than a QUANTIZE of a graph input and a DEQUANTIZE to a graph output, or to a final
        DEPTH_TO_SPACE, which then moves float data to the output; [] for float models is
        not meaningful - check ``precision``), "input"/"output": {"shape", "shape_signature", "dtype",
        "quantization"}, "activation_zero_points": distinct zero points of int8 activations}``.
    """
    content = Path(model).read_bytes() if isinstance(model, (str, os.PathLike)) else model
    m = read_model(content)
    g = m.subgraphs[0]
    ops, counts, float_ops = [], {}, []
    zero_points: set[int] = set()
    dtypes = {"DEPTH_TO_SPACE": [], "TRANSPOSE_CONV": []}
    # a DEPTH_TO_SPACE on the float side of the output (after a DEQUANTIZE: LiteRT has none for int16)
    final_d2s = {int(op.inputs[0]) for op in g.operators
                 if op_name(m, op) == "DEPTH_TO_SPACE" and int(op.outputs[0]) in g.outputs}
    dequantised = {int(op.outputs[0]) for op in g.operators if op_name(m, op) == "DEQUANTIZE"}
    for op in g.operators:
        name = op_name(m, op)
        ins = [type_name(g.tensors[t].type).lower() for t in op.inputs if t >= 0]
        outs = [type_name(g.tensors[t].type).lower() for t in op.outputs]
        ops.append(f"{name} {','.join(ins)} -> {','.join(outs)}")
        counts[name] = counts.get(name, 0) + 1
        boundary = (name == "QUANTIZE" and int(op.inputs[0]) in g.inputs) or \
                   (name == "DEQUANTIZE" and (int(op.outputs[0]) in g.outputs or int(op.outputs[0]) in final_d2s)) or \
                   (name == "DEPTH_TO_SPACE" and int(op.outputs[0]) in g.outputs and int(op.inputs[0]) in dequantised)
        if not boundary and any(d.upper() in FLOAT_TYPES for d in ins + outs):
            float_ops.append(ops[-1])
        if name in dtypes:
            act = int(op.inputs[2]) if name == "TRANSPOSE_CONV" else int(op.inputs[0])
            dtypes[name].append(type_name(g.tensors[act].type).lower())
        for t in op.outputs:
            tq = g.tensors[t].quantization
            if type_name(g.tensors[t].type) == "INT8" and tq is not None and tq.zeroPoint is not None:
                zero_points.update(int(z) for z in np.asarray(tq.zeroPoint).ravel())

    def io(t: int) -> dict:
        tensor = g.tensors[t]
        sig = tensor.shapeSignature
        q = tensor.quantization
        quant = None
        if q is not None and q.scale is not None and len(q.scale) == 1:
            quant = {"scale": float(q.scale[0]), "zero_point": int(np.asarray(q.zeroPoint).ravel()[0])}
        return {"name": tensor.name.decode() if isinstance(tensor.name, bytes) else tensor.name,
                "shape": [int(v) for v in tensor.shape],
                "shape_signature": None if sig is None or not len(sig) else [int(v) for v in sig],
                "dtype": type_name(tensor.type).lower(), "quantization": quant}

    return {"ops": ops, "op_counts": counts, "operators": len(ops), "transposes": counts.get("TRANSPOSE", 0),
            "depth_to_space": dtypes["DEPTH_TO_SPACE"], "transpose_conv": dtypes["TRANSPOSE_CONV"],
            "float_ops": float_ops, "input": io(int(g.inputs[0])), "output": io(int(g.outputs[0])),
            "activation_zero_points": sorted(zero_points)}


def unexpected_float_ops(model: bytes | str | os.PathLike, hw: list[int] | None = None,
                         kept: tuple[str, ...] = ()) -> list[str]:
    """:func:`graph_info`'s ``float_ops`` of an INT8 model less those a float region at height and width ``hw``
    explains (``--float-layers full-res``): ops whose first input or first output is a rank-4 tensor of that
    height and width, ops only such ops read (an activation before the region's first layer, e.g. the SID U-Net's
    last upsampling), the QUANTIZE / DEQUANTIZE ops at the region's border, and ops whose outputs are named in
    ``kept`` (before the exporter appends its DEPTH_TO_SPACE, the head conv it reads). ``hw`` None: every float
    op."""
    content = Path(model).read_bytes() if isinstance(model, (str, os.PathLike)) else model
    m = read_model(content)
    g = m.subgraphs[0]
    info = graph_info(content)
    if hw is None:
        return info["float_ops"]

    def at_hw(t: int) -> bool:
        shape = g.tensors[t].shape
        return shape is not None and len(shape) == 4 and list(shape[1:3]) == list(hw)

    def name(t: int) -> str:
        n = g.tensors[t].name
        return n.decode() if isinstance(n, bytes) else str(n)

    def in_region(op) -> bool:
        return at_hw(int(op.inputs[0])) or at_hw(int(op.outputs[0])) or all(name(int(t)) in kept for t in op.outputs)

    readers: dict[int, list] = {}
    for op in g.operators:
        for t in op.inputs:
            readers.setdefault(int(t), []).append(op)
    left = []
    for op, text in zip(g.operators, info["ops"]):
        if text not in info["float_ops"] or op_name(m, op) in ("QUANTIZE", "DEQUANTIZE") or in_region(op):
            continue
        users = readers.get(int(op.outputs[0]), [])
        if not users or not all(in_region(u) for u in users):
            left.append(text)
    return left


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The ``metadata`` entries of a ``.tflite`` file that hold UTF-8 text, by name."""
    from ai_edge_litert.tools import flatbuffer_utils

    try:
        m = flatbuffer_utils.read_model(str(path))
    except Exception as exc:  # flatbuffers raises struct/index errors on a bad file
        raise DarkcError(f"cannot read TFLite model {path}: {one_line(exc)[:200]}; re-export it") from exc
    out = {}
    for md in m.metadata or []:
        data = m.buffers[md.buffer].data
        if data is None:
            continue
        try:
            out[md.name.decode() if isinstance(md.name, bytes) else md.name] = bytes(np.asarray(data, np.uint8)).decode()
        except UnicodeDecodeError:
            continue
    return out

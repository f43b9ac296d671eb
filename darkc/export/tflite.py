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
- int8: ai-edge-quantizer static recipe (``static_wi8_ai8``: int8 weights per output channel, int8 activations
  per tensor, min/max calibrated on packed raw inputs). That recipe does not know LEAKY_RELU nor DEPTH_TO_SPACE and
  leaves them in float between DEQUANTIZE/QUANTIZE pairs (an NPU compiler then runs most of the graph on the CPU).
  Both have int8 kernels in TFLite, so the graph is fixed here: each DEQUANTIZE -> LEAKY_RELU -> QUANTIZE becomes
  one int8 LEAKY_RELU (input and output keep their calibrated scales), DEPTH_TO_SPACE is placed on the int8 side.
  Every operator is then integer; anything left in float is an error, never a silently float "INT8" model. I/O is
  float (a QUANTIZE after the input, a DEQUANTIZE before the output) or int8 (``io="int8"``; scale and zero point
  in the tensors and in the contract).

The input contract (layout, packing, normalisation, ratio, dtypes) is stored in the file's ``metadata`` under
``darkc.contract`` (see :mod:`darkc.export.contract`).
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from darkc.errors import DarkcError, one_line
from darkc.export.contract import METADATA_KEY, input_contract

SIGNATURE = "serving_default"
INPUT_NAME = "raw"
OUTPUT_NAME = "srgb"
LAYOUT = "NHWC"
#: ``io`` values for int8: dtype of the model's input and output tensors.
IO_TYPES = ("float", "int8")
#: Ops with TFLite int8 kernels that ai-edge-quantizer leaves in float (DEQUANTIZE -> op -> QUANTIZE); rewired.
INTEGERISED_OPS = ("LEAKY_RELU",)
#: ``int8_activation`` values: the int8 op that computes LeakyReLU (see :func:`quantize_int8`).
INT8_ACTIVATIONS = ("leaky_relu", "prelu")
_FLOAT_TYPES = ("FLOAT32", "FLOAT16", "FLOAT64")


def _schema():
    from ai_edge_litert import schema_py_generated as schema

    return schema


def _names(enum_cls) -> dict[int, str]:
    return {v: k for k, v in vars(enum_cls).items() if not k.startswith("_") and isinstance(v, int)}


def check_io(io: str) -> str:
    if io not in IO_TYPES:
        raise DarkcError(f"--io {io!r} is unknown; use one of {', '.join(IO_TYPES)}")
    return io


@contextlib.contextmanager
def _quiet_native():
    """Send stdout/stderr (Python and C++: converter logs, tqdm bars) to a scratch file while converting."""
    import logging
    import sys

    import warnings

    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    root = logging.getLogger()
    level = root.level
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        root.setLevel(logging.ERROR)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            root.setLevel(level)


def _litert_torch():
    try:
        with _quiet_native():
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

    The head conv (the last Conv2d with ``3 * r * r`` outputs) gets its output channels permuted from PyTorch's
    pixel-shuffle order ``c * r * r + dy * r + dx`` to DEPTH_TO_SPACE's ``(dy * r + dx) * 3 + c``; the result is
    checked on a random input.
    """
    import copy

    import torch
    from torch import nn

    from darkc.models import adapter_of

    adapter = adapter_of(model)
    found = adapter.pixel_shuffle(model)            # by module type, wherever the network keeps it
    if found is None:
        return None, None
    name, shuffle = found
    r = int(shuffle.upscale_factor)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.out_channels == 3 * r * r]
    if not convs:
        return None, None
    body = copy.deepcopy(model).eval()
    parent, _, leaf = name.rpartition(".")
    setattr(body.get_submodule(parent) if parent else body, leaf, nn.Identity())
    head = [m for m in body.modules() if isinstance(m, nn.Conv2d) and m.out_channels == 3 * r * r][-1]
    perm = [c * r * r + dy * r + dx for dy in range(r) for dx in range(r) for c in range(3)]
    with torch.no_grad():
        head.weight.copy_(head.weight[perm].clone())
        if head.bias is not None:
            head.bias.copy_(head.bias[perm].clone())
        side = 2 * adapter.size_multiple(model)
        x = torch.rand(1, in_channels, side, side, generator=torch.Generator().manual_seed(0))
        want = model.eval()(x).permute(0, 2, 3, 1)
        got = _depth_to_space_nhwc(body(x).permute(0, 2, 3, 1), r)
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
        :func:`append_depth_to_space` (after quantisation, so it lands on the integer side), None when the model's
        own head was converted; info names the converter and how the head is made.

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
        with _quiet_native(), torch.no_grad():
            edge = litert_torch.convert(wrapped, (example,))
            content = bytes(edge.model_content())
    except Exception as exc:  # the converter raises many types (torch export, jax lowering, MLIR)
        raise DarkcError(f"litert-torch could not convert the model: {one_line(exc)[:300]}; the model uses an op "
                         f"litert-torch cannot lower - use --target onnx or change the op") from exc
    info = {"converter": f"litert-torch {litert_torch.__version__} (to_channel_last_io: NHWC input and output)",
            "layout": LAYOUT,
            "pixel_shuffle": (f"DEPTH_TO_SPACE(block_size={r}) appended to the flatbuffer, head conv channels "
                              f"permuted to its order" if r else
                              "none in the model (raw output)" if getattr(model, "output", "srgb") == "raw" else
                              "converted as the model computes it")}
    m = _read(content)
    _name_io(m)
    return _write(m), r, info


def append_depth_to_space(content: bytes, block: int | None) -> bytes:
    """The flatbuffer with DEPTH_TO_SPACE(``block``) at its output (see :func:`torch_to_tflite`) and named I/O."""
    m = _read(content)
    if block:
        _append_depth_to_space(m, block)
    _name_io(m)
    return _write(m)


# ---------------------------------------------------------------- flatbuffer helpers
def read_model(content: bytes):
    """The TFLite flatbuffer ``content`` as its object API model (``ModelT``)."""
    from ai_edge_litert.tools import flatbuffer_utils

    return flatbuffer_utils.read_model_from_bytearray(bytearray(content))


def _write(m) -> bytes:
    from ai_edge_litert.tools import flatbuffer_utils

    return bytes(flatbuffer_utils.convert_object_to_bytearray(m))


def op_name(m, op) -> str:
    """Builtin operator name of ``op`` in model ``m`` (``CUSTOM`` for custom ops)."""
    from ai_edge_litert.tools import flatbuffer_utils

    code = m.operatorCodes[op.opcodeIndex]
    return _names(_schema().BuiltinOperator).get(flatbuffer_utils.get_builtin_code_from_operator_code(code), "CUSTOM")


def type_name(t: int) -> str:
    """Name of TFLite ``TensorType`` ``t`` (``INT8``, ``FLOAT32``, ...)."""
    return _names(_schema().TensorType)[t]


# the private spellings used across this module (kept so this session leaves its body alone)
_read, _op_name, _type_name = read_model, op_name, type_name


def _opcode(m, name: str, version: int) -> int:
    """Index of the operator code ``name`` at ``version``, added when missing."""
    from ai_edge_litert.tools import flatbuffer_utils

    s = _schema()
    code = getattr(s.BuiltinOperator, name)
    for i, oc in enumerate(m.operatorCodes):
        if flatbuffer_utils.get_builtin_code_from_operator_code(oc) == code and oc.version == version:
            return i
    oc = s.OperatorCodeT()
    oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = code, min(code, 127), version
    m.operatorCodes.append(oc)
    return len(m.operatorCodes) - 1


def _new_tensor(m, g, like, shape, signature, name: str, tensor_type: int | None = None) -> int:
    """Append an activation tensor (own empty buffer) shaped ``shape``, quantised like ``like``."""
    import copy

    s = _schema()
    t = s.TensorT()
    t.shape = np.asarray(shape, dtype=np.int32)
    t.shapeSignature = None if signature is None else np.asarray(signature, dtype=np.int32)
    t.type = like.type if tensor_type is None else tensor_type
    t.quantization = copy.deepcopy(like.quantization)
    t.name = name
    m.buffers.append(s.BufferT())
    t.buffer = len(m.buffers) - 1
    g.tensors.append(t)
    return len(g.tensors) - 1


def _producers(g) -> dict[int, int]:
    return {t: i for i, op in enumerate(g.operators) for t in op.outputs}


def _consumers(g) -> dict[int, list[int]]:
    users: dict[int, list[int]] = {}
    for i, op in enumerate(g.operators):
        for t in op.inputs:
            if t >= 0:
                users.setdefault(t, []).append(i)
    return users


def _retarget_signature(m, old: int, new: int) -> None:
    for sig in m.signatureDefs or []:
        for tm in list(sig.inputs or []) + list(sig.outputs or []):
            if tm.tensorIndex == old:
                tm.tensorIndex = new


def _remove_ops(g, drop: set[int]) -> None:
    g.operators = [op for i, op in enumerate(g.operators) if i not in drop]


def _compact_tensors(m, g) -> None:
    """Drop tensors no operator and no graph input/output uses; renumber the rest."""
    used = set(g.inputs) | set(g.outputs)
    for op in g.operators:
        used.update(t for t in list(op.inputs) + list(op.outputs) if t >= 0)
    keep = sorted(used)
    index = {old: new for new, old in enumerate(keep)}
    g.tensors = [g.tensors[i] for i in keep]
    for op in g.operators:
        op.inputs = np.asarray([index[t] if t >= 0 else t for t in op.inputs], dtype=np.int32)
        op.outputs = np.asarray([index[t] for t in op.outputs], dtype=np.int32)
        if getattr(op, "intermediates", None) is not None and len(op.intermediates):
            op.intermediates = np.asarray([index[t] for t in op.intermediates if t in index], dtype=np.int32)
    g.inputs = np.asarray([index[t] for t in g.inputs], dtype=np.int32)
    g.outputs = np.asarray([index[t] for t in g.outputs], dtype=np.int32)
    for sig in m.signatureDefs or []:
        for tm in list(sig.inputs or []) + list(sig.outputs or []):
            tm.tensorIndex = index[tm.tensorIndex]


def _append_depth_to_space(m, r: int) -> None:
    """Add DEPTH_TO_SPACE(r) at the graph output; on the integer side of a final DEQUANTIZE if there is one."""
    s = _schema()
    g = m.subgraphs[0]
    out = int(g.outputs[0])
    producers = _producers(g)
    last = producers.get(out)
    dequant = last is not None and _op_name(m, g.operators[last]) == "DEQUANTIZE"
    src = int(g.operators[last].inputs[0]) if dequant else out
    st = g.tensors[src]
    n, h, w, c = (int(v) for v in st.shape)
    if c % (r * r):
        raise DarkcError(f"the head emits {c} channels, not a multiple of {r * r}; cannot append DEPTH_TO_SPACE")
    shape = [n, h * r, w * r, c // (r * r)]
    sig = None
    if st.shapeSignature is not None and len(st.shapeSignature):
        sn, sh, sw, _ = (int(v) for v in st.shapeSignature)
        sig = [sn, sh * r if sh > 0 else -1, sw * r if sw > 0 else -1, c // (r * r)]
    d2s = _new_tensor(m, g, st, shape, sig, f"{OUTPUT_NAME}_depth_to_space" if dequant else OUTPUT_NAME)
    op = s.OperatorT()
    op.opcodeIndex = _opcode(m, "DEPTH_TO_SPACE", 1)       # version 1: float32 and int8 (2 is uint8)
    op.inputs = np.asarray([src], dtype=np.int32)
    op.outputs = np.asarray([d2s], dtype=np.int32)
    op.builtinOptionsType = s.BuiltinOptions.DepthToSpaceOptions
    op.builtinOptions = s.DepthToSpaceOptionsT()
    op.builtinOptions.blockSize = r
    if dequant:
        g.operators[last].inputs = np.asarray([d2s], dtype=np.int32)
        ot = g.tensors[out]
        ot.shape = np.asarray(shape, dtype=np.int32)
        ot.shapeSignature = None if sig is None else np.asarray(sig, dtype=np.int32)
        g.operators.insert(last, op)
    else:
        g.operators.append(op)
        g.outputs = np.asarray([d2s], dtype=np.int32)
        _retarget_signature(m, out, d2s)


def _name_io(m) -> None:
    """Call the input ``raw`` and the output ``srgb``, in the tensors and the signature (names stay unique)."""
    g = m.subgraphs[0]
    io = {int(g.inputs[0]): INPUT_NAME, int(g.outputs[0]): OUTPUT_NAME}
    for i, t in enumerate(g.tensors):
        name = t.name.decode() if isinstance(t.name, bytes) else t.name
        if i not in io and name in io.values():
            t.name = f"{name}_{i}"
    for i, name in io.items():
        g.tensors[i].name = name
    for sig in m.signatureDefs or []:
        sig.signatureKey = SIGNATURE
        for tm in sig.inputs or []:
            tm.name = INPUT_NAME
        for tm in sig.outputs or []:
            tm.name = OUTPUT_NAME


def _rename_output(m, name: str) -> None:
    """Call the output ``name`` (e.g. ``clean_raw`` of a raw-output model) in its tensor and the signature."""
    g = m.subgraphs[0]
    out = int(g.outputs[0])
    for i, t in enumerate(g.tensors):
        if i != out and (t.name.decode() if isinstance(t.name, bytes) else t.name) == name:
            t.name = f"{name}_{i}"
    g.tensors[out].name = name
    for sig in m.signatureDefs or []:
        for tm in sig.outputs or []:
            tm.name = name


def _integerise(m) -> dict[str, int]:
    """Rewire DEQUANTIZE -> op -> QUANTIZE into one integer op for :data:`INTEGERISED_OPS`; counts per op."""
    g = m.subgraphs[0]
    producers, consumers = _producers(g), _consumers(g)
    drop: set[int] = set()
    done: dict[str, int] = {}
    for i, op in enumerate(g.operators):
        name = _op_name(m, op)
        if name not in INTEGERISED_OPS:
            continue
        x, y = int(op.inputs[0]), int(op.outputs[0])
        dq = producers.get(x)
        if dq is None or _op_name(m, g.operators[dq]) != "DEQUANTIZE":
            continue
        src = int(g.operators[dq].inputs[0])
        if _type_name(g.tensors[src].type) in _FLOAT_TYPES:
            continue
        users = consumers.get(y, [])
        if not users or y in g.outputs or any(_op_name(m, g.operators[u]) != "QUANTIZE" for u in users):
            continue
        keep = int(g.operators[users[0]].outputs[0])
        kq = g.tensors[keep].quantization
        for u in users[1:]:
            other = int(g.operators[u].outputs[0])
            oq = g.tensors[other].quantization
            if list(oq.scale) == list(kq.scale) and list(oq.zeroPoint) == list(kq.zeroPoint):
                for v in consumers.get(other, []):
                    g.operators[v].inputs = np.asarray([keep if t == other else t for t in g.operators[v].inputs],
                                                       dtype=np.int32)
                drop.add(u)
            else:                       # int8 -> int8 requantisation, an integer op
                g.operators[u].inputs = np.asarray([keep], dtype=np.int32)
        op.inputs = np.asarray([src], dtype=np.int32)
        op.outputs = np.asarray([keep], dtype=np.int32)
        drop.add(users[0])
        if consumers.get(x) == [i] and x not in g.outputs:
            drop.add(dq)
        done[name] = done.get(name, 0) + 1
    _remove_ops(g, drop)
    return done


def _integer_io(m) -> None:
    """Drop the QUANTIZE after a float input and the DEQUANTIZE before a float output (no-op for integer I/O)."""
    g = m.subgraphs[0]
    producers, consumers = _producers(g), _consumers(g)
    drop = set()
    x = int(g.inputs[0])
    users = consumers.get(x, [])
    if len(users) == 1 and _op_name(m, g.operators[users[0]]) == "QUANTIZE":
        q = int(g.operators[users[0]].outputs[0])
        g.inputs = np.asarray([q], dtype=np.int32)
        _retarget_signature(m, x, q)
        drop.add(users[0])
    y = int(g.outputs[0])
    last = producers.get(y)
    if last is not None and _op_name(m, g.operators[last]) == "DEQUANTIZE":
        src = int(g.operators[last].inputs[0])
        g.outputs = np.asarray([src], dtype=np.int32)
        _retarget_signature(m, y, src)
        drop.add(last)
    _remove_ops(g, drop)


def _leaky_to_prelu(m) -> int:
    """Turn every int8 LEAKY_RELU into PRELU with alpha as an exact int8 constant (127 at scale alpha / 127)."""
    s = _schema()
    g = m.subgraphs[0]
    alphas: dict[float, int] = {}
    count = 0
    for op in g.operators:
        if _op_name(m, op) != "LEAKY_RELU" or _type_name(g.tensors[int(op.inputs[0])].type) != "INT8":
            continue
        alpha = float(op.builtinOptions.alpha)
        if not 0 < alpha < 1:
            continue
        if alpha not in alphas:
            buf = s.BufferT()
            buf.data = np.array([127], np.int8).view(np.uint8)
            m.buffers.append(buf)
            t = s.TensorT()
            t.shape, t.type, t.buffer, t.name = np.array([1], np.int32), s.TensorType.INT8, len(m.buffers) - 1, \
                f"prelu_alpha_{alpha:g}"
            t.quantization = s.QuantizationParametersT()
            t.quantization.scale, t.quantization.zeroPoint = [alpha / 127], [0]
            g.tensors.append(t)
            alphas[alpha] = len(g.tensors) - 1
        op.opcodeIndex = _opcode(m, "PRELU", 1)
        op.inputs = np.asarray([int(op.inputs[0]), alphas[alpha]], dtype=np.int32)
        op.builtinOptionsType, op.builtinOptions = 0, None
        count += 1
    return count


def _float_io(m) -> None:
    """Give an integer-I/O graph a float input (QUANTIZE after it) and a float output (DEQUANTIZE before it)."""
    g = m.subgraphs[0]
    _float_end(m, g, int(g.inputs[0]), INPUT_NAME, is_input=True)
    _float_end(m, g, int(g.outputs[0]), OUTPUT_NAME, is_input=False)


def _float_end(m, g, idx: int, name: str, *, is_input: bool) -> None:
    """Replace graph input/output tensor ``idx``, if it is integer, by a float tensor called ``name`` joined to it
    by a QUANTIZE (first op) or DEQUANTIZE (last op)."""
    s = _schema()
    t = g.tensors[idx]
    if _type_name(t.type) in _FLOAT_TYPES:
        return
    f = _new_tensor(m, g, t, list(t.shape), None if t.shapeSignature is None else list(t.shapeSignature),
                    name, s.TensorType.FLOAT32)
    g.tensors[f].quantization = None
    t.name = f"{name}_int8"
    op = s.OperatorT()
    op.opcodeIndex = _opcode(m, "QUANTIZE" if is_input else "DEQUANTIZE", 1)
    src, dst = (f, idx) if is_input else (idx, f)
    op.inputs, op.outputs = np.asarray([src], dtype=np.int32), np.asarray([dst], dtype=np.int32)
    if is_input:
        g.operators.insert(0, op)
        g.inputs = np.asarray([f], dtype=np.int32)
    else:
        g.operators.append(op)
        g.outputs = np.asarray([f], dtype=np.int32)
    _retarget_signature(m, idx, f)


def _set_metadata(m, key: str, value: str) -> None:
    s = _schema()
    buf = s.BufferT()
    buf.data = np.frombuffer(value.encode("utf-8"), dtype=np.uint8).copy()
    m.buffers.append(buf)
    m.metadata = [md for md in (m.metadata or []) if md.name != key]
    md = s.MetadataT()
    md.name, md.buffer = key, len(m.buffers) - 1
    m.metadata.append(md)


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


# ---------------------------------------------------------------- precisions
def quantize_fp16(content: bytes) -> tuple[bytes, dict]:
    """Float16 weights (ai-edge-quantizer float casting), float32 compute on CPU, float32 I/O."""
    from ai_edge_quantizer import quantizer

    recipe = [{"regex": ".*", "operation": "*", "algorithm_key": "float_casting",
               "op_config": {"weight_tensor_config": {"num_bits": 16, "dtype": "FLOAT"},
                             "compute_precision": "FLOAT", "explicit_dequantize": True}}]
    try:
        with _quiet_native():
            qt = quantizer.Quantizer(bytearray(content), recipe)
            result = qt.quantize(enable_progress_report=False)
    except Exception as exc:  # the quantizer raises ValueError/RuntimeError
        raise DarkcError(f"float16 conversion with ai-edge-quantizer failed: {one_line(exc)[:300]}") from exc
    return bytes(result.quantized_model), {"weights": "float16, dequantised by DEQUANTIZE ops",
                                           "compute": "float32 on CPU (XNNPACK), float16 on GPU delegates",
                                           "io": "float32", "quantizer": "ai-edge-quantizer float_casting"}


def quantize_int8(content: bytes, inputs: list[np.ndarray], io: str = "float", threads: int | None = None,
                  activation: str = "leaky_relu") -> tuple[bytes, dict]:
    """Full-integer INT8 of a float TFLite model: every operator integer, calibrated on ``inputs``.

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

    Raises:
        DarkcError: no samples, the quantizer failed, or an operator is left in float.
    """
    from ai_edge_quantizer import quantizer, recipe

    io = check_io(io)
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
    try:
        import ai_edge_quantizer

        with _quiet_native():
            qt = quantizer.Quantizer(bytearray(content), recipe.static_wi8_ai8())
            calibration = qt.calibrate({SIGNATURE: samples}, num_threads=threads)
            if INPUT_NAME in calibration:      # the input's range is the contract's [0, 1], not the samples'
                seen = calibration[INPUT_NAME]
                calibration[INPUT_NAME] = {**seen, "min": np.zeros_like(seen["min"]),
                                           "max": np.ones_like(seen["max"])}
            result = qt.quantize(calibration, enable_progress_report=False)
        version = getattr(ai_edge_quantizer, "__version__", None) or _version("ai-edge-quantizer")
    except DarkcError:
        raise
    except Exception as exc:  # the quantizer raises ValueError/RuntimeError
        raise DarkcError(f"INT8 quantisation with ai-edge-quantizer failed: {one_line(exc)[:300]}; check the "
                         f"calibration inputs fit the model's input size") from exc
    m = _read(bytes(result.quantized_model))
    integerised = _integerise(m)
    if activation == "prelu":
        integerised = {"PRELU": _leaky_to_prelu(m), **{k: v for k, v in integerised.items() if k != "LEAKY_RELU"}}
    if io == "int8":
        _integer_io(m)
    else:
        _float_io(m)
    _compact_tensors(m, m.subgraphs[0])
    content = _write(m)
    info = graph_info(content)
    if info["float_ops"]:
        left = ", ".join(f"{k} x{v}" for k, v in _count(info["float_ops"]).items())
        raise DarkcError(f"INT8 TFLite export left operators in float ({left}); ai-edge-quantizer has no int8 rule "
                         f"for them - use an activation/op with int8 support or export --target onnx")
    record = {"method": "minmax", "quantizer": f"ai-edge-quantizer {version} static_wi8_ai8 (min/max)",
              "weights": "int8 symmetric, per output channel",
              "activations": "int8 per tensor" + (" (symmetric)" if info["activation_zero_points"] == [0] else
                                                  ", asymmetric (zero points)"),
              "input_range": "[0, 1] (the input contract's range; calibrated ranges everywhere else)",
              "io": io, "integerised": integerised, "activation": activation, "samples": len(inputs),
              "sample_sizes": [list(s) for s in sorted({tuple(x.shape[2:]) for x in inputs})]}
    return content, record


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def _count(items: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items:
        key = item.split(" ", 1)[0]
        counts[key] = counts.get(key, 0) + 1
    return counts


# ---------------------------------------------------------------- graph facts
def graph_info(model: bytes | str | os.PathLike) -> dict:
    """Operators with their tensor dtypes and the facts an integrator asks about, from a ``.tflite`` file or bytes.

    Returns:
        ``{"ops": ["CONV_2D int8,int8,int32 -> int8", ...] (graph order), "op_counts": {op: n},
        "transposes", "depth_to_space": [dtypes], "transpose_conv": [dtypes], "float_ops" (ops touching a float
        tensor, other than a QUANTIZE of a graph input and a DEQUANTIZE to a graph output; [] for float models is
        not meaningful - check ``precision``), "input"/"output": {"shape", "shape_signature", "dtype",
        "quantization"}, "activation_zero_points": distinct zero points of int8 activations}``.
    """
    content = Path(model).read_bytes() if isinstance(model, (str, os.PathLike)) else model
    m = _read(content)
    g = m.subgraphs[0]
    ops, counts, float_ops = [], {}, []
    zero_points: set[int] = set()
    dtypes = {"DEPTH_TO_SPACE": [], "TRANSPOSE_CONV": []}
    for op in g.operators:
        name = _op_name(m, op)
        ins = [_type_name(g.tensors[t].type).lower() for t in op.inputs if t >= 0]
        outs = [_type_name(g.tensors[t].type).lower() for t in op.outputs]
        ops.append(f"{name} {','.join(ins)} -> {','.join(outs)}")
        counts[name] = counts.get(name, 0) + 1
        boundary = (name == "QUANTIZE" and int(op.inputs[0]) in g.inputs) or \
                   (name == "DEQUANTIZE" and int(op.outputs[0]) in g.outputs)
        if not boundary and any(d.upper() in _FLOAT_TYPES for d in ins + outs):
            float_ops.append(ops[-1])
        if name in dtypes:
            act = int(op.inputs[2]) if name == "TRANSPOSE_CONV" else int(op.inputs[0])
            dtypes[name].append(_type_name(g.tensors[act].type).lower())
        for t in op.outputs:
            tq = g.tensors[t].quantization
            if _type_name(g.tensors[t].type) == "INT8" and tq is not None and tq.zeroPoint is not None:
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
                "dtype": _type_name(tensor.type).lower(), "quantization": quant}

    return {"ops": ops, "op_counts": counts, "operators": len(ops), "transposes": counts.get("TRANSPOSE", 0),
            "depth_to_space": dtypes["DEPTH_TO_SPACE"], "transpose_conv": dtypes["TRANSPOSE_CONV"],
            "float_ops": float_ops, "input": io(int(g.inputs[0])), "output": io(int(g.outputs[0])),
            "activation_zero_points": sorted(zero_points)}


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
                  io: str = "float", calib_method: str = "minmax", int8_activation: str = "leaky_relu") -> dict:
    """Write ``model`` as one ``.tflite`` file of the given precision (in place: pass a staging path).

    Args:
        model, spec: the PyTorch model and its normalised spec (``cfa``, ``in_channels``, ``scale``).
        out: the ``.tflite`` file to write.
        precision: ``fp32``; ``fp16`` (float16 weights); ``int8`` (full integer, see :func:`quantize_int8`).
        input_size: packed (h, w); None (dynamic) is refused, see the module docstring.
        calib: int8 only: calibration samples (1, C, h, w) packed raw at ``input_size``.
        io: int8 only: ``float`` or ``int8`` input/output tensors.
        calib_method: int8 only: ``minmax`` (ai-edge-quantizer's static recipe calibrates min/max only).
        int8_activation: int8 only: ``leaky_relu`` or ``prelu``, see :func:`quantize_int8`.

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
        content, info["calibration"] = quantize_int8(content, calib or [], io, activation=int8_activation)
    content = append_depth_to_space(content, block)
    graph = graph_info(content)
    if precision == "int8" and graph["float_ops"]:
        raise DarkcError(f"INT8 TFLite export has float operators: {graph['float_ops'][:3]}; re-export or report")
    out_name = output_name(spec)
    contract = input_contract(spec, LAYOUT, graph["input"]["shape_signature"] or graph["input"]["shape"],
                              graph["input"]["dtype"], graph["input"]["quantization"],
                              graph["output"]["shape_signature"] or graph["output"]["shape"],
                              graph["output"]["dtype"], graph["output"]["quantization"], INPUT_NAME, out_name)
    m = _read(content)
    if out_name != OUTPUT_NAME:
        _rename_output(m, out_name)
    _set_metadata(m, METADATA_KEY, json.dumps(contract, sort_keys=True))
    content = _write(m)
    Path(out).write_bytes(content)
    if precision == "int8":
        info["kernels"] = kernel_agreement(content, spec["cfa"], input_size, spec)
    info.update({
        "runtime": f"ai-edge-litert {_version('ai-edge-litert')}",
        "input": {"name": INPUT_NAME, "shape": graph["input"]["shape_signature"] or graph["input"]["shape"],
                  "dtype": graph["input"]["dtype"]},
        "output": out_name,
        "graph": {k: graph[k] for k in ("operators", "op_counts", "ops")},
        **_where(graph),
        "contract": contract,
    })
    return info

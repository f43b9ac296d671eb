"""Changing a TFLite flatbuffer's graph in place (object API, ``ModelT``): operators, tensors and the signature.

What the exporter needs that the converter and the quantizer do not give: a ``DEPTH_TO_SPACE`` head on the
integer side (:func:`append_depth_to_space`), darkc's I/O names (:func:`name_io`, :func:`rename_output`), the
input contract in ``metadata`` (:func:`set_metadata`), and the int8 fix-ups of ai-edge-quantizer's output used by
:mod:`darkc.export.tflite_int8`: ops it leaves in float rewired to int8 (:func:`integerise`), int8 LEAKY_RELU as
PRELU (:func:`leaky_to_prelu`), integer or float I/O (:func:`integer_io`, :func:`float_io`), unused tensors dropped
(:func:`compact_tensors`). Reading a graph is :mod:`darkc.export.tflite_graph`.
"""
from __future__ import annotations

import numpy as np

from darkc.errors import DarkcError
from darkc.export.tflite_graph import (FLOAT_TYPES, INPUT_NAME, OUTPUT_NAME, SIGNATURE, op_name, read_model, schema,
                                       type_name, write_model)

#: Ops with TFLite int8 kernels that ai-edge-quantizer leaves in float (DEQUANTIZE -> op -> QUANTIZE); rewired.
INTEGERISED_OPS = ("LEAKY_RELU",)


def append_depth_to_space(content: bytes, block: int | None) -> bytes:
    """The flatbuffer with DEPTH_TO_SPACE(``block``) at its output (see :func:`darkc.export.tflite.torch_to_tflite`)
    and named I/O."""
    m = read_model(content)
    if block:
        _append_depth_to_space(m, block)
    name_io(m)
    return write_model(m)


# ---------------------------------------------------------------- operators, tensors, signature
def _opcode(m, name: str, version: int) -> int:
    """Index of the operator code ``name`` at ``version``, added when missing."""
    from ai_edge_litert.tools import flatbuffer_utils

    s = schema()
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

    s = schema()
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


def compact_tensors(m, g) -> None:
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
    """Add DEPTH_TO_SPACE(r) at the graph output; on the integer side of a final DEQUANTIZE if there is one and
    LiteRT's DEPTH_TO_SPACE takes its type (int8; not int16, e.g. a head kept 16-bit by ``--int16-layers``)."""
    s = schema()
    g = m.subgraphs[0]
    out = int(g.outputs[0])
    producers = _producers(g)
    last = producers.get(out)
    dequant = last is not None and op_name(m, g.operators[last]) == "DEQUANTIZE" and \
        g.tensors[int(g.operators[last].inputs[0])].type != s.TensorType.INT16
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


def name_io(m) -> None:
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


def rename_output(m, name: str) -> None:
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


def set_metadata(m, key: str, value: str) -> None:
    s = schema()
    buf = s.BufferT()
    buf.data = np.frombuffer(value.encode("utf-8"), dtype=np.uint8).copy()
    m.buffers.append(buf)
    m.metadata = [md for md in (m.metadata or []) if md.name != key]
    md = s.MetadataT()
    md.name, md.buffer = key, len(m.buffers) - 1
    m.metadata.append(md)


# ---------------------------------------------------------------- int8 fix-ups
def integerise(m) -> dict[str, int]:
    """Rewire DEQUANTIZE -> op -> QUANTIZE into one integer op for :data:`INTEGERISED_OPS`; counts per op."""
    g = m.subgraphs[0]
    producers, consumers = _producers(g), _consumers(g)
    drop: set[int] = set()
    done: dict[str, int] = {}
    for i, op in enumerate(g.operators):
        name = op_name(m, op)
        if name not in INTEGERISED_OPS:
            continue
        x, y = int(op.inputs[0]), int(op.outputs[0])
        dq = producers.get(x)
        if dq is None or op_name(m, g.operators[dq]) != "DEQUANTIZE":
            continue
        src = int(g.operators[dq].inputs[0])
        if type_name(g.tensors[src].type) in FLOAT_TYPES:
            continue
        users = consumers.get(y, [])
        if not users or y in g.outputs or any(op_name(m, g.operators[u]) != "QUANTIZE" for u in users):
            continue
        # the op runs in its input's integer type: its output is a QUANTIZE's output of that type, or a new
        # tensor (an int8 -> int16 border of --int16-layers) that every QUANTIZE then requantises
        same = [u for u in users if g.tensors[int(g.operators[u].outputs[0])].type == g.tensors[src].type]
        first = same[0] if same else None
        keep = int(g.operators[first].outputs[0]) if same else \
            _requant_source(m, g, src, int(g.operators[users[0]].outputs[0]))
        kq = g.tensors[keep].quantization
        for u in users:
            if u == first:
                continue
            other = int(g.operators[u].outputs[0])
            oq = g.tensors[other].quantization
            if g.tensors[other].type == g.tensors[keep].type and list(oq.scale) == list(kq.scale) and \
                    list(oq.zeroPoint) == list(kq.zeroPoint):
                for v in consumers.get(other, []):
                    g.operators[v].inputs = np.asarray([keep if t == other else t for t in g.operators[v].inputs],
                                                       dtype=np.int32)
                drop.add(u)
            else:                       # a requantisation (another scale or integer type), an integer op
                g.operators[u].inputs = np.asarray([keep], dtype=np.int32)
        op.inputs = np.asarray([src], dtype=np.int32)
        op.outputs = np.asarray([keep], dtype=np.int32)
        if first is not None:
            drop.add(first)
        if consumers.get(x) == [i] and x not in g.outputs:
            drop.add(dq)
        done[name] = done.get(name, 0) + 1
    _remove_ops(g, drop)
    return done


def fold_round_trips(m) -> None:
    """Skip every float -> QUANTIZE -> DEQUANTIZE -> float round trip: the DEQUANTIZE's consumers read the float
    tensor itself (ai-edge-quantizer quantises a graph input even when only float layers read it); the QUANTIZE
    goes too when nothing else reads its output."""
    g = m.subgraphs[0]
    producers, consumers = _producers(g), _consumers(g)
    drop: set[int] = set()
    for i, op in enumerate(g.operators):
        if op_name(m, op) != "DEQUANTIZE":
            continue
        q = producers.get(int(op.inputs[0]))
        if q is None or op_name(m, g.operators[q]) != "QUANTIZE":
            continue
        src, dq_out = int(g.operators[q].inputs[0]), int(op.outputs[0])
        if type_name(g.tensors[src].type) not in FLOAT_TYPES or dq_out in g.outputs:
            continue
        for u in consumers.get(dq_out, []):
            g.operators[u].inputs = np.asarray([src if t == dq_out else t for t in g.operators[u].inputs],
                                               dtype=np.int32)
        drop.add(i)
        mid = int(op.inputs[0])
        if all(u in drop for u in consumers.get(mid, [])) and mid not in g.outputs:
            drop.add(q)
    _remove_ops(g, drop)


def _requant_source(m, g, like: int, target: int) -> int:
    """A new activation tensor of tensor ``like``'s integer type and shape covering tensor ``target``'s float range
    (int8: asymmetric; int16: symmetric, as ai-edge-quantizer quantises them)."""
    s = schema()
    t, src = g.tensors[target], g.tensors[like]
    bits = {s.TensorType.INT8: 8, s.TensorType.INT16: 16}
    tq, tb = t.quantization, bits[t.type]
    scale, zero = float(np.ravel(tq.scale)[0]), int(np.ravel(tq.zeroPoint)[0])
    lo, hi = (-(2 ** (tb - 1)) - zero) * scale, (2 ** (tb - 1) - 1 - zero) * scale
    idx = _new_tensor(m, g, src, list(t.shape), None if t.shapeSignature is None else list(t.shapeSignature),
                      f"{t.name.decode() if isinstance(t.name, bytes) else t.name}_src")
    q = g.tensors[idx].quantization
    if bits[src.type] == 16:
        q.scale, q.zeroPoint = [max(abs(lo), abs(hi)) / 32767], [0]
    else:
        sc = (hi - lo) / 255
        q.scale, q.zeroPoint = [sc], [int(np.clip(round(-128 - lo / sc), -128, 127))]
    return idx


def integer_io(m) -> None:
    """Drop the QUANTIZE after a float input and the DEQUANTIZE before a float output (no-op for integer I/O)."""
    g = m.subgraphs[0]
    producers, consumers = _producers(g), _consumers(g)
    drop = set()
    x = int(g.inputs[0])
    users = consumers.get(x, [])
    if len(users) == 1 and op_name(m, g.operators[users[0]]) == "QUANTIZE":
        q = int(g.operators[users[0]].outputs[0])
        g.inputs = np.asarray([q], dtype=np.int32)
        _retarget_signature(m, x, q)
        drop.add(users[0])
    y = int(g.outputs[0])
    last = producers.get(y)
    if last is not None and op_name(m, g.operators[last]) == "DEQUANTIZE":
        src = int(g.operators[last].inputs[0])
        g.outputs = np.asarray([src], dtype=np.int32)
        _retarget_signature(m, y, src)
        drop.add(last)
    _remove_ops(g, drop)


def leaky_to_prelu(m) -> int:
    """Turn every int8 LEAKY_RELU into PRELU with alpha as an exact int8 constant (127 at scale alpha / 127)."""
    s = schema()
    g = m.subgraphs[0]
    alphas: dict[float, int] = {}
    count = 0
    for op in g.operators:
        if op_name(m, op) != "LEAKY_RELU" or type_name(g.tensors[int(op.inputs[0])].type) != "INT8":
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


def float_io(m) -> None:
    """Give an integer-I/O graph a float input (QUANTIZE after it) and a float output (DEQUANTIZE before it)."""
    g = m.subgraphs[0]
    _float_end(m, g, int(g.inputs[0]), INPUT_NAME, is_input=True)
    _float_end(m, g, int(g.outputs[0]), OUTPUT_NAME, is_input=False)


def _float_end(m, g, idx: int, name: str, *, is_input: bool) -> None:
    """Replace graph input/output tensor ``idx``, if it is integer, by a float tensor called ``name`` joined to it
    by a QUANTIZE (first op) or DEQUANTIZE (last op)."""
    s = schema()
    t = g.tensors[idx]
    if type_name(t.type) in FLOAT_TYPES:
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

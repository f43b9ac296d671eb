"""What a model costs, read off its graph at one input size: MACs and bytes moved, layer by layer.

Per layer (convolutions, transposed convolutions, pooling, concatenation, depth-to-space; element-wise
activations and (de)quantisation are taken as fused into their producer, as inference runtimes do):

- ``macs``: multiply-accumulates (conv: output elements x C_in/groups x kh x kw; transposed conv: input elements x
  C_out/groups x kh x kw);
- ``bytes``: activations read + written + weights read, at the tensors' element size (int8 = 1 byte: in a QDQ
  ONNX graph the int8 side of each Quantize/Dequantize pair is what a fused kernel touches).

The roofline in :mod:`darkc.latency.arm` sums ``max(macs / peak rate, bytes / bandwidth)`` over these layers; at
1080p every feature map is far larger than any cache, so each layer's traffic really goes to DRAM.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from darkc.errors import DarkcError

_MOVE_OPS = {"MaxPool", "AveragePool", "Concat", "DepthToSpace", "Resize", "Upsample",
             "MAX_POOL_2D", "AVERAGE_POOL_2D", "CONCATENATION", "DEPTH_TO_SPACE", "RESIZE_BILINEAR",
             "RESIZE_NEAREST_NEIGHBOR"}


def _summary(layers: list[dict], source: str, dtype: str) -> dict:
    return {"source": source, "dtype": dtype, "layers": layers,
            "macs": int(sum(layer["macs"] for layer in layers)),
            "bytes": int(sum(layer["bytes"] for layer in layers)),
            "weight_bytes": int(sum(layer["weight_bytes"] for layer in layers))}


def _layer(name: str, op: str, macs: int, act_in: int, act_out: int, weights: int) -> dict:
    return {"name": name, "op": op, "macs": int(macs), "bytes": int(act_in + act_out + weights),
            "weight_bytes": int(weights)}


# ---------------------------------------------------------------- ONNX
def onnx_cost(path: str | os.PathLike, shape: tuple[int, ...]) -> dict:
    """Per-layer cost of an ONNX graph with its (single) input set to ``shape`` (the model's own layout)."""
    import onnx
    from onnx import helper, shape_inference

    path = Path(path)
    try:
        model = onnx.load(str(path))
    except Exception as exc:
        raise DarkcError(f"cannot read ONNX graph {path}: {' '.join(str(exc).split())}; re-export it") from exc
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    real_inputs = [i for i in g.input if i.name not in inits]
    if len(real_inputs) != 1:
        raise DarkcError(f"{path}: {len(real_inputs)} graph inputs; darkc bench needs one packed-raw input")
    dims = real_inputs[0].type.tensor_type.shape.dim
    for d, v in zip(dims, shape):
        d.ClearField("dim_param")
        d.dim_value = int(v)
    model = shape_inference.infer_shapes(model, data_prop=True)
    g = model.graph
    elem: dict[str, int] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    for vi in [*g.input, *g.value_info, *g.output]:
        tt = vi.type.tensor_type
        if tt.elem_type:
            elem[vi.name] = np.dtype(helper.tensor_dtype_to_np_dtype(tt.elem_type)).itemsize
        if tt.HasField("shape"):
            shapes[vi.name] = tuple(int(d.dim_value) for d in tt.shape.dim)
    for name, t in inits.items():
        arr_dtype = helper.tensor_dtype_to_np_dtype(t.data_type)
        elem[name] = np.dtype(arr_dtype).itemsize
        shapes[name] = tuple(int(d) for d in t.dims)
    producer = {o: n for n in g.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)

    def source(name: str) -> str:
        """Look through DequantizeLinear (and Cast) to the tensor a fused kernel actually reads."""
        n = producer.get(name)
        while n is not None and n.op_type in ("DequantizeLinear", "Cast"):
            name = n.input[0]
            n = producer.get(name)
        return name

    def size(name: str) -> int:
        if name not in shapes:
            raise DarkcError(f"{path}: no static shape for tensor '{name}' at input {list(shape)}; re-export it")
        return math.prod(shapes[name])

    def act_bytes(name: str) -> int:
        return size(name) * elem.get(source(name), 4)

    def out_bytes(name: str) -> int:
        users = consumers.get(name, [])
        if users and all(u.op_type == "QuantizeLinear" for u in users):
            return size(name) * elem.get(users[0].output[0], 1)
        return size(name) * elem.get(name, 4)

    def weight(name: str) -> tuple[tuple[int, ...], int]:
        src = source(name)
        if src not in inits:
            raise DarkcError(f"{path}: weight '{name}' is not a constant; darkc bench needs constant conv weights")
        return shapes[src], math.prod(shapes[src]) * elem[src]

    layers = []
    dtype = "fp32"
    for n in g.node:
        op = n.op_type
        if op in ("QuantizeLinear", "QLinearConv", "ConvInteger"):
            dtype = "int8"
        if op in ("Conv", "ConvTranspose"):
            (wshape, wbytes) = weight(n.input[1])
            bias = math.prod(weight(n.input[2])[0]) * 4 if len(n.input) > 2 and n.input[2] else 0
            kernel = math.prod(wshape[2:])
            # Conv weight (C_out, C_in/groups, kh, kw); ConvTranspose weight (C_in, C_out/groups, kh, kw)
            macs = size(n.output[0] if op == "Conv" else n.input[0]) * wshape[1] * kernel
            if elem.get(source(n.input[0])) == 2:
                dtype = "fp16" if dtype == "fp32" else dtype
            layers.append(_layer(n.name or n.output[0], op, macs, act_bytes(n.input[0]), out_bytes(n.output[0]),
                                 wbytes + bias))
        elif op in _MOVE_OPS:
            ins = [i for i in n.input if i and source(i) not in inits]
            layers.append(_layer(n.name or n.output[0], op, 0, sum(act_bytes(i) for i in ins),
                                 out_bytes(n.output[0]), 0))
    if not layers:
        raise DarkcError(f"{path}: no convolution found in the ONNX graph; pass a darkc model")
    return _summary(layers, "onnx graph", dtype)


# ---------------------------------------------------------------- TFLite
def tflite_cost(path: str | os.PathLike, shape: tuple[int, ...]) -> dict:
    """Per-layer cost of a TFLite graph with its input resized to ``shape`` (NHWC), shapes from LiteRT.

    A graph fixed at another size keeps its own shapes when resized (LiteRT leaves them), so its cost is read at
    its own size and the activations' MACs and bytes scaled by the pixel ratio (weights unchanged): exact for a
    fully convolutional network when both sizes are multiples of its size multiple (``darkc bench --size`` of a
    small fixed export, as the ARM emulation runs)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as exc:
        raise DarkcError(f"cannot read {path}: the TFLite runtime is not installed; install darkc[tflite]") from exc
    path = Path(path)
    try:
        it = Interpreter(model_path=str(path), num_threads=1,
                         experimental_preserve_all_tensors=False)
        d = it.get_input_details()[0]
        own = tuple(int(v) for v in d["shape"])
        fixed = all(int(v) > 0 for v in d.get("shape_signature", d["shape"]))
        if own != tuple(shape) and not fixed:
            it.resize_tensor_input(d["index"], list(shape), strict=False)
        it.allocate_tensors()
    except Exception as exc:
        raise DarkcError(f"cannot load TFLite model {path}: {' '.join(str(exc).split())}; re-export it") from exc
    scale = 1.0
    if own != tuple(shape) and fixed:
        if len(own) != 4 or len(shape) != 4 or own[0] != shape[0] or own[3] != shape[3]:
            raise DarkcError(f"{path} is fixed at input {list(own)} and cannot be costed at {list(shape)}; "
                             f"re-export it at that size")
        scale = (shape[1] * shape[2]) / (own[1] * own[2])
    tensors = {t["index"]: t for t in it.get_tensor_details()}

    def numel(i: int) -> int:
        return int(math.prod(int(v) for v in tensors[i]["shape"]))

    def nbytes(i: int) -> int:
        return numel(i) * np.dtype(tensors[i]["dtype"]).itemsize

    layers, dtype = [], "fp32"
    for op in it._get_ops_details():
        name, ins, outs = op["op_name"], [i for i in op["inputs"] if i >= 0], list(op["outputs"])
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "FULLY_CONNECTED"):
            if name == "TRANSPOSE_CONV":
                w, x = ins[1], ins[2]
                bias = ins[3:]
            else:
                x, w = ins[0], ins[1]
                bias = ins[2:]
            wshape = [int(v) for v in tensors[w]["shape"]]
            if name == "CONV_2D":
                macs = numel(outs[0]) * wshape[1] * wshape[2] * wshape[3]
            elif name == "DEPTHWISE_CONV_2D":
                macs = numel(outs[0]) * wshape[1] * wshape[2]
            elif name == "TRANSPOSE_CONV":
                macs = numel(x) * wshape[0] * wshape[1] * wshape[2]
            else:
                macs = numel(outs[0]) * wshape[-1]
            if np.dtype(tensors[x]["dtype"]).kind in "iu":
                dtype = "int8"
            elif np.dtype(tensors[w]["dtype"]) == np.float16 or any(
                    np.dtype(tensors[i]["dtype"]) == np.float16 for i in ins):
                dtype = "fp16"
            layers.append(_layer(tensors[outs[0]]["name"], name, macs * scale, nbytes(x) * scale,
                                 nbytes(outs[0]) * scale, nbytes(w) + sum(nbytes(b) for b in bias)))
        elif name in _MOVE_OPS:
            acts = [i for i in ins if tensors[i].get("shape") is not None and len(tensors[i]["shape"]) == 4]
            layers.append(_layer(tensors[outs[0]]["name"], name, 0, sum(nbytes(i) for i in acts) * scale,
                                 nbytes(outs[0]) * scale, 0))
    if not layers:
        raise DarkcError(f"{path}: no convolution found in the TFLite graph; pass a darkc model")
    return _summary(layers, "tflite graph", dtype)


# ---------------------------------------------------------------- PyTorch
def torch_cost(model, shape: tuple[int, ...]) -> dict:
    """Per-layer cost of a PyTorch model (float32) on the ``meta`` device: conv, transposed conv, pooling and
    pixel-shuffle modules (``torch.cat`` is a function, not a module: its copies are not counted)."""
    import torch
    from torch import nn

    from darkc.models.complexity import count_macs_by_layer

    macs = count_macs_by_layer(model, tuple(shape))
    layers = []

    def hook(name):
        def record(module, inputs, output):
            weights = sum(p.numel() for p in module.parameters(recurse=False)) * 4
            layers.append(_layer(name, type(module).__name__, macs.get(name, 0), inputs[0].numel() * 4,
                                 output.numel() * 4, weights))
        return record

    kinds = (nn.Conv2d, nn.ConvTranspose2d, nn.MaxPool2d, nn.AvgPool2d, nn.PixelShuffle)
    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules() if isinstance(m, kinds)]
    try:
        state = {k: torch.empty_like(v, device="meta") for k, v in [*model.named_parameters(),
                                                                    *model.named_buffers()]}
        with torch.no_grad():
            torch.func.functional_call(model, state, (torch.empty(tuple(shape), device="meta"),))
    finally:
        for h in handles:
            h.remove()
    return _summary(layers, "pytorch modules", "fp32")

"""Per-layer diagnosis of an exported model: each conv layer's SQNR against the PyTorch model it came from.

Quantisation error and converter bugs look alike at the output; layer by layer they do not. For every conv and
transposed conv the exported file's own output tensor (the int8 tensor a QDQ ``QuantizeLinear`` or a TFLite
int8 op writes, dequantised with its scale and zero point; the float tensor of fp32/fp16 files) is read from the
runtime that ships it (ONNX Runtime with its fused int8 kernels; LiteRT's built-in kernels, since XNNPACK does not
expose intermediate tensors) and compared with the same layer's output in PyTorch (before the activation) on the
same inputs::

    rows = layer_sqnr("runs/student-int8/model.onnx", samples=4)      # weights from the artifact's folder
    print(format_table(rows, "table"))

Reading the table: SQNR falls slowly with depth (each layer adds its rounding to what it inherits). ``floor_db``
is the SQNR the layer's own int8 step alone would allow (uniform rounding noise step**2 / 12); ``clipped`` the
share of reference values outside the int8 range (calibration too narrow). A layer far below the layers before it
with nothing clipped points at the kernel or the converter (e.g. ONNX Runtime's saturating U8S8 kernels on x86
without VNNI), and a whole table that sags far below ``floor_db`` a bias that adds up layer after layer (LiteRT's
built-in int8 LEAKY_RELU, see ``darkc.export.tflite_int8.quantize_int8``); check FP32 first: the same table for the
fp32 file should show > 100 dB everywhere.
"""
from __future__ import annotations

import json
import math
import os
import re
import warnings
from pathlib import Path

import numpy as np

from darkc.errors import DarkcError, one_line

#: Default number of synthetic validation inputs.
DEFAULT_SAMPLES = 4
#: SQNR reported for a layer whose output equals the reference.
SQNR_IDENTICAL = 200.0
_ONNX_NODE = re.compile(r"^/(?P<path>.+)/(?P<op>Conv|ConvTranspose)$")
_TFLITE_CONVS = ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV")


def sqnr_db(test: np.ndarray, reference: np.ndarray) -> float:
    """Signal-to-quantisation-noise ratio in dB: 10 log10(sum(ref**2) / sum((test - ref)**2)).

    Raises:
        ValueError: the shapes differ.
    """
    test, reference = np.asarray(test, np.float64), np.asarray(reference, np.float64)
    if test.shape != reference.shape:
        raise ValueError(f"sqnr_db: test shape {test.shape} differs from reference shape {reference.shape}")
    noise = float(np.sum((test - reference) ** 2))
    signal = float(np.sum(reference ** 2))
    if noise == 0:
        return SQNR_IDENTICAL
    if signal == 0:
        return -SQNR_IDENTICAL
    return max(min(10 * math.log10(signal / noise), SQNR_IDENTICAL), -SQNR_IDENTICAL)


# ---------------------------------------------------------------- PyTorch reference
def _reference(model, inputs: list[np.ndarray], names: list[str] | None) -> tuple[list[str], list[list[np.ndarray]]]:
    """Outputs of every Conv2d / ConvTranspose2d (``names``: those modules; None: all, in execution order)."""
    import torch
    from torch import nn

    kinds = (nn.Conv2d, nn.ConvTranspose2d)
    modules = dict(model.named_modules())
    if names is not None:
        missing = [n for n in names if n not in modules]
        if missing:
            raise DarkcError(f"the PyTorch model has no layer {missing[0]!r} that the exported file names; pass the "
                             f"--model it was exported from")
    order: list[str] = []
    captured: dict[str, list[np.ndarray]] = {}

    def hook(name):
        def fn(_module, _inputs, output):
            if name not in captured:
                order.append(name)
            captured.setdefault(name, []).append(output.detach().float().numpy().copy())
        return fn

    chosen = names if names is not None else [n for n, m in modules.items() if isinstance(m, kinds)]
    handles = [modules[n].register_forward_hook(hook(n)) for n in chosen]
    try:
        with torch.inference_mode():
            for x in inputs:
                model(torch.from_numpy(np.ascontiguousarray(x)))
    finally:
        for h in handles:
            h.remove()
    layers = names if names is not None else order
    return layers, [captured[n] for n in layers]


# ---------------------------------------------------------------- ONNX
def _onnx_layers(path: Path, inputs: list[np.ndarray]) -> tuple[list[dict], list[list[np.ndarray]]]:
    """Conv/ConvTranspose outputs of an ONNX model as its runtime computes them, dequantised."""
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    users: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            users.setdefault(name, []).append(node)
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
        types = {v.name: v.type.tensor_type.elem_type for v in list(inferred.graph.value_info)
                 + list(inferred.graph.output)}
    except Exception:  # shape inference is a best effort; float32 is assumed below
        types = {}
    layers, outputs = [], []
    for i, node in enumerate(n for n in graph.node if n.op_type in ("Conv", "ConvTranspose")):
        match = _ONNX_NODE.match(node.name)
        out = node.output[0]
        quant = [u for u in users.get(out, []) if u.op_type == "QuantizeLinear"]
        entry = {"layer": match.group("path").replace("/", ".") if match else None, "index": i,
                 "op": node.op_type, "tensor": out}
        if quant:
            q = quant[0]
            scale = inits.get(q.input[1])
            zero = inits.get(q.input[2]) if len(q.input) > 2 and q.input[2] else np.zeros((), np.uint8)
            if scale is None or np.size(scale) != 1:
                raise DarkcError(f"{path}: QuantizeLinear {q.name} has no per-tensor scale initializer; darkc reads "
                                 f"QDQ graphs from darkc export --precision int8")
            entry.update(tensor=q.output[0], scale=float(np.ravel(scale)[0]), zero_point=int(np.ravel(zero)[0]),
                         dtype=str(np.asarray(zero).dtype))
            elem = onnx.helper.np_dtype_to_tensor_dtype(np.asarray(zero).dtype)
        else:
            elem = types.get(out, onnx.TensorProto.FLOAT)
            entry["dtype"] = str(onnx.helper.tensor_dtype_to_np_dtype(elem))
        layers.append(entry)
        outputs.append(onnx.helper.make_tensor_value_info(entry["tensor"], elem, None))
    if not layers:
        raise DarkcError(f"{path} has no Conv or ConvTranspose node; nothing to diagnose")
    known = {o.name for o in graph.output}
    graph.output.extend(o for o in outputs if o.name not in known)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    try:
        session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        raise DarkcError(f"cannot load {path} with its layer outputs exposed: {one_line(exc)[:200]}") from exc
    feed = session.get_inputs()[0]
    names = [e["tensor"] for e in layers]
    values: list[list[np.ndarray]] = [[] for _ in layers]
    for x in inputs:
        x = x.astype(np.float16 if feed.type == "tensor(float16)" else np.float32)
        for k, v in enumerate(session.run(names, {feed.name: x})):
            e = layers[k]
            v = (v.astype(np.float32) - e["zero_point"]) * e["scale"] if "scale" in e else v.astype(np.float32)
            values[k].append(v)
    return layers, values


# ---------------------------------------------------------------- TFLite
def _tflite_layers(path: Path, inputs: list[np.ndarray]) -> tuple[list[dict], list[list[np.ndarray]], bool]:
    """Conv outputs of a TFLite model (LiteRT built-in kernels, every tensor kept), dequantised, NCHW."""
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError as exc:
        raise DarkcError(f"diagnosing {path} needs the TFLite runtime: install darkc[tflite]") from exc
    from darkc.export.tflite_graph import op_name, read_model, type_name
    from darkc.inference import quantize_tensor

    m = read_model(Path(path).read_bytes())
    g = m.subgraphs[0]
    layers = []
    has_d2s = False
    for op in g.operators:
        name = op_name(m, op)
        has_d2s |= name == "DEPTH_TO_SPACE"
        if name not in _TFLITE_CONVS:
            continue
        t = int(op.outputs[0])
        tensor = g.tensors[t]
        entry = {"layer": None, "index": len(layers), "op": name, "tensor_index": t,
                 "tensor": tensor.name.decode() if isinstance(tensor.name, bytes) else tensor.name,
                 "dtype": type_name(tensor.type).lower()}
        q = tensor.quantization
        if entry["dtype"] in ("int8", "uint8", "int16") and q is not None and q.scale is not None and len(q.scale):
            entry.update(scale=float(q.scale[0]), zero_point=int(np.ravel(q.zeroPoint)[0]))
        layers.append(entry)
    if not layers:
        raise DarkcError(f"{path} has no CONV_2D or TRANSPOSE_CONV op; nothing to diagnose")
    from darkc.inference import check_tflite_loads

    check_tflite_loads(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")      # "preserve_all_tensors is for debugging": it is, here
            interp = Interpreter(model_path=str(path), experimental_preserve_all_tensors=True,
                                 experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    except Exception as exc:  # LiteRT raises ValueError/RuntimeError
        raise DarkcError(f"cannot load TFLite model {path}: {one_line(exc)[:200]}; re-export it") from exc
    detail = interp.get_input_details()[0]
    values: list[list[np.ndarray]] = [[] for _ in layers]
    for x in inputs:
        xn = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        interp.resize_tensor_input(detail["index"], list(xn.shape), strict=False)
        interp.allocate_tensors()
        interp.set_tensor(detail["index"], quantize_tensor(xn, detail))
        interp.invoke()
        for k, e in enumerate(layers):
            v = interp.get_tensor(e["tensor_index"])
            v = (v.astype(np.float32) - e["zero_point"]) * e["scale"] if "scale" in e else v.astype(np.float32)
            values[k].append(np.ascontiguousarray(v.transpose(0, 3, 1, 2)))
    return layers, values, has_d2s


# ---------------------------------------------------------------- the stage
def _model_for(exported: Path, model) -> tuple[object, dict]:
    """The PyTorch model to compare with: ``model`` or the checkpoint in the exported file's folder."""
    from darkc.errors import sha256_file
    from darkc.models import load_checkpoint, resolve_model_ref

    folder = exported.parent
    if model is None:
        if not (folder / "model.safetensors").is_file() or not (folder / "model.json").is_file():
            raise DarkcError(f"{folder} has no model.safetensors + model.json beside {exported.name}; pass --model "
                             f"(the checkpoint it was exported from)")
        return load_checkpoint(folder)
    kind, src = resolve_model_ref(model)
    if kind not in ("checkpoint", "pretrained"):
        raise DarkcError(f"--model {model} is an exported {kind} file; pass the PyTorch checkpoint folder (or shipped "
                         f"name) that {exported.name} was exported from")
    record_path = folder / "model.json"
    if record_path.is_file():
        try:
            exports = json.loads(record_path.read_text(encoding="utf-8")).get("provenance", {}).get("exports", {})
            parent = exports.get(exported.name, {}).get("parent", {}).get("weights_sha256")
        except (ValueError, AttributeError):
            parent = None
        if parent and (src / "model.safetensors").is_file() and sha256_file(src / "model.safetensors") != parent:
            raise DarkcError(f"{exported.name} was exported from other weights than --model {model} ({record_path} "
                             f"records sha256 {parent[:12]}...); pass the model it came from")
    return load_checkpoint(src)


def layer_sqnr(exported: str | os.PathLike, model=None, samples: int | list[np.ndarray] = DEFAULT_SAMPLES) -> list[dict]:
    """Per-layer SQNR (exported vs PyTorch) of every conv and transposed conv, in graph order.

    Args:
        exported: an ``.onnx`` or ``.tflite`` file made by ``darkc export`` (int8, fp16 or fp32).
        model: the PyTorch checkpoint folder or shipped name it was exported from; None: the ``model.safetensors``
            + ``model.json`` beside the file (every darkc export artifact has them).
        samples: number of synthetic validation inputs (darkc's parity inputs, at the file's fixed size or 64x96 /
            96x64 packed px), or a list of (1, C, h, w) float32 packed raw arrays.

    Returns:
        One dict per layer: ``layer`` (PyTorch module name), ``op``, ``dtype`` of the exported tensor, ``shape``
        (C, h, w of the first input), ``sqnr_db``, ``floor_db`` (SQNR of the tensor's own int8 rounding alone,
        None for float tensors), ``clipped`` (share of reference values outside the int8 range, None for float),
        ``scale`` and ``zero_point`` (int8).

    Raises:
        DarkcError: missing file/model, a file of another kind, a model that does not match the file.
    """
    from darkc.export.parity import parity_inputs
    from darkc.inference import load_runner

    exported = Path(exported)
    if not exported.is_file():
        raise DarkcError(f"{exported} does not exist; pass an exported .onnx or .tflite file")
    suffix = exported.suffix.lower()
    if suffix not in (".onnx", ".tflite"):
        raise DarkcError(f"{exported} is not an .onnx or .tflite file; pass a file made by darkc export")
    net, spec = _model_for(exported, model)
    net = net.eval()
    runner = load_runner(str(exported))
    if runner.in_channels != spec["in_channels"]:
        raise DarkcError(f"{exported} takes {runner.in_channels} channels but the model takes {spec['in_channels']}; "
                         f"pass the --model it was exported from")
    if isinstance(samples, list):
        inputs = [np.asarray(x, np.float32) for x in samples]
        if not inputs or any(x.ndim != 4 or x.shape[1] != spec["in_channels"] for x in inputs):
            raise DarkcError(f"samples must be (1, {spec['in_channels']}, h, w) model inputs (packed raw"
                             f"{', then the noise-std channel' if spec['in_channels'] > spec['out_channels'] else ''})")
    else:
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise DarkcError(f"--samples is {samples!r}; pass a positive integer")
        inputs = parity_inputs(spec["cfa"], runner.fixed_size, samples, spec=spec)
    del runner

    if suffix == ".onnx":
        layers, values = _onnx_layers(exported, inputs)
        names = [e["layer"] for e in layers]
        ref_model = net
    else:
        layers, values, has_d2s = _tflite_layers(exported, inputs)
        names = None
        ref_model = net
        if has_d2s:
            from darkc.export.tflite import split_pixel_shuffle

            body, _ = split_pixel_shuffle(net, spec["in_channels"])
            ref_model = body if body is not None else net
    if names is not None and any(n is None for n in names):
        names = None                        # unnamed nodes: match by execution order
    ref_names, refs = _reference(ref_model, inputs, names)
    if len(ref_names) != len(layers):
        raise DarkcError(f"{exported} has {len(layers)} conv layers but the PyTorch model runs {len(ref_names)}; "
                         f"pass the --model it was exported from")
    rows = []
    for e, name, got, want in zip(layers, ref_names, values, refs):
        if got[0].shape != want[0].shape:
            raise DarkcError(f"{exported}: conv layer {e['index']} ({e['op']}) outputs {list(got[0].shape)} but "
                             f"PyTorch layer {name} outputs {list(want[0].shape)}; pass the --model it was exported "
                             f"from")
        g, w = np.concatenate([v.ravel() for v in got]), np.concatenate([v.ravel() for v in want])
        row = {"layer": name, "op": e["op"], "dtype": e["dtype"], "shape": list(want[0].shape[1:]),
               "sqnr_db": round(sqnr_db(g, w), 2), "floor_db": None, "clipped": None}
        if "scale" in e:
            info = np.iinfo(np.dtype(e["dtype"]))
            step = e["scale"]
            lo, hi = (info.min - e["zero_point"]) * step, (info.max - e["zero_point"]) * step
            power = float(np.mean(w.astype(np.float64) ** 2))
            row["floor_db"] = round(10 * math.log10(power / (step * step / 12)), 2) if power > 0 else None
            row["clipped"] = float(np.mean((w < lo - step / 2) | (w > hi + step / 2)))
            row["scale"], row["zero_point"] = step, e["zero_point"]
        rows.append(row)
    return rows


def format_table(rows: list[dict], fmt: str = "table") -> str:
    """The diagnosis as an aligned text table, a Markdown table or JSON."""
    if fmt == "json":
        return json.dumps(rows, indent=2)
    if fmt not in ("table", "md"):
        raise DarkcError(f"--format {fmt!r} is unknown; use table, md or json")
    head = ["layer", "op", "dtype", "C x h x w", "SQNR dB", "floor dB", "clipped %"]
    body = []
    for r in rows:
        body.append([r["layer"], r["op"], r["dtype"], "x".join(str(v) for v in r["shape"]), f"{r['sqnr_db']:.1f}",
                     "-" if r["floor_db"] is None else f"{r['floor_db']:.1f}",
                     "-" if r["clipped"] is None else f"{100 * r['clipped']:.3f}"])
    if fmt == "md":
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
        return "\n".join(lines + ["| " + " | ".join(b) + " |" for b in body])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    fmt_row = lambda cells: "  ".join(str(c).ljust(w) if i < 3 else str(c).rjust(w)  # noqa: E731
                                      for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([fmt_row(head)] + [fmt_row(b) for b in body])

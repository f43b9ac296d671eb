"""Which layers an INT8 export leaves in float (``--float-layers``): NNCF's "ignored scope", chosen by a rule.

A raw-output model's full-resolution layers need more than 8 bits. Its output is linear raw that LibRaw then
white-balances, colour-corrects and gamma-encodes, so an 8-bit step in a dark region becomes several sRGB levels,
whereas an sRGB model's 8-bit steps are already perceptual. On the shipped ``student-raw``
(benchmarks/results/int8_sensitivity.md, ONNX Runtime QDQ): the convs of the first and last blocks and the head, each
alone in INT8, cost 0.32-0.95 dB, every other conv at most 0.08; all of them INT8, 2.18 dB; the full-resolution
nodes in float, 0.12 dB; 16-bit activations there, 0.13 dB (benchmarks/results/int8_quality.md: the default INT8
TFLite file loses 0.06 / 0.05 dB on the reference / held-out sets, full integer 1.44 / 1.12).

Rules:

* ``none``: every layer INT8 (a full-integer model, what an NPU needs);
* ``full-res``: every operator whose output has the input's packed height and width stays float (for the SID
  U-Net: the first and last blocks, the last upsampling, the head and the residual add), and the head conv whose
  output a final depth-to-space turns into full-resolution pixels (mobile-unet ``head="half"``: its values *are*
  the output raw), found from the graph's own shapes, so it holds for any network; the rest is INT8;
* ``auto`` (default): ``full-res`` for a raw-output model, ``none`` for an sRGB one, and ``none`` for a TFLite
  export with int8 I/O (``--io int8``: an NPU's deployment, which runs integer operators only) or with
  ``--int16-layers``.

``--int16-layers full-res`` keeps the same operators integer with 16-bit activations (8-bit weights, "16x8"):
integer throughout, which an NPU runs (Vela maps 16x8 convolutions to Ethos-U), at about twice float's loss (0.23 vs
0.11 dB above); LiteRT's CPU kernels for it are reference code, slow.
"""
from __future__ import annotations

from darkc.errors import DarkcError

#: ``--float-layers`` values.
FLOAT_LAYER_RULES = ("auto", "none", "full-res")
#: ``--int16-layers`` values.
INT16_LAYER_RULES = ("none", "full-res")


def check_int16_layers(value: str) -> str:
    if value not in INT16_LAYER_RULES:
        raise DarkcError(f"--int16-layers {value!r} is unknown; use one of {', '.join(INT16_LAYER_RULES)}")
    return value


def check_float_layers(value: str) -> str:
    if value not in FLOAT_LAYER_RULES:
        raise DarkcError(f"--float-layers {value!r} is unknown; use one of {', '.join(FLOAT_LAYER_RULES)}")
    return value


def resolve_float_layers(value: str, spec: dict) -> str:
    """The rule that applies to the model of ``spec``: ``auto`` -> ``full-res`` for raw output, else ``none``."""
    value = check_float_layers(value)
    if value == "auto":
        return "full-res" if spec.get("output") == "raw" else "none"
    return value


def onnx_full_res_nodes(model_path, input_shape: tuple[int, ...]) -> list[str]:
    """Names of the nodes of the ONNX graph at ``model_path`` whose every rank-4 output has the input's height and
    width, for an input of ``input_shape`` (N, C, H, W) (dynamic graphs are given that shape to infer the rest)."""
    import onnx

    m = onnx.load(str(model_path))
    dims = m.graph.input[0].type.tensor_type.shape.dim
    for d, n in zip(dims, input_shape):
        d.ClearField("dim_param")
        d.dim_value = int(n)
    del m.graph.value_info[:]
    for o in m.graph.output:
        o.type.tensor_type.ClearField("shape")
    m = onnx.shape_inference.infer_shapes(m)
    shapes = {v.name: [d.dim_value if d.HasField("dim_value") else None for d in v.type.tensor_type.shape.dim]
              for v in list(m.graph.value_info) + list(m.graph.output) + list(m.graph.input)}
    hw = list(input_shape[2:])
    out = []
    for n in m.graph.node:
        outs = [shapes.get(o) for o in n.output]
        if outs and all(s is not None and len(s) == 4 and s[2:] == hw for s in outs):
            out.append(n.name)
    # the producer of a full-resolution DepthToSpace's input: its channels are full-resolution pixels
    produced = {o: n.name for n in m.graph.node for o in n.output}
    heads = {produced.get(n.input[0]) for n in m.graph.node if n.op_type == "DepthToSpace" and n.name in out}
    return [n.name for n in m.graph.node if n.name in out or n.name in heads]


def tflite_full_res_outputs(g, hw: list[int], depth_to_space: int | None = None) -> list[str]:
    """Output tensor names of the operators of TFLite subgraph ``g`` (NHWC) whose every output has height and
    width ``hw``; with ``depth_to_space`` (the block of a DEPTH_TO_SPACE the exporter appends at the output, see
    :func:`darkc.export.tflite.split_pixel_shuffle`), also the operator producing the graph output when that
    block brings it to ``hw``."""
    out = []
    final = {int(t) for t in g.outputs}
    for op in g.operators:
        ts = [g.tensors[t] for t in op.outputs]
        r = depth_to_space if depth_to_space and all(int(t) in final for t in op.outputs) else 1
        if ts and all(t.shape is not None and len(t.shape) == 4 and [int(v) * r for v in t.shape[1:3]] == hw
                      for t in ts):
            out.extend(t.name.decode() if isinstance(t.name, bytes) else str(t.name) for t in ts)
    return out

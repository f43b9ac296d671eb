"""Tests for darkc/export/float_layers.py and the INT8 calibration it rests on: which layers an INT8 export keeps
in float (``--float-layers``), on ONNX Runtime QDQ and TFLite, and TFLite min/max ranges that are min and max."""
from __future__ import annotations

import importlib.util

import numpy as np
import onnx
import pytest

from darkc.cli import main
from darkc.export import export
from darkc.export.float_layers import resolve_float_layers
from helpers import raises_naming, tiny_checkpoint

TFLITE = all(importlib.util.find_spec(m) is not None for m in ("litert_torch", "ai_edge_quantizer", "ai_edge_litert"))
needs_tflite = pytest.mark.skipif(not TFLITE, reason="the tflite extra is not installed: pip install -e .[tflite]")

RAW = {"arch": "sid-unet", "cfa": "bayer", "output": "raw", "input": {"noise": "std-map"}, "widths": [4, 8, 8, 8, 8]}
SRGB = {"arch": "sid-unet", "cfa": "bayer", "widths": [4, 8, 8, 8, 8]}
SIZE = "128x128"        # raw px: packed 64x64


@pytest.fixture(scope="module")
def raw_ckpt(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("raw") / "ckpt", RAW)


def test_auto_keeps_float_only_for_raw_output():
    assert resolve_float_layers("auto", {"output": "raw"}) == "full-res"
    assert resolve_float_layers("auto", {"output": "srgb"}) == "none"
    assert resolve_float_layers("auto", {}) == "none"
    assert resolve_float_layers("none", {"output": "raw"}) == "none"
    with raises_naming("--float-layers", "'half'", "full-res"):
        resolve_float_layers("half", {"output": "raw"})


def _float_convs(path) -> set[str]:
    """Conv nodes of a QDQ graph whose weight is not dequantised (left in float)."""
    g = onnx.load(str(path)).graph
    dq = {o for n in g.node if n.op_type == "DequantizeLinear" for o in n.output}
    return {n.name for n in g.node if n.op_type in ("Conv", "ConvTranspose") and n.input[1] not in dq}


def test_onnx_raw_model_keeps_its_full_resolution_layers_float(raw_ckpt, tmp_path):
    auto = export(raw_ckpt, tmp_path / "auto.onnx", precision="int8", samples=2, calib_size=64)
    none = export(raw_ckpt, tmp_path / "none.onnx", precision="int8", samples=2, calib_size=64, float_layers="none")
    # full resolution (packed input's H x W): the first block, the last upsampling and block, the head; the input
    # itself is not quantised (the residual add reads it in float)
    assert _float_convs(auto["file"]) == {"/conv1_1/Conv", "/conv1_2/Conv", "/up9/ConvTranspose", "/conv9_1/Conv",
                                          "/conv9_2/Conv", "/conv10/Conv"}
    assert {"/Add", "/Slice"} <= set(auto["calibration"]["float_layers"]["nodes"])
    g = onnx.load(auto["file"]).graph
    assert not [n for n in g.node if n.op_type == "QuantizeLinear" and n.input[0] == "raw"]
    assert _float_convs(none["file"]) == set()
    assert auto["calibration"]["float_layers"]["rule"] == "full-res"
    assert none["calibration"]["float_layers"] == {"rule": "none", "nodes": []}


def test_onnx_srgb_model_stays_full_integer(tmp_path):
    ckpt = tiny_checkpoint(tmp_path / "srgb", SRGB)
    rep = export(ckpt, tmp_path / "q.onnx", precision="int8", samples=2, calib_size=64)
    assert rep["calibration"]["float_layers"]["rule"] == "none"
    assert _float_convs(rep["file"]) == set()


@needs_tflite
def test_tflite_raw_model_float_region_and_float_input(raw_ckpt, tmp_path):
    from darkc.export.tflite import graph_info

    rep = export(raw_ckpt, tmp_path / "m.tflite", target="tflite", precision="int8", input_size=SIZE, samples=2)
    info = graph_info(rep["file"])
    convs = [op for op in info["ops"] if op.startswith(("CONV_2D", "TRANSPOSE_CONV"))]
    float_convs = [op for op in convs if "float32 ->" in op or "-> float32" in op]
    assert len(float_convs) == 6 and len(convs) == 23      # 19 CONV_2D + 4 TRANSPOSE_CONV: 6 at full resolution
    assert info["input"]["dtype"] == "float32"
    # the first conv reads the float input itself: no QUANTIZE -> DEQUANTIZE round trip in front of it
    assert info["ops"][0].startswith("CONV_2D float32")
    assert rep["calibration"]["float_layers"]["rule"] == "full-res"
    full = export(raw_ckpt, tmp_path / "n.tflite", target="tflite", precision="int8", input_size=SIZE, samples=2,
                  float_layers="none")
    assert graph_info(full["file"])["float_ops"] == []


@needs_tflite
def test_int8_io_means_full_integer(raw_ckpt, tmp_path):
    """int8 I/O (an NPU's deployment): auto keeps nothing in float; asking for float layers as well is an error."""
    from darkc.export.tflite import graph_info

    with raises_naming("--io int8", "--float-layers none"):
        export(raw_ckpt, tmp_path / "m.tflite", target="tflite", precision="int8", input_size=SIZE, samples=2,
               io="int8", float_layers="full-res")
    assert not (tmp_path / "m.tflite").exists()
    assert main(["quantize", "--model", str(raw_ckpt), "--target", "tflite", "--input-size", SIZE, "--samples", "2",
                 "--io", "int8", "-o", str(tmp_path / "io8.tflite")]) == 0
    assert graph_info(str(tmp_path / "io8.tflite"))["float_ops"] == []


@needs_tflite
@pytest.mark.parametrize("target", ["onnx", "tflite"])
def test_shipped_raw_student_int8_agrees_with_pytorch_when_full_res_is_float(target, tmp_path):
    """The shipped raw student agrees with PyTorch on packed raw far better with its full-resolution layers in
    float, and better with them in 16-bit, than all-INT8 (benchmarks/results/int8_quality.md has what that does to
    sRGB PSNR)."""
    ext = "onnx" if target == "onnx" else "tflite"
    kw = {"input_size": "256x256"} if target == "tflite" else {"calib_size": 128}
    auto = export("student-raw", tmp_path / f"a.{ext}", target=target, precision="int8", samples=4, **kw)
    none = export("student-raw", tmp_path / f"n.{ext}", target=target, precision="int8", samples=4,
                  float_layers="none", check=False, **kw)
    wide = export("student-raw", tmp_path / f"w.{ext}", target=target, precision="int8", samples=4,
                  int16_layers="full-res", check=False, **kw)
    assert auto["parity"]["psnr_db"] >= none["parity"]["psnr_db"] + 8, (auto["parity"], none["parity"])
    # on the parity check's inputs 16-bit gains 1.5-1.7 dB here (float: 10); on sRGB PSNR it keeps most of float's
    # gain (int8_quality.md): with the int16 scopes not applied the two files would be the same
    assert wide["parity"]["psnr_db"] >= none["parity"]["psnr_db"] + 1, (wide["parity"], none["parity"])


@needs_tflite
def test_tflite_ranges_are_min_and_max_over_all_samples(tmp_path):
    """ai-edge-quantizer's own calibrate() averages the samples' ranges (smoothing 0.95): a sample brighter than
    the rest would be clipped. darkc's ranges cover it: the int8 output can represent the largest FP32 output."""
    from ai_edge_litert.interpreter import Interpreter

    from darkc.export.tflite import export_tflite, graph_info
    from darkc.models import load_checkpoint

    ckpt = tiny_checkpoint(tmp_path / "raw", RAW)
    net, spec = load_checkpoint(ckpt)
    rng = np.random.default_rng(0)
    dim = [rng.uniform(0, 0.05, (1, 5, 64, 64)).astype(np.float32) for _ in range(7)]
    bright = np.clip(rng.uniform(0.6, 1.0, (1, 5, 64, 64)), 0, 1).astype(np.float32)
    samples = dim + [bright]
    export_tflite(net, spec, tmp_path / "q.tflite", "int8", (64, 64), samples, io="int8", float_layers="none")
    out = graph_info(str(tmp_path / "q.tflite"))["output"]["quantization"]
    scale, zero = float(np.ravel(out["scale"])[0]), int(np.ravel(out["zero_point"])[0])
    fp = tmp_path / "f.tflite"
    export_tflite(net, spec, fp, "fp32", (64, 64))
    it = Interpreter(model_path=str(fp))
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], bright.transpose(0, 2, 3, 1))
    it.invoke()
    y = it.get_tensor(it.get_output_details()[0]["index"])
    assert (127 - zero) * scale >= 0.98 * float(y.max())
    assert (-128 - zero) * scale <= 0.98 * float(y.min()) + 1e-6


@needs_tflite
def test_npu_compiles_a_full_integer_export_of_a_file_with_float_layers(raw_ckpt, tmp_path):
    """Ethos-U runs integer operators only: a default (mixed) INT8 file of a raw model is compiled as its
    full-integer re-export, said in the file note; without a checkpoint beside it, a one-line error."""
    pytest.importorskip("ethosu")
    import shutil

    from darkc.latency.bench import bench

    folder = tmp_path / "m"
    shutil.copytree(raw_ckpt, folder)
    export(str(folder), folder / "model-int8.tflite", target="tflite", precision="int8", input_size="64x64",
           samples=2, check=False)
    d = bench(str(folder / "model-int8.tflite"), devices="ethos-u65-512")["devices"]["ethos-u65-512"]
    assert "full-integer export instead" in d["file_note"] and d["file"] != str(folder / "model-int8.tflite")
    alone = tmp_path / "alone.tflite"
    shutil.copyfile(folder / "model-int8.tflite", alone)
    with raises_naming("alone.tflite", "keeps layers in float", "--float-layers none"):
        bench(str(alone), devices="ethos-u65-512")


@needs_tflite
def test_int16_layers_make_an_integer_model_with_16_bit_full_resolution_activations(raw_ckpt, tmp_path):
    """--int16-layers full-res: the full-resolution operators integer with int16 activations, int8 elsewhere, no
    float operator (the int8 / int16 borders requantised), so an NPU runs all of it; int8 I/O allowed."""
    from darkc.export.tflite import graph_info

    rep = export(raw_ckpt, tmp_path / "m.tflite", target="tflite", precision="int8", input_size=SIZE, samples=2,
                 int16_layers="full-res", io="int8")
    info = graph_info(rep["file"])
    assert info["float_ops"] == []
    convs = [op for op in info["ops"] if op.startswith(("CONV_2D", "TRANSPOSE_CONV"))]
    wide = [op for op in convs if op.endswith("-> int16")]
    assert len(wide) == 6 and len(convs) == 23, convs
    assert rep["calibration"]["int16_layers"] == {"rule": "full-res", "ops": 13}
    assert rep["calibration"]["float_layers"]["rule"] == "none"
    with raises_naming("--float-layers full-res", "--int16-layers full-res", "choose one"):
        export(raw_ckpt, tmp_path / "n.tflite", target="tflite", precision="int8", input_size=SIZE, samples=2,
               int16_layers="full-res", float_layers="full-res")
    onnx_rep = export(raw_ckpt, tmp_path / "q.onnx", precision="int8", samples=2, calib_size=64,
                      int16_layers="full-res")
    g = onnx.load(onnx_rep["file"]).graph
    zero_points = {i.name: i for i in g.initializer}
    q16 = [n for n in g.node if n.op_type == "QuantizeLinear"
           and onnx.helper.tensor_dtype_to_np_dtype(zero_points[n.input[2]].data_type) == np.uint16]
    assert {n.input[0] for n in q16} >= {"raw", "/conv10/Conv_output_0"}
    assert _float_convs(onnx_rep["file"]) == set()


def test_quantize_says_which_layers_it_kept_out_of_int8(raw_ckpt, tmp_path, capsys):
    assert main(["quantize", "--model", str(raw_ckpt), "--samples", "2", "--calib-size", "64",
                 "-o", str(tmp_path / "q.onnx")]) == 0
    assert "full-res layers float (--float-layers)" in capsys.readouterr().out
    assert main(["quantize", "--model", str(raw_ckpt), "--samples", "2", "--calib-size", "64", "--float-layers",
                 "none", "-o", str(tmp_path / "n.onnx")]) == 0
    assert "layers float" not in capsys.readouterr().out

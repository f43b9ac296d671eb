"""Tests for darkc/export/tflite.py, contract.py and diagnose.py: torch -> TFLite -> LiteRT, the int8 graph, the
input contract, per-layer SQNR, and the TFLite path through export / eval / load_runner / the CLI."""
from __future__ import annotations

import importlib.util
import json
import shutil

import numpy as np
import pytest
import torch

_MISSING = [m for m in ("litert_torch", "ai_edge_quantizer", "ai_edge_litert") if importlib.util.find_spec(m) is None]
if _MISSING:     # checked without importing: litert-torch pulls in jax and torchao, imported only when a test runs
    pytest.skip(f"the tflite extra is not installed ({', '.join(_MISSING)} missing): pip install -e .[tflite]",
                allow_module_level=True)

from ai_edge_litert.interpreter import Interpreter  # noqa: E402

from darkc.cli import main  # noqa: E402
from darkc.export import export, read_contract  # noqa: E402
from darkc.export.diagnose import format_table, layer_sqnr, sqnr_db  # noqa: E402
from darkc.export.tflite import graph_info, quantize_int8, read_metadata  # noqa: E402
from darkc.inference import TFLiteRunner, enhance_packed, load_runner  # noqa: E402
from darkc.models import load_checkpoint, save_checkpoint  # noqa: E402
from darkc.models.sid_unet import LAYERS  # noqa: E402
from helpers import raises_naming, tiny_checkpoint  # noqa: E402

TINY = {"arch": "sid-unet", "cfa": "bayer", "widths": [4, 8, 8, 8, 8]}
SIZE = "128x128"          # raw px: packed 64x64
PACKED = (64, 64)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A checkpoint of a tiny SID U-Net (widths 4,8,8,8,8), seeded random weights."""
    return tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "ckpt", TINY)


@pytest.fixture(scope="module")
def art(tiny, tmp_path_factory):
    """One artifact folder with the fp32, fp16, int8 (float I/O) and int8 (int8 I/O and PRELU, via the CLI) TFLite
    exports."""
    out = tmp_path_factory.mktemp("tfl") / "art"
    reports = {
        "fp32": export(tiny, out / "model.tflite", target="tflite", input_size=SIZE),
        "fp16": export(tiny, out / "model-fp16.tflite", target="tflite", precision="fp16", input_size=SIZE),
        "int8": export(tiny, out / "model-int8.tflite", target="tflite", precision="int8", input_size=SIZE,
                       samples=4),
    }
    assert main(["export", "--model", str(tiny), "--target", "tflite", "--precision", "int8", "--io", "int8",
                 "--int8-activation", "prelu", "--input-size", SIZE, "--samples", "4",
                 "-o", str(out / "model-int8io.tflite")]) == 0
    return out, reports


def _torch_nhwc(ckpt, x_nhwc: np.ndarray) -> np.ndarray:
    model, _ = load_checkpoint(ckpt)
    with torch.inference_mode():
        return model(torch.from_numpy(x_nhwc).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()


def _psnr(a, b) -> float:
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(float(np.ptp(b)) ** 2 / mse)


def test_fp32_and_fp16_round_trip_through_litert(tiny, art):
    out, reports = art
    x = np.random.default_rng(0).uniform(0, 1, (1, *PACKED, 4)).astype(np.float32)
    want = _torch_nhwc(tiny, x)
    for name, floor in (("model.tflite", 100.0), ("model-fp16.tflite", 50.0)):
        interp = Interpreter(model_path=str(out / name))
        interp.allocate_tensors()
        (inp,), (outp,) = interp.get_input_details(), interp.get_output_details()
        assert list(inp["shape"]) == [1, *PACKED, 4] and inp["dtype"] == np.float32      # NHWC, float I/O
        interp.set_tensor(inp["index"], x)
        interp.invoke()
        got = interp.get_tensor(outp["index"])
        assert got.shape == (1, 2 * PACKED[0], 2 * PACKED[1], 3)
        assert _psnr(got, want) > floor, name
    assert reports["fp32"]["parity"]["max_abs"] < 1e-4 and reports["fp32"]["parity"]["passed"]
    assert reports["fp16"]["parity"]["psnr_db"] >= 50.0
    fp16_ops = reports["fp16"]["graph"]["ops"]
    assert sum(op.startswith("DEQUANTIZE float16 -> float32") for op in fp16_ops) == 23   # 19 conv + 4 deconv weights
    assert (out / "model-fp16.tflite").stat().st_size < 0.8 * (out / "model.tflite").stat().st_size


def test_graph_has_no_layout_transposes_and_one_depth_to_space(art):
    _, reports = art
    for rep in reports.values():
        counts = rep["graph"]["op_counts"]
        assert rep["layout_transposes"] == 0 and "TRANSPOSE" not in counts and "RESHAPE" not in counts
        assert counts["DEPTH_TO_SPACE"] == 1 and counts["TRANSPOSE_CONV"] == 4 and counts["CONV_2D"] == 19
    assert reports["fp32"]["depth_to_space"] == "1 op, float32"
    assert reports["int8"]["transpose_conv"] == "4 ops, int8" and reports["int8"]["depth_to_space"] == "1 op, int8"


def test_int8_graph_has_no_float_ops(art):
    out, reports = art
    io_float = graph_info(out / "model-int8.tflite")
    assert io_float["float_ops"] == []
    assert io_float["ops"][0] == "QUANTIZE float32 -> int8" and io_float["ops"][-1] == "DEQUANTIZE int8 -> float32"
    inner = io_float["ops"][1:-1]
    assert all("float" not in op for op in inner), [op for op in inner if "float" in op]
    assert sum(op == "LEAKY_RELU int8 -> int8" for op in inner) == 18
    assert reports["int8"]["calibration"]["integerised"] == {"LEAKY_RELU": 18}
    assert reports["int8"]["parity"]["passed"] and reports["int8"]["parity"]["psnr_db"] > 40

    io_int8 = graph_info(out / "model-int8io.tflite")
    assert io_int8["float_ops"] == [] and not any("float" in op for op in io_int8["ops"])
    assert io_int8["input"]["dtype"] == "int8" and io_int8["output"]["dtype"] == "int8"
    assert io_int8["input"]["quantization"]["scale"] > 0
    assert io_int8["op_counts"]["PRELU"] == 18 and "LEAKY_RELU" not in io_int8["op_counts"]
    assert sum(op == "PRELU int8,int8 -> int8" for op in io_int8["ops"]) == 18

    record = json.loads((out / "model.json").read_text())["provenance"]["exports"]
    assert record["model-int8io.tflite"]["calibration"]["activation"] == "prelu"
    for name in ("model-int8.tflite", "model-int8io.tflite"):      # XNNPACK vs LiteRT's built-in int8 kernels
        assert record[name]["kernels"]["xnnpack_vs_builtin_psnr_db"] > 40


def test_contract_travels_in_the_file_and_model_json(art):
    out, reports = art
    record = json.loads((out / "model.json").read_text())["provenance"]["exports"]
    assert set(record) == {"model.tflite", "model-fp16.tflite", "model-int8.tflite", "model-int8io.tflite"}
    for name in record:
        contract = read_contract(out / name)
        assert contract == record[name]["contract"]
        assert contract["input"]["layout"] == "NHWC" and contract["input"]["shape"] == [1, *PACKED, 4]
        assert contract["input"]["packing"]["channels"] == ["R", "G", "B", "G"]
        assert "black_level" in contract["input"]["normalisation"] and "exposure ratio" in contract["input"]["ratio"]
        assert contract["output"]["shape"] == [1, 2 * PACKED[0], 2 * PACKED[1], 3]
    q = read_contract(out / "model-int8io.tflite")["input"]
    assert q["dtype"] == "int8" and q["quantization"]["zero_point"] == -128      # input range [0, 1] -> [-128, 127]
    assert "darkc.contract" in read_metadata(out / "model.tflite")


@pytest.mark.usefixtures("reference_set")
def test_load_runner_enhance_and_eval_take_the_tflite(tiny, art, capsys):
    out, _ = art
    runner = load_runner(str(out / "model-int8io.tflite"))
    assert isinstance(runner, TFLiteRunner) and runner.layout == "nhwc" and runner.fixed_size == PACKED
    packed = np.random.default_rng(1).uniform(0, 1, (4, 80, 96)).astype(np.float32)
    rgb = enhance_packed(runner, packed, progress=False)
    assert rgb.shape == (3, 160, 192) and np.isfinite(rgb).all()
    ref = enhance_packed(load_runner(str(tiny)), packed, progress=False)
    assert _psnr(rgb, ref) > 30
    assert main(["eval", "--model", str(out / "model.tflite"), "--limit", "1", "--format", "json", "-o", str(out / "ev")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 1 and np.isfinite(result["psnr"])


@pytest.mark.parametrize("case", ["dynamic", "io-fp32", "activation", "entropy", "empty-calib", "xtrans-calib"])
def test_bad_input_raises_and_writes_nothing(tiny, tmp_path, case):
    dest = tmp_path / "out"
    if case == "dynamic":
        with raises_naming("needs a fixed --input-size"):
            export(tiny, dest, target="tflite")
    elif case == "io-fp32":
        with raises_naming("--io 'int8' is for --target tflite --precision int8"):
            export(tiny, dest, target="tflite", input_size=SIZE, io="int8")
    elif case == "activation":
        with raises_naming("--int8-activation 'relu6' is unknown", "leaky_relu, prelu"):
            export(tiny, dest, target="tflite", precision="int8", input_size=SIZE, int8_activation="relu6", samples=2)
    elif case == "entropy":
        with raises_naming("--calib-method entropy", "minmax"):
            export(tiny, dest, target="tflite", precision="int8", input_size=SIZE, calib_method="entropy", samples=2)
    elif case == "empty-calib":
        (tmp_path / "empty").mkdir()
        with raises_naming("holds no raw files", "--calib synthetic"):
            export(tiny, dest, target="tflite", precision="int8", input_size=SIZE, calib=tmp_path / "empty")
    else:
        from darkc.data.profiles import get_profile
        from darkc.data.sources import dead_leaves_images
        from darkc.data.synth import write_dataset

        write_dataset(tmp_path / "fuji", dead_leaves_images(1, (96, 96), "train"), get_profile(None, "xtrans"),
                      ratios=(100,), size=192, progress=False)
        with raises_naming("none of its", "xtrans sensor, the model is bayer"):
            export(tiny, dest, target="tflite", precision="int8", input_size=SIZE, calib=tmp_path / "fuji")
    assert not dest.exists()


def test_quantizer_refuses_wrong_channel_count_and_no_samples(art):
    out, _ = art
    content = (out / "model.tflite").read_bytes()
    with raises_naming("calibration sample 0 has shape (1, 9, 64, 64)", "(1, 4, 64, 64)"):
        quantize_int8(content, [np.zeros((1, 9, *PACKED), np.float32)])
    with raises_naming("calibration sample 1 has shape (1, 4, 32, 32)"):
        quantize_int8(content, [np.zeros((1, 4, *PACKED), np.float32), np.zeros((1, 4, 32, 32), np.float32)])
    with raises_naming("needs calibration samples"):
        quantize_int8(content, [])


def test_layer_sqnr_int8_and_fp32(tiny, art):
    out, _ = art
    rows = layer_sqnr(out / "model-int8.tflite", samples=2)
    assert [r["layer"] for r in rows] == list(LAYERS)
    assert all(r["dtype"] == "int8" and 25 < r["sqnr_db"] < 70 for r in rows), rows
    assert all(r["floor_db"] is not None and r["sqnr_db"] <= r["floor_db"] + 1.0 for r in rows)
    fp32 = layer_sqnr(out / "model.tflite", samples=2)
    assert all(r["dtype"] == "float32" and r["sqnr_db"] > 100 for r in fp32)

    onnx_rep = export(tiny, out.parent / "onnx" / "model-int8.onnx", precision="int8", samples=4, calib_size=64)
    onnx_rows = layer_sqnr(onnx_rep["file"], model=str(tiny), samples=2)
    assert [r["layer"] for r in onnx_rows] == list(LAYERS) and [r["op"] for r in onnx_rows][10] == "ConvTranspose"
    assert all(r["dtype"] == "uint8" and 25 < r["sqnr_db"] < 70 for r in onnx_rows)
    assert read_contract(onnx_rep["file"])["input"]["layout"] == "NCHW"

    table = format_table(rows, "md").splitlines()
    assert table[0].startswith("| layer |") and len(table) == 2 + len(LAYERS)
    assert json.loads(format_table(rows, "json")) == rows


def test_layer_sqnr_points_at_the_broken_layer(tiny, art, tmp_path):
    """The fp32 file against a model whose conv5_1 differs: layers before it agree, conv5_1 does not."""
    out, _ = art
    model, spec = load_checkpoint(tiny)
    with torch.no_grad():
        model.conv5_1.weight.mul_(1.5)
    folder = tmp_path / "mismatch"
    save_checkpoint(model, spec, folder)
    shutil.copyfile(out / "model.tflite", folder / "model.tflite")
    rows = {r["layer"]: r["sqnr_db"] for r in layer_sqnr(folder / "model.tflite", samples=1)}
    assert min(rows[n] for n in LAYERS[:LAYERS.index("conv5_1")]) > 100
    assert rows["conv5_1"] < 20
    with raises_naming("other weights than --model"):
        layer_sqnr(out / "model.tflite", model=str(folder))


def test_cli_diagnose(art, capsys):
    out, _ = art
    assert main(["diagnose", str(out / "model-int8io.tflite"), "--samples", "1", "--format", "md"]) == 0
    printed = capsys.readouterr().out
    assert "| conv1_1 | CONV_2D | int8 |" in printed and "| up6 | TRANSPOSE_CONV |" in printed
    assert main(["diagnose", str(out / "missing.tflite")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_sqnr_db_values():
    ref = np.array([1.0, -1.0, 1.0, -1.0])
    assert sqnr_db(ref * 1.1, ref) == pytest.approx(20.0)
    assert sqnr_db(ref, ref) == 200.0
    with pytest.raises(ValueError, match="shape"):
        sqnr_db(ref[:2], ref)


@pytest.mark.usefixtures("reference_set")
def test_export_benchmark_script(tiny, tmp_path):
    """benchmarks/export_tflite.py on the tiny model, one variant, one reference pair."""
    from helpers import load_benchmark

    bench = load_benchmark("export_tflite")
    out = tmp_path / "rep" / "tiny"
    assert bench.main(["--model", str(tiny), "--size", SIZE, "--samples", "2", "--limit", "1", "--repeat", "1",
                       "--only", "TFLite INT8", "--out", str(out)]) == 0
    data = json.loads(out.with_suffix(".json").read_text())
    assert [r["label"] for r in data["rows"]] == ["PyTorch FP32", "TFLite INT8"]
    row = data["rows"][1]
    assert row["parity_psnr_db"] > 40 and row["op_counts"]["LEAKY_RELU"] == 18 and row["latency_ms"] > 0
    assert abs(row["psnr"] - data["rows"][0]["psnr"]) < 0.1
    md = out.with_suffix(".md").read_text()
    assert "| TFLite INT8 |" in md and "## TFLite INT8: per-layer SQNR" in md and "| conv10 | CONV_2D | int8 |" in md

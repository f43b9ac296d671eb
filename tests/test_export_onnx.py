"""Tests for darkc/export (onnx.py, parity.py and the export stage in __init__.py)."""
from __future__ import annotations

import hashlib
import json
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from darkc.cli import main
from darkc.export import export, parse_input_size, psnr
from darkc.provenance import portable_text
from darkc.export import parity as parity_mod
from darkc.inference import OnnxRunner, load_runner
from darkc.models import build_model, load_checkpoint, save_checkpoint
from helpers import raises_naming

TINY = {"arch": "sid-unet", "cfa": "bayer", "widths": [8, 8, 16, 16, 32]}


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A checkpoint of the tiny SID U-Net (widths 8,8,16,16,32), seeded random weights."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny") / "ckpt"
    save_checkpoint(build_model(TINY), TINY, path)
    return path


@pytest.fixture(scope="module")
def fp32_export(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("fp32") / "art"
    return export(tiny, out, precision="fp32")


def _torch(ckpt, x: np.ndarray) -> np.ndarray:
    model, _ = load_checkpoint(ckpt)
    with torch.inference_mode():
        return model(torch.from_numpy(x)).numpy()


def test_fp32_dynamic_export_matches_torch_at_two_sizes(tiny, fp32_export):
    session = ort.InferenceSession(fp32_export["file"], providers=["CPUExecutionProvider"])
    (inp,), (outp,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, outp.name) == ("raw", "srgb")
    assert inp.shape[:2] == [1, 4] and all(isinstance(d, str) for d in inp.shape[2:])
    rng = np.random.default_rng(0)
    for h, w in ((32, 48), (80, 64)):
        x = rng.uniform(0, 1, (1, 4, h, w)).astype(np.float32)
        got = session.run(None, {"raw": x})[0]
        want = _torch(tiny, x)
        assert got.shape == (1, 3, 2 * h, 2 * w)
        assert np.abs(got - want).max() < 1e-4
    assert fp32_export["simplified"] is True and fp32_export["opset"] >= 17
    assert fp32_export["parity"]["passed"] and fp32_export["parity"]["max_abs"] < 1e-4


def test_artifact_keeps_weights_and_records_provenance(tiny, fp32_export):
    art = fp32_export["artifact"]
    from pathlib import Path
    art = Path(art)
    assert sorted(p.name for p in art.iterdir()) == ["model.json", "model.onnx", "model.safetensors"]
    assert _sha(art / "model.safetensors") == _sha(tiny / "model.safetensors")
    spec = json.loads((art / "model.json").read_text())
    rec = spec["provenance"]["exports"]["model.onnx"]
    # the parent as a reader can resolve it (darkc.provenance: no absolute path of this machine), and its weights
    assert rec["parent"]["model"] == portable_text(str(tiny)) != str(tiny)
    assert rec["parent"]["weights_sha256"] == _sha(tiny / "model.safetensors")
    assert rec["precision"] == "fp32" and rec["input_size"] == {"raw": "dynamic", "packed": None}
    assert rec["parity"]["passed"] is True
    model, _ = load_checkpoint(art)                       # still a valid checkpoint
    assert model.conv1_1.out_channels == 8


def test_load_runner_runs_the_exported_file(tiny, fp32_export):
    runner = load_runner(fp32_export["file"])
    assert isinstance(runner, OnnxRunner) and runner.cfa == "bayer" and runner.fixed_size is None
    x = np.random.default_rng(1).uniform(0, 1, (1, 4, 48, 32)).astype(np.float32)
    assert np.abs(runner(x) - _torch(tiny, x)).max() < 1e-4


def test_parse_input_size_is_in_raw_pixels_and_names_the_nearest_valid_size():
    assert parse_input_size("dynamic", "bayer", 16) is None
    assert parse_input_size("1088x1920", "bayer", 16) == (544, 960)
    assert parse_input_size("96X144", "xtrans", 16) == (32, 48)
    with raises_naming("1080x1920", "multiples of 32", "nearest valid size: 1088x1920"):
        parse_input_size("1080x1920", "bayer", 16)
    with raises_naming("nearest valid size: 96x48"):
        parse_input_size("100x30", "xtrans", 16)
    with raises_naming("'12 by 4'", "dynamic", "HxW"):
        parse_input_size("12 by 4", "bayer", 16)


def test_fixed_size_export(tiny, tmp_path):
    rep = export(tiny, tmp_path / "fixed", input_size="128x192")
    runner = load_runner(rep["file"])
    assert runner.fixed_size == (64, 96)
    assert rep["input_size"] == {"raw": [128, 192], "packed": [64, 96]}
    assert rep["parity"]["inputs"] == [[64, 96]] * 3 and rep["parity"]["passed"]
    with raises_naming("nearest valid size: 128x192"):
        export(tiny, tmp_path / "bad", input_size="130x190")
    assert not (tmp_path / "bad").exists()


def test_fp16_export_parity(tiny, tmp_path):
    rep = export(tiny, tmp_path / "half" / "student-fp16.onnx", precision="fp16")
    graph = onnx.load(rep["file"])
    assert {i.data_type for i in graph.graph.initializer} == {onnx.TensorProto.FLOAT16}
    assert graph.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert graph.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert rep["parity"]["psnr_db"] > 45 and rep["parity"]["passed"]
    # -o FILE.onnx: model.json and the weights land beside it, so the runner finds the spec
    assert sorted(p.name for p in (tmp_path / "half").iterdir()) == ["model.json", "model.safetensors",
                                                                     "student-fp16.onnx"]
    x = np.random.default_rng(2).uniform(0, 1, (1, 4, 32, 32)).astype(np.float32)
    ref = _torch(tiny, x)
    assert psnr(load_runner(rep["file"])(x), ref) > 45


def test_two_exports_share_an_artifact_and_in_place_export(tiny, tmp_path):
    import shutil
    src = tmp_path / "own"
    shutil.copytree(tiny, src)
    weights = _sha(src / "model.safetensors")
    export(src, None)                                      # into the checkpoint's own folder
    export(src, src / "model-fp16.onnx", precision="fp16")
    spec = json.loads((src / "model.json").read_text())
    assert sorted(spec["provenance"]["exports"]) == ["model-fp16.onnx", "model.onnx"]
    assert _sha(src / "model.safetensors") == weights


def test_refuses_a_folder_of_another_model(tiny, tmp_path):
    torch.manual_seed(1)
    other = tmp_path / "other"
    save_checkpoint(build_model(TINY), TINY, other)
    with raises_naming(str(other), "another model"):
        export(tiny, other)
    assert sorted(p.name for p in other.iterdir()) == ["model.json", "model.safetensors"]


@pytest.mark.parametrize("case", ["missing model", "bad input size", "unknown precision", "unknown target",
                                  "calib dir without raws", "onnx as source"])
def test_bad_input_raises_and_writes_nothing(tiny, fp32_export, tmp_path, case):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "out"
    kwargs, fragments = {
        "missing model": (dict(model=tmp_path / "nope"), [str(tmp_path / "nope"), "does not exist"]),
        "bad input size": (dict(input_size="big"), ["--input-size 'big'"]),
        "unknown precision": (dict(precision="int4"), ["--precision 'int4'", "fp32"]),
        "unknown target": (dict(target="coreml"), ["--target 'coreml'", "onnx"]),
        "calib dir without raws": (dict(precision="int8", calib=str(empty)), [str(empty), "no raw files"]),
        "onnx as source": (dict(model=fp32_export["file"]), [str(fp32_export["file"]), "already an exported"]),
    }[case]
    model = kwargs.pop("model", tiny)
    with raises_naming(*fragments) as info:       # the error names the bad value and what to use instead
        export(model, out, **kwargs)
    assert "\n" not in str(info.value)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]


def test_parity_failure_raises_unless_no_check(tiny, tmp_path, monkeypatch):
    monkeypatch.setitem(parity_mod.THRESHOLDS, "fp32", {"max_abs": 0.0})
    with raises_naming("parity check failed", "max_abs < 0", "--no-check"):
        export(tiny, tmp_path / "strict")
    assert not (tmp_path / "strict").exists()
    rep = export(tiny, tmp_path / "lax", check=False)
    assert rep["parity"]["passed"] is False and rep["parity"]["check"] == "off (--no-check)"
    assert (tmp_path / "lax" / "model.onnx").is_file()


def test_psnr_uses_the_reference_range():
    ref = np.linspace(0, 1, 100, dtype=np.float32)
    assert psnr(ref + 0.1, ref) == pytest.approx(20.0, abs=1e-4)
    assert psnr(ref / 2 + 0.05, ref / 2) == pytest.approx(20.0, abs=1e-4)   # half the range, half the error
    assert psnr(ref, ref) == parity_mod.PSNR_IDENTICAL
    with pytest.raises(ValueError, match="shape"):
        psnr(ref[:10], ref)


def test_tflite_target_without_its_module_says_it_is_missing(tiny, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "darkc.export.tflite", None)
    with raises_naming("TFLite export is not available yet"):
        export(tiny, tmp_path / "t1", target="tflite")
    assert not (tmp_path / "t1").exists()

    # the real dispatch (litert-torch, LiteRT parity) is tests/test_export_tflite.py's `art` fixture


def test_cli_export(tiny, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["export", "--model", str(tiny), "--precision", "fp16", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "model.onnx" in printed and "PSNR" in printed and "passed" in printed
    rec = json.loads((out / "model.json").read_text())["provenance"]["exports"]["model.onnx"]
    assert rec["command"].startswith("darkc export --model") and "--precision fp16" in rec["command"]
    assert main(["export", "--model", str(tiny), "--precision", "fp8", "-o", str(tmp_path / "x")]) == 1
    assert "--precision 'fp8' is unknown" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_failed_simplification_keeps_the_plain_graph_and_says_so(tiny, tmp_path, monkeypatch):
    import onnxsim

    def broken(model, *args, **kwargs):
        raise RuntimeError("simplifier crashed")

    monkeypatch.setattr(onnxsim, "simplify", broken)
    rep = export(tiny, tmp_path / "plain")
    assert rep["simplified"] is False and "simplifier crashed" in rep["simplify_error"]
    assert rep["parity"]["passed"]
    rec = json.loads((tmp_path / "plain" / "model.json").read_text())["provenance"]["exports"]["model.onnx"]
    assert rec["simplify_error"] == rep["simplify_error"]

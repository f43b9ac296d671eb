"""A raw-output, noise-conditioned model through every stage: export (ONNX fp32/int8, TFLite int8), calibration and
parity data, prune, distill, bench, video and the pipeline (issue 16, item 1). Tiny widths and inputs throughout.

The hazards: a stage that assumes SID's sRGB kind (3 output channels, PixelShuffle scale, 4/9 input channels) or
feeds the model inputs without the noise-std channel, or with one whose values the model never sees in use."""
from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest
import torch
from helpers import raises_naming, tiny_checkpoint

from darkc.models import build_model, load_checkpoint, normalize_spec, save_checkpoint

RAW_SPEC = {"arch": "sid-unet", "output": "raw", "input": {"noise": "std-map"}, "widths": [4, 8, 8, 8, 8]}


@pytest.fixture(scope="module")
def raw_model(tmp_path_factory):
    """A tiny raw-output, noise-conditioned checkpoint with a non-zero head (PyTorch default init: like a trained
    model's residual, unlike a fresh one's zero head)."""
    return tiny_checkpoint(tmp_path_factory.mktemp("raw") / "m", normalize_spec(RAW_SPEC))


@pytest.fixture(scope="module")
def small_pairs():
    """Synthetic pairs as the raw model trains on them, from two small dead-leaves images (fast)."""
    from darkc.data.datasets import model_pairs
    from darkc.data.sources import dead_leaves_images

    return model_pairs(normalize_spec(RAW_SPEC), dead_leaves_images(2, (96, 128), "train"), patch=64)


def _std_fits_its_own_signal(x: np.ndarray) -> tuple[float, float, float]:
    """(slope, intercept, max relative residual) of std**2 against the mean of the packed channels (clipped to
    [0, 1]): the std-map is sqrt(A * mean + B), so std**2 is exactly linear in it."""
    mean = np.clip(x[:-1].mean(0), 0, 1).ravel().astype(np.float64)
    var = (x[-1].astype(np.float64) ** 2).ravel()
    slope, intercept = np.polyfit(mean, var, 1)
    resid = np.abs(slope * mean + intercept - var).max() / var.max()
    return float(slope), float(intercept), float(resid)


# ---------------------------------------------------------------- export
def test_onnx_export_has_raw_output_contract_and_int8_parity(raw_model, tmp_path):
    """fp32: (1, 5, h, w) in -> (1, 4, h, w) out named clean_raw, contract says so; int8 agrees with PyTorch far
    above the 30 dB parity floor (45 dB; the calibration measured 53.8 dB, calibrating on inputs not amplified by the
    ratio 22 dB)."""
    from darkc.export import export, read_contract
    from darkc.inference import load_runner

    rep = export(str(raw_model), tmp_path / "f32", precision="fp32")
    assert rep["parity"]["passed"] and rep["parity"]["max_abs"] < 1e-4
    runner = load_runner(tmp_path / "f32" / "model.onnx")
    assert (runner.output, runner.noise_input, runner.in_channels, runner.out_channels) == ("raw", "std-map", 5, 4)
    y = runner(np.random.default_rng(0).random((1, 5, 32, 48), dtype=np.float32))
    assert y.shape == (1, 4, 32, 48)
    c = read_contract(tmp_path / "f32" / "model.onnx")
    assert c["output"]["name"] == "clean_raw" and c["output"]["shape"] == [1, 4, -1, -1]
    assert c["input"]["shape"] == [1, 5, -1, -1] and c["input"]["packing"]["channels"][-1] == "noise_std"
    assert c["model"]["output"] == "raw" and "noise" in c["input"]

    rep = export(str(raw_model), tmp_path / "i8", precision="int8", samples=8, calib_size=64,
                 input_size="128x128")
    assert rep["input_size"] == {"raw": [128, 128], "packed": [64, 64]}     # raw px = 2 x packed, not scale 1
    assert rep["parity"]["psnr_db"] > 45
    data = rep["calibration"]["data"]
    assert data["noise_input"] == "std-map" and len(data["sensors"]) >= 8     # the raw model's sensor pool
    assert 0.005 < data["noise_std_range"][0] < data["noise_std_range"][1] < 1.0


def test_calibration_and_parity_inputs_carry_the_models_noise_channel():
    """Synthetic samples: the last channel is the std-map of the sample's own signal (std**2 linear in the mean,
    positive gain); a plain model's samples have no such channel."""
    from darkc.export.calibration import calibration_inputs
    from darkc.export.parity import parity_inputs

    spec = normalize_spec(RAW_SPEC)
    inputs, _ = calibration_inputs("synthetic", "bayer", 3, (32, 32), spec=spec)
    for x in inputs + parity_inputs("bayer", (32, 32), 2, spec=spec):
        assert x.shape == (1, 5, 32, 32)
        slope, intercept, resid = _std_fits_its_own_signal(x[0])
        assert slope > 0 and intercept > 0 and resid < 1e-3
    assert calibration_inputs("synthetic", "bayer", 1, (32, 32))[0][0].shape == (1, 4, 32, 32)


def test_folder_calibration_takes_each_files_noise_profile(synth_bayer):
    from darkc.export.calibration import calibration_inputs
    from darkc.data.noise_level import level_of_file, std_map

    inputs, record = calibration_inputs(synth_bayer.dir / "Sony" / "short", "bayer", 2, (32, 32),
                                        spec=normalize_spec(RAW_SPEC))
    for x, used in zip(inputs, record["files"]):
        want = std_map(x[0, :4], used["ratio"], level_of_file(used["file"]))
        np.testing.assert_allclose(x[0, 4:], want, rtol=1e-5)


@pytest.fixture(scope="module")
def raw_int8_tflite(raw_model, tmp_path_factory):
    """(export report, file): the raw model as a full-integer TFLite with int8 I/O at 64x64 raw px, as an NPU
    takes it (one export for the TFLite and the Vela tests: each takes minutes on a busy 2-core host)."""
    pytest.importorskip("litert_torch")
    from darkc.export import export

    out = tmp_path_factory.mktemp("t8") / "model-int8.tflite"
    rep = export(str(raw_model), out, target="tflite", precision="int8", samples=4, input_size="64x64", io="int8")
    return rep, out


def test_tflite_int8_of_a_raw_model_has_no_depth_to_space(raw_int8_tflite):
    from darkc.inference import load_runner

    rep, path = raw_int8_tflite
    assert rep["parity"]["psnr_db"] > 35
    assert "DEPTH_TO_SPACE" not in rep["graph"]["op_counts"] and rep["depth_to_space"] == "none"
    assert rep["contract"]["output"]["shape"] == [1, 32, 32, 4] and rep["output"] == "clean_raw"
    assert rep["contract"]["input"]["shape"] == [1, 32, 32, 5] and rep["contract"]["input"]["dtype"] == "int8"
    assert rep["kernels"]["xnnpack_vs_builtin_psnr_db"] > 40
    runner = load_runner(path)
    assert (runner.output, runner.in_channels) == ("raw", 5)
    assert runner(np.zeros((1, 5, 32, 32), np.float32)).shape == (1, 4, 32, 32)


# ---------------------------------------------------------------- prune
def test_pruning_keeps_the_raw_head_noise_input_and_a_fresh_models_identity(raw_model, small_pairs, tmp_path):
    from darkc.compress.prune import prune

    prune(str(raw_model), tmp_path / "p", ratio=0.5, round_to=4, data=small_pairs, evaluate=False,
          latency_size=None, progress=False)
    parent, _ = load_checkpoint(raw_model)
    model, spec = load_checkpoint(tmp_path / "p")
    assert (spec["in_channels"], spec["out_channels"], spec["output"]) == (5, 4, "raw")
    assert model.conv10.out_channels == 4 and model.conv1_1.in_channels == 5
    x = torch.stack([small_pairs[i]["input"] for i in range(2)])
    with torch.no_grad():
        got, want = model(x), parent(x)
    assert got.shape == want.shape == (2, 4, 32, 32)
    assert model.conv10.weight.abs().sum() > 0                       # a trained head is kept, not zeroed
    assert float((got - want).abs().mean()) < 0.5 * float((x[:, :4] - want).abs().mean())

    torch.manual_seed(0)
    fresh = build_model(normalize_spec(RAW_SPEC))                   # zero head: the identity on its raw input
    save_checkpoint(fresh, normalize_spec(RAW_SPEC), tmp_path / "fresh")
    prune(str(tmp_path / "fresh"), tmp_path / "pf", ratio=0.5, round_to=4, data=small_pairs, evaluate=False,
          latency_size=None, progress=False)
    with torch.no_grad():
        assert torch.equal(load_checkpoint(tmp_path / "pf")[0](x), x[:, :4])


# ---------------------------------------------------------------- distill
def test_distilled_student_is_of_the_teachers_kind_and_kd_is_in_the_gamma_domain(raw_model, small_pairs, tmp_path):
    from darkc.compress.distill import distill, distill_objective
    from darkc.losses import get_loss

    rep = distill(str(raw_model), tmp_path / "s", student_widths=[4, 4, 4, 8, 8], data=small_pairs, steps=2,
                  batch_size=2, kd="output,features", gt_weight=0.5, val_every=0, ckpt_every=10, evaluate=False,
                  latency_size=None, progress=False)
    student, spec = load_checkpoint(tmp_path / "s")
    assert (spec["output"], spec["input"]["noise"], spec["in_channels"], spec["out_channels"]) == \
        ("raw", "std-map", 5, 4)
    assert rep["model_output"] == "raw" and rep["student"]["macs"]["1920x1080"] > 0

    teacher, _ = load_checkpoint(raw_model)
    batch = {"input": torch.stack([small_pairs[i]["input"] for i in range(2)])}
    loss = distill_objective(teacher, beta=1.0, output="raw")(student, batch)[0].detach()
    with torch.no_grad():
        s, t = student(batch["input"]), teacher(batch["input"]).clamp(0, 1)
    assert float(loss) == pytest.approx(float(get_loss("l1-gamma")(s, t)), rel=1e-5)
    assert float(loss) != pytest.approx(float(torch.nn.functional.l1_loss(s, t)), rel=1e-2)
    # synthetic batches carry each sample's ISP, which only isp-l1 uses
    with_isp = {**batch, "isp": torch.eye(3, 4)[None].repeat(2, 1, 1)}
    linear = distill_objective(teacher, beta=1.0, output="raw", raw_loss="l1")(student, with_isp)[0].detach()
    assert float(linear) == pytest.approx(float(torch.nn.functional.l1_loss(s, t)), rel=1e-5)
    gamma = distill_objective(teacher, beta=1.0, output="raw", raw_loss="l1-gamma")(student, with_isp)[0].detach()
    assert float(gamma) == pytest.approx(float(loss), rel=1e-5)
    rendered = distill_objective(teacher, beta=1.0, output="raw")(student, with_isp)[0].detach()
    assert float(rendered) == pytest.approx(float(get_loss("isp-l1")(s, t, with_isp["isp"])), rel=1e-5)
    with raises_naming("--raw-loss", "'l2'", "isp-l1, l1-gamma, l1"):
        distill_objective(teacher, output="raw", raw_loss="l2")


def test_distill_refuses_a_student_of_another_kind_and_the_chroma_term(raw_model, small_pairs, tmp_path):
    from darkc.compress.distill import distill

    srgb = tiny_checkpoint(tmp_path / "srgb", normalize_spec({"arch": "sid-unet", "widths": [4, 4, 4, 8, 8]}))
    kw = dict(data=small_pairs, steps=1, val_every=0, evaluate=False, latency_size=None, progress=False)
    with raises_naming("output 'srgb'", "output 'raw'", "noise input"):
        distill(str(raw_model), tmp_path / "a", student=str(srgb), **kw)
    with raises_naming("--chroma-weight", "raw"):
        distill(str(raw_model), tmp_path / "b", student_widths=[4, 4, 4, 8, 8], chroma_weight=2.0, **kw)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


# ---------------------------------------------------------------- bench
def test_bench_feeds_five_channels_and_labels_the_kind(raw_model, tmp_path, monkeypatch):
    from darkc.latency import bench
    from darkc.latency.report import markdown

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for runtime in ("torch", "ort"):
        res = bench(str(raw_model), devices="host", size="128x64", threads="1", runs=2, warmup=0, runtime=runtime)
        assert res["resolution"]["input"] == [1, 5, 32, 64]
        assert res["resolution"]["raw"] == "128x64"          # packing scale 2, not the output's scale 1
        assert res["output"] == "raw" and res["devices"]["host"]["latency_ms"] > 0
    assert "(raw out, +noise map)" in markdown([res])


def test_vela_runs_a_raw_model_entirely_on_the_npu(raw_int8_tflite):
    """A raw model has no DEPTH_TO_SPACE, the op Vela leaves on the CPU for sRGB models."""
    pytest.importorskip("ethosu.vela")
    from darkc.latency import bench

    d = bench(str(raw_int8_tflite[1]), devices="ethos-u55-256", size="64x64")["devices"]["ethos-u55-256"]
    assert d["npu_share"] == 1.0 and not d["fallbacks"] and d["cycles"] > 0


# ---------------------------------------------------------------- video
def test_video_renders_raw_outputs_like_enhance_with_each_frames_noise_profile(raw_model, tmp_path):
    import cv2

    from darkc.data.noise_level import level_of_file
    from darkc.inference import load_runner, run_raw_file
    from darkc.video import enhance_video, write_clip

    clip = tmp_path / "clip"
    write_clip(clip, frames=2, size=64, seed=2, motion="jitter", progress=False)
    meta = json.loads((clip / "clip.json").read_text())
    frames = [clip / f for f in meta["raw"]] if "raw" in meta else sorted((clip / "raw").glob("*.dng"))
    assert "NoiseProfile" in level_of_file(frames[0]).source
    rep = enhance_video(clip, tmp_path / "png", model=str(raw_model), temporal="none", threads=1, progress=False)
    assert rep["frames"] == 2 and rep["psnr"] is not None
    runner = load_runner(raw_model)
    for i, f in enumerate(frames):
        want = run_raw_file(runner, f, rep["ratio"], progress=False)[0].transpose(1, 2, 0)
        got = cv2.cvtColor(cv2.imread(str(tmp_path / "png" / f"{i:05d}.png"), cv2.IMREAD_UNCHANGED),
                           cv2.COLOR_BGR2RGB).astype(np.float32) / 255
        assert got.shape == want.shape
        assert np.abs(got - want).max() <= 1.01 / 255


# ---------------------------------------------------------------- pipeline
def _recipe(tmp_path, teacher, extra: str = "") -> str:
    text = f'''
    [pipeline]
    teacher = "{teacher}"
    threads = 1

    [prune]
    ratio = 0.5
    round_to = 4
    rescale = false

    [distill]
    init = "pruned"
    kd = "output"
    steps = 2
    batch_size = 1
    patch = 64
    val_every = 0
    ckpt_every = 2
    {extra}

    [quantize]
    targets = ["onnx"]
    input_size = "64x64"
    samples = 2

    [bench]
    devices = ["host"]
    size = "64x64"
    runs = 2

    [eval]
    limit = 1
    models = ["student", "onnx-int8"]
    '''
    path = tmp_path / "recipe.toml"
    path.write_text(textwrap.dedent(text))
    return str(path)


@pytest.mark.usefixtures("reference_set")
def test_pipeline_runs_a_raw_noise_teacher_end_to_end(raw_model, tmp_path, monkeypatch):
    from darkc.errors import DarkcError
    from darkc.inference import load_runner
    from darkc.pipeline import run_pipeline

    with pytest.raises(DarkcError, match=r"recipe\.toml:\d+: \[distill\] chroma_weight .* outputs raw"):
        run_pipeline(_recipe(tmp_path, raw_model, "chroma_weight = 2.0"), tmp_path / "bad", progress=False)
    assert not (tmp_path / "bad").exists()

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    out = tmp_path / "run"
    res = run_pipeline(_recipe(tmp_path, raw_model), out, progress=False)
    assert set(res["stages"].values()) == {"ran"}
    _, spec = load_checkpoint(out / "02-distill")
    assert (spec["output"], spec["input"]["noise"]) == ("raw", "std-map")
    runner = load_runner(out / "03-quantize" / "model.onnx")           # one file: model.<ext>
    assert (runner.output, runner.in_channels) == ("raw", 5)
    report = json.loads((out / "report.json").read_text())
    scores = {r["model"]: r for r in report["rows"] if "psnr" in r}
    assert set(scores) == {"student", "onnx-int8"} and all(5 < r["psnr"] < 60 for r in scores.values())
    assert "raw-output models" in (out / "report.md").read_text()

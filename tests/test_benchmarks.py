"""Benchmark scripts run on a tiny case (their main(), in this process) and write their md/json/png."""
import json
from pathlib import Path

import pytest
import torch

from darkc.models import build_model, save_checkpoint
from helpers import run_benchmark


def _eval_quality_vs(tmp_path, data, limit: int, **spec) -> tuple[dict, Path]:
    """benchmarks/eval_quality.py on a random tiny model of ``spec`` with ``--vs`` another one: (JSON, out prefix)."""
    spec = {"arch": "sid-unet", "cfa": "bayer", "widths": [8, 8, 8, 8, 8], **spec}
    torch.manual_seed(0)
    save_checkpoint(build_model(spec), spec, tmp_path / "m")
    save_checkpoint(build_model(spec), spec, tmp_path / "other")
    out = tmp_path / "rep" / "q"
    assert run_benchmark("eval_quality", ["--model", tmp_path / "m", "--data", data, "--out", out, "--limit", limit,
                                          "--threads", "1", "--vs", tmp_path / "other"]) == 0
    return json.loads(out.with_suffix(".json").read_text()), out


def test_eval_quality_script(tmp_path, synth_bayer):
    data, out = _eval_quality_vs(tmp_path, synth_bayer.list_file, 3)
    assert data["n"] == 3 and "libraw+nlm" in data["baselines"]
    assert data["vs"]["frames"] == 24 and 0 < data["vs"]["psnr"] < 100 and data["vs"]["macs_1920x1080"][0] > 0
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    assert "| model |" in out.with_suffix(".md").read_text()


def test_eval_quality_vs_a_teacher_of_raw_output_noise_conditioned_models(tmp_path, synth_bayer):
    # the agreement frames must carry the noise channel and compare raw outputs (they were sRGB frames without it)
    data, out = _eval_quality_vs(tmp_path, synth_bayer.list_file, 1, output="raw", input={"noise": "std-map"})
    assert data["vs"]["frames"] == 24 and data["vs"]["psnr"] > 0      # random raw outputs may clamp alike: inf
    assert "the packed raw outputs" in out.with_suffix(".md").read_text()


def _tiny_teacher(path: Path) -> Path:
    spec = {"arch": "sid-unet", "cfa": "bayer", "widths": [16, 16, 16, 16, 16]}
    torch.manual_seed(0)
    return save_checkpoint(build_model(spec), spec, path)


@pytest.mark.usefixtures("reference_set")
def test_distill_ablation_script(tmp_path):
    teacher = _tiny_teacher(tmp_path / "t")
    out = tmp_path / "abl"
    assert run_benchmark("distill_ablation", ["--teacher", teacher, "--steps", "2", "--batch-size", "1", "--patch", "64",
                                              "--eval-limit", "1", "--only", "0,3", "--prune-ratio", "0.5",
                                              "--out", out]) == 0
    data = json.loads((out / "ablation.json").read_text())
    assert list(data["runs"]) == ["scratch / output", "pruned / output+features"]
    assert data["widths"] == [8, 8, 8, 8, 8]
    assert all(v["macs_1920x1080"] > 0 and v["psnr_vs_teacher"] > 0 for v in data["runs"].values())
    assert "| scratch / output |" in (out / "ablation.md").read_text()


@pytest.mark.usefixtures("reference_set")
def test_prune_sweep_script(tmp_path):
    teacher = _tiny_teacher(tmp_path / "t")
    out = tmp_path / "sweep" / "s"
    assert run_benchmark("prune_sweep", ["--model", teacher, "--ratios", "0.5", "--finetune-iters", "2", "--batch-size",
                                         "1", "--patch", "64", "--eval-limit", "1", "--latency-size", "64x64",
                                         "--latency-runs", "1", "--out", out]) == 0
    rows = json.loads(out.with_suffix(".json").read_text())["rows"]
    assert list(rows) == ["unpruned", "ratio 0.5", "ratio 0.5 + 2 fine-tune iters"]
    assert rows["ratio 0.5"]["params"] < rows["unpruned"]["params"]
    assert rows["ratio 0.5"]["latency_ms"] > 0
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"


def test_ood_decompose_hybrid_sensor_has_the_other_sensors_noise_relative_to_full_scale():
    import sys

    from darkc.data.profiles import OOD_PROFILE, get_profile
    from helpers import load_benchmark

    mod = load_benchmark("ood_decompose")
    try:
        ref, ood = get_profile(None), get_profile(OOD_PROFILE["bayer"])
        hybrid = mod.with_noise_of(ood, ref, "h")
        assert (hybrid.black, hybrid.white, hybrid.xyz_to_cam, hybrid.red_gain) == \
            (ood.black, ood.white, ood.xyz_to_cam, ood.red_gain)
        c = ood.span / ref.span
        assert hybrid.gain_range == pytest.approx((ref.gain_range[0] * c, ref.gain_range[1] * c))
        for k in (ref.gain_range[0], 2.0, ref.gain_range[1]):
            # same noise at the same normalised signal: sigma / span and the shot noise K / span both carry over
            assert hybrid.read_sigma(k * c) / hybrid.span == pytest.approx(ref.read_sigma(k) / ref.span, rel=1e-9)
            assert hybrid.row_sigma(k * c) / hybrid.span == pytest.approx(ref.row_sigma(k) / ref.span, rel=1e-9)
        sets = mod.sets()
        assert list(sets)[0] == "reference" and list(sets)[-1] == "held-out"
        assert sets["reference colour, held-out noise"].xyz_to_cam == ref.xyz_to_cam
    finally:
        sys.modules.pop(mod.__name__, None)

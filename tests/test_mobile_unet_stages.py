"""The mobile U-Net (issue 15, item 5) through the stages like the SID U-Net: pruned (its widths are blocks, not
convs), distilled as a fresh student of a SID U-Net teacher (its own options, feature KD across architectures paired
by resolution), and a mobile-unet teacher through ``darkc pipeline`` from the command line (prune -> distill ->
quantize (INT8 TFLite) -> export (ONNX) -> bench -> eval). Tiny widths, 64 px, one step."""
from __future__ import annotations

import json

import pytest
import torch
from helpers import raises_naming, tiny_checkpoint, tiny_recipe
from safetensors.torch import load_file

from darkc.cli import main
from darkc.models import build_model, count_macs, get_adapter, load_checkpoint, normalize_spec

pytest.importorskip("ai_edge_litert")

MOBILE = {"arch": "mobile-unet", "output": "raw", "input": {"noise": "std-map"}, "widths": [8, 16, 16, 16, 16],
          "stem": "s2", "block": "ds"}


@pytest.mark.parametrize("block", ["ds", "ir", "conv"])
def test_prune_shrinks_every_stage_and_reloads(block, tmp_path):
    """Each width layer of the mobile net is a block (stride-2 conv + blocks, lateral conv + block): pruning must
    reach the convs inside them (it once left every layer whole and reported +0 %), keep the head, and save widths
    a fresh build reproduces exactly."""
    from darkc.compress.pruning import prune_model

    spec = normalize_spec({**MOBILE, "block": block, "widths": [16, 32, 32, 64, 64]})
    torch.manual_seed(0)
    model = build_model(spec)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    macs = count_macs(model, (5, 64, 64))
    model, pspec = prune_model(model, spec, 0.5, round_to=4)
    assert pspec["channels"] == {"stem": 8, "enc1": 16, "enc2": 16, "enc3": 32, "enc4": 32, "dec3": 32, "dec2": 16,
                                 "dec1": 16, "dec0": 8}
    assert count_macs(model, (5, 64, 64)) < 0.4 * macs
    assert model.head.in_channels == 8 and model.head.out_channels == 4
    from darkc.models import save_checkpoint

    save_checkpoint(model, pspec, tmp_path / "p")
    loaded, _ = load_checkpoint(tmp_path / "p")
    x = torch.rand(1, 5, 64, 64)
    assert torch.equal(loaded(x), model.eval()(x))


def test_prune_that_removes_nothing_is_an_error(tmp_path):
    from darkc.compress.pruning import prune_model

    spec = normalize_spec({**MOBILE, "widths": [4, 4, 4, 4, 4]})
    with raises_naming("removed no channel", "round-to"):
        prune_model(build_model(spec), spec, 0.5, round_to=4)


def test_mobile_student_of_a_sid_teacher_with_feature_kd(tmp_path, monkeypatch):
    """A fresh mobile-unet student (stem s2, its own option) of a SID U-Net teacher: the feature taps have different
    names and resolutions, so they are paired by output size; a student option the teacher fixes is refused."""
    from darkc.compress.distill import tap_pairs

    monkeypatch.chdir(tmp_path)
    tiny_checkpoint(tmp_path / "teacher", normalize_spec(
        {"arch": "sid-unet", "output": "raw", "input": {"noise": "std-map"}, "widths": [4, 8, 8, 8, 8]}))
    teacher, _ = load_checkpoint(tmp_path / "teacher")
    student = build_model(normalize_spec(MOBILE))
    pairs = tap_pairs(student, teacher)
    # the teacher taps its decoder at 1/8, 1/4, 1/2 and 1/1; the s2 student has nothing at full resolution, and two
    # stages at 1/2 (the later one is paired): three pairs, each at one resolution
    t_taps = get_adapter(teacher.darkc_adapter.spec).feature_taps(teacher)
    assert pairs == [("dec3", t_taps[0]), ("dec2", t_taps[1]), ("dec0", t_taps[2])]

    assert main(["distill", "--model", "teacher", "--student-arch", "mobile-unet", "--student-widths", "8,16,16,16,16",
                 "--student-options", "stem=s2,block=ir", "--kd", "output,features", "--steps", "1", "--batch-size",
                 "1", "--patch", "64", "--val-every", "0", "--ckpt-every", "1", "--no-eval", "--latency-size",
                 "none", "--threads", "1", "-o", "student"]) == 0
    _, spec = load_checkpoint("student")
    assert (spec["arch"], spec["stem"], spec["block"]) == ("mobile-unet", "s2", "ir")
    assert "--student-options stem=s2,block=ir" in spec["provenance"]["command"]
    state = load_file("student/train_state.safetensors")
    adapters = {k.split(".")[2] for k in state if k.startswith("extra.adapters.")}
    assert adapters == {s for s, _ in pairs}
    for bad, words in (("widths=8", ("widths", "--student-widths")), ("stem", ("key=value",)),
                       ("stem=s8", ("stem", "s4"))):
        with raises_naming(*words):
            from darkc.compress.distill import distill

            distill("teacher", "bad", student_arch="mobile-unet", student_options=bad.split(","), steps=1,
                    evaluate=False, latency_size=None, val_every=0)


@pytest.mark.usefixtures("reference_set")
def test_mobile_unet_through_the_pipeline(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tiny_checkpoint(tmp_path / "teacher", normalize_spec(MOBILE))
    recipe = tiny_recipe(tmp_path / "recipe.toml", tmp_path / "teacher", export=True)
    assert main(["pipeline", str(recipe), "-o", "run"]) == 0
    out = capsys.readouterr().out
    assert all(f"{stage:9s} ran" in out for stage in ("prune", "distill", "quantize", "export", "bench", "eval")), out
    _, spec = load_checkpoint(tmp_path / "run" / "02-distill")
    assert spec["arch"] == "mobile-unet" and spec["stem"] == "s2"
    assert spec["channels"] == {"stem": 4, "enc1": 8, "enc2": 8, "enc3": 8, "enc4": 8, "dec3": 8, "dec2": 8,
                                "dec1": 8, "dec0": 4}
    rows = {r["model"]: r for r in json.loads((tmp_path / "run" / "report.json").read_text())["rows"]}
    assert rows["student"]["psnr"] > 0 and rows["tflite-int8"]["latency_ms"]["host"] > 0

"""Tests for darkc/compress/distill.py: a tiny student learns a tiny teacher (with and without ground truth,
from unlabelled raw files), feature adapters stay out of the saved student, bad input, the CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch.utils.data import Dataset

from darkc.cli import main
from darkc.compress.distill import REPORT_JSON, distill, distill_objective, make_adapters
from darkc.models.sid_unet import FEATURE_LAYERS
from darkc.errors import DarkcError
from darkc.models import build_model, load_checkpoint, normalize_spec, save_checkpoint
from darkc.provenance import portable_text

TEACHER_WIDTHS = [8, 8, 16, 16, 32]
STUDENT_WIDTHS = [4, 4, 8, 8, 16]


class Pairs(Dataset):
    """Index-deterministic packed inputs with a smooth target: item i = dict(input, target)."""

    def __init__(self, side: int = 32, targets: bool = True):
        self.side, self.targets = side, targets

    def __len__(self) -> int:
        return 10**9

    def __getitem__(self, i: int) -> dict:
        rng = np.random.default_rng([5, i])
        x = rng.random((4, self.side, self.side), dtype=np.float32)
        item = {"input": torch.from_numpy(x)}
        if self.targets:
            t = np.repeat(np.repeat(x[:3], 2, axis=1), 2, axis=2)
            item["target"] = torch.from_numpy(np.ascontiguousarray(t))
        return item


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    torch.manual_seed(0)
    spec = normalize_spec({"arch": "sid-unet", "cfa": "bayer", "widths": TEACHER_WIDTHS})
    model = build_model(spec)
    with torch.no_grad():            # a teacher with a definite, non-trivial output: bias the head and
        model.conv10.bias.copy_(torch.linspace(-0.5, 0.5, model.conv10.bias.numel()))
        model.conv10.weight.mul_(0.2)   # keep its spatial variation in a trained model's range (He init: std ~1)
    return save_checkpoint(model, spec, tmp_path_factory.mktemp("teacher") / "teacher")


def fixed_inputs(n: int = 4, side: int = 32) -> torch.Tensor:
    return torch.rand(n, 4, side, side, generator=torch.Generator().manual_seed(123))


def run(teacher_dir, out, **kw):
    kw = {"student_widths": STUDENT_WIDTHS, "data": Pairs(), "steps": 30, "batch_size": 2, "lr": 3e-3,
          "val_every": 0, "ckpt_every": 10, "evaluate": False, "latency_size": None, "progress": False, **kw}
    return distill(teacher_dir, out, **kw)


def gap(student_dir, teacher_dir) -> float:
    x = fixed_inputs()
    with torch.no_grad():
        return F.l1_loss(load_checkpoint(student_dir)[0](x).clamp(0, 1),
                         load_checkpoint(teacher_dir)[0](x).clamp(0, 1)).item()


def test_student_distance_to_teacher_falls(teacher_dir, tmp_path):
    torch.manual_seed(0)
    spec = normalize_spec({"arch": "sid-unet", "cfa": "bayer", "widths": STUDENT_WIDTHS})
    fresh = save_checkpoint(build_model(spec), spec, tmp_path / "fresh")
    report = run(teacher_dir, tmp_path / "student", student_widths=None, student=str(fresh), steps=80)
    before, after = gap(fresh, teacher_dir), gap(tmp_path / "student", teacher_dir)
    assert after < 0.5 * before, (before, after)
    model, sspec = load_checkpoint(tmp_path / "student")
    assert sspec["widths"] == STUDENT_WIDTHS
    prov = sspec["provenance"]
    assert prov["stage"] == "distill" and prov["parent"] == portable_text(str(teacher_dir)) != str(teacher_dir) and prov["init"].startswith("checkpoint")
    assert prov["train"]["step"] == 80 and "darkc distill --model" in prov["command"]
    assert report["student"]["params"] < report["teacher_stats"]["params"]
    assert json.loads((tmp_path / "student" / REPORT_JSON).read_text())["steps"] == 80


def test_feature_adapters_are_trained_but_absent_from_the_student(teacher_dir, tmp_path):
    run(teacher_dir, tmp_path / "s", kd="output,features", steps=12)
    student, spec = load_checkpoint(tmp_path / "s")
    fresh = build_model(normalize_spec({"arch": "sid-unet", "cfa": "bayer", "widths": STUDENT_WIDTHS}))
    saved = load_file(str(tmp_path / "s" / "model.safetensors"))
    assert set(saved) == set(fresh.state_dict())
    assert not any("adapter" in k for k in saved)
    state = load_file(str(tmp_path / "s" / "train_state.safetensors"))
    adapters = {k for k in state if k.startswith("extra.adapters.")}
    assert {k.split(".")[2] for k in adapters} == set(FEATURE_LAYERS)
    # the adapters map student widths to teacher widths at each decoder level
    assert state["extra.adapters.conv6_2.weight"].shape == (16, 8, 1, 1)
    assert spec["provenance"]["kd"] == "output,features"


def test_feature_term_is_scale_free_and_zero_for_a_perfect_student(teacher_dir):
    teacher, _ = load_checkpoint(teacher_dir)
    student = load_checkpoint(teacher_dir)[0]                 # same widths: identity adapters are exact
    adapters = make_adapters(student, teacher)
    for conv in adapters.values():
        with torch.no_grad():
            conv.weight.copy_(torch.eye(conv.weight.shape[0])[:, :, None, None])
            conv.bias.zero_()
    obj = distill_objective(teacher, kd=("output", "features"), student=student)

    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net, self.extra = student, {"adapters": adapters}

        def forward(self, x):
            return self.net(x)

    x = fixed_inputs(2, 64)
    loss, logs = obj(M(), {"input": x})
    assert logs["kd_features"] == pytest.approx(0.0, abs=1e-6)
    # the head is biased beyond [0, 1]: the teacher target is clamped, the raw student output is not
    assert logs["kd_output"] > 0
    for tap in obj.taps:
        tap.remove()


def test_ground_truth_term_and_unlabelled_raw_files(teacher_dir, tmp_path, synth_bayer):
    r = run(teacher_dir, tmp_path / "gt", gt_weight=0.5, steps=4)
    assert r["options"]["gt_weight"] == 0.5
    short = synth_bayer.dir / "Sony" / "short"
    report = run(teacher_dir, tmp_path / "raw", data=str(short), steps=3, patch=64, batch_size=1)
    assert report["data"].startswith("unlabelled raws")
    report = run(teacher_dir, tmp_path / "raw2", unlabelled=str(synth_bayer.dir), steps=2, patch=64, batch_size=1)
    assert load_checkpoint(tmp_path / "raw2")[0](fixed_inputs(1)).shape == (1, 3, 64, 64)
    # a SID-layout folder is read as pairs, so the ground-truth term may be used
    report = run(teacher_dir, tmp_path / "sid", data=str(synth_bayer.dir), steps=2, patch=64, batch_size=1,
                 gt_weight=1.0)
    assert report["data"].startswith("SID-layout pairs")


@pytest.mark.parametrize("kw, fragment", [
    ({"kd": "logits"}, "--kd"),
    ({"gt_weight": 1.0, "data": Pairs(targets=False)}, "needs ground truth"),
    ({"student_widths": STUDENT_WIDTHS, "student": "somewhere"}, "not both"),
    ({"data": "/no/such/folder"}, "does not exist"),
    ({"beta": 1.5}, "beta"),
])
def test_bad_input_raises_and_writes_nothing(teacher_dir, tmp_path, kw, fragment):
    with pytest.raises(DarkcError, match=fragment):
        run(teacher_dir, tmp_path / "out", **kw)
    assert not (tmp_path / "out").exists()


def test_student_of_another_cfa_is_refused(teacher_dir, tmp_path):
    spec = normalize_spec({"arch": "sid-unet", "cfa": "xtrans", "widths": STUDENT_WIDTHS})
    other = save_checkpoint(build_model(spec), spec, tmp_path / "xt")
    with pytest.raises(DarkcError, match="xtrans"):
        run(teacher_dir, tmp_path / "out", student_widths=None, student=str(other))


def test_cli_distill(teacher_dir, tmp_path, synth_bayer, capsys):
    out = tmp_path / "cli"
    rc = main(["distill", "--model", str(teacher_dir), "--student-widths", "4,4,8,8,16", "--data",
               str(synth_bayer.dir), "--steps", "2", "--batch-size", "1", "--patch", "64", "--val-every", "0",
               "--no-eval", "--latency-size", "none", "--threads", "1", "-o", str(out)])
    assert rc == 0, capsys.readouterr()
    text = capsys.readouterr().out
    assert "distilled" in text and "MACs" in text
    assert (out / "model.safetensors").is_file() and (out / "distill_report.md").is_file()
    rc = main(["distill", "--model", str(teacher_dir), "--kd", "nope", "-o", str(tmp_path / "bad")])
    assert rc == 1 and "error:" in capsys.readouterr().err


def test_chroma_term_penalises_a_grey_student():
    torch.manual_seed(0)
    colour = torch.rand(2, 3, 16, 16)

    class Fixed(torch.nn.Module):
        def __init__(self, out):
            super().__init__()
            self.out = out

        def forward(self, x):
            return self.out

    grey = colour.mean(1, keepdim=True).expand_as(colour).clone()
    batch = {"input": torch.zeros(2, 4, 8, 8)}
    losses = {w: distill_objective(Fixed(colour), chroma_weight=w, beta=1.0)(Fixed(grey), batch)[0].item()
              for w in (0.0, 2.0)}
    chroma = (colour - colour.mean(1, keepdim=True)).abs().mean().item()
    assert losses[2.0] - losses[0.0] == pytest.approx(2.0 * chroma, rel=1e-5)
    assert distill_objective(Fixed(colour), chroma_weight=2.0, beta=1.0)(Fixed(colour), batch)[0].item() == 0

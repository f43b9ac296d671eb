"""Tests for darkc/compress/prune.py: Torch-Pruning on the SID U-Net (shapes, round_to, the fixed head),
MAC budgets, fine-tuning against the unpruned model, the artifact and report, bad input, the CLI."""
from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from darkc.cli import main
from darkc.compress.prune import REPORT_JSON, REPORT_MD, Budget, packed_shape, parse_budget, prune
from darkc.compress.pruning import _floor_width, prune_model
from darkc.errors import DarkcError
from darkc.models import (WIDTH_LAYERS, build_model, count_macs, count_params, load_checkpoint, normalize_spec,
                          register_arch, save_checkpoint, widths_to_channels)
from darkc.models import registry as registry_mod
from darkc.provenance import portable_text

WIDTHS = [16, 16, 32, 32, 64]
HD = (4, 540, 960)   # packed 1920x1080 Bayer


def tiny(cfa: str = "bayer", widths=WIDTHS, seed: int = 0):
    torch.manual_seed(seed)
    spec = normalize_spec({"arch": "sid-unet", "cfa": cfa, "widths": list(widths)})
    return build_model(spec).eval(), spec


@pytest.fixture
def artifact(tmp_path):
    model, spec = tiny()
    return save_checkpoint(model, spec, tmp_path / "parent")


class TinyInputs(Dataset):
    """Index-deterministic packed inputs: item ``i`` = dict(input=(4, side, side) uniform [0, 1])."""

    def __init__(self, seed: int = 0, side: int = 32):
        self.seed, self.side = seed, side

    def __len__(self) -> int:
        return 10**9

    def __getitem__(self, i: int) -> dict:
        rng = np.random.default_rng([self.seed, i])
        return {"input": torch.from_numpy(rng.random((4, self.side, self.side), dtype=np.float32))}


def fixed_inputs(n: int = 4, cin: int = 4, side: int = 32) -> torch.Tensor:
    return torch.rand(n, cin, side, side, generator=torch.Generator().manual_seed(123))


def run(artifact, out, **kw):
    kw = {"evaluate": False, "latency_size": None, "progress": False, "round_to": 4, "rescale": False, **kw}
    return prune(artifact, out, **kw)


# ---------------------------------------------------------------- prune_model
@pytest.mark.parametrize("cfa", ["bayer", "xtrans"])
@pytest.mark.parametrize("scope", ["uniform", "global"])
@pytest.mark.parametrize("ratio", [0.25, 0.5, 0.75])
def test_pruned_model_runs_keeps_shape_head_and_round_to(cfa, scope, ratio):
    model, spec = tiny(cfa)
    x = fixed_inputs(1, model.in_channels)
    shape = model(x).shape
    params = count_params(model)
    model, new_spec = prune_model(model, spec, ratio, "l1", scope, round_to=4)
    assert model(x).shape == shape
    assert model.conv10.out_channels == 3 * spec["scale"] ** 2 == (12 if cfa == "bayer" else 27)
    after = model.channels
    assert new_spec["channels"] == after and new_spec["params"] == count_params(model) < params
    before = widths_to_channels(WIDTHS)
    for name in WIDTH_LAYERS:
        layer = getattr(model, name)
        assert layer.out_channels % 4 == 0, (name, layer.out_channels)
        assert _floor_width(before[name], 4, 0.9) <= after[name] <= before[name]
    if scope == "uniform":
        # torch-pruning keeps int(w * (1 - ratio)) rounded down to round_to, here exact
        assert after == widths_to_channels([int(w * (1 - ratio)) for w in WIDTHS])


def test_round_to_8_and_no_layer_vanishes_in_global_scope():
    model, spec = tiny(widths=[16, 24, 32, 48, 64])
    before = model.channels
    model, _ = prune_model(model, spec, 0.8, "l2", "global", round_to=8)
    after = model.channels
    assert all(c % 8 == 0 and c >= 8 for n, c in after.items() if c != before[n])
    assert all(c >= max(8, math.ceil(0.1 * before[n])) for n, c in after.items())
    # the global ranking removes ~80 % of all channels: unevenly, and more than in any single narrow layer
    assert sum(after.values()) <= 0.35 * sum(before.values())
    assert len(set(c / before[n] for n, c in after.items())) > 1
    assert model(fixed_inputs(1)).shape == (1, 3, 64, 64)


def test_narrow_layers_keep_round_to_channels_instead_of_being_skipped():
    # 16 channels at ratio 0.6 -> int(6.4) = 6 -> 0 when rounded down to 8: torch-pruning alone skips the layer
    model, spec = tiny()
    model, _ = prune_model(model, spec, 0.6, "l1", "uniform", round_to=8)
    assert model.channels["conv1_1"] == 8 and model.channels["up9"] == 8
    assert model.channels["conv5_1"] == 24


@pytest.mark.parametrize("importance", ["l2", "taylor", "random"])
def test_other_criteria_prune_different_channels_deterministically(importance):
    a, spec = tiny()
    b, c = copy.deepcopy(a), copy.deepcopy(a)
    x = fixed_inputs(2)
    prune_model(a, spec, 0.5, "l1", "uniform", 4, x)
    prune_model(b, spec, 0.5, importance, "uniform", 4, x, seed=1)
    prune_model(c, spec, 0.5, importance, "uniform", 4, x, seed=1)
    assert a.channels == b.channels
    assert torch.equal(b(x), c(x))
    differs = any(not torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert differs or importance == "l2"     # on random weights L2 may rank like L1: see the test below


def test_l2_keeps_the_channels_with_one_large_weight_where_l1_keeps_the_evenly_spread_ones():
    # conv1_1's output channels, made to dominate their groups: even ones spread 1.0 over all 36 weights
    # (L1 36, sum of squares 36), odd ones hold a single 10.0 (L1 10, sum of squares 100)
    model, spec = tiny()
    with torch.no_grad():
        w = model.conv1_1.weight
        w.zero_()
        w[0::2] = 1.0
        w[1::2, 0, 1, 1] = 10.0
    kept = {}
    for importance in ("l1", "l2"):
        m = copy.deepcopy(model)
        prune_model(m, spec, 0.5, importance, "uniform", 4, fixed_inputs(2))
        rows = m.conv1_1.weight.detach().flatten(1)
        kept[importance] = sorted("spread" if (r != 0).sum() > 1 else "single" for r in rows)
    assert set(kept["l1"]) == {"spread"} and set(kept["l2"]) == {"single"}, kept


# ---------------------------------------------------------------- the artifact and report
def test_rescale_matches_the_parents_activation_scale_and_output(artifact, tmp_path):
    from darkc.compress.pruning import _layer_outputs
    from darkc.models.sid_unet import LAYERS

    parent, _ = load_checkpoint(artifact)
    data = TinyInputs(side=64)
    calib = torch.stack([data[i]["input"] for i in range(4)])
    for rescale in (False, True):
        run(artifact, tmp_path / str(rescale), ratio=0.75, data=data, rescale=rescale)
        pruned, spec = load_checkpoint(tmp_path / str(rescale))
        assert spec["provenance"]["rescale"] is rescale
        with torch.no_grad():
            mine, ref = _layer_outputs(pruned, calib, LAYERS), _layer_outputs(parent, calib, LAYERS)
        ratios = [mine[n].std().item() / ref[n].std().item() for n in LAYERS[:-1]]
        if rescale:   # every layer at its parent's scale, the head's channels at their parent's mean and std
            assert ratios == pytest.approx([1.0] * len(ratios), rel=1e-3)
            torch.testing.assert_close(mine["conv10"].mean((0, 2, 3)), ref["conv10"].mean((0, 2, 3)),
                                       atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(mine["conv10"].std((0, 2, 3)), ref["conv10"].std((0, 2, 3)),
                                       atol=1e-5, rtol=1e-3)
        else:         # a 3/4 prune shrinks the activations
            assert min(ratios) < 0.7, ratios


def test_artifact_reloads_with_identical_outputs_and_provenance(artifact, tmp_path):
    out = tmp_path / "pruned"
    report = run(artifact, out, ratio=0.5, latency_size="128x128", latency_runs=1)
    loaded, spec = load_checkpoint(out)
    parent, pspec = load_checkpoint(artifact)
    expect, _ = prune_model(copy.deepcopy(parent), pspec, 0.5, "l1", "uniform", round_to=4, rescale=False)
    x = fixed_inputs(2)
    assert torch.equal(loaded(x), expect.eval()(x))
    assert spec["channels"] == report["channels"]["after"] == widths_to_channels([8, 8, 16, 16, 32])
    prov = spec["provenance"]
    assert prov["parent"] == portable_text(str(artifact)) != str(artifact) and prov["stage"] == "prune"
    assert (prov["ratio"], prov["importance"], prov["scope"], prov["round_to"], prov["steps"],
            prov["finetune_iters"]) == (0.5, "l1", "uniform", 4, 1, 0)
    assert prov["params_before"] == count_params(parent) and prov["params_after"] == count_params(loaded)
    assert prov["macs_1920x1080_after"] == count_macs(loaded, HD) < prov["macs_1920x1080_before"]
    assert prov["command"].startswith("darkc prune --model ") and "--ratio 0.5" in prov["command"]
    assert "--no-rescale" in prov["command"] and prov["rescale"] is False
    saved = json.loads((out / REPORT_JSON).read_text())
    assert saved["after"]["macs"]["4240x2832"] == count_macs(loaded, (4, 1416, 2120))
    assert saved["latency"]["packed_padded"] == [4, 64, 64] and saved["after"]["latency_ms"] > 0
    md = (out / REPORT_MD).read_text()
    assert "MACs @1920x1080" in md and "| conv5_1 | 64 | 32 |" in md
    assert sorted(p.name for p in out.iterdir()) == ["model.json", "model.safetensors", REPORT_JSON, REPORT_MD]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["parent", "pruned"]


def test_evaluation_runs_on_parent_and_written_artifact(artifact, tmp_path, synth_bayer):
    from darkc.evaluate import evaluate

    # the real evaluation on the session's tiny SID set (2 pairs), of the parent and of the artifact as written
    report = run(artifact, tmp_path / "out", ratio=0.5, evaluate=True, eval_data=str(synth_bayer.dir),
                 eval_limit=2, progress=False)
    before = evaluate(str(artifact), str(synth_bayer.dir), limit=2, progress=False)
    after = evaluate(str(tmp_path / "out"), str(synth_bayer.dir), limit=2, progress=False)
    assert before["psnr"] != after["psnr"]                                     # half the channels are gone
    for key, res in (("before", before), ("after", after)):
        assert (report[key]["psnr"], report[key]["ssim"], report[key]["eval_pairs"]) == \
            (res["psnr"], res["ssim"], 2), key
    assert "PSNR" in (tmp_path / "out" / REPORT_MD).read_text()
    metrics = load_checkpoint(tmp_path / "out")[1]["provenance"]["metrics"]
    assert metrics["after"]["psnr"] == report["after"]["psnr"] and metrics["eval"]["limit"] == 2


# ---------------------------------------------------------------- budgets
def test_parse_budget():
    assert parse_budget("5G@1920x1080") == (5e9, (1920, 1080))
    assert parse_budget("800m@1280X720") == (8e8, (1280, 720))
    assert parse_budget("2.5GMACs@4240x2832") == (2.5e9, (4240, 2832))
    assert parse_budget("1.5e9") == (1.5e9, (1920, 1080))
    for bad in ("5X@1920x1080", "G@1920x1080", "5G@1920", "-1G@1920x1080", "0G@10x10"):
        with pytest.raises(DarkcError):
            parse_budget(bad)
    assert packed_shape("bayer", (1920, 1080)) == (4, 540, 960)
    assert packed_shape("xtrans", (1920, 1080)) == (9, 360, 640)


@pytest.mark.parametrize("scope, round_to, frac", [("global", 4, 0.5), ("uniform", 1, 0.5), ("global", 8, 0.3)])
def test_target_macs_lands_within_5_percent(artifact, tmp_path, scope, round_to, frac):
    parent, _ = load_checkpoint(artifact)
    full = count_macs(parent, HD)
    target = full * frac
    report = run(artifact, tmp_path / "out", target_macs=f"{target / 1e6:.3f}M@1920x1080", scope=scope,
                 round_to=round_to)
    achieved = count_macs(load_checkpoint(tmp_path / "out")[0], HD)
    assert abs(achieved / target - 1) <= 0.05
    assert report["budget"]["achieved"] == achieved == report["after"]["macs"]["1920x1080"]
    assert report["budget"]["within_tolerance"] and len(report["budget"]["trials"]) >= 2


def test_budget_takes_any_cost_function(artifact, tmp_path):
    parent, _ = load_checkpoint(artifact)
    budget = Budget(0.4 * count_params(parent), count_params, "params")
    report = run(artifact, tmp_path / "out", budget=budget, scope="global")
    assert abs(report["after"]["params"] / budget.value - 1) <= 0.05
    assert report["budget"]["label"] == "params"


# ---------------------------------------------------------------- fine-tuning against the unpruned model
def test_finetune_reduces_gap_to_the_unpruned_model(artifact, tmp_path):
    parent, _ = load_checkpoint(artifact)
    x = fixed_inputs(4)
    with torch.no_grad():
        teacher = parent(x)
    common = dict(ratio=0.5, steps=2, data=TinyInputs(), batch_size=2, lr=2e-3)
    run(artifact, tmp_path / "raw", finetune_iters=0, **common)
    run(artifact, tmp_path / "tuned", finetune_iters=25, **common)
    gaps = {}
    for name in ("raw", "tuned"):
        model, spec = load_checkpoint(tmp_path / name)
        with torch.no_grad():
            gaps[name] = F.l1_loss(model(x), teacher).item()
        assert spec["channels"] == widths_to_channels([8, 8, 16, 16, 32])
    assert gaps["tuned"] < 0.8 * gaps["raw"], gaps
    prov = load_checkpoint(tmp_path / "tuned")[1]["provenance"]
    assert [f["step"] for f in prov["finetune"]] == [1, 2] and prov["steps"] == 2 and prov["finetune_iters"] == 25
    assert sorted(p.name for p in tmp_path.iterdir()) == ["parent", "raw", "tuned"]


def test_taylor_with_raw_folder_inputs(artifact, tmp_path, synth_bayer):
    report = run(artifact, tmp_path / "out", ratio=0.5, importance="taylor", data=str(synth_bayer.dir),
                 finetune_iters=2, batch_size=1, patch=64)
    assert report["finetune"][0]["iters"] == 2 and report["options"]["data"] == str(synth_bayer.dir)
    assert load_checkpoint(tmp_path / "out")[0](fixed_inputs(1)).shape == (1, 3, 64, 64)


# ---------------------------------------------------------------- bad input writes nothing
def headless(spec: dict) -> nn.Module:
    """An arch whose last layer is the 12-channel head itself: nothing can be pruned without cutting it."""
    return nn.Sequential(nn.Conv2d(4, 12, 3, padding=1), nn.PixelShuffle(2))


@pytest.mark.parametrize("kw, fragment", [
    ({"ratio": 0.0}, "between 0 and 1"),
    ({"ratio": 1.0}, "between 0 and 1"),
    ({"ratio": -0.5}, "between 0 and 1"),
    ({}, "exactly one"),
    ({"ratio": 0.5, "target_macs": "1G@1920x1080"}, "exactly one"),
    ({"target_macs": "100G@1920x1080"}, "at or above"),
    ({"target_macs": "10M@1920x1080"}, "minimum widths"),
    ({"target_macs": "5Q@1920x1080"}, "not a MAC budget"),
    ({"ratio": 0.5, "importance": "l3"}, "--importance"),
    ({"ratio": 0.5, "scope": "layer"}, "--scope"),
    ({"ratio": 0.5, "round_to": 0}, "--round-to"),
    ({"ratio": 0.5, "steps": 0}, "--steps"),
    ({"ratio": 0.5, "finetune_iters": 3, "data": "/nonexistent/raws"}, "--data"),
    ({"ratio": 0.5, "model": "missing"}, "does not exist"),
    ({"ratio": 0.5, "model": "headless"}, "no conv besides its output head"),
    ({"ratio": 0.5, "model": "self"}, "input model's directory"),
])
def test_bad_input_raises_and_writes_nothing(artifact, tmp_path, monkeypatch, kw, fragment):
    kw = dict(kw)
    ref = kw.pop("model", artifact)
    out = tmp_path / "new" / "out"
    if ref == "missing":
        ref = tmp_path / "no-such-model"
    elif ref == "headless":
        monkeypatch.setattr(registry_mod, "_ARCHS", dict(registry_mod._ARCHS))
        register_arch("test-headless")(headless)
        ref = save_checkpoint(headless({}), {"arch": "test-headless"}, tmp_path / "headless")
    elif ref == "self":
        ref = out = artifact
    listing = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(DarkcError, match=fragment):
        run(ref, out, **kw)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == listing


# ---------------------------------------------------------------- CLI
def test_cli_prune(artifact, tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["prune", "--model", str(artifact), "--ratio", "0.5", "--steps", "1", "--finetune-iters", "0",
            "--round-to", "4", "--no-eval", "--latency-size", "64x64", "-o", str(out)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "MACs @1920x1080" in text and "params" in text and "latency" in text
    assert load_checkpoint(out)[1]["channels"] == widths_to_channels([8, 8, 16, 16, 32])

    bad = tmp_path / "bad"
    assert main(["prune", "--model", str(artifact), "--ratio", "1.5", "--no-eval", "-o", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "--ratio" in err
    assert not bad.exists()

"""Tests for darkc/compress/latency_budget.py and ``darkc prune --target-ms``: the budget spec, the calibrated cost
model the ratio search runs on (through its estimates, growing with width), the refit when an estimate misses, the
report naming device, band and counting, the CLI option and recipe key, and - on the emulated ARM setup (`darkc
bench --setup-arm`; skipped when missing, failed under CI) - the cost model against the real estimator."""
from __future__ import annotations

import copy
import json

import pytest
import torch

from darkc.cli import main
from darkc.compress.latency_budget import CalibratedCost, Estimator, parse_target_ms, search_latency
from darkc.compress.prune import REPORT_JSON, REPORT_MD, prune
from darkc.compress.pruning import MAX_LAYER_RATIO, prune_model
from darkc.errors import DarkcError
from darkc.latency.graph import torch_cost
from darkc.models import build_model, load_checkpoint, normalize_spec, save_checkpoint

WIDTHS = [16, 16, 32, 32, 64]
HD = (1, 4, 544, 960)       # packed, padded 1920x1080 Bayer


def tiny(widths=WIDTHS):
    torch.manual_seed(0)
    spec = normalize_spec({"arch": "sid-unet", "cfa": "bayer", "widths": list(widths)})
    return build_model(spec).eval(), spec


def cut(model, spec, ratio, round_to=1, scope="global"):
    return prune_model(copy.deepcopy(model), spec, ratio, "l1", scope, round_to, None, rescale=False)


def curved_ms(model) -> float:
    """A stand-in estimator that no ``a x MACs + b x bytes`` fits: fixed cost, bytes, and MACs to the power 1.15."""
    c = torch_cost(model, HD)
    return 0.5 + 3e-9 * c["bytes"] + 2e-9 * c["macs"] ** 1.15 / 1e9 ** 0.15


@pytest.fixture
def fake_estimator(monkeypatch):
    """Estimator runs replaced by :func:`curved_ms` (the real one needs QEMU); counts the calls."""
    calls = []

    def estimate(self, model, spec):
        calls.append(spec["channels"])
        return {"latency_ms": curved_ms(model), "method": "estimated: stand-in", "runtime": "LiteRT (stand-in)",
                "error_band": {"median_abs_pct": 3.0, "n": 8, "text": "stand-in band"}, "cores": self.target.cores,
                "threads": self.target.threads, "instructions": 0.0, "measured_resolution": {}, "resolution": {},
                "dtype": self.precision}
    monkeypatch.setattr(Estimator, "_estimate", estimate)
    return calls


# ---------------------------------------------------------------- the spec
def test_target_ms_specs_parse_with_the_default_frame():
    t = parse_target_ms("33@cortex-a78x4")
    assert (t.ms, t.device, t.resolution, t.threads) == (33.0, "cortex-a78x4", (1920, 1080), 4)
    assert t.cores == "4 x cortex-a78 @ 2.42 GHz" and t.text == "33@cortex-a78x4@1920x1080"
    t = parse_target_ms(" 16.5ms @ Cortex-X3+a715x2 @1280x720")
    assert (t.ms, t.device, t.resolution, t.threads) == (16.5, "cortex-x3+a715x2", (1280, 720), 3)
    assert parse_target_ms("200@cortex-a55").threads == 1
    assert parse_target_ms(t.text) == t


@pytest.mark.parametrize("text, says", [
    ("33", "write MS@DEVICE[@WxH]"),
    ("fast@cortex-a78x4", "write MS@DEVICE[@WxH]"),
    ("0@cortex-a78x4", "must be a positive number of ms"),
    ("33@cortex-z9x4", "CORE one of cortex-a55"),
    ("33@cortex-a78x40", "use 1 to 16 per group"),
    ("33@ethos-u65-512", "not an ARM CPU"),
    ("33@host", "not an ARM CPU"),
    ("33@cortex-a78x4@1920", "--target-ms resolution"),
])
def test_bad_target_ms_is_one_line_naming_the_fix(text, says):
    with pytest.raises(DarkcError, match="target-ms") as exc:
        parse_target_ms(text)
    assert says in str(exc.value) and "\n" not in str(exc.value)


# ---------------------------------------------------------------- the cost model
def test_cost_model_passes_through_its_estimates_and_grows_with_width():
    model, spec = tiny()
    cost = CalibratedCost(HD)
    floor, _ = cut(model, spec, MAX_LAYER_RATIO)
    mid, _ = cut(model, spec, 0.5)
    for m in (model, floor):
        cost.add(m, curved_ms(m))
    # exact at both ends, whatever the linear part could fit
    assert cost(model) == pytest.approx(curved_ms(model), rel=1e-9)
    assert cost(floor) == pytest.approx(curved_ms(floor), rel=1e-9)
    assert min(cost.coef.values()) >= 0 and cost.coef["macs"] > 0
    # between them: wider models cost more
    preds = [cost(cut(model, spec, r)[0]) for r in (0.8, 0.6, 0.4, 0.2)]
    assert curved_ms(floor) < preds[0] < preds[1] < preds[2] < preds[3] < curved_ms(model)
    # a third estimate joins the fit (and the constant with it) and is reproduced too
    cost.add(mid, curved_ms(mid))
    assert cost(mid) == pytest.approx(curved_ms(mid), rel=1e-9) and len(cost.points) == 3
    assert "3 estimator runs" in cost.describe()


def test_search_refits_until_the_estimate_lands(fake_estimator):
    model, spec = tiny()
    target = parse_target_ms("5.5@cortex-a78x4")
    ratio, record, est, cost = search_latency(model, spec, target, scope="global", round_to=1,
                                              max_layer_ratio=MAX_LAYER_RATIO, tolerance=0.05)
    pruned, _ = cut(model, spec, ratio)
    assert abs(curved_ms(pruned) / 5.5 - 1) <= 0.05
    rounds = record["rounds"]
    assert rounds[-1]["ratio"] == ratio and abs(rounds[-1]["estimated_ms"] / 5.5 - 1) <= 0.05
    # the first search, on the two-point fit, missed this curve; its estimate joined the fit for the next
    assert len(rounds) >= 2 and abs(rounds[0]["estimated_ms"] / 5.5 - 1) > 0.05
    assert [p["role"] for p in record["calibration"]][:3] == ["unpruned", "floor", "search 1"]
    # one estimator run per distinct channel layout: the two ends and one per search
    assert len(fake_estimator) == est.runs == 2 + len(rounds)
    # the search itself ran on the cost model: many trials, no estimator run each
    assert len(rounds[0]["trials"]) > len(rounds)


@pytest.mark.parametrize("budget, says", [("500@cortex-a78x4", "nothing to prune - ask for less than"),
                                          ("0.01@cortex-a78x4", "ask for at least")])
def test_unreachable_latency_budget_names_the_estimate(fake_estimator, budget, says):
    model, spec = tiny()
    with pytest.raises(DarkcError, match="--target-ms") as exc:
        search_latency(model, spec, parse_target_ms(budget), max_layer_ratio=MAX_LAYER_RATIO, tolerance=0.05)
    assert says in str(exc.value)


def test_prune_report_says_estimated_ms_on_which_device_with_band_and_counting(fake_estimator, tmp_path):
    model, spec = tiny()
    parent = save_checkpoint(model, spec, tmp_path / "parent")
    out = tmp_path / "out"
    report = prune(parent, out, target_ms="20@cortex-a78x4", scope="global", round_to=1, evaluate=False,
                   latency_size=None, rescale=False, progress=False)
    bud = report["budget"]
    res = bud["latency"]["result"]
    assert bud["achieved"] == res["estimated_ms"] == pytest.approx(curved_ms(load_checkpoint(out)[0]))
    assert bud["within_tolerance"] and bud["requested"] == 20.0
    assert res["agreement_limit_pct"] == 3.0 and res["predicted_ms"] > 0
    # the prediction reported is the search's for the chosen candidate (no fine-tuning: same widths), not a refit's
    chosen = bud["latency"]["rounds"][bud["latency"]["chosen"]]
    assert res["predicted_by"] == "the search" and res["predicted_ms"] == chosen["predicted_ms"]
    assert res["agrees"] == (abs(res["predicted_ms"] / res["estimated_ms"] - 1) * 100 <= 3.0)
    md = (out / REPORT_MD).read_text()
    assert "budget 20 ms per 1920x1080 raw frame, estimated (not measured) on cortex-a78x4" in md
    assert "4 x cortex-a78 @ 2.42 GHz, 4 threads, int8" in md and "+/-3 % (stand-in band)" in md
    assert "how the latency was counted: estimated: stand-in" in md and "| calibration (floor) |" in md
    record = json.loads((out / REPORT_JSON).read_text())
    assert record["options"]["target_ms"] == "20@cortex-a78x4@1920x1080"
    assert "--target-ms 20@cortex-a78x4@1920x1080 --target-precision int8" in record["command"]
    assert "--ratio" not in record["command"]
    prov = load_checkpoint(out)[1]["provenance"]
    assert prov["budget"]["latency"]["result"]["estimated_ms"] == bud["achieved"]
    assert all("trials" not in r for r in prov["budget"]["latency"]["rounds"])


# ---------------------------------------------------------------- CLI and recipe
def test_cli_and_recipe_take_target_ms(tmp_path, capsys):
    from darkc.pipeline import recipe_schema, run_pipeline

    assert main(["prune", "--help"]) == 0
    text = capsys.readouterr().out
    assert "--target-ms" in text and "--target-precision" in text
    assert {"target_ms", "target_precision"} <= set(recipe_schema()["prune"])
    model, spec = tiny([8, 8, 8, 8, 8])
    parent = save_checkpoint(model, spec, tmp_path / "parent")
    bad = tmp_path / "bad"
    assert main(["prune", "--model", str(parent), "--target-ms", "33@cortex-q1", "-o", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: --target-ms") and err.count("\n") == 1 and not bad.exists()
    assert main(["prune", "--model", str(parent), "--ratio", "0.5", "--target-ms", "33@cortex-a78x4",
                 "-o", str(bad)]) == 1
    assert "exactly one of --ratio, --target-macs or --target-ms" in capsys.readouterr().err
    for body, says in (('target_ms = "33@ethos-u55-256"', r"recipe\.toml:\d+: \[prune\] --target-ms .* not an ARM"),
                       ('ratio = 0.5\ntarget_ms = "33@cortex-a78x4"',
                        "exactly one of ratio, target_macs or target_ms")):
        path = tmp_path / "recipe.toml"
        path.write_text(f'[pipeline]\nteacher = "{parent}"\n\n[prune]\n{body}\n')
        with pytest.raises(DarkcError, match=says):
            run_pipeline(str(path), tmp_path / "run", progress=False)
        assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------- emulated
def test_cost_model_agrees_with_the_emulated_estimate_on_a_tiny_pruned_model(arm_setup):
    """Calibrated on the real estimates of the unpruned and the floor-width model, the cost model predicts a
    half-pruned model within the estimator's error band of its own real estimate (fp32 LiteRT, 2 emulated
    Cortex-A78). Slow: three exports and emulator runs (~60 s on a loaded 2-core host)."""
    pytest.importorskip("litert_torch")
    from darkc.latency.validation import error_band

    model, spec = tiny()
    target = parse_target_ms("5@cortex-a78x2@256x256")
    est = Estimator(target, "fp32")        # counted at the stage's default, packed 64x64
    cost = CalibratedCost((1, 4, 128, 128))
    floor, floor_spec = cut(model, spec, MAX_LAYER_RATIO, round_to=8, scope="uniform")
    for m, s in ((model, spec), (floor, floor_spec)):
        cost.add(m, est(m, s)["latency_ms"])
    half, half_spec = cut(model, spec, 0.5, round_to=8, scope="uniform")
    entry = est(half, half_spec)
    assert "QEMU" in entry["method"] and entry["threads"] == 2 and "LiteRT" in entry["runtime"]
    full_ms, floor_ms = (p["estimated_ms"] for p in cost.points)
    assert floor_ms < entry["latency_ms"] < full_ms and floor_ms < cost(half) < full_ms
    band = (error_band() or {}).get("band", {}).get("median_abs_pct", 5.0)
    assert abs(cost(half) / entry["latency_ms"] - 1) * 100 <= band

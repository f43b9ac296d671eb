"""Hazard: a committed figure plots a quality value that no evaluation gave (a stale training-time field copied
from model.json made the student look lossless), or a chart whose points hide each other."""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import pytest

from darkc.errors import DarkcError
from darkc.latency.chart import OFF_SCALE_DB, draw, pareto
from darkc.latency.report import quality_from_eval

matplotlib.use("Agg")
REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"


def test_latency_plot_quality_comes_from_the_evaluation_record_it_names():
    payload = json.loads((RESULTS / "latency" / "latency.json").read_text())
    scored = [m for m in payload["models"] if m.get("metrics")]
    assert {m["label"] for m in scored} >= {"teacher fp32", "student fp32"}
    for m in scored:
        source = m["metrics"]["source"]
        assert "model.json" not in source and (REPO / source).is_file(), source
        record = json.loads((REPO / source).read_text())
        assert m["metrics"]["psnr"] == record["psnr"] and m["metrics"]["ssim"] == record["ssim"]
        assert m["metrics"]["data"] == record["data"] == "synthetic" and m["metrics"]["n"] == record["n"]
        assert m["label"].split()[0] == record["model"]


def test_pipeline_report_plot_values_are_its_eval_stage_record():
    report = json.loads((RESULTS / "sid-mobile" / "report.json").read_text())
    record = json.loads((RESULTS / "sid-mobile" / "manifest-06-eval.json").read_text())["metrics"]["models"]
    rows = {r["model"]: r for r in report["rows"]}
    assert set(rows) == set(record)
    for name, rec in record.items():
        assert rows[name]["psnr"] == rec["psnr"] and rows[name]["ssim"] == rec["ssim"], name


@pytest.mark.parametrize("name", ["reference", "reference-xtrans"])
def test_committed_gallery_is_best_median_worst_with_a_score_per_panel(name):
    rec = json.loads((RESULTS / "gallery" / f"{name}.json").read_text())
    assert (RESULTS / "gallery" / f"{name}.png").stat().st_size > 100_000
    assert rec["data"] == "synthetic" and len(rec["images"]) == 3
    for row in rec["images"]:
        labels = [p["label"] for p in row["panels"]]
        assert labels[0].startswith("input x") and labels[-1].startswith("reference")
        assert all(0 < p["psnr"] < 60 and -1 <= p["ssim"] <= 1 for p in row["panels"] if "psnr" in p)
    if rec["ranked_by"]:                                 # best, median, worst by the first model
        order = [next(p["psnr"] for p in r["panels"] if p["key"] == "model0") for r in rec["images"]]
        assert order == sorted(order, reverse=True) and [r["why"] for r in rec["images"]] == ["best", "median", "worst"]
    else:
        assert {r["why"] for r in rec["images"]} == {"asked"}


def test_quality_from_eval_reads_a_record_and_refuses_others(tmp_path):
    good = tmp_path / "q.json"
    good.write_text(json.dumps({"psnr": 21.5, "ssim": 0.5, "data": "synthetic", "n": 24, "model": "x"}))
    q = quality_from_eval(good)
    assert (q["psnr"], q["ssim"], q["n"], q["data"]) == (21.5, 0.5, 24, "synthetic")
    bad = tmp_path / "model.json"
    bad.write_text(json.dumps({"provenance": {"metrics": {"validation": {"psnr": 19.0}}}}))
    with pytest.raises(DarkcError, match="model.json"):
        quality_from_eval(bad)


def test_pareto_front_keeps_only_unbeaten_points():
    pts = [{"latency_ms": ms, "psnr": db} for ms, db in [(10, 20.0), (5, 19.0), (20, 19.5), (30, 22.0), (12, 20.0)]]
    assert [(p["latency_ms"], p["psnr"]) for p in pareto(pts)] == [(5, 19.0), (10, 20.0), (30, 22.0)]


def test_chart_moves_lonely_devices_and_off_scale_points_to_the_table():
    import matplotlib.pyplot as plt

    pts = [{"model": m, "device": d, "latency_ms": ms, "psnr": db, "estimated": d != "host"}
           for m, d, ms, db in [("a", "host", 100, 22.0), ("b", "host", 50, 20.5), ("a", "npu", 10, 22.0),
                                ("c", "host", 40, 22.0 - OFF_SCALE_DB - 1), ("b", "arm", 300, 20.5),
                                ("a", "arm", 900, 22.0)]]
    fig, ax = plt.subplots()
    left = draw(ax, pts, quality="test")
    plt.close(fig)
    assert sorted((p["model"], p["device"]) for p in left) == [("a", "npu"), ("c", "host")]

"""Multi-core ARM estimates: cluster names, the critical-path time model, per-thread counting under QEMU, and the
validation's error band on every ARM figure.

The emulated tests need the ARM setup (`darkc bench --setup-arm`); outside CI they are skipped when it is missing.
"""

import numpy as np
import pytest
import torch
from torch import nn

from darkc.errors import DarkcError
from darkc.latency import arm, bench, format_result
from darkc.latency.bench import parse_devices
from darkc.latency.cluster import cluster_ms, parse_cluster
from darkc.latency.report import rows
from darkc.latency.validation import band_text, error_band


# ---------------------------------------------------------------- names
def test_cluster_names_parse_to_their_cores_fastest_first():
    c = parse_cluster("cortex-a78x4")
    assert c.size == 4 and not c.heterogeneous and {k.profile.name for k in c.cores} == {"cortex-a78"}
    c = parse_cluster("cortex-x3+a715x2")
    assert [k.profile.name for k in c.cores] == ["cortex-x3", "cortex-a715", "cortex-a715"] and c.heterogeneous
    assert c.qemu_cpu == arm.PROFILES["cortex-x3"].qemu_cpu
    # the slower group first in the name still runs the busiest thread on the fastest core
    c = parse_cluster("cortex-a76@2.42x3+a76@2.84")
    assert [k.clock_ghz for k in c.cores] == [2.84, 2.42, 2.42, 2.42] and c.heterogeneous
    assert parse_cluster("cortex-a55").size == 1


@pytest.mark.parametrize("name, says", [("cortex-a99x4", "not a core group"), ("cortex-a78x0", "1 to 16"),
                                        ("a78x4", "starts with a core profile"), ("cortex-a78@9x2", "0.1-6 GHz"),
                                        ("cortex-a78+", "not a core group")])
def test_bad_cluster_names_say_how_to_write_one(name, says):
    with pytest.raises(DarkcError, match=says):
        parse_cluster(name)


def test_bench_accepts_clusters_and_rejects_unknown_devices():
    assert parse_devices("host,cortex-a78x4,cortex-x3+a715x2") == ["host", "cortex-a78x4", "cortex-x3+a715x2"]
    with pytest.raises(DarkcError, match="cortex-a78x4"):
        parse_devices("host,pixel-9000")


# ---------------------------------------------------------------- time model
COUNT = {"threads": 2, "instructions": 1.0e9, "serial": 0.2e9, "parallel": 0.8e9, "regions": 40}


def test_identical_cores_run_serial_work_alone_and_share_parallel_regions():
    c = parse_cluster("cortex-a78x2")
    v = arm.PROFILES["cortex-a78"].ipc * arm.PROFILES["cortex-a78"].clock_ghz * 1e9
    est = cluster_ms(COUNT, c)
    assert est["ms"] == pytest.approx((0.2e9 + 0.8e9 / 2) / v * 1e3)
    # slower than the whole count over the core count, faster than one core
    assert 1.0e9 / (2 * v) * 1e3 < est["ms"] < 1.0e9 / v * 1e3
    assert cluster_ms(COUNT, c, sync_us=10.0)["ms"] == pytest.approx(est["ms"] + 40 * 10e-3)
    assert cluster_ms(COUNT, c, ipc_scale=2.0)["ms"] == pytest.approx(est["ms"] / 2)


def test_heterogeneous_cluster_runs_serial_work_on_its_fastest_core():
    c = parse_cluster("cortex-a55+x3")
    fast, slow = c.cores[0].speed, c.cores[1].speed
    assert c.cores[0].profile.name == "cortex-x3"
    est = cluster_ms(COUNT, c)
    assert est["ms"] == pytest.approx((0.2e9 / fast + 0.8e9 / (fast + slow)) * 1e3)
    # one thread on the same cluster: the fastest core alone, all of it serial
    one = cluster_ms({"threads": 1, "instructions": 1.0e9, "serial": 1.0e9, "parallel": 0.0}, c)
    assert one["ms"] == pytest.approx(1.0e9 / fast * 1e3)


def test_more_threads_than_cores_is_refused():
    with pytest.raises(DarkcError, match="--threads up to 1"):
        cluster_ms(COUNT, parse_cluster("cortex-a78"))


def test_every_arm_figure_carries_the_error_band():
    band = {"median_abs_pct": 18.4, "n": 10, "text": "median abs error vs published, 10 held-out phone figures",
            "max_abs_pct": 40.2}
    profile = arm.profile_dict(arm.PROFILES["cortex-a78"])
    result = {"model": "m", "dtype": "int8", "resolution": {"raw": "64x64", "packed": "32x32"},
              "devices": {"cortex-a78x4": {
                  "kind": "arm-cpu", "latency_ms": 120.0, "estimated": True, "runtime": "LiteRT", "threads": 4,
                  "error_band": band, "instructions": 2e9, "critical_path": 6e8, "cores": "4 x cortex-a78 @ 2.42 GHz",
                  "ipc_scale": 0.8, "measured_resolution": {"packed": "32x32"}, "pixel_scale": 1.0,
                  "roofline_ms": 10.0, "profile": profile, "by_threads": {}}}}
    detail = rows(result)[0]["detail"]
    assert "est. 120 ms, +/-18 % (median abs error vs published, 10 held-out phone figures; worst 40 %)" in detail
    result["devices"]["cortex-a78x4"]["error_band"] = None
    assert "error band unknown" in rows(result)[0]["detail"]


# ---------------------------------------------------------------- emulated
@pytest.fixture(scope="module")
def conv_net(tmp_path_factory):
    """Two 3x3 convolutions (4 -> 32 -> 12), float32 TFLite at packed 32x32: enough work for a 2-thread pool."""
    pytest.importorskip("litert_torch")
    from darkc.export.tflite import export_tflite

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(4, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 12, 3, padding=1))
    spec = {"arch": "plain", "cfa": "bayer", "in_channels": 4, "out_channels": 3, "scale": 2}
    path = tmp_path_factory.mktemp("mc") / "conv-int8.tflite"
    calib = [np.random.default_rng(0).random((1, 4, 32, 32), dtype=np.float32) for _ in range(2)]
    export_tflite(net.eval(), spec, path, "int8", (32, 32), calib, io="int8")
    return path


def test_per_thread_counts_sum_to_the_one_thread_total(conv_net, arm_setup):
    profile = arm.PROFILES["cortex-a78"]
    one = arm.count_instructions(conv_net, "litert", (1, 32, 32, 4), profile, invokes=2)
    two = arm.count_instructions(conv_net, "litert", (1, 32, 32, 4), profile, invokes=2, threads=2)
    # one thread: the window holds the calling thread alone, all of it serial
    assert one["per_thread"] == [one["instructions"]] == [one["critical_path"]] == [one["serial"]]
    assert one["regions"] == 0 and one["parallel"] == 0
    # two threads: both work, the work is conserved up to the pool's own overhead (wake-ups, bounded spin-waits)
    assert len(two["per_thread"]) >= 2 and min(two["per_thread"][:2]) > 0.05 * two["instructions"]
    assert sum(two["per_thread"]) == pytest.approx(two["instructions"])
    assert two["instructions"] == pytest.approx(one["instructions"], rel=0.10)
    assert two["serial"] + two["parallel"] == pytest.approx(two["instructions"], rel=0.05)
    # the critical path: no shorter than a perfect split, no longer than all the work, and no longer than the
    # emulated schedule's busiest thread per region; each parallel operator is a region
    assert two["instructions"] / 2 <= two["critical_path"] <= two["instructions"]
    assert two["critical_path"] <= two["busiest_path"]
    assert two["regions"] >= 2


def test_bench_threads_give_cluster_estimates_with_the_band(conv_net, arm_setup):
    res = bench(str(conv_net), devices="cortex-a78x2", size="64x64", arm_size="64x64", threads="1,2", parity=False)
    d = res["devices"]["cortex-a78x2"]
    assert d["threads"] == 2 and set(d["by_threads"]) == {"1", "2"} and d["cluster"] == "cortex-a78x2"
    one, two = d["by_threads"]["1"], d["by_threads"]["2"]
    assert two["critical_path"] < one["critical_path"] and two["latency_ms"] < one["latency_ms"]
    assert d["error_band"] == (error_band() or {}).get("band")
    out = format_result(res, "table")
    assert band_text(d["error_band"]) in out and "2 thr est." in out


def test_the_applied_fit_is_the_committed_validation_record():
    """darkc applies (darkc/latency/estimator_validation.json) what the validation report says it fitted and
    measured (benchmarks/results/estimator_validation.json): both are written by one run, never by hand."""
    import json
    from pathlib import Path

    from darkc.latency.validation import VALIDATION_FILE

    record = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "estimator_validation.json"
    if not VALIDATION_FILE.is_file():
        assert not record.is_file(), "a validation report without the fit darkc applies"
        pytest.skip("no validation run committed")
    applied = json.loads(VALIDATION_FILE.read_text())
    report = json.loads(record.read_text())
    assert applied["fit"] == report["fit"] and applied["band"] == report["band"]
    assert report["band"]["median_abs_pct"] == report["summary"]["held_out_fitted"]
    assert report["band"]["n"] == sum(not r["fit_set"] for r in report["rows"]) > 0
    assert all(r["source"] in json.loads((record.parents[1] / "data" / "published_phone_latency.json")
                                         .read_text())["sources"] for r in report["rows"])

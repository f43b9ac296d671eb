"""The latency gate (benchmarks/bench_latency.py --baseline) and the bench export cache: each way a regression
used to slip through, shown to fail now."""
import json
import shutil
from pathlib import Path

import pytest

import darkc
from darkc.errors import DarkcError
from darkc.latency import artifact
from helpers import load_benchmark, tiny_checkpoint



bl = load_benchmark("bench_latency")


def _results(cycles=1000, share=1.0, cpu_ops=0, parity=True, instructions=5000.0, host_ms=(100.0, 20.0)):
    """bench() results of a teacher fp32 / int8 pair in the shape darkc.latency.bench returns them."""
    arm = {"kind": "arm-cpu", "instructions_measured": instructions,
           "parity": {"passed": parity, "psnr_db": 120.0 if parity else 12.0}}
    npu = {"kind": "npu", "cycles": cycles, "npu_share": share, "cpu_ops": cpu_ops}

    def host(ms):
        return {"kind": "host", "latency_ms": ms, "by_threads": {"1": {"min_ms": ms}}}

    return {"teacher fp32": {"devices": {"host": host(host_ms[0]), "cortex-a55": dict(arm)}},
            "teacher int8": {"devices": {"host": host(host_ms[1]), "cortex-a55": dict(arm), "ethos-u55-256": npu}}}


def _gate(**changes):
    baseline = bl.gated(_results(), "teacher fp32")
    return bl.compare(bl.gated(_results(**changes), "teacher fp32"), baseline, 0.02, 0.5)


def test_gated_records_share_cpu_ops_and_parity():
    g = bl.gated(_results(), "teacher fp32")
    assert g["teacher int8 | ethos-u55-256 | npu_share"] == 1.0
    assert g["teacher int8 | ethos-u55-256 | cpu_ops"] == 0
    assert g["teacher fp32 | cortex-a55 | parity"] == g["teacher int8 | cortex-a55 | parity"] == 1.0
    assert g["teacher int8 | host | latency / teacher fp32"] == pytest.approx(0.2)
    assert _gate() == ([], _gate()[1]) and len(_gate()[1]) == len(g)


def test_empty_run_fails_on_every_baseline_key():
    baseline = bl.gated(_results(), "teacher fp32")
    failures, _ = bl.compare({}, baseline, 0.02, 0.5)
    assert len(failures) == len(baseline) and all("not measured by this run" in f for f in failures)


def test_missing_device_fails():
    current = bl.gated(_results(), "teacher fp32")
    del current["teacher int8 | ethos-u55-256 | cycles"]
    failures, _ = bl.compare(current, bl.gated(_results(), "teacher fp32"), 0.02, 0.5)
    assert failures == [f for f in failures if "ethos-u55-256 | cycles" in f] and len(failures) == 1


def test_key_the_baseline_lacks_fails():
    baseline = bl.gated(_results(), "teacher fp32")
    del baseline["teacher fp32 | cortex-a55 | instructions"]
    failures, _ = bl.compare(bl.gated(_results(), "teacher fp32"), baseline, 0.02, 0.5)
    assert len(failures) == 1 and "not in the baseline" in failures[0]


@pytest.mark.parametrize("cycles", [490, 970, 1030])
def test_cycle_drop_or_growth_beyond_tolerance_fails(cycles):
    # -51 %: operators moved off the NPU leave Vela's cycle count; -3 % / +3 %: past the 2 % tolerance either way
    failures, _ = _gate(cycles=cycles)
    assert len(failures) == 1 and "ethos-u55-256 | cycles" in failures[0]


def test_count_change_within_tolerance_passes():
    assert _gate(cycles=1015, instructions=5000.0 * 0.985)[0] == []


def test_instruction_drop_fails():
    failures, _ = _gate(instructions=4000.0)
    assert {f.split(":")[0] for f in failures} == {"teacher fp32 | cortex-a55 | instructions",
                                                   "teacher int8 | cortex-a55 | instructions"}


def test_host_ratio_drop_beyond_tolerance_fails():
    assert len(_gate(host_ms=(100.0, 9.0))[0]) == 1        # 0.09 vs 0.2: -55 %
    assert _gate(host_ms=(100.0, 14.0))[0] == []            # -30 %: host timing noise, within +-50 %


def test_falling_npu_share_fails():
    failures, _ = _gate(share=54 / 56)
    assert len(failures) == 1 and "npu_share" in failures[0]


def test_cpu_fallback_ops_appearing_fails():
    failures, _ = _gate(cpu_ops=2)
    assert len(failures) == 1 and "cpu_ops" in failures[0]


def test_failed_arm_parity_fails():
    failures, _ = _gate(parity=False)
    assert len(failures) == 2 and all("parity check failed" in f for f in failures)


def test_weights_other_than_the_baselines_fail():
    assert bl.check_weights({"teacher": "a" * 64}, {"teacher": "a" * 64}) == []
    assert len(bl.check_weights({"teacher": "b" * 64}, {"teacher": "a" * 64})) == 1
    assert len(bl.check_weights({"student": "b" * 64}, {"teacher": "a" * 64})) == 1


def test_write_baseline_needs_quick(tmp_path, capsys):
    assert bl.main(["--out", str(tmp_path / "r"), "--baseline", str(tmp_path / "b.json"), "--write-baseline"]) == 1
    assert "needs --quick" in capsys.readouterr().err and not (tmp_path / "b.json").exists()


# ---------------------------------------------------------------- the bench export cache
def test_export_cache_key_changes_with_converter_version(monkeypatch):
    from importlib import metadata

    artifact.exporter_fingerprint.cache_clear()
    before = artifact.exporter_fingerprint()
    real = metadata.version
    monkeypatch.setattr(metadata, "version", lambda n: "9.9.9" if n == "litert-torch" else real(n))
    artifact.exporter_fingerprint.cache_clear()
    try:
        assert artifact.exporter_fingerprint() != before
    finally:
        monkeypatch.undo()
        artifact.exporter_fingerprint.cache_clear()
    assert artifact.exporter_fingerprint() == before


def test_export_cache_key_changes_with_exporter_code(tmp_path, monkeypatch):
    src = Path(darkc.__file__).parent
    copy = tmp_path / "darkc"
    shutil.copytree(src, copy, ignore=shutil.ignore_patterns("pretrained", "__pycache__"))
    monkeypatch.setattr(darkc, "__file__", str(copy / "__init__.py"))
    artifact.exporter_fingerprint.cache_clear()
    try:
        same = artifact.exporter_fingerprint()
        onnx_py = copy / "export" / "onnx.py"
        onnx_py.write_text(onnx_py.read_text() + "\n# an exporter change\n")
        artifact.exporter_fingerprint.cache_clear()
        changed = artifact.exporter_fingerprint()
    finally:
        monkeypatch.undo()
        artifact.exporter_fingerprint.cache_clear()
    assert same == artifact.exporter_fingerprint() and changed != same


def test_export_cache_builds_with_the_parity_check(tmp_path, monkeypatch):
    import darkc.export as export_mod

    ckpt = tiny_checkpoint(tmp_path / "m", {"arch": "sid-unet", "cfa": "bayer", "widths": [4, 4, 4, 4, 4]})
    good, _ = artifact.export_cached(ckpt, "onnx", "fp32", "dynamic", "a test")
    assert good.is_file() and artifact.exporter_fingerprint() in str(good)
    assert json.loads(good.with_name("model.json").read_text())["provenance"]["exports"][good.name]["parity"][
        "passed"] is True
    broken = {"passed": False, "psnr_db": 9.0, "max_abs": 0.7, "criterion": "psnr_db > 60", "inputs": []}
    monkeypatch.setattr(export_mod, "check_parity", lambda *a, **k: broken)
    with pytest.raises(DarkcError, match="parity check failed"):
        artifact.export_cached(ckpt, "onnx", "fp32", "256x256", "a test")
    entry = good.parent.parent
    assert sorted(p.name for p in entry.iterdir()) == [good.parent.name]    # nothing cached for the failed one


def _tiled_entry(tiles=240):
    """A tiled Ethos-U entry in the shape darkc.latency.bench returns it."""
    return {"kind": "npu", "cycles": tiles * 5_000_000, "latency_ms": tiles * 10.0,
            "tile": {"core": [48, 48], "tile": [240, 240], "grid": [12, 20], "tiles": tiles, "overlap": 25.47,
                     "halo_px": 96},
            "per_tile": {"cycles": 5_000_000, "sram_used_kib": 1900.0},
            "sram": {"bytes": 2 << 20, "mode": "Shared_Sram", "arena_in_sram": True},
            "untiled": {"latency_ms": 102.2, "sram_used_kib": 18330.0, "fits": False}}


def test_a_model_that_fits_no_tile_is_listed_not_fatal(monkeypatch):
    import importlib

    def fake_bench(path, devices, size, npu_sram=None):
        if devices == ["ethos-u55-256"]:
            raise DarkcError("no tile fits ethos-u55-256's 2048 KiB SRAM: the smallest tile needs 7000 KiB")
        if devices == ["ethos-u85-256"]:
            raise DarkcError("Vela failed on x.tflite")
        return {"devices": {devices[0]: _tiled_entry()}}

    monkeypatch.setattr(importlib.import_module("darkc.latency.bench"), "bench", fake_bench)
    entries, unfit = bl.npu_entries(Path("x.tflite"), ["ethos-u55-256", "ethos-u65-512"], "1920x1080")
    assert list(entries) == ["ethos-u65-512"] and list(unfit) == ["ethos-u55-256"]
    with pytest.raises(DarkcError, match="Vela failed"):       # any other error still stops the report
        bl.npu_entries(Path("x.tflite"), ["ethos-u85-256"], "1920x1080")


def test_npu_section_shows_tile_sram_and_whole_frame_figures():
    res = {"label": "student int8", "devices": {"ethos-u55-256": _tiled_entry()},
           "npu_unfit": {"ethos-u65-512": "no tile fits ethos-u65-512's 512 KiB SRAM"}}
    text = "\n".join(bl.npu_table([res]))
    assert ("| student int8 | ethos-u55-256 | 2048 KiB (Shared_Sram) | 96 | 240x240 (48x48) | 240 | 2547 % | 1900 KiB "
            "| 5,000,000 | 1,200,000,000 | 2400.0 | 102.2 (17.9 MiB, does not fit) |") in text
    assert "| student int8 | ethos-u65-512 | does not fit: no tile fits" in text

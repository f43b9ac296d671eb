"""darkc bench on tiny models: host statistics, graph costs, Vela on Ethos-U, instruction counts under QEMU.

The ARM tests need the emulated setup (`darkc bench --setup-arm`, which .ci/run runs first); outside CI they are
skipped when it is missing, in CI they fail.
"""
import json

import numpy as np
import pytest
import torch
from torch import nn

from darkc.cli import main
from darkc.errors import DarkcError
from darkc.latency import bench, format_result, write_report
from darkc.latency import arm, graph
from darkc.latency.bench import stats
from darkc.models import build_model, save_checkpoint
from darkc.models.complexity import count_macs

SPEC = {"arch": "sid-unet", "cfa": "bayer", "widths": [8, 8, 8, 8, 8]}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A SID U-Net with widths 8 (checkpoint folder) and its fp32 ONNX export (dynamic H/W) beside it."""
    from darkc.export import export

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny") / "m"
    save_checkpoint(build_model(SPEC), SPEC, folder)
    export(str(folder), folder / "model.onnx", target="onnx", precision="fp32", input_size="dynamic")
    return folder


def _plain_int8_tflite(path, width: int, seed: int = 0):
    """conv(4->width) + LeakyReLU + conv(width->12), full-integer int8 TFLite with int8 I/O at packed 32x32."""
    pytest.importorskip("litert_torch")
    from darkc.export.tflite import export_tflite

    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(4, width, 3, padding=1), nn.LeakyReLU(0.2), nn.Conv2d(width, 12, 3, padding=1))
    spec = {"arch": "plain", "cfa": "bayer", "in_channels": 4, "out_channels": 3, "scale": 2}
    rng = np.random.default_rng(seed)
    calib = [rng.random((1, 4, 32, 32), dtype=np.float32) for _ in range(4)]
    export_tflite(net.eval(), spec, path, "int8", (32, 32), calib, io="int8")
    return path


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    d = tmp_path_factory.mktemp("plain")
    return {w: _plain_int8_tflite(d / f"plain{w}-int8.tflite", w) for w in (8, 32)}


# ---------------------------------------------------------------- host
def test_stats_are_order_statistics():
    s = stats([5.0, 1.0, 3.0, 2.0, 4.0])
    assert (s["min_ms"], s["median_ms"], s["mean_ms"], s["runs"]) == (1.0, 3.0, 3.0, 5)
    assert s["p90_ms"] == pytest.approx(4.6)


@pytest.mark.parametrize("runtime", ["torch", "ort"])
def test_host_bench_returns_sane_statistics(tiny, runtime):
    model = tiny / "model.onnx" if runtime == "ort" else tiny
    res = bench(str(model), devices="host", size="128x64", threads="1", runs=4, warmup=1, runtime=runtime)
    host = res["devices"]["host"]
    s = host["by_threads"]["1"]
    assert len(s["times_ms"]) == 4 and all(t > 0 for t in s["times_ms"])
    assert 0 < s["min_ms"] <= s["median_ms"] <= s["p90_ms"] <= max(s["times_ms"])
    assert host["latency_ms"] == s["median_ms"] and host["estimated"] is False
    assert s["peak_rss_mib"] >= s["base_rss_mib"] > 0
    assert res["resolution"]["raw"] == "128x64" and res["resolution"]["packed"] == "64x32"
    assert res["dtype"] == "fp32" and host["threads"] == 1
    assert ("ONNX Runtime" if runtime == "ort" else "PyTorch") in host["runtime"]
    model_macs = count_macs(build_model(SPEC), (4, 32, 64))
    assert res["graph"]["macs"] == model_macs and res["graph"]["bytes"] > res["graph"]["weight_bytes"] > 0


def test_graph_cost_agrees_across_formats(tiny):
    macs = count_macs(build_model(SPEC), (4, 48, 80))
    onnx_cost = graph.onnx_cost(tiny / "model.onnx", (1, 4, 48, 80))
    torch_cost = graph.torch_cost(build_model(SPEC), (1, 4, 48, 80))
    assert onnx_cost["macs"] == torch_cost["macs"] == macs
    assert onnx_cost["dtype"] == "fp32"
    # activations dominate bytes moved: the first conv reads 4 and writes 8 channels of 48x80 float32
    first = onnx_cost["layers"][0]
    assert first["bytes"] == 4 * 48 * 80 * 4 + 8 * 48 * 80 * 4 + first["weight_bytes"]


def test_fixed_tflite_costed_at_another_size_scales_its_activations(plain):
    """A file fixed at packed 32x32 asked at 64x96 (the ARM emulation's small export, costed at the frame size):
    LiteRT keeps the file's shapes, so MACs and activation bytes are scaled by the pixels (x6), weights not."""
    own = graph.tflite_cost(plain[8], (1, 32, 32, 4))
    big = graph.tflite_cost(plain[8], (1, 64, 96, 4))
    assert big["macs"] == 6 * own["macs"] > 0 and big["weight_bytes"] == own["weight_bytes"] > 0
    assert big["bytes"] - big["weight_bytes"] == 6 * (own["bytes"] - own["weight_bytes"])
    with pytest.raises(DarkcError, match="re-export it at that size"):
        graph.tflite_cost(plain[8], (1, 32, 32, 3))


def test_bad_input_errors(tiny, tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DarkcError, match="is not a model"):
        bench(str(tmp_path / "notes.txt"))
    with pytest.raises(DarkcError, match="--device gpu is unknown"):
        bench(str(tiny), devices="host,gpu")
    with pytest.raises(DarkcError, match="--runtime litert cannot run"):
        bench(str(tiny / "model.onnx"), runtime="litert")
    with pytest.raises(DarkcError, match="float PyTorch checkpoint; Ethos-U runs full-integer"):
        bench(str(tiny), devices="ethos-u55-256")


def test_float_checkpoint_for_an_npu_fails_before_any_device_runs(tiny, monkeypatch):
    """The NPU check comes first: listed after the host and an ARM core, it once failed only after minutes of
    host timing and emulation."""
    import sys

    bench_mod = sys.modules[bench.__module__]      # darkc.latency.bench (the package's `bench` is the function)

    def ran(*args, **kwargs):
        raise AssertionError("a device was benched before the NPU check")

    monkeypatch.setattr(bench_mod, "measure_host", ran)
    monkeypatch.setattr(bench_mod, "measure_arm", ran)
    with pytest.raises(DarkcError, match="float PyTorch checkpoint; Ethos-U runs full-integer"):
        bench(str(tiny), devices="host,cortex-a78,ethos-u55-256")
    with pytest.raises(DarkcError, match="fp32 model; Ethos-U runs full-integer INT8"):
        bench(str(tiny / "model.onnx"), devices="ethos-u65-512", size="128x128")


def test_missing_arm_setup_says_what_to_run(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("DARKC_ARM_CACHE", str(tmp_path / "empty"))
    with pytest.raises(DarkcError, match="run `darkc bench --setup-arm`"):
        bench(str(tiny / "model.onnx"), devices="cortex-a78", size="128x128")


# ---------------------------------------------------------------- Vela
def test_vela_reports_cycles_and_all_ops_on_npu_for_an_integer_model(plain):
    import configparser
    from importlib.resources import files

    res = bench(str(plain[8]), devices="ethos-u55-256,ethos-u85-256", size="64x64")
    # the system configurations' clocks, read from Vela's own vela.ini (not from darkc)
    ini = configparser.ConfigParser()
    ini.read(files("ethosu") / "config_files" / "Arm" / "vela.ini")
    clocks = {"ethos-u55-256": float(ini["System_Config.Ethos_U55_High_End_Embedded"]["core_clock"]),
              "ethos-u85-256": float(ini["System_Config.Ethos_U85_SYS_DRAM_High"]["core_clock"])}
    assert clocks == {"ethos-u55-256": 500e6, "ethos-u85-256": 1e9}
    macs = 32 * 32 * 9 * (4 * 8 + 8 * 12)                  # the two 3x3 convolutions at packed 32x32
    for name, d in res["devices"].items():
        assert d["clock_hz"] == clocks[name] and d["estimated"] is True and d["macs"] == macs
        assert d["latency_ms"] == pytest.approx(d["cycles"] / clocks[name] * 1e3, rel=1e-3)
        assert d["cycles"] >= d["npu_cycles"] >= macs / 256   # a -256 configuration does 256 MACs per cycle at best
        assert d["npu_share"] == 1.0 and d["cpu_ops"] == 0 and d["fallbacks"] == []
        assert d["sram_bytes"] > 0
    u55, u85 = res["devices"]["ethos-u55-256"], res["devices"]["ethos-u85-256"]
    # As in the README's table (teacher int8: 466 M cycles on the U55-256, 1595 M on the U85-256): the U85 system
    # keeps arena and weights in DRAM (500-cycle read latency in vela.ini), the U55 one keeps the arena in SRAM, so
    # the U85-256 needs more cycles in all though its NPU is busy for fewer. In ms its 2x clock still wins on this
    # 32x32 net (Vela: 19 k cycles = 39 us vs 23 k = 23 us); on the shipped 960x544 models it does not.
    assert u85["cycles"] > u55["cycles"] and u85["npu_cycles"] < u55["npu_cycles"]
    assert u85["dram_bytes"] > 0 == u55["dram_bytes"]
    # the frame fits each configuration's SRAM (U55: 2 MiB holding the arena; U85: a 512 KiB cache): one tile
    assert (u55["sram"]["bytes"], u55["sram"]["mode"], u85["sram"]["bytes"]) == (2 << 20, "Shared_Sram", 512 << 10)
    for d in (u55, u85):
        assert d["tile"]["tiles"] == 1 and d["tile"]["overlap"] == 0.0 and d["untiled"]["fits"]
        assert 0 < d["per_tile"]["sram_used_kib"] * 1024 <= d["sram"]["bytes"]
    assert "whole frame as 1 tile" in format_result(res, "table") and "2048 KiB (Shared_Sram" in format_result(res, "md")


def test_npu_sram_too_small_for_a_file_without_checkpoint_is_one_line(plain, capsys):
    with pytest.raises(DarkcError, match=r"no tile fits ethos-u55-256's 4 KiB SRAM: the whole frame \(packed 32x32; "
                                         r"no checkpoint beside the file to export tiles\) needs \d+ KiB"):
        bench(str(plain[8]), devices="ethos-u55-256", size="64x64", npu_sram=4)
    assert main(["bench", "--model", str(plain[8]), "--device", "ethos-u55-256", "--size", "64x64", "--npu-sram", "4",
                 "-o", str(plain[8].parent / "bench-sram")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: no tile fits")


def test_vela_rejects_float_and_lists_fallbacks(tmp_path):
    pytest.importorskip("litert_torch")
    from darkc.export import export

    torch.manual_seed(0)
    save_checkpoint(build_model(SPEC), SPEC, tmp_path / "m")
    export(str(tmp_path / "m"), tmp_path / "m" / "model-int8.tflite", target="tflite", precision="int8",
           input_size="64x64", samples=2, check=False)
    d = bench(str(tmp_path / "m" / "model-int8.tflite"), devices="ethos-u55-128")["devices"]["ethos-u55-128"]
    # float I/O conversions and the pixel-shuffle head stay on the CPU: listed with Vela's reason
    ops = {f["op"] for f in d["fallbacks"]}
    assert "DEPTH_TO_SPACE" in ops and d["npu_share"] < 1.0 and d["cpu_ops"] == len(d["fallbacks"])
    assert all(f["reason"] for f in d["fallbacks"])


# ---------------------------------------------------------------- ARM (emulated)
def test_instruction_count_is_identical_across_runs_and_grows_with_width(plain, arm_setup):
    profile = arm.PROFILES["cortex-a78"]
    first = arm.count_instructions(plain[8], "litert", (1, 32, 32, 4), profile, invokes=2, repeats=2)
    again = arm.count_instructions(plain[8], "litert", (1, 32, 32, 4), profile, invokes=2, repeats=1)
    assert first["per_repeat"][0] == first["per_repeat"][1] == again["instructions"]
    assert first["spread"] == 0.0 and first["instructions"] > 1e4
    wide = arm.count_instructions(plain[32], "litert", (1, 32, 32, 4), profile)
    assert wide["instructions"] > 1.5 * first["instructions"]


def test_arm_bench_entry_is_labelled_scaled_and_matches_host_output(plain, arm_setup):
    res = bench(str(plain[8]), devices="cortex-a55", size="128x128", arm_size="64x64")
    d = res["devices"]["cortex-a55"]
    assert d["estimated"] is True and d["threads"] == 1 and "aarch64" in d["runtime"]
    assert d["measured_resolution"]["packed"] == "32x32" and res["resolution"]["packed"] == "64x64"
    # the file is fixed at 32x32 packed: counted there, scaled by pixels (x4) to the asked size
    assert d["pixel_scale"] == 4.0 and d["instructions"] == 4 * d["instructions_measured"]
    p = d["profile"]
    # one thread on one core: all its instructions / (assumed IPC x the validation's fitted correction x clock),
    # plus the fitted DRAM term
    assert d["latency_ms"] == pytest.approx(d["instructions"] / (p["ipc"] * d["ipc_scale"] * p["clock_ghz"] * 1e9)
                                            * 1e3 + d["by_threads"]["1"]["dram_ms"])
    assert d["critical_path"] == d["instructions"] and d["cluster"] == "cortex-a55x1"
    assert 0 < d["roofline_ms"] and d["parity"]["passed"]


# ---------------------------------------------------------------- CLI and reports
def test_cli_json_has_an_entry_per_device(tiny, capsys, tmp_path):
    rc = main(["bench", "--model", str(tiny / "model.onnx"), "--size", "64x64", "--runs", "2", "--warmup", "0",
               "--format", "json", "-o", str(tmp_path / "b")])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out["devices"]) == ["host"] and out["devices"]["host"]["latency_ms"] > 0
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["bench_report.json", "bench_report.md",
                                                                   "bench_report.png"]
    assert main(["bench", "--model", str(tiny), "--device", "ethos-u55-256", "-o", str(tmp_path / "e")]) == 1
    assert "error: " in capsys.readouterr().err


def test_report_files(tiny, tmp_path):
    res = bench(str(tiny), devices="host", size="64x64", runs=2, warmup=0, runtime="torch")
    paths = write_report([res], tmp_path / "rep" / "bench", title="tiny")
    assert open(paths["png"], "rb").read(4) == b"\x89PNG"
    assert json.loads(open(paths["json"]).read())["models"][0]["devices"]["host"]["latency_ms"] > 0
    md = open(paths["md"]).read()
    assert "| host |" in md and "measured" in md and "64x64" in md
    assert "latency ms" in format_result(res, "table")


def _bench_latency_module():
    from helpers import load_benchmark

    return load_benchmark("bench_latency")


def test_baseline_gate_flags_growth_beyond_the_threshold():
    mod = _bench_latency_module()
    base = {"t | cortex-a78 | instructions": 1000.0, "t int8 | host | latency / t": 0.2, "t | u55 | cycles": 50.0}
    now = {"t | cortex-a78 | instructions": 1030.0, "t int8 | host | latency / t": 0.25, "t | u55 | cycles": 50.0,
           "new | cortex-a55 | instructions": 7.0}
    failures, notes = mod.compare(now, base, max_count=0.02, max_ratio=0.5)
    # +3 % instructions is past the 2 % limit; a key the baseline lacks fails too (the gate covers what CI runs)
    assert len(failures) == 2 and failures[0].startswith("t | cortex-a78 | instructions")
    assert "new | cortex-a55 | instructions" in failures[1] and "not in the baseline" in failures[1]
    assert len(notes) == 2 and all("limit" in n for n in notes)


def test_host_ratios_are_gated_per_instruction_set_level():
    """INT8/FP32 host speed depends on the CPU's INT8 instructions (0.80 on AVX2, 0.22 with VNNI): a host ratio is
    compared only with the baseline of the same level; counts are compared on every host."""
    mod = _bench_latency_module()
    now = {"t | cortex-a78 | instructions": 1000.0, "t int8 | host | latency / t": 0.22}
    base = mod.baseline_file(now, "x86_64 avx512_vnni", None, {"t": "abc"}, size="64x64")
    assert base["gated"] == {"t | cortex-a78 | instructions": 1000.0}
    assert base["host_ratios"] == {"x86_64 avx512_vnni": {"t int8 | host | latency / t": 0.22}}
    slower = {**now, "t int8 | host | latency / t": 0.80}
    failures, _ = mod.gate(slower, base, "x86_64 avx512_vnni", max_count=0.02, max_ratio=0.5)
    assert len(failures) == 1 and "host" in failures[0]
    failures, notes = mod.gate(slower, base, "x86_64 avx2", max_count=0.02, max_ratio=0.5)
    assert not failures and any("NOT GATED" in n and "x86_64 avx2" in n for n in notes)
    grown = {**slower, "t | cortex-a78 | instructions": 1100.0}
    assert len(mod.gate(grown, base, "x86_64 avx2", max_count=0.02, max_ratio=0.5)[0]) == 1
    # another level's ratios survive a rewrite for the same weights and size, not for new weights
    both = mod.baseline_file(slower, "x86_64 avx2", base, {"t": "abc"}, size="64x64")
    assert set(both["host_ratios"]) == {"x86_64 avx2", "x86_64 avx512_vnni"}
    fresh = mod.baseline_file(slower, "x86_64 avx2", base, {"t": "new"}, size="64x64")
    assert set(fresh["host_ratios"]) == {"x86_64 avx2"}


def test_host_isa_names_the_int8_level():
    import platform

    from darkc.latency.bench import host_isa

    isa = host_isa()
    assert isa.split()[0] == platform.machine()

"""``darkc bench``: one model on the host, on emulated phone-class ARM cores and on emulated Ethos-U NPUs.

Each device entry says how its latency was obtained:

- ``host``: measured, real inference in a fresh process per thread count (ONNX Runtime CPU, LiteRT with XNNPACK,
  or PyTorch), ``warmup`` untimed runs then ``runs`` timed ones; min/median/p90/mean, peak resident memory.
- ``cortex-*``: estimated from guest instructions counted under QEMU (:mod:`darkc.latency.arm`) at a modest
  size (``arm_size``) with each of ``threads``, scaled by pixels to ``size``; the critical path over the threads
  becomes time on the core cluster (:mod:`darkc.latency.cluster`: ``cortex-a78`` alone is one such core per
  thread, ``cortex-a78x4`` / ``cortex-x3+a715x2`` a named cluster) with the IPC correction the validation
  fitted, and carries the validation's error band (:mod:`darkc.latency.validation`); the graph's roofline at
  ``size`` is reported beside it.
- ``ethos-u*``: Vela's performance estimate (:mod:`darkc.latency.npu`), the frame tiled so that each tile
  fits the configuration's SRAM (:mod:`darkc.latency.tiling`).

Every entry carries ``resolution`` (raw and packed), ``dtype``, ``runtime`` and ``threads``.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from darkc.errors import DarkcError
from darkc.latency import arm as arm_mod
from darkc.latency import npu as npu_mod
from darkc.latency.cluster import cluster_ms, is_cluster_name, parse_cluster
from darkc.latency.validation import error_band
from darkc.latency.artifact import TARGET_OF, Subject, export_cached, host_file, load_subject, precision_of, raw_size
from darkc.sizes import padded_hw, parse_resolution

HOST = "host"
DEFAULT_SIZE = (1920, 1080)
#: Raw (W, H) the ARM emulation runs at by default (packed 64x64 Bayer): ~1e9 guest instructions for a
#: full-width SID U-Net in fp32, ~20 s of emulation; latency is scaled by pixels from there.
DEFAULT_ARM_SIZE = (128, 128)
#: Largest packed pixel count emulated as is when a fixed-size file cannot be re-exported smaller.
MAX_ARM_PIXELS = 256 * 256
RUNTIME_NAMES = {"ort": "ONNX Runtime (CPUExecutionProvider)", "litert": "LiteRT (XNNPACK delegate)",
                 "torch": "PyTorch eager (CPU)"}


def devices_list() -> list[str]:
    return [HOST, *arm_mod.PROFILES, *npu_mod.ACCELERATORS]


def parse_devices(devices) -> list[str]:
    """``"host,cortex-a78"`` or a list -> validated names, in order, without repeats."""
    names = [d.strip() for d in (devices.split(",") if isinstance(devices, str) else devices) if d and d.strip()]
    if not names:
        raise DarkcError(f"--device is empty; pass a comma-separated list of {', '.join(devices_list())}")
    bad = [d for d in names if d not in devices_list() and not is_cluster_name(d)]
    if bad:
        raise DarkcError(f"--device {','.join(bad)} is unknown; use any of {', '.join(devices_list())}, or an ARM "
                         f"cluster such as cortex-a78x4 or cortex-x3+a715x2")
    return list(dict.fromkeys(names))


def parse_threads(threads) -> list[int]:
    values = [int(t) for t in (threads.split(",") if isinstance(threads, str) else threads)]
    if not values or any(t < 1 for t in values):
        raise DarkcError(f"--threads {threads!r}: pass positive integers, e.g. 1,2,4")
    return values


def _resolution(subject: Subject, hw: tuple[int, int]) -> dict:
    return {"raw": f"{hw[1] * subject.scale}x{hw[0] * subject.scale}", "packed": f"{hw[1]}x{hw[0]}",
            "input": list(subject.shape(hw)), "note": "raw WxH the packed input covers (padded to 16 packed px)"}


def _cost(subject: Subject, path: Path, hw: tuple[int, int]) -> dict:
    from darkc.latency import graph

    if path.is_dir():
        from darkc.models import load_checkpoint

        model, _ = load_checkpoint(path)
        return graph.torch_cost(model, (1, subject.in_channels, *hw))
    if path.suffix.lower() == ".onnx":
        return graph.onnx_cost(path, subject_shape_for(path, subject, hw))
    return graph.tflite_cost(path, subject_shape_for(path, subject, hw))


def subject_shape_for(path: Path, subject: Subject, hw: tuple[int, int]) -> tuple[int, ...]:
    """Input shape of ``path`` at packed ``hw``: NHWC for TFLite files, NCHW otherwise (darkc's exports)."""
    h, w = hw
    if path.suffix.lower() == ".tflite":
        return (1, h, w, subject.in_channels)
    return (1, subject.in_channels, h, w)


# ---------------------------------------------------------------- host
def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


#: INT8-relevant instruction-set levels, fastest first: ONNX Runtime's MLAS and XNNPACK pick their INT8 kernels by
#: these, so INT8 vs FP32 host speed differs by level (teacher INT8/FP32, LiteRT, 1 thread: 0.80 on an AVX2 EPYC,
#: 0.22 on an AVX-512 VNNI Xeon).
_ISA_LEVELS = {"x86_64": ["amx_int8", "avx512_vnni", "avx_vnni", "avx512bw", "avx2", "sse4_1"],
               "aarch64": ["sme", "i8mm", "asimddp", "asimd"]}


def host_isa() -> str:
    """The host's machine and its best INT8-relevant instruction-set level, e.g. ``x86_64 avx512_vnni``: host
    latency ratios are comparable only between hosts of the same level."""
    machine = platform.machine()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return machine
    flags = set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            flags.update(line.split(":", 1)[1].split())
    best = next((f for f in _ISA_LEVELS.get(machine, []) if f in flags), None)
    return f"{machine} {best}" if best else machine


def _worker_env(threads: int) -> dict:
    """The worker's environment: darkc's own root and the folders architecture plugins were imported from on its
    PYTHONPATH (its torch runtime loads the checkpoint, whose ``model.json`` names the plugin), thread counts."""
    from darkc.models import plugin_paths

    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    paths = [root, *(p for p in plugin_paths() if p != root)]
    env["PYTHONPATH"] = os.pathsep.join(paths + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS="1",
               TF_CPP_MIN_LOG_LEVEL="3")
    return env


def _run_worker(args: list[str], threads: int, what: str, timeout: float = 7200.0) -> dict:
    cmd = [sys.executable, str(arm_mod.WORKER), *args]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, env=_worker_env(threads), timeout=timeout)
    except subprocess.TimeoutExpired:
        raise DarkcError(f"{what} ran past {timeout:.0f} s; use a smaller --size or fewer --runs") from None
    for line in r.stdout.splitlines():
        if line.startswith("DARKC-BENCH "):
            return json.loads(line[len("DARKC-BENCH "):])
    lines = [ln for ln in (r.stderr + r.stdout).strip().splitlines() if ln.strip()]
    raise DarkcError(f"{what} failed (exit {r.returncode}): {lines[-1] if lines else 'no output'}")


def stats(times_ms: list[float]) -> dict:
    """min / median / p90 / mean / std of per-run wall times (ms)."""
    t = np.asarray(times_ms, dtype=np.float64)
    return {"min_ms": float(t.min()), "median_ms": float(np.median(t)), "p90_ms": float(np.percentile(t, 90)),
            "mean_ms": float(t.mean()), "std_ms": float(t.std()), "runs": int(t.size)}


def measure_host(path: Path, runtime: str, shape, threads: list[int], runs: int, warmup: int) -> dict:
    """Real inference on this machine, one fresh process per thread count (pinned to that many CPUs)."""
    if runs < 1 or warmup < 0:
        raise DarkcError(f"--runs {runs} / --warmup {warmup}: need at least 1 run and no negative warm-up")
    by_threads = {}
    for t in threads:
        res = _run_worker(["--runtime", runtime, "--model", str(path), "--shape", ",".join(map(str, shape)),
                           "--threads", str(t), "--mode", "time", "--warmup", str(warmup), "--runs", str(runs),
                           "--pin"], t, f"host run of {path.name} ({runtime}, {t} threads)")
        by_threads[str(t)] = {**stats(res["times_ms"]), "times_ms": res["times_ms"], "warmup": warmup,
                              "peak_rss_mib": res["peak_rss_mib"], "base_rss_mib": res["base_rss_mib"],
                              "pinned_cpus": res["pinned_cpus"], "load_s": res["load_s"],
                              "runtime_version": res.get("version")}
    return by_threads


# ---------------------------------------------------------------- ARM
def _litert_exporter_available() -> bool:
    try:
        import litert_torch  # noqa: F401
        import ai_edge_litert  # noqa: F401
    except ImportError:
        return False
    return True


def _layers_rule(subject: Subject, key: str) -> str:
    """The ``--float-layers`` (``key="float_layers"``) or ``--int16-layers`` (``"int16_layers"``) rule an INT8 file
    was exported with (files made before the options: ``none``)."""
    calib = subject.record.get("calibration") or {}
    return calib.get(key, {}).get("rule", "none")


def arm_file(subject: Subject, arm_hw: tuple[int, int], dtype: str) -> tuple[Path, str, tuple[int, int], str | None]:
    """``(file, runtime, packed hw, note)`` the emulated ARM cores run."""
    if subject.kind in ("onnx", "tflite"):
        if subject.fixed is None or subject.fixed == arm_hw:
            return subject.path, subject.runtime, arm_hw, None
        if subject.checkpoint is not None:
            io = "int8" if subject.record.get("input", {}).get("dtype") == "int8" else "float"
            path, note = export_cached(subject.checkpoint, subject.kind, precision_of(subject, dtype),
                                       raw_size(subject, arm_hw), "ARM emulation", io=io,
                                       float_layers=_layers_rule(subject, "float_layers"),
                                       int16_layers=_layers_rule(subject, "int16_layers"))
            return path, subject.runtime, arm_hw, note
        if subject.fixed[0] * subject.fixed[1] <= MAX_ARM_PIXELS:
            return subject.path, subject.runtime, subject.fixed, "emulated at the file's own fixed size"
        raise DarkcError(f"{subject.path} is fixed at packed {subject.fixed[1]}x{subject.fixed[0]}, too large to "
                         f"emulate; pass a dynamic-size export, or keep its model.json and model.safetensors beside "
                         f"it so darkc can re-export it at --arm-size")
    runtime = subject.runtime if subject.runtime in TARGET_OF else ("litert" if _litert_exporter_available() else "ort")
    size = "dynamic" if runtime == "ort" else raw_size(subject, arm_hw)
    path, note = export_cached(subject.checkpoint, TARGET_OF[runtime], "fp32", size, "ARM emulation")
    return path, runtime, arm_hw, note


def _parity(arm_out: Path, path: Path, runtime: str, shape) -> dict:
    """aarch64 output vs the same file, same input, run by the x86-64 (host) build of the runtime."""
    with tempfile.TemporaryDirectory(prefix="darkc-parity-") as tmp:
        host_out = Path(tmp) / "host.npy"
        _run_worker(["--runtime", runtime, "--model", str(path), "--shape", ",".join(map(str, shape)), "--threads",
                     "1", "--mode", "count", "--warmup", "0", "--invokes", "1", "--save", str(host_out)], 1,
                    f"host parity run of {path.name}")
        a, b = np.load(arm_out), np.load(host_out)
    if a.shape != b.shape:
        return {"passed": False, "error": f"shapes differ: aarch64 {a.shape}, host {b.shape}"}
    from darkc.metrics import psnr_db

    diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
    psnr = psnr_db(float((diff ** 2).mean()))
    return {"max_abs": float(diff.max()), "psnr_db": psnr, "passed": bool(psnr >= 40.0),
            "criterion": "PSNR >= 40 dB between the aarch64 and the x86-64 output (sRGB in [0, 1])",
            "host_machine": platform.machine()}


def arm_threads(device: str, threads: list[int]) -> tuple[list[int], int]:
    """``(thread counts to count at, the one the entry's headline figure is for)`` on ARM ``device``.

    A bare core profile runs each thread count on that many such cores (headline: the first count, as on the
    host); a named cluster takes the counts up to its core count (headline: the largest)."""
    if device in arm_mod.PROFILES:
        return threads, threads[0]
    size = parse_cluster(device).size
    counts = [t for t in threads if t <= size]
    if not counts:
        raise DarkcError(f"--threads {','.join(map(str, threads))} exceeds {device}'s {size} cores; pass --threads "
                         f"up to {size} (e.g. --threads {size})")
    return counts, max(counts)


def measure_arm(subject: Subject, device: str, target_hw, arm_hw, cost: dict, *, threads: list[int] = (1,),
                repeats: int, invokes: int, parity: bool) -> dict:
    path, runtime, hw, note = arm_file(subject, arm_hw, cost["dtype"])
    shape = subject_shape_for(path, subject, hw)
    counts, headline = arm_threads(device, list(threads))
    scale = (target_hw[0] * target_hw[1]) / (hw[0] * hw[1])
    band = error_band()
    fit = band["fit"] if band else {}
    ipc_scale = fit.get("ipc_scale", {}).get("int8" if cost["dtype"] == "int8" else "fp32", 1.0)
    by_threads, check = {}, None
    with tempfile.TemporaryDirectory(prefix="darkc-arm-out-") as tmp:
        for t in counts:
            cluster = parse_cluster(f"{device}x{t}" if device in arm_mod.PROFILES else device)
            out = Path(tmp) / f"arm{t}.npy"
            counted = arm_mod.count_instructions(path, runtime, shape, cluster.cores[0].profile, invokes=invokes,
                                                 repeats=repeats, threads=t, save=out if parity else None)
            if parity and check is None:
                check = _parity(out, path, runtime, shape)
            at_size = {**counted, **{k: counted[k] * scale for k in ("instructions", "critical_path", "serial",
                                                                      "parallel", "busiest_path")}}
            est = cluster_ms(at_size, cluster, ipc_scale=ipc_scale, sync_us=fit.get("sync_us", 0.0),
                             dram_bytes=cost["bytes"], dram_scale=fit.get("dram_scale", 0.0))
            by_threads[str(t)] = {
                "latency_ms": est["ms"], "cluster": cluster.name, "cores": cluster.describe(),
                "instructions": at_size["instructions"], "critical_path": at_size["critical_path"],
                "serial": at_size["serial"], "parallel": at_size["parallel"], "busiest_path": at_size["busiest_path"],
                "per_thread": [v * scale for v in counted["per_thread"]], "regions": counted["regions"],
                "serial_ms": est["serial_ms"], "parallel_ms": est["parallel_ms"], "sync_ms": est["sync_ms"],
                "dram_ms": est["dram_ms"],
                "count": counted}
    main = by_threads[str(headline)]
    profile = parse_cluster(main["cluster"]).cores[0].profile
    roof = arm_mod.roofline(cost, profile)
    calibrated = f" x fitted {ipc_scale:.2f}" if band else ""
    return {
        "kind": "arm-cpu", "latency_ms": main["latency_ms"], "estimated": True,
        "method": f"estimated: guest instructions of every thread counted under QEMU at packed {hw[1]}x{hw[0]}, "
                  f"scaled by pixels (x{scale:.1f}); serial work on the fastest core + each thread-pool region's "
                  f"work over the cores in use, at IPC{calibrated} x clock, on {main['cores']}",
        "error_band": band["band"] if band else None,
        "instructions": main["instructions"], "instructions_measured": main["count"]["instructions"],
        "critical_path": main["critical_path"], "cluster": main["cluster"], "cores": main["cores"],
        "by_threads": by_threads, "ipc_scale": ipc_scale,
        "measured_resolution": _resolution(subject, hw), "pixel_scale": scale,
        "roofline_ms": roof["ms"], "roofline": roof, "estimate_over_roofline": main["latency_ms"] / roof["ms"]
        if roof["ms"] else None,
        "runtime": RUNTIME_NAMES[runtime] + " aarch64", "runtime_key": runtime, "threads": headline,
        "file": str(path), "file_note": note, "count": main["count"], "parity": check,
        "profile": arm_mod.profile_dict(profile),
    }


# ---------------------------------------------------------------- NPU
def _npu_export_hint(subject: Subject, target_hw) -> str:
    source = subject.ref if subject.kind in ("checkpoint", "pretrained") else (subject.checkpoint or "CHECKPOINT")
    return (f"`darkc export --model {source} --target tflite --precision int8 --input-size "
            f"{raw_size(subject, target_hw)} -o DIR`")


def check_npu_subject(subject: Subject, target_hw, dtype: str) -> None:
    """A one-line DarkcError unless ``subject`` is a full-integer model an Ethos-U can run (checked before any
    device is benched, so a float checkpoint fails at once, not after the host and ARM runs)."""
    how = _npu_export_hint(subject, target_hw)
    if subject.kind in ("checkpoint", "pretrained"):
        raise DarkcError(f"{subject.ref} is a float PyTorch checkpoint; Ethos-U runs full-integer models: {how}, "
                         f"then bench DIR/model.tflite")
    precision = precision_of(subject, dtype)
    if precision != "int8":
        raise DarkcError(f"{subject.path} is a {precision} model; Ethos-U runs full-integer INT8 TFLite: {how}")


def npu_file(subject: Subject, target_hw, dtype: str) -> tuple[Path, tuple[int, int], str | None]:
    check_npu_subject(subject, target_hw, dtype)
    how = _npu_export_hint(subject, target_hw)
    kept_float = _layers_rule(subject, "float_layers")
    mixed = kept_float != "none"
    if mixed and subject.checkpoint is None:
        raise DarkcError(f"{subject.path} keeps layers in float (--float-layers {kept_float}), which Ethos-U cannot "
                         f"run; export it with --float-layers none (or --io int8): {how}")
    if subject.kind == "tflite" and subject.fixed == target_hw and not mixed:
        return subject.path, target_hw, None
    if subject.checkpoint is not None:
        path, note = export_cached(subject.checkpoint, "tflite", "int8", raw_size(subject, target_hw), "Vela",
                                   io="int8", int16_layers=_layers_rule(subject, "int16_layers"))
        if mixed:
            note = (f"{subject.path} keeps its full-resolution layers in float, which Ethos-U cannot run: Vela "
                    f"compiles a full-integer export instead, {note}")
        return path, target_hw, note
    if subject.kind == "tflite" and subject.fixed is not None:
        return subject.path, subject.fixed, "compiled at the file's own fixed size (no checkpoint beside it)"
    raise DarkcError(f"{subject.path}: Vela needs a fixed-size INT8 .tflite and there is no checkpoint beside it to "
                     f"export one from; {how}")


def _npu_export_at(subject: Subject, target_hw, dtype: str):
    """packed ``(h, w)`` -> a full-integer TFLite file of ``subject`` at that size (exported and cached when it
    has a checkpoint, with the frame file's I/O type; else only the file's own fixed size, as :func:`npu_file`
    allows)."""
    notes = []
    io = "int8" if subject.record.get("input", {}).get("dtype") == "int8" else "float"

    def export_at(hw):
        if tuple(hw) == tuple(target_hw):
            path, _, note = npu_file(subject, target_hw, dtype)
        else:
            path, note = export_cached(subject.checkpoint, "tflite", "int8", raw_size(subject, hw), "Vela tiles",
                                       io=io, float_layers="none",
                                       int16_layers=_layers_rule(subject, "int16_layers"))
        if note:
            notes.append(note)
        return path
    return export_at, notes


def _halo_of(subject: Subject):
    def halo() -> dict:
        from darkc.latency.tiling import receptive_halo
        from darkc.models import load_checkpoint

        model, _ = load_checkpoint(subject.checkpoint)
        return receptive_halo(model, subject.in_channels, int(getattr(model, "size_multiple", 16)))
    return halo


def measure_npu(subject: Subject, device: str, target_hw, dtype: str, sram_kib: float | None = None) -> dict:
    """Vela's estimate of the whole frame on ``device``, tiled so that each tile fits the configuration's SRAM
    (:func:`darkc.latency.tiling.search`); the untiled estimate is kept under ``untiled``, labelled."""
    from darkc.latency.tiling import search

    path, hw, note = npu_file(subject, target_hw, dtype)
    export_at, notes = _npu_export_at(subject, hw, dtype)
    found = search(device, hw, export_at, _halo_of(subject) if subject.checkpoint is not None else None,
                   sram_bytes=None if sram_kib is None else int(sram_kib * 1024))
    c, un = found["chosen"], found["untiled"]
    est = c["per_tile"]
    sram = found["sram_bytes"]
    where = "tensor arena in SRAM" if found["profile"].arena_in_sram else "SRAM as a cache, tensor arena in DRAM"
    method = (f"Vela performance estimate (compiled, not run) of the whole frame as tiles x cycles of one tile: "
              f"the frame in one piece when Vela's SRAM use fits {sram / 1024:.0f} KiB ({where}), else square tiles "
              f"with the network's receptive-field halo on every side, the fastest that fits; CPU-fallback "
              f"operators not included in the time")
    untiled = {"cycles": un["cycles"], "latency_ms": un["latency_ms"], "sram_used_kib": un["sram_used_kib"],
               "fits": un["fits"], "caveat": un["per_tile"]["caveat"],
               "label": "untiled: the whole frame as one tensor arena" + ("" if un["fits"] else
                        f", needs {un['sram_used_kib'] / 1024:.1f} MiB SRAM (does not fit)")}
    candidates = [{k: v for k, v in cand.items() if k != "per_tile"} | {"per_tile_cycles": cand["per_tile"]["cycles"]}
                  for cand in found["candidates"]]
    return {"kind": "npu", "estimated": True, **est,
            "cycles": c["cycles"], "latency_ms": c["latency_ms"], "caveat": None,
            # traffic and MACs of the whole frame: every tile reads its input, weights and writes its output
            **{k: c["tiles"] * est[k] for k in ("sram_bytes", "dram_bytes", "flash_bytes", "macs")},
            "tile": {k: c[k] for k in ("core", "tile", "grid", "tiles", "overlap", "halo_px")},
            "per_tile": {k: est[k] for k in ("cycles", "latency_ms", "sram_used_kib", "dram_used_kib", "sram_bytes",
                                              "dram_bytes", "flash_bytes", "macs")},
            "sram": {"bytes": sram, "mode": found["profile"].memory_mode, "arena_in_sram": found["profile"].arena_in_sram,
                     "source": found["profile"].source if sram_kib is None else f"--npu-sram {sram_kib:g} KiB"},
            "halo": found["halo"], "untiled": untiled, "candidates": candidates,
            "method": method, "runtime": f"Vela {est['vela']}", "threads": None, "file": str(path),
            "file_note": "; ".join(dict.fromkeys([n for n in [note, *notes] if n])) or None,
            "resolution_used": _resolution(subject, hw)}


# ---------------------------------------------------------------- the stage
def bench(model, devices=(HOST,), size=None, threads=(1,), runs: int = 10, warmup: int = 2,
          runtime: str | None = None, arm_size=None, arm_repeats: int = 1, arm_invokes: int = 1,
          parity: bool = True, npu_sram: float | None = None) -> dict:
    """Latency of ``model`` on each device; see the module docstring for how each is obtained.

    Args:
        model: ``.onnx`` / ``.tflite`` file, checkpoint folder or shipped name.
        devices: ``host``, core profiles (``cortex-a55``, ``cortex-a78``, ``cortex-x3`` ...) or clusters
            (``cortex-a78x4``, ``cortex-x3+a715x2``, see :mod:`darkc.latency.cluster`), Ethos-U configurations
            (``ethos-u55-256`` ...), as a list or a comma-separated string.
        size: raw ``"WxH"`` (or ``(W, H)``) the latency is for; default: the model's fixed size, else 1920x1080.
        threads: thread counts, on the host and on ARM (a core profile runs ``t`` threads on ``t`` such cores;
            a named cluster such as ``cortex-a78x4`` takes the counts up to its size).
        runs, warmup: timed and untimed host runs per thread count.
        runtime: host runtime ``ort`` / ``litert`` / ``torch`` (default: the file's own; ``ort`` for checkpoints).
        arm_size: raw ``"WxH"`` the emulator runs at (default 128x128, packed 64x64).
        arm_repeats: emulator runs per core (more shows the count's spread).
        arm_invokes: measured inferences per emulator run.
        parity: compare the aarch64 output with the host's for the same file and input.
        npu_sram: SRAM (KiB) of the Ethos-U system, instead of the family's reference size
            (:data:`darkc.latency.npu.SYSTEMS`).

    Returns:
        ``{"model", "file", "kind", "dtype", "cfa", "resolution", "graph": {macs, bytes, weight_bytes, source},
        "host": {cpu, machine}, "devices": {name: {"latency_ms", "method", "runtime", "threads", ...}}, "notes",
        "metrics"}``.

    Raises:
        DarkcError: not a model, unknown device/runtime, a float model for an NPU, missing ARM setup or Vela.
    """
    devices = parse_devices(devices)
    threads = parse_threads(threads)
    subject = load_subject(model, runtime)
    if size is None:
        hw = subject.fixed or padded_hw(DEFAULT_SIZE, subject.cfa, subject.multiple)
    else:
        hw = padded_hw(parse_resolution(size, "--size") if isinstance(size, str) else tuple(size), subject.cfa,
                       subject.multiple)
        if subject.fixed is not None and subject.fixed != hw and HOST in devices:
            raise DarkcError(f"{subject.path} is fixed at {raw_size(subject, subject.fixed)} raw px (HxW) but --size "
                             f"asks for {size}; pass --size {subject.fixed[1] * subject.scale}x"
                             f"{subject.fixed[0] * subject.scale} or re-export at that size")
    arm_hw = padded_hw(parse_resolution(arm_size, "--arm-size") if isinstance(arm_size, str) else
                       tuple(arm_size or DEFAULT_ARM_SIZE), subject.cfa, subject.multiple)
    if subject.kind in ("checkpoint", "pretrained") and any(d in npu_mod.ACCELERATORS for d in devices):
        check_npu_subject(subject, hw, "fp32")
    main_file = host_file(subject, hw) if HOST in devices else subject.path
    cost = _cost(subject, main_file, hw)
    dtype = precision_of(subject, cost["dtype"]) if subject.kind in ("onnx", "tflite") else "fp32"
    result = {
        "model": subject.ref, "kind": subject.kind, "file": str(main_file), "dtype": dtype, "cfa": subject.cfa,
        "output": subject.output, "noise_input": subject.noise_input,
        "resolution": _resolution(subject, hw),
        "graph": {k: cost[k] for k in ("macs", "bytes", "weight_bytes", "source", "dtype")},
        "host": {"cpu": _cpu_name(), "machine": platform.machine(), "isa": host_isa(), "cores": os.cpu_count()},
        "devices": {}, "notes": subject.notes,
        "metrics": None,        # quality comes from an evaluation record (report.quality_from_eval), not model.json
    }
    for device in devices:
        if device == HOST:
            by = measure_host(main_file, subject.runtime, subject_shape_for(main_file, subject, hw)
                              if main_file.is_file() else (1, subject.in_channels, *hw), threads, runs, warmup)
            first = by[str(threads[0])]
            result["devices"][HOST] = {
                "kind": "host", "estimated": False, "latency_ms": first["median_ms"],
                "method": f"measured: {warmup} warm-up + {runs} timed runs per thread count, fresh process each, "
                          f"pinned to that many CPUs when available",
                "runtime": RUNTIME_NAMES[subject.runtime], "runtime_key": subject.runtime,
                "threads": threads[0], "by_threads": by, "cpu": result["host"]["cpu"]}
        elif device in arm_mod.PROFILES or is_cluster_name(device):
            result["devices"][device] = measure_arm(subject, device, hw, arm_hw, cost, threads=threads,
                                                    repeats=arm_repeats, invokes=arm_invokes, parity=parity)
        else:
            result["devices"][device] = measure_npu(subject, device, hw, dtype, npu_sram)
    return result


def bench_npus(model, devices, size=None, npu_sram: float | None = None) -> tuple[dict, dict]:
    """Ethos-U entries of one full-integer TFLite ``model``, each device benched alone:
    ``({device: entry}, {device: reason})``; a device no tile of which fits its SRAM gets the one-line reason
    instead of stopping a report or pipeline that benches several models and devices."""
    entries, unfit = {}, {}
    for dev in devices:
        try:
            entries[dev] = bench(model, devices=[dev], size=size, npu_sram=npu_sram)["devices"][dev]
        except DarkcError as exc:
            if not str(exc).startswith("no tile fits"):
                raise
            unfit[dev] = str(exc)
    return entries, unfit


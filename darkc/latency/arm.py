"""Phone-class ARM CPUs without a phone: real aarch64 runtimes under QEMU, counted instructions, core profiles.

The aarch64 builds of LiteRT (XNNPACK) and ONNX Runtime run under QEMU user-mode emulation
(``darkc/latency/setup_arm.sh`` builds QEMU 10 with TCG plugins and the userland). darkc's plugin
(``insn_window.c``) counts the guest instructions executed between two marker syscalls on one thread; the worker
puts each runtime inference call (``invoke()``, ``session.run``) between markers, so start-up, imports, model
loading and Python around the call are not counted, nor are other threads. With one inference thread
(``num_threads=1``; ORT without spinning), address-space randomisation off (``setarch -R``), a guest address space
that QEMU lays out itself (``-R``), a fixed guest RNG seed (``-seed 0``), hash seed 0, the same argv and
precompiled bytecode, the count is identical from run to run.

Counts turn into time with a :class:`CoreProfile`: ``ms = instructions / (IPC x clock)``. Clock, SIMD MAC rates
and DRAM bandwidth are published figures (cited per profile); the sustained IPC is this module's assumption for
NEON/dot-product inference kernels, stated as such. :func:`roofline` cross-checks each estimate from the graph
alone: per layer ``max(MACs / peak MAC rate, bytes / DRAM bandwidth)``, summed - a lower bound.

The emulated core is the closest model QEMU has: its ISA features (dotprod, fp16, i8mm, SVE2) and the
``/proc/cpuinfo`` part number that XNNPACK's cpuinfo reads to pick micro-kernels come from it.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from darkc.errors import DarkcError

SETUP_SCRIPT = Path(__file__).with_name("setup_arm.sh")
WORKER = Path(__file__).with_name("worker.py")
GUEST_PYTHON = "usr/bin/python3.11"
#: Guest address space QEMU reserves and allocates itself (``-R``): without it guest mmaps land wherever the host
#: puts them, which QEMU's own allocations (RCU thread, translation buffers) shift from run to run, and the
#: guest's code and data alignment - hence a few instructions per call - with them.
GUEST_RESERVE = "64G"


@dataclass(frozen=True)
class CoreProfile:
    """A phone CPU core as a latency model. Rates are per core; ``ipc`` is an assumption (see ``ipc_basis``)."""

    name: str
    qemu_cpu: str
    qemu_note: str
    clock_ghz: float
    clock_source: str
    ipc: float
    ipc_basis: str
    fp32_macs_per_cycle: int
    int8_macs_per_cycle: int
    simd_source: str
    dram_gbs: float
    dram_source: str


PROFILES: dict[str, CoreProfile] = {p.name: p for p in (
    CoreProfile(
        name="cortex-a55", qemu_cpu="cortex-a55", qemu_note="QEMU's own Cortex-A55 model (ARMv8.2-A, dotprod, fp16)",
        clock_ghz=1.8, clock_source="Snapdragon 888 product brief: 4x Cortex-A55 up to 1.8 GHz",
        ipc=1.0, ipc_basis="assumed: in-order, dual-issue, one 128-bit NEON op per cycle (two 64-bit pipes)",
        fp32_macs_per_cycle=4, int8_macs_per_cycle=16,
        simd_source="Arm Cortex-A55 Software Optimization Guide: Q-form FMLA and SDOT 1 per cycle (4 fp32 FMAs, "
                    "16 int8 MACs)",
        dram_gbs=51.2, dram_source="LPDDR5-6400, 64-bit bus: 6400 MT/s x 8 B (Snapdragon 888 memory)"),
    CoreProfile(
        name="cortex-a75", qemu_cpu="cortex-a76",
        qemu_note="QEMU has no Cortex-A75; its Cortex-A76 has the same ISA (ARMv8.2-A, dotprod, fp16)",
        clock_ghz=2.8, clock_source="Snapdragon 845 (Pixel 3) product brief: 4x Kryo 385 Gold (Cortex-A75 based) "
                                    "up to 2.8 GHz",
        ipc=1.5, ipc_basis="assumed: 3-wide out-of-order, NEON kernels sustaining half its decode width",
        fp32_macs_per_cycle=4, int8_macs_per_cycle=16,
        simd_source="Arm Cortex-A75 Software Optimization Guide: two 64-bit ASIMD pipes (a Q-form FMLA or SDOT "
                    "every cycle: 4 fp32 FMAs, 16 int8 MACs)",
        dram_gbs=29.8, dram_source="LPDDR4X-1866, 64-bit bus: 3733 MT/s x 8 B (Snapdragon 845 memory)"),
    CoreProfile(
        name="cortex-a76", qemu_cpu="cortex-a76", qemu_note="QEMU's own Cortex-A76 model (ARMv8.2-A, dotprod, fp16)",
        clock_ghz=2.42, clock_source="Snapdragon 855 (Pixel 4) product brief: 3x Kryo 485 Gold (Cortex-A76 based) "
                                     "at 2.42 GHz, 1x Prime at 2.84 GHz",
        ipc=2.0, ipc_basis="assumed: 4-wide out-of-order, two 128-bit NEON pipes kept busy by GEMM micro-kernels",
        fp32_macs_per_cycle=8, int8_macs_per_cycle=32,
        simd_source="Arm Cortex-A76 Software Optimization Guide: two 128-bit ASIMD pipes (8 fp32 FMAs, 32 int8 "
                    "MACs per cycle with SDOT)",
        dram_gbs=34.1, dram_source="LPDDR4X-2133, 64-bit bus: 4266 MT/s x 8 B (Snapdragon 855 memory)"),
    CoreProfile(
        name="cortex-a78", qemu_cpu="cortex-a76",
        qemu_note="QEMU has no Cortex-A78; its Cortex-A76 has the same ISA (ARMv8.2-A, dotprod, fp16) and family",
        clock_ghz=2.42, clock_source="Snapdragon 888 product brief: 3x Cortex-A78 up to 2.42 GHz",
        ipc=2.0, ipc_basis="assumed: 4-wide out-of-order, two 128-bit NEON pipes kept busy by GEMM micro-kernels",
        fp32_macs_per_cycle=8, int8_macs_per_cycle=32,
        simd_source="Arm Cortex-A78 Software Optimization Guide: two 128-bit ASIMD pipes (8 fp32 FMAs, 32 int8 "
                    "MACs per cycle with SDOT)",
        dram_gbs=51.2, dram_source="LPDDR5-6400, 64-bit bus: 6400 MT/s x 8 B (Snapdragon 888 memory)"),
    CoreProfile(
        name="cortex-x3", qemu_cpu="cortex-a710",
        qemu_note="QEMU has no Cortex-X3; its Cortex-A710 has the X3's ISA (ARMv9.0-A: SVE2, i8mm, bf16, dotprod)",
        clock_ghz=3.19, clock_source="Snapdragon 8 Gen 2 product brief: 1x Cortex-X3 up to 3.19 GHz",
        ipc=3.0, ipc_basis="assumed: 6-wide decode, four 128-bit NEON pipes (about 3 of ~6 peak sustained)",
        fp32_macs_per_cycle=16, int8_macs_per_cycle=64,
        simd_source="Arm Cortex-X3 Software Optimization Guide: four 128-bit ASIMD pipes (16 fp32 FMAs, 64 int8 "
                    "MACs per cycle with SDOT; i8mm SMMLA can do more)",
        dram_gbs=67.2, dram_source="LPDDR5X-8400, 64-bit bus: 8400 MT/s x 8 B (Snapdragon 8 Gen 2 memory)"),
    CoreProfile(
        name="cortex-a715", qemu_cpu="cortex-a710",
        qemu_note="QEMU has no Cortex-A715; its Cortex-A710 has the same ISA (ARMv9.0-A: SVE2, i8mm, bf16, dotprod)",
        clock_ghz=2.8, clock_source="Snapdragon 8 Gen 2 product brief: 2x Cortex-A715 up to 2.8 GHz",
        ipc=2.0, ipc_basis="assumed: 5-wide out-of-order, two 128-bit NEON pipes kept busy by GEMM micro-kernels",
        fp32_macs_per_cycle=8, int8_macs_per_cycle=32,
        simd_source="Arm Cortex-A715 Software Optimization Guide: two 128-bit ASIMD pipes (8 fp32 FMAs, 32 int8 "
                    "MACs per cycle with SDOT)",
        dram_gbs=67.2, dram_source="LPDDR5X-8400, 64-bit bus: 8400 MT/s x 8 B (Snapdragon 8 Gen 2 memory)"),
)}


# ---------------------------------------------------------------- the emulation setup
def cache_dir() -> Path:
    """Where ``setup_arm.sh`` puts QEMU and the userland (``$DARKC_ARM_CACHE``, else the user cache)."""
    if os.environ.get("DARKC_ARM_CACHE"):
        return Path(os.environ["DARKC_ARM_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "darkc" / "arm"


@dataclass(frozen=True)
class ArmSetup:
    qemu: Path
    plugin: Path
    root: Path
    site: Path
    qemu_version: str


PLUGIN_SOURCE = Path(__file__).with_name("insn_window.c")


def plugin_path(cache: Path) -> Path:
    """The counting plugin built from this checkout's ``insn_window.c``: named by the source's sha256, so that
    checkouts with different plugin sources share one emulation cache (``setup_arm.sh`` builds it)."""
    digest = hashlib.sha256(PLUGIN_SOURCE.read_bytes()).hexdigest()[:16]
    return cache / "qemu" / f"libdarkc_insn-{digest}.so"


def find_setup() -> ArmSetup:
    """The built emulation setup, or a DarkcError saying what to run."""
    c = cache_dir()
    plugin = plugin_path(c)
    s = ArmSetup(c / "qemu" / "qemu-aarch64", plugin, c / "rootfs", c / "site-aarch64", "")
    done = [c / "qemu" / ".done", plugin, c / "rootfs" / ".done", c / "site-aarch64" / ".done"]
    missing = [str(p.parent if p.name == ".done" else p) for p in done if not p.is_file()]
    if missing:
        raise DarkcError(f"the emulated ARM setup is missing ({', '.join(missing)}); run `darkc bench --setup-arm` "
                         f"(builds QEMU 10 and an aarch64 Python userland under {c}, about 10 minutes)")
    version = (c / "qemu" / "VERSION").read_text().splitlines()[0] if (c / "qemu" / "VERSION").is_file() else "?"
    return ArmSetup(s.qemu, s.plugin, s.root, s.site, version)


def run_setup(jobs: int | None = None) -> Path:
    """Run ``setup_arm.sh`` (idempotent: finished steps are skipped); returns the cache folder."""
    env = dict(os.environ)
    if jobs:
        env["DARKC_JOBS"] = str(jobs)
    r = subprocess.run(["bash", str(SETUP_SCRIPT)], env=env, stdout=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise DarkcError(f"{SETUP_SCRIPT} failed (exit {r.returncode}; its error is printed above); fix that and "
                         f"rerun `darkc bench --setup-arm`")
    return cache_dir()


# ---------------------------------------------------------------- counting
_WINDOW = re.compile(r"^window (\d+) cpu (\d+) insns: (\d+)$", re.M)
_THREAD = re.compile(r"^window (\d+) thread (\d+) insns: (\d+)$", re.M)
_CRITICAL = re.compile(r"^window (\d+) critical insns: (\d+) regions: (\d+) serial: (\d+) parallel: (\d+)$", re.M)
_TOTAL = re.compile(r"^total insns: (\d+)$", re.M)


def _guest_env(setup: ArmSetup) -> dict:
    return {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONPATH": str(setup.site), "PYTHONHASHSEED": "0",
            "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
            "HOME": "/tmp", "TF_CPP_MIN_LOG_LEVEL": "3", "DARKC_INSN_MARKERS": "1"}


def _start(setup: ArmSetup, cpu: str, runtime: str, model: Path, shape, warmup: int, invokes: int,
           save: str | None, log: Path, cwd: Path, threads: int = 1) -> subprocess.Popen:
    cmd = [str(setup.qemu), "-R", GUEST_RESERVE, "-seed", "0", "-L", str(setup.root), "-cpu", cpu, "-plugin", str(setup.plugin),
           "-d", "plugin", "-D", str(log), str(setup.root / GUEST_PYTHON), str(WORKER), "--runtime", runtime,
           "--model", str(model), "--shape", ",".join(map(str, shape)), "--threads", str(threads), "--mode", "count",
           "--warmup", str(warmup), "--invokes", str(invokes)]
    if save is not None:
        cmd += ["--save", save]
    if shutil.which("setarch"):
        cmd = ["setarch", os.uname().machine, "-R", *cmd]
    return subprocess.Popen(cmd, env=_guest_env(setup), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=cwd)


@dataclass(frozen=True)
class Window:
    """One counted inference call: instructions of the calling thread, of every thread, and how they divide into
    serial work and parallel regions (see insn_window.c)."""

    owner: int              # the calling thread's count
    threads: tuple          # every thread's count in the window (the calling thread's included)
    busiest: int            # serial + per parallel region the busiest thread's count, as this emulation ran
    regions: int            # thread-pool dispatches the calling thread made in the window
    serial: int             # the calling thread's count outside regions
    parallel: int           # every thread's count inside regions

    @property
    def total(self) -> int:
        return sum(self.threads)


def parse_windows(text: str) -> list[Window]:
    """The plugin's log -> one :class:`Window` per closed window, in order. A window without region marks (one
    thread, or ONNX Runtime's unmarked pool) is serial: its busiest thread runs all the way."""
    owner = {int(n): int(c) for n, _, c in _WINDOW.findall(text)}
    threads: dict[int, list[int]] = {}
    for n, _, c in _THREAD.findall(text):
        threads.setdefault(int(n), []).append(int(c))
    crit = {int(n): tuple(map(int, rest)) for n, *rest in _CRITICAL.findall(text)}
    out = []
    for n in sorted(owner):
        busiest, regions, serial, parallel = crit.get(n, (owner[n], 0, owner[n], 0))
        if regions == 0:
            serial, parallel = busiest, 0
        out.append(Window(owner[n], tuple(threads.get(n, [owner[n]])), busiest, regions, serial, parallel))
    return out


def _finish(proc: subprocess.Popen, log: Path, what: str, timeout: float) -> tuple[list[Window], int]:
    """Per-window counts and the process total from the plugin's log."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise DarkcError(f"{what} ran past {timeout:.0f} s under QEMU; benchmark at a smaller --arm-size") from None
    if proc.returncode != 0:
        lines = [ln for ln in (err + out).strip().splitlines() if ln.strip()]
        raise DarkcError(f"{what} failed under QEMU (exit {proc.returncode}): {lines[-1] if lines else 'no output'}; "
                         f"check the model runs on the host, and rerun `darkc bench --setup-arm` if the setup is "
                         f"damaged")
    text = log.read_text() if log.is_file() else ""
    windows = parse_windows(text)
    total = _TOTAL.search(text)
    if not windows or total is None:
        raise DarkcError(f"{what}: the counting plugin printed no windows (log {log}); rerun `darkc bench --setup-arm`")
    return windows, int(total.group(1))


def count_instructions(model: str | os.PathLike, runtime: str, shape, profile: CoreProfile, *, invokes: int = 1,
                       warmup: int = 1, repeats: int = 1, threads: int = 1, save: str | os.PathLike | None = None,
                       timeout: float = 3600.0) -> dict:
    """Guest instructions per steady-state inference of ``model`` on ``profile``'s emulated core, per thread.

    The worker brackets each runtime inference call (``invoke()`` / ``session.run``) with marker syscalls; darkc's
    QEMU plugin counts the instructions every guest thread executes between them, and splits them into serial
    work S (the calling thread outside the thread pool's parallel regions: LiteRT/XNNPACK's
    ``pthreadpool_parallelize`` calls) and parallel work P (all threads inside them). The critical path on
    ``threads`` identical cores is ``S + P / threads``: XNNPACK cuts each parallel operator into many tiles that
    the pool's threads share and steal, so a region ends when its work is spread; which emulated thread ran how
    much of a region only says how this host scheduled the guest threads (``busiest_path``, the per-region
    busiest thread summed, is kept to show it). ONNX Runtime's pool is not marked: its window counts as serial
    (the busiest thread). Warm-up calls are counted but left out.

    Args:
        model: a ``.tflite`` (``runtime="litert"``) or ``.onnx`` (``runtime="ort"``) file.
        shape: the input shape in the model's layout.
        invokes: measured inferences per run (their mean is reported).
        warmup: inferences before them.
        repeats: independent emulator runs (run two at a time), to show the spread.
        threads: the runtime's inference threads (``num_threads`` / ``intra_op_num_threads``).
        save: write the output of the last inference (float32 .npy) here, for a parity check vs the host.

    Returns:
        ``instructions`` (per inference, all threads, mean of the first run's measured calls), ``serial``,
        ``parallel``, ``critical_path`` (S + P / threads), ``busiest_path``, ``regions`` (per inference),
        ``per_thread`` (mean per thread, calling thread first), ``calling_thread``, ``per_repeat``, ``spread``
        ((max - min) / first over repeats of ``instructions``), ``per_call`` (first run, all threads),
        ``process_total`` (all threads, whole run: start-up included), ``emulation_s``, method and settings. With 1
        thread ``critical_path`` equals the calling thread's count.
    """
    if runtime not in ("litert", "ort"):
        raise DarkcError(f"runtime {runtime} has no aarch64 build in the emulated setup; use litert or ort")
    if invokes < 1 or warmup < 0 or repeats < 1 or threads < 1:
        raise DarkcError(f"invokes={invokes}, warmup={warmup}, repeats={repeats}, threads={threads}: need invokes "
                         f">= 1, warmup >= 0, repeats >= 1, threads >= 1")
    setup = find_setup()
    model = Path(model).resolve()
    what = f"{model.name} on emulated {profile.name} (-cpu {profile.qemu_cpu}, {threads} threads)"
    per, crit, calls, totals, first = [], [], [], [], []
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="darkc-arm-") as tmp:
        pending = list(range(repeats))
        while pending:
            batch, pending = pending[:2], pending[2:]
            # every run gets the very same argv (its own working folder, the same relative --save name): the
            # guest hashes and lays out those strings, which moves a few instructions of each call
            procs = []
            for r in batch:
                (Path(tmp) / f"run{r}").mkdir()
                procs.append((r, _start(setup, profile.qemu_cpu, runtime, model, shape, warmup, invokes, "out.npy",
                                        Path(tmp) / f"insn-{r}.log", Path(tmp) / f"run{r}", threads)))
            for r, proc in procs:
                windows, total = _finish(proc, Path(tmp) / f"insn-{r}.log", what, timeout)
                if len(windows) != warmup + invokes:
                    raise DarkcError(f"{what}: {len(windows)} counting windows for {warmup} + {invokes} calls; "
                                     f"rerun `darkc bench --setup-arm`")
                measured = windows[warmup:]
                per.append(sum(w.total for w in measured) / invokes)
                crit.append(sum(w.serial + w.parallel / threads for w in measured) / invokes)
                calls.append([w.total for w in measured])
                totals.append(total)
                if not first:
                    first = measured
                if save is not None and r == 0:
                    shutil.copyfile(Path(tmp) / f"run{r}" / "out.npy", save)
    width = max(len(w.threads) for w in first)
    per_thread = [sum(w.threads[i] if i < len(w.threads) else 0 for w in first) / invokes for i in range(width)]

    def mean(attr):
        return sum(getattr(w, attr) for w in first) / invokes

    return {"instructions": per[0], "critical_path": crit[0], "per_thread": per_thread,
            "calling_thread": mean("owner"), "serial": mean("serial"), "parallel": mean("parallel"),
            "busiest_path": mean("busiest"), "regions": mean("regions"),
            "per_repeat": per, "critical_per_repeat": crit, "spread": (max(per) - min(per)) / per[0],
            "per_call": calls[0], "process_total": totals[0],
            "invokes": invokes, "warmup": warmup, "repeats": repeats, "threads": threads,
            "qemu_cpu": profile.qemu_cpu, "qemu": setup.qemu_version, "runtime": runtime,
            "emulation_s": time.monotonic() - t0, "shape": list(shape),
            "method": "QEMU user-mode TCG; darkc's insn_window plugin counts the guest instructions of every thread "
                      "during each runtime inference call (invoke / session.run), split into serial work (the "
                      "calling thread outside thread-pool regions) and parallel work (all threads inside "
                      "pthreadpool_parallelize); warm-up calls left out; ASLR off, QEMU-reserved guest address "
                      "space, fixed guest RNG seed"}


# ---------------------------------------------------------------- time models
def estimate_ms(instructions: float, profile: CoreProfile) -> float:
    """Latency from an instruction count: instructions / (IPC x clock)."""
    return instructions / (profile.ipc * profile.clock_ghz * 1e9) * 1e3


def roofline(cost: dict, profile: CoreProfile) -> dict:
    """Lower bound from the graph: per layer max(MACs / peak SIMD MAC rate, bytes / DRAM bandwidth), summed.

    ``cost`` is :func:`darkc.latency.graph` output; int8 graphs use the dot-product rate, others fp32 FMA.
    """
    rate = profile.int8_macs_per_cycle if cost["dtype"] == "int8" else profile.fp32_macs_per_cycle
    peak = rate * profile.clock_ghz * 1e9
    bw = profile.dram_gbs * 1e9
    total, compute_bound, t_compute, t_memory = 0.0, 0, 0.0, 0.0
    for layer in cost["layers"]:
        c, m = layer["macs"] / peak, layer["bytes"] / bw
        total += max(c, m)
        t_compute += c
        t_memory += m
        compute_bound += c >= m
    return {"ms": total * 1e3, "compute_ms": t_compute * 1e3, "memory_ms": t_memory * 1e3,
            "compute_bound_layers": compute_bound, "layers": len(cost["layers"]),
            "peak_macs_per_s": peak, "dram_bytes_per_s": bw,
            "rate": f"{rate} {'int8' if cost['dtype'] == 'int8' else 'fp32'} MACs/cycle"}


def profile_dict(profile: CoreProfile) -> dict:
    return asdict(profile)

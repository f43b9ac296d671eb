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


def find_setup() -> ArmSetup:
    """The built emulation setup, or a DarkcError saying what to run."""
    c = cache_dir()
    s = ArmSetup(c / "qemu" / "qemu-aarch64", c / "qemu" / "libdarkc_insn.so", c / "rootfs", c / "site-aarch64", "")
    done = [c / "qemu" / ".done", c / "qemu" / "libdarkc_insn.so", c / "rootfs" / ".done", c / "site-aarch64" / ".done"]
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
_TOTAL = re.compile(r"^total insns: (\d+)$", re.M)


def _guest_env(setup: ArmSetup) -> dict:
    return {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONPATH": str(setup.site), "PYTHONHASHSEED": "0",
            "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
            "HOME": "/tmp", "TF_CPP_MIN_LOG_LEVEL": "3", "DARKC_INSN_MARKERS": "1"}


def _start(setup: ArmSetup, cpu: str, runtime: str, model: Path, shape, warmup: int, invokes: int,
           save: str | None, log: Path, cwd: Path) -> subprocess.Popen:
    cmd = [str(setup.qemu), "-R", GUEST_RESERVE, "-seed", "0", "-L", str(setup.root), "-cpu", cpu, "-plugin", str(setup.plugin),
           "-d", "plugin", "-D", str(log), str(setup.root / GUEST_PYTHON), str(WORKER), "--runtime", runtime,
           "--model", str(model), "--shape", ",".join(map(str, shape)), "--threads", "1", "--mode", "count",
           "--warmup", str(warmup), "--invokes", str(invokes)]
    if save is not None:
        cmd += ["--save", save]
    if shutil.which("setarch"):
        cmd = ["setarch", os.uname().machine, "-R", *cmd]
    return subprocess.Popen(cmd, env=_guest_env(setup), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=cwd)


def _finish(proc: subprocess.Popen, log: Path, what: str, timeout: float) -> tuple[list[int], int]:
    """Per-window main-thread counts and the process total from the plugin's log."""
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
    windows = [(int(n), int(cpu), int(c)) for n, cpu, c in _WINDOW.findall(text)]
    total = _TOTAL.search(text)
    if not windows or total is None:
        raise DarkcError(f"{what}: the counting plugin printed no windows (log {log}); rerun `darkc bench --setup-arm`")
    if any(cpu != windows[0][1] for _, cpu, _ in windows):
        raise DarkcError(f"{what}: inference calls ran on more than one thread; darkc counts one-thread runs only")
    return [c for _, _, c in sorted(windows)], int(total.group(1))


def count_instructions(model: str | os.PathLike, runtime: str, shape, profile: CoreProfile, *, invokes: int = 1,
                       warmup: int = 1, repeats: int = 1, save: str | os.PathLike | None = None,
                       timeout: float = 3600.0) -> dict:
    """Guest instructions per steady-state inference of ``model`` on ``profile``'s emulated core, 1 thread.

    The worker brackets each runtime inference call (``invoke()`` / ``session.run``) with marker syscalls; darkc's
    QEMU plugin counts the instructions between them on the calling thread. Warm-up calls are counted but left out.

    Args:
        model: a ``.tflite`` (``runtime="litert"``) or ``.onnx`` (``runtime="ort"``) file.
        shape: the input shape in the model's layout.
        invokes: measured inferences per run (their mean is reported).
        warmup: inferences before them.
        repeats: independent emulator runs (run two at a time), to show the spread.
        save: write the output of the last inference (float32 .npy) here, for a parity check vs the host.

    Returns:
        ``instructions`` (per inference, mean of the first run's measured calls), ``per_repeat``, ``spread``
        ((max - min) / first over repeats), ``per_call`` (first run), ``process_total`` (all threads, whole run:
        start-up included), ``emulation_s``, method and settings.
    """
    if runtime not in ("litert", "ort"):
        raise DarkcError(f"runtime {runtime} has no aarch64 build in the emulated setup; use litert or ort")
    if invokes < 1 or warmup < 0 or repeats < 1:
        raise DarkcError(f"invokes={invokes}, warmup={warmup}, repeats={repeats}: need invokes >= 1, warmup >= 0, "
                         f"repeats >= 1")
    setup = find_setup()
    model = Path(model).resolve()
    what = f"{model.name} on emulated {profile.name} (-cpu {profile.qemu_cpu})"
    per, calls, totals = [], [], []
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
                                        Path(tmp) / f"insn-{r}.log", Path(tmp) / f"run{r}")))
            for r, proc in procs:
                counts, total = _finish(proc, Path(tmp) / f"insn-{r}.log", what, timeout)
                if len(counts) != warmup + invokes:
                    raise DarkcError(f"{what}: {len(counts)} counting windows for {warmup} + {invokes} calls; "
                                     f"rerun `darkc bench --setup-arm`")
                measured = counts[warmup:]
                per.append(sum(measured) / invokes)
                calls.append(measured)
                totals.append(total)
                if save is not None and r == 0:
                    shutil.copyfile(Path(tmp) / f"run{r}" / "out.npy", save)
    return {"instructions": per[0], "per_repeat": per, "spread": (max(per) - min(per)) / per[0],
            "per_call": calls[0], "process_total": totals[0],
            "invokes": invokes, "warmup": warmup, "repeats": repeats, "threads": 1, "qemu_cpu": profile.qemu_cpu,
            "qemu": setup.qemu_version, "runtime": runtime, "emulation_s": time.monotonic() - t0,
            "shape": list(shape),
            "method": "QEMU user-mode TCG; darkc's insn_window plugin counts the guest instructions of each runtime "
                      "inference call (invoke / session.run) on its thread; warm-up calls left out; ASLR off, "
                      "QEMU-reserved guest address space, fixed guest RNG seed"}


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

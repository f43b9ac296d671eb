"""Emulated NPUs: Arm Ethos-U55/U65/U85 through Arm's Vela compiler and its performance estimate.

Vela (``ethos-u-vela``) compiles a full-integer TFLite file for one accelerator configuration and system
configuration (its bundled ``Arm/vela.ini``), and estimates cycles, inference time at the configured NPU clock
and traffic per memory. Operators Vela cannot place on the NPU stay on the host CPU: they are listed with Vela's
reason. Nothing runs: every figure here is Vela's estimate, labelled so. Each family is compiled for a stated SRAM
size (:data:`SYSTEMS`), and Vela's peak SRAM use is checked against it (``fits``); :mod:`darkc.latency.tiling`
cuts a frame that does not fit into tiles that do.
"""
from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from darkc.errors import DarkcError



@dataclass(frozen=True)
class SramProfile:
    """The memory system an Ethos-U family is estimated in (Arm's reference configurations).

    ``arena_in_sram``: the tensor arena (every feature map) lives in the SRAM (Vela's ``Shared_Sram``), so a model
    fits only when Vela's peak SRAM use is <= ``sram_bytes``; otherwise (``Dedicated_Sram``) the arena lives in DRAM
    and the SRAM is a cache of ``sram_bytes`` that Vela never exceeds (its ``arena_cache_size`` is a hard limit).
    """

    system_config: str
    memory_mode: str
    sram_bytes: int
    arena_in_sram: bool
    describe: str
    source: str


_VELA_INI = "ethos-u-vela 5.2.0 Arm/vela.ini"
#: System, memory mode and SRAM size used for each accelerator family.
SYSTEMS = {
    "ethos-u55": SramProfile(
        "Ethos_U55_High_End_Embedded", "Shared_Sram", 2 * 1024 * 1024, True,
        "500 MHz; 2 MiB SRAM (4 GB/s) holds the tensor arena, off-chip flash (0.5 GB/s) the weights",
        f"{_VELA_INI} (System_Config.Ethos_U55_High_End_Embedded, Memory_Mode.Shared_Sram, as in Arm's Corstone-300 "
        f"U55 'Shared SRAM' setup); 2 MiB = one Corstone-300 internal SRAM bank (ISRAM0, ml-embedded-evaluation-kit "
        f"scripts/cmake/subsystem-profiles/corstone-sse-300.cmake) and issue 17's <= 2 MiB target"),
    "ethos-u65": SramProfile(
        "Ethos_U65_High_End", "Dedicated_Sram_512KB", 512 * 1024, False,
        "1 GHz; 512 KiB SRAM cache (16 GB/s), tensor arena and weights in DRAM (3.75 GB/s)",
        f"{_VELA_INI} (System_Config.Ethos_U65_High_End, Memory_Mode.Dedicated_Sram_512KB: arena_cache_size 524288)"),
    "ethos-u85": SramProfile(
        "Ethos_U85_SYS_DRAM_High", "Dedicated_Sram_512KB", 512 * 1024, False,
        "1 GHz; 512 KiB SRAM cache (64 GB/s), tensor arena and weights in DRAM (24 GB/s)",
        f"{_VELA_INI} (System_Config.Ethos_U85_SYS_DRAM_High, Memory_Mode.Dedicated_Sram_512KB: arena_cache_size "
        f"524288)"),
}
ACCELERATORS = ("ethos-u55-32", "ethos-u55-64", "ethos-u55-128", "ethos-u55-256", "ethos-u65-256", "ethos-u65-512",
                "ethos-u85-128", "ethos-u85-256", "ethos-u85-512", "ethos-u85-1024", "ethos-u85-2048")

_WARNING = re.compile(r"Warning \(supported operators\) operator: (\S+), ofm: '([^']*)'\s*\nReason: ([^\n]*)")
_OPS = re.compile(r"^(CPU|NPU) operators = (\d+) \(([\d.]+)%\)", re.M)
_CPU_OP = re.compile(r"^\s+CPU: (\S+) = (.+?) \(outputs", re.M)


def check_device(name: str) -> str:
    if name not in ACCELERATORS:
        raise DarkcError(f"--device {name} is not an Ethos-U configuration; use one of {', '.join(ACCELERATORS)}")
    return name


def _vela_version() -> str:
    try:
        from importlib.metadata import version
        return version("ethos-u-vela")
    except Exception:
        return "?"


def check_integer_tflite(path: Path) -> dict:
    """Facts about ``path`` (darkc.export.tflite_graph.graph_info); a DarkcError unless it is full-integer and
    fixed-size."""
    from darkc.export.tflite_graph import graph_info

    if path.suffix.lower() != ".tflite":
        raise DarkcError(f"{path}: Ethos-U targets take a full-integer .tflite; export one with `darkc export "
                         f"--target tflite --precision int8 --input-size HxW`")
    try:
        info = graph_info(path)
    except Exception as exc:
        raise DarkcError(f"cannot read TFLite model {path}: {' '.join(str(exc).split())}; re-export it") from exc
    conv_types = [op for op in info["ops"] if op.startswith(("CONV_2D", "TRANSPOSE_CONV", "DEPTHWISE_CONV_2D"))]
    float_convs = [op for op in conv_types if "float" in op.split("->")[0]]
    if float_convs and len(float_convs) < len(conv_types):
        raise DarkcError(f"{path} keeps layers in float ({len(float_convs)} of {len(conv_types)} convolutions: "
                         f"--float-layers, a raw-output model's INT8 default); Ethos-U runs int8 only: export it with "
                         f"`darkc export --target tflite --precision int8 --float-layers none --input-size HxW`")
    if info["float_ops"] or float_convs:
        raise DarkcError(f"{path} is a float model ({len(info['float_ops'])} float operators); Ethos-U runs int8 "
                         f"only: export it with `darkc export --target tflite --precision int8 --input-size HxW`")
    sig = info["input"]["shape_signature"]
    if sig and any(int(v) < 0 for v in sig):
        raise DarkcError(f"{path} has a dynamic input size {sig}; Vela needs a fixed one: re-export with "
                         f"`--input-size HxW`")
    return info


def profile_of(accelerator: str) -> SramProfile:
    """The memory system of ``accelerator``'s family (a DarkcError for an unknown name)."""
    return SYSTEMS[check_device(accelerator).rsplit("-", 1)[0]]


def vela_estimate(path: str | os.PathLike, accelerator: str, *, sram_bytes: int | None = None,
                  timeout: float = 3600.0) -> dict:
    """Compile ``path`` with Vela for ``accelerator`` and return its performance estimate.

    Args:
        sram_bytes: the SRAM Vela may use (passed as ``--arena-cache-size``); default: the family's size in
            :data:`SYSTEMS`. With the arena in SRAM (Ethos-U55, ``Shared_Sram``) Vela treats it as a target it may
            exceed; ``fits`` says whether it stayed within.

    Returns:
        ``cycles`` (total), ``npu_cycles``, ``clock_hz``, ``latency_ms`` (Vela's inference time), ``sram_bytes`` /
        ``dram_bytes`` / ``flash_bytes`` (traffic per inference), ``sram_used_kib``/``dram_used_kib`` (Vela's peak
        use), ``sram_limit_bytes``, ``fits`` (peak SRAM use <= the limit), ``macs``, ``npu_ops``/``cpu_ops``/
        ``npu_share``, ``fallbacks`` ([{op, tensor, reason}]), configuration names.

    Raises:
        DarkcError: not a full-integer fixed-size TFLite file, Vela missing, or Vela failed.
    """
    profile = profile_of(accelerator)
    limit = int(sram_bytes if sram_bytes is not None else profile.sram_bytes)
    path = Path(path)
    check_integer_tflite(path)
    with tempfile.TemporaryDirectory(prefix="darkc-vela-") as tmp:
        cmd = [sys.executable, "-c", "import sys; from ethosu.vela.vela import main; sys.exit(main())",
               "--accelerator-config", accelerator, "--system-config", profile.system_config, "--memory-mode",
               profile.memory_mode, "--config", "Arm/vela.ini", "--arena-cache-size", str(limit),
               "--output-dir", tmp, "--show-cpu-operations", str(path)]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise DarkcError(f"Vela ran past {timeout:.0f} s on {path}; try a smaller --size") from None
        text = r.stdout + r.stderr
        if "No module named 'ethosu'" in text:
            raise DarkcError("Vela is not installed; pip install ethos-u-vela==5.2.0 (in darkc's setup.cfg)")
        summaries = list(Path(tmp).glob("*_summary_*.csv"))
        if r.returncode != 0 or not summaries:
            tail = [ln for ln in text.strip().splitlines() if ln.strip()][-1:] or ["no output"]
            raise DarkcError(f"Vela failed on {path} for {accelerator} (exit {r.returncode}): {tail[0]}; check the "
                             f"model is full-integer TFLite")
        with open(summaries[0], newline="") as f:
            row = next(csv.DictReader(f))
    ops = {kind: (int(n), float(share)) for kind, n, share in _OPS.findall(text)}
    npu, cpu = ops.get("NPU", (0, 0.0))[0], ops.get("CPU", (0, 0.0))[0]
    reasons = {tensor: (op, reason.strip()) for op, tensor, reason in _WARNING.findall(text)}
    fallbacks = []
    for kind, tensor in _CPU_OP.findall(text):
        op, reason = reasons.get(tensor.strip(), (kind, "placed on the CPU by Vela"))
        fallbacks.append({"op": op, "tensor": tensor.strip(), "reason": reason})

    def num(key: str) -> float:
        try:
            return float(row.get(key) or 0.0)
        except ValueError:
            return 0.0

    clock = num("core_clock")
    sram_kib = num("sram_memory_used")
    fits = sram_kib * 1024 <= limit
    caveat = None if fits else (f"Vela needs {sram_kib / 1024:.2f} MiB of SRAM for this input, more than the "
                                f"configuration's {limit / 2**20:.2f} MiB: it does not fit the chip in one piece")
    return {
        "cycles": int(num("cycles_total")), "npu_cycles": int(num("cycles_npu")), "clock_hz": clock,
        "latency_ms": num("inference_time") * 1e3,
        "sram_bytes": int(num("sram_total_bytes")), "dram_bytes": int(num("dram_total_bytes")),
        "flash_bytes": int(num("off_chip_flash_total_bytes") + num("on_chip_flash_total_bytes")),
        "sram_used_kib": sram_kib, "dram_used_kib": num("dram_memory_used"),
        "sram_limit_bytes": limit, "fits": fits, "arena_in_sram": profile.arena_in_sram,
        "macs": int(num("nn_macs")), "npu_ops": npu, "cpu_ops": cpu,
        "npu_share": npu / (npu + cpu) if npu + cpu else 0.0, "fallbacks": fallbacks,
        "accelerator": accelerator, "system_config": profile.system_config, "memory_mode": profile.memory_mode,
        "system": profile.describe, "vela": _vela_version(), "caveat": caveat,
        "method": "Vela performance estimate (compiled, not run); CPU-fallback operators not included in the time",
    }

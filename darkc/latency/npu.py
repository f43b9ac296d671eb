"""Emulated NPUs: Arm Ethos-U55/U65/U85 through Arm's Vela compiler and its performance estimate.

Vela (``ethos-u-vela``) compiles a full-integer TFLite file for one accelerator configuration and system
configuration (its bundled ``Arm/vela.ini``), and estimates cycles, inference time at the configured NPU clock
and traffic per memory. Operators Vela cannot place on the NPU stay on the host CPU: they are listed with Vela's
reason. Nothing runs: every figure here is Vela's estimate, labelled so.
"""
from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from darkc.errors import DarkcError

#: System and memory configuration (from Vela's Arm/vela.ini) used for each accelerator family.
SYSTEMS = {
    "ethos-u55": ("Ethos_U55_High_End_Embedded", "Shared_Sram",
                  "500 MHz; SRAM 4 GB/s for the tensor arena, off-chip flash 0.5 GB/s for weights"),
    "ethos-u65": ("Ethos_U65_High_End", "Dedicated_Sram_512KB",
                  "1 GHz; 512 KiB SRAM cache (16 GB/s), tensor arena and weights in DRAM (3.75 GB/s)"),
    "ethos-u85": ("Ethos_U85_SYS_DRAM_High", "Dedicated_Sram_512KB",
                  "1 GHz; 512 KiB SRAM cache (64 GB/s), tensor arena and weights in DRAM (24 GB/s)"),
}
#: darkc's flag threshold (KiB): an estimate that puts more than this in SRAM assumes more on-chip memory than an
#: embedded system with this NPU is likely to have (U55: arena in SRAM; U65/U85: SRAM is a cache before DRAM).
SRAM_TYPICAL_KIB = {"ethos-u55": 4 * 1024, "ethos-u65": 2 * 1024, "ethos-u85": 8 * 1024}
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
    """Facts about ``path`` (darkc.export.tflite.graph_info); a DarkcError unless it is full-integer, fixed-size."""
    from darkc.export.tflite import graph_info

    if path.suffix.lower() != ".tflite":
        raise DarkcError(f"{path}: Ethos-U targets take a full-integer .tflite; export one with `darkc export "
                         f"--target tflite --precision int8 --input-size HxW`")
    try:
        info = graph_info(path)
    except Exception as exc:
        raise DarkcError(f"cannot read TFLite model {path}: {' '.join(str(exc).split())}; re-export it") from exc
    conv_types = [op for op in info["ops"] if op.startswith(("CONV_2D", "TRANSPOSE_CONV", "DEPTHWISE_CONV_2D"))]
    if info["float_ops"] or any("float" in op.split("->")[0] for op in conv_types):
        raise DarkcError(f"{path} is a float model ({len(info['float_ops'])} float operators); Ethos-U runs int8 "
                         f"only: export it with `darkc export --target tflite --precision int8 --input-size HxW`")
    sig = info["input"]["shape_signature"]
    if sig and any(int(v) < 0 for v in sig):
        raise DarkcError(f"{path} has a dynamic input size {sig}; Vela needs a fixed one: re-export with "
                         f"`--input-size HxW`")
    return info


def vela_estimate(path: str | os.PathLike, accelerator: str, *, timeout: float = 3600.0) -> dict:
    """Compile ``path`` with Vela for ``accelerator`` and return its performance estimate.

    Returns:
        ``cycles`` (total), ``npu_cycles``, ``clock_hz``, ``latency_ms`` (Vela's inference time), ``sram_bytes`` /
        ``dram_bytes`` / ``flash_bytes`` (traffic per inference), ``sram_used_kib``/``dram_used_kib``, ``macs``,
        ``npu_ops``/``cpu_ops``/``npu_share``, ``fallbacks`` ([{op, tensor, reason}]), configuration names.

    Raises:
        DarkcError: not a full-integer fixed-size TFLite file, Vela missing, or Vela failed.
    """
    check_device(accelerator)
    path = Path(path)
    check_integer_tflite(path)
    system, memory, describe = SYSTEMS[accelerator.rsplit("-", 1)[0]]
    with tempfile.TemporaryDirectory(prefix="darkc-vela-") as tmp:
        cmd = [sys.executable, "-c", "import sys; from ethosu.vela.vela import main; sys.exit(main())",
               "--accelerator-config", accelerator, "--system-config", system, "--memory-mode", memory,
               "--config", "Arm/vela.ini", "--output-dir", tmp, "--show-cpu-operations", str(path)]
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
    caveat = None
    if sram_kib > SRAM_TYPICAL_KIB[accelerator.rsplit("-", 1)[0]]:
        caveat = (f"Vela placed {sram_kib / 1024:.1f} MiB in SRAM (darkc flags more than "
                  f"{SRAM_TYPICAL_KIB[accelerator.rsplit('-', 1)[0]] // 1024} MiB for this family): the estimate "
                  f"assumes on-chip memory such a system is unlikely to have; tile the frame to fit")
    return {
        "cycles": int(num("cycles_total")), "npu_cycles": int(num("cycles_npu")), "clock_hz": clock,
        "latency_ms": num("inference_time") * 1e3,
        "sram_bytes": int(num("sram_total_bytes")), "dram_bytes": int(num("dram_total_bytes")),
        "flash_bytes": int(num("off_chip_flash_total_bytes") + num("on_chip_flash_total_bytes")),
        "sram_used_kib": num("sram_memory_used"), "dram_used_kib": num("dram_memory_used"),
        "macs": int(num("nn_macs")), "npu_ops": npu, "cpu_ops": cpu,
        "npu_share": npu / (npu + cpu) if npu + cpu else 0.0, "fallbacks": fallbacks,
        "accelerator": accelerator, "system_config": system, "memory_mode": memory, "system": describe,
        "vela": _vela_version(), "caveat": caveat,
        "method": "Vela performance estimate (compiled, not run); CPU-fallback operators not included in the time",
    }

"""The bench stage: latency on the host (measured), emulated ARM cores and Ethos-U NPUs (estimated), every figure
labelled (:func:`darkc.latency.bench`)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

NAME = "bench"


@dataclass
class Config:
    devices: list[str] = field(default_factory=lambda: ["host"], metadata={
        "flag": "--device", "aliases": ("--devices",),
        "help": "comma-separated: host, cortex-a55, cortex-a78, cortex-x3, ARM clusters (cortex-a78x4, "
                "cortex-x3+a715x2, cortex-a76@2.84+a76@2.42x3), ethos-u55-256, ethos-u65-512, ..."})
    runtime: str | None = field(default=None, metadata={
        "choices": ("ort", "litert", "torch"), "help": "host runtime (default: the file's own; ort for a checkpoint)"})
    threads: list[int] = field(default_factory=lambda: [1], metadata={"help": "thread counts, e.g. 1,2,4: on the host, and on ARM (a core profile runs t threads on t such cores; a cluster such as cortex-a78x4 takes counts up to its size)"})
    size: str | None = field(default=None, metadata={
        "help": "raw WxH the latency is for (default: the model's fixed size, else 1920x1080)"})
    runs: int = field(default=10, metadata={"help": "timed host runs per thread count"})
    warmup: int = field(default=2, metadata={"help": "untimed host runs first"})
    arm_size: str = field(default="128x128", metadata={
        "help": "raw WxH the ARM emulator runs at (latency is scaled by pixels to --size)"})
    arm_repeats: int = field(default=1, metadata={"help": "emulator runs per core (spread)"})
    parity: bool = field(default=True, metadata={"help": "skip the aarch64 vs host output comparison"})
    npu_sram: float | None = field(default=None, metadata={
        "help": "Ethos-U SRAM in KiB the frame is tiled to fit (default: each configuration's, e.g. 2048 for U55)"})


def run(artifact: str, out_dir: str | os.PathLike, config: Config, *, progress: bool = True) -> dict:
    """Latency of ``artifact`` (.onnx, .tflite, checkpoint folder or shipped name) on every device of ``config``;
    writes ``bench_report.md`` / ``.json`` (and the chart ``bench_report.png``) in ``out_dir`` and returns the
    result."""
    from darkc.latency import bench, write_report
    from darkc.stages import command

    from darkc.latency.bench import bench_npus

    npus = [d for d in config.devices if d.startswith("ethos-u")]
    others = [d for d in config.devices if d not in npus] or npus
    res = bench(artifact, devices=others, size=config.size, threads=list(config.threads),
                runs=config.runs, warmup=config.warmup, runtime=config.runtime, arm_size=config.arm_size,
                arm_repeats=config.arm_repeats, parity=config.parity, npu_sram=config.npu_sram)
    if others is not npus:
        # an Ethos-U device no tile of which fits its SRAM is listed with the reason, not fatal
        entries, res["npu_unfit"] = bench_npus(artifact, npus, config.size, config.npu_sram)
        res["devices"].update(entries)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        from darkc.errors import DarkcError
        raise DarkcError(f"-o {out} exists and is not a folder; pass a folder for bench_report.md/.json/.png")
    out.mkdir(parents=True, exist_ok=True)
    cmd = command(NAME, artifact, out_dir, config)
    paths = write_report([res], out / f"{NAME}_report", title=f"darkc bench {artifact}", extra={"command": cmd})
    return {**res, "command": cmd, "report_files": [str(paths["md"]), str(paths["json"]), str(paths["png"])]}


def summary(report: dict, fmt: str = "table") -> str:
    """The result as ``table``, ``md`` or ``json`` (:func:`darkc.latency.format_result`)."""
    from darkc.latency import format_result

    return format_result({k: v for k, v in report.items() if k not in ("command", "report_files")}, fmt)

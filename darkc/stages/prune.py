"""The prune stage: dependency-aware channel pruning to a ratio, a MAC budget or an estimated latency on an ARM
cluster (:func:`darkc.compress.prune.prune`)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

NAME = "prune"


@dataclass
class Config:
    ratio: float | None = field(default=None, metadata={"help": "fraction of channels removed, in (0, 1)"})
    target_macs: str | None = field(default=None, metadata={
        "help": "MAC budget per raw frame instead of --ratio, e.g. 5G@1920x1080"})
    target_ms: str | None = field(default=None, metadata={
        "help": "latency budget instead of --ratio: estimated ms per raw frame on an emulated ARM core or cluster, "
                "MS@DEVICE[@WxH], e.g. 33@cortex-a78x4 (1920x1080 unless given; needs `darkc bench --setup-arm`)"})
    target_precision: str = field(default="int8", metadata={
        "choices": ("int8", "fp32"), "help": "the exported TFLite precision --target-ms is estimated for"})
    importance: str = field(default="l1", metadata={"help": "channel importance: l1, l2, taylor or random"})
    scope: str = field(default="uniform", metadata={
        "help": "uniform (same ratio per layer) or global (one ranking over all layers)"})
    round_to: int = field(default=8, metadata={"help": "pruned widths are multiples of this"})
    steps: int = field(default=1, metadata={"help": "iterative pruning steps"})
    finetune_iters: int = field(default=0, metadata={
        "help": "fine-tuning iterations after each step, against the unpruned model's output"})
    data: str = field(default="synthetic", metadata={"help": "fine-tuning inputs: 'synthetic' or a folder of raws"})
    batch_size: int = field(default=4, metadata={"help": "fine-tuning batch"})
    patch: int = field(default=256, metadata={"help": "fine-tuning patch side in raw px"})
    lr: float = field(default=1e-4, metadata={"help": "fine-tuning learning rate (Adam)"})
    seed: int = field(default=0, metadata={"help": "seed of importance ties, data and fine-tuning"})
    rescale: bool = field(default=True, metadata={
        "help": "keep the pruned layers' weights as they are (default: rescale each layer to the parent's "
                "activation scale on 4 inputs from --data)"})
    evaluate: bool = field(default=True, metadata={"flag": "--no-eval",
                                                   "help": "skip PSNR/SSIM of the parent and the pruned model"})
    eval_limit: int | None = field(default=None, metadata={"help": "only the first N validation pairs"})
    latency_size: str = field(default="1920x1080", metadata={"help": "raw WxH for host latency, or 'none'"})


def run(artifact: str, out_dir: str | os.PathLike, config: Config, *, progress: bool = True) -> dict:
    """Prune ``artifact`` (shipped name or checkpoint folder) into the artifact folder ``out_dir``; writes
    ``prune_report.md`` / ``.json`` there and returns the report."""
    from dataclasses import asdict

    from darkc.compress.prune import prune

    return prune(artifact, out_dir, progress=progress, **asdict(config))


def summary(report: dict) -> str:
    """The report as the terminal shows it."""
    from darkc.compress.prune import format_report

    return format_report(report) + f"\nwrote {report['output']} (report: prune_report.md, prune_report.json)"

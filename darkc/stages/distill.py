"""The distill stage: a compact student trained on a frozen teacher's outputs (:func:`darkc.compress.distill.distill`)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

NAME = "distill"


@dataclass
class Config:
    student: str | None = field(default=None, metadata={
        "help": "student init: a checkpoint folder (e.g. darkc prune output)"})
    student_widths: list[int] | None = field(default=None, metadata={
        "help": "fresh student with these level widths, e.g. 8,16,32,64,128"})
    student_arch: str | None = field(default=None, metadata={
        "help": "architecture of a fresh student (default: the teacher's)"})
    student_options: list[str] | None = field(default=None, metadata={
        "help": "options of a fresh student's architecture as key=value, e.g. block=ds,stem=s2 (mobile-unet)"})
    data: str = field(default="synthetic", metadata={
        "help": "'synthetic', a SID-layout folder, or a folder of raw files (unlabelled)"})
    unlabelled: str | None = field(default=None, metadata={"help": "folder of raw captures without ground truth"})
    images: list[str] | None = field(default=None, metadata={"help": "clean photo folders for synthetic data"})
    profile: str | None = field(default=None, metadata={
        "help": "camera profile name or file (darkc calibrate) for synthetic data"})
    kd: str = field(default="output", metadata={"help": "distillation terms: output, features or both"})
    gt_weight: float = field(default=0.0, metadata={"help": "weight of the ground-truth L1 term"})
    feature_weight: float = field(default=0.1, metadata={"help": "weight of the decoder-feature term"})
    beta: float = field(default=0.99, metadata={"help": "L1 share of the output term (rest MS-SSIM)"})
    chroma_weight: float = field(default=0.0, metadata={
        "help": "weight of an L1 term on the output's chroma vs the teacher's (keeps small students off grey)"})
    raw_loss: str = field(default="isp-l1", metadata={
        "help": "raw-output teachers: output distance, isp-l1 (through each sample's ISP), l1-gamma or l1"})
    steps: int = field(default=2000, metadata={"help": "training steps"})
    batch_size: int = field(default=4, metadata={"help": "batch"})
    patch: int = field(default=512, metadata={"help": "patch side in raw px"})
    lr: float = field(default=5e-4, metadata={"help": "learning rate (Adam, cosine)"})
    val_every: int = field(default=500, metadata={"help": "validation every N steps; 0: no validation"})
    ckpt_every: int = field(default=250, metadata={"help": "checkpoint every N steps"})
    seed: int = field(default=0, metadata={"help": "seed"})
    threads: int | None = field(default=None, metadata={"help": "torch threads"})
    resume: bool = field(default=False, metadata={"help": "continue the run in -o"})
    evaluate: bool = field(default=True, metadata={
        "flag": "--no-eval", "help": "skip the reference-set evaluation of teacher and student"})
    eval_limit: int | None = field(default=None, metadata={"help": "only the first N validation pairs"})
    latency_size: str = field(default="1920x1080", metadata={"help": "raw WxH for host latency, or 'none'"})


def run(artifact: str, out_dir: str | os.PathLike, config: Config, *, progress: bool = True) -> dict:
    """Distil the teacher ``artifact`` into a student in the run folder ``out_dir``; writes
    ``distill_report.md`` / ``.json`` there and returns the report."""
    from dataclasses import asdict

    from darkc.compress.distill import distill

    options = asdict(config)
    options["images"] = list(config.images or [])
    return distill(artifact, out_dir, progress=progress, **options)


def summary(report: dict) -> str:
    """The report as the terminal shows it (empty on a non-zero torch.distributed rank, which writes none)."""
    from darkc.compress.distill import format_report

    if "teacher_stats" not in report:
        return ""
    return format_report(report) + f"\nwrote {report['output']} (report: distill_report.md, distill_report.json)"

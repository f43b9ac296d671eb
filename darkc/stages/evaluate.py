"""The eval stage: PSNR/SSIM, CIEDE2000 and checkerboard per exposure ratio and overall
(:func:`darkc.evaluate.evaluate`). Its module is ``evaluate`` (``eval`` is a Python builtin);
:func:`darkc.stages.stage` maps the stage name ``eval`` to it."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

NAME = "eval"


@dataclass
class Config:
    data: str = field(default="synthetic", metadata={
        "help": "'synthetic' (reference set), 'ood' (held-out sensor) or a SID folder / list file"})
    baselines: bool = field(default=False, metadata={"help": "also score the classical pipelines on the same pairs"})
    threads: int | None = field(default=None, metadata={"help": "inference threads"})
    limit: int | None = field(default=None, metadata={"help": "only the first N pairs"})
    srgb_anchor: bool = field(default=False, metadata={
        "help": "sRGB models: colour put back to each file's own render, as darkc enhance --srgb-anchor"})


def run(artifact: str, out_dir: str | os.PathLike, config: Config, *, progress: bool = True) -> dict:
    """Score ``artifact`` (shipped name, checkpoint folder, .onnx or .tflite) on ``config.data``; writes
    ``eval_report.md`` / ``.json`` in ``out_dir`` and returns the result."""
    from darkc.evaluate import evaluate, format_result
    from darkc.stages import command, write_report

    res = evaluate(artifact, config.data, baselines=config.baselines, threads=config.threads, limit=config.limit,
                   progress=progress, srgb_anchor=config.srgb_anchor)
    cmd = command(NAME, artifact, out_dir, config)
    md = f"# darkc eval: {artifact}\n\nCommand: `{cmd}`\n\n{format_result(res, 'md')}"
    return write_report(out_dir, NAME, {**res, "command": cmd}, md)


def summary(report: dict, fmt: str = "table") -> str:
    """The result as ``table``, ``md`` or ``json`` (:func:`darkc.evaluate.format_result`)."""
    from darkc.evaluate import format_result

    return format_result({k: v for k, v in report.items() if k not in ("command", "report_files")}, fmt)

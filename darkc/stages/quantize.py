"""The quantize stage: INT8 files (ONNX Runtime static QDQ, TFLite full-integer) with their calibration record;
the same code path as ``export --precision int8`` (:mod:`darkc.stages.export`)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from darkc.stages import export as _export
from darkc.stages.export import Int8Options, export_files

NAME = "quantize"


@dataclass
class Config(Int8Options):
    targets: list[str] = field(default_factory=lambda: ["onnx"], metadata={
        "flag": "--target", "aliases": ("--targets",), "help": "onnx and/or tflite, e.g. onnx,tflite"})


def run(artifact: str, out_dir: str | os.PathLike, config: Config, *, progress: bool = True) -> dict:
    """INT8 exports of ``artifact`` for every target of ``config`` into ``out_dir`` (a folder, or one file name);
    writes ``quantize_report.md`` / ``.json`` there and returns the report."""
    return export_files(NAME, artifact, out_dir, config, ["int8"])


def summary(report: dict) -> str:
    """One line per file written, then where the report is."""
    return _export.summary(report)

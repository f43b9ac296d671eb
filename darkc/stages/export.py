"""The export stage: ONNX / TFLite files at fp32, fp16 or int8, each checked against PyTorch
(:func:`darkc.export.export`); several targets and precisions in one run go into one artifact folder."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

NAME = "export"
SUFFIX = {"onnx": ".onnx", "tflite": ".tflite"}


@dataclass
class Int8Options:
    """Calibration and integer options shared by ``export`` (int8 precision) and ``quantize``."""

    input_size: str = field(default="dynamic", metadata={
        "help": "'dynamic' or HxW in raw px, e.g. 1088x1920 (must pack to the model's size multiple); TFLite "
                "needs a fixed size"})
    calib: str = field(default="synthetic", metadata={
        "help": "int8: 'synthetic' or a folder of dark raw files (SID short/ names give the ratio)"})
    calib_method: str = field(default="minmax", metadata={"help": "int8: minmax | percentile | entropy"})
    samples: int = field(default=32, metadata={"help": "int8: calibration samples"})
    calib_size: int = field(default=256, metadata={
        "help": "int8: packed side of calibration samples (dynamic graphs; fixed ones use their size)"})
    calib_ratio: float | None = field(default=None, metadata={
        "help": "int8: exposure ratio for raws without SID names"})
    reduce_range: str = field(default="auto", metadata={
        "help": "int8 ONNX: 7-bit weights: auto (on for x86 CPUs without VNNI) | on | off"})
    io: str = field(default="float", metadata={
        "help": "TFLite int8: dtype of the model's input and output, float | int8"})
    int8_activation: str = field(default="leaky_relu", metadata={
        "help": "TFLite int8: LeakyReLU as leaky_relu (fast on XNNPACK) | prelu (same result on every kernel)"})
    float_layers: str = field(default="auto", metadata={
        "help": "int8: layers left in float: auto (a raw-output model's full-resolution layers, where linear raw "
                "needs more than 8 bits; none of an sRGB model's, nor with --io int8) | none (full integer, for "
                "NPUs) | full-res"})
    int16_layers: str = field(default="none", metadata={
        "help": "int8: layers with 16-bit activations (int8 weights), integer throughout for NPUs: none | full-res "
                "(a raw-output model's precision on an NPU; slow on CPUs)"})
    check: bool = field(default=True, metadata={
        "help": "keep the export even if it differs from PyTorch beyond the threshold"})


@dataclass
class Config(Int8Options):
    targets: list[str] = field(default_factory=lambda: ["onnx"], metadata={
        "flag": "--target", "aliases": ("--targets",), "help": "onnx and/or tflite, e.g. onnx,tflite"})
    precisions: list[str] = field(default_factory=lambda: ["fp32"], metadata={
        "flag": "--precision", "aliases": ("--precisions",), "help": "fp32, fp16 and/or int8, e.g. fp32,fp16"})


def plan(out: str | os.PathLike, targets: list[str], precisions: list[str]) -> list[tuple[str, str, Path]]:
    """``(target, precision, destination)`` of each file: ``out`` itself when it names one ``.onnx`` /
    ``.tflite`` file, ``out/model.<ext>`` for one file into a folder, ``out/model-<precision>.<ext>`` for
    several."""
    from darkc.errors import DarkcError

    out = Path(out)
    pairs = [(t, p) for t in targets for p in precisions]
    if not pairs:
        raise DarkcError("nothing to export: give at least one --target and one --precision")
    if out.suffix.lower() in SUFFIX.values():
        if len(pairs) > 1:
            raise DarkcError(f"-o {out} names one file but {len(pairs)} exports were asked for; pass a folder")
        return [(*pairs[0], out)]
    if len(pairs) == 1:
        return [(t, p, out / f"model{SUFFIX.get(t, '')}") for t, p in pairs]
    return [(t, p, out / f"model-{p}{SUFFIX.get(t, '')}") for t, p in pairs]


def export_files(name: str, artifact: str, out: str | os.PathLike, config, precisions: list[str]) -> dict:
    """Run :func:`darkc.export.export` for every planned file; write ``<name>_report.{md,json}`` beside them."""
    from darkc.export import export, format_report
    from darkc.stages import command, write_report

    files = plan(out, list(config.targets), precisions)
    int8_tflite = any(t == "tflite" and p == "int8" for t, p, _ in files)
    cmd = command(name, artifact, out, config)
    records = []
    for target, precision, dest in files:
        # --io / --int8-activation are TFLite int8 options: the other files of a fan-out take the defaults
        applies = target == "tflite" and precision == "int8"
        tflite_opts = {"io": config.io, "int8_activation": config.int8_activation} if applies or not int8_tflite \
            else {}
        records.append(export(artifact, dest, target=target, precision=precision, input_size=config.input_size,
                              calib=config.calib, calib_method=config.calib_method, samples=config.samples,
                              calib_size=config.calib_size, calib_ratio=config.calib_ratio,
                              reduce_range=config.reduce_range, float_layers=config.float_layers,
                              int16_layers=config.int16_layers, check=config.check, command=cmd, **tflite_opts))
    folder = Path(records[0]["artifact"])
    report = {"stage": name, "model": str(artifact), "output": str(out), "command": cmd, "files": records}
    lines = [f"# darkc {name}: {artifact}", "", f"Command: `{cmd}`", ""]
    lines += [f"- {format_report(r)}" for r in records]
    return write_report(folder, name, report, "\n".join(lines))


def run(artifact: str, out_dir: str | os.PathLike, config: Config, *, progress: bool = True) -> dict:
    """Export ``artifact`` (shipped name or checkpoint folder) to every target x precision of ``config`` into
    ``out_dir`` (a folder, or one ``.onnx`` / ``.tflite`` file name); writes ``export_report.md`` / ``.json``
    in that folder and returns the report (``files``: one :func:`darkc.export.export` record each)."""
    return export_files(NAME, artifact, out_dir, config, list(config.precisions))


def summary(report: dict) -> str:
    """One line per file written, then where the report is."""
    from darkc.export import format_report

    return "\n".join([format_report(r) for r in report["files"]]
                     + [f"report: {', '.join(Path(p).name for p in report['report_files'])}"])

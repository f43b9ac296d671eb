"""The export stage: a checkpoint artifact -> an ONNX (or TFLite) model beside it, checked against PyTorch.

Ten lines of use::

    from darkc.export import export

    report = export("runs/student", "runs/student-mobile", precision="fp16")            # dynamic H/W
    report = export("runs/student", "runs/student-int8", precision="int8", calib="synthetic",
                    calib_method="entropy", input_size="1088x1920")                    # raw px, fixed
    report["file"], report["parity"]["psnr_db"]
    # darkc.inference.load_runner(report["file"]) runs it; darkc eval --model runs/student-int8/model.onnx

Output rule: the result is always an artifact directory holding ``model.safetensors`` (copied from the source),
``model.json`` (the source spec, its provenance extended) and the exported file, so :class:`darkc.inference.OnnxRunner`
finds ``model.json`` beside the ``.onnx``:

- ``out`` a directory (existing or not): ``out/model.onnx`` (``model.tflite`` for TFLite);
- ``out`` ending in ``.onnx`` / ``.tflite``: that file, and ``model.json`` + ``model.safetensors`` in its folder;
- ``out`` None: into the source checkpoint directory itself (not for shipped models).

A folder holds one model: exporting into a folder whose ``model.safetensors`` or ``model.json`` belongs to another
model is refused. Several exports of the same model can share it (``model.onnx``, ``model-int8.onnx``); each has its
record in ``model.json`` under ``provenance.exports[<file name>]``: parent model and weights hash, options,
graph info, calibration record (int8), parity with PyTorch, versions.

Everything is built in a staging folder beside the destination and moved in only after the parity check passed;
on any failure nothing is written.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import tempfile
from pathlib import Path

from darkc.errors import DarkcError, sha256_file
from darkc.export.contract import METADATA_KEY, embed_onnx, input_contract
from darkc.export.metadata import read_contract
from darkc.export.onnx import (INPUT_NAME, OPSET, OUTPUT_NAME, PRECISIONS, RAW_OUTPUT_NAME, check_precision,
                               export_onnx, output_name, parse_input_size, to_fp16, torch_to_onnx)
from darkc.export.parity import THRESHOLDS, check_parity, psnr
from darkc.provenance import portable

TARGETS = {"onnx": ".onnx", "tflite": ".tflite"}
SPEC_FILE = "model.json"
WEIGHTS_FILE = "model.safetensors"
#: Keys of model.json that say which model it is (the rest is bookkeeping).
_BOOKKEEPING = ("provenance", "params", "format_version", "weights_dtype")

__all__ = ["INPUT_NAME", "METADATA_KEY", "OPSET", "OUTPUT_NAME", "PRECISIONS", "RAW_OUTPUT_NAME", "TARGETS",
           "THRESHOLDS", "check_parity", "export", "export_onnx", "format_report", "input_contract",
           "output_name",
           "parse_input_size", "psnr", "quantize", "read_contract", "to_fp16", "torch_to_onnx"]


def _tflite_exporter():
    """``darkc.export.tflite.export_tflite`` when that module exists, else a DarkcError."""
    try:
        from darkc.export.tflite import export_tflite
    except ModuleNotFoundError as exc:
        if exc.name in ("darkc.export.tflite",):
            raise DarkcError("TFLite export is not available yet: darkc.export.tflite is not part of this install; "
                             "use --target onnx") from None
        raise DarkcError(f"TFLite export needs {exc.name}, which is not installed: install darkc[tflite]") from exc
    except ImportError as exc:
        raise DarkcError(f"TFLite export cannot be loaded: {' '.join(str(exc).split())}; "
                         f"install darkc[tflite]") from exc
    return export_tflite


def _destination(out, src_kind: str, src_dir: Path, target: str) -> tuple[Path, str]:
    """(artifact directory, exported file name) for ``out``; see the module docstring."""
    suffix = TARGETS[target]
    if out is None:
        if src_kind == "pretrained":
            raise DarkcError(f"-o is needed to export a shipped model (its folder {src_dir} is part of darkc); "
                             f"pass -o DIR")
        return src_dir, f"model{suffix}"
    out = Path(out)
    if out.suffix.lower() in TARGETS.values():
        if out.suffix.lower() != suffix:
            raise DarkcError(f"-o {out} ends in {out.suffix} but --target is {target}; name it *{suffix} or "
                             f"pass a directory")
        if out.is_dir():
            raise DarkcError(f"-o {out} is a directory; pass a file name *{suffix} or a directory without that suffix")
        return out.parent, out.name
    if out.exists() and not out.is_dir():
        raise DarkcError(f"-o {out} exists and is not a directory; pass a directory or a file name *{suffix}")
    return out, f"model{suffix}"


def _identity(spec: dict) -> dict:
    return {k: v for k, v in spec.items() if k not in _BOOKKEEPING}


def _existing_exports(dest: Path, src_dir: Path, spec: dict, weights_sha: str) -> dict:
    """Export records already in ``dest``'s model.json; refuses a folder that holds another model."""
    from darkc.models import read_spec

    weights = dest / WEIGHTS_FILE
    if dest.resolve() != src_dir.resolve() and weights.is_file() and sha256_file(weights) != weights_sha:
        raise DarkcError(f"{dest} already holds another model's {WEIGHTS_FILE}; export into an empty folder or into "
                         f"the model's own artifact folder")
    json_path = dest / SPEC_FILE
    if not json_path.is_file():
        return {}
    theirs = read_spec(json_path)
    if _identity(theirs) != _identity(spec):
        raise DarkcError(f"{json_path} describes another model (arch/cfa/widths differ); export into an empty "
                         f"folder or into the model's own artifact folder")
    exports = theirs.get("provenance", {}).get("exports", {})
    return {k: v for k, v in exports.items() if (dest / k).is_file()} if isinstance(exports, dict) else {}


def _commit(staging: Path, dest: Path, names: list[str]) -> None:
    """Move the staged files into ``dest``: the whole folder at once when ``dest`` is new, else file by file
    with ``model.json`` last (so it never names a file that is not there yet)."""
    if not dest.exists():
        umask = os.umask(0)
        os.umask(umask)
        staging.chmod(0o777 & ~umask)          # mkdtemp made it private
        os.replace(staging, dest)
        return
    for name in sorted(names, key=lambda n: n == SPEC_FILE):
        os.replace(staging / name, dest / name)


def export(model, out: str | os.PathLike | None = None, *, target: str = "onnx", precision: str = "fp32",
           input_size: str | None = "dynamic", calib: str | os.PathLike = "synthetic", calib_method: str = "minmax",
           samples: int | None = None, calib_size: int | None = None, calib_ratio: float | None = None,
           reduce_range: bool | str | None = None, io: str = "float", int8_activation: str = "leaky_relu",
           float_layers: str = "auto", int16_layers: str = "none", check: bool = True,
           command: str | None = None) -> dict:
    """Export a checkpoint to ONNX (or TFLite) at one precision, check it against PyTorch, write the artifact.

    Args:
        model: a checkpoint directory (or its model.json / model.safetensors) or a shipped model name.
        out: artifact directory, or a ``.onnx`` / ``.tflite`` file name in one; None: the source directory.
        target: ``onnx`` or ``tflite`` (the latter through ``darkc.export.tflite`` when installed).
        precision: ``fp32``; ``fp16`` (float16 weights and activations, float32 I/O); ``int8`` (ONNX Runtime
            static QDQ, see :mod:`darkc.export.onnx_int8`).
        input_size: ``dynamic`` (H and W symbolic; ONNX only) or ``HxW`` in raw pixels, packing to multiples of the
            model's size multiple (16 for the SID U-Net: raw multiples of 32 for Bayer, 48 for X-Trans).
        calib: int8 only: ``synthetic`` or a folder of dark raw files.
        calib_method: int8 only: ``minmax`` / ``percentile`` / ``entropy``.
        samples: int8 only: calibration samples (default 32).
        calib_size: int8 only: packed side of calibration samples for a dynamic graph (default 256; a fixed-size
            graph is calibrated at its own size).
        calib_ratio: int8 only: exposure ratio for raw files without SID names.
        reduce_range: int8 only: 7-bit weights; None / ``auto`` decides from this CPU (see ``cpu_int8_info``),
            ``on``/True or ``off``/False force it.
        io: TFLite int8 only: ``float`` (QUANTIZE/DEQUANTIZE inside the model) or ``int8`` input and output.
        int8_activation: TFLite int8 only: ``leaky_relu`` or ``prelu`` (see ``darkc.export.tflite_int8.quantize_int8``).
        float_layers: int8 only: layers left in float, ``auto`` (a raw-output model's full-resolution layers; none
            of an sRGB model's, nor with ``io="int8"``), ``none`` or ``full-res`` (see
            :mod:`darkc.export.float_layers`).
        int16_layers: int8 only: ``none`` or ``full-res`` (those operators integer with 16-bit activations: an
            NPU's way to keep a raw-output model's precision; ``auto`` float layers are then none).
        check: fail when the parity check fails; with False it is still measured and recorded when possible.
        command: the command line, recorded in the provenance.

    Returns:
        Report: ``artifact``, ``file``, ``target``, ``precision``, ``input_size``, ``bytes``, ``simplified``,
        ``parity``, ``calibration`` (int8) - the record also stored in ``model.json``.

    Raises:
        DarkcError: bad option (named, with the valid values), missing or non-PyTorch model, unusable calibration
            folder, exporter failure, or a failed parity check; nothing is written then.
    """
    from darkc.export.calibration import DEFAULT_CALIB_SIZE, DEFAULT_SAMPLES, calibration_inputs, check_count
    from darkc.export.float_layers import check_float_layers, check_int16_layers, resolve_float_layers
    from darkc.export.onnx_int8 import check_method, check_reduce_range
    from darkc.data import cfa as cfa_mod
    from darkc.models import load_checkpoint, read_spec, resolve_model_ref, size_multiple_of

    # ---- options and model, before anything is written
    if target not in TARGETS:
        raise DarkcError(f"--target {target!r} is unknown; use one of {', '.join(TARGETS)}")
    precision = check_precision(precision)
    calib_method = check_method(calib_method)
    reduce_range = check_reduce_range(reduce_range)
    check_float_layers(float_layers)
    check_int16_layers(int16_layers)
    if int16_layers != "none" and float_layers != "auto" and float_layers != "none":
        raise DarkcError(f"--float-layers {float_layers} and --int16-layers {int16_layers} both claim the "
                         f"full-resolution layers; choose one (float for CPUs, int16 for NPUs)")
    samples = check_count(DEFAULT_SAMPLES if samples is None else samples, "--samples")
    calib_size = check_count(DEFAULT_CALIB_SIZE if calib_size is None else calib_size, "--calib-size")
    if io != "float" and (target != "tflite" or precision != "int8"):
        raise DarkcError(f"--io {io!r} is for --target tflite --precision int8; other exports have float32 "
                         f"input and output (leave --io out)")
    if int8_activation != "leaky_relu" and (target != "tflite" or precision != "int8"):
        raise DarkcError(f"--int8-activation {int8_activation!r} is for --target tflite --precision int8 "
                         f"(leave it out)")
    exporter = _tflite_exporter() if target == "tflite" else None
    kind, src_dir = resolve_model_ref(model)
    if kind not in ("checkpoint", "pretrained"):
        raise DarkcError(f"{model} is already an exported {kind} model; export from its PyTorch checkpoint "
                         f"directory (model.safetensors + model.json)")
    spec = read_spec(src_dir)
    # int8 I/O is an NPU's deployment, which needs a full-integer model: there ``auto`` keeps nothing in float
    kept_float = "none" if precision != "int8" or (float_layers == "auto" and (io != "float" or
                                                                              int16_layers != "none")) else \
        resolve_float_layers(float_layers, spec)
    int16_layers = int16_layers if precision == "int8" else "none"
    if kept_float != "none" and io != "float":
        raise DarkcError(f"--io {io} needs a full-integer model, but --float-layers {float_layers} keeps layers in "
                         f"float; pass --float-layers none (or auto) with --io {io}, or leave --io out")
    multiple = size_multiple_of(spec)
    if calib_size % multiple:
        raise DarkcError(f"--calib-size {calib_size} must be a multiple of {multiple} packed px (the model's size "
                         f"multiple; e.g. {-(-DEFAULT_CALIB_SIZE // multiple) * multiple})")
    fixed = parse_input_size(input_size, spec["cfa"], multiple)
    packing = cfa_mod.scale(spec["cfa"])        # raw px per packed px (the output's scale is 1 for raw models)
    if target == "tflite" and fixed is None:
        raise DarkcError("--target tflite needs a fixed --input-size HxW in raw px (e.g. 1024x1024; darkc tiles larger "
                         "frames): LiteRT's TRANSPOSE_CONV keeps the traced output shape, so a dynamic-size graph is "
                         "only right on XNNPACK")
    dest, filename = _destination(out, kind, src_dir, target)
    net, spec = load_checkpoint(src_dir)
    weights_sha = sha256_file(src_dir / WEIGHTS_FILE)
    exports = _existing_exports(dest, src_dir, spec, weights_sha)
    calib_inputs, calib_record = None, None
    if precision == "int8":
        size = fixed or (calib_size, calib_size)
        calib_inputs, calib_record = calibration_inputs(calib, spec["cfa"], samples, size, calib_ratio, spec=spec)

    # ---- build in a staging folder beside the destination
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.export-", dir=dest.parent))
    try:
        staged = staging / filename
        if exporter is None:
            info = export_onnx(net, spec, staged, precision, fixed, calib_inputs, calib_method, reduce_range,
                               kept_float, int16_layers)
            info["contract"] = _onnx_contract(net, spec, fixed)
            embed_onnx(staged, info["contract"])
        else:
            # export_tflite(model, spec, out, precision, input_size=packed (h, w) or None, calib=list of
            # (1, C, h, w) calibration arrays for int8, else None, io=, calib_method=) -> dict of facts to record;
            # it embeds the input contract in the file and returns it under "contract"
            info = exporter(net, spec, staged, precision, fixed, calib_inputs, io=io, calib_method=calib_method,
                            int8_activation=int8_activation, float_layers=kept_float,
                            int16_layers=int16_layers)
            info = dict(info) if isinstance(info, dict) else {}
        if not staged.is_file():
            raise DarkcError(f"the {target} exporter wrote no {filename}; re-run, or report the bug")
        if calib_record is not None:
            info["calibration"] = {**info.get("calibration", {}), "data": calib_record}
        try:
            parity = check_parity(net, staged, precision, fixed)
        except DarkcError as exc:
            if check:
                raise
            parity = {"error": str(exc), "passed": None}
        if check and not parity["passed"]:
            hint = " try --calib-method percentile/entropy or more --samples, or" if precision == "int8" else ""
            raise DarkcError(f"parity check failed for the {precision} {target} export of {model}: "
                             f"PSNR {parity['psnr_db']} dB, max abs error {parity['max_abs']:.3g} "
                             f"(needs {parity['criterion']}); nothing written -{hint} pass --no-check to keep it")
        record = {
            "file": filename, "target": target, "precision": precision,
            "input_size": {"raw": "dynamic" if fixed is None else [fixed[0] * packing, fixed[1] * packing],
                           "packed": None if fixed is None else list(fixed)},
            "parent": {"model": str(model), "kind": kind, "weights_sha256": weights_sha},
            "command": command,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "bytes": staged.stat().st_size,
            **info,
            "parity": parity if check else {**parity, "check": "off (--no-check)"},
        }
        names = [filename, SPEC_FILE]
        if not (dest / WEIGHTS_FILE).is_file():     # a present one is this model's (checked above)
            shutil.copyfile(src_dir / WEIGHTS_FILE, staging / WEIGHTS_FILE)
            names.append(WEIGHTS_FILE)
        provenance = {k: v for k, v in spec.get("provenance", {}).items() if k != "exports"}
        provenance["exports"] = {**exports, filename: record}
        (staging / SPEC_FILE).write_text(json.dumps(portable({**spec, "provenance": provenance}), indent=2) + "\n",
                                         encoding="utf-8")
        try:
            _commit(staging, dest, names)
        except OSError as exc:
            raise DarkcError(f"cannot write {dest}: {' '.join(str(exc).split())}; check the path and free space")
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return {**record, "artifact": str(dest), "file": str(dest / filename)}


def quantize(model, calib: str | os.PathLike = "synthetic", out: str | os.PathLike | None = None,
             method: str = "minmax", samples: int | None = None, **options) -> dict:
    """An INT8 ONNX artifact (ONNX Runtime static QDQ) with its calibration record: ``darkc quantize``.

    Same code path as ``darkc export --precision int8``: this is
    ``export(model, out, target="onnx", precision="int8", calib=calib, calib_method=method, samples=samples,
    **options)``; see :func:`export` for ``out``, ``input_size``, ``calib_size``, ``calib_ratio``,
    ``reduce_range``, ``check`` and the returned report.
    """
    options.setdefault("target", "onnx")
    return export(model, out, precision="int8", calib=calib, calib_method=method, samples=samples, **options)


def _onnx_contract(model, spec: dict, fixed: tuple[int, int] | None) -> dict:
    """The input contract of an ONNX export: NCHW, float32 I/O (fp16 and QDQ int8 keep float32 I/O)."""
    h, w = fixed or (-1, -1)
    s = spec["scale"]
    return input_contract(spec, "NCHW", [1, spec["in_channels"], h, w],
                          output_shape=[1, spec["out_channels"], h * s if h > 0 else -1, w * s if w > 0 else -1],
                          input_name=INPUT_NAME, output_name=output_name(spec), model=model)


def format_report(report: dict) -> str:
    """One line for the terminal: what was written and how close it is to PyTorch."""
    size = report["input_size"]["raw"]
    size = "dynamic H/W" if size == "dynamic" else f"fixed {size[0]}x{size[1]} raw px"
    parity = report["parity"]
    if parity.get("error"):
        check = f"parity not measured ({parity['error']})"
    else:
        verdict = "passed" if parity["passed"] else "FAILED, kept (--no-check)"
        check = (f"parity vs PyTorch: PSNR {parity['psnr_db']:.1f} dB, max abs {parity['max_abs']:.2g} "
                 f"({parity['criterion']}: {verdict})")
    extra = ""
    if "calibration" in report:
        cal = report["calibration"]
        extra = f"; {cal.get('method')} calibration on {cal.get('samples')} samples"
        extra += f", reduce_range={cal['reduce_range']}" if "reduce_range" in cal else f", {cal.get('io')} I/O"
        for key, what in (("float_layers", "float"), ("int16_layers", "int16 activations")):
            rule = (cal.get(key) or {}).get("rule", "none")
            extra += "" if rule == "none" else f", {rule} layers {what} (--{key.replace('_', '-')})"
    return (f"wrote {report['file']} ({report['target']} {report['precision']}, {size}, "
            f"{report['bytes'] / 1e6:.2f} MB{extra}); {check}")

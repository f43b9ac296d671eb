"""What ``darkc bench MODEL`` measures: the model file each runtime and device needs, and its input shape.

MODEL is a ``.onnx`` (ONNX Runtime), a ``.tflite`` (LiteRT) or a checkpoint folder / shipped name (PyTorch, or
exported on the fly for ``--runtime ort|litert``). Files a device needs and MODEL is not - a small export for the
emulated ARM CPUs, a fixed-size INT8 TFLite for Ethos-U - are exported from the checkpoint (the folder, or the
``model.safetensors`` + ``model.json`` beside an exported file) with :func:`darkc.export.export` into
``~/.cache/darkc/bench/exports``, keyed by the weights' hash, the exporter's fingerprint (its code and the
converter versions: a changed exporter never reuses an old file) and the export options, and reused; each is
built with the export's parity check on, so a broken export fails instead of being timed.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from functools import lru_cache
from dataclasses import dataclass, field
from pathlib import Path

from darkc.errors import DarkcError, sha256_file

RUNTIMES = ("ort", "litert", "torch")
TARGET_OF = {"ort": "onnx", "litert": "tflite"}
RUNTIME_OF = {"onnx": "ort", "tflite": "litert"}
#: Calibration samples for INT8 exports made only to be timed (latency does not depend on calibration quality).
BENCH_CALIB_SAMPLES = 4


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "darkc" / "bench"


#: Distributions whose version changes what an export holds.
EXPORTER_PACKAGES = ("torch", "onnx", "onnxruntime", "onnxsim", "litert-torch", "litert-converter",
                     "ai-edge-quantizer", "ai-edge-litert", "ethos-u-vela")


@lru_cache(maxsize=None)
def exporter_fingerprint() -> str:
    """16 hex digits over darkc's export and model code and the converter versions (``EXPORTER_PACKAGES``)."""
    from importlib import metadata

    import darkc

    root = Path(darkc.__file__).parent
    digest = hashlib.sha256()
    for path in sorted([*(root / "export").glob("*.py"), *(root / "models").glob("*.py"),
                        root / "compress" / "quantize.py"]):
        if path.is_file():
            digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    for name in EXPORTER_PACKAGES:
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            version = "absent"
        digest.update(f"{name}=={version}\0".encode())
    return digest.hexdigest()[:16]


def parse_size(text: str, what: str = "--size") -> tuple[int, int]:
    """``'1920x1080'`` -> raw ``(W, H)``."""
    from darkc.sizes import parse_resolution

    return parse_resolution(text, what)


def packed_hw(raw_wh: tuple[int, int], cfa: str, multiple: int) -> tuple[int, int]:
    """Packed ``(h, w)`` a raw ``(W, H)`` frame runs at: packed, then padded up to the model's size ``multiple``
    (:attr:`Subject.multiple`; 16 for the SID U-Net)."""
    from darkc.sizes import padded_hw

    return padded_hw(raw_wh, cfa, multiple)


@dataclass
class Subject:
    """The model under test.

    Attributes:
        ref: MODEL as given.
        kind: ``checkpoint`` / ``pretrained`` / ``onnx`` / ``tflite``.
        path: the file (exported kinds) or the checkpoint folder.
        runtime: host runtime (``ort`` / ``litert`` / ``torch``).
        cfa, scale, in_channels: packing of the input (``scale``: raw px per packed px, 2 Bayer / 3 X-Trans, whatever
            the output; ``in_channels`` with the noise-std channel of noise-conditioned models).
        layout: ``nchw`` / ``nhwc`` (of ``path``'s input).
        fixed: packed ``(h, w)`` of a fixed-size file, else None.
        checkpoint: the checkpoint folder to export from (the folder itself, or the one beside the file), or None.
        record: ``model.json``'s export record of this file (precision, target, options), or {}.
        notes: how files were obtained (exports made for this run).
        output, noise_input: the model's output kind (``srgb`` / ``raw``) and noise input (``none`` / ``std-map``).
        multiple: packed H and W must be multiples of this (the arch adapter's size multiple).
    """

    ref: str
    kind: str
    path: Path
    runtime: str
    cfa: str
    scale: int
    in_channels: int
    layout: str
    fixed: tuple[int, int] | None
    checkpoint: Path | None
    record: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    output: str = "srgb"
    noise_input: str = "none"
    multiple: int = 16

    def shape(self, hw: tuple[int, int]) -> tuple[int, int, int, int]:
        h, w = hw
        return (1, h, w, self.in_channels) if self.layout == "nhwc" else (1, self.in_channels, h, w)


def _record_beside(path: Path) -> tuple[Path | None, dict]:
    """(checkpoint folder beside an exported file, its export record) when model.json and weights are there."""
    spec_path, weights = path.with_name("model.json"), path.with_name("model.safetensors")
    if not (spec_path.is_file() and weights.is_file()):
        return None, {}
    try:
        spec = json.loads(spec_path.read_text())
    except (OSError, ValueError):
        return None, {}
    exports = spec.get("provenance", {}).get("exports", {}) if isinstance(spec, dict) else {}
    record = exports.get(path.name, {}) if isinstance(exports, dict) else {}
    return path.parent, record if isinstance(record, dict) else {}


def load_subject(model, runtime: str | None = None) -> Subject:
    """Resolve MODEL and the host runtime; a DarkcError for a non-model or a runtime that cannot run it."""
    from darkc.data import cfa as cfa_mod
    from darkc.models import io_kind, read_spec, resolve_model_ref, size_multiple_of

    if runtime is not None and runtime not in RUNTIMES:
        raise DarkcError(f"--runtime {runtime!r} is unknown; use one of {', '.join(RUNTIMES)}")
    kind, path = resolve_model_ref(model)
    if kind in ("onnx", "tflite"):
        own = RUNTIME_OF[kind]
        if runtime not in (None, own):
            raise DarkcError(f"{path} is a .{kind} file, which --runtime {runtime} cannot run; use --runtime {own}, "
                             f"or pass the checkpoint folder to have it exported")
        from darkc.inference import load_runner

        runner = load_runner(str(path), threads=1)
        checkpoint, record = _record_beside(path)
        return Subject(str(model), kind, path, own, runner.cfa, cfa_mod.scale(runner.cfa), runner.in_channels,
                       runner.layout, runner.fixed_size, checkpoint, record, output=runner.output,
                       noise_input=runner.noise_input, multiple=runner.multiple)
    spec = read_spec(path)
    output, noise = io_kind(spec)
    return Subject(str(model), kind, path, runtime or "ort", spec["cfa"], cfa_mod.scale(spec["cfa"]),
                   spec["in_channels"], "nchw", None, path, output=output, noise_input=noise,
                   multiple=size_multiple_of(spec))


def export_cached(checkpoint: Path, target: str, precision: str, input_size: str, note: str,
                  io: str = "float", float_layers: str | None = None,
                  int16_layers: str = "none") -> tuple[Path, str]:
    """``checkpoint`` exported to ``target``/``precision`` at ``input_size`` (raw HxW or ``dynamic``), cached.

    ``io="int8"``: int8 input/output tensors (TFLite int8 only), as an NPU deployment feeds them: a full-integer
    model (``float_layers="none"``, even for a raw-output model, whose default keeps its full-resolution layers in
    float: :mod:`darkc.export.float_layers`). ``float_layers``: int8 only, that rule instead (that of a file being
    re-exported at another size); ``int16_layers`` likewise.

    Returns:
        ``(file, note)``: the exported file and a sentence saying where it came from.
    """
    from darkc.export import export

    sha = sha256_file(checkpoint / "model.safetensors")[:16]
    name = f"model-{precision}.{'onnx' if target == 'onnx' else 'tflite'}"
    if float_layers is None or precision != "int8":
        float_layers = "none" if io == "int8" else "auto"
    int16_layers = int16_layers if precision == "int8" else "none"
    dest = (cache_dir() / "exports" / f"{sha}-{exporter_fingerprint()}"
            / (f"{target}-{precision}-{input_size}" + ("-io8" if io == "int8" else "")
               + ("" if float_layers == "auto" else f"-float-{float_layers}")
               + ("" if int16_layers == "none" else f"-int16-{int16_layers}")))
    out = dest / name
    if not out.is_file():
        dest.parent.mkdir(parents=True, exist_ok=True)
        # a private staging folder: two runs filling the same entry never write into each other's files
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
        try:
            opts = {"calib": "synthetic", "samples": BENCH_CALIB_SAMPLES, "io": io,
                    "float_layers": float_layers, "int16_layers": int16_layers} if precision == "int8" else {}
            export(str(checkpoint), tmp / name, target=target, precision=precision, input_size=input_size,
                   check=True, command=f"darkc bench ({note})", **opts)
            if not out.is_file():
                shutil.rmtree(dest, ignore_errors=True)     # a half-filled entry (no file): replace it
                try:
                    os.replace(tmp, dest)
                except OSError:
                    if not out.is_file():                   # not another run's finished entry: a real error
                        raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    io_note = ", int8 I/O" if io == "int8" else ""
    return out, (f"{target} {precision}{io_note} at {input_size} exported from {checkpoint} by darkc.export for {note} "
                 f"({BENCH_CALIB_SAMPLES} synthetic calibration samples; cached in {dest})" if precision == "int8" else
                 f"{target} {precision} at {input_size} exported from {checkpoint} by darkc.export for {note} "
                 f"(cached in {dest})")


def precision_of(subject: Subject, graph_dtype: str) -> str:
    """``fp32`` / ``fp16`` / ``int8``: the export record's when there is one, else what the graph holds."""
    return subject.record.get("precision") or graph_dtype


def raw_size(subject: Subject, hw: tuple[int, int]) -> str:
    """Export ``--input-size`` (raw ``HxW``) for packed ``hw``."""
    return f"{hw[0] * subject.scale}x{hw[1] * subject.scale}"


def host_file(subject: Subject, hw: tuple[int, int]) -> Path:
    """The file (or checkpoint folder) the host runtime loads: for a checkpoint and ort/litert, an fp32 export
    (ONNX with dynamic H/W; LiteRT fixed at packed ``hw``, as a phone app ships it)."""
    if subject.kind in ("onnx", "tflite") or subject.runtime == "torch":
        return subject.path
    target = TARGET_OF[subject.runtime]
    size = "dynamic" if target == "onnx" else raw_size(subject, hw)
    path, note = export_cached(subject.checkpoint, target, "fp32", size, "host timing")
    subject.notes.append(note)
    return path

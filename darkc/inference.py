"""Running a model on a whole packed raw frame: runners for every model format, and seamless tiling.

A :class:`Runner` hides the format (PyTorch checkpoint, ONNX, TFLite) behind one call::

    runner = load_runner("runs/student/model.onnx", threads=2)   # or "teacher", or a checkpoint dir
    rgb = enhance_packed(runner, amplify(read_raw("a.ARW").packed(), 250))   # (3, H, W) sRGB in [0, 1]

Runner input is packed raw, NCHW float32, black-level subtracted, multiplied by the exposure ratio and
clipped to [0, 1], followed for noise-conditioned models (``runner.noise_input == "std-map"``) by the noise-std
channel of :mod:`darkc.data.noise_level`. Output is sRGB, NCHW float32, 3 channels at ``scale`` times the input
size (``runner.output == "srgb"``), or the clean packed raw, same size and channels as the raw input (``"raw"``),
which :func:`enhance_raw_file` renders through LibRaw with the file's own colour.

:func:`enhance_packed` runs frames of any size in overlapping tiles with bounded memory. Tiles start on
multiples of the model's size multiple (16 for the SID U-Net, four 2x poolings), so every tile sees the same
pooling grid as a whole-frame pass. Neighbouring tiles overlap by at least ``overlap`` packed px and hand
over with a raised-cosine ramp ``min(overlap / 2, 32)`` px wide in the middle of the overlap, so output
pixels only come from tiles where they lie at least ``(overlap - ramp) / 2`` px from a cut (96 px with the
default overlap of 224, beyond the SID U-Net's reach of ~95 px: tiled output equals a whole-frame pass to
float rounding), and the blend has no seams.
"""
from __future__ import annotations

import abc
import contextlib
import functools
import io
import math
import os
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .data import cfa as cfa_mod
from .data.raw import check_finite
from .errors import DarkcError, one_line
from .sizes import DEFAULT_MULTIPLE, size_multiple

#: Largest window side in packed px; memory grows with its square, not with the frame (a 24 MP frame through
#: the full SID U-Net peaks near 1.3 GiB RSS with 1024, ~3 GiB in one whole-frame pass).
DEFAULT_TILE = 1024
#: Packed px shared by neighbouring tiles. The SID U-Net's output at a pixel depends on inputs up to ~95 packed
#: px away, so blending no nearer than 96 px to a cut, (224 - BLEND_WIDTH) / 2, makes tiled == whole-frame.
DEFAULT_OVERLAP = 224

#: How messages name each CFA kind.
CFA_NAMES = {"bayer": "Bayer", "xtrans": "X-Trans"}
_CFA_BY_CHANNELS = {cfa_mod.channels(k): k for k in CFA_NAMES}
#: Input channel counts of models without a model.json: packed raw, or packed raw + the noise-std channel.
_INPUT_BY_CHANNELS = {**{c: (k, "none") for c, k in _CFA_BY_CHANNELS.items()},
                      **{c + 1: (k, "std-map") for c, k in _CFA_BY_CHANNELS.items()}}


def _check_threads(threads) -> int | None:
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise DarkcError(f"--threads is {threads!r}; pass a positive integer (or leave it out for the default)")
    return threads


class Runner(abc.ABC):
    """A model that maps packed raw (N, C, h, w) float32 to sRGB (N, 3, h*scale, w*scale) float32.

    Attributes:
        name: what error messages call the model (a shipped name or a path).
        cfa: ``"bayer"`` or ``"xtrans"``; ``raw_channels`` (4 / 9) follows from it.
        output: ``"srgb"`` (3 channels at ``scale`` = 2 / 3 times the packed size) or ``"raw"`` (``raw_channels``
            at the packed size, ``scale`` 1).
        noise_input: ``"none"`` or ``"std-map"`` (one more input channel: ``in_channels`` = raw_channels + 1).
        multiple: packed h and w must be multiples of this.
        fixed_size: ``(h, w)`` in packed px for models exported at one size, else None (any size).
    """

    multiple: int = DEFAULT_MULTIPLE
    fixed_size: tuple[int, int] | None = None

    def __init__(self, name: str, cfa: str, output: str = "srgb", noise_input: str = "none"):
        self.name = name
        self.cfa = cfa
        self.output = output
        self.noise_input = noise_input
        self.raw_channels = cfa_mod.channels(cfa)
        self.in_channels = self.raw_channels + (1 if noise_input == "std-map" else 0)
        self.out_channels = self.raw_channels if output == "raw" else 3
        self.scale = 1 if output == "raw" else cfa_mod.scale(cfa)

    @abc.abstractmethod
    def __call__(self, x: np.ndarray) -> np.ndarray:
        """(1, C, h, w) float32 packed raw -> (1, 3, scale*h, scale*w) float32 sRGB."""

    def __repr__(self) -> str:
        size = "any size" if self.fixed_size is None else f"fixed {self.fixed_size[0]}x{self.fixed_size[1]}"
        return f"{type(self).__name__}({self.name!r}, {self.cfa}, {size})"


class TorchRunner(Runner):
    """A PyTorch model (a loaded checkpoint or shipped model), run on CPU in eval and inference mode.

    ``threads`` sets torch's (process-wide) intra-op thread count.
    """

    def __init__(self, model, spec: dict, name: str, threads: int | None = None):
        import torch

        super().__init__(name, spec["cfa"], spec.get("output", "srgb"), (spec.get("input") or {}).get("noise", "none"))
        self._torch = torch
        self.model = model.eval()
        self.multiple = size_multiple(model)
        threads = _check_threads(threads)
        if threads is not None:
            torch.set_num_threads(threads)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            return self.model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).float().numpy()


def _multiple(spec: dict) -> int:
    """Packed size multiple of the model ``spec`` (``model.json`` beside an exported file) describes."""
    from .models import size_multiple_of

    return size_multiple_of(spec)


def _spec_beside(path: Path) -> dict | None:
    """The normalised spec in ``model.json`` next to an exported model, or None if there is none."""
    from .models import read_spec

    json_path = path.with_name("model.json")
    return read_spec(json_path) if json_path.is_file() else None


def _dim(value) -> int | None:
    """A static positive dimension, or None for a dynamic one (ONNX strings/None, TFLite -1)."""
    return int(value) if isinstance(value, (int, np.integer)) and value > 0 else None


def _input_layout(shape, spec: dict | None, where: Path) -> tuple[str, str, tuple[int, int] | None, str]:
    """From a 4-D input shape: ``(layout "nchw"/"nhwc", cfa, fixed (h, w) or None, noise input)``.

    The channel axis is the one holding the spec's ``in_channels`` (or 4 / 9, 5 / 10 with a noise channel,
    without a spec).
    """
    if len(shape) != 4:
        raise DarkcError(f"{where}: the model input has shape {list(shape)}; darkc needs a 4-D packed raw input "
                         f"(1, C, h, w) or (1, h, w, C) - re-export it")
    dims = [_dim(d) for d in shape]
    wanted = [spec["in_channels"]] if spec else list(_INPUT_BY_CHANNELS)
    for layout, c_axis, hw in (("nchw", 1, (2, 3)), ("nhwc", 3, (1, 2))):
        if dims[c_axis] in wanted:
            cfa, noise = (spec["cfa"], (spec.get("input") or {}).get("noise", "none")) if spec \
                else _INPUT_BY_CHANNELS[dims[c_axis]]
            h, w = dims[hw[0]], dims[hw[1]]
            if (h is None) != (w is None):
                raise DarkcError(f"{where}: input shape {list(shape)} is dynamic in one of h, w only; "
                                 f"re-export with both dynamic or both fixed")
            return layout, cfa, None if h is None else (h, w), noise
    expect = f"{spec['in_channels']} channels (from model.json)" if spec else \
        "4 (Bayer) or 9 (X-Trans) channels, 5 or 10 with a noise channel"
    raise DarkcError(f"{where}: input shape {list(shape)} has no axis with {expect}; "
                     f"pass a darkc packed-raw model, or fix model.json beside it")


def _output_kind(spec: dict | None, out_shape, layout: str, cfa: str) -> str:
    """'raw' or 'srgb': from model.json, else from the output's channel count (3: sRGB, the CFA's: raw)."""
    if spec:
        return spec.get("output", "srgb")
    shape = list(out_shape)
    channels = _dim(shape[1 if layout == "nchw" else 3]) if len(shape) == 4 else None
    return "raw" if channels == cfa_mod.channels(cfa) else "srgb"


def _to_layout(x: np.ndarray, layout: str) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1) if layout == "nhwc" else x)


def _from_layout(y: np.ndarray, layout: str) -> np.ndarray:
    return y.transpose(0, 3, 1, 2) if layout == "nhwc" else y


class OnnxRunner(Runner):
    """An ONNX model run by onnxruntime on the CPU execution provider.

    The spec comes from ``model.json`` beside the ``.onnx`` when there is one, else from the input shape
    (4 channels: Bayer, 9: X-Trans). A fixed input h, w in the graph sets :attr:`fixed_size`.
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None):
        import onnxruntime as ort

        path = Path(path)
        threads = _check_threads(threads)
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if threads is not None:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        try:
            # onnxruntime prints an "EP Error ... Falling back" banner to stdout before retrying a file it cannot
            # load; the retry fails the same way and the one-line error below says it
            with contextlib.redirect_stdout(io.StringIO()):
                self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
            raise DarkcError(f"cannot load ONNX model {path}: {one_line(exc)}; re-export it") from exc
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or len(self.session.get_outputs()) != 1:
            raise DarkcError(f"{path}: the model has {len(inputs)} inputs and {len(self.session.get_outputs())} "
                             f"outputs; darkc needs one packed-raw input and one sRGB output")
        self._input = inputs[0].name
        self._fp16 = inputs[0].type == "tensor(float16)"
        spec = _spec_beside(path)
        self.layout, cfa, self.fixed_size, noise = _input_layout(inputs[0].shape, spec, path)
        super().__init__(str(path), cfa, _output_kind(spec, self.session.get_outputs()[0].shape, self.layout, cfa), noise)
        if spec is not None:
            self.multiple = _multiple(spec)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = _to_layout(x.astype(np.float16 if self._fp16 else np.float32, copy=False), self.layout)
        try:
            y = self.session.run(None, {self._input: x})[0]
        except Exception as exc:  # onnxruntime's Fail / InvalidArgument / RuntimeException, multi-line text
            raise DarkcError(f"{self.name}: ONNX Runtime failed running it on a {tuple(x.shape)} input: "
                             f"{one_line(exc)[:200]}; the file is corrupt or was not exported by darkc, re-export it") from exc
        return np.asarray(_from_layout(y, self.layout), dtype=np.float32)


#: sha256 of .tflite files a child process loaded without crashing (see :func:`check_tflite_loads`).
_LOADS_SAFELY: set[str] = set()
_PROBE = ("import sys\nfrom ai_edge_litert.interpreter import Interpreter\n"
          "it = Interpreter(model_path=sys.argv[1], num_threads=1)\nit.allocate_tensors()\n")


def check_tflite_loads(path: str | os.PathLike, timeout: float = 120.0) -> None:
    """Load ``path`` with LiteRT in a child process first: a corrupt flatbuffer can crash LiteRT's native loader
    (a segmentation fault found by ``benchmarks/fuzz_loaders.py``), which must not take darkc down. A Python error
    in the child is left for the caller's own load to report; a signal or a hang is a one-line DarkcError. Each file
    content is probed once per process."""
    import hashlib
    import subprocess
    import sys

    path = Path(path)
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise DarkcError(f"cannot read TFLite model {path}: {exc.strerror or exc}; check the path") from exc
    if digest in _LOADS_SAFELY:
        return
    try:
        proc = subprocess.run([sys.executable, "-c", _PROBE, str(path)], capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise DarkcError(f"cannot load TFLite model {path}: LiteRT did not finish loading it in {timeout:.0f} s; "
                         f"the file is corrupt or not a TFLite model, re-export it") from exc
    if proc.returncode < 0:
        raise DarkcError(f"cannot load TFLite model {path}: LiteRT crashed reading it (signal {-proc.returncode}); "
                         f"the file is corrupt or not a TFLite model, re-export it")
    _LOADS_SAFELY.add(digest)


class TFLiteRunner(Runner):
    """A TFLite model run by LiteRT (``ai_edge_litert``, the ``darkc[tflite]`` extra).

    NHWC or NCHW input is read off the input shape; int8/uint8/int16 inputs and outputs are quantised and
    dequantised with the tensors' own (scale, zero point); a dynamic input (``shape_signature`` with -1) is
    resized to each tile, a fixed one sets :attr:`fixed_size`.
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None):
        path = Path(path)
        threads = _check_threads(threads)
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:
            raise DarkcError(f"cannot run {path}: the TFLite runtime is not installed; "
                             f"install darkc[tflite] (pip install ai-edge-litert)") from exc
        check_tflite_loads(path)
        try:
            self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
            self.interpreter.allocate_tensors()
        except Exception as exc:  # LiteRT raises ValueError/RuntimeError with multi-line text
            raise DarkcError(f"cannot load TFLite model {path}: {one_line(exc)}; re-export it") from exc
        inputs, outputs = self.interpreter.get_input_details(), self.interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise DarkcError(f"{path}: the model has {len(inputs)} inputs and {len(outputs)} outputs; darkc "
                             f"needs one packed-raw input and one sRGB output")
        self._in, self._out = inputs[0], outputs[0]
        signature = self._in.get("shape_signature")
        signature = self._in["shape"] if signature is None or len(signature) == 0 else signature
        spec = _spec_beside(path)
        self.layout, cfa, self.fixed_size, noise = _input_layout(list(signature), spec, path)
        self._shape = tuple(int(d) for d in self._in["shape"])
        super().__init__(str(path), cfa, _output_kind(spec, list(self._out["shape"]), self.layout, cfa), noise)
        if spec is not None:
            self.multiple = _multiple(spec)

    def _resize(self, shape: tuple[int, ...]) -> None:
        if shape != self._shape:
            self.interpreter.resize_tensor_input(self._in["index"], list(shape), strict=False)
            self.interpreter.allocate_tensors()
            self._shape = shape

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.concatenate([self._run_one(x[i:i + 1]) for i in range(x.shape[0])], axis=0)

    def _run_one(self, x: np.ndarray) -> np.ndarray:
        x = _to_layout(x, self.layout)
        self._resize(tuple(x.shape))
        self.interpreter.set_tensor(self._in["index"], quantize_tensor(x, self._in))
        try:
            self.interpreter.invoke()
        except RuntimeError as exc:  # e.g. "Input tensor 25 lacks data" in a corrupt file
            raise DarkcError(f"{self.name}: LiteRT failed running it: {one_line(exc)[:200]}; the file is corrupt or "
                             f"was not exported by darkc, re-export it") from exc
        y = dequantize_tensor(self.interpreter.get_tensor(self._out["index"]), self._out)
        return np.ascontiguousarray(_from_layout(y, self.layout))


def _quant_params(detail: dict) -> tuple[float, int]:
    scale, zero = detail.get("quantization", (0.0, 0))
    return float(scale), int(zero)


def quantize_tensor(x: np.ndarray, detail: dict) -> np.ndarray:
    """Float ``x`` as the dtype of a TFLite tensor ``detail`` (``get_input_details()`` entry): cast, or scaled,
    shifted by the zero point, rounded and clipped for an integer tensor."""
    dtype = np.dtype(detail["dtype"])
    if dtype.kind == "f":
        return x.astype(dtype, copy=False)
    scale, zero = _quant_params(detail)
    if scale <= 0:
        raise DarkcError(f"TFLite input '{detail.get('name')}' is {dtype} without quantisation parameters; "
                         f"re-export with a float or quantised input")
    info = np.iinfo(dtype)
    return np.clip(np.rint(x / scale) + zero, info.min, info.max).astype(dtype)


def dequantize_tensor(y: np.ndarray, detail: dict) -> np.ndarray:
    """A TFLite tensor ``y`` of ``detail`` (``get_output_details()`` entry) as float32."""
    if np.dtype(y.dtype).kind == "f":
        return y.astype(np.float32, copy=False)
    scale, zero = _quant_params(detail)
    if scale <= 0:
        raise DarkcError(f"TFLite output '{detail.get('name')}' is {y.dtype} without quantisation parameters; "
                         f"re-export with a float or quantised output")
    return ((y.astype(np.float32) - zero) * scale).astype(np.float32)


def load_runner(ref, threads: int | None = None) -> Runner:
    """A runner for a ``--model`` argument: a shipped name, a checkpoint directory, a ``.onnx`` or a ``.tflite``.

    Args:
        ref: the model reference (see :func:`darkc.models.resolve_model_ref`); a :class:`Runner` is returned as is.
        threads: CPU threads for inference; None keeps the runtime's default (ignored for a given Runner).

    Raises:
        DarkcError: the reference does not resolve, or the model cannot be loaded (message names the file).
    """
    if isinstance(ref, Runner):
        return ref
    from .models import load_checkpoint, resolve_model_ref

    kind, path = resolve_model_ref(ref)
    if kind in ("pretrained", "checkpoint"):
        model, spec = load_checkpoint(path)
        return TorchRunner(model, spec, name=str(ref) if kind == "pretrained" else str(path), threads=threads)
    if kind == "onnx":
        return OnnxRunner(path, threads)
    return TFLiteRunner(path, threads)


# --- tiling ---------------------------------------------------------------------------------------------

#: Width (packed px) of the raised-cosine blend between two tiles; it sits in the middle of their overlap.
BLEND_WIDTH = 32


def _blend(overlap: int) -> tuple[float, float]:
    """``(margin, width)``: a tile's weight is 0 within ``margin`` packed px of a cut, 1 past ``margin + width``."""
    width = min(overlap / 2, BLEND_WIDTH)
    return (overlap - width) / 2, width


def _ramp(d: np.ndarray, margin: float, width: float) -> np.ndarray:
    if width <= 0:
        return (d >= margin).astype(np.float64)
    t = np.clip((d - margin) / width, 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * t)


def _ceil_to(value: float, multiple: int) -> int:
    return math.ceil(value / multiple) * multiple


def _axis_plan(length: int, tile: int, overlap: int, multiple: int, fixed: int | None, scale: int
               ) -> tuple[int, int, list[int], np.ndarray]:
    """Tiles along one axis of ``length`` packed px.

    Returns:
        ``(padded, window, starts, weights)``: the padded length (a multiple of ``multiple``, at least the
        fixed size), the window the model sees (``tile`` or less: windows are evened out so the last one
        does not mostly repeat its neighbour), the window starts (multiples of ``multiple``), and the blend
        weights at output resolution, shape (len(starts), padded * scale), summing to 1 at every pixel.
    """
    padded = _ceil_to(length, multiple)
    if fixed is not None:
        window = fixed
        padded = max(padded, window)
    else:
        window = min(tile, padded)
        if window < padded:
            n = 1 + math.ceil((padded - window) / max((window - overlap) // multiple * multiple, 1))
            even = _ceil_to((padded + (n - 1) * overlap) / n, multiple)
            window = min(window, max(even, _ceil_to(overlap + 1, multiple)))
    if window >= padded:
        return padded, padded, [0], np.ones((1, padded * scale))
    step = (window - overlap) // multiple * multiple
    if step < multiple:
        what, fix = (f"the model's fixed input size {window}", "a smaller overlap") if fixed is not None else \
            (f"tile {window}", "a larger tile or a smaller overlap")
        raise DarkcError(f"{what} with overlap {overlap} leaves no room to advance (tiles advance in steps of "
                         f"{multiple} packed px); use {fix}")
    n = 1 + math.ceil((padded - window) / step)
    units = (padded - window) // multiple
    starts = [round(i * units / (n - 1)) * multiple for i in range(n)]
    margin, width = _blend(overlap)
    centres = (np.arange(padded * scale) + 0.5) / scale
    weights = np.zeros((n, padded * scale))
    for i, s in enumerate(starts):
        w = ((centres >= s) & (centres < s + window)).astype(np.float64)
        if s > 0:
            w *= _ramp(centres - s, margin, width)
        if s + window < padded:
            w *= _ramp(s + window - centres, margin, width)
        weights[i] = w
    total = weights.sum(axis=0)
    assert (total > 0).all(), "tile plan leaves pixels without weight"
    return padded, window, starts, weights / total


def _describe_cfa(cfa: str) -> str:
    return f"{cfa_mod.channels(cfa)}-channel {CFA_NAMES[cfa]}"


def enhance_packed(runner: Runner, packed: np.ndarray, tile: int = DEFAULT_TILE, overlap: int | None = None,
                   progress: bool = True, source: str = "packed input") -> np.ndarray:
    """Run ``runner`` over a whole packed raw frame, in overlapping tiles when it is larger than ``tile``.

    Args:
        runner: the model (see :func:`load_runner`).
        packed: (C, h, w) float32 packed raw, black-level subtracted, amplified by the exposure ratio and
            clipped to [0, 1]; C must be ``runner.in_channels``.
        tile: largest window side in packed px (rounded down to the model's multiple, 16; windows are evened
            out over the frame); ignored for fixed-size models, whose window is their input size. Memory
            grows with tile**2, not with the frame.
        overlap: packed px shared by neighbouring tiles; output pixels come only from tiles where they are at
            least ``(overlap - min(overlap / 2, 32)) / 2`` px from a cut. The SID U-Net's output depends on
            inputs up to ~95 px away, so the default 224 matches a whole-frame pass; smaller overlaps cost
            less compute and differ near the cuts (smoothly: there are no seams). None: 224, or a quarter
            of the window for a model exported at a fixed size too small to advance with 224.
        progress: show a tqdm bar over the tiles (not for a single tile).
        source: names the input (the raw file) in error messages.

    Returns:
        (3, h * scale, w * scale) float32 sRGB clipped to [0, 1] (sRGB models), or (C, h, w) clean packed raw
        clipped to [0, 1] (raw-output models).

    Raises:
        DarkcError: wrong channel count or shape, NaN/Inf input, bad tile/overlap, or a model that returns
            the wrong shape or NaN/Inf.
    """
    packed = np.asarray(packed)
    if packed.ndim != 3:
        raise DarkcError(f"{source}: packed raw must be (C, h, w), got shape {tuple(packed.shape)}")
    c, h, w = packed.shape
    if c != runner.in_channels:
        got = f"is {_describe_cfa(_CFA_BY_CHANNELS[c])}" if c in _CFA_BY_CHANNELS else f"has {c} channels"
        noise = " with a noise channel" if runner.noise_input != "none" else ""
        raise DarkcError(f"model {runner.name} expects {_describe_cfa(runner.cfa)} input{noise} but {source} {got}; "
                         f"pass a model for that sensor" + (" (or the input from model_input)" if noise else ""))
    check_finite(packed, source)
    if isinstance(tile, bool) or not isinstance(tile, (int, np.integer)) or tile < runner.multiple:
        raise DarkcError(f"tile is {tile!r}; pass a tile of at least {runner.multiple} packed px (e.g. {DEFAULT_TILE})")
    auto_overlap = overlap is None
    overlap = DEFAULT_OVERLAP if overlap is None else overlap
    if isinstance(overlap, bool) or not isinstance(overlap, (int, np.integer)) or overlap < 0:
        raise DarkcError(f"overlap is {overlap!r}; pass a non-negative number of packed px (e.g. {DEFAULT_OVERLAP})")
    m, s = runner.multiple, runner.scale
    tile = int(tile) // m * m
    fixed = runner.fixed_size or (None, None)
    for f in fixed:
        if f is not None and f % m:
            raise DarkcError(f"model {runner.name} has fixed input size {runner.fixed_size}, not a multiple of {m}; "
                             f"re-export it at a multiple of {m}")
    # a model exported at a small fixed size cannot advance with the default overlap: use a quarter window
    ov = [min(int(overlap), f // 4 // m * m) if auto_overlap and f is not None and f - overlap < m else int(overlap)
          for f in fixed]
    ph, th, ys, wys = _axis_plan(h, tile, ov[0], m, fixed[0], s)
    pw, tw, xs, wxs = _axis_plan(w, tile, ov[1], m, fixed[1], s)

    packed = packed.astype(np.float32, copy=False)
    if (ph, pw) != (h, w):
        packed = np.pad(packed, ((0, 0), (0, ph - h), (0, pw - w)), mode="reflect")
    out_h, out_w = h * s, w * s
    oc = runner.out_channels
    out = np.zeros((oc, out_h, out_w), np.float32)
    expected = (1, oc, th * s, tw * s)
    tiles = [(i, j) for i in range(len(ys)) for j in range(len(xs))]
    bar = tqdm(tiles, desc=f"enhance {Path(source).name}", unit="tile", disable=not progress or len(tiles) == 1)
    for i, j in bar:
        y0, x0 = ys[i], xs[j]
        oy0, ox0 = y0 * s, x0 * s
        oy1, ox1 = min(oy0 + th * s, out_h), min(ox0 + tw * s, out_w)
        if oy1 <= oy0 or ox1 <= ox0:
            continue
        result = runner(np.ascontiguousarray(packed[None, :, y0:y0 + th, x0:x0 + tw]))
        if tuple(result.shape) != expected:
            what = f"3-channel sRGB at {s}x" if runner.output == "srgb" else f"{oc}-channel packed raw"
            raise DarkcError(f"model {runner.name} returned shape {tuple(result.shape)} for input "
                             f"{(1, c, th, tw)}; expected {expected} ({what}) - check the export")
        if not np.isfinite(result).all():
            raise DarkcError(f"model {runner.name} produced NaN/Inf on {source} (tile at packed y={y0}, x={x0}); "
                             f"check the model (e.g. float16 overflow) or the exposure ratio")
        weight = (wys[i, oy0:oy1, None] * wxs[j, None, ox0:ox1]).astype(np.float32)
        out[:, oy0:oy1, ox0:ox1] += result[0, :, :oy1 - oy0, :ox1 - ox0] * weight
    bar.close()
    return np.clip(out, 0.0, 1.0, out=out)


# --- whole raw files -------------------------------------------------------------------------------------
def model_input(runner: Runner, packed: np.ndarray, ratio: float, level=None) -> np.ndarray:
    """The runner's input for an amplified packed frame: the noise-std channel appended for noise-conditioned
    models (``level``: the capture's :class:`darkc.data.noise_level.NoiseLevel`), unchanged otherwise."""
    from .data.noise_level import condition

    return condition(packed, ratio, level, runner.noise_input)


#: Gaussian sigma (packed px) over which a raw-output model's local means are put back to its input's
#: (:func:`anchor_means`); benchmarks/results/colour_anchor_probe.md measured 4-32 on a real night raw and the
#: synthetic sets: 16 took teacher-raw's cast on the Sony ILCE-7RM3 crop from 0.052 to 0.006 and gained 0.20 /
#: 0.09 dB on 12 reference / held-out-sensor pairs; 4-8 cost up to 1.6 dB (the input's noise passes through)
ANCHOR_SIGMA = 16.0


#: :func:`_blur_low` works on this many rows at a time (a multiple of its 4x downscale)
_CHUNK_ROWS = 256


def _smooth(a: np.ndarray, sigma: float) -> np.ndarray:
    """Each plane of ``a`` (C, h, w) Gaussian-blurred at ``sigma`` px: for ``sigma`` >= 8, a blur at ``sigma / 4``
    of a 4x area-downscaled copy, upsampled bilinearly (on a 4 x 540 x 960 ramp with a bright square: within 0.001
    of the exact blur at the square's edges, 4e-5 on average; 10 ms against 71 ms exact, in one run on this 2-core
    host); smaller sigmas, exact."""
    import cv2

    a = np.asarray(a, np.float32)
    h, w = a.shape[1:]
    low, f = _blur_low(a, h, w, sigma)
    if f == 1:
        return low
    size = (low.shape[2] * f, low.shape[1] * f)
    return np.stack([cv2.resize(p, size, interpolation=cv2.INTER_LINEAR)[:h, :w] for p in low])


def _blur_low(img: np.ndarray, h: int, w: int, sigma: float, decode=None) -> tuple[np.ndarray, int]:
    """:func:`_smooth`'s blur of ``img[:, :h, :w]`` (``decode`` applied to each value first, e.g. to linear light)
    kept at its working resolution: ``(blurred (C, ceil(h / f), ceil(w / f)), f)``, f = 4 for ``sigma`` >= 8 (the
    frame edge-padded to a multiple of 4, area-downscaled), else 1. In row chunks, so a decoded frame never exists
    whole at full resolution."""
    import cv2

    f = 4 if sigma >= 8 else 1
    pw = -w % f
    lows = []
    for y0 in range(0, h, _CHUNK_ROWS):
        y1 = min(h, y0 + _CHUNK_ROWS)
        c = img[:, y0:y1, :w]
        c = decode(c) if decode is not None else np.asarray(c, np.float32)
        ph = -(y1 - y0) % f
        if ph or pw:
            c = np.pad(c, ((0, 0), (0, ph), (0, pw)), mode="edge")
        size = (c.shape[2] // f, c.shape[1] // f)
        lows.append(np.stack([cv2.resize(p, size, interpolation=cv2.INTER_AREA) for p in c]) if f > 1 else c)
    low = np.concatenate(lows, axis=1)
    return np.stack([cv2.GaussianBlur(p, (0, 0), sigma / f, borderType=cv2.BORDER_REFLECT) for p in low]), f


def _sites_by_colour(colours: list[int]) -> list[list[int]]:
    """The packed channels of each colour, e.g. Bayer's [R, G, B, G] -> [[0], [1, 3], [2]]."""
    return [[i for i, c in enumerate(colours) if c == colour] for colour in sorted(set(colours))]


def _shrink(d: np.ndarray, var: np.ndarray) -> np.ndarray:
    """The factor ``max(0, 1 - 2 var / d^2)`` by which the anchors shrink a correction ``d`` of estimate variance
    ``var``: nothing where the correction is within the estimate's noise."""
    return np.clip(1.0 - 2.0 * var / np.maximum(d * d, 1e-20), 0.0, 1.0)


#: brightness bins of :func:`balance_sites`' per-site correction curve (quantiles of the colour's level), at
#: most; fewer on small frames so that each bin averages at least :data:`BALANCE_BIN_PX` pixels
BALANCE_BINS = 16
BALANCE_BIN_PX = 8192


def balance_sites(out: np.ndarray, signed_input: np.ndarray, colours: list[int]) -> np.ndarray:
    """``out`` (C, h, w) with the CFA sites of one colour (Bayer's two greens; X-Trans' five greens, two reds, two
    blues) put back to the input's balance between them, as a function of brightness over the whole frame. A
    network can leave its sites of one colour apart by an amount that depends on the level (student-raw's greens on
    the Sony ILCE-7RM3 night raw: -0.0016 in the shadows, +11 % in the highlights, benchmarks/results/real_raws),
    a 2x2 pattern and a tint after demosaicing that a per-colour local anchor cannot see. Per colour, pixels are
    binned by the colour's mean level in ``out`` (:data:`BALANCE_BINS` quantile bins, fewer where a bin would average
    under :data:`BALANCE_BIN_PX` pixels; none under two); in each bin each site's mean
    residual ``input - out`` less the colour's mean residual is its correction ``d``, shrunk by ``max(0, 1 - 2 se^2
    / d^2)`` (``se`` its standard error from the residual's spread), and interpolated over the bins' mean levels.
    A bin averages 32k pixels on a 1080p packed frame, so the input's noise barely moves it; the colour's
    own level is left to the local anchor. Pixels where any site of the input is clipped at white are left out."""
    signed_input = np.asarray(signed_input, np.float32)
    keep = (signed_input < 0.98).all(axis=0)
    n_bins = min(BALANCE_BINS, int(keep.sum()) // BALANCE_BIN_PX)
    if n_bins < 2:
        return out
    out = np.array(out, np.float32)
    for idx in _sites_by_colour(colours):
        if len(idx) < 2:
            continue
        level = out[idx].mean(axis=0)
        v = level[keep]
        resid = signed_input[idx][:, keep] - out[idx][:, keep]                  # (sites, n)
        edges = np.unique(np.quantile(v, np.linspace(0.0, 1.0, n_bins + 1)))
        if len(edges) < 3:
            continue
        bins = np.clip(np.searchsorted(edges, v, side="right") - 1, 0, len(edges) - 2)
        nb = len(edges) - 1
        count = np.bincount(bins, minlength=nb).astype(np.float64)
        ok = count >= BALANCE_BIN_PX // 4                                # ties can make a bin small
        if ok.sum() < 2:
            continue
        centre = np.bincount(bins, v, nb)[ok] / count[ok]
        mean = np.stack([np.bincount(bins, r, nb)[ok] for r in resid]) / count[ok]
        sq = np.stack([np.bincount(bins, r * r, nb)[ok] for r in resid]) / count[ok]
        se2 = np.maximum(sq - mean * mean, 0.0) / count[ok]
        d = mean - mean.mean(axis=0)
        d *= _shrink(d, se2)
        for k, i in enumerate(idx):
            out[i] += np.interp(level, centre, d[k]).astype(np.float32)
    return out


def anchor_means(out: np.ndarray, signed_input: np.ndarray, sigma: float | None = None, level=None,
                 ratio: float = 1.0) -> np.ndarray:
    """A raw-output model's clean packed raw ``out`` (C, h, w) with its local means (Gaussian, ``sigma`` packed px)
    put back to those of its amplified input, not clipped at black (``signed_input``): camera noise is
    zero-mean there, so the input's local mean is the clean raw's, and a difference at that scale is the model's
    own colour or level error (a network trained on natural scenes pulls a stage light's extreme colour toward its
    training colours: benchmarks/results/real_raws). Detail finer than ``sigma`` is the model's.

    The input's mean carries its own noise, std ``sqrt(var / (4 pi sigma^2))`` for per-pixel variance ``var``;
    with the capture's :class:`darkc.data.noise_level.NoiseLevel` ``level`` (at ``ratio``) each correction ``d``
    is shrunk by ``max(0, 1 - 2 var_d / d^2)``, so a model already right is left alone where the difference is
    noise. The channels of one colour (4 packed channels: Bayer, 9: X-Trans) share one correction, their mean;
    their balance with each other is set over the whole frame first (:func:`balance_sites`).
    ``sigma`` None: :data:`ANCHOR_SIGMA`; 0: ``out`` as it is. Blurs by :func:`_smooth`."""
    sigma = ANCHOR_SIGMA if sigma is None else sigma
    if not sigma:
        return out
    kind = {4: "bayer", 9: "xtrans"}.get(out.shape[0])
    colours = cfa_mod.channel_colours(kind) if kind else list(range(out.shape[0]))
    out = balance_sites(np.asarray(out, np.float32), signed_input, colours)
    d = _smooth(np.asarray(signed_input, np.float32) - out, sigma)
    var_d = None
    if level is not None:
        gain, read2 = level.amplified(ratio)
        var_d = _smooth(gain * np.maximum(out, 0.0) + read2, sigma) / (4 * math.pi * sigma ** 2)
    # one correction per colour, not per CFA site: Bayer's two greens (X-Trans' five) offset apart by the input's
    # noise would be a green imbalance, a 2x2 pattern after demosaicing (teacher-raw's checkerboard on the reference
    # set rose from 0.61 to 0.76/255 with per-channel corrections)
    for idx in _sites_by_colour(colours):
        dc = d[idx].mean(axis=0)
        if var_d is not None:
            dc *= _shrink(dc, var_d[idx].mean(axis=0) / len(idx))
        d[idx] = dc
    return (out + d).astype(np.float32)


def _bt709_to_linear(v: np.ndarray) -> np.ndarray:
    """LibRaw's default output curve (gamma 2.222, toe slope 4.5: BT.709) undone."""
    v = np.clip(v, 0.0, 1.0)
    return np.where(v < 0.081, v / 4.5, ((v + 0.099) / 1.099) ** (1 / 0.45)).astype(np.float32)


def _linear_to_bt709(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return np.where(x < 0.018, 4.5 * x, 1.099 * x ** 0.45 - 0.099).astype(np.float32)


_ENCODE_BITS = 20


@functools.lru_cache(maxsize=1)
def _bt709_luts() -> tuple[np.ndarray, np.ndarray]:
    """Tables for LibRaw's curve: 16-bit code -> linear, and linear on a 20-bit grid -> curve value (the largest
    step of the second, in the toe, is 4.5 / 2^20 = 4e-6 of full scale)."""
    decode = _bt709_to_linear(np.arange(65536, dtype=np.float64) / 65535)
    encode = _linear_to_bt709(np.arange(1 << _ENCODE_BITS, dtype=np.float64) / ((1 << _ENCODE_BITS) - 1))
    return decode, encode


def _decode(v: np.ndarray) -> np.ndarray:
    """Curve values (float in [0, 1], or LibRaw's uint16 codes) -> linear float32, by table at 16 bits."""
    if v.dtype != np.uint16:
        v = np.rint(np.clip(v, 0.0, 1.0) * 65535).astype(np.uint16)
    return _bt709_luts()[0][v]


def _encode(x: np.ndarray) -> np.ndarray:
    return _bt709_luts()[1][np.rint(np.clip(x, 0.0, 1.0) * ((1 << _ENCODE_BITS) - 1)).astype(np.int32)]


def anchor_srgb(out: np.ndarray, path, ratio: float, signed_packed: np.ndarray, sigma: float | None = None,
                scale: int = 2) -> np.ndarray:
    """An sRGB model's output ``out`` (3, H, W) for raw file ``path`` at ``ratio`` with its local chromaticity
    (Gaussian, ``sigma`` packed px = ``sigma * scale`` image px, in linear light) put back to that of the file's
    own render: LibRaw's render, with the file's white balance and colour matrix, of its packed raw averaged over
    the same scale *before* the black clip (``signed_packed``, amplified here), so the input's noise neither
    tints nor lifts it. The model keeps its brightness and every detail finer than ``sigma``; only the ratios
    between R, G and B at that scale become the camera's. For sRGB models that learnt one camera's colour (SID's
    kind): benchmarks/results/srgb_anchor.md. ``out`` is changed in place and returned. ``sigma`` None:
    :data:`ANCHOR_SIGMA`; 0: ``out`` as it is."""
    from .data.raw import render_packed
    from .data.render import XTRANS_MIN

    sigma = ANCHOR_SIGMA if sigma is None else sigma
    if not sigma:
        return out
    if signed_packed.shape[0] == 9 and min(out.shape[1:]) < XTRANS_MIN:
        tqdm.write(f"warning: {Path(path).name} is under {XTRANS_MIN} px on a side, the least LibRaw renders of an "
                   f"X-Trans frame: its colour is the model's (no --srgb-anchor)", file=sys.stderr)
        return out
    ref = render_packed(path, srgb_anchor_raw(signed_packed, ratio, sigma), u16=True).transpose(2, 0, 1)
    return chroma_to(out, ref, sigma * scale)


def srgb_anchor_raw(signed_packed: np.ndarray, ratio: float, sigma: float | None = None) -> np.ndarray:
    """The packed raw whose render is :func:`anchor_srgb`'s colour reference: the amplified raw averaged over
    ``sigma`` packed px before any clip at black, then clipped to [0, 1]."""
    sigma = ANCHOR_SIGMA if sigma is None else sigma
    return np.clip(_smooth(np.asarray(signed_packed, np.float32) * np.float32(ratio), sigma), 0.0, 1.0)


def chroma_to(out: np.ndarray, ref: np.ndarray, sigma_px: float) -> np.ndarray:
    """``out`` (3, H, W, float, LibRaw's BT.709 curve) with its local ratios between R, G and B (Gaussian
    ``sigma_px``, linear light) made those of ``ref`` (3, h, w, same curve, float in [0, 1] or LibRaw's uint16;
    the common top-left part is used), its brightness kept: per channel ``(ref_c / mean(ref)) / (out_c /
    mean(out))`` at that scale. Changed in place and returned, in row chunks through 16-bit tables (a 42-MP frame
    needed 1.8 GB more with whole-frame float copies)."""
    import cv2

    h, w = min(ref.shape[1], out.shape[1]), min(ref.shape[2], out.shape[2])
    m_out, f = _blur_low(out, h, w, sigma_px, _decode)
    m_ref, _ = _blur_low(ref, h, w, sigma_px, _decode)
    eps = np.float32(1e-4)
    gain = (m_ref + eps) / (m_out + eps) * ((m_out.mean(axis=0) + eps) / (m_ref.mean(axis=0) + eps))[None]
    xs = ((np.arange(w) + 0.5) / f - 0.5).astype(np.float32)
    for y0 in range(0, h, _CHUNK_ROWS):
        y1 = min(h, y0 + _CHUNK_ROWS)
        # bilinear up to full resolution, as cv2.resize of the gain would (borders replicated)
        mx, my = np.meshgrid(xs, ((np.arange(y0, y1) + 0.5) / f - 0.5).astype(np.float32))
        g = np.stack([cv2.remap(p, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE) for p in gain])
        out[:, y0:y1, :w] = _encode(_decode(out[:, y0:y1, :w]) * g)
    return out


def raw_output_to_srgb(out: np.ndarray, path, ratio: float, level=None,
                       signed_packed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A raw-output model's packed output for raw file ``path`` at ``ratio``: anchored to the file's own means
    (:func:`anchor_means`, against ``signed_packed``, the file's packed raw not clipped at black, read here when
    None; ``level``: the capture's noise level, else the file's, :func:`darkc.data.noise_level.level_of_file`, else,
    when the file is too small or textured to estimate it, none: no shrinkage) and
    rendered by LibRaw with the file's white balance and colour matrix. Returns ``(srgb (H, W, 3), anchored packed
    (C, h, w))``."""
    from .data.noise_level import level_of_file
    from .data.raw import amplify, read_raw, render_packed

    if ANCHOR_SIGMA:
        if level is None:                         # a model without noise input: the level only tunes the shrinkage
            try:
                level = level_of_file(path)
            except DarkcError:                    # too small or textured to estimate: anchor without shrinking
                level = None
        if signed_packed is None:
            signed_packed = read_raw(path, signed=True).packed()
        out = anchor_means(out, amplify(signed_packed, ratio), level=level, ratio=ratio)
    return render_packed(path, out), out


def enhance_raw_file(runner: Runner, path, ratio: float, *, level=None, tile: int = DEFAULT_TILE,
                     overlap: int | None = None, progress: bool = True, frame=None,
                     srgb_anchor: bool = False) -> np.ndarray:
    """:func:`run_raw_file`'s sRGB only."""
    return run_raw_file(runner, path, ratio, level=level, tile=tile, overlap=overlap, progress=progress, frame=frame,
                        srgb_anchor=srgb_anchor)[0]


def run_raw_file(runner: Runner, path, ratio: float, *, level=None, tile: int = DEFAULT_TILE,
                 overlap: int | None = None, progress: bool = True, frame=None,
                 srgb_anchor: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """One raw file through ``runner`` to sRGB, whatever the model's output kind.

    sRGB models give their output; raw-output models' clean packed raw, its local means put back to the file's
    (:func:`anchor_means`), is rendered by LibRaw with the file's own white balance and colour matrix
    (:func:`darkc.data.raw.render_packed`). ``frame``: the file as :func:`darkc.data.raw.read_raw` read it, best
    ``signed=True`` (the network gets it clipped at black either way; the anchor uses it as it is). Noise-conditioned
    models take
    the capture's noise level: ``level`` if given, else :func:`darkc.data.noise_level.level_of_file`.
    ``srgb_anchor``: an sRGB model's local chromaticity is put back to the file's own render
    (:func:`anchor_srgb`; off by default, so SID-kind figures stay the paper's protocol).

    Returns:
        ``(srgb, packed)``: (3, H, W) float32 sRGB in [0, 1], the frame :func:`darkc.data.raw.read_raw` gives
        (canonical phase), and for raw-output models their (C, h, w) packed raw output, anchored (None for sRGB
        models).
    """
    from .data.raw import amplify, read_raw

    frame = frame if frame is not None else read_raw(path, signed=True)
    signed = frame.packed()                    # not clipped at black when read signed: the colour anchor's reference
    check_finite(signed, f"raw data of {path}")
    packed = amplify(np.maximum(signed, 0.0), ratio)
    if runner.noise_input != "none" and level is None:
        from .data.noise_level import level_of_file

        level = level_of_file(path)
    out = enhance_packed(runner, model_input(runner, packed, ratio, level), tile=tile, overlap=overlap,
                         progress=progress, source=str(path))
    if runner.output == "raw":
        srgb, out = raw_output_to_srgb(out, path, ratio, level, signed_packed=signed)
        return srgb.transpose(2, 0, 1), out
    if srgb_anchor:
        out = anchor_srgb(out, path, ratio, signed, scale=runner.scale)
    return out, None

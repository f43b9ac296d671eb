"""INT8 post-training quantisation: ONNX Runtime static quantisation (QDQ) calibrated on packed raw inputs.

The stage ``darkc quantize`` is ``darkc export --precision int8``; both run :func:`darkc.export.export`, which
exports the FP32 graph and calls :func:`quantize_onnx` on it with samples from :mod:`darkc.export.calibration`
(the TFLite INT8 path, :mod:`darkc.export.tflite_int8`, takes the same samples). Ten lines of use::

    from darkc.export import quantize
    report = quantize("runs/student", "runs/student-int8", calib="synthetic", method="entropy")
    print(report["calibration"]["reduce_range"], report["parity"]["psnr_db"])

Choices (recorded in the artifact's ``model.json``, ``provenance.exports["model.onnx"].calibration``):

- QDQ format, weights QInt8 symmetric per output channel, activations QUInt8 (asymmetric). The packed raw input
  lies in [0, 1] and every hidden tensor follows a LeakyReLU(0.2), so activations are far from symmetric; with a
  zero point, uint8 and int8 activations give the same accuracy (measured: identical PSNR), but U8 activations x
  S8 weights is ONNX Runtime's native x86 integer conv kernel: QInt8 activations ran 1.4x slower (full SID U-Net
  at packed 272x480, 1 thread: 172 ms vs 120 ms; 0.25-width: 65 ms vs 46 ms).
- ``reduce_range`` (7-bit weights): on x86 CPUs without VNNI, ONNX Runtime's fused U8S8 kernels use
  ``vpmaddubsw``, which adds pairs of u8 x s8 products in int16 and saturates; measured on the SID U-Net this cost
  INT8-vs-FP32 agreement 41.8 dB (fused, saturating) against 58.5 dB. :func:`cpu_int8_info` reads
  ``/proc/cpuinfo``: with ``avx512_vnni`` / ``avx_vnni`` / ``amx_int8`` (``vpdpbusd`` accumulates in int32) or on
  non-x86 CPUs it keeps full 8-bit weights, on AVX2-only x86 it sets ``reduce_range=True``. The decision is for the
  CPU that runs the export; pass ``reduce_range=True`` when the model will run on an older x86 CPU.
- Calibration methods ``minmax`` (default: never clips, so highlights survive), ``percentile`` (99.999th, asymmetric)
  and ``entropy`` (KL threshold). ``quantize_static`` cannot pass a histogram size to its calibrator, and its
  entropy default (128 bins, 128 quantised bins) leaves one candidate threshold, the full range: entropy silently
  equals minmax. Ranges are therefore computed here with :data:`HISTOGRAM_BINS` bins and handed to
  ``quantize_static`` through its calibration cache. ORT's entropy thresholds are symmetric (-t, t); they are
  intersected with the observed [min, max] so a non-negative tensor keeps all uint8 levels.
- ``quant_pre_process`` (shape inference + ORT basic graph optimisation) runs with ``auto_merge=True``: on the
  dynamic-H/W graph symbolic shape inference stops ("Incomplete symbolic shape inference") without it.
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import platform
import tempfile
from pathlib import Path

import numpy as np

from darkc.errors import DarkcError, one_line
from darkc.export.float_layers import onnx_full_res_nodes

#: ``--calib-method`` values -> ONNX Runtime ``CalibrationMethod`` member names.
CALIB_METHODS = {"minmax": "MinMax", "percentile": "Percentile", "entropy": "Entropy"}
#: Histogram bins for percentile / entropy calibration (ORT's entropy search tries num_bins/2 - 64 thresholds).
HISTOGRAM_BINS = 512
#: Quantised bins of the entropy (KL) search: 128 = the positive half of an 8-bit range.
ENTROPY_QUANTIZED_BINS = 128
#: Percentile kept by ``percentile`` calibration (on each side, asymmetric).
PERCENTILE = 99.999
#: CPU flags (``/proc/cpuinfo``) whose int8 dot product accumulates in int32 (no U8S8 saturation).
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
#: Samples per calibrator pass: histogram methods hold every hidden tensor of a pass in memory.
_CHUNK = 4


def check_method(method: str) -> str:
    """Return ``method`` if it is a ``--calib-method`` value; a :class:`DarkcError` listing them otherwise."""
    if method not in CALIB_METHODS:
        raise DarkcError(f"--calib-method {method!r} is unknown; use one of {', '.join(CALIB_METHODS)}")
    return method


def check_reduce_range(value) -> bool | None:
    """``--reduce-range``: ``auto``/None (decide from this CPU), ``on``/True, ``off``/False."""
    choices = {None: None, "auto": None, True: True, "on": True, False: False, "off": False}
    key = value.lower() if isinstance(value, str) else value
    if isinstance(key, (str, bool)) or key is None:
        if key in choices:
            return choices[key]
    raise DarkcError(f"--reduce-range {value!r} is unknown; use auto (decide from this CPU), on or off")


# ---------------------------------------------------------------- CPU decision
def cpu_int8_info(cpuinfo: str | os.PathLike = "/proc/cpuinfo", machine: str | None = None) -> dict:
    """Decide ``reduce_range`` for ONNX Runtime's int8 kernels on this CPU.

    Args:
        cpuinfo: file to read the x86 ``flags`` line from (``/proc/cpuinfo``); missing -> no flags known.
        machine: ``platform.machine()`` override (for tests).

    Returns:
        ``{"machine", "cpu_flags" (the int8-relevant flags found), "reduce_range", "reason"}``.
    """
    machine = machine or platform.machine()
    flags: set[str] = set()
    try:
        for line in Path(cpuinfo).read_text(errors="replace").splitlines():
            if line.startswith("flags"):
                flags.update(line.partition(":")[2].split())
                break
    except OSError:
        pass
    relevant = sorted(f for f in flags if f in (*VNNI_FLAGS, "avx2", "avx512f", "avx512bw"))
    x86 = machine.lower() in ("x86_64", "amd64", "i386", "i686") or "avx2" in flags
    vnni = [f for f in VNNI_FLAGS if f in flags]
    if not x86:
        reduce, reason = False, (f"{machine}: no x86 U8S8 saturation (ARM int8 kernels widen to 16/32 bit "
                                 f"before adding); full 8-bit weights")
    elif vnni:
        reduce, reason = False, (f"x86 with {', '.join(vnni)}: int8 dot products accumulate in int32 "
                                 f"(vpdpbusd), no saturation; full 8-bit weights")
    elif "avx2" in flags or "avx512bw" in flags:
        reduce, reason = True, ("x86 without VNNI: ONNX Runtime's U8S8 kernels use vpmaddubsw, whose int16 pair "
                                "sums saturate; 7-bit weights (reduce_range) avoid it")
    else:
        reduce, reason = True, ("x86 CPU flags unknown (no /proc/cpuinfo flags): 7-bit weights (reduce_range) "
                                "in case its U8S8 kernels saturate")
    return {"machine": machine, "cpu_flags": relevant, "reduce_range": reduce, "reason": reason}


# ---------------------------------------------------------------- ONNX Runtime quantisation
class _Reader:
    """ONNX Runtime CalibrationDataReader over a list of inputs."""

    def __init__(self, name: str, inputs: list[np.ndarray]):
        self._items = iter([{name: x} for x in inputs])

    def get_next(self):
        return next(self._items, None)

    def __iter__(self):
        return self

    def __next__(self):
        item = self.get_next()
        if item is None:
            raise StopIteration
        return item


@contextlib.contextmanager
def _quiet():
    """Silence ONNX Runtime's quantisation prints and warnings (they go to stdout / the root logger)."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)


def _compute_ranges(model_path: Path, input_name: str, inputs: list[np.ndarray], method: str, work: Path):
    """Run the calibrator ourselves (quantize_static cannot set histogram bins) and return its TensorsData."""
    from onnxruntime.quantization import CalibrationMethod, create_calibrator
    from onnxruntime.quantization.calibrate import TensorData, TensorsData
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    options = {}
    if method == "entropy":
        options = {"num_bins": HISTOGRAM_BINS, "num_quantized_bins": ENTROPY_QUANTIZED_BINS, "symmetric": False}
    elif method == "percentile":
        options = {"num_bins": HISTOGRAM_BINS, "percentile": PERCENTILE, "symmetric": False}
    calibrator = create_calibrator(model_path, sorted(set(QLinearOpsRegistry) | set(QDQRegistry)),
                                   augmented_model_path=str(work / "augmented.onnx"),
                                   calibrate_method=CalibrationMethod[CALIB_METHODS[method]],
                                   providers=["CPUExecutionProvider"], extra_options=options)
    for start in range(0, len(inputs), _CHUNK):
        calibrator.collect_data(_Reader(input_name, inputs[start:start + _CHUNK]))
    ranges = calibrator.compute_data()
    if method == "entropy":
        # ORT's KL thresholds are symmetric (-t, t); keep them inside the observed [min, max]
        seen = calibrator.collector.histogram_dict
        adjusted = {}
        for name, data in ranges.items():
            lo, hi = data.range_value
            dmin, dmax = seen[name][2], seen[name][3]
            lo = np.asarray(max(_scalar(lo), _scalar(dmin)), dtype=np.float32)
            hi = np.asarray(min(_scalar(hi), _scalar(dmax)), dtype=np.float32)
            adjusted[name] = TensorData(lowest=lo, highest=hi)
        ranges = TensorsData(ranges.calibration_method, adjusted)
    del calibrator
    return ranges


def _scalar(value) -> float:
    return float(np.asarray(value, dtype=np.float64).ravel()[0])


def _summarise(ranges, graph_path: Path, input_name: str, output_name: str) -> dict:
    """Ranges for the record: input, last quantised tensor before the output, widths, and every tensor."""
    import onnx

    table = {name: [_scalar(d.range_value[0]), _scalar(d.range_value[1])] for name, d in sorted(ranges.items())}
    producer = {o: n for n in onnx.load(str(graph_path), load_external_data=False).graph.node for o in n.output}
    last = output_name
    while last not in table and last in producer and producer[last].input:
        last = producer[last].input[0]       # e.g. through DepthToSpace, which is not quantised
    widths = np.array([hi - lo for lo, hi in table.values()])
    return {
        "tensors": len(table),
        "input": table.get(input_name),
        "output": {"tensor": last, "range": table.get(last)},
        "width_median": float(np.median(widths)) if len(widths) else None,
        "width_max": float(widths.max()) if len(widths) else None,
        "per_tensor": table,
    }


def quantize_onnx(fp32_path: str | os.PathLike, out_path: str | os.PathLike, inputs: list[np.ndarray],
                  method: str = "minmax", reduce_range: bool | None = None, input_name: str = "raw",
                  output_name: str = "srgb", float_layers: str = "none", int16_layers: str = "none") -> dict:
    """Quantise an FP32 ONNX graph to INT8 QDQ, calibrated on ``inputs``.

    Args:
        fp32_path: the FP32 model (dynamic or fixed H/W).
        out_path: where the INT8 QDQ model is written (not atomically: pass a staging path).
        inputs: calibration samples, (1, C, h, w) float32 packed raw (see :func:`calibration_inputs`); their
            size must fit the graph (any multiple of 16 for a dynamic graph).
        method: ``minmax`` / ``percentile`` / ``entropy``.
        reduce_range: 7-bit weights; None decides from this CPU (:func:`cpu_int8_info`).
        float_layers: ``none`` (every node INT8) or ``full-res`` (nodes at the input's height and width stay
            float, :mod:`darkc.export.float_layers`; ``auto`` is resolved by the caller).
        int16_layers: ``none`` or ``full-res`` (those nodes' activations, and the input, uint16: the graph is
            moved to opset 21, which ONNX Runtime's quantiser does on its own).

    Returns:
        The calibration record: method, histogram settings, samples, weight/activation types, per-channel,
        reduce_range with the CPU flags and reason, pre-processing, ORT version and the ranges (summary plus
        ``per_tensor`` [min, max]).

    Raises:
        DarkcError: bad method, no inputs, or ONNX Runtime failed (message says at which step).
    """
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.calibrate import save_tensors_data
    from onnxruntime.quantization.shape_inference import quant_pre_process

    method = check_method(method)
    reduce_range = check_reduce_range(reduce_range)
    if not inputs:
        raise DarkcError("INT8 quantisation needs calibration samples; got none")
    cpu = cpu_int8_info()
    decided = "auto" if reduce_range is None else "given"
    reduce = cpu["reduce_range"] if reduce_range is None else bool(reduce_range)
    record = {
        "method": method,
        "format": "QDQ",
        "weights": "int8 symmetric, per output channel",
        "activations": "uint8 asymmetric, per tensor",
        "reduce_range": reduce,
        "reduce_range_decision": decided,
        "reduce_range_reason": cpu["reason"] if reduce_range is None else "set by the caller",
        "cpu": {"machine": cpu["machine"], "flags": cpu["cpu_flags"]},
        "onnxruntime": ort.__version__,
    }
    if method == "entropy":
        record["histogram"] = {"num_bins": HISTOGRAM_BINS, "num_quantized_bins": ENTROPY_QUANTIZED_BINS,
                               "range": "symmetric KL threshold intersected with observed [min, max]"}
    elif method == "percentile":
        record["histogram"] = {"num_bins": HISTOGRAM_BINS, "percentile": PERCENTILE}

    with tempfile.TemporaryDirectory(prefix="darkc-quant-") as tmp:
        work = Path(tmp)
        pre = work / "pre.onnx"
        try:
            with _quiet():
                quant_pre_process(str(fp32_path), str(pre), auto_merge=True)
            record["preprocess"] = "quant_pre_process(auto_merge=True)"
        except Exception as exc:  # symbolic shape inference raises bare Exception
            pre = Path(fp32_path)
            record["preprocess"] = f"skipped: quant_pre_process failed ({one_line(exc)[:200]})"
        step = "calibration"
        if float_layers not in ("none", "full-res"):
            raise DarkcError(f"float_layers {float_layers!r}: resolve 'auto' with darkc.export.float_layers first")
        full_res = onnx_full_res_nodes(pre, inputs[0].shape) if "full-res" in (float_layers, int16_layers) else []
        excluded = full_res if float_layers == "full-res" else []
        record["float_layers"] = {"rule": float_layers, "nodes": excluded}
        wide = []
        if int16_layers == "full-res":
            import onnx

            nodes = set(full_res)
            graph = onnx.load(str(pre), load_external_data=False).graph
            wide = sorted({input_name} | {o for n in graph.node if n.name in nodes for o in n.output})
        record["int16_layers"] = {"rule": int16_layers, "tensors": wide}
        overrides = {"TensorQuantOverrides": {t: [{"quant_type": QuantType.QUInt16}] for t in wide}} if wide else None
        try:
            with _quiet():
                ranges = _compute_ranges(pre, input_name, inputs, method, work)
                cache = work / "ranges.json"
                save_tensors_data(ranges, cache)
                step = "quantize_static"
                quantize_static(str(pre), str(out_path), calibration_data_reader=None,
                                quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=reduce,
                                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                                calibrate_method=CalibrationMethod[CALIB_METHODS[method]],
                                calibration_cache_path=str(cache), nodes_to_exclude=excluded,
                                extra_options=overrides)
        except DarkcError:
            raise
        except Exception as exc:  # onnxruntime raises many types (Fail, RuntimeError, ValueError)
            raise DarkcError(f"INT8 quantisation failed in {step} of {fp32_path}: {one_line(exc)[:300]}; "
                             f"check the calibration inputs fit the model's input size") from exc
    shapes = sorted({tuple(x.shape[2:]) for x in inputs})
    record["samples"] = len(inputs)
    record["sample_sizes"] = [list(s) for s in shapes]
    record["ranges"] = _summarise(ranges, Path(fp32_path), input_name, output_name)
    return record

"""Parity of an exported model with the PyTorch model it came from.

Every export runs both on a few synthetic packed raw inputs (darkc's built-in validation photos through
:class:`darkc.data.datasets.SyntheticPairs`: amplified, noisy, clipped to [0, 1], as the model sees in use) and
compares the outputs (sRGB, or the clean packed raw of raw-output models)::

    record = check_parity(model, "runs/student/model.onnx", "fp16")
    record["psnr_db"], record["max_abs"], record["passed"]

PSNR is taken against the range of the PyTorch output (max - min), not a fixed peak of 1, so a model whose
output spans less than [0, 1] (an untrained one) is not flattered. Thresholds per precision are in
:data:`THRESHOLDS`.
"""
from __future__ import annotations

import os

import numpy as np

from darkc.errors import DarkcError

#: Pass criteria per precision, set below what random-weight SID U-Nets measure (full width 32..512 and 0.25 width,
#: PyTorch default init and signal-preserving He init, so activations span what a trained net's do):
#: fp32 max abs 1e-7 .. 2e-6 (float rounding); fp16 80-86 dB; int8 (minmax, 8-16 samples) 37-59 dB, worst
#: with He init (quarter 36.8 dB, full 39.3 dB; percentile / entropy +1.2 dB). Below ~30 dB INT8 output visibly
#: departs from FP32 (banding in dark gradients), so 30 dB is the floor, not a target.
THRESHOLDS: dict[str, dict] = {
    "fp32": {"max_abs": 1e-4},
    "fp16": {"psnr_db": 45.0},
    "int8": {"psnr_db": 30.0},
}
#: Packed (h, w) of the inputs of a dynamic-size model: two shapes, so both dynamic axes are exercised.
DYNAMIC_SIZES: tuple[tuple[int, int], ...] = ((64, 96), (96, 64))
#: Number of inputs compared.
DEFAULT_INPUTS = 3
#: Seed of the parity inputs (calibration uses the training photos, parity the validation photos).
PARITY_SEED = 1
#: PSNR reported when the outputs are identical.
PSNR_IDENTICAL = 200.0


def psnr(output: np.ndarray, reference: np.ndarray) -> float:
    """PSNR in dB of ``output`` against ``reference``, peak = the reference's range (max - min).

    Args:
        output, reference: arrays of the same shape (any layout, float).

    Returns:
        PSNR in dB, :data:`PSNR_IDENTICAL` when the arrays are equal.

    Raises:
        ValueError: the shapes differ.
    """
    output, reference = np.asarray(output, np.float64), np.asarray(reference, np.float64)
    if output.shape != reference.shape:
        raise ValueError(f"psnr: output shape {output.shape} differs from reference shape {reference.shape}")
    from darkc.metrics import psnr_db

    mse = float(np.mean((output - reference) ** 2))
    peak = float(reference.max() - reference.min()) or 1.0
    return min(psnr_db(mse, peak), PSNR_IDENTICAL)


def parity_inputs(cfa: str, fixed_size: tuple[int, int] | None = None, count: int = DEFAULT_INPUTS,
                  seed: int = PARITY_SEED, spec: dict | None = None) -> list[np.ndarray]:
    """``count`` inputs (1, C[+1], h, w) float32 of the model of ``spec`` (default: a plain sRGB model of ``cfa``;
    a noise-conditioned model's carry the noise-std channel): at ``fixed_size`` for a fixed-size model, else
    cycling through :data:`DYNAMIC_SIZES`."""
    from darkc.export.calibration import synthetic_inputs

    sizes = [fixed_size] * count if fixed_size else [DYNAMIC_SIZES[i % len(DYNAMIC_SIZES)] for i in range(count)]
    inputs = []
    for i, size in enumerate(sizes):
        inputs += synthetic_inputs(cfa, 1, size, seed=seed + i, split="val", spec=spec)[0]
    return inputs


def runner_spec(runner) -> dict:
    """The parts of a model spec :func:`parity_inputs` needs, from a loaded :class:`darkc.inference.Runner`."""
    return {"cfa": runner.cfa, "output": runner.output, "input": {"noise": runner.noise_input}}


def check_parity(model, exported: str | os.PathLike, precision: str, fixed_size: tuple[int, int] | None = None,
                 count: int = DEFAULT_INPUTS) -> dict:
    """Compare an exported model (``.onnx`` or ``.tflite``, via :func:`darkc.inference.load_runner`) with ``model``.

    Args:
        model: the PyTorch model (eval mode) the file was exported from.
        exported: the exported file.
        precision: ``fp32`` / ``fp16`` / ``int8``: picks the criterion in :data:`THRESHOLDS`.
        fixed_size: packed (h, w) for a fixed-size export, None for dynamic H/W.
        count: number of inputs.

    Returns:
        ``{"inputs": [[h, w], ...], "max_abs", "mean_abs", "psnr_db" (worst input), "criterion", "passed"}``.

    Raises:
        DarkcError: unknown precision, the exported model cannot be loaded or returns the wrong shape.
    """
    import torch

    from darkc.inference import load_runner

    if precision not in THRESHOLDS:
        raise DarkcError(f"precision {precision!r} is unknown; use one of {', '.join(THRESHOLDS)}")
    runner = load_runner(str(exported))
    cfa = runner.cfa
    inputs = parity_inputs(cfa, fixed_size, count, spec=runner_spec(runner))
    max_abs, mean_abs, worst = 0.0, [], PSNR_IDENTICAL
    for x in inputs:
        with torch.inference_mode():
            ref = model(torch.from_numpy(x)).float().numpy()
        out = runner(x)
        if out.shape != ref.shape:
            raise DarkcError(f"{exported} returns shape {tuple(out.shape)} for input {tuple(x.shape)} but the PyTorch "
                             f"model returns {tuple(ref.shape)}; the export is broken - re-export")
        diff = np.abs(out.astype(np.float64) - ref)
        max_abs = max(max_abs, float(diff.max()))
        mean_abs.append(float(diff.mean()))
        worst = min(worst, psnr(out, ref))
    limits = THRESHOLDS[precision]
    if "max_abs" in limits:
        passed, criterion = max_abs < limits["max_abs"], f"max_abs < {limits['max_abs']:g}"
    else:
        passed, criterion = worst > limits["psnr_db"], f"psnr_db > {limits['psnr_db']:g}"
    return {"inputs": [list(x.shape[2:]) for x in inputs], "source": f"synthetic validation photos, seed {PARITY_SEED}",
            "max_abs": max_abs, "mean_abs": float(np.mean(mean_abs)), "psnr_db": round(worst, 2),
            "criterion": criterion, "passed": bool(passed)}

"""Physical sensor noise (ELD, Wei et al. 2020): shot, read, row, quantisation."""
from __future__ import annotations

import numpy as np


def sample_gain(rng: np.random.Generator, profile) -> float:
    lo, hi = profile.gain_range
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def sample_sigmas(rng: np.random.Generator, k: float, profile) -> tuple[float, float]:
    """Read and row noise sigmas (DN) of one capture: the profile's log-linear fits at K, spread by sigma_log."""
    sig_read = profile.read_sigma(k) * np.exp(rng.normal(0.0, profile.sigma_log))
    sig_row = profile.row_sigma(k) * np.exp(rng.normal(0.0, profile.sigma_log))
    return float(sig_read), float(sig_row)


def expose(signal_dn: np.ndarray, k: float, profile, rng: np.random.Generator,
           sigmas: tuple[float, float] | None = None) -> np.ndarray:
    """Noise-free signal in DN above black (H, W) -> quantised raw DN (uint16) with sensor noise.

    Shot noise is Poisson in electrons (signal/K), read noise Gaussian, row noise one Gaussian offset
    per row, then black level added, rounded and clipped to [0, white]. ``sigmas`` (read, row) fixes
    the read/row noise levels (the frames of one video share them); None samples them per call.
    """
    electrons = np.maximum(signal_dn, 0.0) / k
    shot = rng.poisson(electrons).astype(np.float64) * k
    sig_read, sig_row = sample_sigmas(rng, k, profile) if sigmas is None else sigmas
    h, w = signal_dn.shape
    read = rng.normal(0.0, sig_read, size=(h, w))
    row = rng.normal(0.0, sig_row, size=(h, 1))
    raw = shot + read + row + profile.black
    return np.clip(np.round(raw), 0, profile.white).astype(np.uint16)


def expected_variance(signal_dn: np.ndarray, k: float, profile) -> np.ndarray:
    """Variance in DN^2 the model predicts at a noise-free signal (median read/row sigmas)."""
    return k * np.maximum(signal_dn, 0.0) + profile.read_sigma(k) ** 2 + profile.row_sigma(k) ** 2 + 1.0 / 12.0

"""Unprocessing (Brooks et al. 2019, "Unprocessing Images for Learned Raw Denoising").

sRGB in [0, 1] -> inverse tone curve -> inverse gamma -> sRGB-linear to camera RGB -> inverse white
balance and brightness -> linear camera RGB in [0, 1] (1 = sensor saturation above black).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# linear sRGB -> XYZ (D65)
RGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375],
                       [0.2126729, 0.7151522, 0.0721750],
                       [0.0193339, 0.1191920, 0.9503041]])


@dataclass(frozen=True)
class UnprocessParams:
    """What was undone, so the raw file can carry it (as-shot neutral, colour matrix)."""
    rgb_to_cam: np.ndarray   # 3x3, rows sum to 1
    red_gain: float
    blue_gain: float
    brightness: float        # the scene is darkened by 1/brightness before white balance is undone

    @property
    def as_shot_neutral(self) -> tuple[float, float, float]:
        return (1.0 / self.red_gain, 1.0, 1.0 / self.blue_gain)


def rgb_to_cam_matrix(xyz_to_cam: np.ndarray) -> np.ndarray:
    m = xyz_to_cam @ RGB_TO_XYZ
    return m / m.sum(axis=1, keepdims=True)


def sample_params(rng: np.random.Generator, profile) -> UnprocessParams:
    return UnprocessParams(
        rgb_to_cam=rgb_to_cam_matrix(profile.xyz_to_cam_matrix),
        red_gain=float(rng.uniform(*profile.red_gain)),
        blue_gain=float(rng.uniform(*profile.blue_gain)),
        brightness=float(1.0 / np.clip(rng.normal(0.8, 0.1), 0.5, 1.1)),
    )


def inverse_smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return 0.5 - np.sin(np.arcsin(1.0 - 2.0 * x) / 3.0)


def gamma_expansion(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 1e-8) ** 2.2


def safe_invert_gains(rgb: np.ndarray, red_gain: float, blue_gain: float, brightness: float) -> np.ndarray:
    """Divide by the white-balance gains without letting highlights hit saturation (Brooks' trick)."""
    gains = np.array([1.0 / red_gain, 1.0, 1.0 / blue_gain]) / brightness
    gray = rgb.mean(axis=-1, keepdims=True)
    inflection = 0.9
    mask = (np.maximum(gray - inflection, 0.0) / (1.0 - inflection)) ** 2.0
    safe_gains = np.maximum(mask + (1.0 - mask) * gains, gains)
    return rgb * safe_gains


def unprocess(srgb: np.ndarray, params: UnprocessParams) -> np.ndarray:
    """(H, W, 3) sRGB in [0, 1] -> (H, W, 3) linear camera RGB in [0, 1]."""
    x = gamma_expansion(inverse_smoothstep(srgb.astype(np.float64)))
    x = x @ params.rgb_to_cam.T
    x = safe_invert_gains(x, params.red_gain, params.blue_gain, params.brightness)
    return np.clip(x, 0.0, 1.0)

"""One camera sensor's description for the synthetic pipeline (levels, colour matrix, noise model): the record
that built-in profiles (:mod:`darkc.data.profiles`) and profile files (:mod:`darkc.data.profile_file`) hold."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class CameraProfile:
    name: str
    cfa: str                      # 'bayer' | 'xtrans'
    bit_depth: int
    black: int                    # DN
    white: int                    # DN (saturation)
    xyz_to_cam: tuple             # 9 floats, row-major, DNG ColorMatrix1 convention
    gain_range: tuple             # (K_min, K_max) DN / electron, sampled log-uniformly
    a_read: float
    b_read: float
    a_row: float
    b_row: float
    sigma_log: float = 0.15       # spread of the log-linear fits (per image)
    red_gain: tuple = (1.9, 2.4)  # white-balance multipliers sampled per image (Brooks et al. 2019)
    blue_gain: tuple = (1.5, 1.9)
    long_exposure: float = 10.0   # seconds, as in SID (10 s or 30 s)
    make: str = "darkc"
    model: str = field(default="")

    @property
    def span(self) -> int:
        """DN between black and saturation: what darkc's [0, 1] normalisation divides by."""
        return self.white - self.black

    def iso_of_gain(self, k: float) -> int:
        """The ISO a capture at system gain ``k`` is labelled with (base ISO 100 at the lowest gain)."""
        return int(round(100 * k / self.gain_range[0]))

    def gain_of_iso(self, iso: float) -> float:
        """Inverse of :meth:`iso_of_gain` (to the rounding of the ISO label)."""
        return float(iso) * self.gain_range[0] / 100.0

    @property
    def xyz_to_cam_matrix(self) -> np.ndarray:
        return np.asarray(self.xyz_to_cam, dtype=np.float64).reshape(3, 3)

    def read_sigma(self, k: float) -> float:
        return float(np.exp(self.a_read * np.log(k) + self.b_read))

    def row_sigma(self, k: float) -> float:
        return float(np.exp(self.a_row * np.log(k) + self.b_row))

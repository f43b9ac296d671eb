"""Ordinary (sRGB) video as dark raw: each frame unprocessed to a camera's raw and exposed at 1/ratio of its light.

Raw video is rarely at hand, so ``darkc video`` also takes any video file ffmpeg reads, or a folder of images,
and makes each frame the raw a camera would have recorded in the dark, the way darkc makes its training pairs
(Brooks et al. 2019, "Unprocessing Images for Learned Raw Denoising": :mod:`darkc.data.unprocess`; sensor noise
of :mod:`darkc.data.noise`): sRGB -> linear -> camera RGB -> white balance and brightness undone -> mosaic of the
profile's CFA, then shot/read/row noise and 14-bit quantisation for an exposure of 1/ratio. One camera (colour
matrix, white balance, gain, read/row noise levels) serves the whole video; every frame gets fresh noise.

The result is only as dark as the simulation: the light, noise and colour of a real dark capture come from a
model, not from the scene. No ground truth exists, so only no-reference metrics are reported.
"""
from __future__ import annotations

import numpy as np

from ..data import cfa as cfa_mod
from ..data.noise import expose, sample_gain, sample_sigmas
from ..data.profiles import CameraProfile, get_profile
from ..data.raw import RawFrame
from ..data.unprocess import sample_params, unprocess

#: exposure ratio used when none is given for an sRGB source (SID's shortest: x100)
DEFAULT_RATIO = 100.0


class Darkener:
    """sRGB frames (H, W, 3) float in [0, 1] -> dark :class:`RawFrame` of one simulated camera.

    Args:
        cfa: the CFA the model expects ("bayer" or "xtrans").
        profile: camera profile name or object (default: the CFA's default profile).
        ratio: exposure ratio; the frame gets 1/ratio of the light the sRGB image shows.
        seed: picks the camera parameters and the noise.
    """

    def __init__(self, cfa: str, profile: str | CameraProfile | None = None, ratio: float = DEFAULT_RATIO,
                 seed: int = 0):
        self.profile = profile if isinstance(profile, CameraProfile) else get_profile(profile, cfa)
        self.cfa, self.ratio, self.seed = self.profile.cfa, float(ratio), seed
        rng = np.random.default_rng([seed, 9001])
        self.params = sample_params(rng, self.profile)
        self.gain = sample_gain(rng, self.profile)
        self.sigmas = sample_sigmas(rng, self.gain, self.profile)

    def describe(self) -> str:
        return (f"sRGB frames unprocessed to {self.profile.name} raw ({self.cfa}) after Brooks et al. 2019 "
                f"(darkc.data.unprocess) and exposed at 1/{self.ratio:g} of their light with simulated sensor noise "
                f"(darkc.data.noise: shot, read, row, 14-bit): a simulated dark capture, not a real one")

    def __call__(self, srgb: np.ndarray, index: int, source: str) -> RawFrame:
        t = cfa_mod.tile(self.cfa)
        h, w = srgb.shape[0] // t * t, srgb.shape[1] // t * t
        prof = self.profile
        span = float(prof.white - prof.black)
        signal = cfa_mod.mosaic(unprocess(np.clip(srgb[:h, :w], 0.0, 1.0), self.params), self.cfa) * span
        dn = expose(signal / self.ratio, self.gain, prof, np.random.default_rng([self.seed, 9002, index]),
                    sigmas=self.sigmas)
        mosaic = np.clip((dn.astype(np.float32) - prof.black) / span, 0.0, 1.0).astype(np.float32)
        return RawFrame(path=f"{source}#{index}", cfa=self.cfa, mosaic=mosaic, black=[prof.black] * 4,
                        white=prof.white, offset=(0, 0), wb=(self.params.red_gain, 1.0, self.params.blue_gain))

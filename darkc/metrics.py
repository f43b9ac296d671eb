"""Full-reference image quality metrics: PSNR and SSIM, for numpy images and torch batches.

The numpy functions (:func:`psnr`, :func:`ssim`) reproduce scikit-image's
``peak_signal_noise_ratio`` and ``structural_similarity(..., channel_axis=-1, data_range=...)`` with its
defaults (uniform 7x7 window, K1=0.01, K2=0.03, sample covariance ``N/(N-1)``, a 3-pixel border left out
of the mean, channels averaged). The torch functions (:func:`psnr_torch`, :func:`ssim_torch`) compute
the same numbers per image of an NCHW batch, so training-time validation and offline evaluation agree.

Protocol note (SID, Chen et al. 2018): metrics here are computed on the float output as given, no 8-bit
quantisation. Clip the network output to ``[0, 1]`` first, as the SID test script does. Numbers computed
on saved 8-bit PNGs can differ slightly; to reproduce them, quantise both images first
(``np.round(img * 255) / 255``). This SSIM is scikit-image's (uniform 7x7 window). It is not the
Gaussian 11x11 SSIM of Wang et al. (MATLAB ``ssim``, ``gaussian_weights=True``), and the two give
different numbers.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["psnr", "ssim", "psnr_torch", "ssim_torch", "ssim_map_torch", "psnr_db", "deltae", "checkerboard",
           "CHECKER_BLOCK"]

SSIM_WIN_SIZE = 7
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def _check_numpy_pair(a: np.ndarray, b: np.ndarray, data_range: float, min_side: int = 1) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"images must have the same shape, got {a.shape} and {b.shape}")
    if a.ndim not in (2, 3):
        raise ValueError(f"images must be HxW or HxWxC, got shape {a.shape}")
    if min(a.shape[:2]) < min_side:
        raise ValueError(f"images must be at least {min_side}x{min_side} pixels, got shape {a.shape}")
    if not (math.isfinite(data_range) and data_range > 0):
        raise ValueError(f"data_range must be a positive finite number, got {data_range}")
    for name, img in (("a", a), ("b", b)):
        if not (np.issubdtype(img.dtype, np.floating) or np.issubdtype(img.dtype, np.integer)):
            raise ValueError(f"image {name} must be a real-valued array, got dtype {img.dtype}")
        if np.issubdtype(img.dtype, np.integer) and img.size and img.max() > data_range:
            raise ValueError(
                f"image {name} is {img.dtype} with values up to {img.max()} but data_range={data_range}; "
                f"pass data_range=255 for 8-bit images or convert to float in [0, 1]"
            )
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError(f"images must contain only finite values (shapes {a.shape} and {b.shape})")
    return a, b


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio between two images, in dB.

    Matches ``skimage.metrics.peak_signal_noise_ratio(a, b, data_range=data_range)``; the mean squared
    error is taken over all pixels and channels in float64.

    Args:
        a (np.ndarray): Reference image, HxW or HxWxC, float in ``[0, data_range]`` (integer arrays are
            accepted and cast to float64).
        b (np.ndarray): Test image, same shape as ``a``.
        data_range (float): Peak-to-peak range of the pixel values: 1.0 for float images, 255 for 8-bit.

    Returns:
        float: PSNR in dB. ``float('inf')`` when the images are identical (zero error); averaging such a
        value into a report makes the mean infinite.

    Raises:
        ValueError: If the shapes differ, are not 2-D or 3-D, or a value is not finite.
    """
    a, b = _check_numpy_pair(a, b, data_range)
    return psnr_db(float(np.mean((a - b) ** 2)), data_range)


def psnr_db(mse: float, data_range: float = 1.0) -> float:
    """PSNR in dB of a mean squared error ``mse`` at peak ``data_range``: ``10 log10(range^2 / mse)``;
    ``float('inf')`` for ``mse == 0``. The one PSNR formula of darkc (:func:`psnr`, export parity and the
    emulated-ARM parity of ``darkc bench`` use it)."""
    if mse == 0.0:
        return float("inf")
    return float(10.0 * np.log10(data_range**2 / mse))


def _box_mean_valid(img: np.ndarray, size: int) -> np.ndarray:
    """Mean over every full ``size`` x ``size`` window of a 2-D array (output is (H-size+1)x(W-size+1))."""
    for axis in (0, 1):
        c = np.cumsum(img, axis=axis)
        pad = [(0, 0), (0, 0)]
        pad[axis] = (1, 0)
        c = np.pad(c, pad)
        hi = [slice(None), slice(None)]
        lo = [slice(None), slice(None)]
        hi[axis] = slice(size, None)
        lo[axis] = slice(None, -size)
        img = (c[tuple(hi)] - c[tuple(lo)]) / size
    return img


def _ssim_channel(x: np.ndarray, y: np.ndarray, data_range: float, win: int) -> float:
    cov_norm = win * win / (win * win - 1.0)
    ux, uy = _box_mean_valid(x, win), _box_mean_valid(y, win)
    vx = cov_norm * (_box_mean_valid(x * x, win) - ux * ux)
    vy = cov_norm * (_box_mean_valid(y * y, win) - uy * uy)
    vxy = cov_norm * (_box_mean_valid(x * y, win) - ux * uy)
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return float(s.mean())


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 1.0) -> float:
    """Structural similarity between two images (scikit-image's default SSIM).

    Matches ``skimage.metrics.structural_similarity(a, b, channel_axis=-1, data_range=data_range)`` for
    HxWxC images (without ``channel_axis`` for HxW): uniform 7x7 window, sample covariance, the 3-pixel
    border where the window does not fit is left out, and the per-channel means are averaged.
    Computed in float64.

    Args:
        a (np.ndarray): Reference image, HxW or HxWxC (channels last), float in ``[0, data_range]``.
        b (np.ndarray): Test image, same shape as ``a``.
        data_range (float): Peak-to-peak range of the pixel values: 1.0 for float images, 255 for 8-bit.

    Returns:
        float: Mean SSIM, in ``[-1, 1]``; exactly 1.0 up to rounding for identical images.

    Raises:
        ValueError: If the shapes differ, are not 2-D or 3-D, are smaller than 7x7, or a value is not
            finite.
    """
    a, b = _check_numpy_pair(a, b, data_range, min_side=SSIM_WIN_SIZE)
    if a.ndim == 2:
        return _ssim_channel(a, b, data_range, SSIM_WIN_SIZE)
    return float(np.mean([_ssim_channel(a[..., c], b[..., c], data_range, SSIM_WIN_SIZE) for c in range(a.shape[2])]))


def _check_torch_pair(x: torch.Tensor, y: torch.Tensor, data_range: float, min_side: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)):
        raise ValueError(f"expected two torch tensors, got {type(x).__name__} and {type(y).__name__}")
    if x.shape != y.shape:
        raise ValueError(f"batches must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.ndim != 4:
        raise ValueError(f"batches must be NCHW, got shape {tuple(x.shape)}")
    if min(x.shape[-2:]) < min_side:
        raise ValueError(f"images must be at least {min_side}x{min_side} pixels, got shape {tuple(x.shape)}")
    if not (math.isfinite(data_range) and data_range > 0):
        raise ValueError(f"data_range must be a positive finite number, got {data_range}")
    if x.is_complex() or y.is_complex():
        raise ValueError(f"batches must be real-valued, got dtypes {x.dtype} and {y.dtype}")
    dtype = torch.promote_types(torch.promote_types(x.dtype, y.dtype), torch.float32)
    x, y = x.to(dtype), y.to(dtype)
    if not bool(torch.isfinite(x).all() and torch.isfinite(y).all()):
        raise ValueError(f"batches must contain only finite values (shapes {tuple(x.shape)} and {tuple(y.shape)})")
    return x, y


def psnr_torch(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-image PSNR of two NCHW batches, in dB; the torch twin of :func:`psnr`.

    Args:
        x (torch.Tensor): Reference batch, NCHW, float in ``[0, data_range]``.
        y (torch.Tensor): Test batch, same shape as ``x``.
        data_range (float): Peak-to-peak range of the pixel values.

    Returns:
        torch.Tensor: Shape ``(N,)``, float64, one PSNR per image; ``inf`` where the images are identical.

    Raises:
        ValueError: If the shapes differ, are not 4-D, or a value is not finite.
    """
    x, y = _check_torch_pair(x, y, data_range)
    mse = (x.double() - y.double()).pow(2).flatten(1).mean(1)
    return 10.0 * torch.log10(data_range**2 / mse)


def ssim_map_torch(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, win_size: int = SSIM_WIN_SIZE) -> torch.Tensor:
    """SSIM map over the valid region (border of ``win_size // 2`` dropped), NCHW -> N,C,H-w+1,W-w+1.

    No input checks and differentiable: the building block of :func:`ssim_torch` and the SSIM loss.
    """
    cov_norm = win_size * win_size / (win_size * win_size - 1.0)
    mean = lambda t: F.avg_pool2d(t, win_size, stride=1)  # noqa: E731  (uniform window, valid region)
    ux, uy = mean(x), mean(y)
    vx = cov_norm * (mean(x * x) - ux * ux)
    vy = cov_norm * (mean(y * y) - uy * uy)
    vxy = cov_norm * (mean(x * y) - ux * uy)
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    return ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))


def ssim_torch(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-image SSIM of two NCHW batches; the torch twin of :func:`ssim` (scikit-image defaults).

    Uniform 7x7 window applied only where it fits (which equals scikit-image's reflect-padded filter
    followed by its 3-pixel border crop), sample covariance, mean over pixels and channels. Computed in
    the inputs' dtype, at least float32; differentiable.

    Args:
        x (torch.Tensor): Reference batch, NCHW, float in ``[0, data_range]``.
        y (torch.Tensor): Test batch, same shape as ``x``.
        data_range (float): Peak-to-peak range of the pixel values.

    Returns:
        torch.Tensor: Shape ``(N,)``, one mean SSIM per image.

    Raises:
        ValueError: If the shapes differ, are not 4-D, are smaller than 7x7, or a value is not finite.
    """
    x, y = _check_torch_pair(x, y, data_range, min_side=SSIM_WIN_SIZE)
    return ssim_map_torch(x, y, data_range).flatten(1).mean(1)


def deltae(a: np.ndarray, b: np.ndarray) -> float:
    """Mean CIEDE2000 colour difference between two sRGB images (H, W, 3) in [0, 1].

    Both are converted sRGB -> CIELAB (D65) by ``skimage.color.rgb2lab`` (which undoes the sRGB
    gamma), then ``skimage.color.deltaE_ciede2000`` per pixel (kL = kC = kH = 1), averaged. About 1 is a
    just-noticeable difference; a colour cast of a whole image gives several units.
    """
    from skimage.color import deltaE_ciede2000, rgb2lab

    a, b = _check_numpy_pair(a, b, 1.0)
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"CIEDE2000 needs HxWx3 sRGB images, got shape {a.shape}")
    return float(np.mean(deltaE_ciede2000(rgb2lab(np.clip(a, 0, 1)), rgb2lab(np.clip(b, 0, 1)))))


#: side of the square blocks (pixels) over which the 2x2 pattern is averaged
CHECKER_BLOCK = 8
_HADAMARD = {"h": ((1, -1), (1, -1)), "v": ((1, 1), (-1, -1)), "d": ((1, -1), (-1, 1))}
_FLIP = {"h": (0, 1), "v": (1, 0), "d": (0, 1)}   # a one-pixel shift that flips the pattern's sign


def checkerboard(img: np.ndarray) -> dict:
    """Amplitude of the coherent period-2 (2x2) pattern in an image, in levels of 255.

    For every 2x2 cell ``[[a, b], [c, d]]`` of each channel the three non-constant 2x2 Hadamard components
    are ``h = (a - b + c - d)/4`` (alternating columns), ``v = (a + b - c - d)/4`` (alternating rows)
    and ``d = (a - b - c + d)/4`` (checkerboard). A component is averaged, with its sign, over the 16 cells
    of each 8x8-pixel block (cells on the even grid, the CFA's phase), so pixel noise averages out and a
    pattern that repeats coherently stays. The same average on the cells shifted by one pixel (a column
    for h and d, a row for v) is subtracted and the difference halved: the pattern flips sign under that
    shift while a smooth gradient does not, so ramps cancel and a pattern ``+-A`` reads exactly ``A``.

    Returns ``{"h", "v", "d"}``: the mean over blocks and channels of the absolute block value, x255, and
    ``"checker"``: the largest of the three. A noise floor remains: about 0.1 x the per-pixel noise
    sigma (in levels) per component (0.29 for white noise of sigma 3 levels).
    """
    x = np.asarray(img, dtype=np.float64)
    if x.ndim == 2:
        x = x[..., None]
    if x.ndim != 3 or min(x.shape[:2]) < CHECKER_BLOCK + 2:
        raise ValueError(f"checkerboard needs an HxW(xC) image of at least {CHECKER_BLOCK + 2} px, got {x.shape}")
    n = CHECKER_BLOCK
    hb, wb = (x.shape[0] - 1) // n, (x.shape[1] - 1) // n
    out = {}
    for name, kernel in _HADAMARD.items():
        k = np.asarray(kernel, np.float64) / 4.0
        means = []
        for dy, dx in ((0, 0), _FLIP[name]):
            sub = x[dy:dy + hb * n, dx:dx + wb * n]
            comp = sum(k[i, j] * sub[i::2, j::2] for i in range(2) for j in range(2))   # (H/2, W/2, C) per cell
            means.append(comp.reshape(hb, n // 2, wb, n // 2, -1).mean(axis=(1, 3)))
        out[name] = float(np.mean(np.abs(means[0] - means[1]) / 2.0) * 255.0)
    out["checker"] = max(out["h"], out["v"], out["d"])
    return out

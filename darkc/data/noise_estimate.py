"""Noise level of a raw frame estimated from the frame itself (no calibration needed).

Model (ELD / Foi et al. 2008, in normalised units ``signal = (raw - black) / (white - black)``):

    variance(signal) = gain * signal + read**2

``gain`` is the system gain K (DN per electron) divided by ``white - black``. ``read`` is every
signal-independent part of one pixel's noise: read noise, the row offset and quantisation
(``read**2 = sigma_read**2 + sigma_row**2 + 1/12``, in DN**2 / (white - black)**2); ``row`` reports
the row-offset part alone (already inside ``read``).

Method (what :func:`estimate_noise` does):

1. The mosaic is split into one-colour sub-lattices, each of whose rows is one sensor row: the 4
   stride-2 lattices of Bayer; for X-Trans the 5 stride-3 lattices that are all green (5/9 of the
   pixels). X-Trans red and blue repeat only every 6 px, and blocks of that coarse a lattice held too
   much scene texture (on X-Trans dead-leaves frames, gain and read errors of +50 to +100 % and more
   with them; without them such frames are refused instead).
2. Each sub-image is cut into 16x16 blocks. Per block: the mean, and the mean square of the
   horizontal second difference ``(x[j-s] - 2 x[j] + x[j+s]) / sqrt(6)`` at spacings s = 1, 2, 3
   (``v1``, ``v2``, ``v3``). For white noise all equal the pixel variance; the row offset cancels along
   a row; a linear ramp gives zero. Texture and edges raise the wide spacings more than ``v1`` (a
   curvature 16x at s = 2, a step edge 2x) and pixel-scale texture raises ``v1`` more (texture at 1/3
   cycle per pixel, which s = 2 misses, vanishes at s = 3), so only blocks with ``v2 / v1`` and
   ``v3 / v1`` within 35 % of 1, horizontally (gain) and also vertically (row noise), count as flat.
   Blocks touching black clipping or saturation are dropped.
3. Flat blocks are binned by mean (quantiles); each bin gives the 25th percentile of its block
   variances, scaled to a mean by the chi-square law of a block variance of pure noise (texture that
   passes the test only adds variance, so a low quantile resists it); ``gain`` and the pixel
   intercept come from a non-negative weighted least-squares line through the bins, refitted twice
   after dropping blocks far above the line (texture that passed the flatness test).
4. Row noise: in blocks flat both ways and near the fitted line, the vertical second difference of
   the block's row means has variance ``sigma_row**2 + v1 / 16``; its mean over blocks, less ``v1 / 16``.
5. Where the sensor's masked (optical-black) pixels are given, the intercept and row noise are taken
   from them (no light, no texture) and only the gain is fitted on the image.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from scipy.optimize import nnls

from ..errors import DarkcError
from . import cfa as cfa_mod

BLOCK = 16                 # block side on a CFA sub-image, pixels
FLAT_TOLERANCE = 0.35      # |v2/v1 - 1| allowed for a flat block: ~2 standard deviations of the ratio at 16x16
_RESIDUAL_CORRELATION = 1.94   # 1 + 2 (4/6)^2 + 2 (1/6)^2: overlap of neighbouring second differences
MIN_FLAT_BLOCKS = 24
BIN_QUANTILE = 0.25      # per-bin statistic of the block variances: texture that passed the test only adds
MIN_MASKED_PIXELS = 4096


@dataclass(frozen=True)
class NoiseEstimate:
    """Noise model of one frame in normalised units (see the module docstring)."""
    gain: float        # K / (white - black): variance = gain * signal + read**2, signal = (raw - black)/(white - black)
    read: float        # signal-independent sigma (read + row + quantisation), same units
    source: str        # 'profile' | 'estimated' | 'estimated+masked'
    row: float = 0.0   # row-offset sigma alone (already part of ``read``), same units

    def variance(self, signal: np.ndarray) -> np.ndarray:
        """Predicted per-pixel variance at a normalised signal level."""
        return self.gain * np.maximum(signal, 0.0) + self.read ** 2


def _second_diff(x: np.ndarray, step: int, axis: int) -> np.ndarray:
    """(x[j-step] - 2 x[j] + x[j+step]) / sqrt(6) along ``axis`` for j in [3, n-3) (the centre spacing 3 keeps)."""
    x = np.moveaxis(x, axis, 0)
    n = x.shape[0]
    d = (x[3 - step:n - 3 - step] - 2.0 * x[3:n - 3] + x[3 + step:n - 3 + step]) / np.sqrt(6.0)
    return np.moveaxis(d, 0, axis)


def _blocks(a: np.ndarray, b: int) -> np.ndarray:
    """(H, W) -> (H//b, W//b, b, b) view of whole b x b blocks."""
    h, w = a.shape[0] // b * b, a.shape[1] // b * b
    return a[:h, :w].reshape(h // b, b, w // b, b).swapaxes(1, 2)


def _block_stats(plane: np.ndarray, low: float, high: float):
    """Per-block mean, v1, flatness flags (horizontal, both ways), row-mean variance of one sub-image."""
    core = plane[3:-3, 3:-3]
    ratios_ok = {}
    for axis in (1, 0):
        d = [_second_diff(plane, s, axis) for s in (1, 2, 3)]
        # crop the other axis to the same centre
        d = [x[3:-3, :] if axis == 1 else x[:, 3:-3] for x in d]
        v = [_blocks(x ** 2, BLOCK).mean(axis=(2, 3)) for x in d]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios_ok[axis] = (np.abs(v[1] / v[0] - 1.0) < FLAT_TOLERANCE) & (np.abs(v[2] / v[0] - 1.0) < FLAT_TOLERANCE)
        if axis == 1:
            h1 = v[0]
    blocks = _blocks(core, BLOCK)
    mean = blocks.mean(axis=(2, 3))
    ok = (blocks.min(axis=(2, 3)) > low) & (blocks.max(axis=(2, 3)) < high)
    flat_h = ok & ratios_ok[1]
    flat_v = flat_h & ratios_ok[0]
    row_means = blocks.mean(axis=3)                    # (by, bx, BLOCK): mean of each block row
    rd = (row_means[..., :-2] - 2.0 * row_means[..., 1:-1] + row_means[..., 2:]) / np.sqrt(6.0)
    row_var = (rd ** 2).mean(axis=-1) - h1 / BLOCK
    return mean.ravel(), h1.ravel(), flat_h.ravel(), flat_v.ravel(), row_var.ravel()


def _quantile_correction(q: float) -> float:
    """Mean / q-quantile of a block's v1 on pure noise: a mean of BLOCK**2 squares of correlated
    second differences, a chi-square of BLOCK**2 / 1.94 degrees of freedom (Wilson-Hilferty)."""
    from scipy.stats import norm

    dof = BLOCK * BLOCK / _RESIDUAL_CORRELATION
    return (1.0 - 2.0 / (9.0 * dof) + float(norm.ppf(q)) * np.sqrt(2.0 / (9.0 * dof))) ** -3


def _fit_line(m: np.ndarray, v: np.ndarray, intercept: float | None) -> tuple[float, float, np.ndarray]:
    """Non-negative weighted fit v = g m + c over mean-binned medians; returns (g, c, keep mask)."""
    keep = np.ones(m.size, bool)
    g, c = 0.0, 0.0 if intercept is None else intercept
    for _ in range(3):
        mk, vk = m[keep], v[keep]
        nbins = int(np.clip(mk.size // 16, 2, 24))
        edges = np.quantile(mk, np.linspace(0, 1, nbins + 1))
        idx = np.clip(np.searchsorted(edges, mk, side="right") - 1, 0, nbins - 1)
        xs, ys, ws = [], [], []
        for b in range(nbins):
            sel = idx == b
            if sel.sum() < 4:
                continue
            xs.append(float(np.median(mk[sel])))
            ys.append(float(np.quantile(vk[sel], BIN_QUANTILE)) * _quantile_correction(BIN_QUANTILE))
            ws.append(sel.sum())
        xs, ys, ws = np.maximum(np.asarray(xs), 0.0), np.asarray(ys), np.asarray(ws, np.float64)
        fitted = ys
        for _ in range(3):     # weights 1/sd(median) ~ sqrt(n) / variance, reweighted from the fit
            sw = np.sqrt(ws) / np.maximum(fitted, 1e-30)
            if intercept is None:
                (g, c), _ = nnls(np.stack([xs, np.ones_like(xs)], axis=1) * sw[:, None], ys * sw)
            else:
                (g,), _ = nnls((xs * sw)[:, None], (ys - intercept) * sw)
            fitted = g * xs + c
        pred = g * np.maximum(m, 0.0) + c
        rel_sd = np.sqrt(2.0 * _RESIDUAL_CORRELATION / (BLOCK * BLOCK))
        keep = v < pred * (1.0 + 4.0 * rel_sd)
    return float(g), float(c), keep


def dark_noise(pixels: np.ndarray, black: float, span: float, step: int) -> tuple[float, float]:
    """(pixel variance, row variance) of pixels that saw no light (optical-black margin or a dark frame).

    Normalised by ``span`` (pass 1 for DN**2). Per CFA sub-lattice of stride ``step`` so a per-colour
    black level does not count as noise: pixel variance from the mean square of the horizontal second
    difference (row offsets cancel), row variance from the vertical second difference of the row means
    less the pixel part (``pixel / width``). Quantisation (1/12 DN**2) stays in the pixel variance.
    """
    x = (np.asarray(pixels, np.float64) - black) / span
    pix, row, n = 0.0, 0.0, 0
    for i in range(step):
        for j in range(step):
            sub = x[i::step, j::step]
            if sub.shape[1] < 3:
                continue
            d = (sub[:, :-2] - 2.0 * sub[:, 1:-1] + sub[:, 2:]) / np.sqrt(6.0)
            p = float(np.mean(d ** 2))
            rows = sub.mean(axis=1)
            rd = (rows[:-2] - 2.0 * rows[1:-1] + rows[2:]) / np.sqrt(6.0)
            pix += p
            row += float(np.mean(rd ** 2)) - p / sub.shape[1] if rows.size >= 3 else 0.0
            n += 1
    if n == 0:
        raise DarkcError(f"{x.shape[1]}x{x.shape[0]} dark pixels are too few to measure noise")
    return pix / n, max(row / n, 0.0)


def _lattices(pattern: np.ndarray) -> list[tuple[int, int, int]]:
    """(row, col, stride) of one-colour sub-lattices covering the mosaic, as fine as the CFA allows."""
    n = pattern.shape[0]
    if n == 2:
        return [(i, j, 2) for i in range(2) for j in range(2)]
    out = []
    for i in range(3):
        for j in range(3):
            if np.unique(pattern[i::3, j::3]).size == 1:
                out.append((i, j, 3))
    return out


def estimate_noise(mosaic: np.ndarray, cfa: str, black: float, white: float, *,
                   pattern: np.ndarray | None = None, masked: np.ndarray | None = None) -> NoiseEstimate:
    """Estimate the frame's noise model from the raw mosaic itself.

    Args:
        mosaic: (H, W) raw DN as read (black level included).
        cfa: 'bayer' or 'xtrans'.
        pattern: the CFA tile at the mosaic's top-left (0=R, 1=G, 2=B, as :func:`cfa.colour_pattern`
            gives); None means the canonical phase (what :func:`raw.read_raw` cuts to). Any Bayer phase
            gives the same result; for X-Trans it says which 3x3 sub-lattices are all green.
        black, white: black and saturation level, DN.
        masked: optional (h, w) DN of the sensor's masked (optical-black) pixels, rows as on the sensor;
            with at least 4096 of them the read and row noise come from there.

    Returns:
        :class:`NoiseEstimate` with ``source='estimated'`` (or ``'estimated+masked'``).

    Raises:
        DarkcError: if the frame is too small or too textured/saturated to have enough flat blocks.
    """
    x = np.asarray(mosaic)
    if x.ndim != 2:
        raise DarkcError(f"noise estimation needs an (H, W) raw mosaic, got shape {x.shape}")
    span = float(white) - float(black)
    if not span > 0:
        raise DarkcError(f"white level {white} must be above the black level {black}")
    if pattern is None:
        pattern = cfa_mod.canonical_pattern(cfa)
    elif cfa_mod.cfa_kind(pattern) != cfa:
        raise DarkcError(f"CFA pattern of shape {np.shape(pattern)} is not a {cfa} pattern")
    y = (x.astype(np.float64) - float(black)) / span
    low = (0.5 - float(black)) / span          # a block reaching raw 0 (clipped noise) is not used
    high = (float(white) - 0.5 - float(black)) / span
    parts = [_block_stats(y[i::s, j::s], low, high) for i, j, s in _lattices(np.asarray(pattern))
             if min(y[i::s, j::s].shape) >= BLOCK + 6]
    if not parts:
        raise DarkcError(f"raw image {x.shape[1]}x{x.shape[0]} is too small to estimate noise: it needs "
                         f"one-colour sub-images of at least {BLOCK + 6} px")
    mean, v1, flat_h, flat_v, row_var = (np.concatenate(p) for p in zip(*parts))
    if flat_h.sum() < MIN_FLAT_BLOCKS:
        raise DarkcError(f"only {int(flat_h.sum())} flat {BLOCK}x{BLOCK} blocks found (need {MIN_FLAT_BLOCKS}): "
                         f"the frame is too small, textured or saturated to estimate its noise; use a profile")
    use_masked = masked is not None and np.asarray(masked).size >= MIN_MASKED_PIXELS
    if use_masked:
        pix, row = dark_noise(masked, black, span, np.asarray(pattern).shape[0])
        gain, _, _ = _fit_line(mean[flat_h], v1[flat_h], intercept=pix)
        return NoiseEstimate(gain=gain, read=float(np.sqrt(pix + row)), source="estimated+masked",
                             row=float(np.sqrt(row)))
    gain, pix, keep = _fit_line(mean[flat_h], v1[flat_h], intercept=None)
    rv = row_var[flat_v & (v1 < 1.5 * (gain * np.maximum(mean, 0.0) + pix))]
    row = max(float(np.mean(rv)), 0.0) if rv.size >= 8 else 0.0
    return NoiseEstimate(gain=gain, read=float(np.sqrt(pix + row)), source="estimated", row=float(np.sqrt(row)))


def masked_pixels(raw) -> np.ndarray | None:
    """The masked (optical-black) margin of an open rawpy file as an (h, w) DN array, or None.

    LibRaw keeps the whole sensor in ``raw_image`` and the lit area in ``raw_image_visible``; the
    margins left of and above the visible area are the masked pixels. The wider strip is returned.
    """
    full = raw.raw_image
    top, left = int(raw.sizes.top_margin), int(raw.sizes.left_margin)
    vis_h, vis_w = raw.raw_image_visible.shape
    strips = []
    if left >= 8:
        strips.append(full[top:top + vis_h, :left])
    if top >= 8:
        strips.append(full[:top, left:left + vis_w])
    strips = [s for s in strips if s.size]
    return max(strips, key=lambda s: s.size).astype(np.float64) if strips else None


def estimate_noise_file(path: str | os.PathLike) -> NoiseEstimate:
    """:func:`estimate_noise` of a raw file, using its masked pixels where LibRaw exposes any."""
    from .raw import open_raw

    with open_raw(path) as raw:
        pattern = cfa_mod.colour_pattern(raw.raw_pattern, raw.color_desc.decode())
        kind = cfa_mod.cfa_kind(pattern)
        black = float(np.mean(raw.black_level_per_channel))
        white = float(raw.white_level)
        mosaic = raw.raw_image_visible.astype(np.float64)
        masked = masked_pixels(raw)
    try:
        return estimate_noise(mosaic, kind, black, white, pattern=pattern, masked=masked)
    except DarkcError as exc:
        raise DarkcError(f"{path}: {exc}") from None

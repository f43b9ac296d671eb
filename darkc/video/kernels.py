"""Fused full-resolution passes of ``fast-flow`` on 8-bit frames, compiled by Numba (LLVM, vectorised for the
machine it runs on: NEON on aarch64, AVX on x86-64).

OpenCV needs one call per step at full resolution (a bilinear patch per run of tiles, the upsampling of the
weights and of the still mask, a masked copy, the blend), each a pass over the 1080p frame; these two kernels do
the same work in two passes with 16-bit fixed-point arithmetic:

* :func:`move_tiles`: the previous output moved by one translation per tile, in eighths of a pixel, bilinear,
  samples past the frame repeating its border (as ``cv2.remap`` with BORDER_REPLICATE);
* :func:`blend_rows`: ``y = x + k (h - x)`` with ``h`` the moved history or, where the low-res still mask is
  set, the unmoved previous output, and ``k`` bilinearly upsampled from the low-res weights (as
  ``cv2.resize(INTER_LINEAR)`` maps pixel centres), in 1/256 steps (at most 255/256).

All frames are (H, W*C) row views of (H, W, C) uint8 arrays: every inner loop runs over contiguous bytes.
Compiled on first use and cached beside this file (or in Numba's user cache when that is read-only).
"""
from __future__ import annotations

import numpy as np
from numba import njit

_SUBPX_BITS = 3
#: the history is moved by multiples of 1/SUBPX px (bilinear weights in 1/SUBPX**2: exact in 16 bits)
SUBPX = 1 << _SUBPX_BITS
_SHIFT = 2 * _SUBPX_BITS                            # log2(SUBPX ** 2)
#: blend weights in 1/K_ONE steps
K_ONE = 256


@njit(cache=True, nogil=True)
def _bilinear_row(t00, t01, t10, t11, o, w00, w01, w10, w11):
    """``o`` = the four taps weighted by w (uint16, summing to SUBPX**2), rounded: a loop LLVM vectorises in 16-bit
    lanes (the weights arrive as uint16 arguments, so it sees every operand is narrow)."""
    for j in range(o.shape[0]):
        o[j] = np.uint8((np.uint16(t00[j]) * w00 + np.uint16(t01[j]) * w01 + np.uint16(t10[j]) * w10
                         + np.uint16(t11[j]) * w11 + np.uint16(1 << (_SHIFT - 1))) >> np.uint16(_SHIFT))


@njit(cache=True, nogil=True)
def _clamped(r0, r1, out, x0, x1, ix, w, c, w00, w01, w10, w11):
    """:func:`move_tiles` for columns [x0, x1) whose taps may lie past the frame (indices clamped)."""
    for xx in range(x0, x1):
        a = min(max(xx + ix, 0), w - 1) * c
        b = min(max(xx + ix + 1, 0), w - 1) * c
        for ch in range(c):
            out[xx * c + ch] = np.uint8((r0[a + ch] * w00 + r0[b + ch] * w01 + r1[a + ch] * w10 + r1[b + ch] * w11
                                         + np.uint16(1 << (_SHIFT - 1))) >> _SHIFT)


@njit(cache=True, nogil=True)
def move_tiles(src, dst, ybounds, xbounds, q, c):
    """``dst`` = ``src`` moved tile by tile: ``dst(p) = src(p + q[ty, tx] / SUBPX)`` for p in tile (ty, tx).

    src, dst: (H, W*c) uint8; ybounds (nty + 1,), xbounds (ntx + 1,): full-resolution tile edges (px, int64);
    q: (nty, ntx, 2) int32 shifts (x, y) in 1/SUBPX px."""
    h = src.shape[0]
    w = src.shape[1] // c
    for ty in range(ybounds.shape[0] - 1):
        for tx in range(xbounds.shape[0] - 1):
            qx, qy = q[ty, tx, 0], q[ty, tx, 1]
            ix, iy = qx >> _SUBPX_BITS, qy >> _SUBPX_BITS  # floor
            fx, fy = np.uint16(qx & (SUBPX - 1)), np.uint16(qy & (SUBPX - 1))
            # weights cast to 16 bits: Numba types uint16 arithmetic as 64-bit, and LLVM narrows a loop to 16-bit
            # lanes (8 per NEON op instead of 2) only where it sees every operand is narrow
            w00 = np.uint16((SUBPX - fx) * (SUBPX - fy))
            w01 = np.uint16(fx * (SUBPX - fy))
            w10 = np.uint16((SUBPX - fx) * fy)
            w11 = np.uint16(fx * fy)
            x0, x1 = xbounds[tx], xbounds[tx + 1]
            lo = min(max(x0, -ix), x1)                     # [lo, hi): both taps inside the frame
            hi = max(min(x1, w - 1 - ix), lo)
            off = ix * c
            a, b = lo * c, hi * c
            for y in range(ybounds[ty], ybounds[ty + 1]):
                r0 = src[min(max(y + iy, 0), h - 1)]
                r1 = src[min(max(y + iy + 1, 0), h - 1)]
                out = dst[y]
                # slices, so that every index is provably in range: LLVM vectorises the loop (12x faster on x86-64)
                t00, t01, t10, t11 = r0[a + off:b + off], r0[a + off + c:b + off + c], r1[a + off:b + off], \
                    r1[a + off + c:b + off + c]
                _bilinear_row(t00, t01, t10, t11, out[a:b], w00, w01, w10, w11)
                _clamped(r0, r1, out, x0, lo, ix, w, c, w00, w01, w10, w11)
                _clamped(r0, r1, out, hi, x1, ix, w, c, w00, w01, w10, w11)


@njit(cache=True, nogil=True)
def blend_rows(x, hist, prev, k_rows, still_rows, out):
    """``out = x + k (h - x)``, ``h = prev`` where the still mask is set else ``hist``, rounding to nearest.

    x, hist, prev, out: (H, W*c) uint8; k_rows: (lh, W*c) uint8, the low-res weights already upsampled along the
    rows (and repeated over the channels), in 1/K_ONE (so at most 255/256); still_rows: (lh, W*c) uint8, 255 where the
    low-res still mask is set, else 0, upsampled likewise (nearest). Row y takes k from low-res rows around
    (y + 0.5) lh / H - 0.5 (bilinear, 1/128 steps) and the still mask from row floor(y lh / H)."""
    h, n = x.shape
    lh = k_rows.shape[0]
    for y in range(h):
        fy = (y + 0.5) * lh / h - 0.5
        r0 = int(np.floor(fy))
        wy = np.uint16(round((fy - r0) * 128))
        wy0 = np.uint16(128 - wy)                      # cast: see move_tiles
        r1 = min(max(r0 + 1, 0), lh - 1)
        r0 = min(max(r0, 0), lh - 1)
        k0, k1, st = k_rows[r0], k_rows[r1], still_rows[min(y * lh // h, lh - 1)]
        xr, hr, pr, orow = x[y], hist[y], prev[y], out[y]
        for j in range(n):                         # 16-bit lanes: k0 wy0 + k1 wy <= 2^15, x (256 - k) + h k < 2^16
            k = np.uint8((k0[j] * wy0 + k1[j] * wy + np.uint16(64)) >> np.uint16(7))
            hv = np.uint16((pr[j] & st[j]) | (hr[j] & ~st[j]))
            orow[j] = np.uint8((np.uint16(xr[j]) * (np.uint16(K_ONE) - k) + hv * k + np.uint16(K_ONE // 2))
                               >> np.uint16(8))


def warm_up() -> None:
    """Compile (or load from the cache) both kernels for 8-bit frames, so that no frame pays for it."""
    a = np.zeros((4, 12), np.uint8)
    bounds = np.array([0, 4], np.int64)
    move_tiles(a, a.copy(), bounds, bounds, np.zeros((1, 1, 2), np.int32), 3)
    blend_rows(a, a, a, np.zeros((1, 12), np.uint8), np.zeros((1, 12), np.uint8), a.copy())

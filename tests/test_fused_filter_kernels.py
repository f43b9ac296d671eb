"""The Numba passes of fast-flow on 8-bit frames against what they replace: OpenCV's bilinear patch (border
repeated) and the float blend ``x + k (h - x)`` with ``k`` upsampled as cv2.resize does."""
import cv2
import numpy as np
import pytest

from darkc.video import kernels
from darkc.video.temporal import _shift_tile


def _frame(h, w, c, seed):
    rng = np.random.default_rng(seed)
    img = cv2.resize(rng.integers(0, 256, (h // 4 + 2, w // 4 + 2, c), dtype=np.uint8), (w, h),
                     interpolation=cv2.INTER_CUBIC)
    return img.reshape(h, w, c)


@pytest.mark.parametrize("c", [1, 3, 4])
def test_move_tiles_matches_a_bilinear_patch_per_tile_including_past_the_border(c):
    h, w = 50, 70
    src = _frame(h, w, c, 0)
    ybounds = np.array([0, 17, 34, 50], np.int64)
    xbounds = np.array([0, 23, 46, 70], np.int64)
    rng = np.random.default_rng(1)
    q = rng.integers(-60, 60, (3, 3, 2)).astype(np.int32)       # up to 7.5 px, fractional in eighths
    q[0, 0] = (-8 * 40 - 3, 5)                                    # a tile looking wholly past the left edge
    q[2, 2] = (8 * 30 + 1, 8 * 25 + 7)                            # and one past the bottom-right corner
    q[1, 1] = (0, 0)
    out = np.zeros_like(src)
    kernels.move_tiles(src.reshape(h, -1), out.reshape(h, -1), ybounds, xbounds, q, c)
    ref = np.zeros_like(src)
    for ty in range(3):
        for tx in range(3):
            y0, y1, x0, x1 = ybounds[ty], ybounds[ty + 1], xbounds[tx], xbounds[tx + 1]
            _shift_tile(src, ref[y0:y1, x0:x1], int(y0), int(x0), q[ty, tx, 0] / 8, q[ty, tx, 1] / 8)
    diff = np.abs(out.astype(int) - ref)
    assert diff.max() <= 1, (diff.max(), np.argwhere(diff > 1)[:5])
    assert diff.mean() < 0.05
    np.testing.assert_array_equal(out[17:34, 23:46], src[17:34, 23:46])          # zero shift: a copy


def test_blend_rows_is_the_float_blend_with_k_upsampled_and_the_still_mask_nearest():
    h, w, c, lh, lw = 37, 52, 3, 9, 13                       # sizes that are not multiples of the low-res ones
    x, hist, prev = _frame(h, w, c, 2), _frame(h, w, c, 3), _frame(h, w, c, 4)
    rng = np.random.default_rng(5)
    k = (rng.random((lh, lw)) * 0.9).astype(np.float32)
    k[:3, :4] = 0.0
    still = (rng.random((lh, lw)) < 0.3).astype(np.uint8)
    k8 = np.rint(k * 256).astype(np.uint8)
    k_rows = cv2.merge([cv2.resize(k8, (w, lh), interpolation=cv2.INTER_LINEAR)] * c).reshape(lh, -1)
    st_rows = cv2.merge([cv2.resize(still * np.uint8(255), (w, lh), interpolation=cv2.INTER_NEAREST)] * c)
    out = np.zeros_like(x)
    kernels.blend_rows(x.reshape(h, -1), hist.reshape(h, -1), prev.reshape(h, -1), k_rows, st_rows.reshape(lh, -1),
                       out.reshape(h, -1))
    k_full = cv2.resize(k, (w, h), interpolation=cv2.INTER_LINEAR)[..., None]
    still_full = cv2.resize(still, (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)[..., None]
    ref = x + k_full * (np.where(still_full, prev, hist).astype(np.float32) - x)
    diff = np.abs(out - ref)
    assert diff.max() <= 1.5, diff.max()
    assert diff.mean() < 0.5
    # where k is 0 across the upsampling footprint the frame passes through exactly
    np.testing.assert_array_equal(out[:4, :8], x[:4, :8])
    # taking hist where prev was due (or the other way round) would be far off on these unrelated frames
    wrong = x + k_full * (np.where(still_full, hist, prev).astype(np.float32) - x)
    assert np.abs(out - wrong).mean() > 5 * diff.mean()

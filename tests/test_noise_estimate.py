"""Noise estimated from the frame itself: recovers known gain/read on synthetic frames, resists texture,
reports row noise apart, refuses a frame with nothing flat, and uses masked pixels where given."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from darkc.data import cfa as cfa_mod
from darkc.data.noise import expose
from darkc.data.noise_estimate import estimate_noise
from darkc.data.profiles import get_profile
from darkc.errors import DarkcError


def _scene(h: int, w: int, seed: int, texture: float = 0.0) -> np.ndarray:
    """Piecewise-smooth linear scene (H, W, 3) in [0, 1] with dark and bright parts, as a night scene:
    flat rectangles on a ramp from black, plus optional fine texture (blurred noise) on the right half."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.repeat((0.8 * xx * yy)[..., None], 3, axis=2)
    for _ in range(12):
        y0, x0 = rng.integers(0, h - 40), rng.integers(0, w - 40)
        img[y0:y0 + rng.integers(30, 200), x0:x0 + rng.integers(30, 200)] = rng.uniform(0.0, 1.0, 3)
    if texture:
        tex = cv2.GaussianBlur(rng.normal(0, 1, (h, w)), (0, 0), 1.2)
        img[:, w // 2:] *= 1 + texture * tex[:, w // 2:, None] / tex.std()
    return np.clip(img, 0, 1)


def _frame(cfa: str, k: float, ratio: float, seed: int = 0, texture: float = 0.0, row_scale: float = 1.0):
    prof = get_profile(None, cfa)
    span = prof.white - prof.black
    h, w = (576, 576) if cfa == "bayer" else (756, 756)
    signal = cfa_mod.mosaic(_scene(h, w, seed, texture), cfa) * span / ratio
    sig_read, sig_row = prof.read_sigma(k), prof.row_sigma(k) * row_scale
    raw = expose(signal, k, prof, np.random.default_rng(seed + 1), sigmas=(sig_read, sig_row))
    truth = dict(gain=k / span, read=np.sqrt(sig_read ** 2 + sig_row ** 2 + 1 / 12) / span, row=sig_row / span)
    return raw, prof, truth


@pytest.mark.parametrize("cfa,k,ratio", [("bayer", 0.8, 100), ("bayer", 8.0, 300), ("xtrans", 3.0, 100)])
def test_known_gain_and_read_recovered(cfa, k, ratio):
    raw, prof, truth = _frame(cfa, k, ratio)
    est = estimate_noise(raw, cfa, prof.black, prof.white)
    assert est.source == "estimated"
    assert est.gain == pytest.approx(truth["gain"], rel=0.10)
    assert est.read == pytest.approx(truth["read"], rel=0.05)


def test_texture_does_not_inflate_the_estimate():
    # half the frame carries fine texture as strong as the noise: a plain variance-vs-mean fit over all
    # blocks would read it as noise
    raw, prof, truth = _frame("bayer", 2.0, 100, seed=3, texture=0.02)
    est = estimate_noise(raw, "bayer", prof.black, prof.white)
    assert est.gain == pytest.approx(truth["gain"], rel=0.15)
    assert est.read == pytest.approx(truth["read"], rel=0.05)


def test_row_noise_reported_apart_and_inside_read():
    raw, prof, truth = _frame("bayer", 4.0, 100, seed=5, row_scale=6.0)
    est = estimate_noise(raw, "bayer", prof.black, prof.white)
    assert est.row == pytest.approx(truth["row"], rel=0.15)
    assert est.read == pytest.approx(truth["read"], rel=0.05)
    assert est.read > est.row


def test_xtrans_off_phase_needs_its_pattern():
    raw, prof, truth = _frame("xtrans", 3.0, 100, seed=2)
    shifted = raw[1:, 2:]
    pattern = np.roll(cfa_mod.XTRANS_CANONICAL, (-1, -2), axis=(0, 1))
    est = estimate_noise(shifted, "xtrans", prof.black, prof.white, pattern=pattern)
    assert est.gain == pytest.approx(truth["gain"], rel=0.10)
    assert est.read == pytest.approx(truth["read"], rel=0.05)


def test_frame_with_nothing_flat_is_refused():
    rng = np.random.default_rng(0)
    prof = get_profile(None, "bayer")
    texture = cv2.GaussianBlur(rng.uniform(0, 8000, (256, 256)), (0, 0), 1.5)   # structure everywhere
    raw = (prof.black + texture + rng.normal(0, 2, texture.shape)).astype(np.uint16)
    with pytest.raises(DarkcError, match="flat"):
        estimate_noise(raw, "bayer", prof.black, prof.white)


def test_masked_pixels_set_the_read_noise():
    raw, prof, truth = _frame("bayer", 1.0, 300, seed=4)
    rng = np.random.default_rng(9)
    span = prof.white - prof.black
    masked = prof.black + rng.normal(0, truth["read"] * span, (raw.shape[0], 64))
    est = estimate_noise(raw, "bayer", prof.black, prof.white, masked=masked)
    assert est.source == "estimated+masked"
    assert est.read == pytest.approx(truth["read"], rel=0.03)
    assert est.gain == pytest.approx(truth["gain"], rel=0.10)


def test_masked_margin_is_found_beside_the_visible_area():
    from types import SimpleNamespace

    from darkc.data.noise_estimate import masked_pixels

    full = np.zeros((40, 60))
    full[:, :12] = 7.0                                  # 12 masked columns on the left, 4 masked rows on top
    full[:4, :] = 5.0
    raw = SimpleNamespace(raw_image=full, raw_image_visible=full[4:, 12:],
                          sizes=SimpleNamespace(top_margin=4, left_margin=12))
    strip = masked_pixels(raw)
    assert strip.shape == (36, 12) and (strip == 7.0).all()
    raw.sizes.left_margin, raw.raw_image_visible = 0, full[4:, :]
    assert masked_pixels(raw) is None                   # 4 rows are too few to count


def test_estimate_from_a_raw_file(tmp_path):
    from darkc.data.dng import write_dng
    from darkc.data.noise_estimate import estimate_noise_file

    raw, prof, truth = _frame("bayer", 3.0, 100, seed=6)
    path = tmp_path / "f.dng"
    write_dng(path, raw, "bayer", black=prof.black, white=prof.white, xyz_to_cam=prof.xyz_to_cam_matrix,
              as_shot_neutral=(0.5, 1, 0.6), exposure_time=0.01, iso=400)
    est = estimate_noise_file(path)
    assert est.source == "estimated"                    # this DNG has no masked margin
    assert est.gain == pytest.approx(truth["gain"], rel=0.10)
    assert est.read == pytest.approx(truth["read"], rel=0.05)

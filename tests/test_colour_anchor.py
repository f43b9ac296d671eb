"""darkc.inference.anchor_means: a raw-output model's local colour and level put back to its input's (the fix for
the colour shift on the real Sony night raw), its detail kept, and a right output left alone where the
difference is only the input's noise."""
import numpy as np

from darkc.data.noise_level import NoiseLevel
from darkc.inference import _smooth, anchor_means, balance_sites


def _scene(c=4, h=96, w=128, seed=0):
    """A smooth packed raw with sharp edges: low-frequency colour plus a bright square."""
    y, x = np.mgrid[0:h, 0:w] / 64.0
    base = np.stack([0.2 + 0.1 * np.sin(x + k) * np.cos(y - k) for k in range(c)]).astype(np.float32)
    base[:, 40:56, 60:76] += 0.3
    return base


def test_a_colour_shift_of_the_model_is_undone_and_its_edges_kept():
    clean = _scene()
    rng = np.random.default_rng(1)
    level = NoiseLevel(gain=1e-4, read=1e-3)
    noisy = clean + rng.normal(0, np.sqrt(level.gain * clean + level.read ** 2)).astype(np.float32)
    shifted = clean * np.array([0.7, 1.0, 1.1, 1.0], np.float32)[:, None, None]   # a model's colour error
    out = anchor_means(shifted, noisy, sigma=16, level=level)
    means = out.mean(axis=(1, 2)) / clean.mean(axis=(1, 2))
    np.testing.assert_allclose(means, 1.0, atol=0.02)
    # the square's edge is as sharp as the model made it: the anchor moves only what varies slower than sigma
    edge_out, edge_model = out[:, 48, 58:62] - out[:, 48, 62:66], shifted[:, 48, 58:62] - shifted[:, 48, 62:66]
    np.testing.assert_allclose(edge_out, edge_model, atol=0.02)
    assert np.abs(out - clean).mean() < 0.3 * np.abs(shifted - clean).mean()


def test_a_right_output_is_left_nearly_alone_where_the_difference_is_noise():
    clean = _scene()
    rng = np.random.default_rng(2)
    level = NoiseLevel(gain=3e-3, read=2e-2)                                 # a very noisy capture
    noisy = clean + rng.normal(0, np.sqrt(level.gain * clean + level.read ** 2)).astype(np.float32)
    plain = anchor_means(clean, noisy, sigma=16)                             # no level: the raw correction
    shrunk = anchor_means(clean, noisy, sigma=16, level=level)
    assert np.abs(shrunk - clean).mean() < 0.5 * np.abs(plain - clean).mean()
    assert anchor_means(clean, noisy, sigma=0) is clean                       # off


def test_clipped_shadows_are_not_lifted():
    """Anchored to the input *not* clipped at black, a dark flat region keeps its true mean; anchored to the
    clipped input it would be lifted by the clipped noise (what LibRaw's render of a noisy raw shows)."""
    clean = np.full((4, 96, 128), 0.002, np.float32)
    rng = np.random.default_rng(3)
    signed = clean + rng.normal(0, 0.02, clean.shape).astype(np.float32)
    good = anchor_means(clean, signed, sigma=16)
    lifted = anchor_means(clean, np.maximum(signed, 0.0), sigma=16)
    assert abs(good.mean() - 0.002) < 0.0005 < lifted.mean() - 0.002


def test_the_greens_share_one_correction_so_no_green_imbalance_is_made():
    """Bayer's two green channels, anchored apart by their inputs' independent noise, would differ by a smooth
    offset: a 2x2 pattern after demosaicing. They get one correction, their mean."""
    clean = _scene()
    rng = np.random.default_rng(5)
    noisy = clean + rng.normal(0, 0.05, clean.shape).astype(np.float32)
    out = anchor_means(clean, noisy, sigma=8)
    np.testing.assert_allclose(out[1] - clean[1], out[3] - clean[3], atol=1e-7)   # too small for a site balance
    assert np.abs((out[0] - clean[0]) - (out[1] - clean[1])).max() > 1e-4     # other colours keep their own


def test_a_green_imbalance_that_depends_on_brightness_is_removed():
    """A model whose second green runs up to 10 % hot in the highlights and 0.002 low in the shadows (student-raw's
    pattern on the Sony night raw): the anchor's per-site curve brings the greens back to the input's balance,
    which a per-colour correction alone cannot."""
    clean = _scene(h=192, w=256)
    clean[3] = clean[1]                                          # both greens see the same scene
    rng = np.random.default_rng(7)
    noisy = clean + rng.normal(0, 0.02, clean.shape).astype(np.float32)
    bad = clean.copy()
    bad[3] = clean[3] * (1.0 + 0.1 * clean[3] / clean[3].max()) - 0.002
    before = np.abs(bad[3] - bad[1]).mean()
    for out in (balance_sites(bad, noisy, [0, 1, 2, 1]), anchor_means(bad, noisy, sigma=16)):
        assert np.abs(out[3] - out[1]).mean() < 0.15 * before
    per_colour_only = anchor_means(bad, noisy, sigma=16) - balance_sites(bad, noisy, [0, 1, 2, 1]) + bad
    assert np.abs(per_colour_only[3] - per_colour_only[1]).mean() > 0.5 * before   # what the local anchor leaves


def test_site_balance_leaves_balanced_output_alone():
    clean = _scene(h=192, w=256)
    rng = np.random.default_rng(8)
    noisy = clean + rng.normal(0, 0.05, clean.shape).astype(np.float32)
    out = balance_sites(clean, noisy, [0, 1, 2, 1])
    assert np.abs(out - clean).max() < 2e-3                      # the input's noise moves a bin's mean little
    np.testing.assert_array_equal(balance_sites(clean, noisy, [0, 1, 2, 3]), clean)   # one site per colour: nothing


def test_the_fast_gaussian_matches_the_exact_one():
    import cv2

    a = _scene(h=270, w=481)                                      # sides not divisible by the downscale
    exact = np.stack([cv2.GaussianBlur(c, (0, 0), 16, borderType=cv2.BORDER_REFLECT) for c in a])
    fast = _smooth(a, 16)
    assert fast.shape == a.shape
    assert np.abs(fast - exact).max() < 0.01 and np.abs(fast - exact).mean() < 1e-3

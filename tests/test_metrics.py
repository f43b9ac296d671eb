import math

import numpy as np
import pytest
import torch
from skimage import data
from skimage.metrics import peak_signal_noise_ratio as sk_psnr
from skimage.metrics import structural_similarity as sk_ssim

from darkc.metrics import psnr, psnr_torch, ssim, ssim_torch


def _noisy(img, sigma, seed):
    noise = np.random.default_rng(seed).normal(0.0, sigma, img.shape).astype(img.dtype)
    return np.clip(img + noise, 0.0, 1.0)


ASTRONAUT = data.astronaut()[40:200, 150:330].astype(np.float64) / 255.0  # 160x180x3, face and helmet
COFFEE = data.coffee().astype(np.float32) / 255.0  # 400x600x3

PAIRS = {
    "astronaut-noisy": (ASTRONAUT, _noisy(ASTRONAUT, 0.05, 0)),
    "astronaut-very-noisy": (ASTRONAUT, _noisy(ASTRONAUT, 0.3, 1)),
    "astronaut-vs-coffee": (ASTRONAUT, COFFEE[:160, :180].astype(np.float64)),
    "coffee-noisy": (COFFEE, _noisy(COFFEE, 0.1, 2)),
    "coffee-blurred": (COFFEE, (COFFEE + np.roll(COFFEE, 1, 0) + np.roll(COFFEE, 1, 1)) / 3),
}


@pytest.mark.parametrize("name", list(PAIRS))
def test_psnr_ssim_match_skimage(name):
    a, b = PAIRS[name]
    assert psnr(a, b) == pytest.approx(sk_psnr(a, b, data_range=1.0), abs=1e-3)
    assert ssim(a, b) == pytest.approx(sk_ssim(a, b, channel_axis=-1, data_range=1.0), abs=1e-3)


def test_grayscale_and_uint8_match_skimage():
    a, b = PAIRS["astronaut-noisy"]
    assert ssim(a[..., 1], b[..., 1]) == pytest.approx(sk_ssim(a[..., 1], b[..., 1], data_range=1.0), abs=1e-3)
    a8, b8 = np.round(a * 255).astype(np.uint8), np.round(b * 255).astype(np.uint8)
    assert psnr(a8, b8, data_range=255) == pytest.approx(sk_psnr(a8, b8, data_range=255), abs=1e-3)
    assert ssim(a8, b8, data_range=255) == pytest.approx(sk_ssim(a8, b8, channel_axis=-1, data_range=255), abs=1e-3)
    with pytest.raises(ValueError, match="data_range=255"):
        psnr(a8, b8)  # 8-bit values with the float default data_range=1.0


def test_metric_values_order_as_expected():
    a, mild = PAIRS["astronaut-noisy"]
    _, strong = PAIRS["astronaut-very-noisy"]
    assert psnr(a, mild) > psnr(a, strong) + 10
    assert ssim(a, mild) > ssim(a, strong) + 0.3
    assert psnr(a, a) == math.inf
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-9)


def _nchw(*imgs):
    return torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float()


def test_torch_matches_numpy_per_image():
    pairs = [PAIRS["astronaut-noisy"], PAIRS["astronaut-very-noisy"], PAIRS["astronaut-vs-coffee"]]
    x = _nchw(*[a for a, _ in pairs])
    y = _nchw(*[b for _, b in pairs])
    p, s = psnr_torch(x, y), ssim_torch(x, y)
    assert p.shape == s.shape == (3,)
    for i, (a, b) in enumerate(pairs):
        a32, b32 = a.astype(np.float32), b.astype(np.float32)  # the torch batch is float32
        assert p[i].item() == pytest.approx(psnr(a32, b32), abs=1e-3)
        assert s[i].item() == pytest.approx(ssim(a32, b32), abs=1e-3)
        assert s[i].item() == pytest.approx(sk_ssim(a, b, channel_axis=-1, data_range=1.0), abs=1e-3)


def test_torch_identical_images():
    x = torch.rand(2, 3, 16, 16)
    assert torch.isinf(psnr_torch(x, x.clone())).all()
    assert torch.allclose(ssim_torch(x, x.clone()), torch.ones(2), atol=1e-5)


def test_ssim_torch_is_differentiable():
    x = torch.rand(1, 3, 16, 16, requires_grad=True)
    ssim_torch(x, torch.rand(1, 3, 16, 16)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize("fn", [psnr, ssim])
def test_numpy_shape_mismatch_names_shapes(fn):
    with pytest.raises(ValueError, match=r"\(8, 8, 3\) and \(8, 9, 3\)"):
        fn(np.zeros((8, 8, 3)), np.zeros((8, 9, 3)))


@pytest.mark.parametrize("fn", [psnr_torch, ssim_torch])
def test_torch_shape_mismatch_names_shapes(fn):
    with pytest.raises(ValueError, match=r"\(1, 3, 8, 8\) and \(1, 3, 8, 9\)"):
        fn(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 9))
    with pytest.raises(ValueError, match="NCHW"):
        fn(torch.zeros(3, 8, 8), torch.zeros(3, 8, 8))


def test_non_finite_and_too_small_raise():
    a = np.zeros((8, 8, 3))
    b = a.copy()
    b[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        psnr(a, b)
    with pytest.raises(ValueError, match="finite"):
        ssim_torch(torch.zeros(1, 3, 8, 8), torch.full((1, 3, 8, 8), math.inf))
    with pytest.raises(ValueError, match="at least 7x7"):
        ssim(np.zeros((6, 8, 3)), np.zeros((6, 8, 3)))



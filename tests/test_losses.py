import pytest
import pytorch_msssim
import safetensors.torch
import torch
from torch import nn

from darkc.errors import DarkcError
from darkc.losses import (
    LOSSES,
    MS_SSIM_WEIGHTS,
    MSSSIMLoss,
    PerceptualLoss,
    VGG16_LAYERS,
    _ms_ssim,
    get_loss,
    vgg16_features,
)
from darkc.metrics import ssim_torch


def _tiny_backbone(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1))


@pytest.fixture
def tiny_weights(tmp_path):
    path = tmp_path / "tiny.safetensors"
    safetensors.torch.save_file(_tiny_backbone(seed=1).state_dict(), str(path))
    return path


def _pair(size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(2, 3, size, size, generator=g)
    y = (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    return x, y


def _build(name, tiny_weights):
    if name in ("perceptual", "zamir"):
        return get_loss(name, backbone=_tiny_backbone(), weights_path=str(tiny_weights))
    return get_loss(name)


@pytest.mark.parametrize("name", list(LOSSES))
def test_zero_for_identical_positive_for_different_and_differentiable(name, tiny_weights):
    loss = _build(name, tiny_weights)
    x, y = _pair()
    assert abs(loss(y, y.clone()).item()) < 1e-5
    out = x.clone().requires_grad_(True)
    value = loss(out, y)
    assert value.ndim == 0 and value.item() > 1e-4
    value.backward()
    assert torch.isfinite(out.grad).all() and out.grad.abs().sum() > 0


def test_ssim_loss_is_one_minus_metric():
    x, y = _pair(32)
    assert get_loss("ssim")(x, y).item() == pytest.approx(1 - ssim_torch(x, y).mean().item(), abs=1e-6)


def test_ms_ssim_full_scales_is_pytorch_msssim():
    x, y = _pair(192)
    expected = 1 - pytorch_msssim.ms_ssim(x, y, data_range=1.0).item()
    assert get_loss("ms-ssim")(x, y).item() == pytest.approx(expected, abs=1e-6)


def test_ms_ssim_levels_loop_matches_pytorch_msssim():
    x, y = _pair(192)
    w = [0.2, 0.3, 0.5]
    expected = pytorch_msssim.ms_ssim(x, y, data_range=1.0, weights=w)
    assert _ms_ssim(x, y, 1.0, torch.tensor(w), 11, 1.5).item() == pytest.approx(expected.item(), abs=1e-6)


def test_ms_ssim_small_crop_falls_back_to_fewer_scales():
    loss = MSSSIMLoss()
    assert [loss.levels_for(s) for s in (11, 21, 41, 64, 81, 160, 161)] == [1, 2, 3, 3, 4, 4, 5]
    x, y = _pair(64)
    with pytest.raises(AssertionError):  # what the fallback avoids
        pytorch_msssim.ms_ssim(x, y, data_range=1.0, weights=MS_SSIM_WEIGHTS[:3])
    w = torch.tensor(MS_SSIM_WEIGHTS[:3])
    expected = 1 - _ms_ssim(x, y, 1.0, w / w.sum(), 11, 1.5).item()
    value = loss(x, y).item()
    assert value == pytest.approx(expected, abs=1e-6)
    assert 0.0 < value < 1.0
    with pytest.raises(DarkcError, match="larger than 10 px"):
        loss(x[..., :10, :10], y[..., :10, :10])


def test_perceptual_needs_weights():
    with pytest.raises(DarkcError, match="needs backbone weights as a safetensors file.*weights_path"):
        get_loss("perceptual")
    with pytest.raises(DarkcError, match="zamir-noperc"):
        get_loss("zamir")


def test_perceptual_loads_weights_from_file(tiny_weights):
    loss = PerceptualLoss(backbone=_tiny_backbone(seed=0), weights_path=tiny_weights)
    ref = _tiny_backbone(seed=1)
    assert torch.equal(loss.backbone[0].weight, ref[0].weight)
    assert not any(p.requires_grad for p in loss.backbone.parameters())
    loss.train()
    assert not loss.backbone.training
    x, y = _pair(16)
    expected = (ref(x) - ref(y)).abs().mean()
    assert loss(x, y).item() == pytest.approx(expected.item(), rel=1e-5)


def test_perceptual_bad_files(tmp_path, tiny_weights):
    with pytest.raises(DarkcError, match="file not found"):
        PerceptualLoss(weights_path=tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(DarkcError, match="not a readable safetensors file"):
        PerceptualLoss(weights_path=junk)
    with pytest.raises(DarkcError, match="keys do not match"):
        PerceptualLoss(weights_path=tiny_weights)  # tiny weights into the default VGG16
    with pytest.raises(DarkcError, match="unknown layers"):
        PerceptualLoss(backbone=_tiny_backbone(), weights_path=tiny_weights, layers=["7"])


def test_default_vgg16_accepts_torchvision_style_keys(tmp_path):
    torch.manual_seed(0)
    vgg = vgg16_features()
    path = tmp_path / "vgg16.safetensors"
    safetensors.torch.save_file({f"features.{k}": v for k, v in vgg.state_dict().items()}, str(path))
    loss = get_loss("perceptual", weights_path=str(path), layers=["relu1_2", "relu2_2"])
    assert len(loss.backbone) == int(VGG16_LAYERS["relu2_2"]) + 1
    assert torch.equal(loss.backbone[2].weight, vgg[2].weight)
    x, y = _pair(16)
    assert loss(x, y).item() > 0


def test_zamir_equals_formula(tiny_weights):
    x, y = _pair(192)
    ref = _tiny_backbone(seed=1)
    l1 = (x - y).abs().mean()
    ms = pytorch_msssim.ms_ssim(x, y, data_range=1.0)
    perc = (ref(x) - ref(y)).abs().mean()
    expected = 0.9 * (0.99 * l1 + 0.01 * (1 - ms)) + 0.1 * perc
    zamir = get_loss("zamir", backbone=_tiny_backbone(), weights_path=str(tiny_weights))
    assert zamir(x, y).item() == pytest.approx(expected.item(), rel=1e-5)
    noperc = get_loss("zamir-noperc")
    assert noperc(x, y).item() == pytest.approx((0.99 * l1 + 0.01 * (1 - ms)).item(), rel=1e-5)
    assert noperc.perceptual is None


def test_unknown_name_and_option():
    with pytest.raises(DarkcError, match="valid names: l1, mse, ssim, ms-ssim, perceptual, zamir, zamir-noperc"):
        get_loss("vgg")
    with pytest.raises(DarkcError, match="loss 'zamir-noperc'.*weights_path"):
        get_loss("zamir-noperc", weights_path="x.safetensors")


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match=r"\(1, 3, 32, 32\) and \(1, 3, 32, 31\)"):
        get_loss("ssim")(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 31))


def test_chroma_term_ignores_brightness_and_penalises_grey():
    loss = get_loss("l1-chroma", weight=3.0)
    y = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    brighter = y + 0.1                                  # same chroma: only the L1 term sees it
    assert loss(brighter, y).item() == pytest.approx(0.1, abs=1e-6)
    grey = y.mean(dim=1, keepdim=True).expand_as(y)     # same luminance, no colour
    chroma = (y - y.mean(dim=1, keepdim=True)).abs().mean().item()
    assert loss(grey, y).item() == pytest.approx(4.0 * chroma, rel=1e-5)
    with pytest.raises(DarkcError, match="weight"):
        get_loss("l1-chroma", weight=-1.0)

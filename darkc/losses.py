"""Training losses for the enhancement network, found by name.

Every loss is an ``nn.Module`` called as ``loss(output, target)`` on NCHW batches in ``[0, 1]`` and
returns a scalar tensor (mean over the batch). Build one with :func:`get_loss`::

    criterion = get_loss("zamir", weights_path="vgg16_features.safetensors")

Names (:data:`LOSSES`):

- ``l1``, ``mse``: pixel losses (``nn.L1Loss`` / ``nn.MSELoss``).
- ``ssim``: ``1 - SSIM`` with the same SSIM as :func:`darkc.metrics.ssim_torch` (uniform 7x7 window).
- ``ms-ssim``: ``1 - MS-SSIM`` (pytorch_msssim, Gaussian 11x11 window, 5 scales). Crops whose short
  side is at most 160 px get fewer scales (see :class:`MSSSIMLoss`).
- ``perceptual``: L1 distance between features of a frozen backbone (:class:`PerceptualLoss`). The
  backbone's weights come from a safetensors file that you supply; nothing is downloaded.
- ``zamir``: ``alpha * (beta * L1 + (1 - beta) * (1 - MS-SSIM)) + (1 - alpha) * perceptual`` with
  ``alpha=0.9``, ``beta=0.99`` (Zamir et al., "Learning Digital Camera Pipeline for Extreme Low-Light
  Imaging"). Needs perceptual weights like ``perceptual``.
- ``zamir-noperc``: the same without the perceptual term (``alpha=1``), for users without backbone
  weights: ``beta * L1 + (1 - beta) * (1 - MS-SSIM)``.
"""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Callable, Sequence

import pytorch_msssim
import safetensors.torch
import torch
import torch.nn.functional as F
from pytorch_msssim.ssim import _fspecial_gauss_1d, _ssim
from torch import nn

from darkc.errors import DarkcError
from darkc.metrics import SSIM_WIN_SIZE, ssim_map_torch

__all__ = [
    "LOSSES",
    "get_loss",
    "SSIMLoss",
    "MSSSIMLoss",
    "PerceptualLoss",
    "ZamirLoss",
    "zamir_noperc",
    "vgg16_features",
    "VGG16_LAYERS",
]

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)

WEIGHTS_HINT = (
    "pass weights_path='vgg16_features.safetensors'; "
    "make the file once where torchvision is installed with: safetensors.torch.save_file("
    "torchvision.models.vgg16(weights='IMAGENET1K_V1').features.state_dict(), 'vgg16_features.safetensors')"
)


def _check_pair(x: torch.Tensor, y: torch.Tensor) -> None:
    if x.shape != y.shape:
        raise ValueError(f"output and target must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.ndim != 4:
        raise ValueError(f"output and target must be NCHW, got shape {tuple(x.shape)}")


class SSIMLoss(nn.Module):
    """``1 - SSIM``, with the SSIM of :func:`darkc.metrics.ssim_torch` (uniform 7x7 window).

    Args:
        data_range (float): Peak-to-peak range of the inputs (1.0 for ``[0, 1]``).
    """

    def __init__(self, data_range: float = 1.0) -> None:
        super().__init__()
        self.data_range = data_range

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        _check_pair(x, y)
        if min(x.shape[-2:]) < SSIM_WIN_SIZE:
            raise DarkcError(
                f"loss 'ssim' needs crops of at least {SSIM_WIN_SIZE}x{SSIM_WIN_SIZE} px, got {tuple(x.shape[-2:])}; "
                f"increase the crop size"
            )
        return 1.0 - ssim_map_torch(x, y, self.data_range).mean()


class MSSSIMLoss(nn.Module):
    """``1 - MS-SSIM`` (pytorch_msssim: Gaussian window of ``win_size`` px, sigma 1.5, 5 scales).

    pytorch_msssim needs the short side of the image to exceed ``(win_size - 1) * 2**4`` (160 px for the
    default 11 px window), even when given fewer weights. For such inputs this loss computes MS-SSIM
    itself, the same way pytorch_msssim does per scale, with the largest number of scales ``L`` for which
    the short side exceeds ``(win_size - 1) * 2**(L - 1)`` (64 px -> 3 scales, 32 px -> 2, 11-20 px -> 1,
    i.e. plain SSIM), using the first ``L`` standard weights renormalised to sum to 1. Losses at different
    crop sizes are therefore not directly comparable. The number of scales follows each batch's size;
    see :meth:`levels_for`.

    Args:
        data_range (float): Peak-to-peak range of the inputs (1.0 for ``[0, 1]``).
        win_size (int): Odd Gaussian window size.
        win_sigma (float): Gaussian window sigma.
    """

    def __init__(self, data_range: float = 1.0, win_size: int = 11, win_sigma: float = 1.5) -> None:
        super().__init__()
        if win_size % 2 != 1 or win_size < 3:
            raise DarkcError(f"loss 'ms-ssim': win_size must be an odd number >= 3, got {win_size}")
        self.data_range = data_range
        self.win_size = win_size
        self.win_sigma = win_sigma

    def levels_for(self, short_side: int) -> int:
        """Number of scales used for images whose shorter side is ``short_side`` px (0: too small)."""
        levels = 0
        while levels < len(MS_SSIM_WEIGHTS) and short_side > (self.win_size - 1) * 2**levels:
            levels += 1
        return levels

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        _check_pair(x, y)
        short = min(x.shape[-2:])
        levels = self.levels_for(short)
        if levels == 0:
            raise DarkcError(
                f"loss 'ms-ssim' needs crops larger than {self.win_size - 1} px on the short side, got "
                f"{tuple(x.shape[-2:])}; increase the crop size"
            )
        if levels == len(MS_SSIM_WEIGHTS):
            value = pytorch_msssim.ms_ssim(
                x, y, data_range=self.data_range, size_average=True, win_size=self.win_size, win_sigma=self.win_sigma
            )
        else:
            weights = torch.tensor(MS_SSIM_WEIGHTS[:levels], dtype=x.dtype, device=x.device)
            value = _ms_ssim(x, y, self.data_range, weights / weights.sum(), self.win_size, self.win_sigma)
        return 1.0 - value


def _ms_ssim(x: torch.Tensor, y: torch.Tensor, data_range: float, weights: torch.Tensor, win_size: int, win_sigma: float) -> torch.Tensor:
    """MS-SSIM over ``len(weights)`` scales, per scale as ``pytorch_msssim.ms_ssim`` but without its size assert."""
    win = _fspecial_gauss_1d(win_size, win_sigma).repeat([x.shape[1], 1, 1, 1])
    levels = weights.shape[0]
    mcs = []
    for i in range(levels):
        ssim_per_channel, cs = _ssim(x, y, data_range=data_range, win=win, size_average=False)
        if i < levels - 1:
            mcs.append(torch.relu(cs))
            padding = [s % 2 for s in x.shape[2:]]
            x = F.avg_pool2d(x, kernel_size=2, padding=padding)
            y = F.avg_pool2d(y, kernel_size=2, padding=padding)
    stacked = torch.stack(mcs + [torch.relu(ssim_per_channel)], dim=0)  # (level, batch, channel)
    return torch.prod(stacked ** weights.view(-1, 1, 1), dim=0).mean()


VGG16_LAYERS = {
    "relu1_1": "1", "relu1_2": "3",
    "relu2_1": "6", "relu2_2": "8",
    "relu3_1": "11", "relu3_2": "13", "relu3_3": "15",
    "relu4_1": "18", "relu4_2": "20", "relu4_3": "22",
    "relu5_1": "25", "relu5_2": "27", "relu5_3": "29",
}
"""Names of the ReLU outputs of :func:`vgg16_features`, mapped to their index in the Sequential."""


def vgg16_features() -> nn.Sequential:
    """The convolutional part of VGG16, laid out like ``torchvision.models.vgg16().features``.

    Its ``state_dict`` keys (``0.weight``, ``0.bias``, ``2.weight``, ...) match torchvision's
    ``features.*`` keys, so converted ImageNet weights load directly. Randomly initialised: load weights
    before use. ReLUs are not in-place, so any layer's output can be read.
    """
    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
    layers: list[nn.Module] = []
    channels = 3
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(channels, v, kernel_size=3, padding=1), nn.ReLU()]
            channels = v
    return nn.Sequential(*layers)


def _load_weights(module: nn.Module, path: str | Path) -> None:
    path = Path(path)
    if not path.is_file():
        raise DarkcError(f"perceptual loss weights {path}: file not found; {WEIGHTS_HINT}")
    try:
        state = safetensors.torch.load_file(str(path))
    except Exception as e:  # noqa: BLE001  (any parse failure is the same user error)
        raise DarkcError(f"perceptual loss weights {path}: not a readable safetensors file ({e}); {WEIGHTS_HINT}") from e
    expected = set(module.state_dict())
    if not expected & set(state) and any(k.startswith("features.") for k in state):
        state = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
    missing = sorted(expected - set(state))
    unexpected = sorted(set(state) - expected)
    if missing or unexpected:
        raise DarkcError(
            f"perceptual loss weights {path}: keys do not match the backbone "
            f"(missing {missing[:4]}{'...' if len(missing) > 4 else ''}, "
            f"unexpected {unexpected[:4]}{'...' if len(unexpected) > 4 else ''}); "
            f"the file must hold the backbone's state_dict (for VGG16: keys '0.weight'... or 'features.0.weight'...)"
        )
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise DarkcError(f"perceptual loss weights {path}: tensor shapes do not match the backbone ({e})") from e


class PerceptualLoss(nn.Module):
    """L1 distance between features of a frozen backbone at chosen layers, averaged over layers.

    The target's features are computed without gradient; the backbone is frozen and stays in eval mode.
    Weights are read with ``safetensors.torch.load_file`` only (no pickle, no download).

    Args:
        backbone (nn.Module | None): Feature extractor. None: :func:`vgg16_features`, which then needs
            ``weights_path``. A module you pass is used with the weights it has unless ``weights_path`` is
            given; it is frozen in place.
        weights_path (str | None): safetensors file with the backbone's ``state_dict``. For the default
            VGG16, keys as in ``torchvision.models.vgg16().features.state_dict()`` (``features.``-prefixed
            keys of a full VGG16 state_dict are accepted too; other keys must match exactly).
        layers (Sequence[str | int] | None): Layers whose outputs are compared: names from
            ``backbone.named_modules()`` (an int is read as its string), or for the default VGG16 also
            :data:`VGG16_LAYERS` names. None: ``("relu1_2", "relu2_2", "relu3_3")`` for VGG16, the
            backbone's final output otherwise.
        layer_weights (Sequence[float] | None): Weight per layer; None: ``1 / len(layers)`` each.
        imagenet_norm (bool | None): Normalise inputs with the ImageNet mean/std first. None: True for
            the default VGG16, False for a backbone you pass.

    Raises:
        DarkcError: If the default backbone has no ``weights_path``, the file is missing, unreadable or
            does not match the backbone, or a layer name is unknown.
    """

    def __init__(
        self,
        backbone: nn.Module | None = None,
        weights_path: str | Path | None = None,
        layers: Sequence[str | int] | None = None,
        layer_weights: Sequence[float] | None = None,
        imagenet_norm: bool | None = None,
    ) -> None:
        super().__init__()
        default = backbone is None
        if default:
            if weights_path is None:
                raise DarkcError(f"the perceptual loss needs backbone weights as a safetensors file; {WEIGHTS_HINT}")
            backbone = vgg16_features()
        if weights_path is not None:
            _load_weights(backbone, weights_path)
        aliases = VGG16_LAYERS if default else {}
        if layers is None:
            layers = ("relu1_2", "relu2_2", "relu3_3") if default else ("",)
        names = [aliases.get(str(n), str(n)) for n in layers]
        modules = dict(backbone.named_modules())
        unknown = [str(n) for n, m in zip(layers, names) if m not in modules]
        if unknown or not names:
            options = list(aliases) if default else [n for n in modules if n][:20]
            raise DarkcError(f"perceptual loss: unknown layers {unknown or '(none given)'}; choose from {options}")
        if default and all(n.isdigit() for n in names):
            backbone = backbone[: max(int(n) for n in names) + 1]  # nothing after the deepest layer is needed
        if layer_weights is None:
            layer_weights = [1.0 / len(names)] * len(names)
        if len(layer_weights) != len(names):
            raise DarkcError(f"perceptual loss: {len(layer_weights)} layer_weights for {len(names)} layers")
        self.backbone = backbone.requires_grad_(False).eval()
        self.layers = names
        self.layer_weights = [float(w) for w in layer_weights]
        self.imagenet_norm = default if imagenet_norm is None else imagenet_norm
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> "PerceptualLoss":
        super().train(mode)
        self.backbone.eval()
        return self

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Backbone outputs at ``self.layers`` for a batch in ``[0, 1]``."""
        if self.imagenet_norm:
            x = (x - self.mean) / self.std
        modules = dict(self.backbone.named_modules())
        out: dict[str, torch.Tensor] = {}
        handles = [
            modules[name].register_forward_hook(lambda _m, _i, o, name=name: out.__setitem__(name, o))
            for name in set(self.layers)
        ]
        try:
            self.backbone(x)
        finally:
            for h in handles:
                h.remove()
        return [out[name] for name in self.layers]

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        _check_pair(x, y)
        fx = self.features(x)
        with torch.no_grad():
            fy = self.features(y)
        return sum(w * F.l1_loss(a, b) for w, a, b in zip(self.layer_weights, fx, fy))


class ChromaL1Loss(nn.Module):
    """``L1 + weight * L1 of the chroma`` (each pixel's RGB minus its own mean over RGB).

    Plain L1 lets a network settle on a grey output: with noisy dark inputs the luminance error dominates
    and predicting grey costs little. Measured here (fresh widths-16..256 U-Net, 300 steps, lr 1e-3,
    batch 4, synthetic photos): with plain L1 the output's chroma error stayed at the level of predicting
    grey (0.071 vs 0.072), with ``weight=3`` it fell to 0.052 (fine-tuning the already-grey shipped teacher
    with it for 1200 steps did not bring colour back). The chroma term ignores brightness, so it
    adds no pull on what the L1 term already fits.

    Args:
        weight (float): weight of the chroma term, >= 0.
    """

    def __init__(self, weight: float = 3.0) -> None:
        super().__init__()
        if not weight >= 0:
            raise DarkcError(f"loss 'l1-chroma': weight must be >= 0, got {weight}")
        self.weight = float(weight)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        _check_pair(x, y)
        chroma_x = x - x.mean(dim=1, keepdim=True)
        chroma_y = y - y.mean(dim=1, keepdim=True)
        return F.l1_loss(x, y) + self.weight * F.l1_loss(chroma_x, chroma_y)


class ZamirLoss(nn.Module):
    """``alpha * (beta * L1 + (1 - beta) * (1 - MS-SSIM)) + (1 - alpha) * perceptual`` (Zamir et al.).

    With ``alpha == 1`` the perceptual term is dropped and no backbone is built (the backbone arguments
    are then ignored); that is the ``zamir-noperc`` loss.

    Args:
        alpha (float): Weight of the pixel/structural part against the perceptual part, in ``[0, 1]``.
        beta (float): Weight of L1 against ``1 - MS-SSIM``, in ``[0, 1]``.
        backbone, weights_path, layers: As for :class:`PerceptualLoss`.
        data_range (float): Peak-to-peak range of the inputs, for MS-SSIM.
    """

    def __init__(
        self,
        alpha: float = 0.9,
        beta: float = 0.99,
        backbone: nn.Module | None = None,
        weights_path: str | Path | None = None,
        layers: Sequence[str | int] | None = None,
        data_range: float = 1.0,
    ) -> None:
        super().__init__()
        for name, v in (("alpha", alpha), ("beta", beta)):
            if not 0.0 <= v <= 1.0:
                raise DarkcError(f"loss 'zamir': {name} must be in [0, 1], got {v}")
        self.alpha, self.beta = float(alpha), float(beta)
        self.l1 = nn.L1Loss()
        self.ms_ssim = MSSSIMLoss(data_range=data_range)
        self.perceptual = None
        if self.alpha < 1.0:
            try:
                self.perceptual = PerceptualLoss(backbone=backbone, weights_path=weights_path, layers=layers)
            except DarkcError as e:
                raise DarkcError(f"loss 'zamir' includes a perceptual term: {e}; without weights use 'zamir-noperc'") from e

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        pixel = self.beta * self.l1(x, y) + (1.0 - self.beta) * self.ms_ssim(x, y)
        if self.perceptual is None:
            return pixel
        return self.alpha * pixel + (1.0 - self.alpha) * self.perceptual(x, y)


def zamir_noperc(beta: float = 0.99, data_range: float = 1.0) -> ZamirLoss:
    """The Zamir loss without its perceptual term: ``beta * L1 + (1 - beta) * (1 - MS-SSIM)``."""
    return ZamirLoss(alpha=1.0, beta=beta, data_range=data_range)


class GammaL1Loss(nn.Module):
    """L1 after a display gamma, plus a small linear L1: ``mean|g(x) - g(y)| + linear * mean|x - y|`` with
    ``g(v) = (max(v, 0) + eps) ** (1 / gamma) - eps ** (1 / gamma)``.

    For raw-output models: their output is linear raw, but they are judged after LibRaw's render, whose gamma
    makes an error in the shadows count several times one in the highlights (Brooks et al. 2019 compute their
    raw denoiser's loss after a simple ISP for this reason). ``eps`` bounds the slope at black (~20x the slope
    at 1 for the defaults); the linear term keeps a gradient on negative outputs.
    """

    def __init__(self, gamma: float = 2.2, eps: float = 1e-3, linear: float = 0.1) -> None:
        super().__init__()
        if gamma < 1 or eps <= 0 or linear < 0:
            raise DarkcError(f"loss 'l1-gamma': needs gamma >= 1, eps > 0, linear >= 0; got {gamma}, {eps}, {linear}")
        self.inv_gamma, self.eps, self.linear = 1.0 / float(gamma), float(eps), float(linear)

    def _g(self, v: torch.Tensor) -> torch.Tensor:
        return (v.clamp(min=0) + self.eps) ** self.inv_gamma - self.eps ** self.inv_gamma

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        _check_pair(x, y)
        return (self._g(x) - self._g(y)).abs().mean() + self.linear * (x - y).abs().mean()


class IspL1Loss(nn.Module):
    """For raw-output models: L1 after a simple ISP, plus :class:`GammaL1Loss` on the raw channels.

    ``forward(x, y, isp)``: ``isp`` (N, 3, C) maps the packed raw channels to linear sRGB (colour averaging of the
    CFA channels, white balance, camera-to-sRGB matrix: :func:`darkc.data.datasets.isp_matrix`); both images are
    mapped, clipped to [0, 1], gamma-encoded and compared with L1 (Brooks et al. 2019 train their raw denoiser
    through such an ISP). The render the models are judged by amplifies red/blue errors by the white balance and
    every channel's error by the colour matrix; a raw-domain loss does not see that (a first raw-loss run's outputs
    carried a blue offset the render amplified). Without ``isp`` only the raw term is used.
    """

    def __init__(self, raw_weight: float = 1.0, gamma: float = 2.2, eps: float = 1e-3) -> None:
        super().__init__()
        self.raw = GammaL1Loss(gamma=gamma, eps=eps)
        self.raw_weight, self.inv_gamma, self.eps = float(raw_weight), 1.0 / float(gamma), float(eps)

    def _render(self, v: torch.Tensor, isp: torch.Tensor) -> torch.Tensor:
        rgb = torch.einsum("nkc,nchw->nkhw", isp.to(v.dtype), v).clamp(0, 1)
        return (rgb + self.eps) ** self.inv_gamma

    def forward(self, x: torch.Tensor, y: torch.Tensor, isp: torch.Tensor | None = None) -> torch.Tensor:
        raw = self.raw(x, y)
        if isp is None:
            return raw
        return (self._render(x, isp) - self._render(y, isp)).abs().mean() + self.raw_weight * raw


LOSSES: dict[str, Callable[..., nn.Module]] = {
    "l1": nn.L1Loss,
    "mse": nn.MSELoss,
    "ssim": SSIMLoss,
    "ms-ssim": MSSSIMLoss,
    "perceptual": PerceptualLoss,
    "zamir": ZamirLoss,
    "zamir-noperc": zamir_noperc,
    "l1-chroma": ChromaL1Loss,
    "l1-gamma": GammaL1Loss,
    "isp-l1": IspL1Loss,
}
"""Loss name -> constructor; :func:`get_loss` passes its keyword options on."""


def get_loss(name: str, **kw) -> nn.Module:
    """Build the loss called ``name`` (a key of :data:`LOSSES`) with options ``kw``.

    Raises:
        DarkcError: If the name is unknown (the message lists the valid names), an option is not one the
            loss takes, or the loss itself cannot be built (e.g. perceptual weights missing).
    """
    if name not in LOSSES:
        raise DarkcError(f"unknown loss {name!r}; valid names: {', '.join(LOSSES)}")
    factory = LOSSES[name]
    sig = inspect.signature(factory)
    try:
        sig.bind(**kw)
    except TypeError as e:
        options = [p for p in sig.parameters if p not in ("size_average", "reduce")]
        raise DarkcError(f"loss {name!r}: {e}; it takes the options {options}") from e
    return factory(**kw)

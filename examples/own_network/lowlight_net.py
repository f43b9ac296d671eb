"""A user's own low-light network, outside darkc: darkc knows nothing of it beyond its import path.

darkc calls ``build(spec)`` with the model spec (``model.json``): ``in_channels`` (4 for packed Bayer RGGB, one more
with a noise-std input), ``out_channels`` (3 for sRGB) and ``scale`` (2: the PixelShuffle back to full resolution),
plus any field of your own (``width`` here). darkc's generic architecture adapter finds the rest by tracing one
forward pass: the output head (``out_proj``, never pruned), the prunable widths, the feature-distillation taps (the
last conv at each resolution finer than the coarsest: ``fuse``), the size multiple (2: one pooling) and the PixelShuffle.
"""
import torch
import torch.nn.functional as F
from torch import nn


class LowLightNet(nn.Module):
    """Packed raw (N, 4, H, W) in [0, 1] -> sRGB (N, 3, 2H, 2W): a two-level U-Net."""

    def __init__(self, in_channels: int, out_channels: int, scale: int, width: int = 16):
        super().__init__()
        self.enc_a = nn.Conv2d(in_channels, width, 3, padding=1)
        self.enc_b = nn.Conv2d(width, 2 * width, 3, padding=1)
        self.mid = nn.Sequential(nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.LeakyReLU(0.2))
        self.grow = nn.ConvTranspose2d(2 * width, width, 2, stride=2)
        self.fuse = nn.Conv2d(2 * width, width, 3, padding=1)
        self.out_proj = nn.Conv2d(width, out_channels * scale * scale, 1)
        self.to_image = nn.PixelShuffle(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = F.leaky_relu(self.enc_a(x), 0.2)
        b = self.mid(F.leaky_relu(self.enc_b(F.max_pool2d(a, 2)), 0.2))
        y = F.leaky_relu(self.fuse(torch.cat([self.grow(b), a], 1)), 0.2)
        return self.to_image(self.out_proj(y))


def build(spec: dict) -> nn.Module:
    return LowLightNet(spec["in_channels"], spec["out_channels"], spec["scale"], spec.get("width", 16))

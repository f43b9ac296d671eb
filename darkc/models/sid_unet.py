"""The SID U-Net of Chen et al., "Learning to See in the Dark" (CVPR 2018), with per-layer widths.

Input is packed raw, NCHW, black-level subtracted, scaled by the exposure ratio and clipped to [0, 1]
(Bayer: 4 channels RGGB at half resolution; X-Trans: 9 channels at a third), optionally followed by one
noise-level channel (see :mod:`darkc.data.noise_level`). Two output kinds:

* ``srgb`` (SID's): sRGB in NCHW at ``scale`` times the packed size (the head emits ``3 * scale**2`` channels
  and a PixelShuffle unpacks them); the network has to learn the camera's colour transform.
* ``raw``: the clean packed raw in the camera's own colour space, same size and scale as the amplified input
  (the head emits the CFA's 4 or 9 channels and is added to the noisy input: residual denoising, head
  initialised to zero so an untrained net passes its input through). LibRaw renders it with the file's own
  white balance and colour matrix, so colour never has to be learnt and the net carries to other cameras.

Every layer's output width is free so that channel pruning, which leaves uneven widths such as
``conv1_1=24, conv1_2=16``, can be saved and rebuilt; input widths follow from the wiring.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from darkc.models.widths import check_layer_channels, check_output

#: Layers grouped by U-Net level: five encoder levels, then four decoder levels (``up`` first).
LEVELS: tuple[tuple[str, ...], ...] = (
    ("conv1_1", "conv1_2"),
    ("conv2_1", "conv2_2"),
    ("conv3_1", "conv3_2"),
    ("conv4_1", "conv4_2"),
    ("conv5_1", "conv5_2"),
    ("up6", "conv6_1", "conv6_2"),
    ("up7", "conv7_1", "conv7_2"),
    ("up8", "conv8_1", "conv8_2"),
    ("up9", "conv9_1", "conv9_2"),
)
#: Layers whose output width is set by ``channels`` (every layer but the fixed-width head ``conv10``).
WIDTH_LAYERS: tuple[str, ...] = tuple(name for level in LEVELS for name in level)
#: All learnable layers in forward order; these names are the safetensors keys (``<name>.weight``/``.bias``).
LAYERS: tuple[str, ...] = WIDTH_LAYERS + ("conv10",)
#: Decoder layers whose outputs feature distillation matches (one per upsampling level).
FEATURE_LAYERS: tuple[str, ...] = ("conv6_2", "conv7_2", "conv8_2", "conv9_2")
#: The output head: never pruned (``3 * scale**2`` channels before the PixelShuffle, or the raw channels).
HEAD: tuple[str, ...] = ("conv10",)
#: Level widths of the published network.
DEFAULT_WIDTHS: tuple[int, ...] = (32, 64, 128, 256, 512)
#: Packed height and width must be a multiple of this (four 2x poolings).
SIZE_MULTIPLE = 16

_NEG_SLOPE = 0.2


def widths_to_channels(widths: list[int] | tuple[int, ...]) -> dict[str, int]:
    """Expand five level widths (encoder levels 1-5) into the per-layer ``channels`` dict.

    Decoder level ``6 + i`` mirrors encoder level ``4 - i``, as in SID: ``up6``/``conv6_*`` get
    ``widths[3]``, ... ``up9``/``conv9_*`` get ``widths[0]``.
    """
    widths = list(widths)
    if len(widths) != len(DEFAULT_WIDTHS):
        raise ValueError(f"widths needs {len(DEFAULT_WIDTHS)} level widths, got {len(widths)}: {widths}")
    channels = {}
    for level, names in enumerate(LEVELS):
        width = widths[level] if level < 5 else widths[8 - level]
        for name in names:
            channels[name] = width
    return channels


def channels_to_widths(channels: dict[str, int]) -> list[int] | None:
    """The five level widths that ``channels`` expands from, or None when the widths are uneven."""
    candidate = [channels.get(f"conv{i}_1") for i in range(1, 6)]
    if widths_to_channels(candidate) == dict(channels):
        return candidate
    return None


def _conv3(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, padding=1)


class SIDUNet(nn.Module):
    """SID U-Net: packed raw (N, in_channels, H, W) in [0, 1] -> sRGB (N, 3, scale*H, scale*W).

    Args:
        in_channels: packed raw channels (4 for Bayer RGGB, 9 for X-Trans).
        scale: PixelShuffle factor of the head (2 for Bayer, 3 for X-Trans).
        channels: output width of every layer in :data:`WIDTH_LAYERS`; defaults to the published
            widths ``widths_to_channels(DEFAULT_WIDTHS)``.

    H and W must be multiples of :data:`SIZE_MULTIPLE`; callers pad (the check is skipped while
    tracing or compiling, so exported graphs keep symbolic shapes).
    """

    size_multiple = SIZE_MULTIPLE

    def __init__(self, in_channels: int = 4, scale: int = 2, channels: dict[str, int] | None = None,
                 output: str = "srgb", raw_channels: int | None = None):
        super().__init__()
        raw_channels = check_output(output, scale, in_channels, raw_channels)
        if channels is None:
            channels = widths_to_channels(DEFAULT_WIDTHS)
        check_layer_channels(channels, WIDTH_LAYERS)
        self.in_channels = in_channels
        self.output = output
        self.raw_channels = raw_channels
        self.scale = scale
        c = channels

        cin = in_channels
        for level in range(1, 6):
            setattr(self, f"conv{level}_1", _conv3(cin, c[f"conv{level}_1"]))
            setattr(self, f"conv{level}_2", _conv3(c[f"conv{level}_1"], c[f"conv{level}_2"]))
            cin = c[f"conv{level}_2"]
        for level in range(6, 10):
            skip = c[f"conv{10 - level}_2"]
            setattr(self, f"up{level}", nn.ConvTranspose2d(cin, c[f"up{level}"], kernel_size=2, stride=2))
            setattr(self, f"conv{level}_1", _conv3(c[f"up{level}"] + skip, c[f"conv{level}_1"]))
            setattr(self, f"conv{level}_2", _conv3(c[f"conv{level}_1"], c[f"conv{level}_2"]))
            cin = c[f"conv{level}_2"]
        if output == "raw":
            self.conv10 = nn.Conv2d(cin, self.raw_channels, kernel_size=1)
        else:
            self.conv10 = nn.Conv2d(cin, 3 * scale * scale, kernel_size=1)
            self.pixel_shuffle = nn.PixelShuffle(scale)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He (fan-in) initialisation for the LeakyReLU(0.2) layers, zero biases.

        PyTorch's default conv init (kaiming_uniform with a=sqrt(5), std 1/sqrt(3 fan_in)) shrinks the
        signal at every layer of this 23-layer net without normalisation; from it the U-Net settled on
        grey output on the synthetic data (chroma no better than predicting grey after 600 steps), from
        this one it learnt colour in the same steps. A stride-2 2x2 transposed conv feeds each output pixel
        from one input position, so its fan-in is its input channel count. A raw-output head starts at zero
        (the residual net starts as the identity on the noisy input).
        """
        gain = nn.init.calculate_gain("leaky_relu", _NEG_SLOPE)
        for m in self.modules():
            if isinstance(m, nn.ConvTranspose2d):
                nn.init.normal_(m.weight, 0.0, gain / math.sqrt(m.in_channels))
            elif isinstance(m, nn.Conv2d):
                g = 1.0 if m is self.conv10 else gain
                fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
                nn.init.normal_(m.weight, 0.0, g / math.sqrt(fan_in))
            else:
                continue
            nn.init.zeros_(m.bias)
        if self.output == "raw":
            nn.init.zeros_(self.conv10.weight)

    @property
    def channels(self) -> dict[str, int]:
        """Current per-layer output widths, read from the layers (so they reflect in-place pruning)."""
        return {name: getattr(self, name).out_channels for name in WIDTH_LAYERS}

    def _block(self, x: torch.Tensor, level: int) -> torch.Tensor:
        x = F.leaky_relu(getattr(self, f"conv{level}_1")(x), _NEG_SLOPE)
        return F.leaky_relu(getattr(self, f"conv{level}_2")(x), _NEG_SLOPE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (torch.jit.is_tracing() or torch.compiler.is_compiling()):
            if x.dim() != 4 or x.shape[1] != self.conv1_1.in_channels:
                raise ValueError(f"SIDUNet expects packed raw of shape (N, {self.conv1_1.in_channels}, H, W), "
                                 f"got {tuple(x.shape)}")
            if x.shape[2] % SIZE_MULTIPLE or x.shape[3] % SIZE_MULTIPLE:
                raise ValueError(f"SIDUNet needs packed H and W to be multiples of {SIZE_MULTIPLE}, got "
                                 f"{tuple(x.shape)}; pad the input (e.g. reflect) and crop the output")
        inp = x
        skips = []
        for level in range(1, 5):
            x = self._block(x, level)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self._block(x, 5)
        for level in range(6, 10):
            x = getattr(self, f"up{level}")(x)
            x = torch.cat([x, skips[9 - level]], dim=1)
            x = self._block(x, level)
        if self.output == "raw":
            return inp[:, : self.raw_channels] + self.conv10(x)
        return self.pixel_shuffle(self.conv10(x))

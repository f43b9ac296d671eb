"""A U-Net for phones: few full-resolution layers, cheap blocks, resize-conv upsampling, additive skips, ReLU.

Same input and output contract as :class:`darkc.models.sid_unet.SIDUNet` (packed raw NCHW in [0, 1], optional
noise-std channel; ``raw`` output = noisy input + residual head, ``srgb`` output = head + PixelShuffle), and
the same size multiple (16: four stride-2 stages). What differs, and why (measured figures in
``benchmarks/results/mobile_arch.md``, made by ``benchmarks/mobile_arch.py``):

- **One conv at full resolution on the way down** (``stem``, 3x3, few channels) and one block on the way up
  (``dec0``): the SID U-Net runs five layers at full packed resolution (``conv1_*``, ``up9``, ``conv9_*``),
  which is where a thin student spends most of its time and memory traffic.
- **Stride-2 convolutions** (``enc1..enc4`` start with one) instead of max pooling: the downsampling does work.
- **Cheap blocks** (``block``): ``ds`` (depthwise 3x3 + pointwise 1x1, MobileNet v1), ``ir`` (inverted
  residual, expansion 2, MobileNet v2) or ``conv`` (plain 3x3, for comparison).
- **Resize-conv upsampling**: a 1x1 ``lateral`` conv at the low resolution, then a 2x nearest-neighbour resize
  (the two commute, so the conv costs a quarter of resize-then-conv), then the encoder skip is *added* (no
  concatenation, no TRANSPOSE_CONV: per-channel int8 transposed convs are slow on XNNPACK, see
  ``benchmarks/results/int8_speed.md``).
- **ReLU only**, fused into the convs by the converter: every op is int8 on LiteRT and on Ethos-U (Vela).
- ``stem="s2"`` goes further: a 2x2 stride-2 stem (space-to-depth + 1x1 in one conv), the first encoder and the
  last decoder stage at half packed resolution, and a 2x2 stride-2 transposed-conv head (raw; sRGB: a PixelShuffle
  of twice the factor), so no layer but the head runs at full packed resolution.
- ``stem="s4"``: the same at a quarter of the packed resolution: a 4x4 stride-4 stem (space-to-depth + 1x1, built
  as two linear 2x2 stride-2 convs ``stem0`` and ``stem``, because Ethos-U convolutions take strides <= 3), the first
  encoder and the last decoder stage at 1/4, and a raw head of two linear 2x2 stride-2 transposed convs
  (``head_up``, ``head``: Ethos-U transposed convs take stride 2 only; sRGB: a PixelShuffle of four times the
  factor). Every layer but the head's second conv runs at <= 1/2 packed resolution, all the blocks at <= 1/4.
- ``head="d2s"`` (raw output after an ``s2``/``s4`` stem): a 1x1 conv to ``raw_channels * stride**2`` and a
  PixelShuffle (DEPTH_TO_SPACE) instead of the transposed convs. XNNPACK's int8 transposed conv with few output
  channels is slow (~46 % of the host INT8 time of an s4 net, ``benchmarks/results/realtime_design.md``), its
  DEPTH_TO_SPACE a copy; Vela has no DEPTH_TO_SPACE, so this head is for CPU students only (the Ethos-U runs it on
  its host CPU).
- ``head="half"`` (raw output after an ``s4`` stem): the ``d2s`` head is rank-deficient there: a 1x1 conv from
  ``dec0``'s few channels at 1/4 packed resolution sets all 64 values of a 4x4 block of 4-channel packed raw, so the
  residual it adds to the noisy input cannot follow per-pixel noise (such a student stays at the noisy input's
  PSNR: ``benchmarks/results/realtime_student.md``). ``half`` adds one stage at 1/2 packed resolution: ``dec0``'s
  output through a 1x1 ``lateral`` conv, resized 2x and added to ``stem0``'s output (a linear 2x2 space-to-depth
  of the input: every input pixel at full rank; ``lateral`` is ``4 * in_channels`` wide, tied to ``stem0``, never
  pruned), ReLU, then a 1x1 conv to ``raw_channels * 4`` and a PixelShuffle(2) giving the raw output directly (no
  input added after it, so the exporter appends a native DEPTH_TO_SPACE, as for sRGB heads, and no layout
  transposes run at full packed resolution).
- ``levels`` (2-4 encoder stages, default 4) and ``bottleneck`` (blocks after the stride-2 conv of the deepest
  stage, default 2) set the depth; the receptive field, and with it the halo an Ethos-U tile must carry
  (:mod:`darkc.latency.tiling`), grows with both. ``widths`` then has ``levels + 1`` entries.

Every layer that sets a free width is in :data:`WIDTH_LAYERS`; ``channels`` maps those names to widths, as the
SID U-Net's does. The additive skips tie widths: ``dec{k}``'s lateral conv emits ``enc{k}``'s width (the stem's
for ``dec0``); the width of a decoder block's output is free. The head is the final conv ``head``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from darkc.models.widths import check_layer_channels, check_output, normalize_level_widths

#: Encoder stages the ``levels`` option allows (the default builds four).
LEVELS = (2, 3, 4)
DEFAULT_LEVELS = 4
#: Blocks after the stride-2 conv of the deepest stage (``bottleneck`` option): default and allowed range.
DEFAULT_BOTTLENECK = 2
BOTTLENECKS = (0, 1, 2, 3, 4)


def width_layers(levels: int = DEFAULT_LEVELS) -> tuple[str, ...]:
    """Layers (top-level modules) whose output width ``channels`` sets, in forward order, for ``levels`` stages."""
    return ("stem", *(f"enc{k}" for k in range(1, levels + 1)), *(f"dec{k}" for k in range(levels - 1, -1, -1)))


#: Width layers of the default four-stage net.
WIDTH_LAYERS: tuple[str, ...] = width_layers(DEFAULT_LEVELS)
#: Level widths of the four-stage net: the stem's resolution, then each encoder stage's (the first ``levels + 1``
#: are the default of a shallower net).
DEFAULT_WIDTHS: tuple[int, ...] = (16, 24, 48, 96, 128)
SIZE_MULTIPLE = 16
BLOCKS = ("ds", "ir", "conv")
UPSAMPLES = ("nearest", "bilinear")
#: ``full``: 3x3 stem conv and the last decoder block at full packed resolution; ``s2``: nothing there but the
#: head, a 2x2 stride-2 transposed conv (the stem is a 2x2 stride-2 conv, i.e. space-to-depth + 1x1); ``s4``: the
#: same at 1/4 (see the module docstring).
STEMS = ("full", "s2", "s4")
#: Raw heads after an ``s2``/``s4`` stem: transposed convs (Ethos-U), 1x1 conv + DEPTH_TO_SPACE (CPU), or (``s4``
#: only) a refinement stage at half resolution + 1x1 conv + DEPTH_TO_SPACE(2) (CPU; see the module docstring).
HEADS = ("tconv", "d2s", "half")
#: Downsampling of each stem.
STEM_STRIDE = {"full": 1, "s2": 2, "s4": 4}
#: Inverted-residual expansion (MobileNet v2 uses 6; 2 keeps the hidden tensor small at high resolution).
IR_EXPANSION = 2


def size_multiple(stem: str = "full", levels: int = DEFAULT_LEVELS) -> int:
    """Packed H and W must be multiples of this: the stem's stride times 2 per stride-2 encoder stage (the first
    stage keeps the resolution after an ``s2``/``s4`` stem)."""
    return STEM_STRIDE[stem] * 2 ** (levels - (stem != "full"))


def widths_to_channels(widths: list[int] | tuple[int, ...]) -> dict[str, int]:
    """``levels + 1`` level widths -> per-layer widths: ``stem``/``dec0`` get ``widths[0]``, ``enc{k}``/``dec{k}``
    get ``widths[k]`` (the last, ``enc{levels}``, is the bottleneck, without a decoder twin)."""
    widths = list(widths)
    levels = len(widths) - 1
    if levels not in LEVELS:
        raise ValueError(f"widths needs {', '.join(str(n + 1) for n in LEVELS)} level widths (levels + 1), got "
                         f"{len(widths)}: {widths}")
    return {"stem": widths[0], **{f"enc{k}": widths[k] for k in range(1, levels + 1)},
            **{f"dec{k}": widths[k] for k in range(levels - 1, -1, -1)}}


def channels_to_widths(channels: dict[str, int]) -> list[int] | None:
    """The level widths ``channels`` expands from, or None when the decoder widths differ from the encoder's."""
    levels = sum(1 for n in channels if n.startswith("enc"))
    candidate = [channels.get(n) for n in ("stem", *(f"enc{k}" for k in range(1, levels + 1)))]
    if levels not in LEVELS or None in candidate:
        return None
    return candidate if widths_to_channels(candidate) == dict(channels) else None


class ConvBlock(nn.Module):
    """3x3 conv + ReLU (SID's layer), ``stride`` 1 or 2."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv(x))


class DSBlock(nn.Module):
    """Depthwise-separable: depthwise 3x3 + ReLU, pointwise 1x1 + ReLU (MobileNet v1); 9c + c*c' MACs per pixel."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.dw = nn.Conv2d(cin, cin, 3, stride, 1, groups=cin)
        self.pw = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.pw(F.relu(self.dw(x))))


class IRBlock(nn.Module):
    """Inverted residual (MobileNet v2): 1x1 expand + ReLU, depthwise 3x3 + ReLU, linear 1x1 project, plus the
    input when shapes allow; expansion :data:`IR_EXPANSION`."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        hidden = cin * IR_EXPANSION
        self.expand = nn.Conv2d(cin, hidden, 1)
        self.dw = nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden)
        self.project = nn.Conv2d(hidden, cout, 1)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(F.relu(self.dw(F.relu(self.expand(x)))))
        return x + y if self.residual else y


_BLOCK_TYPES = {"conv": ConvBlock, "ds": DSBlock, "ir": IRBlock}


def _last_conv(module: nn.Module) -> nn.Conv2d:
    return [m for m in module.modules() if isinstance(m, nn.Conv2d)][-1]


class Stage(nn.Module):
    """A stride-``stride`` block (``cin`` -> ``cout``) followed by ``depth`` stride-1 blocks at ``cout``."""

    def __init__(self, block: str, cin: int, cout: int, depth: int, stride: int = 2):
        super().__init__()
        make = _BLOCK_TYPES[block]
        self.blocks = nn.Sequential(make(cin, cout, stride), *[make(cout, cout) for _ in range(depth)])

    @property
    def out_channels(self) -> int:
        """Output width (the last conv's), as a Conv2d reports it."""
        return _last_conv(self).out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


class UpStage(nn.Module):
    """Resize-conv upsampling with an additive skip: ``block(resize2x(lateral(x)) + skip)``.

    ``lateral`` (1x1, ``cin`` -> ``skip_width``, linear) runs before the resize: a 1x1 conv commutes with
    nearest-neighbour resizing, so this equals resize-then-conv at a quarter of the MACs (and stays cheaper than a
    2x2 transposed conv for bilinear too). ``block`` maps ``skip_width`` -> ``cout``.
    """

    def __init__(self, block: str, cin: int, skip_width: int, cout: int, upsample: str | None):
        super().__init__()
        self.lateral = nn.Conv2d(cin, skip_width, 1)
        self.block = _BLOCK_TYPES[block](skip_width, cout)
        self.upsample = upsample            # None: same resolution as the skip (the s2 stem's last stage)

    @property
    def out_channels(self) -> int:
        """Output width (the block's last conv's), as a Conv2d reports it."""
        return _last_conv(self.block).out_channels

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.lateral(x)
        if self.upsample is None:
            pass
        elif self.upsample == "nearest":
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        else:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        return self.block(x + skip)


class MobileUNet(nn.Module):
    """Mobile U-Net: packed raw (N, in_channels, H, W) in [0, 1] -> clean packed raw (``output="raw"``, same size)
    or sRGB (N, 3, scale*H, scale*W).

    Args:
        in_channels: packed raw channels (4 Bayer, 9 X-Trans), plus one for a noise-std map.
        scale: PixelShuffle factor of an sRGB head (1 for raw output).
        channels: width of every layer in :data:`WIDTH_LAYERS`; defaults to ``widths_to_channels(DEFAULT_WIDTHS)``.
        output: ``raw`` (residual: noisy input + head, head initialised to zero) or ``srgb``.
        raw_channels: raw output channels (the CFA's 4 or 9; the noise channel is not returned).
        block: ``ds``, ``ir`` or ``conv`` (see the module docstring).
        upsample: ``nearest`` or ``bilinear`` resize in the decoder.
        stem: ``full``, ``s2`` or ``s4`` (see :data:`STEMS`).
        levels: encoder stages (:data:`LEVELS`); ``channels`` names :func:`width_layers` of it.
        bottleneck: blocks after the stride-2 conv of the deepest stage (the others get one).
        head: raw head after an ``s2``/``s4`` stem, ``tconv`` or ``d2s`` (see :data:`HEADS`).

    H and W must be multiples of ``size_multiple`` (:func:`size_multiple`: 16 by default; checked unless tracing or
    compiling).
    """

    def __init__(self, in_channels: int = 4, scale: int = 2, channels: dict[str, int] | None = None,
                 output: str = "srgb", raw_channels: int | None = None, block: str = "ds",
                 upsample: str = "nearest", stem: str = "full", levels: int = DEFAULT_LEVELS,
                 bottleneck: int = DEFAULT_BOTTLENECK, head: str = "tconv"):
        super().__init__()
        raw_channels = check_output(output, scale, in_channels, raw_channels)
        if block not in BLOCKS:
            raise ValueError(f"block must be one of {BLOCKS}, got {block!r}")
        if upsample not in UPSAMPLES:
            raise ValueError(f"upsample must be one of {UPSAMPLES}, got {upsample!r}")
        if stem not in STEMS:
            raise ValueError(f"stem must be one of {STEMS}, got {stem!r}")
        if levels not in LEVELS:
            raise ValueError(f"levels must be one of {LEVELS}, got {levels!r}")
        if bottleneck not in BOTTLENECKS:
            raise ValueError(f"bottleneck must be one of {BOTTLENECKS}, got {bottleneck!r}")
        if head not in HEADS or (head == "d2s" and (output != "raw" or stem == "full")) or \
                (head == "half" and (output != "raw" or stem != "s4")):
            raise ValueError(f"head must be one of {HEADS} ('d2s' only for raw output after an s2/s4 stem, 'half' "
                             f"after an s4 stem), got {head!r} with output {output!r}, stem {stem!r}")
        channels = dict(channels) if channels is not None else widths_to_channels(DEFAULT_WIDTHS[:levels + 1])
        check_layer_channels(channels, width_layers(levels))
        self.in_channels = in_channels
        self.output = output
        self.raw_channels = raw_channels
        self.scale = scale
        self.block = block
        self.upsample = upsample
        self.stem_kind = stem
        self.levels = levels
        self.bottleneck = bottleneck
        self.head_kind = head
        self.size_multiple = size_multiple(stem, levels)
        packed = stem != "full"             # the stem downsamples; the first stage and the last decoder keep its size
        c = channels
        if stem == "s4":
            # space-to-depth of 2x2 (4 * in_channels outputs: can be lossless), then the s2 stem on it: together one
            # linear 4x4 stride-4 conv, in two because Ethos-U convs take strides <= 3
            self.stem0 = nn.Conv2d(in_channels, 4 * in_channels, 2, 2)
            self.stem = nn.Conv2d(4 * in_channels, c["stem"], 2, 2)
        else:
            self.stem = nn.Conv2d(in_channels, c["stem"], 2, 2) if packed else nn.Conv2d(in_channels, c["stem"], 3, 1, 1)
        prev = c["stem"]
        for k in range(1, levels + 1):
            setattr(self, f"enc{k}", Stage(block, prev, c[f"enc{k}"], bottleneck if k == levels else 1,
                                           stride=1 if packed and k == 1 else 2))
            prev = c[f"enc{k}"]
        for k in range(levels - 1, -1, -1):
            skip = c["stem"] if k == 0 else c[f"enc{k}"]
            setattr(self, f"dec{k}", UpStage(block, prev, skip, c[f"dec{k}"], None if packed and k == 0 else upsample))
            prev = c[f"dec{k}"]
        if output == "raw":
            if head == "half":
                # stem0's width (a lossless 2x2 space-to-depth of the input fits 4 * in_channels)
                self.lateral = nn.Conv2d(prev, 4 * in_channels, 1)
                self.head = nn.Conv2d(4 * in_channels, self.raw_channels * 4, 1)
                self.pixel_shuffle = nn.PixelShuffle(2)
            elif head == "d2s":
                self.head = nn.Conv2d(prev, self.raw_channels * STEM_STRIDE[stem] ** 2, 1)
                self.pixel_shuffle = nn.PixelShuffle(STEM_STRIDE[stem])
            elif stem == "s4":
                # two linear 2x2 stride-2 transposed convs: a 4x4 stride-4 one of rank 4 * raw_channels (full rank)
                self.head_up = nn.ConvTranspose2d(prev, 4 * self.raw_channels, 2, 2)
                self.head = nn.ConvTranspose2d(4 * self.raw_channels, self.raw_channels, 2, 2)
            elif packed:
                self.head = nn.ConvTranspose2d(prev, self.raw_channels, 2, 2)
            else:
                self.head = nn.Conv2d(prev, self.raw_channels, 1)
        else:
            r = STEM_STRIDE[stem] * scale
            self.head = nn.Conv2d(prev, 3 * r * r, 1)
            self.pixel_shuffle = nn.PixelShuffle(r)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He (fan-in, ReLU gain) normal init, zero biases; linear convs (lateral, IR project) and the sRGB head
        get gain 1; a residual raw head starts at zero, so the untrained net returns its noisy input (``half``, not
        residual, starts as a random linear map of its features)."""
        linear = {id(m) for m in self.modules() if isinstance(m, (IRBlock, UpStage))
                  for m in ([m.project] if isinstance(m, IRBlock) else [m.lateral])}
        linear |= {id(getattr(self, n)) for n in ("stem0", "head_up", "lateral") if hasattr(self, n)}
        relu_gain = nn.init.calculate_gain("relu")
        for m in self.modules():
            if not isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                continue
            gain = 1.0 if (id(m) in linear or m is self.head) else relu_gain
            # a stride-2 2x2 transposed conv feeds each output pixel from one input pixel: fan-in = in_channels
            fan_in = m.in_channels if isinstance(m, nn.ConvTranspose2d) else \
                m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
            nn.init.normal_(m.weight, 0.0, gain / math.sqrt(fan_in))
            nn.init.zeros_(m.bias)
        if self.output == "raw" and self.head_kind != "half":
            nn.init.zeros_(self.head.weight)

    @property
    def channels(self) -> dict[str, int]:
        """Current per-layer widths, read from the layers (so they reflect in-place pruning)."""
        return {name: getattr(self, name).out_channels for name in width_layers(self.levels)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (torch.jit.is_tracing() or torch.compiler.is_compiling()):
            if x.dim() != 4 or x.shape[1] != self.in_channels:
                raise ValueError(f"MobileUNet expects packed raw of shape (N, {self.in_channels}, H, W), "
                                 f"got {tuple(x.shape)}")
            if x.shape[2] % self.size_multiple or x.shape[3] % self.size_multiple:
                raise ValueError(f"MobileUNet needs packed H and W to be multiples of {self.size_multiple}, got "
                                 f"{tuple(x.shape)}; pad the input (e.g. reflect) and crop the output")
        inp = x
        if self.stem_kind == "s4":
            x = half = self.stem0(x)
        skips = [F.relu(self.stem(x))]
        for k in range(1, self.levels + 1):
            skips.append(getattr(self, f"enc{k}")(skips[-1]))
        x = skips.pop()
        for k in range(self.levels - 1, -1, -1):
            x = getattr(self, f"dec{k}")(x, skips[k])
        if self.output == "raw":
            if self.head_kind == "half":
                x = F.relu(F.interpolate(self.lateral(x), scale_factor=2, mode="nearest") + half)
                return self.pixel_shuffle(self.head(x))
            if self.head_kind == "d2s":
                return inp[:, : self.raw_channels] + self.pixel_shuffle(self.head(x))
            if self.stem_kind == "s4":
                x = self.head_up(x)
            return inp[:, : self.raw_channels] + self.head(x)
        return self.pixel_shuffle(self.head(x))


# ---------------------------------------------------------------- model.json
def normalize_mobile_spec(spec: dict, where: str) -> dict:
    """Fill and check a ``mobile-unet`` spec's own fields: ``widths`` (``levels + 1`` level widths) or ``channels``
    (per-layer widths, wins when both are given), ``block``, ``upsample``, ``stem``, ``levels`` and ``bottleneck``."""
    from darkc.errors import DarkcError

    for key, allowed, default in (("block", BLOCKS, "ds"), ("upsample", UPSAMPLES, "nearest"),
                                  ("stem", STEMS, "full"), ("levels", LEVELS, DEFAULT_LEVELS),
                                  ("bottleneck", BOTTLENECKS, DEFAULT_BOTTLENECK), ("head", HEADS, "tconv")):
        value = spec.setdefault(key, default)
        if value not in allowed or isinstance(value, bool) or isinstance(value, float):
            raise DarkcError(f"{where}: field {key!r} is {value!r}; use one of {list(allowed)}")
    if spec["head"] == "d2s" and (spec.get("output") != "raw" or spec["stem"] == "full"):
        raise DarkcError(f"{where}: field 'head' is 'd2s', which needs output 'raw' and stem 's2' or 's4' (got "
                         f"{spec.get('output')!r}, {spec['stem']!r}); use head 'tconv'")
    if spec["head"] == "half" and (spec.get("output") != "raw" or spec["stem"] != "s4"):
        raise DarkcError(f"{where}: field 'head' is 'half', which needs output 'raw' and stem 's4' (got "
                         f"{spec.get('output')!r}, {spec['stem']!r}); use head 'd2s' or 'tconv'")
    levels = spec["levels"]
    return normalize_level_widths(spec, where, default_widths=DEFAULT_WIDTHS[:levels + 1],
                                  width_layers=width_layers(levels), to_channels=widths_to_channels,
                                  to_widths=channels_to_widths,
                                  levels=f"the stem's resolution, then each of the {levels} encoder stages'")


def adapter_options(spec: dict) -> dict:
    """The :class:`darkc.models.adapter.Adapter` keywords of a ``mobile-unet`` spec (missing fields: defaults): the
    head convs (never pruned), the decoder stages as feature taps, the size multiple, the width layers and the s4
    stem's space-to-depth conv ``stem0`` (its width is ``4 * in_channels``, not a width layer: never pruned; so are
    the ``half`` head's ``lateral``, tied to it)."""
    stem, levels = spec.get("stem", "full"), spec.get("levels", DEFAULT_LEVELS)
    raw_s4 = stem == "s4" and spec.get("output", "srgb") == "raw" and spec.get("head", "tconv") == "tconv"
    return {"head": ("head_up", "head") if raw_s4 else ("head",),
            "feature_taps": tuple(f"dec{k}" for k in range(levels - 1, -1, -1)),
            "size_multiple": size_multiple(stem, levels), "activations": ("relu",),
            "width_layers": width_layers(levels), "native_widths": True,
            "fixed": (("stem0", "lateral") if spec.get("head") == "half" else ("stem0",)) if stem == "s4" else ()}


def build_mobile_unet(spec: dict) -> MobileUNet:
    """The mobile U-Net a normalised spec describes."""
    return MobileUNet(spec["in_channels"], spec["scale"], spec["channels"], output=spec["output"],
                      raw_channels=spec["out_channels"] if spec["output"] == "raw" else None,
                      block=spec["block"], upsample=spec["upsample"], stem=spec["stem"],
                      levels=spec.get("levels", DEFAULT_LEVELS), bottleneck=spec.get("bottleneck", DEFAULT_BOTTLENECK),
                      head=spec.get("head", "tconv"))

"""Model size and cost: parameter count and conv MACs, analytic (no arithmetic is run)."""
from __future__ import annotations

import math

import torch
from torch import nn


def count_params(model: nn.Module) -> int:
    """Number of parameters (each shared parameter counted once), trainable or not."""
    return sum(p.numel() for p in model.parameters())


def padded_shape(model: nn.Module, input_shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """``(1, C, H, W)`` with H and W rounded up to the model's ``size_multiple`` (1 if it has none)."""
    if len(input_shape) == 4:
        if input_shape[0] != 1:
            raise ValueError(f"count MACs per image: pass (C, H, W) or (1, C, H, W), got {tuple(input_shape)}")
        input_shape = input_shape[1:]
    if len(input_shape) != 3 or not all(isinstance(d, int) and d > 0 for d in input_shape):
        raise ValueError(f"input_shape must be packed (C, H, W) with positive ints, got {tuple(input_shape)}")
    c, h, w = input_shape
    m = getattr(model, "size_multiple", 1)
    return 1, c, math.ceil(h / m) * m, math.ceil(w / m) * m


def count_macs_by_layer(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, int]:
    """Multiply-accumulates per image of each ``Conv2d``/``ConvTranspose2d``, keyed by module name.

    Conv-only: biases, activations, pooling, concatenation and PixelShuffle are not counted. ``input_shape``
    is the packed ``(C, H, W)`` (e.g. ``(4, 540, 960)`` for a 1920x1080 Bayer frame); H and W are first
    padded up to the model's ``size_multiple`` (16 for the SID U-Net), since that is the size it runs at.
    The forward runs on the ``meta`` device, so any size costs no memory or compute.
    """
    shape = padded_shape(model, tuple(input_shape))
    macs: dict[str, int] = {}

    def hook(name):
        def record(module, inputs, output):
            if isinstance(module, nn.ConvTranspose2d):
                # every input pixel scatters a (out/groups) x kh x kw kernel
                per = module.out_channels // module.groups * math.prod(module.kernel_size)
                macs[name] = inputs[0][0].numel() * per
            else:
                per = module.in_channels // module.groups * math.prod(module.kernel_size)
                macs[name] = output[0].numel() * per
        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules()
               if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    try:
        state = {k: torch.empty_like(v, device="meta")
                 for k, v in [*model.named_parameters(), *model.named_buffers()]}
        with torch.no_grad():
            torch.func.functional_call(model, state, (torch.empty(shape, device="meta"),))
    finally:
        for h in handles:
            h.remove()
    return macs


def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Total conv multiply-accumulates per image; see :func:`count_macs_by_layer` for what is counted.

    Args:
        model: any module whose forward takes one NCHW tensor.
        input_shape: packed ``(C, H, W)`` or ``(1, C, H, W)``; H and W are padded up to ``size_multiple``.

    Returns:
        MACs (multiply-accumulates, not FLOPs; FLOPs ~= 2 x MACs) of conv and transposed-conv layers.
    """
    return sum(count_macs_by_layer(model, input_shape).values())

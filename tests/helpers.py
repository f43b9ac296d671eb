"""Helpers shared by the test files (import as ``from helpers import ...``; pytest puts tests/ on sys.path)."""
from __future__ import annotations

from torch import nn


def torch_default_init(model: nn.Module) -> nn.Module:
    """Re-initialise every conv with PyTorch's default (kaiming_uniform, a=sqrt(5)) instead of SIDUNet's He init.

    The export/quantisation tests compare runtimes on small random networks; their agreement floors were set
    on activations of this scale, which are closer to a trained model's than fresh He-initialised ones.
    """
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            m.reset_parameters()
    return model

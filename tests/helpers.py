"""Helpers shared by the test files (import as ``from helpers import ...``; pytest puts tests/ on sys.path)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from torch import nn

from darkc.errors import DarkcError


def raises_naming(*fragments: str):
    """``pytest.raises(DarkcError)`` whose message contains every fragment, in any order."""
    return pytest.raises(DarkcError, match="(?s)" + "".join(f"(?=.*{re.escape(f)})" for f in fragments))


def torch_default_init(model: nn.Module) -> nn.Module:
    """Re-initialise every conv with PyTorch's default (kaiming_uniform, a=sqrt(5)) instead of SIDUNet's He init.

    The export/quantisation tests compare runtimes on small random networks; their agreement floors were set
    on activations of this scale, which are closer to a trained model's than fresh He-initialised ones.
    """
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            m.reset_parameters()
    return model


def tiny_checkpoint(path: Path, spec: dict, seed: int = 0) -> Path:
    """Save a seeded random model of ``spec`` (PyTorch default init scale) as an artifact at ``path``."""
    from darkc.models import build_model, save_checkpoint

    torch.manual_seed(seed)
    save_checkpoint(torch_default_init(build_model(spec)), spec, path)
    return path


def load_benchmark(name: str):
    """``benchmarks/<name>.py`` as a module (registered in ``sys.modules`` while it is loaded: dataclasses look
    their module up while the class is made); the caller removes it with ``sys.modules.pop(module.__name__)``."""
    import importlib.util
    import sys

    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(spec.name, None)
        raise
    return module


def run_benchmark(name: str, argv: list[str]) -> int:
    """``benchmarks/<name>.py`` ``main(argv)`` in this process: no interpreter and torch start-up per run, and the
    session's shared dead-leaves scenes (tests/conftest.py) instead of drawing them again."""
    import sys

    module = load_benchmark(name)
    try:
        return module.main([str(a) for a in argv])
    finally:
        sys.modules.pop(module.__name__, None)


def tiny_recipe(path: Path, teacher, export: bool = False) -> Path:
    """A ``darkc pipeline`` recipe for a tiny teacher: prune 0.5 (round 4), one distillation step with output and
    feature KD, INT8 TFLite at 64x64, optionally an ONNX export, bench on the host, eval of the student on one pair;
    written to ``path``."""
    import textwrap

    text = textwrap.dedent(f'''
        [pipeline]
        teacher = "{teacher}"
        threads = 1
        [prune]
        ratio = 0.5
        round_to = 4
        patch = 64
        [distill]
        kd = "output,features"
        steps = 1
        batch_size = 1
        patch = 64
        val_every = 0
        ckpt_every = 1
        [quantize]
        targets = ["tflite"]
        input_size = "64x64"
        samples = 2
        [bench]
        devices = ["host"]
        size = "64x64"
        runs = 2
        [eval]
        limit = 1
        models = ["student"]
    ''')
    if export:
        text += '[export]\ntargets = ["onnx"]\n'
    path.write_text(text)
    return path

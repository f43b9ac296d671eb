"""Channel pruning on Torch-Pruning's dependency graph: the policy, the fixed output head, rescaling after a step.

The dependency graph (which layers must lose the same channels: a U-Net's concatenated skips, the transposed convs,
the inputs of the next conv) is Torch-Pruning's ``DependencyGraph``, built by its ``BasePruner`` (alias
``MetaPruner``); this module chooses the policy (importance criterion, scope, ratio, floors) and asks the model's
arch adapter (:func:`darkc.models.get_adapter`) which head is never pruned, which widths are free and in which
order the convs run. The stage around it (budgets, fine-tuning, report) is :mod:`darkc.compress.prune`::

    from darkc.compress.pruning import prune_model
    from darkc.models import build_model, normalize_spec

    spec = normalize_spec({"arch": "sid-unet", "widths": [32, 64, 128, 256, 512]})
    model, spec = prune_model(build_model(spec), spec, ratio=0.5)       # in place, L1, uniform, round_to 8
"""
from __future__ import annotations

import copy
import math
from typing import Callable

import torch
import torch_pruning as tp
from torch import nn

from darkc.errors import DarkcError
from darkc.models.adapter import CONVS, Adapter
from darkc.models.registry import get_adapter

IMPORTANCES = ("l1", "l2", "taylor", "random")
SCOPES = ("uniform", "global")
#: No layer loses more than this fraction of its channels (and none drops below ``round_to``).
MAX_LAYER_RATIO = 0.9

_PRUNER = getattr(tp.pruner, "BasePruner", None) or tp.pruner.MetaPruner


def make_importance(name: str) -> tp.importance.Importance:
    """Torch-Pruning's criterion for ``name``: l1 / l2 weight magnitude, first-order Taylor, random."""
    if name == "l1":
        return tp.importance.MagnitudeImportance(p=1)
    if name == "l2":
        return tp.importance.MagnitudeImportance(p=2)
    if name == "taylor":
        return tp.importance.TaylorImportance()
    if name == "random":
        return tp.importance.RandomImportance()
    raise DarkcError(f"--importance {name!r} is unknown; use one of {list(IMPORTANCES)}")


def check_prunable(model: nn.Module, spec: dict, where: str = "model") -> None:
    """Raise :class:`DarkcError` unless ``model`` has layers to prune besides its output head (its arch's adapter
    names the head) and produces the spec's output: ``out_channels`` at ``scale`` times the input size."""
    adapter = get_adapter(spec, where)
    head = adapter.head(model)
    if not adapter.width_layers(model):
        raise DarkcError(f"{where}: arch {spec.get('arch')!r} has no conv besides its output head {head}, so pruning "
                         f"would have to cut the output head; prune a network with layers before its head")
    m = adapter.size_multiple(model)
    x = torch.rand(1, adapter.in_channels, 2 * m, 2 * m, generator=torch.Generator().manual_seed(0))
    x = x.to(next(model.parameters()).device)
    was = model.training
    with torch.no_grad():
        shape = tuple(model.eval()(x).shape)
    model.train(was)
    want = (1, adapter.out_channels, 2 * m * adapter.scale, 2 * m * adapter.scale)
    if shape != want:
        raise DarkcError(f"{where}: the network maps {tuple(x.shape)} to {shape} but its spec ({adapter.output} "
                         f"output) needs {want}; re-save the model from its spec")


def _floor_width(width: int, round_to: int, max_layer_ratio: float) -> int:
    """Fewest channels a layer of ``width`` may keep: a multiple of ``round_to`` and at least
    ``(1 - max_layer_ratio) * width``; layers already at or below that are left alone."""
    floor = max(round_to, math.ceil(width * (1 - max_layer_ratio) / round_to) * round_to)
    return min(width, floor)


def _taylor_gradients(model: nn.Module, x: torch.Tensor) -> None:
    """Gradients for first-order Taylor importance, data-free: of the mean squared output.

    The distillation loss is zero while the model equals its teacher, so it carries no signal;
    the output energy ranks channels by how much they move the output.
    """
    model.zero_grad(set_to_none=True)
    with torch.enable_grad():
        model(x).pow(2).mean().backward()


def _prune_step(pruner, floors: dict[nn.Module, int]) -> None:
    """One ``pruner.step`` in interactive mode, capping every group at its layer's floor width.

    Torch-Pruning rounds the kept channels *down* to ``round_to`` and, in global mode, ranks all layers
    against one threshold; either can ask to remove a whole layer, which its ``check_pruning_group`` then
    skips silently (the layer keeps all its channels). Letting such groups through and trimming them to
    the floor here keeps every layer alive and the cost monotone in the ratio.
    """
    dg = pruner.DG
    check = dg.check_pruning_group
    dg.check_pruning_group = lambda group: True
    try:
        for group in pruner.step(interactive=True):
            dep, idxs = group[0]
            layer = dep.target.module
            width = dg.get_out_channels(layer)
            floor = floors.get(layer, width)
            if width - len(idxs) < floor:
                if width <= floor:
                    continue
                full = dg.get_pruning_group(layer, dep.handler, list(range(width)))
                imp = pruner.estimate_importance(full)
                group = dg.get_pruning_group(layer, dep.handler, torch.argsort(imp)[: width - floor].tolist())
            if check(group):
                group.prune()
    finally:
        dg.check_pruning_group = check


def _layer_outputs(model: nn.Module, x: torch.Tensor, names) -> dict[str, torch.Tensor]:
    outs: dict[str, torch.Tensor] = {}
    hooks = [model.get_submodule(n).register_forward_hook(lambda m, i, o, n=n: outs.__setitem__(n, o)) for n in names]
    try:
        model(x)
    finally:
        for h in hooks:
            h.remove()
    return outs


@torch.no_grad()
def match_activations(model: nn.Module, parent: nn.Module, x: torch.Tensor,
                      adapter: Adapter | None = None) -> dict[str, float]:
    """Rescale a pruned network's layers so their activations have the unpruned parent's scale on ``x``.

    Removing 3/4 of a layer's input channels shrinks its output; over the SID U-Net's 23 layers the pruned
    SID teacher's head output fell to 6 % of its parent's std (0.010 vs 0.160 on synthetic inputs)
    and distillation from it settled on grey output. Layer by layer in forward order (traced with hooks), weights
    and bias are multiplied by parent std / pruned std (ReLU / LeakyReLU / PReLU are positively homogeneous, so each
    layer's shape is kept); the head (never pruned) then gets each output channel's mean and std. A raw-output
    model's head is its residual (added to the noisy input), matched the same way; a fresh one's is zero and stays
    zero. ``adapter``: the arch's (default: the generic one, traced). Returns the factors.
    """
    if adapter is None:
        adapter = Adapter({"in_channels": x.shape[1]})
    was = model.training, parent.training
    model.eval()
    parent.eval()
    heads = adapter.head(model)
    order = adapter.conv_order(model)
    ref = _layer_outputs(parent, x, order)
    factors = {}
    for name in order:
        if name in heads:
            continue
        cur = _layer_outputs(model, x, [name])[name]
        r = float(ref[name].std() / cur.std().clamp_min(1e-12))
        layer = model.get_submodule(name)
        layer.weight.mul_(r)
        if layer.bias is not None:
            layer.bias.mul_(r)
        factors[name] = r
    for name in heads:
        layer = model.get_submodule(name)
        got = _layer_outputs(model, x, [name])[name]
        want = ref[name]
        a = want.std((0, 2, 3)) / got.std((0, 2, 3)).clamp_min(1e-12)
        shift = want.mean((0, 2, 3)) - a * got.mean((0, 2, 3))
        if layer.bias is not None:
            layer.bias.copy_(a * layer.bias + shift)
        per_out = a[None, :, None, None] if isinstance(layer, nn.ConvTranspose2d) else a[:, None, None, None]
        layer.weight.mul_(per_out)
        factors[name] = float(a.mean())
    model.train(was[0])
    parent.train(was[1])
    return factors


def prune_model(model: nn.Module, spec: dict, ratio: float, importance: str = "l1", scope: str = "uniform",
                round_to: int = 8, example_input: torch.Tensor | None = None, *, steps: int = 1,
                after_step: Callable[[int, nn.Module, dict], None] | None = None,
                max_layer_ratio: float = MAX_LAYER_RATIO, seed: int = 0, rescale: bool = True,
                allow_unchanged: bool = False) -> tuple[nn.Module, dict]:
    """Prune ``model`` **in place** to ``ratio`` with Torch-Pruning, keeping the output head and the output shape.

    Args:
        model: a network its arch's adapter describes (``get_adapter(spec)``): the head it names is never pruned;
            pass a copy to keep the original.
        spec: its normalised spec; the returned spec carries the new ``channels``.
        ratio: fraction of channels removed, in (0, 1): per layer (``uniform``) or of all prunable
            channels ranked together (``global``); reached over ``steps`` equal increments.
        importance: ``l1`` | ``l2`` | ``taylor`` | ``random`` (see :func:`make_importance`).
        scope: ``uniform`` (``global_pruning=False``) or ``global`` (``global_pruning=True``).
        round_to: every pruned layer keeps a multiple of this many channels (at least ``round_to``).
        example_input: packed raw (N, C, h, w), h and w multiples of 16, in [0, 1]; traces the graph and
            (``taylor``) gives the gradients. Default: uniform noise (1, C, 32, 32).
        steps: iterative pruning steps (Torch-Pruning's ``iterative_steps``).
        after_step: called as ``after_step(k, model, spec)`` after step ``k`` (1-based), e.g. to fine-tune.
        max_layer_ratio: no layer loses more than this fraction of its channels.
        seed: seeds the random criterion and the default example input.
        allow_unchanged: a ratio too small to remove any channel returns the model as it was (budget searches try
            such ratios); otherwise that is an error (a silent no-op prune).
        rescale: after each step, :func:`match_activations` to the unpruned model on ``example_input``
            (pass real packed raw there for this to mean something); refused for networks whose activations
            or normalisation layers a rescale would change.

    Returns:
        ``(model, spec)``: the same module, pruned, and its updated spec.
    """
    from darkc.models import normalize_spec

    check_prunable(model, spec)
    adapter = get_adapter(spec)
    if rescale and adapter.rescalable(model):
        raise DarkcError(f"arch {spec.get('arch')!r}: cannot rescale the pruned layers: {adapter.rescalable(model)}; "
                         f"pass --no-rescale (rescale=False)")
    if not 0 < ratio < 1 or scope not in SCOPES or round_to < 1 or steps < 1:
        raise DarkcError(f"prune_model: need 0 < ratio < 1, scope in {list(SCOPES)}, round_to >= 1, steps >= 1; "
                         f"got ratio {ratio}, scope {scope!r}, round_to {round_to}, steps {steps}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if example_input is None:
            side = 2 * adapter.size_multiple(model)
            example_input = torch.rand(1, adapter.in_channels, side, side)
        example_input = example_input.to(next(model.parameters()).device)
        was_training = model.training
        model.eval()
        with torch.no_grad():
            out_shape = tuple(model(example_input).shape)
        before = adapter.widths(model)
        heads = adapter.head_modules(model)
        head = [h.out_channels for h in heads]
        keep = heads + adapter.fixed_modules(model)        # never pruned
        parent = copy.deepcopy(model).requires_grad_(False) if rescale else None
        pruner = _PRUNER(model, example_input, importance=make_importance(importance),
                         global_pruning=scope == "global", pruning_ratio=ratio, max_pruning_ratio=max_layer_ratio,
                         iterative_steps=steps, ignored_layers=keep, round_to=round_to)
        # every prunable conv has a floor, not only the width layers: a width layer may be a block (the mobile
        # U-Net's stages) whose convs are what Torch-Pruning's groups name
        floors = {m: _floor_width(m.out_channels, round_to, max_layer_ratio) for m in model.modules()
                  if isinstance(m, CONVS) and m not in keep}
        for k in range(1, steps + 1):
            if importance == "taylor":
                _taylor_gradients(model, example_input)
            _prune_step(pruner, floors)
            model.zero_grad(set_to_none=True)
            if parent is not None:
                match_activations(model, parent, example_input, adapter)
            spec = normalize_spec({**spec, "channels": adapter.widths(model)})
            if after_step is not None:
                after_step(k, model, spec)
                model.eval()
        with torch.no_grad():
            shape = tuple(model(example_input).shape)
    model.train(was_training)
    after = adapter.widths(model)
    odd = {n: c for n, c in after.items() if c != before[n] and c % round_to}
    now = [h.out_channels for h in heads]
    if after == before and not allow_unchanged:
        raise DarkcError(f"arch {spec.get('arch')!r}: pruning to ratio {ratio} removed no channel (every layer is at "
                         f"its floor: round_to {round_to}, at most {max_layer_ratio:.0%} per layer); prune a wider "
                         f"model or lower --round-to")
    if shape != out_shape or now != head or odd:
        raise RuntimeError(f"torch-pruning left an inconsistent model: output {shape} (was {out_shape}), "
                           f"head {adapter.head(model)} {now} (was {head}), not multiples of {round_to}: {odd}")
    from darkc.models import count_params
    spec["params"] = count_params(model)
    return model, spec


def pruner_name() -> str:
    """The pruning library and class, e.g. ``torch-pruning 1.6.1 BasePruner`` (for provenance)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        v = version("torch-pruning")     # tp.__version__ of 1.6.1 still says 1.6.0
    except PackageNotFoundError:
        v = tp.__version__
    return f"torch-pruning {v} {_PRUNER.__name__}"



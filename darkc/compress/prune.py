"""``darkc prune``: structured channel pruning of the SID U-Net with Torch-Pruning's dependency graph.

The dependency graph (which layers must lose the same channels: the U-Net's concatenated skips, the
transposed convs, the inputs of the next conv) is Torch-Pruning's ``DependencyGraph``, built by its
``BasePruner`` (alias ``MetaPruner``); this module only chooses the policy: importance criterion, scope,
ratio or budget, and fine-tuning between iterative steps. The head ``conv10`` (``3 * scale**2`` channels
before the PixelShuffle of sRGB models, the CFA's 4 / 9 raw channels of raw-output models) is never pruned; nor
is the input (packed raw, plus the noise-std channel of noise-conditioned models). Ten lines of use::

    from darkc.compress.prune import prune, prune_model
    from darkc.models import build_model, normalize_spec

    report = prune("runs/teacher", "runs/pruned", target_macs="5G@1920x1080", steps=3, finetune_iters=500)
    print(report["after"]["macs"], report["after"]["psnr"])

    spec = normalize_spec({"arch": "sid-unet", "widths": [32, 64, 128, 256, 512]})
    model, spec = prune_model(build_model(spec), spec, ratio=0.5)       # in place, L1, uniform, round_to 8
"""
from __future__ import annotations

import copy
import json
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
import torch_pruning as tp
from torch import nn
from torch.utils.data import Dataset

from darkc.data.files import example_exts, find_raw_files
from darkc.errors import DarkcError, atomic_dir
from darkc.fmt import si
from darkc.provenance import command_line, portable
from darkc.sizes import packed_shape, parse_budget, parse_resolution
from darkc.timing import measure

IMPORTANCES = ("l1", "l2", "taylor", "random")
SCOPES = ("uniform", "global")
#: No layer loses more than this fraction of its channels (and none drops below ``round_to``).
MAX_LAYER_RATIO = 0.9
#: A budget is met when the achieved cost lies within this fraction of the requested value.
BUDGET_TOLERANCE = 0.05
REPORT_JSON = "prune_report.json"
REPORT_MD = "prune_report.md"

_PRUNER = getattr(tp.pruner, "BasePruner", None) or tp.pruner.MetaPruner


# ---------------------------------------------------------------- budgets
@dataclass(frozen=True)
class Budget:
    """A cost ceiling for the ratio search: ``cost_fn(model) -> float`` must come out near ``value``.

    MACs today (:func:`macs_budget`); a latency predictor can be dropped in as another ``cost_fn``.
    ``label`` names the cost in reports (e.g. ``"MACs@1920x1080"``); ``tolerance`` is the accepted
    relative deviation (see :func:`search_ratio` for the rule).
    """

    value: float
    cost_fn: Callable[[nn.Module], float]
    label: str = "cost"
    tolerance: float = BUDGET_TOLERANCE


def macs_budget(macs: float, resolution: tuple[int, int], cfa: str, channels: int | None = None) -> Budget:
    """A budget in conv MACs per raw frame of ``resolution`` (packed as ``cfa``, ``channels`` input channels,
    padded to 16)."""
    from darkc.models import count_macs

    shape = packed_shape(cfa, resolution, channels)
    return Budget(float(macs), lambda m: float(count_macs(m, shape)), f"MACs@{resolution[0]}x{resolution[1]}")


# ---------------------------------------------------------------- the pruning policy on torch-pruning
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
    """Raise :class:`DarkcError` unless ``model`` is a U-Net with per-layer widths and a fixed ``conv10`` head
    (``3 * scale**2`` channels before the PixelShuffle of sRGB models, ``out_channels`` raw channels of raw ones)."""
    from darkc.models.builder import io_kind

    head = getattr(model, "conv10", None)
    scale = spec.get("scale")
    if not isinstance(head, nn.Conv2d) or "channels" not in spec or not hasattr(model, "channels"):
        raise DarkcError(f"{where}: arch {spec.get('arch')!r} has no fixed head 'conv10' and per-layer "
                         f"'channels', so pruning would have to cut its output head; darkc prune handles "
                         f"'sid-unet' models")
    if io_kind(spec)[0] == "raw":
        if head.out_channels != spec.get("out_channels"):
            raise DarkcError(f"{where}: head conv10 has {head.out_channels} output channels but the raw output has "
                             f"{spec.get('out_channels')}; re-save the model from its spec")
    elif not isinstance(scale, int) or head.out_channels != 3 * scale * scale:
        raise DarkcError(f"{where}: head conv10 has {head.out_channels} output channels but the PixelShuffle "
                         f"needs 3 * {scale}**2; re-save the model from its spec")


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
    hooks = [getattr(model, n).register_forward_hook(lambda m, i, o, n=n: outs.__setitem__(n, o)) for n in names]
    try:
        model(x)
    finally:
        for h in hooks:
            h.remove()
    return outs


@torch.no_grad()
def match_activations(model: nn.Module, parent: nn.Module, x: torch.Tensor) -> dict[str, float]:
    """Rescale a pruned U-Net's layers so their activations have the unpruned parent's scale on ``x``.

    Removing 3/4 of a layer's input channels shrinks its output; over the U-Net's 23 layers the pruned
    SID teacher's head output fell to 6 % of its parent's std (conv10: 0.010 vs 0.160 on synthetic inputs)
    and distillation from it settled on grey output. Layer by layer in forward order, weights and bias are
    multiplied by parent std / pruned std (LeakyReLU is positively homogeneous, so each layer's shape is
    kept); the head (never pruned) then gets each output channel's mean and std. A raw-output model's head is
    its residual (added to the noisy input), matched the same way; a fresh one's is zero and stays zero.
    Returns the factors.
    """
    from darkc.models.sid_unet import LAYERS

    was = model.training, parent.training
    model.eval()
    parent.eval()
    ref = _layer_outputs(parent, x, LAYERS)
    factors = {}
    for name in LAYERS[:-1]:
        cur = _layer_outputs(model, x, [name])[name]
        r = float(ref[name].std() / cur.std().clamp_min(1e-12))
        layer = getattr(model, name)
        layer.weight.mul_(r)
        layer.bias.mul_(r)
        factors[name] = r
    head = _layer_outputs(model, x, ["conv10"])["conv10"]
    want = ref["conv10"]
    a = want.std((0, 2, 3)) / head.std((0, 2, 3)).clamp_min(1e-12)
    model.conv10.bias.copy_(a * model.conv10.bias + want.mean((0, 2, 3)) - a * head.mean((0, 2, 3)))
    model.conv10.weight.mul_(a[:, None, None, None])
    factors["conv10"] = float(a.mean())
    model.train(was[0])
    parent.train(was[1])
    return factors


def prune_model(model: nn.Module, spec: dict, ratio: float, importance: str = "l1", scope: str = "uniform",
                round_to: int = 8, example_input: torch.Tensor | None = None, *, steps: int = 1,
                after_step: Callable[[int, nn.Module, dict], None] | None = None,
                max_layer_ratio: float = MAX_LAYER_RATIO, seed: int = 0, rescale: bool = True) -> tuple[nn.Module, dict]:
    """Prune ``model`` **in place** to ``ratio`` with Torch-Pruning, keeping ``conv10`` and the output shape.

    Args:
        model: a U-Net with per-layer widths (``SIDUNet``); pass a copy to keep the original.
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
        rescale: after each step, :func:`match_activations` to the unpruned model on ``example_input``
            (pass real packed raw there for this to mean something).

    Returns:
        ``(model, spec)``: the same module, pruned, and its updated spec.
    """
    from darkc.models import normalize_spec

    check_prunable(model, spec)
    if not 0 < ratio < 1 or scope not in SCOPES or round_to < 1 or steps < 1:
        raise DarkcError(f"prune_model: need 0 < ratio < 1, scope in {list(SCOPES)}, round_to >= 1, steps >= 1; "
                         f"got ratio {ratio}, scope {scope!r}, round_to {round_to}, steps {steps}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if example_input is None:
            example_input = torch.rand(1, model.conv1_1.in_channels, 32, 32)
        example_input = example_input.to(next(model.parameters()).device)
        was_training = model.training
        model.eval()
        with torch.no_grad():
            out_shape = tuple(model(example_input).shape)
        before = dict(model.channels)
        head = model.conv10.out_channels
        parent = copy.deepcopy(model).requires_grad_(False) if rescale else None
        pruner = _PRUNER(model, example_input, importance=make_importance(importance),
                         global_pruning=scope == "global", pruning_ratio=ratio, max_pruning_ratio=max_layer_ratio,
                         iterative_steps=steps, ignored_layers=[model.conv10], round_to=round_to)
        floors = {getattr(model, n): _floor_width(w, round_to, max_layer_ratio) for n, w in before.items()}
        for k in range(1, steps + 1):
            if importance == "taylor":
                _taylor_gradients(model, example_input)
            _prune_step(pruner, floors)
            model.zero_grad(set_to_none=True)
            if parent is not None:
                match_activations(model, parent, example_input)
            spec = normalize_spec({**spec, "channels": dict(model.channels)})
            if after_step is not None:
                after_step(k, model, spec)
                model.eval()
        with torch.no_grad():
            shape = tuple(model(example_input).shape)
    model.train(was_training)
    odd = {n: c for n, c in model.channels.items() if c != before[n] and c % round_to}
    if shape != out_shape or model.conv10.out_channels != head or odd:
        raise RuntimeError(f"torch-pruning left an inconsistent model: output {shape} (was {out_shape}), "
                           f"conv10 {model.conv10.out_channels} (was {head}), not multiples of {round_to}: {odd}")
    from darkc.models import count_params
    spec["params"] = count_params(model)
    return model, spec


def search_ratio(model: nn.Module, spec: dict, budget: Budget, *, importance: str = "l1", scope: str = "uniform",
                 round_to: int = 8, example_input: torch.Tensor | None = None, steps: int = 1,
                 max_layer_ratio: float = MAX_LAYER_RATIO, seed: int = 0) -> tuple[float, float, list[dict]]:
    """Bisect the pruning ratio (the global ratio in global scope) on deep copies until the cost meets ``budget``.

    Each trial prunes a copy in ``steps`` steps without fine-tuning. Uniform widths depend on the ratio
    alone, so the real run lands on the trial's cost; in global scope fine-tuning between steps changes
    the ranking and so, slightly, the widths (:func:`prune` reports the achieved cost either way).

    Rule: of all ratios tried, the one with the highest cost at or below ``budget.value`` wins if it lies
    within ``budget.tolerance`` below it; otherwise the lowest cost above the budget, if within the
    tolerance above it. Costs are step functions of the ratio (``round_to``), so neither may exist.

    Returns:
        ``(ratio, achieved cost, trials)``, trials a list of ``{"ratio", "cost"}`` in the order tried.

    Raises:
        DarkcError: the budget is at or above the model's own cost, below the cost with every layer at
            its floor width, or no ratio lands within the tolerance (the message names the nearest costs).
    """
    value, tol = float(budget.value), budget.tolerance
    full = float(budget.cost_fn(model))
    if value >= full:
        raise DarkcError(f"budget {si(value)} {budget.label} is at or above the model's own "
                         f"{si(full)}; nothing to prune - ask for less than {si(full)}")
    trials: list[dict] = []

    def cost(ratio: float) -> float:
        m, _ = prune_model(copy.deepcopy(model), spec, ratio, importance, scope, round_to, example_input,
                           steps=steps, max_layer_ratio=max_layer_ratio, seed=seed, rescale=False)
        trials.append({"ratio": ratio, "cost": float(budget.cost_fn(m))})
        return trials[-1]["cost"]

    lo, hi = 0.0, max_layer_ratio
    floor_cost = cost(hi)
    if floor_cost > value * (1 + tol):
        raise DarkcError(f"budget {si(value)} {budget.label} is below what the minimum widths allow: with every "
                         f"layer at max({round_to}, {1 - max_layer_ratio:.0%} of its width) channels the model "
                         f"costs {si(floor_cost)}; ask for at least {si(floor_cost)} or lower --round-to")
    while floor_cost <= value and hi - lo > 1e-3:
        mid = (lo + hi) / 2
        c = cost(mid)
        if c <= value:
            hi = mid
            if c >= value * (1 - tol / 10):
                break
        else:
            lo = mid
    below = [t for t in trials if t["cost"] <= value]
    above = [t for t in trials if t["cost"] > value]
    best_below = max(below, key=lambda t: (t["cost"], -t["ratio"]), default=None)
    best_above = min(above, key=lambda t: (t["cost"], t["ratio"]), default=None)
    if best_below and best_below["cost"] >= value * (1 - tol):
        return best_below["ratio"], best_below["cost"], trials
    if best_above and best_above["cost"] <= value * (1 + tol):
        return best_above["ratio"], best_above["cost"], trials
    near = [f"{si(t['cost'])} (ratio {t['ratio']:.4f})" for t in (best_below, best_above) if t]
    if best_above is None:
        near.append(f"{si(full)} (unpruned)")
    hint = "--scope global (finer steps) or " if scope == "uniform" else ""
    raise DarkcError(f"no {scope} pruning ratio lands within {tol:.0%} of {si(value)} {budget.label} with round_to "
                     f"{round_to}; nearest: {', '.join(near)}; ask for one of those, or use {hint}a lower --round-to")


# ---------------------------------------------------------------- fine-tuning data (inputs only)
class _Inputs(Dataset):
    """The packed inputs of another index-deterministic dataset, shifted by ``offset`` items."""

    def __init__(self, dataset, offset: int = 0):
        self.dataset, self.offset = dataset, offset

    def __len__(self) -> int:
        return 10**9

    def __getitem__(self, i: int) -> dict:
        return {"input": self.dataset[self.offset + i]["input"]}


class RawFolderInputs(Dataset):
    """Random packed crops of the raw files under a folder, amplified by a random SID ratio.

    Item ``i`` (a pure function of seed and ``i``): dict(input=(C, patch/s, patch/s) float32 in [0, 1]), followed
    with ``noise_input="std-map"`` by the noise-std channel from each file's level
    (:func:`darkc.data.noise_level.level_of_file`: its DNG NoiseProfile, a known profile, else estimated).
    """

    def __init__(self, folder: str | Path, cfa: str, patch: int = 256, ratios=(100, 250, 300), seed: int = 0,
                 cache: int = 4, noise_input: str = "none"):
        from darkc.data.datasets import check_patch
        from darkc.data.raw import read_raw

        folder = Path(folder)
        if not folder.is_dir():
            raise DarkcError(f"--data {folder} is neither 'synthetic' nor a folder of raw files")
        self.files = find_raw_files(folder)
        if not self.files:
            raise DarkcError(f"--data {folder} holds no raw files ({example_exts()}); "
                             f"pass a folder of camera raws or use 'synthetic'")
        first = read_raw(self.files[0])
        if first.cfa != cfa:
            raise DarkcError(f"--data {self.files[0]} is a {first.cfa} raw but the model takes {cfa}; "
                             f"pass raws of the model's sensor type")
        self.cfa, self.patch = cfa, check_patch(patch, cfa)
        self.ratios, self.seed, self.noise_input = tuple(ratios), seed, noise_input
        self._cache: dict[int, np.ndarray] = {0: first.packed()}
        self._cache_size = cache
        self._levels: dict[int, object] = {}

    def __len__(self) -> int:
        return 10**9

    def _packed(self, k: int) -> np.ndarray:
        from darkc.data.raw import read_raw

        if k not in self._cache:
            frame = read_raw(self.files[k])
            if frame.cfa != self.cfa:
                raise DarkcError(f"--data {self.files[k]} is a {frame.cfa} raw but the model takes {self.cfa}")
            if len(self._cache) >= self._cache_size:
                self._cache.pop(next(iter(self._cache)))
            self._cache[k] = frame.packed()
        return self._cache[k]

    def __getitem__(self, i: int) -> dict:
        from darkc.data import cfa as cfa_mod
        from darkc.data.raw import amplify

        rng = np.random.default_rng([self.seed, i, 17])
        k = int(rng.integers(len(self.files)))
        packed = self._packed(k)
        p = self.patch // cfa_mod.scale(self.cfa)
        h, w = packed.shape[1:]
        if h < p or w < p:
            raise DarkcError(f"--data {self.files[k]} is smaller than the fine-tuning patch ({self.patch} px); "
                             f"lower --patch")
        y, x = int(rng.integers(h - p + 1)), int(rng.integers(w - p + 1))
        ratio = float(self.ratios[int(rng.integers(len(self.ratios)))])
        inp = amplify(np.ascontiguousarray(packed[:, y:y + p, x:x + p]), ratio)
        if self.noise_input != "none":
            from darkc.data.noise_level import condition, level_of_file

            if k not in self._levels:
                self._levels[k] = level_of_file(self.files[k])
            inp = condition(inp, ratio, self._levels[k], self.noise_input)
        return {"input": torch.from_numpy(np.ascontiguousarray(inp, np.float32))}


def _finetune_data(data, spec: dict, patch: int, seed: int):
    """Inputs of the model of ``spec``: 'synthetic' -> :func:`darkc.data.datasets.model_pairs` (the sensors, noise
    input and inputs it trains on); a folder -> its raws (with the noise channel it takes); a Dataset as is."""
    from darkc.models.builder import io_kind

    if isinstance(data, Dataset):
        return data
    if str(data) == "synthetic":
        from darkc.data.datasets import model_pairs
        from darkc.data.sources import training_images

        return model_pairs(spec, training_images(), patch=patch, seed=seed, targets=False)
    return RawFolderInputs(data, spec["cfa"], patch=patch, seed=seed, noise_input=io_kind(spec)[1])


def output_distance(output: str = "srgb") -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """How a student's output is compared with its teacher's: L1 for sRGB outputs; for raw outputs the
    ``l1-gamma`` loss (:class:`darkc.losses.GammaL1Loss`), which weights shadow errors as the sRGB render does
    (a plain L1 on linear raw counts an error in the dark regions, what these models exist for, least)."""
    if output == "raw":
        from darkc.losses import get_loss

        return get_loss("l1-gamma")
    return F.l1_loss


def distill_objective(teacher: nn.Module, output: str = "srgb"):
    """``fit`` objective: :func:`output_distance` between the model's output and the (frozen) teacher's on the same
    inputs."""
    distance = output_distance(output)

    def objective(model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict]:
        x = batch["input"]
        with torch.no_grad():
            target = teacher.to(x.device)(x)
        return distance(model(x), target), {}

    return objective


# ---------------------------------------------------------------- measuring
# ---------------------------------------------------------------- the stage
def _check_options(ratio, target_macs, budget, importance, scope, round_to, steps, finetune_iters,
                   max_layer_ratio) -> None:
    given = [n for n, v in (("--ratio", ratio), ("--target-macs", target_macs), ("budget", budget)) if v is not None]
    if len(given) != 1:
        raise DarkcError(f"pass exactly one of --ratio or --target-macs (got {', '.join(given) or 'neither'})")
    if ratio is not None and not (isinstance(ratio, (int, float, np.floating)) and 0 < ratio < 1):
        raise DarkcError(f"--ratio {ratio} must lie strictly between 0 and 1 (the fraction of channels removed)")
    if importance not in IMPORTANCES:
        raise DarkcError(f"--importance {importance!r} is unknown; use one of {list(IMPORTANCES)}")
    if scope not in SCOPES:
        raise DarkcError(f"--scope {scope!r} is unknown; use one of {list(SCOPES)}")
    for name, v, least in (("--round-to", round_to, 1), ("--steps", steps, 1), ("--finetune-iters", finetune_iters, 0)):
        if isinstance(v, bool) or not isinstance(v, int) or v < least:
            raise DarkcError(f"{name} {v!r} must be an integer >= {least}")
    if not 0 < max_layer_ratio < 1:
        raise DarkcError(f"max_layer_ratio {max_layer_ratio} must lie strictly between 0 and 1")


def _load(model_ref) -> tuple[nn.Module, dict, Path]:
    from darkc.models import load_checkpoint, resolve_model_ref

    kind, path = resolve_model_ref(model_ref)
    if kind not in ("pretrained", "checkpoint"):
        raise DarkcError(f"--model {model_ref} is a {kind} file; darkc prune needs a torch checkpoint directory "
                         f"(model.json + model.safetensors) or a shipped name")
    model, spec = load_checkpoint(path)
    check_prunable(model, spec, str(model_ref))
    return model, spec, path


def prune(model_ref, out_dir, *, ratio: float | None = None, target_macs=None,
          budget: Budget | None = None, importance: str = "l1", scope: str = "uniform", round_to: int = 8,
          steps: int = 1, finetune_iters: int = 0, data="synthetic", batch_size: int = 4, patch: int = 256,
          lr: float = 1e-4, seed: int = 0, max_layer_ratio: float = MAX_LAYER_RATIO, evaluate: bool = True,
          eval_data: str = "synthetic", eval_limit: int | None = None, latency_size="1920x1080",
          latency_runs: int = 3, rescale: bool = True, progress: bool = True) -> dict:
    """``darkc prune``: prune a checkpoint, optionally fine-tune against itself, write an artifact and a report.

    Args:
        model_ref: shipped name (the CLI's default is ``teacher``) or checkpoint directory of a SID U-Net.
        out_dir: artifact directory to write (model.safetensors, model.json, prune_report.md/.json).
        ratio: fraction of channels removed (see :func:`prune_model`); or instead
        target_macs: a MAC budget, ``'5G@1920x1080'`` or ``(macs, (W, H))`` (raw frame size; conv MACs at
            the packed, 16-padded size); or instead
        budget: any :class:`Budget` (e.g. a latency predictor's ``cost_fn``).
        importance, scope, round_to, max_layer_ratio: the policy (see :func:`prune_model`).
        steps: iterative pruning steps, each followed by ``finetune_iters`` iterations of ``darkc.train.fit``
            on the L1 distance to the unpruned model's output (data-free: no targets needed).
        data: fine-tuning inputs: ``'synthetic'`` (SyntheticPairs' packed inputs), a folder of raw files
            (random crops amplified by a random SID ratio) or a Dataset of dicts with ``'input'``.
        batch_size, patch, lr, seed: fine-tuning batch, patch side in raw px, Adam learning rate, seed.
        evaluate, eval_data, eval_limit: PSNR/SSIM of parent and result with ``darkc.evaluate.evaluate``.
        latency_size: raw ``'WxH'`` (or ``(W, H)``) for host latency (torch, 1 thread); None skips it.
        rescale: match each pruned layer's activation scale to the unpruned model's on 4 inputs from
            ``data`` (:func:`match_activations`); without it the pruned SID U-Net's output collapses.

    Returns:
        The report (also written as ``prune_report.json``): options, budget search, before/after params,
        MACs at :data:`darkc.timing.REPORT_RESOLUTIONS`, latency, PSNR/SSIM, per-layer channels.

    Raises:
        DarkcError: bad options, missing or unprunable model, unreachable budget. Nothing is written then.
    """
    t0 = time.time()
    _check_options(ratio, target_macs, budget, importance, scope, round_to, steps, finetune_iters, max_layer_ratio)
    ratio = None if ratio is None else float(ratio)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise DarkcError(f"-o {out} exists and is not a directory; pick a directory for the pruned artifact")
    if isinstance(latency_size, str):
        latency_size = None if latency_size.lower() in ("", "none", "0") else parse_resolution(latency_size,
                                                                                                "--latency-size")
    model, spec, src = _load(model_ref)
    if out.resolve() == src.resolve():
        raise DarkcError(f"-o {out} is the input model's directory; write the pruned model elsewhere")
    cfa = spec["cfa"]
    budget_request = None
    if target_macs is not None:
        macs, res = parse_budget(target_macs) if isinstance(target_macs, str) else (float(target_macs[0]),
                                                                                      tuple(target_macs[1]))
        budget = macs_budget(macs, res, cfa, spec["in_channels"])
        budget_request = str(target_macs) if isinstance(target_macs, str) else f"{si(macs)}@{res[0]}x{res[1]}"
    latency_shape = packed_shape(cfa, latency_size, spec["in_channels"]) if latency_size else None

    dataset = None
    if finetune_iters > 0 or importance == "taylor" or rescale:
        dataset = _finetune_data(data, spec, patch, seed)
        example = torch.stack([dataset[i]["input"] for i in range(4 if rescale else 2)])
    else:
        example = torch.rand(1, spec["in_channels"], 32, 32, generator=torch.Generator().manual_seed(seed))

    model.eval()
    before = measure(model, cfa, latency_shape, latency_runs)
    channels_before = dict(model.channels)
    search = None
    policy = dict(importance=importance, scope=scope, round_to=round_to, max_layer_ratio=max_layer_ratio, seed=seed)
    if budget is not None:
        ratio, found, trials = search_ratio(model, spec, budget, example_input=example, steps=steps, **policy)
        search = {"label": budget.label, "requested": budget.value, "found": found, "tolerance": budget.tolerance,
                  "trials": trials}

    teacher = copy.deepcopy(model).eval().requires_grad_(False)
    finetune_log: list[dict] = []

    def finetune(k: int, m: nn.Module, s: dict) -> None:
        from darkc.train import TrainConfig, fit

        cfg = TrainConfig(steps=finetune_iters, batch_size=batch_size, lr=lr, min_lr=lr * 0.1, val_every=10**9,
                          ckpt_every=finetune_iters, seed=seed + k, log_every=max(1, finetune_iters // 20))
        with tempfile.TemporaryDirectory(prefix="darkc-prune-finetune-") as tmp:
            summary = fit(m, s, _Inputs(dataset, (k - 1) * finetune_iters * batch_size), tmp, cfg,
                          objective=distill_objective(teacher, spec["output"]), progress=progress,
                          provenance={"stage": "prune-finetune", "step": k})
        finetune_log.append({"step": k, "iters": finetune_iters, "wall_s": summary["wall_s"],
                             "loss": summary["history"][-1]["loss"] if summary["history"] else None})

    model, spec = prune_model(model, spec, ratio, example_input=example, steps=steps, rescale=rescale,
                              after_step=finetune if finetune_iters > 0 else None, **policy)
    model.eval()
    after = measure(model, cfa, latency_shape, latency_runs)
    if search is not None:
        search["achieved"] = float(budget.cost_fn(model))
        search["deviation"] = search["achieved"] / budget.value - 1
        search["within_tolerance"] = abs(search["deviation"]) <= budget.tolerance

    options = {"ratio": round(ratio, 6), "target_macs": budget_request, "importance": importance, "scope": scope,
               "round_to": round_to, "steps": steps, "finetune_iters": finetune_iters,
               "data": data if isinstance(data, str) else type(data).__name__, "batch_size": batch_size,
               "patch": patch, "lr": lr, "seed": seed, "rescale": rescale}
    command = command_line("prune", model_ref, {**options, "ratio": None if budget_request else options["ratio"],
                                          "rescale": None, "no_rescale": not rescale,
                                          "data": options["data"] if dataset is not None else None}, out)
    macs_key = "1920x1080"
    provenance = {"stage": "prune", "parent": str(model_ref), "command": command, **options,
                  "max_layer_ratio": max_layer_ratio, "pruner": _pruner_name(),
                  "params_before": before["params"], "params_after": after["params"],
                  f"macs_{macs_key}_before": before["macs"][macs_key],
                  f"macs_{macs_key}_after": after["macs"][macs_key],
                  "budget": None if search is None else {k: v for k, v in search.items() if k != "trials"},
                  "finetune": finetune_log, "parent_provenance": spec.get("provenance") or {}}
    spec = {**spec, "provenance": provenance}
    report = {"parent": str(model_ref), "output": str(out), "command": command, "options": options,
              "max_layer_ratio": max_layer_ratio, "budget": search, "before": before, "after": after,
              "latency": None if latency_shape is None else {
                  "raw": f"{latency_size[0]}x{latency_size[1]}", "packed_padded": list(_padded(model, latency_shape)),
                  "threads": 1, "runs": latency_runs, "runtime": f"torch {torch.__version__} CPU"},
              "channels": {"before": channels_before, "after": dict(model.channels)}, "finetune": finetune_log}

    from darkc.models import save_checkpoint
    with atomic_dir(out) as tmp:
        save_checkpoint(model, spec, tmp)
        if evaluate:
            from darkc.evaluate import evaluate as evaluate_model

            for key, ref in (("before", model_ref), ("after", tmp)):
                res = evaluate_model(str(ref), eval_data, limit=eval_limit, progress=progress)
                report[key].update(psnr=res["psnr"], ssim=res["ssim"], eval_pairs=res["n"])
            report["eval"] = {"data": eval_data, "limit": eval_limit, "protocol": res["protocol"]}
            spec["provenance"]["metrics"] = {k: {m: report[k][m] for m in ("psnr", "ssim", "eval_pairs")}
                                             for k in ("before", "after")} | {"eval": report["eval"]}
            save_checkpoint(model, spec, tmp)
        report["seconds"] = time.time() - t0
        record = portable(report)                       # no absolute machine paths on disk
        (tmp / REPORT_JSON).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
        (tmp / REPORT_MD).write_text(format_report(record, "md"), encoding="utf-8")
    return report


def _pruner_name() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        v = version("torch-pruning")     # tp.__version__ of 1.6.1 still says 1.6.0
    except PackageNotFoundError:
        v = tp.__version__
    return f"torch-pruning {v} {_PRUNER.__name__}"


def _padded(model: nn.Module, shape) -> tuple[int, int, int]:
    from darkc.models.complexity import padded_shape

    return padded_shape(model, tuple(shape))[1:]


def format_report(report: dict, fmt: str = "table") -> str:
    """Render a :func:`prune` report as a plain-text table (``table``) or markdown (``md``)."""
    b, a = report["before"], report["after"]
    rows = [("params", b["params"], a["params"], si)]
    for res in b["macs"]:
        rows.append((f"MACs @{res}", b["macs"][res], a["macs"][res], si))
    if "latency_ms" in b:
        lat = report["latency"]
        rows.append((f"latency ms ({lat['raw']} -> {'x'.join(map(str, lat['packed_padded']))}, 1 thread)",
                     b["latency_ms"], a["latency_ms"], lambda v: f"{v:.1f}"))
    for key, fmt_v in (("psnr", lambda v: f"{v:.2f} dB"), ("ssim", lambda v: f"{v:.4f}")):
        if key in b:
            rows.append((key.upper(), b[key], a[key], fmt_v))
    table = [["", "before", "after", "change"]]
    for name, vb, va, f in rows:
        change = {"PSNR": f"{va - vb:+.2f} dB", "SSIM": f"{va - vb:+.4f}"}.get(name, f"{(va / vb - 1) * 100:+.1f} %")
        table.append([name, f(vb), f(va), change])
    o = report["options"]
    head = (f"pruned {report['parent']} -> {report['output']}: ratio {o['ratio']:.3f}, importance {o['importance']}, "
            f"scope {o['scope']}, round_to {o['round_to']}, steps {o['steps']}, finetune_iters {o['finetune_iters']}")
    notes = []
    if report.get("budget"):
        bud = report["budget"]
        notes.append(f"budget {si(bud['requested'])} {bud['label']}: achieved {si(bud['achieved'])} "
                     f"({bud['deviation']:+.1%}{'' if bud['within_tolerance'] else ', OUTSIDE tolerance'})")
    if "eval" in report:
        e = report["eval"]
        notes.append(f"PSNR/SSIM on {e['data']} ({b.get('eval_pairs')} pairs); {e['protocol']}")
    notes.append("MACs: conv + transposed conv multiply-accumulates per raw frame, packed and padded to 16")
    if fmt == "md":
        lines = ["# darkc prune report", "", head, "", "| " + " | ".join(table[0]) + " |", "|---|---|---|---|"]
        lines += ["| " + " | ".join(r) + " |" for r in table[1:]]
        lines += [""] + [f"- {n}" for n in notes] + ["", f"Command: `{report['command']}`", ""]
        ch = report["channels"]
        lines += ["| layer | before | after |", "|---|---|---|"]
        lines += [f"| {n} | {ch['before'][n]} | {ch['after'][n]} |" for n in ch["before"]]
        return "\n".join(lines) + "\n"
    widths = [max(len(r[i]) for r in table) for i in range(4)]
    text = [head] + ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table]
    return "\n".join(text + notes)

"""Cost budgets for the pruning ratio search: a :class:`Budget` (any ``cost_fn(model) -> float``), the MAC budget,
and :func:`search_ratio`, the bisection on the pruning ratio that :func:`darkc.compress.prune.prune` runs for
``--target-macs`` and :mod:`darkc.compress.latency_budget` for ``--target-ms``."""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from darkc.compress.pruning import MAX_LAYER_RATIO, prune_model
from darkc.errors import DarkcError
from darkc.fmt import si
from darkc.sizes import packed_shape

#: A budget is met when the achieved cost lies within this fraction of the requested value.
BUDGET_TOLERANCE = 0.05


# ---------------------------------------------------------------- budgets
@dataclass(frozen=True)
class Budget:
    """A cost ceiling for the ratio search: ``cost_fn(model) -> float`` must come out near ``value``.

    MACs (:func:`macs_budget`), or estimated ms through a calibrated cost model
    (:class:`darkc.compress.latency_budget.CalibratedCost`), or any other ``cost_fn``.
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
                           steps=steps, max_layer_ratio=max_layer_ratio, seed=seed, rescale=False,
                           allow_unchanged=True)
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

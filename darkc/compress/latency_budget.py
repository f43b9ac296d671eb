"""A latency budget for ``darkc prune``: ``--target-ms 33@cortex-a78x4`` in estimated ms on an emulated ARM cluster.

The real cost is darkc's ARM estimator (:func:`darkc.latency.bench`: the pruned model exported, its guest
instructions counted under QEMU at a small size, scaled by pixels, turned into ms on the cluster with the fitted
IPC correction and DRAM term). One estimate takes an export and an emulator run (tens of seconds to minutes), and
the ratio search (:func:`darkc.compress.budget.search_ratio`) evaluates its cost a dozen times, so the search runs
on a cheap model calibrated per (model, device) from a few real estimates:

- :class:`CalibratedCost`: ``ms = a x conv MACs + b x bytes moved (+ c)``, MACs and bytes read off the candidate's
  graph at the budget's frame size (:func:`darkc.latency.graph.torch_cost`, meta device: no compute), ``a, b, c``
  non-negative least squares over the estimates so far, times a correction through every estimate. The estimator
  counts no operator separately (its windows are whole inferences), so the per-MAC and per-byte costs are fitted
  across models rather than per operator.
- :func:`search_latency`: estimate the unpruned model and the one with every layer at its floor width (the
  search's two ends, so the fit interpolates), search on the fit, estimate the chosen candidate; when that
  estimate misses the budget's tolerance, or the fit missed it by more than the estimator's error band, add it to
  the fit and search again (up to ``rounds`` searches); the best candidate within the tolerance wins (at or under
  the budget first), with none the budget is refused.

The report keeps every estimate, the fit, and predicted vs estimated ms of the result beside the estimator's
error band (:mod:`darkc.latency.validation`), flagging a cost model that missed by more than the band. With more
than one thread an estimate itself moves by 1-2 % between runs (the unpruned shipped student on cortex-a78x4:
210.7 and 207.1 ms in the two runs of benchmarks/results/prune_target_ms.json), which bounds any agreement.
"""
from __future__ import annotations

import copy
import itertools
import json
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import nn

from darkc.errors import DarkcError
from darkc.sizes import parse_resolution

#: Default raw frame a ``--target-ms`` budget is for (as ``--target-macs``).
DEFAULT_RESOLUTION = (1920, 1080)
#: Precisions an estimate can be for: the exported file the phone runs.
PRECISIONS = ("int8", "fp32")
#: Searches on the refitted cost model before a budget the estimates keep missing is refused.
ROUNDS = 3
_SPEC = re.compile(r"\s*(?P<ms>[0-9]*\.?[0-9]+(?:e[+-]?\d+)?)\s*(?:ms)?\s*@\s*(?P<device>[^@\s]+)"
                   r"\s*(?:@\s*(?P<res>\S+))?\s*", re.IGNORECASE)
_EXAMPLE = "e.g. 33@cortex-a78x4 or 50@cortex-x3+a715x2@1280x720 (estimated ms per raw frame of WxH px)"


@dataclass(frozen=True)
class LatencyTarget:
    """A parsed ``--target-ms``: ``ms`` per raw frame of ``resolution`` (W, H) on the ARM ``device``, run with one
    thread per core of the cluster (``threads``)."""

    ms: float
    device: str
    resolution: tuple[int, int]
    threads: int
    cores: str

    @property
    def text(self) -> str:
        return f"{self.ms:g}@{self.device}@{self.resolution[0]}x{self.resolution[1]}"


def parse_target_ms(text: str) -> LatencyTarget:
    """``'33@cortex-a78x4'`` / ``'33ms@cortex-a78x4@1920x1080'`` -> :class:`LatencyTarget`; one-line DarkcError
    naming the fix otherwise. The device is an ARM core profile or cluster
    (:func:`darkc.latency.cluster.parse_cluster`); without ``@WxH`` the frame is 1920x1080."""
    from darkc.latency.cluster import parse_cluster

    m = _SPEC.fullmatch(str(text))
    if not m:
        raise DarkcError(f"--target-ms {text!r} is not a latency budget; write MS@DEVICE[@WxH], {_EXAMPLE}")
    ms = float(m["ms"])
    if not 0 < ms < float("inf"):
        raise DarkcError(f"--target-ms {text!r}: the budget must be a positive number of ms; {_EXAMPLE}")
    device = m["device"].lower()
    if device.startswith("ethos-u") or device == "host":
        raise DarkcError(f"--target-ms {text!r}: {device} is not an ARM CPU; a latency budget is estimated on an "
                         f"emulated ARM core or cluster ({_EXAMPLE}); check NPUs with `darkc bench --device "
                         f"{device}` after pruning")
    try:
        cluster = parse_cluster(device)
    except DarkcError as exc:
        raise DarkcError(f"--target-ms {text!r}: {str(exc).removeprefix(f'--device {device}: ')}") from None
    res = parse_resolution(m["res"], "--target-ms resolution") if m["res"] else DEFAULT_RESOLUTION
    return LatencyTarget(ms, cluster.name, res, cluster.size, cluster.describe())


# ---------------------------------------------------------------- the real estimate
class Estimator:
    """darkc's ARM estimate (``darkc bench --device DEVICE --threads N``) of in-memory models, cached per channel
    layout (the count depends on the widths, not on the weights' values)."""

    def __init__(self, target: LatencyTarget, precision: str = "int8", arm_size=None, progress: bool = False):
        if precision not in PRECISIONS:
            raise DarkcError(f"--target-precision {precision!r} is unknown; use one of {', '.join(PRECISIONS)}")
        self.target, self.precision, self.arm_size, self.progress = target, precision, arm_size, progress
        self.cache: dict[str, dict] = {}
        self.runs = 0

    def __call__(self, model: nn.Module, spec: dict, what: str = "") -> dict:
        """The bench entry of ``model`` on the target (``latency_ms``, ``method``, ``error_band``, counts ...)."""
        key = json.dumps(spec.get("channels"), sort_keys=True)
        if key not in self.cache:
            if self.progress:
                print(f"prune --target-ms: estimating {what or 'a candidate'} on emulated {self.target.device} "
                      f"({self.precision}, QEMU)", file=sys.stderr, flush=True)
            self.cache[key] = self._estimate(model, spec)
            self.runs += 1
        return self.cache[key]

    def _estimate(self, model: nn.Module, spec: dict) -> dict:
        from darkc.latency.artifact import export_cached, load_subject, raw_size
        from darkc.latency.bench import DEFAULT_ARM_SIZE, bench
        from darkc.models import save_checkpoint
        from darkc.sizes import padded_hw

        t = self.target
        arm_size = self.arm_size or DEFAULT_ARM_SIZE
        with tempfile.TemporaryDirectory(prefix="darkc-prune-estimate-") as tmp:
            folder = save_checkpoint(model, {k: v for k, v in spec.items() if k != "provenance"}, Path(tmp) / "m")
            # a LiteRT file, as a phone app ships it (bench on the checkpoint itself would time ONNX Runtime, whose
            # thread pool the counting plugin cannot split into parallel regions)
            subject = load_subject(str(folder))
            arm_hw = padded_hw(tuple(arm_size), subject.cfa, subject.multiple)
            path, _ = export_cached(folder, "tflite", self.precision, raw_size(subject, arm_hw), "prune --target-ms")
            res = bench(str(path), devices=[t.device], size=t.resolution, threads=[t.threads], arm_size=arm_size,
                        parity=False)
        entry = res["devices"][t.device]
        return {"latency_ms": float(entry["latency_ms"]), "method": entry["method"], "runtime": entry["runtime"],
                "error_band": entry.get("error_band"), "cores": entry["cores"], "threads": entry["threads"],
                "instructions": entry["instructions"], "measured_resolution": entry["measured_resolution"],
                "resolution": res["resolution"], "dtype": res["dtype"]}


# ---------------------------------------------------------------- the cheap cost model
class CalibratedCost:
    """``ms = (a x MACs + b x bytes (+ c)) x r(MACs)`` at ``shape`` (packed, padded NCHW of the budget's frame).

    ``a, b, c`` come from non-negative least squares over the real estimates (two points: MACs and bytes; from
    three on the constant joins). ``r`` is the ratio estimate / linear fit at each estimated model, interpolated
    linearly in log MACs between them (held at the ends), so the model passes through every estimate even where the
    linear fit cannot (a negative coefficient would be needed).
    """

    FEATURES = ("macs", "bytes", "const")

    def __init__(self, shape: tuple[int, ...]):
        self.shape = tuple(shape)
        self.points: list[dict] = []
        self.coef: dict[str, float] = {}
        self.knots: tuple[list[float], list[float]] = ([], [])

    def features(self, model: nn.Module) -> dict:
        """Conv + transposed-conv MACs and bytes moved (activations read and written, weights) per frame."""
        from darkc.latency.graph import torch_cost

        cost = torch_cost(model, self.shape)
        return {"macs": float(cost["macs"]), "bytes": float(cost["bytes"]), "const": 1.0}

    def add(self, model: nn.Module, ms: float, **about) -> None:
        """Record one real estimate of ``model`` and refit."""
        self.points.append({**about, **{k: v for k, v in self.features(model).items() if k != "const"},
                            "estimated_ms": float(ms)})
        self.fit()

    def fit(self) -> None:
        if not self.points:
            raise DarkcError("the latency cost model has no estimate to fit; estimate the unpruned model first")
        names = self.FEATURES[:min(len(self.points), len(self.FEATURES))]
        x = np.array([[p.get(n, 1.0) for n in names] for p in self.points], dtype=np.float64)
        y = np.array([p["estimated_ms"] for p in self.points], dtype=np.float64)
        scale = np.abs(x).max(axis=0)
        scale[scale == 0] = 1.0
        xs = x / scale
        best = None
        # exact NNLS for <= 3 features: the best least-squares fit over every subset whose coefficients are >= 0
        for k in range(1, len(names) + 1):
            for cols in itertools.combinations(range(len(names)), k):
                sol, *_ = np.linalg.lstsq(xs[:, cols], y, rcond=None)
                if np.all(sol >= 0):
                    err = float(np.sum((xs[:, cols] @ sol - y) ** 2))
                    if best is None or err < best[0] - 1e-12 * float(y @ y):
                        best = (err, cols, sol)
        coef = dict.fromkeys(self.FEATURES, 0.0)
        if best is not None:
            for c, v in zip(best[1], best[2]):
                coef[names[c]] = float(v / scale[c])
        self.coef = coef
        pts = sorted(self.points, key=lambda p: p["macs"])
        linear = [self._linear({**p, "const": 1.0}) for p in pts]
        self.knots = ([float(np.log(max(p["macs"], 1.0))) for p in pts],
                      [p["estimated_ms"] / v if v > 0 else 1.0 for p, v in zip(pts, linear)])

    def _linear(self, feats: dict) -> float:
        return sum(self.coef[n] * feats[n] for n in self.FEATURES)

    def predict(self, feats: dict) -> float:
        return self._linear(feats) * float(np.interp(np.log(max(feats["macs"], 1.0)), *self.knots))

    def __call__(self, model: nn.Module) -> float:
        return self.predict(self.features(model))

    def describe(self) -> str:
        parts = [f"{self.coef['macs'] * 1e9:.4g} ms per GMAC", f"{self.coef['bytes'] * 1e9:.4g} ms per GB moved"]
        if self.coef["const"]:
            parts.append(f"{self.coef['const']:.4g} ms fixed")
        r = self.knots[1]
        return (f"{' + '.join(parts)}, fitted (non-negative least squares) on {len(self.points)} estimator runs, times "
                f"a correction interpolated in log MACs through them ({min(r):.3f}-{max(r):.3f}); MACs and bytes from "
                f"the graph at packed {self.shape[2]}x{self.shape[3]}")


# ---------------------------------------------------------------- the search
def search_latency(model: nn.Module, spec: dict, target: LatencyTarget, *, precision: str = "int8",
                   importance: str = "l1", scope: str = "uniform", round_to: int = 8, example_input=None,
                   steps: int = 1, max_layer_ratio: float, seed: int = 0, tolerance: float, rounds: int = ROUNDS,
                   arm_size=None, estimator: Estimator | None = None,
                   progress: bool = False) -> tuple[float, dict, Estimator, CalibratedCost]:
    """The pruning ratio whose model's estimated ms on ``target`` lies within ``tolerance`` of ``target.ms``.

    Calibrates a :class:`CalibratedCost` on the estimates of the unpruned and the floor-width model, bisects on it
    (:func:`darkc.compress.budget.search_ratio`), estimates the chosen candidate, and refits and searches again when
    the estimate misses the tolerance or the fit missed the estimate by more than the error band
    (:func:`agreement_limit`). Of the candidates within the tolerance, the one at or under the budget and nearest
    it wins.

    Returns:
        ``(ratio, record, estimator, cost)``: record has ``calibration`` (the estimates the fit used), ``rounds``
        (per search: ratio, predicted and estimated ms, whether they agree, the search's trials in predicted ms),
        ``chosen`` (the index of the winning round) and ``fit``.

    Raises:
        DarkcError: the budget is at or above the unpruned model's estimate, below the floor model's, or still
            missed after ``rounds`` searches (the message names the estimates).
    """
    from darkc.compress.budget import Budget, search_ratio
    from darkc.compress.pruning import prune_model
    from darkc.models import get_adapter
    from darkc.sizes import padded_hw

    est = estimator or Estimator(target, precision, arm_size, progress)
    multiple = get_adapter(spec).size_multiple(model)
    h, w = padded_hw(target.resolution, spec["cfa"], multiple)
    cost = CalibratedCost((1, spec["in_channels"], h, w))
    label = f"est. ms on {target.device} ({est.precision}, {target.resolution[0]}x{target.resolution[1]})"
    value = float(target.ms)
    policy = dict(importance=importance, scope=scope, round_to=round_to, max_layer_ratio=max_layer_ratio, seed=seed)

    def candidate(ratio: float):
        return prune_model(copy.deepcopy(model), spec, ratio, importance, scope, round_to, example_input,
                           steps=steps, max_layer_ratio=max_layer_ratio, seed=seed, rescale=False,
                           allow_unchanged=True)

    full = est(model, spec, "the unpruned model")["latency_ms"]
    cost.add(model, full, ratio=0.0, role="unpruned")
    if value >= full:
        raise DarkcError(f"--target-ms {target.text}: the unpruned model is already estimated at {full:.1f} ms "
                         f"({est.precision}) on {target.device}; nothing to prune - ask for less than {full:.1f} ms")
    floor_model, floor_spec = candidate(max_layer_ratio)
    floor = est(floor_model, floor_spec, "the floor-width model")["latency_ms"]
    cost.add(floor_model, floor, ratio=max_layer_ratio, role="floor")
    if floor > value * (1 + tolerance):
        raise DarkcError(f"--target-ms {target.text}: with every layer at max({round_to}, "
                         f"{1 - max_layer_ratio:.0%} of its width) channels the model is still estimated at "
                         f"{floor:.1f} ms ({est.precision}; unpruned {full:.1f} ms) on {target.device}; ask for at "
                         f"least {floor:.1f} ms, a faster device, or lower --round-to")
    log, best = [], None
    for k in range(rounds):
        ratio, predicted, trials = search_ratio(model, spec, Budget(value, cost, label, tolerance),
                                                example_input=example_input, steps=steps, **policy)
        m, s = candidate(ratio)
        entry = est(m, s, f"the candidate at ratio {ratio:.4f}")
        estimated, limit = entry["latency_ms"], agreement_limit(entry.get("error_band"))
        agrees = abs(predicted / estimated - 1) * 100 <= limit
        log.append({"ratio": ratio, "predicted_ms": predicted, "estimated_ms": estimated, "agrees": agrees,
                    "channels": s["channels"], "fit": dict(cost.coef), "trials": trials})
        if abs(estimated / value - 1) <= tolerance:
            # the best landing so far: at or under the budget first, then the nearest
            if best is None or (estimated > value, abs(estimated - value)) < (log[best]["estimated_ms"] > value,
                                                                              abs(log[best]["estimated_ms"] - value)):
                best = k
            if agrees:
                break
        if k + 1 < rounds:      # the cost model missed by more than the band, or the estimate missed the budget
            cost.add(m, estimated, ratio=ratio, role=f"search {k + 1}")
    if best is None:
        tried = ", ".join(f"ratio {r['ratio']:.4f}: predicted {r['predicted_ms']:.1f}, estimated "
                          f"{r['estimated_ms']:.1f} ms" for r in log)
        hint = "--scope global (finer steps) or " if scope == "uniform" else ""
        raise DarkcError(f"--target-ms {target.text}: after {rounds} searches no candidate's estimate lands within "
                         f"{tolerance:.0%} of {value:g} ms ({tried}); ask for one of those, or use {hint}a lower "
                         f"--round-to")
    ratio = log[best]["ratio"]
    record = {"target": target.text, "device": target.device, "cores": target.cores, "threads": target.threads,
              "precision": est.precision, "resolution": f"{target.resolution[0]}x{target.resolution[1]}",
              "calibration": list(cost.points), "rounds": log, "chosen": best, "fit": dict(cost.coef),
              "fit_text": cost.describe()}
    return ratio, record, est, cost


def agreement_limit(band: dict | None) -> float:
    """How far (%) the cost model may miss an estimate: the estimator's own median error band, else 5 %."""
    return float(band["median_abs_pct"]) if band else 5.0


def verify(model: nn.Module, spec: dict, est: Estimator, cost: CalibratedCost, chosen: dict | None = None) -> dict:
    """Predicted vs estimated ms of the final model, and whether they agree within the estimator's error band
    (without a validation record: within 5 %). The prediction is the one the search made (``chosen``, its round)
    when the final model has that candidate's widths (a refit on the candidate's own estimate would agree by
    construction), else the final cost model's."""
    from darkc.latency.validation import band_text

    entry = est(model, spec, "the pruned model")
    same = chosen is not None and chosen.get("channels") == spec.get("channels")
    predicted, estimated = chosen["predicted_ms"] if same else cost(model), entry["latency_ms"]
    band = entry.get("error_band")
    limit = agreement_limit(band)
    diff = (predicted / estimated - 1) * 100
    return {"predicted_ms": predicted, "estimated_ms": estimated, "difference_pct": diff,
            "agrees": abs(diff) <= limit, "agreement_limit_pct": limit, "error_band": band,
            "error_band_text": band_text(band), "method": entry["method"], "runtime": entry["runtime"],
            "cores": entry["cores"], "threads": entry["threads"], "measured_resolution": entry["measured_resolution"],
            "estimator_runs": est.runs, "predicted_by": "the search" if same else "the final cost model"}

"""``darkc prune``: the stage: prune a checkpoint to a ratio or a cost budget, fine-tune, measure, write the artifact.

The pruning itself (Torch-Pruning's dependency graph, the policy, the output head its arch's adapter names, which is
never pruned, rescaling after a step) is :mod:`darkc.compress.pruning`; the fine-tuning (inputs, objective, run) is
:mod:`darkc.compress.finetune`; params, MACs and host latency are :mod:`darkc.timing`. The budget search is
:mod:`darkc.compress.budget` (a MAC budget, or any cost function) and :mod:`darkc.compress.latency_budget` (estimated
ms on an ARM cluster); this module adds the stage: options, report and artifact. Ten lines of use::

    from darkc.compress.prune import prune

    report = prune("runs/teacher", "runs/pruned", target_macs="5G@1920x1080", steps=3, finetune_iters=500)
    print(report["after"]["macs"], report["after"]["psnr"])
"""
from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from darkc.compress.budget import BUDGET_TOLERANCE, Budget, macs_budget, search_ratio  # noqa: F401 (re-exported)
from darkc.compress.finetune import finetune_inputs, finetune_to_parent
from darkc.compress.pruning import IMPORTANCES, MAX_LAYER_RATIO, SCOPES, check_prunable, prune_model, pruner_name
from darkc.errors import DarkcError, atomic_dir
from darkc.fmt import si
from darkc.models.registry import get_adapter
from darkc.provenance import command_line, portable
from darkc.sizes import packed_shape, parse_budget, parse_resolution
from darkc.timing import latency_setup, measure

REPORT_JSON = "prune_report.json"
REPORT_MD = "prune_report.md"


# ---------------------------------------------------------------- the stage
def _check_options(ratio, target_macs, target_ms, budget, importance, scope, round_to, steps, finetune_iters,
                   max_layer_ratio) -> None:
    given = [n for n, v in (("--ratio", ratio), ("--target-macs", target_macs), ("--target-ms", target_ms),
                            ("budget", budget)) if v is not None]
    if len(given) != 1:
        raise DarkcError(f"pass exactly one of --ratio, --target-macs or --target-ms (got "
                         f"{', '.join(given) or 'none'})")
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


def prune(model_ref, out_dir, *, ratio: float | None = None, target_macs=None, target_ms=None,
          target_precision: str = "int8", budget: Budget | None = None, importance: str = "l1",
          scope: str = "uniform", round_to: int = 8,
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
        target_ms: a latency budget, ``'33@cortex-a78x4'`` (estimated ms per raw frame, default 1920x1080, on an
            emulated ARM core or cluster; see :mod:`darkc.compress.latency_budget`) or a ``LatencyTarget``, for the
            ``target_precision`` (``int8`` or ``fp32``) TFLite export; or instead
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
    from darkc.compress.latency_budget import LatencyTarget, PRECISIONS, parse_target_ms, search_latency, verify

    t0 = time.time()
    _check_options(ratio, target_macs, target_ms, budget, importance, scope, round_to, steps, finetune_iters,
                   max_layer_ratio)
    ratio = None if ratio is None else float(ratio)
    target = None
    if target_ms is not None:
        target = target_ms if isinstance(target_ms, LatencyTarget) else parse_target_ms(target_ms)
        if target_precision not in PRECISIONS:
            raise DarkcError(f"--target-precision {target_precision!r} is unknown; use one of {', '.join(PRECISIONS)}")
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
        dataset = finetune_inputs(data, spec, patch, seed)
        example = torch.stack([dataset[i]["input"] for i in range(4 if rescale else 2)])
    else:
        example = torch.rand(1, spec["in_channels"], 32, 32, generator=torch.Generator().manual_seed(seed))

    model.eval()
    before = measure(model, cfa, latency_shape, latency_runs, spec["in_channels"])
    channels_before = get_adapter(spec).widths(model)
    search = None
    policy = dict(importance=importance, scope=scope, round_to=round_to, max_layer_ratio=max_layer_ratio, seed=seed)
    if budget is not None:
        ratio, found, trials = search_ratio(model, spec, budget, example_input=example, steps=steps, **policy)
        search = {"label": budget.label, "requested": budget.value, "found": found, "tolerance": budget.tolerance,
                  "trials": trials}
    elif target is not None:
        ratio, latency, estimator, lat_cost = search_latency(model, spec, target, precision=target_precision,
                                                             example_input=example, steps=steps,
                                                             tolerance=BUDGET_TOLERANCE, progress=progress, **policy)
        last = latency["rounds"][latency["chosen"]]
        search = {"label": f"est. ms on {target.device} ({target_precision}, {latency['resolution']})",
                  "requested": target.ms, "found": last["predicted_ms"], "tolerance": BUDGET_TOLERANCE,
                  "trials": last["trials"], "latency": latency}

    teacher = copy.deepcopy(model).eval().requires_grad_(False)
    finetune_log: list[dict] = []

    def finetune(k: int, m: nn.Module, s: dict) -> None:
        finetune_log.append(finetune_to_parent(m, s, teacher, dataset, k, finetune_iters, batch_size, lr, seed,
                                               progress))

    model, spec = prune_model(model, spec, ratio, example_input=example, steps=steps, rescale=rescale,
                              after_step=finetune if finetune_iters > 0 else None, **policy)
    model.eval()
    after = measure(model, cfa, latency_shape, latency_runs, spec["in_channels"])
    if target is not None:
        search["latency"]["result"] = verify(model, spec, estimator, lat_cost,
                                             search["latency"]["rounds"][search["latency"]["chosen"]])
        search["achieved"] = search["latency"]["result"]["estimated_ms"]
    elif search is not None:
        search["achieved"] = float(budget.cost_fn(model))
    if search is not None:
        search["deviation"] = search["achieved"] / search["requested"] - 1
        search["within_tolerance"] = abs(search["deviation"]) <= search["tolerance"]

    options = {"ratio": round(ratio, 6), "target_macs": budget_request,
               "target_ms": None if target is None else target.text,
               "target_precision": None if target is None else target_precision, "importance": importance,
               "scope": scope, "round_to": round_to, "steps": steps, "finetune_iters": finetune_iters,
               "data": data if isinstance(data, str) else type(data).__name__, "batch_size": batch_size,
               "patch": patch, "lr": lr, "seed": seed, "rescale": rescale}
    command = command_line("prune", model_ref, {**options, "ratio": None if budget_request or target else
                                                options["ratio"],
                                          "rescale": None, "no_rescale": not rescale,
                                          "data": options["data"] if dataset is not None else None}, out)
    macs_key = "1920x1080"
    provenance = {"stage": "prune", "parent": str(model_ref), "command": command, **options,
                  "max_layer_ratio": max_layer_ratio, "pruner": pruner_name(),
                  "params_before": before["params"], "params_after": after["params"],
                  f"macs_{macs_key}_before": before["macs"][macs_key],
                  f"macs_{macs_key}_after": after["macs"][macs_key],
                  "budget": None if search is None else _without_trials(search),
                  "finetune": finetune_log, "parent_provenance": spec.get("provenance") or {}}
    spec = {**spec, "provenance": provenance}
    report = {"parent": str(model_ref), "output": str(out), "command": command, "options": options,
              "max_layer_ratio": max_layer_ratio, "budget": search, "before": before, "after": after,
              "latency": None if latency_shape is None else latency_setup(model, latency_size, latency_shape,
                                                                          latency_runs),
              "channels": {"before": channels_before, "after": get_adapter(spec).widths(model)}, "finetune": finetune_log}

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


def _without_trials(search: dict) -> dict:
    """The budget record for provenance: the search's trials left out (the report keeps them)."""
    out = {k: v for k, v in search.items() if k != "trials"}
    if "latency" in out:
        out["latency"] = {**out["latency"], "rounds": [{k: v for k, v in r.items() if k != "trials"}
                                                       for r in out["latency"]["rounds"]]}
    return out


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
    bud = report.get("budget")
    if bud and bud.get("latency"):
        notes += _latency_notes(bud)
    elif bud:
        notes.append(f"budget {si(bud['requested'])} {bud['label']}: achieved {si(bud['achieved'])} "
                     f"({bud['deviation']:+.1%}{'' if bud['within_tolerance'] else ', OUTSIDE tolerance'})")
    if "eval" in report:
        e = report["eval"]
        notes.append(f"PSNR/SSIM on {e['data']} ({b.get('eval_pairs')} pairs); {e['protocol']}")
    notes.append("MACs: conv + transposed conv multiply-accumulates per raw frame, packed and padded to the model's "
                 "size multiple")
    if fmt == "md":
        lines = ["# darkc prune report", "", head, "", "| " + " | ".join(table[0]) + " |", "|---|---|---|---|"]
        lines += ["| " + " | ".join(r) + " |" for r in table[1:]]
        lines += [""] + [f"- {n}" for n in notes] + ["", f"Command: `{report['command']}`", ""]
        if bud and bud.get("latency"):
            lat = bud["latency"]
            lines += ["| estimator run | ratio | GMACs | predicted ms | estimated ms |", "|---|---|---|---|---|"]
            lines += [f"| calibration ({p['role']}) | {p['ratio']:.4f} | {p['macs'] / 1e9:.3g} | - | "
                      f"{p['estimated_ms']:.2f} |" for p in lat["calibration"][:2]]
            lines += [f"| search {i + 1} | {r['ratio']:.4f} | - | {r['predicted_ms']:.2f} | {r['estimated_ms']:.2f} |"
                      for i, r in enumerate(lat["rounds"])]
            res = lat["result"]
            lines += [f"| result | {o['ratio']:.4f} | - | {res['predicted_ms']:.2f} | {res['estimated_ms']:.2f} |",
                      ""]
        ch = report["channels"]
        lines += ["| layer | before | after |", "|---|---|---|"]
        lines += [f"| {n} | {ch['before'][n]} | {ch['after'][n]} |" for n in ch["before"]]
        return "\n".join(lines) + "\n"
    widths = [max(len(r[i]) for r in table) for i in range(4)]
    text = [head] + ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table]
    return "\n".join(text + notes)


def _latency_notes(bud: dict) -> list[str]:
    """What a ``--target-ms`` budget was in, how the result's latency was counted, and how far the search's cost
    model was from the estimate."""
    lat, r = bud["latency"], bud["latency"]["result"]
    flag = "" if bud["within_tolerance"] else ", OUTSIDE tolerance"
    agree = ("within" if r["agrees"] else "WARNING: outside") + f" the {r['agreement_limit_pct']:.1f} % band"
    return [f"budget {bud['requested']:g} ms per {lat['resolution']} raw frame, estimated (not measured) on "
            f"{lat['device']} ({r['cores']}, {r['threads']} threads, {lat['precision']}, {r['runtime']}): achieved "
            f"{r['estimated_ms']:.2f} ms estimated ({bud['deviation']:+.1%}{flag}); estimator error band "
            f"{r['error_band_text']}",
            f"how the latency was counted: {r['method']}",
            f"search cost model: {lat['fit_text']}; it predicted {r['predicted_ms']:.2f} ms for the result vs "
            f"{r['estimated_ms']:.2f} ms estimated ({r['difference_pct']:+.1f} %, {agree}); "
            f"{r['estimator_runs']} estimator runs in all"]

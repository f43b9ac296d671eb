"""Per-operator host timing of a ``.tflite`` file on LiteRT, and an interleaved A/B latency comparison.

ai-edge-litert's Python interpreter exposes no op profiler (the C++ ``benchmark_model --enable_op_profiling``
is not in the pip package), so each operator is cut out of the graph into a one-operator model (its constant
inputs kept, its activation inputs made graph inputs) and timed alone on the same interpreter settings as
``darkc bench`` (XNNPACK delegate, ``threads`` threads). Whether XNNPACK took the operator is read from the
interpreter's execution plan: an operator XNNPACK declines stays a LiteRT built-in (reference or optimized)
kernel. Times are CPU time of the calling thread (``threads`` must be 1: XNNPACK's pool threads would not be
counted), so host load inflates them far less than wall time. The sum over operators misses what running in one graph shares (caches, XNNPACK's fused/shared
buffers), so the whole graph is timed too and both are reported.
"""
from __future__ import annotations

import copy
import math
import os
import time
from pathlib import Path

import numpy as np

#: Operators a LiteRT execution plan shows for a delegated partition.
_DELEGATE_NAMES = ("DELEGATE", "TfLiteXNNPackDelegate")


def _model_bytes(model: bytes | str | os.PathLike) -> bytes:
    return Path(model).read_bytes() if isinstance(model, (str, os.PathLike)) else bytes(model)


def _interpreter(content: bytes, threads: int):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=content, num_threads=threads)
    it.allocate_tensors()
    return it


def _fill(it, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for d in it.get_input_details():
        dtype = np.dtype(d["dtype"])
        if dtype.kind == "f":
            x = rng.random(d["shape"], dtype=np.float32).astype(dtype)
        else:
            info = np.iinfo(dtype)
            x = rng.integers(info.min, info.max, size=d["shape"], endpoint=True).astype(dtype)
        it.set_tensor(d["index"], x)


def _time(it, runs: int, warmup: int) -> list[float]:
    """CPU time (ms) of the calling thread per ``invoke``: with one interpreter thread XNNPACK and the built-in
    kernels run on it, so this leaves out the time other processes hold the core (wall time on a loaded host is
    several times longer and swings from run to run)."""
    for _ in range(warmup):
        it.invoke()
    out = []
    for _ in range(runs):
        t0 = time.thread_time_ns()
        it.invoke()
        out.append((time.thread_time_ns() - t0) / 1e6)
    return out


def _one_thread(threads: int) -> None:
    if threads != 1:
        raise ValueError(f"op timing is CPU time of the calling thread: threads must be 1, got {threads}")


def _delegated(it) -> bool:
    return any(op["op_name"] in _DELEGATE_NAMES for op in it._get_ops_details())


def single_op_models(model: bytes | str | os.PathLike) -> list[tuple[int, bytes]]:
    """``[(op index, flatbuffer)]``: every operator of subgraph 0 as a one-operator model."""
    from darkc.export.tflite_graph import read_model, write_model
    from darkc.export.tflite_rewrite import compact_tensors

    content = _model_bytes(model)
    base = read_model(content)
    out = []
    for i in range(len(base.subgraphs[0].operators)):
        m = copy.deepcopy(base)
        g = m.subgraphs[0]
        op = g.operators[i]
        g.operators = [op]
        consts = {t for t in op.inputs if t >= 0 and m.buffers[g.tensors[t].buffer].data is not None
                  and len(m.buffers[g.tensors[t].buffer].data)}
        g.inputs = np.asarray([t for t in op.inputs if t >= 0 and t not in consts], dtype=np.int32)
        g.outputs = np.asarray(list(op.outputs), dtype=np.int32)
        m.signatureDefs = []
        compact_tensors(m, g)
        out.append((i, write_model(m)))
    return out


def op_profile(model: bytes | str | os.PathLike, threads: int = 1, runs: int = 5, warmup: int = 1) -> dict:
    """Time every operator of ``model`` alone and the whole graph, on LiteRT with ``threads`` threads.

    Returns:
        ``{"ops": [{"index", "op", "dtypes" ("in -> out" tensor types), "out_shape", "macs" (conv-type ops, else
        0), "kernel" ("xnnpack" or "builtin"), "ms" (median)}], "graph_ms" (median of the whole graph),
        "sum_ms", "by_op": {op: {"count", "ms", "share"}}, "by_kernel": {kernel: ms}, "threads", "runs"}``.
    """
    from darkc.export.tflite_graph import op_name, read_model, type_name

    _one_thread(threads)
    content = _model_bytes(model)
    base = read_model(content)
    g = base.subgraphs[0]
    rows = []
    for i, single in single_op_models(content):
        op = g.operators[i]
        name = op_name(base, op)
        it = _interpreter(single, threads)
        _fill(it, i)
        ms = float(np.median(_time(it, runs, warmup)))
        ins = [t for t in op.inputs if t >= 0]
        dtypes = (",".join(type_name(g.tensors[t].type).lower() for t in ins) + " -> "
                  + ",".join(type_name(g.tensors[t].type).lower() for t in op.outputs))
        out_shape = [int(v) for v in g.tensors[int(op.outputs[0])].shape]
        rows.append({"index": i, "op": name, "dtypes": dtypes, "out_shape": out_shape,
                     "macs": _macs(name, g, op), "kernel": "xnnpack" if _delegated(it) else "builtin", "ms": ms})
    whole = _interpreter(content, threads)
    _fill(whole)
    graph_ms = float(np.median(_time(whole, runs, warmup)))
    total = sum(r["ms"] for r in rows)
    by_op: dict[str, dict] = {}
    by_kernel: dict[str, float] = {}
    for r in rows:
        key = f"{r['op']} ({r['kernel']})"
        e = by_op.setdefault(key, {"count": 0, "ms": 0.0})
        e["count"] += 1
        e["ms"] += r["ms"]
        by_kernel[r["kernel"]] = by_kernel.get(r["kernel"], 0.0) + r["ms"]
    for e in by_op.values():
        e["share"] = e["ms"] / total if total else 0.0
    return {"ops": rows, "graph_ms": graph_ms, "sum_ms": total,
            "by_op": dict(sorted(by_op.items(), key=lambda kv: -kv[1]["ms"])), "by_kernel": by_kernel,
            "threads": threads, "runs": runs, "warmup": warmup,
            "method": "each operator cut into a one-operator model and timed alone (median of runs, CPU time of the "
                      "calling thread), LiteRT interpreter with its default XNNPACK delegate; kernel = whether XNNPACK took the operator"}


def _macs(name: str, g, op) -> int:
    shape = lambda t: [int(v) for v in g.tensors[int(t)].shape]  # noqa: E731
    if name == "CONV_2D":
        w = shape(op.inputs[1])
        return math.prod(shape(op.outputs[0])) * w[1] * w[2] * w[3]
    if name == "DEPTHWISE_CONV_2D":
        w = shape(op.inputs[1])
        return math.prod(shape(op.outputs[0])) * w[1] * w[2]
    if name == "TRANSPOSE_CONV":
        w = shape(op.inputs[1])
        return math.prod(shape(op.inputs[2])) * w[0] * w[1] * w[2]
    return 0


def interleaved(models: dict[str, bytes | str | os.PathLike], threads: int = 1, rounds: int = 10,
                warmup: int = 1) -> dict:
    """Whole-graph latency of several models measured in turn (A, B, A, B, ...) in one process, so host load
    drifts hit all alike; returns per model the run times and median (ms) and, for every pair, the ratio of
    medians and the median of the per-round ratios."""
    _one_thread(threads)
    its = {}
    for name, model in models.items():
        it = _interpreter(_model_bytes(model), threads)
        _fill(it)
        _time(it, 0, warmup)
        its[name] = it
    times: dict[str, list[float]] = {name: [] for name in its}
    for _ in range(rounds):
        for name, it in its.items():
            times[name].extend(_time(it, 1, 0))
    out = {name: {"runs_ms": t, "median_ms": float(np.median(t)), "min_ms": float(np.min(t))}
           for name, t in times.items()}
    names = list(its)
    ratios = {}
    for a in names:
        for b in names:
            if a != b:
                per_round = [x / y for x, y in zip(times[a], times[b])]
                ratios[f"{a}/{b}"] = {"ratio_of_medians": out[a]["median_ms"] / out[b]["median_ms"],
                                      "median_round_ratio": float(np.median(per_round))}
    return {"models": out, "ratios": ratios, "threads": threads, "rounds": rounds, "warmup": warmup,
            "method": "one process, each model's interpreter built once, then one invoke of each in turn per round; CPU "
                      "time of the calling thread per invoke"}

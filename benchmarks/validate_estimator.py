"""Validate darkc's ARM latency estimator against published phone latencies; fit what it assumes.

The published figures (benchmarks/data/published_phone_latency.json, each with its source) are TFLite CPU
latencies of MobileNet v1/v2, float and quantised, on Pixel 3 and Pixel 4 with 4 threads. This script

1. ``build``: builds those models itself - PyTorch definitions (MobileNet v1 below, torchvision's MobileNet v2),
   random weights (latency does not depend on their values), converted to TFLite with the same litert-torch path
   darkc exports with (``darkc.export.tflite.torch_to_tflite``), int8 with darkc's ai-edge-quantizer path
   (``quantize_int8``, int8 input and output) - at the published input size;
2. ``count``: counts each model's guest instructions per inference under QEMU with 4 threads, per thread
   (``darkc.latency.arm.count_instructions``), appending one JSON line per model to ``counts.jsonl`` (resumable:
   models already counted are skipped);
3. ``report``: estimates each published figure from the counts (critical path of the 4 threads / (IPC x clock) on
   the device's cluster profile), fits the assumed IPC (one per dtype) on the fit set, and reports the error on
   the held-out set (median absolute % error), the leave-one-out error and the error with darkc's assumed IPC;
   writes benchmarks/results/estimator_validation.md and .json.

Run: ``python3 benchmarks/validate_estimator.py all`` (build + count + report; about 1.5 h on this loaded 2-core
host, most of it litert-torch conversions) or one step at a time. ``multicore [--models student,student-rt]`` then
benches shipped INT8 students on 4 x Cortex-A78 (1, 2, 4 threads) and Cortex-X3 + 2 x A715 with the fitted
estimator (benchmarks/results/latency/multicore.md).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DATA = ROOT / "benchmarks" / "data" / "published_phone_latency.json"
RESULTS = ROOT / "benchmarks" / "results"
WORK = ROOT / "runs" / "validate_estimator"
#: The emulated core the 4 threads run on. QEMU has no Cortex-A75 (Pixel 3's big core); its Cortex-A76 has the
#: same ISA (ARMv8.2-A, dotprod, fp16) and is Pixel 4's big core, so XNNPACK picks the same micro-kernels.
QEMU_CPU_PROFILE = "cortex-a76"
#: Fit set: widths 0.25 and 0.75; held out: widths 0.5 and 1.0 and MobileNet v2 (an architecture not fitted on).
FIT_WIDTHS = (0.25, 0.75)


def model_key(fig: dict) -> str:
    return f"{fig['model']}_{fig['width']}_{fig['size']}_{fig['dtype']}"


def load_data() -> dict:
    return json.loads(DATA.read_text())


# ---------------------------------------------------------------- models
def mobilenet_v1(width: float, classes: int = 1001):
    """MobileNet v1 (Howard et al. 2017, Table 1) as TensorFlow's slim model builds it: conv3x3/2, 13 depthwise-
    separable blocks with BN + ReLU6, global average pool, 1x1 conv logits (1001 classes), softmax."""
    from torch import nn

    def ch(c):
        return max(8, int(c * width))

    def conv_bn(i, o, k, s, groups=1):
        return [nn.Conv2d(i, o, k, s, k // 2, groups=groups, bias=False), nn.BatchNorm2d(o), nn.ReLU6()]

    cfg = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]
    layers, c = conv_bn(3, ch(32), 3, 2), ch(32)
    for out, stride in cfg:
        layers += conv_bn(c, c, 3, stride, groups=c) + conv_bn(c, ch(out), 1, 1)
        c = ch(out)
    layers += classifier(c, classes)
    return nn.Sequential(*layers)


def classifier(channels: int, classes: int) -> list:
    """Global average pool, 1x1 conv logits and softmax over channels, kept 4-D (N, classes, 1, 1): darkc's
    converter path (``to_channel_last_io``) takes rank >= 3 outputs."""
    from torch import nn

    return [nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, classes, 1), nn.Softmax(dim=1)]


def mobilenet_v2(width: float):
    """torchvision's MobileNet v2 (Sandler et al. 2018) features, with :func:`classifier` as its head."""
    from torch import nn
    from torchvision.models import mobilenet_v2 as tv

    net = tv(weights=None, width_mult=width)
    return nn.Sequential(net.features, *classifier(net.last_channel, 1000))


def build(key: str, fig: dict, out: Path) -> dict:
    """Write ``out`` (.tflite) for the published model ``fig``; returns what was built and how."""
    import numpy as np
    import torch

    from darkc.export.tflite import graph_info, quantize_int8, torch_to_tflite

    torch.manual_seed(0)
    net = (mobilenet_v1 if fig["model"] == "mobilenet_v1" else mobilenet_v2)(fig["width"]).eval()
    content, _, info = torch_to_tflite(net, 3, (fig["size"], fig["size"]))
    record = {"converter": info["converter"]}
    if fig["dtype"] == "int8":
        rng = np.random.default_rng(0)
        samples = [rng.random((1, 3, fig["size"], fig["size"]), dtype=np.float32) for _ in range(4)]
        content, q = quantize_int8(content, samples, io="int8", threads=1)
        record["quantizer"] = q["quantizer"]
        record["weights"], record["activations"] = q["weights"], q["activations"]
    g = graph_info(content)
    record["ops"] = g["op_counts"]
    tmp = out.with_suffix(".tmp")
    tmp.write_bytes(content)
    os.replace(tmp, out)
    return record


def step_build(keys: list[str], figs: dict[str, dict]) -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    for key in keys:
        out = WORK / f"{key}.tflite"
        if out.is_file():
            continue
        t = time.monotonic()
        rec = build(key, figs[key], out)
        (WORK / f"{key}.json").write_text(json.dumps(rec, indent=1))
        print(f"built {out} in {time.monotonic() - t:.0f} s", flush=True)


# ---------------------------------------------------------------- counting
def step_count(keys: list[str], figs: dict[str, dict], threads: int, wait: bool = False) -> None:
    """Count each built model (``wait``: poll for models a concurrent ``build`` has not written yet)."""
    from darkc.latency import arm

    log = WORK / "counts.jsonl"
    done = set()
    if log.is_file():
        done = {(r["key"], r["threads"]) for r in map(json.loads, log.read_text().splitlines()) if r}
    profile = arm.PROFILES[QEMU_CPU_PROFILE]
    for key in keys:
        if (key, threads) in done:
            continue
        size = figs[key]["size"]
        while wait and not (WORK / f"{key}.tflite").is_file():
            time.sleep(10)
        t = time.monotonic()
        c = arm.count_instructions(WORK / f"{key}.tflite", "litert", (1, size, size, 3), profile, invokes=2,
                                   warmup=1, threads=threads)
        row = {"key": key, "threads": threads, "qemu_cpu": c["qemu_cpu"], **{k: c[k] for k in (
            "instructions", "critical_path", "serial", "parallel", "busiest_path", "per_thread", "per_call", "regions",
            "emulation_s")}}
        with log.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(f"counted {key} x{threads} threads: {c['instructions'] / 1e6:.1f} M total, serial "
              f"{c['serial'] / 1e6:.1f} M, parallel {c['parallel'] / 1e6:.1f} M, emulated busiest path "
              f"{c['busiest_path'] / 1e6:.1f} M in {time.monotonic() - t:.0f} s", flush=True)


# ---------------------------------------------------------------- fit and evaluate
def base_estimates(data: dict, counts: dict[str, dict]) -> list[dict]:
    """One row per published figure that has a count: the estimate with darkc's assumed IPC and no sync cost."""
    from darkc.latency import graph
    from darkc.latency.cluster import cluster_ms, parse_cluster

    rows, costs = [], {}
    for fig in data["figures"]:
        c = counts.get(model_key(fig))
        if c is None or c["threads"] != fig["threads"]:
            continue
        cluster = parse_cluster(data["devices"][fig["device"]]["cluster"])
        count = {k: c[k] for k in ("threads", "serial", "parallel", "critical_path", "instructions", "regions")}
        est = cluster_ms(count, cluster)
        key = model_key(fig)
        if key not in costs:
            costs[key] = graph.tflite_cost(WORK / f"{key}.tflite", (1, fig["size"], fig["size"], 3))
        dram = cluster.cores[0].profile.dram_gbs * 1e9
        # the alternative the emulation offers: its busiest thread per region, on the fastest core
        busiest = cluster_ms({"threads": c["threads"], "serial": c["busiest_path"], "parallel": 0.0}, cluster)
        rows.append({**fig, "key": model_key(fig), "cluster": cluster.name, "assumed_ms": est["ms"],
                     "busiest_assumed_ms": busiest["ms"], "macs": costs[key]["macs"], "bytes": costs[key]["bytes"],
                     "dram_ms": costs[key]["bytes"] / dram * 1e3,
                     "serial_share": c["serial"] / c["instructions"], "regions": c["regions"],
                     "instructions": c["instructions"], "busiest_path": c["busiest_path"],
                     "critical_path": c["critical_path"], "fit_set": fig["width"] in FIT_WIDTHS
                     and fig["model"] == "mobilenet_v1"})
    return rows


def fit(rows: list[dict], base: str = "assumed_ms") -> dict:
    """IPC correction per dtype (k: every core's IPC x k), sync cost per parallel region (us) and a DRAM term
    (m: the graph's tensor bytes at m x the device's DRAM bandwidth), fitted by non-negative least squares on
    relative error: est = assumed_ms / k_dtype + sync_us x regions / 1000 + m x dram_ms."""
    import numpy as np
    from scipy.optimize import nnls

    dtypes = sorted({r["dtype"] for r in rows})
    a = np.zeros((len(rows), len(dtypes) + 2))
    b = np.ones(len(rows))
    for i, r in enumerate(rows):
        a[i, dtypes.index(r["dtype"])] = r[base] / r["ms"]
        a[i, -2] = r["regions"] / 1e3 / r["ms"]
        a[i, -1] = r["dram_ms"] / r["ms"]
    x, _ = nnls(a, b)
    return {"ipc_scale": {d: float(1 / x[i]) if x[i] > 0 else None for i, d in enumerate(dtypes)},
            "compute_coef": {d: float(x[i]) for i, d in enumerate(dtypes)},
            "sync_us": float(x[-2]), "dram_scale": float(x[-1])}


def predict(row: dict, f: dict, base: str = "assumed_ms") -> float:
    return (row[base] * f["compute_coef"][row["dtype"]] + f["sync_us"] * row["regions"] / 1e3
            + f["dram_scale"] * row["dram_ms"])


def pct(est: float, pub: float) -> float:
    return (est - pub) / pub * 100


def evaluate(rows: list[dict]) -> dict:
    import numpy as np

    fit_rows = [r for r in rows if r["fit_set"]]
    held = [r for r in rows if not r["fit_set"]]
    f = fit(fit_rows)
    for r in rows:
        r["fitted_ms"] = predict(r, f)
        r["fitted_err_pct"] = pct(r["fitted_ms"], r["ms"])
        r["assumed_err_pct"] = pct(r["assumed_ms"], r["ms"])
        others = [o for o in rows if o is not r and o["dtype"] == r["dtype"]]
        r["loo_ms"] = predict(r, fit([o for o in rows if o is not r])) if others else None
        r["loo_err_pct"] = pct(r["loo_ms"], r["ms"]) if r["loo_ms"] is not None else None

    def med(vals):
        vals = [abs(v) for v in vals if v is not None]
        return float(np.median(vals)) if vals else None

    # the same fit on the emulated busiest-thread path instead (not what darkc uses; shown for comparison)
    fb = fit(fit_rows, "busiest_assumed_ms")
    for r in rows:
        r["busiest_fitted_err_pct"] = pct(predict(r, fb, "busiest_assumed_ms"), r["ms"])
    return {"fit": f, "n_fit": len(fit_rows), "n_held_out": len(held),
            "busiest_thread_model": {"fit": fb, "held_out_median_abs_pct": med(r["busiest_fitted_err_pct"]
                                                                                for r in held)},
            "median_abs_pct": {"held_out_fitted": med(r["fitted_err_pct"] for r in held),
                               "fit_set_fitted": med(r["fitted_err_pct"] for r in fit_rows),
                               "leave_one_out": med(r["loo_err_pct"] for r in rows),
                               "assumed_ipc_all": med(r["assumed_err_pct"] for r in rows)},
            "by_dtype_held_out": {d: med(r["fitted_err_pct"] for r in held if r["dtype"] == d)
                                  for d in sorted({r["dtype"] for r in rows})},
            "by_device_held_out": {d: med(r["fitted_err_pct"] for r in held if r["device"] == d)
                                   for d in sorted({r["device"] for r in rows})},
            "rows": rows}


def markdown(data: dict, ev: dict, counts: dict[str, dict]) -> str:
    m = ev["median_abs_pct"]
    f = ev["fit"]
    lines = ["# darkc's ARM latency estimator vs published phone latencies", "",
             "Made by `python3 benchmarks/validate_estimator.py all` (models built here, guest instructions counted "
             "under QEMU user-mode, 4 threads, -cpu " + QEMU_CPU_PROFILE.replace("cortex-", "cortex-") + "; "
             "published figures and their sources in benchmarks/data/published_phone_latency.json). Every "
             "estimate below is an estimate; every published figure is a measurement by its source.", "",
             "## Summary", "",
             f"- Held-out median absolute error (fitted estimator, {ev['n_held_out']} figures not used in the fit): "
             f"**{m['held_out_fitted']:.1f} %**",
             f"- Fit set ({ev['n_fit']} figures: MobileNet v1 widths {', '.join(map(str, FIT_WIDTHS))}): "
             f"{m['fit_set_fitted']:.1f} %; leave-one-out over all {len(ev['rows'])}: {m['leave_one_out']:.1f} %",
             f"- With darkc's assumed IPC and no fit: {m['assumed_ipc_all']:.1f} % over all figures",
             "- Fitted: IPC x " + ", ".join(f"{v:.3f} ({d})" for d, v in f["ipc_scale"].items() if v) +
             f"; synchronisation {f['sync_us']:.1f} us per thread-pool region; DRAM term {f['dram_scale']:.2f} x "
             f"(graph tensor bytes / published DRAM bandwidth)",
             "- Held-out error by dtype: " + ", ".join(f"{d} {v:.1f} %" for d, v in ev["by_dtype_held_out"].items()
                                                         if v is not None),
             "- Held-out error by device: " + ", ".join(f"{d} {v:.1f} %" for d, v in ev["by_device_held_out"].items()
                                                          if v is not None) +
             " (the fit set is Pixel 3 only: the Cortex-A76 cluster's speed relative to the A75's comes from the "
             "assumed IPC and published clocks alone, and the published Pixel 3 -> Pixel 4 speed-up, 1.7x fp32 and "
             "2.7x int8, is larger than that model's)",
             f"- For comparison, the same fit on the emulated busiest thread per region (what this host's "
             f"scheduling of the 4 guest threads produced): held-out "
             f"{ev['busiest_thread_model']['held_out_median_abs_pct']:.1f} %", "",
             "## Per figure", "",
             "| model | device (cluster) | threads | published ms | source | assumed-IPC est. ms | err % | "
             "fitted est. ms | err % | set | critical path / total instr (serial share) | regions |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(ev["rows"], key=lambda r: (r["fit_set"], r["dtype"], r["model"], r["width"], r["size"])):
        src = data["sources"][r["source"]]
        lines.append(f"| {r['key']} | {r['device']} ({r['cluster']}) | {r['threads']} | {r['ms']} | "
                     f"[{r['source']}]({src['url']}) {r['row']} | {r['assumed_ms']:.2f} | {r['assumed_err_pct']:+.0f} | "
                     f"{r['fitted_ms']:.2f} | {r['fitted_err_pct']:+.0f} | {'fit' if r['fit_set'] else 'held out'} | "
                     f"{r['critical_path'] / 1e6:.1f} M / {r['instructions'] / 1e6:.1f} M "
                     f"({r['serial_share'] * 100:.0f} %) | {r['regions']:.0f} |")
    done = {(r["key"], r["device"]) for r in ev["rows"]}
    missing = [f"{model_key(f)} on {f['device']}" for f in data["figures"] if (model_key(f), f["device"]) not in done]
    if missing:
        lines += ["", f"Published figures not estimated in this run (no count: MobileNet v2 needs torchvision, not "
                      f"installed here; the others were left for time on this loaded host): {', '.join(missing)}."]
    lines += ["", "## How", "",
              "- Models: PyTorch definitions (MobileNet v1 as TF-slim builds it, 1001 classes; torchvision's "
              "MobileNet v2 features), random weights, converted by darkc's litert-torch path "
              "(`darkc.export.tflite.torch_to_tflite`, NHWC); quantised ones by darkc's ai-edge-quantizer path "
              "(`quantize_int8`, int8 weights per channel, int8 activations, int8 I/O). The published quantised "
              "models are TF1 quantisation-aware uint8 graphs: same layers, other integer kernels.",
              "- Runtime: LiteRT (ai-edge-litert, aarch64) with its default XNNPACK delegate, 4 threads. The "
              "published figures are TFLite `benchmark_model` runs from the Android 10 era, whose CPU kernels "
              "predate XNNPACK as TFLite's default: the fitted IPC correction absorbs that difference too.",
              "- Counting: darkc's QEMU plugin counts every thread's instructions per inference, split into serial "
              "work (the calling thread outside `pthreadpool_parallelize`) and parallel work (all threads inside "
              "it); the pool's spin-wait before it sleeps (at most 1000 iterations per wait) counts as work. "
              "Under emulation the 4 guest threads share this host's 2 loaded cores, so how XNNPACK's work "
              "stealing split each region between them follows the host's scheduling (a late-waking worker "
              "leaves its tiles to the others): the per-region busiest thread, summed, is kept in the json "
              "(`busiest_path`) but not used.",
              "- Time: darkc.latency.cluster.cluster_ms: serial / fastest core + parallel / sum of the cores' "
              "speeds (speed = IPC x clock), + sync x regions + DRAM multiplier x tensor bytes / bandwidth.",
              "- Fit: non-negative least squares on relative error over the fit set; parameters: IPC correction "
              "per dtype, sync cost per region and a DRAM-traffic multiplier (graph tensor bytes / the device's "
              "published DRAM bandwidth), shared by both dtypes.", "",
              "## Sources", ""]
    for k, src in data["sources"].items():
        lines.append(f"- **{k}**: {src['url']} (rendered at {src['page']}): {src['what']}")
    for k, dev in data["devices"].items():
        lines.append(f"- **{k}**: {dev['soc']}, cluster `{dev['cluster']}`: {dev['cluster_note']}")
    return "\n".join(lines) + "\n"


def write_report(data: dict, counts_file: Path, out_dir: Path) -> dict:
    from darkc.errors import atomic_path
    from darkc.latency.validation import VALIDATION_FILE

    counts = {}
    for line in counts_file.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            counts[r["key"]] = r
    rows = base_estimates(data, counts)
    if not any(r["fit_set"] for r in rows) or all(r["fit_set"] for r in rows):
        raise SystemExit(f"error: {counts_file} has counts for {len(rows)} published figures; the fit and held-out "
                         f"sets both need some: run the count step first")
    ev = evaluate(rows)
    if None in ev["fit"]["ipc_scale"].values():
        raise SystemExit(f"error: the fit left a dtype without compute time ({ev['fit']}); count more models")
    m = ev["median_abs_pct"]["held_out_fitted"]
    held = [r for r in ev["rows"] if not r["fit_set"]]
    worst = max(held, key=lambda r: abs(r["fitted_err_pct"]))
    band = {"median_abs_pct": m, "n": ev["n_held_out"], "max_abs_pct": abs(worst["fitted_err_pct"]),
            "worst": f"{worst['key']} on {worst['device']}",
            "text": f"median abs error vs published, {ev['n_held_out']} held-out phone figures",
            "validated_on": "MobileNet v1/v2 fp32 and int8, TFLite CPU 4 threads, Pixel 3 (4x Cortex-A75) and "
                            "Pixel 4 (Cortex-A76 cluster)",
            "report": "benchmarks/results/estimator_validation.md"}
    record = {"fit": ev["fit"], "band": band, "summary": ev["median_abs_pct"], "by_dtype_held_out":
              ev["by_dtype_held_out"], "n_fit": ev["n_fit"], "rows": ev["rows"], "counts": counts,
              "command": "python3 benchmarks/validate_estimator.py all", "qemu_cpu_profile": QEMU_CPU_PROFILE}
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / "estimator_validation.json") as tmp:
        Path(tmp).write_text(json.dumps(record, indent=1) + "\n")
    with atomic_path(out_dir / "estimator_validation.md") as tmp:
        Path(tmp).write_text(markdown(data, ev, counts))
    with atomic_path(VALIDATION_FILE) as tmp:
        Path(tmp).write_text(json.dumps({"fit": ev["fit"], "band": band,
                                         "source": "benchmarks/validate_estimator.py"}, indent=1) + "\n")
    print(f"held-out median abs error {m:.1f} % ({ev['n_held_out']} figures); wrote "
          f"{out_dir / 'estimator_validation.md'} (.json) and {VALIDATION_FILE}")
    return record


# ---------------------------------------------------------------- the shipped student on clusters
def step_multicore(out_prefix: Path, models: list[str], arm_size: str = "128x128") -> None:
    """``darkc bench`` of shipped INT8 students (1920x1080 raw, LiteRT) on a 4 x Cortex-A78 cluster with 1, 2
    and 4 threads and on a Cortex-X3 + 2 x A715 cluster with 3, using the fitted estimator and its error band: each
    model full-integer with int8 I/O, and a raw-output model also as `darkc quantize` makes it by default (float
    I/O, ``--float-layers auto``: its full-resolution layers float). ``arm_size``: the raw size QEMU counts at (the
    count is scaled by pixels to the frame, per-operator fixed costs included, so a small size overstates a small
    model; the validation counted its models unscaled)."""
    from darkc.latency import bench, write_report
    from darkc.latency.artifact import export_cached
    from darkc.models import read_spec
    from darkc.models.pretrained import pretrained_dir

    results = []
    for name in models:
        files = [("int8", "int8")]
        if read_spec(pretrained_dir(name)).get("output") == "raw":
            files.append(("int8 default (float I/O, full-res float)", "float"))
        for label, io in files:
            path, _ = export_cached(pretrained_dir(name), "tflite", "int8", "1088x1920", "the multi-core estimate",
                                    io=io)
            for device, threads in (("cortex-a78x4", "1,2,4"), ("cortex-x3+a715x2", "3")):
                res = bench(str(path), devices=device, size="1920x1080", threads=threads, arm_size=arm_size,
                            parity=False)
                res["model"] = f"{name} {label}"
                results.append(res)
                d = res["devices"][device]
                print(f"{name} {label} {device}: "
                      + ", ".join(f"{t} thr {v['latency_ms']:.1f} ms" for t, v in d["by_threads"].items()), flush=True)
    paths = write_report(results, out_prefix, title="Shipped INT8 students on phone CPU clusters (estimated)")
    print(f"wrote {paths['md']}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("step", choices=["build", "count", "report", "all", "multicore"])
    p.add_argument("--models", default="student", help="multicore: shipped names, comma-separated")
    p.add_argument("--arm-size", default="128x128", help="multicore: raw WxH QEMU counts at")
    p.add_argument("--out", default=None, help="multicore: report prefix (default: "
                   "benchmarks/results/latency/multicore)")
    p.add_argument("--only", default=None, help="comma-separated model keys (default: all published models)")
    p.add_argument("--wait", action="store_true", help="count: wait for models a concurrent build is writing")
    a = p.parse_args(argv)
    data = load_data()
    figs = {}
    for fig in data["figures"]:
        figs.setdefault(model_key(fig), fig)
    # the validation's core first (every width at 224 and one smaller size per dtype), then the rest
    core = {(0.25, 128), (0.25, 224), (0.5, 224), (0.75, 224), (1.0, 128), (1.0, 224)}
    keys = sorted(figs, key=lambda k: ((figs[k]["width"], figs[k]["size"]) not in core,
                                       figs[k]["size"] ** 2 * figs[k]["width"], k))
    if a.only:
        keys = [k for k in keys if k in a.only.split(",")]
    if a.step in ("build", "all"):
        step_build(keys, figs)
    if a.step in ("count", "all"):
        step_count(keys, figs, 4, wait=a.wait)
    if a.step in ("report", "all"):
        write_report(data, WORK / "counts.jsonl", RESULTS)
    if a.step == "multicore":
        step_multicore(Path(a.out) if a.out else RESULTS / "latency" / "multicore",
                       [m for m in a.models.split(",") if m], a.arm_size)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Latency budgets in ``darkc prune``: a model pruned to ``--target-ms`` on an emulated ARM cluster, the search's
cost model's prediction vs the real estimate.

    python benchmarks/prune_target_ms.py --model student --device cortex-a78x4 --targets 33,180 --scope global \
        --out benchmarks/results/prune_target_ms

For each target T: ``darkc prune --model MODEL --target-ms T@DEVICE --scope S --no-eval --latency-size none`` (INT8
LiteRT, 1920x1080 raw frame, one thread per core). Records either its refusal (the one-line error: an unreachable
budget names the unpruned and floor-width estimates) or the estimator runs that calibrated the cost model, each
search's predicted vs estimated ms, the result's predicted vs estimated ms beside the estimator's error band, the
widths, the conv MACs and the wall time. All latencies are estimates (QEMU instruction counts, see
``darkc.latency.bench``), none is measured on a phone. Writes ``OUT.md`` and ``OUT.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="student")
    ap.add_argument("--device", default="cortex-a78x4")
    ap.add_argument("--targets", default="33,180", help="ms per 1920x1080 raw frame, comma-separated")
    ap.add_argument("--scope", default="global")
    ap.add_argument("--precision", default="int8")
    ap.add_argument("--work", default=None)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)

    from darkc.compress.prune import prune
    from darkc.errors import DarkcError, atomic_path
    from darkc.provenance import portable

    out = Path(args.out)
    work = Path(args.work) if args.work else Path("/tmp") / (out.name + "-runs")
    rows = []
    for t in [float(v) for v in args.targets.split(",")]:
        spec = f"{t:g}@{args.device}"
        command = (f"darkc prune --model {args.model} --target-ms {spec} --target-precision {args.precision} "
                   f"--scope {args.scope} --no-eval --latency-size none -o OUT")
        t0 = time.time()
        try:
            rep = prune(args.model, work / f"{t:g}ms", target_ms=spec, target_precision=args.precision,
                        scope=args.scope, evaluate=False, latency_size=None, progress=sys.stderr.isatty())
        except DarkcError as exc:
            rows.append({"target_ms": t, "command": command, "refused": str(exc), "wall_s": time.time() - t0})
            print(f"{spec}: refused: {exc}", file=sys.stderr)
            continue
        lat = rep["budget"]["latency"]
        res = lat["result"]
        rows.append({"target_ms": t, "command": command, "refused": None, "wall_s": time.time() - t0,
                     "ratio": rep["options"]["ratio"], "widths": rep["channels"]["after"],
                     "macs_1920x1080": {"before": rep["before"]["macs"]["1920x1080"],
                                        "after": rep["after"]["macs"]["1920x1080"]},
                     "calibration": lat["calibration"],
                     "rounds": [{k: v for k, v in r.items() if k != "trials"} for r in lat["rounds"]],
                     "fit": lat["fit_text"], "predicted_ms": res["predicted_ms"], "estimated_ms": res["estimated_ms"],
                     "difference_pct": res["difference_pct"], "agrees": res["agrees"],
                     "error_band": res["error_band_text"], "method": res["method"], "runtime": res["runtime"],
                     "cores": res["cores"], "threads": res["threads"], "estimator_runs": res["estimator_runs"],
                     "within_tolerance": rep["budget"]["within_tolerance"]})
        print(f"{spec}: estimated {res['estimated_ms']:.1f} ms, predicted {res['predicted_ms']:.1f} ms", file=sys.stderr)

    record = {"model": args.model, "device": args.device, "precision": args.precision, "scope": args.scope,
              "resolution": "1920x1080", "rows": rows,
              "host": {"cpu": cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(),
                       "note": "the host runs the exports and QEMU; it sets wall_s, not the estimates"},
              "command": "python benchmarks/prune_target_ms.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    with atomic_path(out.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(portable(record), indent=1) + "\n")
    with atomic_path(out.with_suffix(".md")) as tmp:
        tmp.write_text(markdown(record))
    print(markdown(record))
    return 0


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").is_file() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def markdown(record: dict) -> str:
    lines = [f"# `darkc prune --target-ms` on the shipped {record['model']}: {record['device']}, "
             f"{record['precision']}, {record['resolution']} raw", "",
             "Every latency here is estimated (darkc's ARM estimator: guest instructions counted under QEMU at packed "
             "64x64, scaled by pixels, on the named cluster with the validation's fitted IPC and DRAM terms), not "
             "measured on a phone. 'predicted' is the search's cost model, calibrated on the estimator runs listed.",
             "", f"Command: `{record['command']}` (wall times on {record['host']['cpu']}, "
             f"{record['host']['cores']} cores, shared)", ""]
    for r in record["rows"]:
        lines += [f"## {r['target_ms']:g} ms", "", f"`{r['command']}` ({r['wall_s']:.0f} s)", ""]
        if r["refused"]:
            lines += [f"Refused: {r['refused']}", ""]
            continue
        lines += [f"- result: ratio {r['ratio']:.4f}, conv MACs {r['macs_1920x1080']['before'] / 1e9:.2f}G -> "
                  f"{r['macs_1920x1080']['after'] / 1e9:.2f}G per frame; estimated **{r['estimated_ms']:.1f} ms**, "
                  f"predicted {r['predicted_ms']:.1f} ms ({r['difference_pct']:+.1f} %, "
                  f"{'within' if r['agrees'] else 'OUTSIDE'} the error band {r['error_band']})",
                  f"- {r['cores']}, {r['threads']} threads, {r['runtime']}; {r['estimator_runs']} estimator runs",
                  f"- cost model: {r['fit']}", "",
                  "| estimator run | ratio | GMACs @1920x1080 | predicted ms | estimated ms |", "|---|---|---|---|---|"]
        lines += [f"| calibration ({p['role']}) | {p['ratio']:.4f} | {p['macs'] / 1e9:.2f} | - | "
                  f"{p['estimated_ms']:.1f} |" for p in r["calibration"][:2]]
        lines += [f"| search {i + 1} | {q['ratio']:.4f} | - | {q['predicted_ms']:.1f} | {q['estimated_ms']:.1f} |"
                  for i, q in enumerate(r["rounds"])]
        lines += ["", f"Widths: {', '.join(f'{k} {v}' for k, v in r['widths'].items())}", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

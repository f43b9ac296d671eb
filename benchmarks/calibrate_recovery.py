"""darkc calibrate on synthetic shoots of known profiles: how close the fitted profile comes to the truth.

    python benchmarks/calibrate_recovery.py [--out benchmarks/results/calibrate_recovery]

writes <out>.md and <out>.json. For each built-in profile (Bayer and X-Trans) and seed, a calibration
shoot (darkc.data.calibration_frames.write_shoot: 2 dark frames and flat pairs at 5 %, 20 % and 50 % of
the raw range per ISO, 516x768 DNGs, ISO 100/400/1200 -> K = K_min x ISO / 100) goes through
``darkc.calibrate.calibrate``. Errors are ``fitted / truth - 1``: the measured gain per ISO, and the read
and row sigma of the fitted log-linear model at each ISO's true K.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from darkc.calibrate import calibrate
from darkc.data.calibration_frames import iso_gain, write_shoot
from darkc.data.profiles import PROFILES
from darkc.errors import atomic_path

ISOS = (100, 400, 1200)
SIZE = (516, 768)


def run(seeds=(0, 1, 2)) -> dict:
    rows = []
    t0 = time.time()
    for name, truth in PROFILES.items():
        for seed in seeds:
            with tempfile.TemporaryDirectory() as tmp:
                write_shoot(tmp, truth, ISOS, size=SIZE, seed=seed)
                fitted, record = calibrate([tmp], progress=False)
            for r in record["per_iso"]:
                k = iso_gain(truth, r["iso"])
                rows.append({"profile": name, "seed": seed, "iso": r["iso"], "K": k,
                             "gain_error": r["gain"] / k - 1,
                             "read_error": fitted.read_sigma(k) / truth.read_sigma(k) - 1,
                             "row_error": fitted.row_sigma(k) / truth.row_sigma(k) - 1,
                             "black": [fitted.black, truth.black]})
    return {"rows": rows, "seconds": time.time() - t0, "isos": ISOS, "size": SIZE, "seeds": list(seeds),
            "machine": f"{platform.machine()}, CPython {platform.python_version()}"}


def to_markdown(res: dict) -> str:
    lines = ["# darkc calibrate: recovery of known profiles", "",
             "Command: `python benchmarks/calibrate_recovery.py`. Synthetic shoots "
             f"({SIZE[1]}x{SIZE[0]} DNGs, ISO {'/'.join(map(str, ISOS))}, 2 dark frames + 3 flat pairs per ISO, "
             f"seeds {', '.join(map(str, res['seeds']))}) through `darkc.calibrate.calibrate`; errors "
             "`fitted / truth - 1`, max |error| over seeds (mean signed error in brackets). Gain: measured per ISO; "
             "read/row: the fitted log-linear model at that ISO's true K. Target: gain within 5 %, read within 10 %.", "",
             "| profile | ISO | K (DN/e-) | gain error | read error | row error |", "|---|---|---|---|---|---|"]
    groups: dict[tuple, list] = {}
    for r in res["rows"]:
        groups.setdefault((r["profile"], r["iso"]), []).append(r)
    pct = lambda rs, key: (f"{100 * max(abs(r[key]) for r in rs):.2f} % "  # noqa: E731
                           f"({100 * np.mean([r[key] for r in rs]):+.2f})")
    for (name, iso), rs in groups.items():
        lines.append(f"| {name} | {iso} | {rs[0]['K']:.2f} | {pct(rs, 'gain_error')} | {pct(rs, 'read_error')} | "
                     f"{pct(rs, 'row_error')} |")
    worst = {k: max(abs(r[k]) for r in res["rows"]) for k in ("gain_error", "read_error", "row_error")}
    lines += ["", f"Worst over all: gain {100 * worst['gain_error']:.2f} %, read {100 * worst['read_error']:.2f} %, "
              f"row {100 * worst['row_error']:.2f} %. Black level recovered exactly in "
              f"{sum(r['black'][0] == r['black'][1] for r in res['rows'])}/{len(res['rows'])} rows.",
              f"Ran on {res['machine']} in {res['seconds']:.0f} s (CPU)."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="benchmarks/results/calibrate_recovery")
    args = ap.parse_args(argv)
    res = run()
    out = Path(args.out)
    with atomic_path(out.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(res, indent=1))
    with atomic_path(out.with_suffix(".md")) as tmp:
        tmp.write_text(to_markdown(res))
    print(to_markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())

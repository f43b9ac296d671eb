"""Error of the noise estimator (darkc.data.noise_estimate) on synthetic frames with known noise.

    python benchmarks/noise_estimate.py [--out benchmarks/results/noise_estimate]

writes <out>.md and <out>.json. Each frame is one short exposure made like ``make_pair`` makes them
(unprocessed clean image, CFA mosaic, 1/ratio of the light, darkc.data.noise.expose) but with the
system gain K and the read/row sigmas chosen here, so the truth is known exactly:

    gain = K / (white - black),  read = sqrt(sigma_read^2 + sigma_row^2 + 1/12) / (white - black)

Grid: Bayer (14-bit levels of sony-a7s2-like, and the same sensor at 12-bit levels) and X-Trans
(fuji-xt2-like); K over the profile's range; ratios 100 and 300; the reference set's 8 held-out scenes (4 photos,
4 dead-leaves images). A frame the estimator refuses (too few flat blocks) is counted apart.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from darkc.data import cfa as cfa_mod
from darkc.data.noise import expose, sample_sigmas
from darkc.data.noise_estimate import estimate_noise
from darkc.data.profiles import get_profile
from darkc.data.sources import validation_images
from darkc.data.synth import DEFAULT_SIZE, fit_size
from darkc.data.unprocess import sample_params, unprocess
from darkc.errors import DarkcError, atomic_path

GAINS = (0.8, 2.0, 5.0, 12.0)      # K, DN per electron at 14 bit (divided by 4 for the 12-bit sensor)
RATIOS = (100, 300)


def sensors():
    sony = get_profile("sony-a7s2-like")
    sony12 = dataclasses.replace(sony, name="sony-a7s2-like@12bit", bit_depth=12, black=128, white=4095)
    return [(sony, 1.0), (sony12, 0.25), (get_profile("fuji-xt2-like"), 1.0)]


def run(limit: int | None = None, progress: bool = True) -> dict:
    rows = []
    images = validation_images()[:limit] if limit else validation_images()
    jobs = [(p, s, im, i) for p, s in sensors() for i, im in enumerate(images)]
    t0 = time.time()
    for prof, scale, im, i in tqdm(jobs, desc="noise estimate", unit="scene", disable=not progress):
        span = float(prof.white - prof.black)
        clean = fit_size(im.load(), DEFAULT_SIZE[prof.cfa], prof.cfa)
        rng = np.random.default_rng([7, i])
        signal = cfa_mod.mosaic(unprocess(clean, sample_params(rng, prof)), prof.cfa) * span
        for k14 in GAINS:
            k = k14 * scale
            for ratio in RATIOS:
                sig_read, sig_row = (s * scale for s in sample_sigmas(rng, k14, prof))
                raw = expose(signal / ratio, k, prof, rng, sigmas=(sig_read, sig_row))
                truth = {"gain": k / span, "read": float(np.sqrt(sig_read ** 2 + sig_row ** 2 + 1 / 12) / span),
                         "row": sig_row / span}
                row = {"sensor": prof.name, "cfa": prof.cfa, "scene": im.name, "K": k, "ratio": ratio,
                       "truth": truth}
                try:
                    est = estimate_noise(raw, prof.cfa, prof.black, prof.white)
                except DarkcError as exc:
                    row["refused"] = str(exc)
                else:
                    row["estimate"] = {"gain": est.gain, "read": est.read, "row": est.row}
                    row["error"] = {key: getattr(est, key) / truth[key] - 1.0 for key in ("gain", "read", "row")}
                rows.append(row)
    return {"rows": rows, "summary": summarise(rows), "seconds": time.time() - t0,
            "grid": {"gains_14bit": GAINS, "ratios": RATIOS, "scenes": [im.name for im in images],
                     "sensors": [p.name for p, _ in sensors()]},
            "machine": f"{platform.machine()}, {platform.python_implementation()} {platform.python_version()}"}


def _stats(errs: list[float]) -> dict:
    a = np.abs(np.asarray(errs))
    return {"median_abs": float(np.median(a)), "p90_abs": float(np.quantile(a, 0.9)), "max_abs": float(a.max()),
            "mean_signed": float(np.mean(errs))}


def summarise(rows: list[dict]) -> dict:
    keys = [lambda r: r["sensor"], lambda r: f"x{r['ratio']}",
            lambda r: "dead-leaves" if r["scene"].startswith("dead-leaves") else "photos",
            lambda r: f"K {r['K']:g}"]
    groups: dict[str, list] = {"all": rows}
    for key in keys:
        for r in rows:
            groups.setdefault(key(r), []).append(r)
    out = {}
    for name, rs in groups.items():
        ok = [r for r in rs if "error" in r]
        out[name] = {"frames": len(rs), "refused": len(rs) - len(ok)}
        if ok:
            out[name].update({key: _stats([r["error"][key] for r in ok]) for key in ("gain", "read", "row")})
    return out


def to_markdown(res: dict) -> str:
    lines = ["# Noise estimation from the frame itself: error on synthetic frames with known noise", "",
             "Command: `python benchmarks/noise_estimate.py`. Estimator: `darkc.data.noise_estimate.estimate_noise` "
             "(per-colour sub-lattices, flat 16x16 blocks by a two-scale second-difference test, "
             "variance-vs-mean fit). Relative errors `estimate / truth - 1`; |error| median / 90th percentile / max; "
             "mean signed error shows bias.", "",
             f"Frames: short exposures of {len(res['grid']['scenes'])} held-out scenes x sensors "
             f"{', '.join(res['grid']['sensors'])} x K {', '.join(f'{g:g}' for g in res['grid']['gains_14bit'])} "
             f"DN/e- (at 14 bit) x ratios {', '.join(map(str, res['grid']['ratios']))}. "
             f"`read` is the total signal-independent sigma (read + row + quantisation).", "",
             "| group | frames | refused | gain: med / p90 / max (bias) | read: med / p90 / max (bias) | "
             "row: med / p90 (bias) |", "|---|---|---|---|---|---|"]
    fmt = lambda s: f"{100 * s['median_abs']:.1f} / {100 * s['p90_abs']:.1f} / {100 * s['max_abs']:.1f} % ({100 * s['mean_signed']:+.1f})"  # noqa: E731
    for name, s in res["summary"].items():
        if "gain" not in s:
            lines.append(f"| {name} | {s['frames']} | {s['refused']} | - | - | - |")
            continue
        row = s["row"]
        lines.append(f"| {name} | {s['frames']} | {s['refused']} | {fmt(s['gain'])} | {fmt(s['read'])} | "
                     f"{100 * row['median_abs']:.1f} / {100 * row['p90_abs']:.1f} % ({100 * row['mean_signed']:+.1f}) |")
    lines += ["", f"Ran on {res['machine']} in {res['seconds']:.0f} s (CPU). Per-frame rows in the .json."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="benchmarks/results/noise_estimate")
    ap.add_argument("--limit", type=int, default=None, help="first N scenes only")
    args = ap.parse_args(argv)
    res = run(args.limit)
    out = Path(args.out)
    with atomic_path(out.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(res, indent=1))
    with atomic_path(out.with_suffix(".md")) as tmp:
        tmp.write_text(to_markdown(res))
    print(to_markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Why a model scores lower on the held-out sensor: its colour and levels, or its noise?

    python benchmarks/ood_decompose.py --model teacher-raw --model teacher --out benchmarks/results/ood_decompose

The out-of-distribution set (`darkc eval --data ood`) changes two things at once against the reference set: the
sensor's colour (colour matrix, white-balance range) and levels (black, white), and its noise (system gain, read
and row noise: above every training sensor). This script writes two hybrid sets on the same photos, size and seeds
and scores each model and LibRaw + NLM on all four:

- reference: `sony-a7s2-like` (the reference validation set itself);
- held-out colour, reference noise: the held-out sensor's matrix, levels and white balance, with the reference
  sensor's noise expressed in the held-out sensor's DN (gain and read/row sigma scaled by the ratio of the spans
  white - black, so that the noise relative to full scale is the reference's at every normalised signal);
- reference colour, held-out noise: the reference sensor with the held-out sensor's normalised noise;
- held-out: `canon-5d2-ood` (`darkc eval --data ood`).

A model that generalises across cameras loses little on the colour set; what it loses on the noise set is shared
with any denoiser (LibRaw + NLM loses it too). Writes <out>.md/.json.
"""
from __future__ import annotations

import argparse
import math
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from darkc.data.camera_profile import CameraProfile
from darkc.data.profiles import OOD_PROFILE, get_profile
from darkc.data.reference import REFERENCE_SEED, REFERENCE_SIZE
from darkc.data.sources import validation_images
from darkc.data.synth import write_dataset
from darkc.errors import DarkcError
from darkc.evaluate import evaluate
from darkc.provenance import portable, write_records

BASELINE = "libraw+nlm"


def with_noise_of(target: CameraProfile, noise: CameraProfile, name: str) -> CameraProfile:
    """``target`` (matrix, levels, white balance) with the noise of ``noise`` relative to full scale: for c =
    span(target) / span(noise), gain K' = c K and sigma'(K') = c sigma(K' / c), i.e. log sigma' = a log K' + b +
    (1 - a) log c for the read and the row noise."""
    c = target.span / noise.span
    shift = lambda a: (1.0 - a) * math.log(c)  # noqa: E731
    return replace(target, name=name, gain_range=(noise.gain_range[0] * c, noise.gain_range[1] * c),
                   a_read=noise.a_read, b_read=noise.b_read + shift(noise.a_read),
                   a_row=noise.a_row, b_row=noise.b_row + shift(noise.a_row), sigma_log=noise.sigma_log)


def sets(cfa: str = "bayer") -> dict[str, CameraProfile | str]:
    """Set name -> the data `darkc eval` takes (a reference name) or the profile to synthesise it with."""
    ref, ood = get_profile(None, cfa), get_profile(OOD_PROFILE[cfa], cfa)
    return {"reference": "synthetic",
            "held-out colour, reference noise": with_noise_of(ood, ref, f"{ood.name}+noise-of-{ref.name}"),
            "reference colour, held-out noise": with_noise_of(ref, ood, f"{ref.name}+noise-of-{ood.name}"),
            "held-out": "ood"}


def _row(r: dict) -> dict:
    keep = ("psnr", "ssim", "deltae", "checker")
    return {**{k: r.get(k) for k in keep}, "per_ratio": {k: {m: v.get(m) for m in keep}
                                                         for k, v in r.get("per_ratio", {}).items()}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", action="append", help="shipped name or artifact dir; repeatable (default: teacher-raw)")
    p.add_argument("--out", default="benchmarks/results/ood_decompose")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    models = a.model or ["teacher-raw"]
    t0 = time.monotonic()
    scores: dict[str, dict] = {m: {} for m in models + [BASELINE]}
    profiles = {}
    with tempfile.TemporaryDirectory(prefix="darkc-ood-decompose-") as tmp:
        for name, data in sets().items():
            if isinstance(data, CameraProfile):
                profiles[name] = {k: getattr(data, k) for k in ("name", "black", "white", "gain_range", "a_read",
                                                                "b_read", "a_row", "b_row", "red_gain", "blue_gain")}
                folder = Path(tmp) / data.name
                write_dataset(folder, validation_images(), data, seed=REFERENCE_SEED,
                              size=REFERENCE_SIZE[data.cfa], split="test", progress=False)
                data = str(folder)
            for i, model in enumerate(models):
                try:
                    r = evaluate(model, data, baselines=i == 0, threads=a.threads, progress=False)
                except DarkcError as exc:
                    print(f"error: {exc}", file=sys.stderr)
                    return 1
                scores[model][name] = _row(r)
                if i == 0:
                    scores[BASELINE][name] = _row(r["baselines"][BASELINE])
                print(f"{name}: {model} {r['psnr']:.2f} dB", file=sys.stderr, flush=True)
    command = "python benchmarks/ood_decompose.py " + " ".join(argv if argv is not None else sys.argv[1:])
    data = {"command": command, "sets": list(sets()), "hybrid_profiles": profiles, "scores": scores,
            "host": f"{platform.machine()} CPU, {a.threads} torch threads", "wall_s": time.monotonic() - t0}
    write_records(a.out, data, markdown(portable(data)))
    print(f"wrote {a.out}.md/.json in {data['wall_s']:.0f} s", file=sys.stderr)
    return 0


def markdown(data: dict) -> str:
    names = data["sets"]
    lines = ["# The held-out sensor's drop, split into colour/levels and noise", "",
             f"Command: `{data['command']}` ({data['host']}, {data['wall_s']:.0f} s).", "",
             "Same 8 photos, size (768 px) and seeds as the reference set; 24 pairs per set (x100/x250/x300). Each "
             "cell: sRGB PSNR (drop from the reference set) / SSIM / CIEDE2000, means over the pairs; protocol of "
             "`darkc eval` (float sRGB [0, 1] vs the LibRaw-rendered long exposure rendered with each file's own "
             "white balance and matrix).", "",
             "| model | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for model, by_set in data["scores"].items():
        ref = by_set["reference"]["psnr"]
        cells = [f"{s['psnr']:.2f}" + (f" ({s['psnr'] - ref:+.2f})" if name != "reference" else "")
                 + f" / {s['ssim']:.3f} / {s['deltae']:.2f}" for name, s in by_set.items()]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    ratios = list(next(iter(data["scores"].values()))["reference"]["per_ratio"])
    lines += ["", "Per ratio, PSNR dB:", "", "| model | set | " + " | ".join(ratios) + " |",
              "|---|---|" + "---|" * len(ratios)]
    for model, by_set in data["scores"].items():
        for name, s in by_set.items():
            lines.append(f"| {model} | {name} | " + " | ".join(f"{v['psnr']:.2f}" for v in s["per_ratio"].values())
                         + " |")
    lines += ["", "Hybrid sensors (noise: log sigma = a log K + b, sigma in DN, K in DN per electron):", ""]
    for name, prof in data["hybrid_profiles"].items():
        lines.append(f"- {name}: `{prof['name']}`: levels {prof['black']}/{prof['white']}, gain "
                     f"{prof['gain_range'][0]:.3g}-{prof['gain_range'][1]:.3g}, read (a, b) = ({prof['a_read']:.2f}, "
                     f"{prof['b_read']:.3f}), row ({prof['a_row']:.2f}, {prof['b_row']:.3f}), WB red "
                     f"{prof['red_gain']}, blue {prof['blue_gain']}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())

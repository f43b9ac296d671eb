"""Raw-output students of the raw teacher: how far each distillation run is from its teacher, in sRGB and raw.

    python benchmarks/raw_student.py --run runs/rs-l1 --run runs/rs-isp-l1 --out benchmarks/results/raw_student

Each --run is a `darkc distill` run folder (its final artifact, or its best checkpoint while it trains). Every
student and the teacher are scored here, in one run, on the reference validation set and the out-of-distribution
set (`darkc eval --data synthetic|ood`: float sRGB in [0, 1] vs the LibRaw-rendered long exposure, SSIM 7x7
uniform, CIEDE2000, checker; raw PSNR of the packed output vs the long exposure). The plot draws each run's
validation raw PSNR over its steps (from its train_state.json) against the teacher's. Writes <out>.md/.json/.png.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from darkc.errors import DarkcError, atomic_path  # noqa: E402
from darkc.evaluate import evaluate  # noqa: E402
from darkc.provenance import portable, write_records  # noqa: E402

SETS = {"reference": "synthetic", "ood": "ood"}


def run_model(run: Path) -> tuple[Path, str]:
    """(artifact, what it is): the run's final student, else its best checkpoint so far."""
    if (run / "model.json").is_file():
        return run, "final"
    if (run / "best" / "model.json").is_file():
        return run / "best", "best so far (training not finished)"
    raise DarkcError(f"--run {run} holds no student (model.json or best/model.json); pass a darkc distill run folder")


def describe(run: Path) -> dict:
    """The run's steps done, options and validation history (train_state.json)."""
    state = json.loads((run / "train_state.json").read_text())
    history = [(h["step"], h["val"]["psnr"]) for h in state["history"] if "val" in h]
    wall = max((h.get("wall_s", 0.0) for h in state["history"]), default=0.0)
    return {"step": state["step"], "steps": state["config"]["steps"], "lr": state["config"]["lr"],
            "batch_size": state["config"]["batch_size"], "val_history": history, "wall_s": wall}


def score(model: str, threads: int) -> dict:
    out = {}
    for name, data in SETS.items():
        r = evaluate(model, data, threads=threads, progress=False)
        out[name] = {k: r.get(k) for k in ("psnr", "ssim", "deltae", "checker", "raw_psnr", "n")}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", action="append", required=True, help="a darkc distill run folder (repeat)")
    p.add_argument("--teacher", default="teacher-raw")
    p.add_argument("--out", default="benchmarks/results/raw_student")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    t0 = time.monotonic()
    try:
        runs = {}
        for r in map(Path, a.run):
            model, what = run_model(r)
            prov = json.loads((model / "model.json").read_text())["provenance"]
            runs[r.name] = {"model": str(model), "state": what, "raw_loss": prov.get("raw_loss"),
                            "command": prov.get("command"), **describe(r)}
    except (DarkcError, OSError, KeyError, json.JSONDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    teacher = score(a.teacher, a.threads)
    for name, r in runs.items():
        r["scores"] = score(r["model"], a.threads)
        print(f"{name}: reference {r['scores']['reference']['psnr']:.2f} dB, ood {r['scores']['ood']['psnr']:.2f} dB",
              file=sys.stderr, flush=True)
    command = "python benchmarks/raw_student.py " + " ".join(argv if argv is not None else sys.argv[1:])
    data = {"command": command, "teacher": a.teacher, "teacher_scores": teacher, "runs": runs,
            "host": f"{platform.machine()} CPU, {a.threads} torch threads", "wall_s": time.monotonic() - t0}
    # the runs' own commands may name absolute paths: the folder holding the runs is written RUN
    data = portable(data, run=os.path.commonpath([str(Path(r).resolve().parent) for r in a.run]))
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    plot(data, out.with_suffix(".png"))
    write_records(out, data, markdown(data, out.with_suffix(".png").name))
    print(f"wrote {out}.md/.json/.png in {data['wall_s']:.0f} s", file=sys.stderr)
    return 0


def _cells(s: dict, ref: dict | None) -> str:
    delta = f" ({s['psnr'] - ref['psnr']:+.2f})" if ref else ""
    return (f"{s['psnr']:.2f}{delta} / {s['ssim']:.3f} / {s['deltae']:.2f} / {s['checker']:.2f} / "
            f"{s['raw_psnr']:.2f}")


def markdown(data: dict, png: str) -> str:
    t = data["teacher_scores"]
    lines = [f"# Raw-output students of `{data['teacher']}`", "", f"Command: `{data['command']}` ({data['host']}, "
             f"{data['wall_s']:.0f} s).", "",
             "Each cell: sRGB PSNR (vs the teacher) / SSIM / CIEDE2000 / checker (levels of 255) / raw PSNR, means "
             "over the set's pairs; protocol of `darkc eval` (float sRGB [0, 1] vs the LibRaw-rendered long exposure; "
             "raw PSNR: the packed output vs the long exposure's packed raw).", "",
             "| model | raw loss | steps (batch, lr) | train wall | reference set | out-of-distribution set |",
             "|---|---|---|---|---|---|",
             f"| {data['teacher']} | | | | {_cells(t['reference'], None)} | {_cells(t['ood'], None)} |"]
    for name, r in data["runs"].items():
        s = r["scores"]
        lines.append(f"| {name} ({r['state']}) | {r['raw_loss']} | {r['step']}/{r['steps']} ({r['batch_size']}, "
                     f"{r['lr']:g}) | {r['wall_s'] / 60:.0f} min | {_cells(s['reference'], t['reference'])} | "
                     f"{_cells(s['ood'], t['ood'])} |")
    lines += ["", "Runs:"] + [f"- {name}: `{r['command']}`" for name, r in data["runs"].items()]
    lines += ["", f"![validation raw PSNR over steps]({png})", ""]
    return "\n".join(lines)


def plot(data: dict, png: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, r in data["runs"].items():
        if r["val_history"]:
            steps, psnrs = zip(*r["val_history"])
            ax.plot(steps, psnrs, marker="o", label=f"{name} ({r['raw_loss']}, lr {r['lr']:g})")
    ax.axhline(data["teacher_scores"]["reference"]["raw_psnr"], color="k", ls="--", label=data["teacher"])
    ax.set_xlabel("training step")
    ax.set_ylabel("raw PSNR, reference frames (dB)")
    ax.set_title("validation during distillation (packed raw vs long exposure)", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(png) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())

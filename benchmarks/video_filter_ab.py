"""Host cost of the default temporal filter before and after a change, in one run: ``fast-flow`` as another commit
had it (its darkc/video/temporal.py, read with ``git show``) and as this checkout has it, each timed per 1920x1080
frame interleaved with the INT8 student, pass by pass, so that all three see the same host load.

    python benchmarks/video_filter_ab.py --before 0f7bfd4 --out benchmarks/results/video

Why: the student's CPU time on this shared host moves with the other jobs (233 ms in one report run, 108-138 ms in
another), so ratios from two runs do not compare; the guest instruction counts on the emulated ARM cores do (they
are deterministic), and video_temporal.md gives them. Writes <out>/filter_ab.md and .json.
"""
from __future__ import annotations

import argparse
import json
import platform
import shlex
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

import cv2
import numpy as np

from darkc.errors import DarkcError, atomic_path
from darkc.latency.artifact import export_cached
from darkc.models.pretrained import pretrained_dir
from darkc.provenance import portable
from darkc.video import temporal
from darkc.video import kernels
from darkc.video.cost import as_filtered, stand_in_frames

ROOT = Path(__file__).resolve().parents[1]


def temporal_at(rev: str) -> types.ModuleType:
    """darkc/video/temporal.py as commit ``rev`` had it, as a module of the darkc.video package."""
    r = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:darkc/video/temporal.py"], capture_output=True,
                       text=True)
    if r.returncode != 0:
        raise DarkcError(f"git cannot show darkc/video/temporal.py at {rev!r} ({r.stderr.strip()[:120]}); pass a "
                         f"commit of this repository to --before")
    mod = types.ModuleType(f"darkc.video.temporal_{rev}")
    mod.__package__ = "darkc.video"
    exec(compile(r.stdout, f"{rev}:darkc/video/temporal.py", "exec"), mod.__dict__)
    return mod


def per_frame_ms(module, frames: np.ndarray) -> float:
    filt = module.make_filter("fast-flow")
    filt(frames[0])
    t = time.process_time()
    for x in frames[1:]:
        filt(x)
    return 1000 * (time.process_time() - t) / (len(frames) - 1)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True, help="commit whose fast-flow is the 'before'")
    ap.add_argument("--size", default="1920x1080", help="WxH of the filtered frames")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", default="benchmarks/results/video")
    args = ap.parse_args(argv)
    from ai_edge_litert.interpreter import Interpreter

    cv2.setNumThreads(1)
    w, h = (int(v) for v in args.size.lower().split("x"))
    frames = as_filtered("fast-flow", stand_in_frames(h, w))     # as darkc video hands them to the filter
    kernels.warm_up()                                            # this checkout's Numba passes compiled first
    before = temporal_at(args.before)
    rh, rw = -(-h // 32) * 32, -(-w // 32) * 32
    model, note = export_cached(pretrained_dir("student"), "tflite", "int8", f"{rh}x{rw}", "the video filter cost",
                                io="int8")
    it = Interpreter(model_path=str(model), num_threads=1)
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    it.set_tensor(inp["index"], np.zeros(inp["shape"], inp["dtype"]))
    it.invoke()
    runs = {"student": [], "before": [], "after": []}
    for _ in range(args.runs):
        t = time.process_time()
        it.invoke()
        runs["student"].append(1000 * (time.process_time() - t))
        runs["before"].append(per_frame_ms(before, frames))
        runs["after"].append(per_frame_ms(temporal, frames))
    med = {k: statistics.median(v) for k, v in runs.items()}
    data = {"before": args.before, "size": f"{w}x{h}", "runs": runs, "median_ms": med, "student_file": note,
            "host": {"machine": platform.machine(), "threads": 1, "opencv": cv2.__version__},
            "command": shlex.join(["python", "benchmarks/video_filter_ab.py", *(argv if argv is not None
                                                                                 else sys.argv[1:])]),
            "method": "process CPU time per frame, 1 thread; per pass: one LiteRT invoke of the student, then the "
                      "'before' filter over the stand-in frames, then the 'after' one; median over passes"}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "filter_ab.json") as tmp:
        tmp.write_text(json.dumps(portable(data), indent=1) + "\n")
    lines = ["# fast-flow before and after: host cost in one run", "",
             f"Command: `{data['command']}` ({data['host']['machine']}, 1 thread, OpenCV {cv2.__version__}; host "
             f"shared with other jobs).", "",
             f"Method: {data['method']}. Frames: darkc.video.cost.stand_in_frames at {w}x{h} (a textured scene "
             f"panning 2.5 px per frame, noise 0.03; 3 filtered after one that starts the filter), {frames.dtype} as "
             f"`darkc video` hands them to the filter (darkc.video.cost.as_filtered). Student: {note}.",
             "", "| | CPU ms per frame (median) | / INT8 student | passes |", "|---|---|---|---|",
             f"| INT8 student (LiteRT, raw {rw}x{rh}) | {med['student']:.1f} | | "
             f"{', '.join(f'{v:.0f}' for v in runs['student'])} |"]
    for key, label in (("before", f"fast-flow at {args.before}"), ("after", "fast-flow, this checkout")):
        lines.append(f"| {label} | {med[key]:.1f} | {100 * med[key] / med['student']:.1f} % | "
                     f"{', '.join(f'{v:.0f}' for v in runs[key])} |")
    lines += ["", f"After / before: {med['after'] / med['before']:.2f}.", ""]
    with atomic_path(out / "filter_ab.md") as tmp:
        tmp.write_text(portable("\n".join(lines)))
    print(portable("\n".join(lines)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Where the default temporal filter's time goes: each OpenCV call and Numba kernel per 1080p frame, on an emulated
ARM core and here.

    python benchmarks/video_filter_ops.py --out benchmarks/results/video/filter_ops

ARM: the filter runs under QEMU user mode (the aarch64 numpy/OpenCV/Numba wheels of darkc.video.cost) twice, once
with one counting window per filtered frame and once with one per outermost OpenCV call or Numba kernel
(darkc.video.filter_worker --per-call); guest instructions of the filtering thread, per filtered frame, the kernels
compiled beforehand. What no call holds (numpy, Python) is the frame's count less the calls' sum. Host: cProfile's
own time of each OpenCV function and the time of each Numba kernel (process-time clock, 1 thread, compiled
beforehand), per filtered frame. Frames: darkc.video.cost.stand_in_frames, as `darkc video` hands them to the
filter (darkc.video.cost.as_filtered). Writes <out>.md and <out>.json.
"""
from __future__ import annotations

import argparse
import cProfile
import platform
import pstats
import re
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from darkc.errors import DarkcError
from darkc.latency import arm
from darkc.provenance import write_records
from darkc.video.cost import as_filtered, count_filter, count_filter_calls, stand_in_frames
from darkc.video import kernels
from darkc.video.temporal import make_filter


def host_calls(kind: str, frames: np.ndarray) -> tuple[dict[str, float], float]:
    """({OpenCV function or Numba kernel: own ms per filtered frame}, ms per filtered frame in all), cProfile,
    process time."""
    cv2.setNumThreads(1)
    kernels.warm_up()
    spent: dict[str, float] = {}

    def timed(name, fn):
        def call(*args):
            t = time.process_time()
            try:
                return fn(*args)
            finally:
                spent[name] = spent.get(name, 0.0) + time.process_time() - t
        return call

    saved = {name: getattr(kernels, name) for name in ("move_tiles", "blend_rows")}
    for name, fn in saved.items():
        setattr(kernels, name, timed(f"{name} (numba)", fn))
    try:
        return _profiled(kind, frames, spent)
    finally:
        for name, fn in saved.items():
            setattr(kernels, name, fn)


def _profiled(kind: str, frames: np.ndarray, spent: dict[str, float]) -> tuple[dict[str, float], float]:
    filt = make_filter(kind)
    filt(frames[0])
    prof = cProfile.Profile(time.process_time)
    prof.enable()
    for x in frames[1:]:
        filt(x)
    prof.disable()
    n = len(frames) - 1
    stats = pstats.Stats(prof).stats
    out: dict[str, float] = {}
    for (_file, _line, func), (_cc, _nc, own, _cum, _callers) in stats.items():
        # OpenCV's functions show as "<resize>" (no module), DIS's as "<method 'calc' of 'cv2.DenseOpticalFlow' ...>"
        m = re.fullmatch(r"<(\w+)>", func) if hasattr(cv2, func.strip("<>")) else \
            re.match(r"<method '(calc)' of 'cv2\.", func)
        if m:
            name = "DIS flow" if m.group(1) == "calc" else m.group(1)
            out[name] = out.get(name, 0.0) + 1000 * own / n
    out.update({name: 1000 * t / n for name, t in spent.items()})
    total = sum(own for (_f, _l, _fn), (_cc, _nc, own, _cum, _callers) in stats.items())
    return out, 1000 * total / n


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kind", default="fast-flow")
    p.add_argument("--size", default="1920x1080", help="WxH of the network's sRGB output")
    p.add_argument("--profile", default="cortex-a78", help="ARM core profile (its QEMU -cpu counts)")
    p.add_argument("--out", default="benchmarks/results/video/filter_ops")
    a = p.parse_args(argv)
    t0 = time.monotonic()
    w, h = (int(v) for v in a.size.lower().split("x"))
    frames = as_filtered(a.kind, stand_in_frames(h, w))
    prof = arm.PROFILES[a.profile]
    try:
        with tempfile.TemporaryDirectory(prefix="darkc-filter-ops-") as tmp:
            npy = Path(tmp) / "frames.npy"
            np.save(npy, frames)
            total = count_filter(a.kind, npy, prof.qemu_cpu)
            calls = count_filter_calls(a.kind, npy, prof.qemu_cpu)
    except DarkcError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    host, host_total = host_calls(a.kind, frames)
    frame_instr = total["instructions"]
    rest = frame_instr - sum(c["instructions"] for c in calls.values())
    data = {"command": "python benchmarks/video_filter_ops.py " + " ".join(argv if argv is not None
                                                                          else sys.argv[1:]),
            "kind": a.kind, "size": a.size, "dtype": str(frames.dtype), "profile": a.profile,
            "qemu_cpu": prof.qemu_cpu, "frames": int(len(frames) - 1), "frame_instructions": frame_instr,
            "not_in_opencv_calls": rest, "calls": calls, "host_ms": host, "host_total_ms": host_total,
            "host": f"{platform.machine()}, OpenCV {cv2.__version__}, 1 thread", "wall_s": time.monotonic() - t0}
    write_records(a.out, data, markdown(data))
    print(Path(a.out).with_suffix(".md").read_text())
    return 0


def markdown(d: dict) -> str:
    lines = [f"# `{d['kind']}` per OpenCV call and Numba kernel, {d['size']} {d['dtype']} frames", "",
             f"Command: `{d['command']}` ({d['wall_s']:.0f} s; host {d['host']}).", "",
             f"Per filtered frame (mean of {d['frames']}): guest instructions of the filtering thread on QEMU -cpu "
             f"{d['qemu_cpu']} (the {d['profile']} profile's count; counted, not timed: an estimate turns them into "
             f"ms), and the host's own process time per function (cProfile; a Numba kernel's: process time around "
             f"its call; both compiled first). Frame: "
             f"{d['frame_instructions'] / 1e6:.1f}M instructions, host {d['host_total_ms']:.1f} ms.", "",
             "| call | calls / frame | guest M instr / frame | share | host ms / frame |", "|---|---|---|---|---|"]
    for name, c in d["calls"].items():
        lines.append(f"| {name} | {c['calls']:.1f} | {c['instructions'] / 1e6:.1f} | "
                     f"{100 * c['instructions'] / d['frame_instructions']:.1f} % | {d['host_ms'].get(name, 0.0):.2f} |")
    rest_ms = d["host_total_ms"] - sum(d["host_ms"].values())
    lines.append(f"| not in those calls (numpy, Python) | | {d['not_in_opencv_calls'] / 1e6:.1f} | "
                 f"{100 * d['not_in_opencv_calls'] / d['frame_instructions']:.1f} % | {rest_ms:.2f} |")
    return "\n".join(lines + [""])


if __name__ == "__main__":
    raise SystemExit(main())

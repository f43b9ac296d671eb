"""What a temporal filter costs next to the network that feeds it, at one frame size.

* host: process CPU time per frame of the filter and of the INT8 student (LiteRT, 1 thread), interleaved pass by
  pass so that both see the same load (:func:`host_cost`);
* emulated ARM cores: guest instructions per filtered frame counted under QEMU by darkc's plugin
  (:mod:`darkc.latency.arm`), the filter running as the same numpy/OpenCV/Numba code in the aarch64 userland
  (:mod:`darkc.video.filter_worker`; the Numba kernels compiled before counting), beside the INT8 student's
  instructions counted the way ``darkc bench`` counts them (small input, scaled by pixels); both turned into
  milliseconds by the same core profile (:func:`arm_cost`). The aarch64 OpenCV and Numba wheels (the host's
  versions) are installed next to the userland on first use.

    frames = stand_in_frames(1080, 1920)
    host = host_cost("fast-flow", frames, student_int8)
    arm = arm_cost("fast-flow", frames, student_int8_small, (1, 64, 64, 4), 127.5, ["cortex-a78"])
"""
from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from ..errors import DarkcError
from .temporal import make_filter

#: the aarch64 OpenCV and Numba the filter is counted with: the versions darkc pins for the host (setup.cfg)
FILTER_WHEELS = ("opencv-python-headless==5.0.0.93", "numba==0.68.1", "llvmlite==0.50.0")
WORKER = Path(__file__).with_name("filter_worker.py")
ROOT = Path(__file__).resolve().parents[2]


def stand_in_frames(h: int, w: int, n: int = 4, seed: int = 0) -> np.ndarray:
    """(n, h, w, 3) float32 network-output stand-ins: a textured scene panning 2.5 px per frame with noise (the
    filter's cost depends on the size, not on the content, beyond DIS's few iterations)."""
    rng = np.random.default_rng(seed)
    base = cv2.resize(rng.random((h // 16 + 8, w // 16 + 8, 3), dtype=np.float32), (w + 128, h + 128),
                      interpolation=cv2.INTER_CUBIC)
    frames = []
    for t in range(n):
        dx = 2.5 * t
        m = np.float32([[1, 0, dx], [0, 1, 0.5 * t]])
        img = cv2.warpAffine(base, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        frames.append(np.clip(img + rng.normal(0, 0.03, img.shape).astype(np.float32), 0, 1))
    return np.stack(frames)


def as_filtered(kind: str, frames: np.ndarray) -> np.ndarray:
    """``frames`` as ``darkc video`` hands them to a ``kind`` filter: the 8-bit frames the writer encodes when the
    filter takes them (:attr:`darkc.video.temporal.TemporalFilter.takes_uint8`; the rounding is the writer's, done
    with or without a filter, so not the filter's cost), else float32."""
    if make_filter(kind).takes_uint8:
        return np.rint(np.clip(frames, 0, 1) * 255).astype(np.uint8)
    return np.ascontiguousarray(frames, np.float32)


def host_cost(kind: str, frames: np.ndarray, tflite: str | os.PathLike, runs: int = 3) -> dict:
    """Median process CPU ms per frame of ``kind`` over ``frames`` and of one LiteRT invoke of ``tflite`` (1 thread),
    measured in alternation ``runs`` times."""
    from ai_edge_litert.interpreter import Interpreter

    cv2.setNumThreads(1)
    it = Interpreter(model_path=str(tflite), num_threads=1)
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    it.set_tensor(inp["index"], np.zeros(inp["shape"], inp["dtype"]))
    it.invoke()                                             # warm-up
    frames = as_filtered(kind, frames)
    net, filt_ms = [], []
    for _ in range(runs):
        t = time.process_time()
        it.invoke()
        net.append(1000 * (time.process_time() - t))
        filt = make_filter(kind)
        filt(frames[0])
        t = time.process_time()
        for x in frames[1:]:
            filt(x)
        filt_ms.append(1000 * (time.process_time() - t) / (len(frames) - 1))
    return {"filter_ms": statistics.median(filt_ms), "network_ms": statistics.median(net), "runs": runs,
            "filter_ms_runs": filt_ms, "network_ms_runs": net, "input": [int(v) for v in inp["shape"]],
            "dtype": str(frames.dtype),
            "method": "process CPU time, 1 thread, filter (median over passes of the mean per frame) and one LiteRT "
                      "invoke of the INT8 student, alternating"}


def filter_site() -> Path:
    """The aarch64 wheels of :data:`FILTER_WHEELS` installed beside the emulated userland, once."""
    from ..latency.arm import cache_dir

    site, want = cache_dir() / "site-aarch64-video", " ".join(FILTER_WHEELS)
    if (site / ".done").is_file() and (site / ".done").read_text().strip() == want:
        return site
    tmp = Path(tempfile.mkdtemp(prefix=".site-aarch64-video.", dir=cache_dir()))
    try:
        r = subprocess.run(["python3", "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps",
                            "--only-binary=:all:", "--platform", "manylinux2014_aarch64", "--platform",
                            "manylinux_2_28_aarch64", "--python-version", "3.11", "--implementation", "cp", "--abi",
                            "cp311", "--abi", "abi3", "--abi", "none", "--target", str(tmp), *FILTER_WHEELS],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            raise DarkcError(f"pip could not fetch the aarch64 wheels {want} ({r.stdout.strip()[-200:]}); check the "
                             f"network or install them into {site} by hand")
        (tmp / ".done").write_text(want + "\n")
        shutil.rmtree(site, ignore_errors=True)
        os.replace(tmp, site)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return site


def _run_worker(kind: str, frames_npy: Path, cpu: str, timeout: float, per_call: bool) -> tuple[list[int], int, dict]:
    """The filter worker under QEMU ``-cpu cpu``: (the filtering thread's count per window, the process total, the
    per-call record when ``per_call``)."""
    from ..latency import arm

    setup = arm.find_setup()
    site = filter_site()
    env = arm._guest_env(setup)
    env["PYTHONPATH"] = f"{setup.site}:{site}"
    with tempfile.TemporaryDirectory(prefix="darkc-filter-arm-") as tmp:
        log, calls = Path(tmp) / "insn.log", Path(tmp) / "calls.json"
        cmd = [str(setup.qemu), "-R", arm.GUEST_RESERVE, "-seed", "0", "-L", str(setup.root), "-cpu", cpu,
               "-plugin", str(setup.plugin), "-d", "plugin", "-D", str(log), str(setup.root / arm.GUEST_PYTHON),
               str(WORKER), "--root", str(ROOT), "--frames", str(frames_npy), "--kind", kind,
               *(["--per-call", str(calls)] if per_call else ["--marks"])]
        if shutil.which("setarch"):
            cmd = ["setarch", os.uname().machine, "-R", *cmd]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp)
        windows, total = arm._finish(proc, log, f"temporal filter {kind} on emulated -cpu {cpu}", timeout)
        record = json.loads(calls.read_text()) if per_call else {}
    return [w.owner if hasattr(w, "owner") else int(w) for w in windows], total, record


def count_filter(kind: str, frames_npy: Path, cpu: str, timeout: float = 1800.0) -> dict:
    """Guest instructions per filtered frame of ``kind`` over the frames in ``frames_npy`` on QEMU ``-cpu cpu``."""
    counts, total, _ = _run_worker(kind, frames_npy, cpu, timeout, per_call=False)
    return {"instructions": statistics.mean(counts), "per_frame": counts, "process_total": total}


def count_filter_calls(kind: str, frames_npy: Path, cpu: str, timeout: float = 1800.0) -> dict:
    """Guest instructions per filtered frame of ``kind`` spent in each OpenCV function (and DIS flow), from one
    window per outermost call: {name: {"instructions", "calls"}} per filtered frame, largest first; what is not in
    an OpenCV call (numpy, Python) is the frame's count (:func:`count_filter`) less their sum."""
    counts, _, record = _run_worker(kind, frames_npy, cpu, timeout, per_call=True)
    names = record["names"][record["first"]:]
    if len(counts) < len(names):
        raise DarkcError(f"per-call count of {kind}: {len(counts)} windows for {len(names)} calls; rerun `darkc bench "
                         f"--setup-arm`")
    frames = np.load(frames_npy, mmap_mode="r").shape[0] - 1
    out: dict[str, dict] = {}
    for name, n in zip(names, counts[len(counts) - len(names):]):
        row = out.setdefault(name, {"instructions": 0.0, "calls": 0.0})
        row["instructions"] += n / frames
        row["calls"] += 1 / frames
    return dict(sorted(out.items(), key=lambda kv: -kv[1]["instructions"]))


def arm_cost(kind: str, frames: np.ndarray, tflite_small: str | os.PathLike, small_shape, pixel_scale: float,
             profiles: list[str]) -> dict:
    """Per core profile: the filter's instructions per frame of ``frames`` (counted at that size) and the INT8
    student's (counted at ``small_shape``, times ``pixel_scale``, as darkc bench does), each / (IPC x clock)."""
    from ..latency import arm

    out = {}
    with tempfile.TemporaryDirectory(prefix="darkc-filter-frames-") as tmp:
        npy = Path(tmp) / "frames.npy"
        np.save(npy, as_filtered(kind, frames))
        for name in profiles:
            if name not in arm.PROFILES:
                raise DarkcError(f"{name} is not a known ARM core profile: use some of {', '.join(arm.PROFILES)}")
            prof = arm.PROFILES[name]
            f = count_filter(kind, npy, prof.qemu_cpu)
            n = arm.count_instructions(tflite_small, "litert", small_shape, prof)
            net = n["instructions"] * pixel_scale
            out[name] = {"filter_instructions": f["instructions"], "filter_per_frame": f["per_frame"],
                         "network_instructions": net, "network_instructions_measured": n["instructions"],
                         "filter_ms": arm.estimate_ms(f["instructions"], prof),
                         "network_ms": arm.estimate_ms(net, prof), "qemu_cpu": prof.qemu_cpu, "ipc": prof.ipc,
                         "clock_ghz": prof.clock_ghz}
    return out

"""The video stage: a folder of dark raw frames -> an enhanced, temporally filtered MP4 and/or PNG frames.

::

    report = enhance_video("clip/", "clip.mp4", model="student", temporal="flow", metrics="clip.json")

Each frame is read, amplified by the exposure ratio, optionally filtered in the raw domain, enhanced by the
single-image network (in tiles, :func:`darkc.inference.enhance_packed`), optionally filtered in the output
domain, and appended to the video. Frames stream through one at a time, so memory does not grow with the
clip. With a synthetic clip (``darkc synth --video``) the output is scored against its ground truth using
the clip's *true* optical flow (:class:`darkc.video.metrics.VideoScore`).
"""
from __future__ import annotations

import json
import math
import numbers
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..data.noise_level import level_of_file
from ..data.orientation import apply_flip
from ..data.raw import amplify, read_raw
from ..errors import DarkcError, atomic_path
from ..inference import CFA_NAMES, DEFAULT_TILE, Runner, enhance_packed, load_runner, model_input, raw_output_to_srgb
from .io import VideoWriter, open_sequence, rgb8
from .darken import DEFAULT_RATIO as DARKEN_RATIO
from .darken import Darkener
from .metrics import NoRefScore, VideoScore
from .temporal import DEFAULT_STRENGTH, KINDS, make_filter

#: where the temporal filter runs: on the packed raw before the network, on its sRGB output, or both
DOMAINS = ("output", "raw", "both")
#: chosen by benchmarks/video_temporal.py (benchmarks/results/video/video_temporal.md): ``fast-flow`` cut both flicker
#: and the warping error by half on every clip at a fraction of ``flow``'s cost; filtering the network's output
#: ghosted least (raw input or both: 0.5-0.9 dB worse on changing pixels at similar flicker, earlier report)
DEFAULT_TEMPORAL = "fast-flow"
DEFAULT_DOMAIN = "output"
DEFAULT_FPS = 30.0
FLOW_FOR_METRICS = "true flow of the synthetic clip (its flow/fwd_*.flo and flow/bwd_*.flo)"
FLOW_NO_REFERENCE = "OpenCV DIS flow (medium) estimated on the output frames themselves, both ways"


def default_model() -> str:
    """The shipped student if this install has it, else the shipped teacher."""
    from ..models import available_pretrained

    shipped = available_pretrained()
    if "student" in shipped:
        return "student"
    if "teacher" in shipped:
        return "teacher"
    raise DarkcError("no shipped model in this install (neither student nor teacher): pass --model with a checkpoint "
                     "directory, a .onnx or a .tflite file")


def _warn(msg: str) -> None:
    tqdm.write(f"warning: {msg}", file=sys.stderr)


def _check_ratio(ratio, where: str) -> float:
    if isinstance(ratio, bool) or not isinstance(ratio, numbers.Real) or not math.isfinite(ratio) or ratio <= 0:
        raise DarkcError(f"--ratio {ratio!r} for {where} is invalid: pass a positive exposure ratio (SID uses 100-300)")
    return float(ratio)


def _outputs(out: str | os.PathLike, png: str | os.PathLike | None) -> tuple[Path | None, Path | None]:
    out = Path(out)
    if out.suffix.lower() == ".mp4":
        return out, Path(png) if png is not None else None
    if out.suffix:
        raise DarkcError(f"output {out} must end in .mp4 (H.264 video) or be a folder for PNG frames")
    if png is not None:
        raise DarkcError(f"--png {png} only goes with an .mp4 output; -o {out} already writes PNG frames")
    return None, out


def enhance_video(input: str | os.PathLike, out: str | os.PathLike, *, model: str | os.PathLike | Runner | None = None,
                  temporal: str | None = None, strength: float | None = None, domain: str | None = None,
                  ratio: float | None = None, fps: float | None = None, png: str | os.PathLike | None = None,
                  metrics: str | os.PathLike | None = None, skip_bad: bool = False, threads: int | None = None,
                  tile: int = DEFAULT_TILE, crf: int = 18, profile: str | None = None, seed: int = 0,
                  progress: bool = True) -> dict:
    """Enhance a raw video.

    Args:
        input: folder of raw frames (rawpy-readable, natural name order), a ``darkc synth --video`` clip, or
            ordinary sRGB video (a video file ffmpeg reads, or a folder of images), which is first made dark raw
            by :class:`darkc.video.darken.Darkener` (unprocessing, Brooks et al. 2019; simulated sensor noise).
        out: ``.mp4`` file (H.264), or a folder for 8-bit PNG frames ``NNNNN.png`` (input frame index).
        model: shipped name, checkpoint folder, ``.onnx`` or ``.tflite``, or a loaded :class:`Runner`;
            None: :func:`default_model` (the shipped student, else the teacher).
        temporal: filter kind, one of :data:`darkc.video.temporal.KINDS`; None: :data:`DEFAULT_TEMPORAL`.
        strength: the filter's largest history weight in [0, 1); None: the kind's default.
        domain: where the filter runs, one of :data:`DOMAINS`; None: :data:`DEFAULT_DOMAIN`.
        ratio: exposure ratio the raw frames are amplified by; None: the clip's, required for plain raw
            folders; for sRGB video also the darkening (1/ratio of the light), default x100.
        fps: frame rate of the MP4; None: the clip's, else 30.
        png: also write PNG frames to this folder (with an ``.mp4`` output).
        metrics: write the report as JSON here (``psnr``, ``ssim``, ``flicker``, ``warp_error``, ``fps``;
            the quality keys are null without ground truth).
        skip_bad: leave out unreadable frames, and frames whose size or CFA differs from the first good frame,
            with a warning each (they are listed in the report); by default such a frame is an error.
        threads: CPU threads for inference and OpenCV; None keeps the runtimes' defaults.
        tile: largest network tile side in packed px (:func:`darkc.inference.enhance_packed`).
        crf: H.264 constant rate factor (lower is better quality, 18 is visually lossless for most content).
        profile: camera profile an sRGB video is unprocessed with (default: the model CFA's default profile).
        seed: camera parameters and noise of the simulated capture of an sRGB video.
        progress: show a progress bar over the frames.

    Returns:
        The report (see the keys of the metrics JSON).

    Raises:
        DarkcError: bad input folder (empty, missing), a bad frame without ``skip_bad``, mixed sizes/CFAs, no
            ratio, a model for the other CFA, bad options. Nothing is written then.
    """
    temporal = DEFAULT_TEMPORAL if temporal is None else temporal
    domain = DEFAULT_DOMAIN if domain is None else domain
    if temporal not in KINDS:
        raise DarkcError(f"unknown --temporal {temporal!r}: use one of {', '.join(KINDS)}")
    if domain not in DOMAINS:
        raise DarkcError(f"unknown --domain {domain!r}: use one of {', '.join(DOMAINS)}")
    if metrics is not None and Path(metrics).suffix.lower() != ".json":
        raise DarkcError(f"--metrics {metrics} must end in .json")
    mp4, png_dir = _outputs(out, png)
    seq = open_sequence(input)
    if ratio is None and seq.kind == "rgb":
        ratio = DARKEN_RATIO
    if ratio is None:
        if seq.ratio is None:
            raise DarkcError(f"no exposure ratio for the frames in {seq.root}: pass --ratio (SID uses 100-300)")
        ratio = seq.ratio
    ratio = _check_ratio(ratio, str(seq.root))
    fps = fps if fps is not None else (seq.fps or DEFAULT_FPS)
    if threads is not None:
        import cv2
        cv2.setNumThreads(int(threads))
    runner = load_runner(model if model is not None else default_model(), threads)
    raw_filter = make_filter(temporal, strength) if domain in ("raw", "both") and temporal != "none" else None
    out_filter = make_filter(temporal, strength) if domain in ("output", "both") else None
    strength_used = (out_filter or raw_filter).strength if (out_filter or raw_filter) else DEFAULT_STRENGTH[temporal]
    darkener = Darkener(runner.cfa, profile, ratio, seed) if seq.kind == "rgb" else None
    score = VideoScore() if seq.has_truth else NoRefScore() if metrics is not None or darkener else None

    n = len(seq.frames)
    stages = ("read", "raw_filter", "network", "to_8bit", "filter", "write", "metrics")
    wall = dict.fromkeys(stages, 0.0)
    cpu = dict.fromkeys(stages, 0.0)
    skipped: list[dict] = []
    first: tuple | None = None          # (cfa, mosaic shape, path) of the first good frame
    size = None
    wall0 = time.perf_counter()

    def skip(i: int, path: Path, reason: str) -> None:
        if not skip_bad:
            raise DarkcError(f"frame {i + 1} of {n} ({path}): {reason}; fix or remove it, or pass --skip-bad to leave "
                             f"such frames out with a warning")
        _warn(f"skipping frame {i + 1} of {n} ({path}): {reason}")
        skipped.append({"index": i, "path": str(path), "reason": reason})
        for f in (raw_filter, out_filter):
            if f is not None:
                f.reset()
        if score is not None:
            score.gap()

    with VideoWriter(mp4, png_dir, fps, crf) as writer:
        source = seq.rgb_frames() if darkener else ((ref, None) for ref in seq.frames)
        for ref, srgb in tqdm(source, total=n, desc="darkc video", unit="frame", disable=not progress):
            marks = [(time.perf_counter(), time.process_time())]
            try:
                frame = darkener(srgb, ref.index, str(seq.root)) if darkener else read_raw(ref.path)
            except DarkcError as exc:
                skip(ref.index, ref.path, f"unreadable ({exc})")
                continue
            if first is None:
                if frame.cfa != runner.cfa:
                    want, got = CFA_NAMES[runner.cfa], CFA_NAMES[frame.cfa]
                    raise DarkcError(f"model {runner.name} expects {runner.in_channels}-channel {want} input but the "
                                     f"frames in {seq.root} are {got}; pass a model made for {got} raw")
                first = (frame.cfa, frame.mosaic.shape, ref.path)
            elif (frame.cfa, frame.mosaic.shape) != first[:2]:
                got = f"{CFA_NAMES[frame.cfa]} {frame.mosaic.shape[1]}x{frame.mosaic.shape[0]}"
                want = f"{CFA_NAMES[first[0]]} {first[1][1]}x{first[1][0]}"
                skip(ref.index, ref.path, f"is {got} but {first[2].name} is {want}: every frame of a video must "
                                          f"have the same size and CFA")
                continue
            packed = amplify(frame.packed(), ratio)
            flip = frame.flip
            del frame
            marks.append((time.perf_counter(), time.process_time()))
            if raw_filter is not None:
                packed = np.ascontiguousarray(raw_filter(packed.transpose(1, 2, 0)).transpose(2, 0, 1))
            marks.append((time.perf_counter(), time.process_time()))
            # the network's output in the (H, W, 3) layout the writer needs, whatever the filter; a noise-conditioned
            # model takes each frame's own noise level, a raw-output model's clean raw is rendered like enhance does
            level = level_of_file(ref.path) if runner.noise_input != "none" else None
            net_out = enhance_packed(runner, model_input(runner, packed, ratio, level), tile=tile, progress=False,
                                     source=str(ref.path))
            hwc = np.ascontiguousarray(raw_output_to_srgb(net_out, ref.path, ratio, level)[0] if runner.output == "raw"
                                       else net_out.transpose(1, 2, 0))
            marks.append((time.perf_counter(), time.process_time()))
            if out_filter is None or out_filter.takes_uint8:   # the 8-bit frame the writer encodes, filtered as such
                hwc = rgb8(hwc)
            marks.append((time.perf_counter(), time.process_time()))
            if out_filter is not None:
                hwc = out_filter(hwc)
            marks.append((time.perf_counter(), time.process_time()))
            writer.write(apply_flip(hwc, flip), ref.index)      # turned as LibRaw turns the frame
            marks.append((time.perf_counter(), time.process_time()))
            if score is not None:           # the frames as written, 8-bit
                shown = rgb8(hwc).astype(np.float32) * np.float32(1 / 255)
            if isinstance(score, VideoScore):
                flows = ref.read_flows()
                score.add(shown, ref.read_truth(), *(flows or (None, None)), cut=ref.cut)
            elif score is not None:
                score.add(shown)
            marks.append((time.perf_counter(), time.process_time()))
            for key, (a, b) in zip(stages, zip(marks, marks[1:])):
                wall[key] += b[0] - a[0]
                cpu[key] += b[1] - a[1]
            size = writer.size                                 # as written (turned)
        written = writer.count
    elapsed = time.perf_counter() - wall0
    per_frame_ms = {k: round(1000 * v / written, 3) for k, v in wall.items()}
    cpu_ms = {k: round(1000 * v / written, 3) for k, v in cpu.items()}
    filter_ms = per_frame_ms["raw_filter"] + per_frame_ms["filter"]
    filter_cpu = cpu_ms["raw_filter"] + cpu_ms["filter"]
    processing = elapsed - wall["metrics"]
    report = {
        "input": str(seq.root), "output": str(mp4) if mp4 else None,
        "png": str(png_dir) if png_dir else None, "frames": written, "frames_in": n, "skipped": skipped,
        "width": int(size[1]), "height": int(size[0]), "model": runner.name, "cfa": runner.cfa,
        "temporal": temporal, "strength": strength_used, "domain": domain, "ratio": ratio, "video_fps": fps,
        "fps": round(written / processing, 3),
        "fps_definition": "frames / wall time of reading, filtering, network and encoding (metrics excluded)",
        "timing_ms_per_frame": per_frame_ms,
        "cpu_ms_per_frame": cpu_ms,
        "timing_definition": "wall and process-CPU milliseconds per frame of each stage (network includes the "
                             "layout change to (H, W, 3)); on a busy host wall time includes waiting for a core",
        "filter_ms_per_frame": round(filter_ms, 3),
        "filter_over_network": round(filter_cpu / cpu_ms["network"], 4) if cpu_ms["network"] else None,
        "filter_over_network_definition": "filter CPU time / network CPU time per frame",
        "host": {"machine": platform.machine(), "processor": platform.processor() or platform.machine(),
                 "cpus": os.cpu_count(), "threads": threads, "python": sys.version.split()[0]},
        "psnr": None, "ssim": None, "flicker": None, "warp_error": None,
        "input_kind": "srgb video, simulated dark raw" if darkener else "raw",
        "simulation": darkener.describe() if darkener else None,
    }
    if isinstance(score, NoRefScore):
        report.update(score.summary())
        report["metrics_definition"] = (
            "no ground truth: flicker = mean |O_t - O_t-1| over pixels the estimated flow finds still (< 0.5 px, "
            "not occluded); warp_error = Lai et al. 2018 E_warp with that flow")
        report["flow_for_metrics"] = FLOW_NO_REFERENCE
    elif score is not None:
        summary = score.summary()
        report.update(summary)
        report["metrics_definition"] = (
            "psnr/ssim: darkc.metrics on float sRGB vs the clip's truth, mean over frames; flicker: mean "
            "|(O_t-O_t-1)-(T_t-T_t-1)| over pixels whose truth changes < 1/255; warp_error: Lai et al. 2018 E_warp "
            f"(squared RGB distance, non-occluded pixels) with the {FLOW_FOR_METRICS}; warp_error_truth: the same "
            "for the truth itself (the floor from interpolation)")
        report["flow_for_metrics"] = FLOW_FOR_METRICS
    if metrics is not None:
        with atomic_path(metrics) as tmp:
            tmp.write_text(json.dumps(report, indent=1))
    return report


def format_report(report: dict) -> str:
    """A few lines for the terminal."""
    outs = " and ".join(str(p) for p in (report["output"], report["png"]) if p)
    lines = [f"wrote {report['frames']} frames ({report['width']}x{report['height']}) to {outs}; "
             f"{report['fps']:.2f} fps end to end; {report['temporal']} filter on {report['domain']}: "
             f"{report['filter_ms_per_frame']:.1f} ms/frame, {100 * (report['filter_over_network'] or 0):.1f} % of the "
             f"network's CPU time"]
    if report.get("simulation"):
        lines.append(f"input: {report['simulation']}")
    if report["skipped"]:
        lines.append(f"skipped {len(report['skipped'])} of {report['frames_in']} frames: "
                     + ", ".join(str(s['index']) for s in report["skipped"]))
    if report.get("psnr") is None and report.get("warp_error") is not None:
        num = lambda v: "n/a" if v is None else f"{v:.5f}"  # noqa: E731
        lines.append(f"no ground truth: flicker {num(report['flicker'])} (still pixels), warp error "
                     f"{num(report['warp_error'])} ({report['flow_for_metrics']})")
    if report.get("psnr") is not None:
        num = lambda v: "n/a" if v is None else f"{v:.5f}"  # noqa: E731
        lines.append(f"vs truth: PSNR {report['psnr']:.2f} dB, SSIM {report['ssim']:.4f}, flicker "
                     f"{num(report['flicker'])}, warp error {num(report['warp_error'])} (truth's own "
                     f"{num(report['warp_error_truth'])}; {report['flow_for_metrics']})")
    return "\n".join(lines)

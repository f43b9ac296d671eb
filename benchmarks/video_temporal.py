"""Temporal filtering for `darkc video`: every filter kind in every domain vs per-frame enhancement.

    python benchmarks/video_temporal.py --model teacher --out benchmarks/results/video

Makes synthetic raw clips with ground truth and true flow (`darkc synth --video`: a tripod shot, a hand-held
shot and a pan + zoom + jitter shot, each with two moving objects), runs `darkc video` on each with
`--temporal none` and with every kind (ema, motion-adaptive, flow) on the raw input (`raw`), on the network
output (`output`) and on both, and writes <out>/video_temporal.md, .json and .png (crops around a moving
object for a few frames). Quality is measured against the clips' truth; E_warp uses the clips' true flow.
Filter cost is timed on the benchmark frames and at 1920x1080, against the network's time per frame.
The network runs once per distinct input: output-domain runs reuse the per-frame run's network outputs
(same inputs, same outputs), so their fps is computed from the measured per-stage times.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import matplotlib
import numpy as np
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from darkc.data.raw import amplify, read_raw  # noqa: E402
from darkc.errors import DarkcError, atomic_path  # noqa: E402
from darkc.provenance import portable  # noqa: E402
from darkc.inference import Runner, TorchRunner, load_runner  # noqa: E402
from darkc.models import available_pretrained, build_model  # noqa: E402
from darkc.video import enhance_video, make_filter, open_sequence, write_clip  # noqa: E402
from darkc.video import temporal  # noqa: E402
from darkc.video.temporal import DEFAULT_STRENGTH  # noqa: E402

#: clip name -> (camera motion, seed); seeds pick the background among the held-out photos
CLIPS = {"tripod": ("static", 101), "hand-held": ("jitter", 102), "pan-zoom": ("mixed", 103)}
STUDENT_WIDTHS = [8, 16, 32, 64, 128]     # the shipped recipe's student (recipes/sid-mobile.toml)
TARGETS = {"reduction": 0.5, "psnr_loss_db": 0.2, "ghost_loss_db": 0.2, "cost_fraction": 0.10}


class MemoRunner(Runner):
    """Runs the wrapped model once per distinct input (a digest of its bytes) and replays the output after."""

    def __init__(self, inner: Runner):
        super().__init__(inner.name, inner.cfa)
        self.inner, self.multiple, self.fixed_size = inner, inner.multiple, inner.fixed_size
        self.cache: dict[bytes, np.ndarray] = {}

    def __call__(self, x: np.ndarray) -> np.ndarray:
        key = hashlib.blake2b(np.ascontiguousarray(x).tobytes(), digest_size=16).digest()
        if key not in self.cache:
            self.cache[key] = self.inner(x)
        return self.cache[key]


def _median_ms(fn, runs: int) -> float:
    """Median process CPU time of ``fn`` in ms (on a busy host wall time would include waiting for a core)."""
    times = []
    for _ in range(runs):
        t = time.process_time()
        fn()
        times.append(1000 * (time.process_time() - t))
    return statistics.median(times)


def cost_at(size: str, runner: Runner, kinds: list[str], work: Path, runs: int, threads: int) -> dict:
    """Filter ms per frame at a given output size (sRGB output domain and packed raw domain) and the network's
    ms per frame for the model used and for a student-sized SID U-Net (random weights: timing only)."""
    w, h = (int(v) for v in size.lower().split("x"))
    clip = work / f"cost_{w}x{h}"
    write_clip(clip, frames=4, size=max(w, h), seed=7, motion="mixed", progress=False)
    seq = open_sequence(clip)
    rng = np.random.default_rng(0)
    # stand-in network outputs: truth + noise (filter time does not depend on the content beyond its size)
    outs = [np.clip(f.read_truth()[:h, :w] + rng.normal(0, 0.02, (h, w, 3)).astype(np.float32), 0, 1)
            for f in seq.frames]
    packs = [np.ascontiguousarray(amplify(read_raw(f.path).packed(), seq.ratio)[:, :h // 2, :w // 2]
                                  .transpose(1, 2, 0)) for f in seq.frames]
    res = {"size": f"{w}x{h}", "filter_ms": {}, "network_ms": {}}
    for domain, frames in (("output", outs), ("raw", packs)):
        for kind in kinds:
            def one_pass():
                filt = make_filter(kind)
                filt(frames[0])
                t = time.process_time()
                for fr in frames[1:]:
                    filt(fr)
                return 1000 * (time.process_time() - t) / (len(frames) - 1)
            res["filter_ms"][f"{kind}/{domain}"] = statistics.median(one_pass() for _ in range(runs))
    x = np.ascontiguousarray(packs[0].transpose(2, 0, 1)[None])
    ph, pw = -(-x.shape[2] // 16) * 16, -(-x.shape[3] // 16) * 16
    x = np.pad(x, ((0, 0), (0, 0), (0, ph - x.shape[2]), (0, pw - x.shape[3])), mode="reflect")
    spec = {"arch": "sid-unet", "cfa": "bayer", "widths": STUDENT_WIDTHS}
    student = TorchRunner(build_model(spec), spec, name="student-size", threads=threads)
    for name, r in (("model", runner), ("student-size", student)):
        r(x)                                  # warm-up
        res["network_ms"][name] = _median_ms(lambda: r(x), runs)
    return res


def _crop_box(meta: dict, t: int, size: tuple[int, int], side: int) -> tuple[int, int]:
    obj = meta["objects"][0]
    cx = obj["start_xy"][0] + t * obj["velocity_px_per_frame"][0] + obj["size_px"] / 2
    cy = obj["start_xy"][1] + t * obj["velocity_px_per_frame"][1] + obj["size_px"] / 2
    h, w = size
    return (int(np.clip(cy - side / 2, 0, h - side)), int(np.clip(cx - side / 2, 0, w - side)))


def figure(png: Path, clip: Path, runs: dict, rows: list[str], frames: list[int]) -> None:
    seq = open_sequence(clip)
    meta = seq.meta
    h, w = meta["size"]
    side = min(h, w, max(64, int(meta["objects"][0]["size_px"] * 2.2))) if meta["objects"] else min(h, w) // 2
    fig, axes = plt.subplots(len(rows) + 1, len(frames), figsize=(2.1 * len(frames), 2.1 * (len(rows) + 1)),
                             squeeze=False)
    for j, t in enumerate(frames):
        y0, x0 = _crop_box(meta, t, (h, w), side) if meta["objects"] else ((h - side) // 2, (w - side) // 2)
        imgs = [("truth", seq.frames[t].read_truth())]
        for name in rows:
            img = cv2.imread(str(runs[name] / f"{t:05d}.png"))[..., ::-1].astype(np.float32) / 255
            imgs.append((name, img))
        for i, (name, img) in enumerate(imgs):
            ax = axes[i, j]
            ax.imshow(np.clip(img[y0:y0 + side, x0:x0 + side], 0, 1), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(name, fontsize=8)
            if i == 0:
                ax.set_title(f"frame {t}", fontsize=9)
    fig.suptitle(f"{clip.name}: crops around a moving object", fontsize=10)
    fig.tight_layout()
    with atomic_path(png) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def _pct(new: float | None, base: float | None) -> float | None:
    if new is None or base is None or base == 0:
        return None
    return 100.0 * (new - base) / base


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="default: the shipped teacher (an error if it is not shipped)")
    ap.add_argument("--model-note", default="", help="what the model is, for the report (e.g. a run's step)")
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--size", type=int, default=512, help="longer frame side in raw px")
    ap.add_argument("--clips", default=",".join(CLIPS))
    ap.add_argument("--kinds", default="ema,motion-adaptive,flow")
    ap.add_argument("--domains", default="output,raw,both")
    ap.add_argument("--strength", type=float, default=None, help="default: each kind's default")
    ap.add_argument("--stat-scale", type=int, default=None, help="override darkc.video.temporal.STAT_SCALE")
    ap.add_argument("--ramp", default=None, help="override darkc.video.temporal.RAMP, e.g. 1.0,2.5")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cost-size", default="1920x1080", help="WxH output size for the cost table, or 'none'")
    ap.add_argument("--cost-runs", type=int, default=3)
    ap.add_argument("--out", default="benchmarks/results/video")
    ap.add_argument("--work", default=None, help="folder for the clips and outputs (default: a temporary one)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    if args.stat_scale is not None:
        temporal.STAT_SCALE = args.stat_scale
    if args.ramp is not None:
        temporal.RAMP = tuple(float(v) for v in args.ramp.split(","))
    if args.model is None:
        if "teacher" not in available_pretrained():
            raise DarkcError("the shipped teacher is not in this install: pass --model with a checkpoint directory "
                             "(and --model-note saying what it is)")
        args.model = "teacher"
    runner = MemoRunner(load_runner(args.model, args.threads))
    kinds = [k for k in args.kinds.split(",") if k]
    domains = [d for d in args.domains.split(",") if d]
    clips = [c for c in args.clips.split(",") if c]
    configs = [("none", "output")] + [(k, d) for k in kinds for d in domains]
    out = Path(args.out)
    tmpdir = tempfile.TemporaryDirectory(prefix="video_temporal.") if args.work is None else None
    work = Path(args.work or tmpdir.name)
    results: dict = {}
    started = time.perf_counter()
    for name in clips:
        motion, seed = CLIPS[name]
        clip = work / name
        write_clip(clip, frames=args.frames, size=args.size, seed=seed, motion=motion, progress=False)
        rows = {}
        for kind, domain in configs:
            label = "per-frame" if kind == "none" else f"{kind}/{domain}"
            rep = enhance_video(clip, work / f"{name}_out" / label.replace("/", "_"), model=runner, temporal=kind,
                                domain=domain, strength=args.strength, threads=args.threads, progress=False)
            rows[label] = rep
            print(f"{name:9s} {label:22s} PSNR {rep['psnr']:.3f} flicker {rep['flicker']:.5f} "
                  f"E_warp {rep['warp_error']:.5f} filter {rep['filter_ms_per_frame']:.1f} ms (wall)", flush=True)
        base = rows["per-frame"]
        net_ms = base["cpu_ms_per_frame"]["network"]
        table = {}
        for label, rep in rows.items():
            t = rep["cpu_ms_per_frame"]
            filter_ms = t["raw_filter"] + t["filter"]
            total = t["read"] + net_ms + filter_ms + t["write"]
            table[label] = {
                "psnr": rep["psnr"], "ssim": rep["ssim"], "flicker": rep["flicker"], "warp_error": rep["warp_error"],
                "psnr_changing": rep["psnr_changing"], "warp_error_truth": rep["warp_error_truth"],
                "d_psnr": rep["psnr"] - base["psnr"], "d_psnr_changing": rep["psnr_changing"] - base["psnr_changing"],
                "flicker_change_pct": _pct(rep["flicker"], base["flicker"]),
                "warp_change_pct": _pct(rep["warp_error"], base["warp_error"]),
                "filter_ms": filter_ms, "network_ms": net_ms, "filter_over_network": filter_ms / net_ms,
                "fps": 1000.0 / total, "fps_wall_measured": rep["fps"],
                "per_frame": rep["per_frame"], "strength": rep["strength"],
            }
        results[name] = {"motion": motion, "seed": seed, "source": base["input"],
                         "size": [base["height"], base["width"]],
                         "background": open_sequence(clip).meta["source"]["name"], "rows": table,
                         "out_dirs": {k: str(work / f"{name}_out" / k.replace("/", "_")) for k in rows}}
    cost = None
    if args.cost_size != "none":
        cost = cost_at(args.cost_size, runner.inner, kinds, work, args.cost_runs, args.threads)
    labels = list(results[clips[0]]["rows"])
    keys = ("d_psnr", "d_psnr_changing", "flicker_change_pct", "warp_change_pct", "filter_over_network")
    mean = {lab: {k: float(np.mean([results[c]["rows"][lab][k] for c in clips])) for k in keys}
            for lab in labels if lab != "per-frame"}
    for lab, m in mean.items():
        worst = {"d_psnr": min(results[c]["rows"][lab]["d_psnr"] for c in clips),
                 "d_psnr_changing": min(results[c]["rows"][lab]["d_psnr_changing"] for c in clips),
                 "flicker_change_pct": max(results[c]["rows"][lab]["flicker_change_pct"] for c in clips),
                 "warp_change_pct": max(results[c]["rows"][lab]["warp_change_pct"] for c in clips)}
        m["worst"] = worst
        m["meets_quality_targets"] = bool(worst["flicker_change_pct"] <= -100 * TARGETS["reduction"]
                                          and worst["warp_change_pct"] <= -100 * TARGETS["reduction"]
                                          and worst["d_psnr"] >= -TARGETS["psnr_loss_db"]
                                          and worst["d_psnr_changing"] >= -TARGETS["ghost_loss_db"])
        if cost:
            kind, domain = lab.split("/")
            ms = sum(cost["filter_ms"].get(f"{kind}/{d}", 0.0) for d in (("raw", "output") if domain == "both"
                                                                           else (domain,)))
            m["cost_ms_at_cost_size"] = ms
            m["cost_over_student"] = ms / cost["network_ms"]["student-size"]
    elapsed = time.perf_counter() - started
    meta = {
        "model": args.model, "model_note": args.model_note, "frames": args.frames, "size": args.size,
        "strength": args.strength if args.strength is not None else DEFAULT_STRENGTH,
        "stat_scale": temporal.STAT_SCALE, "flow_scale": temporal.FLOW_SCALE, "ramp": list(temporal.RAMP),
        "host": {"machine": platform.machine(), "processor": platform.processor() or platform.machine(),
                 "torch": torch.__version__, "opencv": cv2.__version__, "threads": args.threads,
                 "python": sys.version.split()[0]},
        "flow_for_metrics": "true flow of each synthetic clip (darkc synth --video writes it)",
        "metrics": "PSNR/SSIM: float sRGB vs the clip's truth (noise-free long exposure rendered by LibRaw), mean "
                   "over frames; flicker: mean |(O_t-O_t-1)-(T_t-T_t-1)| over pixels whose truth changes < 1/255; "
                   "E_warp: Lai et al. 2018, O_t warped to t-1 with the true flow, squared RGB distance over pixels "
                   "that pass the forward-backward check; PSNR changing: pooled over pixels whose truth changes "
                   "> 0.05 (where ghosting shows)",
        "timing": "process CPU time per frame and stage (the host is shared with a training job, so wall time "
                  "includes waiting for a core); with one thread this is what one dedicated core takes",
        "fps": "1000 / (read + raw filter + network + output filter + encode) CPU ms per frame, with the network "
               "time of the per-frame run (output-domain runs replay its outputs)",
        "targets": TARGETS, "seconds": round(elapsed, 1), "cost_runs": args.cost_runs,
        "command": shlex.join(["python", "benchmarks/video_temporal.py",
                               *(argv if argv is not None else sys.argv[1:])]),
    }
    data = {"meta": meta, "clips": {c: {k: v for k, v in r.items() if k != "out_dirs"} for c, r in results.items()},
            "summary": mean, "cost": cost}
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "video_temporal.json") as tmp:
        tmp.write_text(json.dumps(portable(data), indent=1) + "\n")
    fig_clip = "tripod" if "tripod" in results else clips[-1]
    fig_rows = ["per-frame"] + [f"{k}/output" for k in kinds if f"{k}/output" in results[fig_clip]["rows"]]
    n = args.frames
    figure(out / "video_temporal.png", work / fig_clip,
           {k: Path(v) for k, v in results[fig_clip]["out_dirs"].items()}, fig_rows,
           sorted({max(1, n // 4), n // 2, n - 1}))
    with atomic_path(out / "video_temporal.md") as tmp:
        tmp.write_text(portable(report_md(data, clips, labels, fig_clip)))
    if tmpdir is not None:
        tmpdir.cleanup()
    print(f"wrote {out}/video_temporal.md (.json, .png) in {elapsed:.0f} s")
    return 0


def _f(v, fmt):
    return "n/a" if v is None else format(v, fmt)


def where_to_filter(summary: dict) -> list[str]:
    """For each kind, the domains compared on the worst clip; the domain kept is the one that ghosts least
    (highest worst PSNR on changing pixels) among those that reduce flicker and E_warp the most within 10 points."""
    lines = []
    kinds = sorted({lab.split("/")[0] for lab in summary}, key=lambda k: list(DEFAULT_STRENGTH).index(k))
    for kind in kinds:
        rows = {lab.split("/")[1]: m["worst"] for lab, m in summary.items() if lab.startswith(kind + "/")}
        if len(rows) < 2:
            continue
        best_red = min(max(w["flicker_change_pct"], w["warp_change_pct"]) for w in rows.values())
        ok = {d: w for d, w in rows.items() if max(w["flicker_change_pct"], w["warp_change_pct"]) <= best_red + 10}
        pick = max(ok, key=lambda d: ok[d]["d_psnr_changing"])
        parts = [f"{d}: flicker {w['flicker_change_pct']:+.0f} %, E_warp {w['warp_change_pct']:+.0f} %, PSNR "
                 f"{w['d_psnr']:+.2f} dB, changing pixels {w['d_psnr_changing']:+.2f} dB" for d, w in rows.items()]
        lines.append(f"- **{kind}** (worst clip): " + "; ".join(parts) + f". Least ghosting among the strongest: "
                     f"**{pick}**.")
    return lines


def report_md(data: dict, clips: list[str], labels: list[str], fig_clip: str) -> str:
    meta, cost = data["meta"], data["cost"]
    h = meta["host"]
    lines = [
        "# Temporal filtering for `darkc video`", "",
        f"Command: `{meta['command']}` ({meta['seconds']:.0f} s on {h['processor']}, {h['threads']} thread(s), "
        f"torch {h['torch']}, OpenCV {h['opencv']}).", "",
        f"- Model: `{meta['model']}`{(' — ' + meta['model_note']) if meta['model_note'] else ''}.",
        f"- Clips: `darkc synth --video`, {meta['frames']} frames, longer side {meta['size']} raw px, ratio x100, "
        f"two moving objects each; " + "; ".join(f"{c}: camera `{data['clips'][c]['motion']}`, seed "
                                                  f"{data['clips'][c]['seed']}, background "
                                                  f"{data['clips'][c]['background']}" for c in clips) + ".",
        f"- Metrics: {meta['metrics']}. Flow used for E_warp: {meta['flow_for_metrics']}.",
        f"- Timing: {meta['timing']}. fps: {meta['fps']}.",
        f"- Strength (largest history weight): {meta['strength']}; decisions at 1/{meta['stat_scale']} resolution, "
        f"flow at 1/{meta['flow_scale']}, blend ramp {meta['ramp']} (darkc.video.temporal).", "",
    ]
    for c in clips:
        lines += [f"## {c} (camera {data['clips'][c]['motion']})", "",
                  "| filter/domain | PSNR dB | ΔPSNR | SSIM | flicker | Δflicker | E_warp | ΔE_warp | PSNR changing "
                  "(Δ) | filter CPU ms | filter / network | fps (1 core) |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for lab in labels:
            r = data["clips"][c]["rows"][lab]
            lines.append(
                f"| {lab} | {r['psnr']:.3f} | {r['d_psnr']:+.3f} | {r['ssim']:.4f} | {_f(r['flicker'], '.5f')} "
                f"| {_f(r['flicker_change_pct'], '+.0f')} % | {r['warp_error']:.5f} "
                f"| {_f(r['warp_change_pct'], '+.0f')} % | {r['psnr_changing']:.2f} ({r['d_psnr_changing']:+.2f}) "
                f"| {r['filter_ms']:.1f} | "
                f"{100 * r['filter_over_network']:.1f} % | {r['fps']:.1f} |")
        r0 = data["clips"][c]["rows"]["per-frame"]
        lines += ["", f"E_warp of the truth itself (interpolation floor): {r0['warp_error_truth']:.5f}; network "
                      f"{r0['network_ms']:.0f} ms per frame here.", ""]
    t = meta["targets"]
    lines += ["## Against the targets (worst clip)", "",
              f"Targets: flicker and E_warp at least {100 * t['reduction']:.0f} % lower than per-frame, PSNR at most "
              f"{t['psnr_loss_db']} dB lower, no ghosting (PSNR on changing pixels at most {t['ghost_loss_db']} dB "
              f"lower), filter at most {100 * t['cost_fraction']:.0f} % of the student's time per frame.",
              "",
              "| filter/domain | worst Δflicker | worst ΔE_warp | worst ΔPSNR | worst ΔPSNR changing "
              "| quality targets |" + (f" filter ms @{cost['size']} | / student-size net |" if cost else ""),
              "|---|---|---|---|---|---|" + ("---|---|" if cost else "")]
    for lab, m in data["summary"].items():
        w = m["worst"]
        row = (f"| {lab} | {w['flicker_change_pct']:+.0f} % | {w['warp_change_pct']:+.0f} % | {w['d_psnr']:+.3f} | "
               f"{w['d_psnr_changing']:+.2f} | {'met' if m['meets_quality_targets'] else 'missed'} |")
        if cost:
            row += f" {m['cost_ms_at_cost_size']:.1f} | {100 * m['cost_over_student']:.1f} % |"
        lines.append(row)
    if cost:
        nm = cost["network_ms"]
        lines += ["", f"Cost at {cost['size']} (output frame; raw-domain filters on the packed {cost['size']} frame, "
                      f"a quarter of the pixels with 4 channels), CPU time, median of {meta['cost_runs']} passes, "
                      f"{h['threads']} thread(s): network `{meta['model']}` {nm['model']:.0f} ms, student-size SID "
                      f"U-Net (widths {STUDENT_WIDTHS}, the shipped recipe's student, random weights: timing only) "
                      f"{nm['student-size']:.0f} ms per frame (PyTorch CPU fp32). "
                      + ", ".join(f"{k} {v:.1f} ms" for k, v in cost["filter_ms"].items()) + "."]
    lines += ["", "## Where the filter runs", ""] + where_to_filter(data["summary"])
    lines += ["", f"![crops]({'video_temporal.png'})", "",
              f"Crops around a moving object in the {fig_clip} clip (rows: truth, per-frame, then each filter on the "
              f"network output).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())

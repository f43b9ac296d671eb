"""Quality of the mobile U-Net vs the SID U-Net at matched MACs: both distilled from the same teacher, same data,
steps and losses, scored on the reference and the out-of-distribution sets.

    python benchmarks/mobile_quality.py --out benchmarks/results/mobile_quality [--steps 1500] [--work DIR]

Each student is a fresh network (``darkc distill --student-arch ... --student-widths ...``), trained by output and
feature distillation (plus the shipped recipe's chroma term) from ``--teacher`` (default ``teacher``, the SID sRGB
U-Net the shipped student comes from) on synthetic pairs; the two students' conv MACs per 1920x1080 raw frame agree
within 3 %. The runs live in ``--work`` and resume there. Writes ``<out>.md``, ``<out>.json`` and ``<out>.png``.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from darkc.errors import atomic_path  # noqa: E402
from darkc.provenance import portable  # noqa: E402

#: (label, --student-arch, --student-widths, --student-options): sRGB students of the SID kind (4 packed channels in,
#: PixelShuffle out), conv MACs 1.083 G (SID) vs 1.117 G (mobile) per 1920x1080 frame: the nearest pair these width
#: grids give (3 % apart, the mobile net has the more).
VARIANTS = (
    ("sid-unet 4-48", "sid-unet", [4, 6, 12, 24, 48], []),
    ("mobile-unet ds s2 16-112", "mobile-unet", [16, 24, 48, 96, 112], ["block=ds", "stem=s2"]),
)
#: Packed input of one 1920x1080 raw frame, padded to 16 (what the MACs are counted at).
PACKED = (544, 960)


def distill_variant(args, label: str, arch: str, widths: list[int], options: list[str]) -> tuple[Path, dict]:
    """Run (or resume / reuse) one student's distillation; returns its folder and the distill report."""
    from darkc.stages import config_of, stage

    out = Path(args.work) / label.replace(" ", "_")
    report = out / "distill_report.json"
    if report.is_file() and json.loads(report.read_text()).get("steps") == args.steps:
        return out, json.loads(report.read_text())
    config = config_of("distill", student_arch=arch, student_widths=widths, student_options=options or None,
                       kd="output,features", chroma_weight=args.chroma_weight, steps=args.steps,
                       batch_size=args.batch_size, patch=args.patch,
                       lr=args.lr, val_every=0, ckpt_every=100, seed=args.seed, threads=args.threads,
                       resume=(out / "train_state.json").is_file(), evaluate=False, latency_size="none")
    t0 = time.time()
    rep = stage("distill").run(args.teacher, out, config, progress=True)
    rep["steps"] = args.steps
    rep["bench_wall_s"] = time.time() - t0
    with atomic_path(report) as tmp:
        tmp.write_text(json.dumps(portable(rep), indent=1))
    return out, rep


def score(model, limit: int | None, threads: int) -> dict:
    """PSNR / SSIM / CIEDE2000 / checker on the reference and the out-of-distribution sets."""
    from darkc.evaluate import evaluate

    out = {}
    for name in ("synthetic", "ood"):
        r = evaluate(str(model), name, threads=threads, limit=limit, progress=True)
        out["reference" if name == "synthetic" else "ood"] = {
            k: r[k] for k in ("psnr", "ssim", "deltae", "checker", "n")} | {
            "per_ratio": {k: {m: v[m] for m in ("psnr", "ssim")} for k, v in r["per_ratio"].items()}}
    return out


#: Devices each student's INT8 file is benched on (darkc bench), and the ARM thread counts (t threads on t cores).
HOST_DEVICE = "host"
ARM_DEVICES = ("cortex-a55", "cortex-a78", "cortex-x3")
NPU_DEVICES = ("ethos-u55-256", "ethos-u65-512")
ARM_THREADS = (1, 4)
FRAME_RAW = "1088x1920"       # raw HxW of a 1920x1080 frame padded to the size multiple


def device_cost(folder: Path, work: Path) -> dict:
    """``darkc bench`` of the student's full-integer TFLite (int8 I/O) at 1920x1080 on the host (LiteRT, 1 thread,
    measured), the emulated ARM cores at 1 and 4 threads (estimated) and the Ethos-U NPUs (Vela, tiled to the
    configuration's SRAM); the INT8 file is exported once and kept in ``work``."""
    from darkc.export import export
    from darkc.latency import bench
    from darkc.latency.validation import band_text

    int8 = work / "model-int8-1088x1920.tflite"
    if not int8.is_file():
        export(folder, int8, target="tflite", precision="int8", input_size=FRAME_RAW, samples=8, io="int8")
    out = {}
    host = bench(int8, devices=[HOST_DEVICE], threads=[1], runs=5, warmup=1)["devices"][HOST_DEVICE]
    out["host"] = {"ms": host["latency_ms"], "how": f"measured, {host['runtime']}, 1 thread, {host['cpu']}"}
    arm = bench(int8, devices=list(ARM_DEVICES), threads=list(ARM_THREADS))["devices"]
    for dev, r in arm.items():
        for t, by in r["by_threads"].items():
            out[f"{dev} x{t}"] = {"ms": by["latency_ms"], "band": r.get("error_band"),
                                  "how": f"estimated, {r['runtime']}, {by['cores']}, error band "
                                         f"{band_text(r.get('error_band'))}"}
    for dev, r in bench(int8, devices=list(NPU_DEVICES))["devices"].items():
        out[dev] = {"ms": r["latency_ms"], "how": r["method"]}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teacher", default="teacher")
    ap.add_argument("--chroma-weight", type=float, default=2.0, help="distill's chroma term (sRGB teachers)")
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--patch", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--limit", type=int, default=None, help="only the first N pairs of each set")
    ap.add_argument("--no-bench", action="store_true", help="skip the per-device latency of the students")
    ap.add_argument("--only", default=None, help="train only these labels (comma-separated); no report")
    ap.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "darkc-mobile-quality"))
    ap.add_argument("--out", default="benchmarks/results/mobile_quality")
    args = ap.parse_args(argv)

    import torch

    from darkc.models import count_macs, count_params, load_checkpoint, resolve_model_ref

    torch.set_num_threads(args.threads)
    only = set(args.only.split(",")) if args.only else None
    rows = []
    for label, arch, widths, options in VARIANTS:
        if only and label not in only:
            continue
        print(f"[mobile_quality] {label}", file=sys.stderr, flush=True)
        folder, rep = distill_variant(args, label, arch, widths, options)
        if only:
            continue
        model, spec = load_checkpoint(folder)
        rows.append({"label": label, "arch": arch, "widths": widths, "options": options,
                     "params": count_params(model), "gmacs": count_macs(model, (spec["in_channels"], *PACKED)) / 1e9,
                     "train_wall_s": rep.get("wall_s"), "command": rep["command"],
                     **score(folder, args.limit, args.threads),
                     "devices": None if args.no_bench else device_cost(folder, folder)})
    if only:
        return 0
    teacher, tspec = load_checkpoint(resolve_model_ref(args.teacher)[1])
    rows.insert(0, {"label": f"teacher ({args.teacher})", "arch": tspec["arch"], "widths": tspec.get("widths"),
                    "options": [], "params": count_params(teacher),
                    "gmacs": count_macs(teacher, (tspec["in_channels"], *PACKED)) / 1e9, "train_wall_s": None,
                    "command": (tspec.get("provenance") or {}).get("command"),
                    **score(args.teacher, args.limit, args.threads)})
    write_report(args, rows)
    return 0


def write_report(args, rows: list[dict]) -> None:
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = (f"python benchmarks/mobile_quality.py --out {args.out} --steps {args.steps} --batch-size {args.batch_size}"
           f" --patch {args.patch} --lr {args.lr} --teacher {args.teacher} --chroma-weight {args.chroma_weight}"
           + (f" --limit {args.limit}" if args.limit else "")
           + (" --no-bench" if args.no_bench else ""))
    t = rows[0]
    lines = [
        "# Mobile U-Net vs SID U-Net at matched MACs: quality", "", f"Command: `{cmd}`", "",
        f"Both students: fresh networks distilled from `{args.teacher}` (output + feature KD, chroma weight "
        f"{args.chroma_weight}, "
        f"{args.steps} steps, batch {args.batch_size}, {args.patch} px raw patches, Adam lr {args.lr} cosine, seed "
        f"{args.seed}) on synthetic pairs from the training sensors; trained on this host's CPU "
        f"({platform.machine()}, {args.threads} thread{'s' if args.threads > 1 else ''}, shared with other jobs: "
        "wall times are inflated). Same student budget, so the comparison is fair; neither student is trained to "
        "convergence (the shipped teacher took 7900 steps). Scored with `darkc eval`'s protocol: float sRGB after "
        "LibRaw's render with each file's own WB and matrix vs the rendered long exposure; SSIM scikit-image 7x7; "
        "CIEDE2000 mean (skimage); checker: coherent 2x2 amplitude in levels of 255. Reference = the validation set "
        "of the training sensors; OOD = the held-out sensor (`darkc eval --data ood`). MACs: conv + transposed conv, "
        "per 1920x1080 raw frame packed to 544x960 (padded to 16), FP32 model.", "",
        "| model | GMACs | params | ref PSNR | ref SSIM | ref dE | OOD PSNR | OOD SSIM | OOD dE | OOD - teacher | "
        "train wall |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        wall = f"{r['train_wall_s'] / 60:.0f} min" if r.get("train_wall_s") else "-"
        delta = r["ood"]["psnr"] - t["ood"]["psnr"]
        lines.append(f"| {r['label']} | {r['gmacs']:.3f} | {r['params']:,} | {r['reference']['psnr']:.2f} | "
                     f"{r['reference']['ssim']:.3f} | {r['reference']['deltae']:.2f} | {r['ood']['psnr']:.2f} | "
                     f"{r['ood']['ssim']:.3f} | {r['ood']['deltae']:.2f} | "
                     f"{'-' if r is t else f'{delta:+.2f} dB'} | {wall} |")
    lines += ["", "Per exposure ratio (PSNR dB, reference / OOD):", "",
              "| model | " + " | ".join(t["reference"]["per_ratio"]) + " |",
              "|---|" + "---|" * len(t["reference"]["per_ratio"])]
    for r in rows:
        cells = [f"{r['reference']['per_ratio'][k]['psnr']:.2f} / {r['ood']['per_ratio'][k]['psnr']:.2f}"
                 for k in t["reference"]["per_ratio"]]
        lines.append(f"| {r['label']} | " + " | ".join(cells) + " |")
    benched = [r for r in rows[1:] if r.get("devices")]
    if benched:
        devs = list(benched[0]["devices"])
        lines += ["", "## Latency per 1920x1080 raw frame, INT8 (`darkc bench` of each student's full-integer TFLite, "
                  "int8 I/O, exported at 1088x1920 raw)", "",
                  "| model | " + " | ".join(devs) + " |", "|---|" + "---|" * len(devs)]
        for r in benched:
            cells = []
            for d in devs:
                e = r["devices"][d]
                band = e.get("band")
                cells.append(f"{e['ms']:.1f}" + (f" ±{band['median_abs_pct']:.0f} %" if band else ""))
            lines.append(f"| {r['label']} | " + " | ".join(cells) + " |")
        lines += ["", "How each column was obtained:", ""]
        lines += [f"- {d}: {benched[0]['devices'][d]['how']}" for d in devs]
        lines += ["", "`cortex-* xN`: N threads on N such cores (XNNPACK's thread pool, every thread's instructions "
                  "counted under QEMU; serial work on one core plus each parallel region spread over the cores); "
                  "estimated, not measured on a phone; the band is the estimator's error on published phone "
                  "figures (benchmarks/results/estimator_validation.md)."]
    lines += ["", "Cost of more variants (random weights, 1 core/1 thread): [mobile_arch.md](mobile_arch.md).", "",
              f"![PSNR per ratio]({out.name}.png)", ""]
    lines += ["Commands of the students:", ""] + [f"- {r['label']}: `{r['command']}`" for r in rows[1:]] + [""]
    with atomic_path(out.with_suffix(".md")) as tmp:
        tmp.write_text("\n".join(lines))
    with atomic_path(out.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(portable({"command": cmd, "teacher": args.teacher, "rows": rows}), indent=1))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    ratios = list(t["reference"]["per_ratio"])
    width = 0.8 / len(rows)
    for ax, which in zip(axes, ("reference", "ood")):
        for i, r in enumerate(rows):
            ax.bar([j + i * width for j in range(len(ratios))],
                   [r[which]["per_ratio"][k]["psnr"] for k in ratios], width,
                   label=f"{r['label']} ({r['gmacs']:.2f} GMACs)")
        ax.set_xticks([j + width * (len(rows) - 1) / 2 for j in range(len(ratios))], ratios)
        ax.set_xlabel("exposure ratio")
        ax.set_ylabel("PSNR (dB)")
        ax.set_title(f"{which} set", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(out.with_suffix(".png")) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())

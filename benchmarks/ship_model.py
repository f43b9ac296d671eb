"""Ship a trained run as a packaged model: fp16 safetensors + model.json + MODEL_CARD.md.

    python benchmarks/ship_model.py --run RUN_DIR --name teacher --quality benchmarks/results/teacher_quality.json

RUN_DIR is a ``darkc train`` / ``darkc distill`` output folder (its top-level artifact is the best-validation
model; ``train_state.json`` holds the validation history). ``--quality`` is the JSON written by
``benchmarks/eval_quality.py`` for that model (model vs classical baselines per ratio), embedded in the card.
Any ``--note`` lines are added to the card verbatim (e.g. a change of schedule during training).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

import torch

from darkc.errors import atomic_path
from darkc.provenance import portable
from darkc.models import load_checkpoint, save_checkpoint
from darkc.models.complexity import count_macs, count_params
from darkc.models.pretrained import PRETRAINED_DIR, PRETRAINED_NAMES


def _history_table(state: dict) -> list[str]:
    rows = [h for h in state.get("history", []) if h.get("val")]
    if not rows:
        return []
    ratios = list(rows[0]["val"]["per_ratio"])
    lines = ["| step | train loss | val PSNR | val SSIM | " + " | ".join(f"{r} PSNR" for r in ratios) + " | wall (h) |",
             "|---|---|---|---|" + "---|" * len(ratios) + "---|"]
    for h in rows:
        v = h["val"]
        lines.append(f"| {h['step']} | {h['loss']:.4f} | {v['psnr']:.2f} | {v['ssim']:.4f} | "
                     + " | ".join(f"{v['per_ratio'][r]['psnr']:.2f}" for r in ratios)
                     + f" | {h['wall_s'] / 3600:.2f} |")
    return lines


def _quality_table(q: dict) -> list[str]:
    entries = [(q["model"], q)] + [(f"baseline: {k}", v) for k, v in q.get("baselines", {}).items()]
    ratios = list(q["per_ratio"])
    colour = "deltae" in q and "checker" in q
    lines = ["| method | " + " | ".join(f"{r} PSNR / SSIM" for r in ratios) + " | all PSNR / SSIM |"
             + (" CIEDE2000 | checkerboard (/255) |" if colour else ""),
             "|---|" + "---|" * (len(ratios) + 1 + 2 * colour)]
    for name, r in entries:
        lines.append(f"| {name} | " + " | ".join(f"{r['per_ratio'][k]['psnr']:.2f} / {r['per_ratio'][k]['ssim']:.3f}"
                                                 for k in ratios) + f" | {r['psnr']:.2f} / {r['ssim']:.3f} |"
                     + (f" {r['deltae']:.2f} | {r['checker']:.2f} |" if colour else ""))
    return lines


def gallery_section(png: str, card_dir: Path) -> list[str]:
    """The card's "What its output looks like" section: the gallery PNG, linked relative to the card."""
    rel = os.path.relpath(Path(png).resolve(), card_dir.resolve())
    return ["## What its output looks like", "",
            f"Best, median and worst reference pairs, crops beside the amplified input, the baselines and the other "
            f"shipped models, PSNR/SSIM per image (`python benchmarks/gallery.py`; numbers in "
            f"`{Path(png).with_suffix('.json').name}` beside the picture):", "", f"![gallery]({rel})"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", required=True)
    ap.add_argument("--name", required=True, choices=sorted(PRETRAINED_NAMES))
    ap.add_argument("--quality", default=None, help="eval_quality.py JSON of this model")
    ap.add_argument("--hardware", default=None, help="what it trained on (default: this host's CPU)")
    ap.add_argument("--note", action="append", default=[])
    ap.add_argument("--gallery", default=None, help="gallery PNG of this model (benchmarks/gallery.py) to show")
    args = ap.parse_args(argv)

    run = Path(args.run)
    model, spec = load_checkpoint(run)
    # the run's own paths (its -o, a --student beside it) recorded as RUN/...: no machine path ships
    runs_root = run.absolute().parent
    spec = portable(spec, run=runs_root)
    state = json.loads((run / "train_state.json").read_text()) if (run / "train_state.json").is_file() else {}
    prov = spec.get("provenance", {})
    dest = PRETRAINED_DIR / args.name
    save_checkpoint(model, spec, dest, dtype=torch.float16)
    shipped, _ = load_checkpoint(dest)
    cin = spec["in_channels"]
    from darkc.data import cfa as cfa_mod

    scale = cfa_mod.scale(spec["cfa"])                             # raw px per packed px: 2 Bayer, 3 X-Trans
    macs = {res: count_macs(model, (cin, h // scale, w // scale)) for res, (h, w) in
            (("1920x1080", (1080, 1920)), ("4240x2832", (2832, 4240)))}
    train = prov.get("train", {})
    cfg = train.get("config", {})
    hardware = args.hardware or f"{platform.processor() or platform.machine()} CPU, {os.cpu_count()} cores, " \
                                f"torch {torch.__version__}"
    lines = [f"# darkc `{args.name}`", "",
             f"{spec['arch']} ({spec['cfa']}), widths {spec.get('widths')}, {count_params(model):,} parameters; "
             f"{macs['1920x1080'] / 1e9:.2f} GMACs per 1920x1080 raw frame and {macs['4240x2832'] / 1e9:.1f} GMACs "
             f"per 4240x2832 (conv + transposed-conv multiply-accumulates, packed input padded to 16).",
             "Weights stored as float16 safetensors (computation in float32 on load).", "",
             "## How it was made", "",
             f"- Command: `{prov.get('command')}`",
             f"- Stage: {prov.get('stage')}; parent: {prov.get('parent')}",
             f"- Data: {json.dumps(prov.get('data'))}",
             f"- Loss: {prov.get('loss', prov.get('kd'))}",
             f"- Steps: {state.get('step', train.get('step'))} trained, shipped weights from step {train.get('step')} "
             f"(batch {cfg.get('batch_size')}, Adam lr {cfg.get('lr')} "
             f"{cfg.get('schedule')} to {cfg.get('min_lr')}, seed {cfg.get('seed')})",
             f"- Wall time: {train.get('wall_s', 0) / 3600:.2f} h on {hardware} "
             f"(device {train.get('device')}, {train.get('world_size')} process(es))",
             f"- Output: {spec.get('output', 'srgb')}"
             + (" (clean packed raw; LibRaw renders it with each file's own white balance and colour matrix)"
                if spec.get("output") == "raw" else " (sRGB, as SID)")
             + f"; noise input: {spec.get('input', {}).get('noise', 'none')}"
             + (" (a channel with the capture's predicted noise std: DNG NoiseProfile, the camera's darkc profile, "
                "or an estimate from the file)" if spec.get("input", {}).get("noise") == "std-map" else ""),
             "- Selected: the checkpoint with the best validation PSNR on the reference validation set "
             f"(seeded synthetic {'Fuji' if spec['cfa'] == 'xtrans' else 'Sony'}-like pairs of images never used "
             "for training)" + ("; for raw-output models the PSNR of the packed raw against the long exposure's."
                                if spec.get("output") == "raw" else ".")]
    lines += [f"- Note: {n}" for n in args.note]
    hist = _history_table(state)
    if hist:
        lines += ["", "## Validation during training (reference set, whole frames)", ""] + hist
    if args.quality:
        q = json.loads(Path(args.quality).read_text())
        lines += ["", "## Quality on the reference validation set", "",
                  f"{q['n']} pairs; {q.get('protocol', '')}", ""] + _quality_table(q)
        if q.get("ood"):
            lines += ["", "## Quality on the out-of-distribution set (a camera held out of training)", "",
                      f"{q['ood']['n']} pairs: the same scenes on the held-out sensor (`darkc eval --data ood`)", ""]
            lines += _quality_table(q["ood"])
        lines += ["", f"Reproduce: `python benchmarks/eval_quality.py --model {args.name}` "
                      f"(or `darkc eval --model {args.name} --baselines`)."]
    if args.gallery:
        lines += ["", *gallery_section(args.gallery, dest)]
    lines += ["", "## Licence and data", "",
              "Trained only on synthetic low-light raw made by darkc from clean photos it ships or installs "
              "(scikit-image and sporco sample photos, Debian plasma-workspace-wallpapers photographs under "
              "LGPL-3/CC-BY-SA-4.0, procedural dead-leaves images). Not trained on the real SID data; figures on "
              "real captures will differ.", ""]
    with atomic_path(dest / "MODEL_CARD.md") as tmp:
        Path(tmp).write_text(portable("\n".join(lines), run=runs_root))
    diff = max((a.float() - b.float()).abs().max().item() for a, b in
               zip(model.state_dict().values(), shipped.state_dict().values()))
    print(f"shipped {run} as {dest} (fp16, max weight change {diff:.2e})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

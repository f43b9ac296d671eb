"""The ``darkc`` command line: parse, call the stage's function, print. No logic lives here."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .errors import DarkcError


def _ints(value: str | None, what: str) -> list[int] | None:
    if value is None:
        return None
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise DarkcError(f"{what} must be comma-separated integers, got {value!r}") from None


def _write_or_print(text: str, out: str | None) -> None:
    if out:
        from .errors import atomic_path
        with atomic_path(out) as tmp:
            Path(tmp).write_text(text)
        click.echo(f"wrote {out}")
    else:
        click.echo(text)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="darkc")
def cli() -> None:
    """darkc: low-light raw enhancement (SID U-Net) from teacher to phone-ready model."""


@cli.command()
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="output folder (SID layout)")
@click.option("--count", type=int, default=None, help="number of scenes (default: every image of the split)")
@click.option("--size", type=int, default=None, help="longer image side in raw px (default 768 Bayer, 1152 X-Trans)")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--cfa", type=click.Choice(["bayer", "xtrans"]), default="bayer", show_default=True)
@click.option("--profile", default=None, help="camera profile name or file from darkc calibrate (default: "
              "sony-a7s2-like / fuji-xt2-like)")
@click.option("--images", multiple=True, type=click.Path(), help="folder of clean photos (repeatable)")
@click.option("--split", type=click.Choice(["test", "train", "val", "ood"]), default="test", show_default=True,
              help="'val' writes the project's reference validation set, 'ood' the out-of-distribution set (the held-out "
                   "sensor); both ignore --images/--seed")
@click.option("--ratios", default="100,250,300", show_default=True)
@click.option("--video", is_flag=True, help="write one raw video clip instead: --count frames (default 24), --size "
              "(default 512), the first of --ratios; dark DNG frames, ground truth and true optical flow")
@click.option("--motion", type=click.Choice(["mixed", "pan", "zoom", "jitter", "static"]), default="mixed",
              show_default=True, help="--video: camera motion (mixed = pan + zoom + jitter)")
@click.option("--objects", type=int, default=2, show_default=True, help="--video: moving objects (occlusions)")
@click.option("--cuts", default="", help="--video: scene cuts, the first frame of each new shot, e.g. 8,16")
def synth(out, count, size, seed, cfa, profile, images, split, ratios, video, motion, objects, cuts) -> None:
    """Write synthetic low-light raw pairs as DNG files in the SID layout (or a raw video clip with --video)."""
    if video:
        from .video.synth import DEFAULT_FRAMES, DEFAULT_SIZE, write_clip
        res = write_clip(out, frames=count or DEFAULT_FRAMES, size=size or DEFAULT_SIZE, seed=seed, cfa=cfa,
                         profile=profile, images=list(images) or None, motion=motion, objects=objects,
                         ratio=float(_ints(ratios, "--ratios")[0]), cuts=tuple(_ints(cuts, "--cuts")) if cuts else ())
        click.echo(f"wrote {res['frames']} frames ({res['size'][1]}x{res['size'][0]}, x{res['ratio']:g}, camera "
                   f"{res['motion']}, cuts {list(res['cuts']) or 'none'}) with ground truth and flow to {out}")
        return
    from .data.synth import synthesize
    res = synthesize(out, count=count, size=size, seed=seed, cfa=cfa, profile=profile, images=list(images),
                     split=split, ratios=tuple(_ints(ratios, "--ratios")))
    click.echo(f"wrote {res['pairs']} pairs of {res['scenes']} scenes to {out} (list: {res['list']})")


@cli.command()
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="run / artifact folder")
@click.option("--data", default="synthetic", show_default=True, help="'synthetic' or a SID-layout folder / list file")
@click.option("--images", multiple=True, type=click.Path(), help="clean photo folders for synthetic data (repeatable)")
@click.option("--arch", default="sid-unet", show_default=True)
@click.option("--widths", default=None, help="level widths, e.g. 32,64,128,256,512")
@click.option("--cfa", type=click.Choice(["bayer", "xtrans"]), default="bayer", show_default=True)
@click.option("--profile", default=None,
              help="camera profile name or file (darkc calibrate) for synthetic data, or 'pool' (default for --output raw: the CFA's sensor pool)")
@click.option("--output", "output_kind", type=click.Choice(["srgb", "raw"]), default="srgb", show_default=True,
              help="model output: sRGB (SID) or clean raw rendered by LibRaw with each file's own colour")
@click.option("--noise", "noise_input", type=click.Choice(["none", "std-map"]), default="none", show_default=True,
              help="noise conditioning: an extra input channel with the capture's predicted noise std")
@click.option("--loss", default="l1", show_default=True, help="l1|mse|ssim|ms-ssim|zamir|zamir-noperc|perceptual|l1-chroma|l1-gamma|isp-l1 (raw-output models)")
@click.option("--patch", type=int, default=512, show_default=True, help="training patch side in raw px")
@click.option("--batch-size", type=int, default=4, show_default=True, help="global batch")
@click.option("--steps", type=int, default=20000, show_default=True)
@click.option("--lr", type=float, default=1e-4, show_default=True)
@click.option("--schedule", type=click.Choice(["cosine", "step"]), default="cosine", show_default=True)
@click.option("--val", default="reference", show_default=True, help="'reference', 'none', or a SID folder")
@click.option("--val-every", type=int, default=500, show_default=True)
@click.option("--ckpt-every", type=int, default=500, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=int, default=None)
@click.option("--init", default=None, help="start from this artifact's weights")
@click.option("--resume", is_flag=True, help="continue the run in --out from its last checkpoint")
def train(out, data, images, arch, widths, cfa, profile, output_kind, noise_input, loss, patch, batch_size, steps, lr,
          schedule, val, val_every, ckpt_every, seed, threads, init, resume) -> None:
    """Train a model (the teacher by default); works under torchrun for DDP."""
    from .train import DataOptions, TrainConfig, train as run
    summary = run(out, arch=arch, widths=_ints(widths, "--widths"), loss=loss, init=init, resume=resume,
                  output=output_kind, noise=noise_input,
                  data=DataOptions(data=data, images=list(images), cfa=cfa, profile=profile, patch=patch, val=val),
                  cfg=TrainConfig(steps=steps, batch_size=batch_size, lr=lr, schedule=schedule, val_every=val_every,
                                  ckpt_every=ckpt_every, seed=seed, threads=threads))
    best = summary["best"]
    msg = f"trained {summary['steps']} steps in {summary['wall_s']:.0f} s on {summary['device']}"
    if best:
        msg += f"; best validation PSNR {best['val']['psnr']:.2f} dB / SSIM {best['val']['ssim']:.4f} at step {best['step']}"
    click.echo(msg + f"; artifact: {out}")


@cli.command(name="eval")
@click.option("--model", "models", multiple=True, help="shipped name, artifact folder, .onnx or .tflite (default "
              "teacher); repeat it with --gallery")
@click.option("--data", default="synthetic", show_default=True, help="'synthetic' (reference set) or a SID folder/list")
@click.option("--baselines", is_flag=True, help="also score the classical pipelines on the same pairs")
@click.option("--format", "fmt", type=click.Choice(["table", "md", "json"]), default="table", show_default=True)
@click.option("--threads", type=int, default=None)
@click.option("--limit", type=int, default=None, help="only the first N pairs")
@click.option("-o", "--out", default=None, type=click.Path(dir_okay=False), help="write the report here")
@click.option("--gallery", default=None, type=click.Path(dir_okay=False), help="write OUT.png instead: crops of the "
              "amplified input, --baselines, each --model and the reference, labelled with PSNR/SSIM")
@click.option("--images", default=None, help="--gallery: pair IDs to show, e.g. 10001_00,10003_01 (default: best, "
              "median, worst by the first --model)")
def eval_cmd(models, data, baselines, fmt, threads, limit, out, gallery, images) -> None:
    """PSNR/SSIM per ratio and overall, worst image; torch, ONNX and TFLite models alike."""
    from .evaluate import evaluate, format_result
    models = list(models) or ["teacher"]
    if gallery:
        from .gallery import make_gallery
        rep = make_gallery(models, gallery, data, baselines=baselines, threads=threads,
                           images=images.split(",") if images else None)
        click.echo(f"wrote {gallery} ({len(rep['images'])} pairs x {len(rep['images'][0]['panels'])} panels) and "
                   f"its numbers {Path(gallery).with_suffix('.json')}")
        return
    if images or len(models) > 1:
        raise DarkcError("--images and a repeated --model go with --gallery OUT.png; pass one --model to score it")
    model = models[0]
    res = evaluate(model, data, baselines=baselines, threads=threads, limit=limit, progress=fmt != "json" or bool(out))
    _write_or_print(format_result(res, fmt), out)


@cli.command()
@click.argument("raw", type=click.Path())
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False),
              help="output .png, .tif/.tiff (16-bit) or .jpg/.jpeg; gets the raw's EXIF")
@click.option("--model", default="teacher", show_default=True, help="shipped name, artifact folder, .onnx or .tflite")
@click.option("--ratio", type=float, default=None, help="exposure ratio (default: from SID-style file names)")
@click.option("--bits", type=click.Choice(["8", "16"]), default=None, help="bits per channel (default: 8 for PNG "
              "and JPEG, 16 for TIFF)")
@click.option("--quality", type=int, default=None, help="JPEG quality 1-100 (default 95)")
@click.option("--tile", type=int, default=1024, show_default=True, help="largest tile side in packed px (memory)")
@click.option("--overlap", type=int, default=None, help="tile overlap in packed px (default 224; a quarter of a small fixed window)")
@click.option("--threads", type=int, default=None)
def enhance(raw, out, model, ratio, bits, quality, tile, overlap, threads) -> None:
    """Enhance one raw file into an image turned and tagged as a raw converter would, in tiles (bounded memory)."""
    from .enhance import enhance_file
    rep = enhance_file(raw, out, model=model, ratio=ratio, bits=None if bits is None else int(bits), tile=tile,
                       overlap=overlap, threads=threads, quality=quality)
    click.echo(json.dumps(rep) if not sys.stdout.isatty() else
               f"wrote {rep.get('output', out)} ({rep.get('width')}x{rep.get('height')}, ratio {rep.get('ratio')}, "
               f"{rep.get('seconds', 0):.1f} s)")


@cli.command()
@click.option("--model", default="teacher", show_default=True, help="shipped name or checkpoint folder (SID U-Net)")
@click.option("--ratio", type=float, default=None, help="fraction of channels removed, in (0, 1)")
@click.option("--target-macs", default=None, help="MAC budget per raw frame instead of --ratio, e.g. 5G@1920x1080")
@click.option("--importance", type=click.Choice(["l1", "l2", "taylor", "random"]), default="l1", show_default=True)
@click.option("--scope", type=click.Choice(["uniform", "global"]), default="uniform", show_default=True,
              help="same ratio per layer, or one global ranking")
@click.option("--round-to", type=int, default=8, show_default=True, help="pruned widths are multiples of this")
@click.option("--steps", type=int, default=1, show_default=True, help="iterative pruning steps")
@click.option("--finetune-iters", type=int, default=0, show_default=True,
              help="fine-tuning iterations after each step, against the unpruned model's output")
@click.option("--data", default="synthetic", show_default=True, help="fine-tuning inputs: 'synthetic' or a folder of raws")
@click.option("--batch-size", type=int, default=4, show_default=True)
@click.option("--patch", type=int, default=256, show_default=True, help="fine-tuning patch side in raw px")
@click.option("--lr", type=float, default=1e-4, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--no-rescale", is_flag=True,
              help="keep the pruned layers' weights as they are (default: rescale each layer to the parent's "
                   "activation scale on 4 inputs from --data)")
@click.option("--no-eval", is_flag=True, help="skip PSNR/SSIM of the parent and the pruned model")
@click.option("--eval-limit", type=int, default=None, help="only the first N validation pairs")
@click.option("--latency-size", default="1920x1080", show_default=True, help="raw WxH for host latency, or 'none'")
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="pruned artifact folder")
def prune(model, ratio, target_macs, importance, scope, round_to, steps, finetune_iters, data, batch_size, patch,
          lr, seed, no_rescale, no_eval, eval_limit, latency_size, out) -> None:
    """Prune channels (Torch-Pruning), fine-tune against the original, report size/MACs/latency/quality."""
    from .compress.prune import format_report, prune as run
    report = run(model, out, ratio=ratio, target_macs=target_macs, importance=importance, scope=scope,
                 round_to=round_to, steps=steps, finetune_iters=finetune_iters, data=data, batch_size=batch_size,
                 patch=patch, lr=lr, seed=seed, evaluate=not no_eval, eval_limit=eval_limit,
                 latency_size=latency_size, rescale=not no_rescale)
    click.echo(format_report(report))
    click.echo(f"wrote {out} (report: prune_report.md, prune_report.json)")


@cli.command()
@click.option("--teacher", default="teacher", show_default=True, help="shipped name or checkpoint folder")
@click.option("--student", default=None, type=click.Path(), help="student init: a checkpoint (e.g. darkc prune output)")
@click.option("--student-widths", default=None, help="fresh student with these 5 level widths, e.g. 8,16,32,64,128")
@click.option("--student-arch", default=None, help="architecture of a fresh student (default: the teacher's)")
@click.option("--data", default="synthetic", show_default=True,
              help="'synthetic', a SID-layout folder, or a folder of raw files (unlabelled)")
@click.option("--unlabelled", default=None, type=click.Path(), help="folder of raw captures without ground truth")
@click.option("--images", multiple=True, type=click.Path(), help="clean photo folders for synthetic data")
@click.option("--profile", default=None, help="camera profile name or file (darkc calibrate) for synthetic data")
@click.option("--kd", default="output", show_default=True, help="distillation terms: output, features or both")
@click.option("--gt-weight", type=float, default=0.0, show_default=True, help="weight of the ground-truth L1 term")
@click.option("--feature-weight", type=float, default=0.1, show_default=True)
@click.option("--beta", type=float, default=0.99, show_default=True, help="L1 share of the output term (rest MS-SSIM)")
@click.option("--chroma-weight", type=float, default=0.0, show_default=True,
              help="weight of an L1 term on the output's chroma vs the teacher's (keeps small students off grey)")
@click.option("--steps", type=int, default=2000, show_default=True)
@click.option("--batch-size", type=int, default=4, show_default=True)
@click.option("--patch", type=int, default=512, show_default=True, help="patch side in raw px")
@click.option("--lr", type=float, default=5e-4, show_default=True)
@click.option("--val-every", type=int, default=500, show_default=True, help="0: no validation")
@click.option("--ckpt-every", type=int, default=250, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=int, default=None)
@click.option("--resume", is_flag=True, help="continue the run in -o")
@click.option("--no-eval", is_flag=True, help="skip the reference-set evaluation of teacher and student")
@click.option("--eval-limit", type=int, default=None, help="only the first N validation pairs")
@click.option("--latency-size", default="1920x1080", show_default=True, help="raw WxH for host latency, or 'none'")
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="student run / artifact folder")
def distill(teacher, student, student_widths, student_arch, data, unlabelled, images, profile, kd, gt_weight,
            feature_weight, beta, chroma_weight, steps, batch_size, patch, lr, val_every, ckpt_every, seed, threads, resume,
            no_eval, eval_limit, latency_size, out) -> None:
    """Distil the teacher into a compact student (output and feature KD, with or without ground truth)."""
    from .compress.distill import distill as run, format_report
    report = run(teacher, out, student=student, student_widths=_ints(student_widths, "--student-widths"),
                 student_arch=student_arch, data=data, unlabelled=unlabelled, images=list(images), kd=kd,
                 gt_weight=gt_weight, feature_weight=feature_weight, beta=beta, chroma_weight=chroma_weight,
                 steps=steps, batch_size=batch_size, patch=patch, lr=lr, val_every=val_every, ckpt_every=ckpt_every,
                 seed=seed, threads=threads, resume=resume, evaluate=not no_eval, eval_limit=eval_limit, latency_size=latency_size,
                 profile=profile)
    if "teacher_stats" in report:
        click.echo(format_report(report))
        click.echo(f"wrote {out} (report: distill_report.md, distill_report.json)")


def _int8_options(fn):
    """Calibration options shared by ``export`` (with --precision int8) and ``quantize``."""
    for opt in reversed([
        click.option("--calib", default="synthetic", show_default=True,
                     help="int8: 'synthetic' or a folder of dark raw files (SID short/ names give the ratio)"),
        click.option("--calib-method", default="minmax", show_default=True, help="int8: minmax | percentile | entropy"),
        click.option("--samples", type=int, default=32, show_default=True, help="int8: calibration samples"),
        click.option("--calib-size", type=int, default=256, show_default=True,
                     help="int8: packed side of calibration samples (dynamic graphs; fixed ones use their size)"),
        click.option("--calib-ratio", type=float, default=None, help="int8: exposure ratio for raws without SID names"),
        click.option("--reduce-range", default="auto", show_default=True,
                     help="int8: 7-bit weights: auto (on for x86 CPUs without VNNI) | on | off"),
    ]):
        fn = opt(fn)
    return fn


@cli.command()
@click.option("--model", required=True, help="checkpoint folder or shipped name")
@click.option("--target", default="onnx", show_default=True, help="onnx | tflite")
@click.option("--precision", default="fp32", show_default=True, help="fp32 | fp16 | int8")
@click.option("--input-size", default="dynamic", show_default=True,
              help="'dynamic' or HxW in raw px, e.g. 1088x1920 (must pack to multiples of 16)")
@_int8_options
@click.option("--io", default="float", show_default=True,
              help="tflite int8: dtype of the model's input and output, float | int8")
@click.option("--int8-activation", default="leaky_relu", show_default=True,
              help="tflite int8: LeakyReLU as leaky_relu (fast on XNNPACK) | prelu (same result on every kernel)")
@click.option("--no-check", is_flag=True, help="keep the export even if it differs from PyTorch beyond the threshold")
@click.option("-o", "--out", default=None, type=click.Path(),
              help="artifact folder, or FILE.onnx / FILE.tflite in one (default: the model's own folder)")
def export(model, target, precision, input_size, calib, calib_method, samples, calib_size, calib_ratio, reduce_range,
           io, int8_activation, no_check, out) -> None:
    """Export to ONNX (or TFLite) at fp32/fp16/int8, checked against PyTorch; writes an artifact folder."""
    from .export import command_line, export as run, format_report
    ctx = click.get_current_context()
    report = run(model, out, target=target, precision=precision, input_size=input_size, calib=calib,
                 calib_method=calib_method, samples=samples, calib_size=calib_size, calib_ratio=calib_ratio,
                 reduce_range=reduce_range, io=io, int8_activation=int8_activation, check=not no_check,
                 command=command_line(ctx.command_path, ctx.params))
    click.echo(format_report(report))


@cli.command()
@click.argument("exported", type=click.Path())
@click.option("--model", default=None, help="PyTorch checkpoint folder or shipped name it was exported from "
              "(default: the model.safetensors + model.json beside FILE)")
@click.option("--samples", type=int, default=4, show_default=True, help="synthetic validation inputs")
@click.option("--format", "fmt", type=click.Choice(["table", "md", "json"]), default="table", show_default=True)
@click.option("-o", "--out", default=None, type=click.Path(dir_okay=False), help="write the table here")
def diagnose(exported, model, samples, fmt, out) -> None:
    """Per-layer SQNR of an exported .onnx/.tflite (int8 or float) against its PyTorch model."""
    from .export.diagnose import format_table, layer_sqnr
    _write_or_print(format_table(layer_sqnr(exported, model, samples), fmt), out)


@cli.command()
@click.option("--model", required=True, help="checkpoint folder or shipped name")
@click.option("--input-size", default="dynamic", show_default=True, help="'dynamic' or HxW in raw px")
@_int8_options
@click.option("--no-check", is_flag=True, help="keep the model even if it differs from PyTorch beyond the threshold")
@click.option("-o", "--out", default=None, type=click.Path(),
              help="INT8 artifact folder, or FILE.onnx in one (default: the model's own folder)")
def quantize(model, input_size, calib, calib_method, samples, calib_size, calib_ratio, reduce_range, no_check,
             out) -> None:
    """INT8 ONNX (ONNX Runtime static QDQ) with its calibration record; same as export --precision int8."""
    from .export import command_line, format_report, quantize as run
    ctx = click.get_current_context()
    report = run(model, calib=calib, out=out, method=calib_method, samples=samples, input_size=input_size,
                 calib_size=calib_size, calib_ratio=calib_ratio, reduce_range=reduce_range, check=not no_check,
                 command=command_line(ctx.command_path, ctx.params))
    click.echo(format_report(report))


@cli.command()
@click.argument("recipe", type=click.Path())
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="run folder")
@click.option("--from", "from_stage", default=None, help="re-run from this stage on (prune, distill, quantize, "
              "export, bench, eval)")
def pipeline(recipe, out, from_stage) -> None:
    """Run a recipe: prune -> distill -> quantize -> export -> bench -> eval, skipping finished stages."""
    from .pipeline import run_pipeline
    res = run_pipeline(recipe, out, from_stage=from_stage)
    for stage, what in res["stages"].items():
        click.echo(f"{stage:9s} {what}")
    click.echo(f"wrote {out}/report.md (report.json, report.png)")


@cli.command()
@click.argument("input", type=click.Path())
@click.option("-o", "--out", required=True, type=click.Path(), help="OUT.mp4 (H.264) or a folder for PNG frames")
@click.option("--model", default=None, help="shipped name, artifact folder, .onnx or .tflite (default: the shipped "
              "student, else the teacher)")
@click.option("--temporal", type=click.Choice(["none", "ema", "motion-adaptive", "flow", "fast-flow"]), default=None,
              help="temporal filter (default: fast-flow)")
@click.option("--strength", type=float, default=None, help="largest history weight in [0, 1) (default 0.8)")
@click.option("--domain", type=click.Choice(["output", "raw", "both"]), default=None,
              help="filter the network's output, its raw input, or both (default: output)")
@click.option("--ratio", type=float, default=None, help="exposure ratio (default: the synthetic clip's)")
@click.option("--fps", type=float, default=None, help="video frame rate (default: the clip's, else 30)")
@click.option("--png", default=None, type=click.Path(file_okay=False), help="also write PNG frames here")
@click.option("--metrics", default=None, type=click.Path(dir_okay=False), help="write the report as JSON "
              "(psnr, ssim, flicker, warp_error, fps vs the clip's ground truth)")
@click.option("--skip-bad", is_flag=True, help="leave out unreadable or mismatched frames with a warning")
@click.option("--threads", type=int, default=None)
@click.option("--profile", default=None, help="sRGB video input: camera profile it is unprocessed to raw with "
              "(default: the model CFA's default)")
def video(input, out, model, temporal, strength, domain, ratio, fps, png, metrics, skip_bad, threads, profile) -> None:
    """Enhance dark raw frames (a folder, a synth --video clip) or an ordinary video file / image folder (made dark
    raw by unprocessing, Brooks et al. 2019) into a temporally filtered video."""
    from .video import enhance_video, format_report
    rep = enhance_video(input, out, model=model, temporal=temporal, strength=strength, domain=domain, ratio=ratio,
                        fps=fps, png=png, metrics=metrics, skip_bad=skip_bad, threads=threads, profile=profile)
    click.echo(format_report(rep))


@cli.command()
@click.argument("model", required=False)
@click.option("--runtime", type=click.Choice(["ort", "litert", "torch"]), default=None,
              help="host runtime (default: the file's own; ort for a checkpoint)")
@click.option("--threads", default="1", show_default=True, help="host thread counts, e.g. 1,2,4")
@click.option("--size", default=None, help="raw WxH the latency is for (default: the model's fixed size, else "
              "1920x1080)")
@click.option("--device", "devices", default="host", show_default=True,
              help="comma-separated: host, cortex-a55, cortex-a78, cortex-x3, ethos-u55-256, ethos-u65-512, ...")
@click.option("--format", "fmt", type=click.Choice(["table", "md", "json"]), default="table", show_default=True)
@click.option("--runs", type=int, default=10, show_default=True, help="timed host runs per thread count")
@click.option("--warmup", type=int, default=2, show_default=True, help="untimed host runs first")
@click.option("--arm-size", default="128x128", show_default=True, help="raw WxH the ARM emulator runs at "
              "(latency is scaled by pixels to --size)")
@click.option("--arm-repeats", type=int, default=1, show_default=True, help="emulator runs per core (spread)")
@click.option("--no-parity", is_flag=True, help="skip the aarch64 vs host output comparison")
@click.option("-o", "--out", default=None, type=click.Path(dir_okay=False),
              help="also write PREFIX.md, PREFIX.json and PREFIX.png")
@click.option("--setup-arm", is_flag=True, help="build the emulated ARM setup (QEMU 10 + aarch64 userland, cached "
              "under ~/.cache/darkc/arm; idempotent) and exit, or continue with MODEL")
def bench(model, runtime, threads, size, devices, fmt, runs, warmup, arm_size, arm_repeats, no_parity, out,
          setup_arm) -> None:
    """Latency on the host (measured), emulated ARM cores and Ethos-U NPUs (estimated), every figure labelled."""
    from .latency import bench as run, format_result, write_report
    if setup_arm:
        from .latency.arm import run_setup
        click.echo(f"emulated ARM setup ready in {run_setup()}", err=True)
        if model is None:
            return
    if model is None:
        raise DarkcError("darkc bench needs MODEL (a .onnx, a .tflite, a checkpoint folder or a shipped name), "
                         "or --setup-arm alone")
    res = run(model, devices=devices, size=size, threads=_ints(threads, "--threads"), runs=runs, warmup=warmup,
              runtime=runtime, arm_size=arm_size, arm_repeats=arm_repeats, parity=not no_parity)
    click.echo(format_result(res, fmt))
    if out:
        paths = write_report([res], out, title=f"darkc bench {model}")
        click.echo(f"wrote {paths['md']} ({paths['json']}, {paths['png']})", err=True)


@cli.command()
@click.argument("frames", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False), help="profile file to write (.toml)")
@click.option("--name", default=None, help="profile name (default: the output file's stem)")
def calibrate(frames, out, name) -> None:
    """Fit a camera profile from raw frames of one sensor: dark frames and flat-field (or static-burst) pairs at
    two or more ISOs. Use the file with --profile FILE in synth, train and distill."""
    from .calibrate import format_record, run
    profile, record = run(list(frames), out, name=name)
    click.echo(format_record(profile, record))
    click.echo(f"wrote {out}")


def _lock_output(callback, artifact_file: bool = False):
    """Run a command holding :func:`darkc.errors.output_lock` on its ``-o`` output (two runs writing the same
    output: the second is refused). ``artifact_file``: ``-o`` names a file inside an artifact folder that
    every export into it rewrites (model.json), so the folder is locked."""
    import functools

    from .errors import output_lock

    @functools.wraps(callback)
    def locked(*args, **kwargs):
        out = kwargs.get("out")
        if not out:
            return callback(*args, **kwargs)
        with output_lock(Path(out).parent if artifact_file and Path(out).suffix else out):
            return callback(*args, **kwargs)
    return locked


for _command in cli.commands.values():
    if any(p.name == "out" for p in _command.params):
        _command.callback = _lock_output(_command.callback, artifact_file=_command.name == "export")


def main(argv: list[str] | None = None) -> int:
    """Console entry point: one-line errors, non-zero exit."""
    try:
        cli.main(args=argv, prog_name="darkc", standalone_mode=False)
    except DarkcError as exc:
        click.echo(f"error: {exc}", err=True)
        return 1
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())

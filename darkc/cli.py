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


def stage_options(name: str):
    """The options of stage ``name``, generated from its config dataclass (:mod:`darkc.stages`)."""
    from .stages import cli_options, stage

    return cli_options(stage(name).Config)


model_option = click.option("--model", default="teacher", show_default=True,
                            help="what the stage starts from: shipped name or artifact folder")


def out_option(what: str, dir_only: bool = True):
    return click.option("-o", "--out", required=True, type=click.Path(file_okay=not dir_only), help=what)


def report_options(files: str, unless: str):
    """``--format`` (what is printed) and ``-o DIR`` (the report folder) of a command with another mode."""
    def decorate(fn):
        fn = click.option("-o", "--out", default=None, type=click.Path(file_okay=False),
                          help=f"report folder: {files} (required unless {unless})")(fn)
        return click.option("--format", "fmt", type=click.Choice(["table", "md", "json"]), default="table",
                            show_default=True, help="what is printed (the report files hold every format)")(fn)
    return decorate


def _run_stage(name: str, model: str, out: str, params: dict, fmt: str | None = None, progress: bool = True) -> None:
    """Build the stage's config from the parsed options, run it, print its summary."""
    from .stages import config_from_cli, stage

    mod = stage(name)
    report = mod.run(model, out, config_from_cli(mod.Config, params), progress=progress)
    text = mod.summary(report, fmt) if fmt else mod.summary(report)
    if text:
        click.echo(text)
    if fmt:
        click.echo(f"wrote {', '.join(report['report_files'])}", err=True)


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
@click.option("--arch", default="sid-unet", show_default=True,
              help="architecture: a built-in name, a 'darkc.archs' entry point, or an import path package.module:build "
                   "(a function spec -> nn.Module; model.json records it)")
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
@stage_options("eval")
@report_options("eval_report.md, eval_report.json", "--gallery")
@click.option("--gallery", default=None, type=click.Path(dir_okay=False), help="write OUT.png instead: crops of the "
              "amplified input, --baselines, each --model and the reference, labelled with PSNR/SSIM")
@click.option("--images", default=None, help="--gallery: pair IDs to show, e.g. 10001_00,10003_01 (default: best, "
              "median, worst by the first --model)")
def eval_cmd(models, fmt, out, gallery, images, **params) -> None:
    """PSNR/SSIM per ratio and overall, worst image; torch, ONNX and TFLite models alike."""
    models = list(models) or ["teacher"]
    if gallery:
        from .gallery import make_gallery
        rep = make_gallery(models, gallery, params["data"], baselines=params["baselines"], threads=params["threads"],
                           images=images.split(",") if images else None, srgb_anchor=params["srgb_anchor"])
        click.echo(f"wrote {gallery} ({len(rep['images'])} pairs x {len(rep['images'][0]['panels'])} panels) and "
                   f"its numbers {Path(gallery).with_suffix('.json')}")
        return
    if images or len(models) > 1:
        raise DarkcError("--images and a repeated --model go with --gallery OUT.png; pass one --model to score it")
    if out is None:
        raise DarkcError("darkc eval needs -o DIR for its report (eval_report.md, eval_report.json)")
    _run_stage("eval", models[0], out, params, fmt=fmt, progress=fmt != "json")


@cli.command()
@click.argument("raw", type=click.Path())
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False),
              help="output .png, .tif/.tiff (16-bit) or .jpg/.jpeg; gets the raw's EXIF")
@click.option("--model", default=None, help="shipped name, artifact folder, .onnx or .tflite (default: teacher-raw on "
              "Bayer raws, each file's own colour; teacher-xtrans on X-Trans)")
@click.option("--ratio", type=float, default=None, help="exposure ratio (default: from SID-style file names)")
@click.option("--bits", type=click.Choice(["8", "16"]), default=None, help="bits per channel (default: 8 for PNG "
              "and JPEG, 16 for TIFF)")
@click.option("--quality", type=int, default=None, help="JPEG quality 1-100 (default 95)")
@click.option("--tile", type=int, default=1024, show_default=True, help="largest tile side in packed px (memory)")
@click.option("--overlap", type=int, default=None, help="tile overlap in packed px (default 224; a quarter of a small fixed window)")
@click.option("--threads", type=int, default=None)
@click.option("--srgb-anchor/--no-srgb-anchor", default=True, show_default=True,
              help="sRGB-output models: local colour put back to the file's own render (white balance and colour "
                   "matrix of this camera; raw-output models always get it)")
def enhance(raw, out, model, ratio, bits, quality, tile, overlap, threads, srgb_anchor) -> None:
    """Enhance one raw file into an image turned and tagged as a raw converter would, in tiles (bounded memory)."""
    from .enhance import enhance_file
    rep = enhance_file(raw, out, model=model, ratio=ratio, bits=None if bits is None else int(bits), tile=tile,
                       overlap=overlap, threads=threads, quality=quality, srgb_anchor=srgb_anchor)
    click.echo(json.dumps(rep) if not sys.stdout.isatty() else
               f"wrote {rep.get('output', out)} ({rep.get('width')}x{rep.get('height')}, ratio {rep.get('ratio')}, "
               f"{rep.get('seconds', 0):.1f} s)")


@cli.command()
@model_option
@stage_options("prune")
@out_option("pruned artifact folder")
def prune(model, out, **params) -> None:
    """Prune channels (Torch-Pruning), fine-tune against the original, report size/MACs/latency/quality."""
    _run_stage("prune", model, out, params)


@cli.command()
@model_option
@click.option("--teacher", "teacher", default=None, hidden=True, help="deprecated spelling of --model")
@stage_options("distill")
@out_option("student run / artifact folder")
def distill(model, teacher, out, **params) -> None:
    """Distil the teacher (--model) into a compact student (output and feature KD, with or without ground truth)."""
    _run_stage("distill", teacher or model, out, params)


@cli.command()
@model_option
@stage_options("export")
@out_option("artifact folder, or FILE.onnx / FILE.tflite in one", dir_only=False)
def export(model, out, **params) -> None:
    """Export to ONNX (or TFLite) at fp32/fp16/int8, checked against PyTorch; writes an artifact folder."""
    _run_stage("export", model, out, params)


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
@model_option
@stage_options("quantize")
@out_option("INT8 artifact folder, or FILE.onnx / FILE.tflite in one", dir_only=False)
def quantize(model, out, **params) -> None:
    """INT8 ONNX / TFLite with its calibration record; the same as export --precision int8."""
    _run_stage("quantize", model, out, params)


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
@click.argument("model_arg", metavar="[MODEL]", required=False)
@click.option("--model", default=None, help="shipped name, artifact folder, .onnx or .tflite (MODEL, the "
              "positional spelling, is deprecated)")
@stage_options("bench")
@report_options("bench_report.md, .json, .png", "--setup-arm alone")
@click.option("--setup-arm", is_flag=True, help="build the emulated ARM setup (QEMU 10 + aarch64 userland, cached "
              "under ~/.cache/darkc/arm; idempotent) and exit, or continue with --model")
def bench(model_arg, model, fmt, out, setup_arm, **params) -> None:
    """Latency on the host (measured), emulated ARM cores and Ethos-U NPUs (estimated), every figure labelled."""
    model = model or model_arg
    if setup_arm:
        from .latency.arm import run_setup
        click.echo(f"emulated ARM setup ready in {run_setup()}", err=True)
        if model is None:
            return
    if model is None:
        raise DarkcError("darkc bench needs --model (a .onnx, a .tflite, a checkpoint folder or a shipped name), "
                         "or --setup-arm alone")
    if out is None:
        raise DarkcError("darkc bench needs -o DIR for its report (bench_report.md, .json, .png)")
    _run_stage("bench", model, out, params, fmt=fmt)


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
        _command.callback = _lock_output(_command.callback, artifact_file=_command.name in ("export", "quantize"))


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

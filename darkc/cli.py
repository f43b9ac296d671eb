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
@click.option("--profile", default=None, help="camera profile (default: sony-a7s2-like / fuji-xt2-like)")
@click.option("--images", multiple=True, type=click.Path(), help="folder of clean photos (repeatable)")
@click.option("--split", type=click.Choice(["test", "train", "val"]), default="test", show_default=True,
              help="'val' writes the project's reference validation set (ignores --images/--seed)")
@click.option("--ratios", default="100,250,300", show_default=True)
def synth(out, count, size, seed, cfa, profile, images, split, ratios) -> None:
    """Write synthetic low-light raw pairs as DNG files in the SID layout."""
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
@click.option("--profile", default=None, help="camera profile for synthetic data")
@click.option("--loss", default="l1", show_default=True, help="l1|mse|ssim|ms-ssim|zamir|zamir-noperc|perceptual")
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
def train(out, data, images, arch, widths, cfa, profile, loss, patch, batch_size, steps, lr, schedule, val,
          val_every, ckpt_every, seed, threads, init, resume) -> None:
    """Train a model (the teacher by default); works under torchrun for DDP."""
    from .train import DataOptions, TrainConfig, train as run
    summary = run(out, arch=arch, widths=_ints(widths, "--widths"), loss=loss, init=init, resume=resume,
                  data=DataOptions(data=data, images=list(images), cfa=cfa, profile=profile, patch=patch, val=val),
                  cfg=TrainConfig(steps=steps, batch_size=batch_size, lr=lr, schedule=schedule, val_every=val_every,
                                  ckpt_every=ckpt_every, seed=seed, threads=threads))
    best = summary["best"]
    msg = f"trained {summary['steps']} steps in {summary['wall_s']:.0f} s on {summary['device']}"
    if best:
        msg += f"; best validation PSNR {best['val']['psnr']:.2f} dB / SSIM {best['val']['ssim']:.4f} at step {best['step']}"
    click.echo(msg + f"; artifact: {out}")


@cli.command(name="eval")
@click.option("--model", default="teacher", show_default=True, help="shipped name, artifact folder, .onnx or .tflite")
@click.option("--data", default="synthetic", show_default=True, help="'synthetic' (reference set) or a SID folder/list")
@click.option("--baselines", is_flag=True, help="also score the classical pipelines on the same pairs")
@click.option("--format", "fmt", type=click.Choice(["table", "md", "json"]), default="table", show_default=True)
@click.option("--threads", type=int, default=None)
@click.option("--limit", type=int, default=None, help="only the first N pairs")
@click.option("-o", "--out", default=None, type=click.Path(dir_okay=False), help="write the report here")
def eval_cmd(model, data, baselines, fmt, threads, limit, out) -> None:
    """PSNR/SSIM per ratio and overall, worst image; torch, ONNX and TFLite models alike."""
    from .evaluate import evaluate, format_result
    res = evaluate(model, data, baselines=baselines, threads=threads, limit=limit, progress=fmt != "json" or bool(out))
    _write_or_print(format_result(res, fmt), out)


@cli.command()
@click.argument("raw", type=click.Path())
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False), help="output PNG")
@click.option("--model", default="teacher", show_default=True, help="shipped name, artifact folder, .onnx or .tflite")
@click.option("--ratio", type=float, default=None, help="exposure ratio (default: from SID-style file names)")
@click.option("--bits", type=click.Choice(["8", "16"]), default="8", show_default=True)
@click.option("--tile", type=int, default=512, show_default=True, help="tile side in packed px")
@click.option("--threads", type=int, default=None)
def enhance(raw, out, model, ratio, bits, tile, threads) -> None:
    """Enhance one raw file into a PNG, full resolution, in tiles with bounded memory."""
    from .enhance import enhance_file
    rep = enhance_file(raw, out, model=model, ratio=ratio, bits=int(bits), tile=tile, threads=threads)
    click.echo(json.dumps(rep) if not sys.stdout.isatty() else
               f"wrote {rep.get('output', out)} ({rep.get('width')}x{rep.get('height')}, ratio {rep.get('ratio')}, "
               f"{rep.get('seconds', 0):.1f} s)")


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

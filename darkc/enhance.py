"""The enhance stage: one dark raw file -> one sRGB image (PNG, TIFF or JPEG), through any model format.

::

    report = enhance_file("Sony/short/10003_00_0.04s.ARW", "out.jpg")   # teacher-raw; ratio from ../long
    report = enhance_file("IMG_0001.DNG", "out.tif", model="runs/student/model.onnx", ratio=250)   # 16-bit

The image covers the frame the network sees (:class:`darkc.data.raw.RawFrame`): the sensor's visible area cut
at the top-left to the canonical CFA phase and at the bottom-right to whole CFA tiles, so it can be 0-2 px
(Bayer) or up to 10 px (X-Trans) smaller than the sensor per axis; ``report["offset"]`` is the (dy, dx) cut
at the top-left, on the sensor. Like a raw converter, the output is then turned to the file's orientation
exactly as LibRaw turns its own render (:mod:`darkc.data.orientation`) and carries the source's EXIF (camera,
lens, exposure, ISO, date; :mod:`darkc.outputs`).
"""
from __future__ import annotations

import math
import numbers
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .data.exif import COPIED, read_exif
from .data.orientation import apply_flip
from .data.raw import read_raw
from .data.sid import exposure_from_name, ratio_from_names
from .errors import DarkcError
from .inference import CFA_NAMES, DEFAULT_TILE, Runner, enhance_raw_file, load_runner
from .models.pretrained import default_for_cfa, pretrained_for_cfa
from .outputs import check_output, write_image


def sid_ratio(raw_path: str | os.PathLike) -> float | None:
    """The SID exposure ratio of a short exposure ``<dir>/short/ID_NN_<t>s.ext``, read from the names of it and
    of its reference ``<dir>/long/ID_00_<T>s.*``; None when the name is not SID-style or there is no reference."""
    raw_path = Path(raw_path)
    if not _is_sid_name(raw_path):
        return None
    scene = raw_path.name.split("_")[0]
    longs = sorted(p for p in (raw_path.parent.parent / "long").glob(f"{scene}_00_*s.*") if _is_sid_name(p))
    return ratio_from_names(raw_path, longs[0]) if longs else None


def _is_sid_name(path: Path) -> bool:
    try:
        exposure_from_name(path)
    except DarkcError:
        return False
    return True


def _resolve_ratio(raw_path: Path, ratio) -> float:
    if ratio is None:
        found = sid_ratio(raw_path)
        if found is None:
            raise DarkcError(f"no exposure ratio for {raw_path}: pass --ratio (exposure ratio, SID uses 100-300); "
                             f"it is only read from names for SID files short/ID_NN_<t>s.* with a long/ID_00_<T>s.*")
        return found
    if isinstance(ratio, bool) or not isinstance(ratio, numbers.Real) or not math.isfinite(ratio) or ratio <= 0:
        raise DarkcError(f"--ratio {ratio!r} for {raw_path} is invalid: pass a positive exposure ratio "
                         f"(SID uses 100-300)")
    return float(ratio)


def write_png(path: str | os.PathLike, rgb: np.ndarray, bits: int = 8) -> None:
    """Write (3, H, W) sRGB in [0, 1] as an 8- or 16-bit RGB PNG, atomically (nothing is left on failure)."""
    if Path(path).suffix.lower() != ".png":
        raise DarkcError(f"output {path} must end in .png")
    write_image(path, rgb, bits)


def _warn(msg: str) -> None:
    tqdm.write(f"warning: {msg}", file=sys.stderr)


def _peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10   # bytes on macOS, KiB on Linux


def enhance_file(raw_path: str | os.PathLike, out: str | os.PathLike, model: str | os.PathLike | Runner | None = None,
                 ratio: float | None = None, bits: int | None = None, tile: int = DEFAULT_TILE,
                 overlap: int | None = None, threads: int | None = None, progress: bool = True,
                 quality: int | None = None, srgb_anchor: bool = True) -> dict:
    """Enhance one dark raw file into an sRGB image, turned to the file's orientation, with its EXIF.

    Args:
        raw_path: a Bayer or X-Trans camera raw (DNG/ARW/RAF/...).
        out: output ``.png``, ``.tif``/``.tiff`` or ``.jpg``/``.jpeg`` (:mod:`darkc.outputs`); written
            atomically, so a failed run leaves no file (and an old one intact).
        model: shipped name, checkpoint directory, ``.onnx`` or ``.tflite`` (see :func:`load_runner`), or a
            loaded :class:`Runner` (to reuse one over many files). A shipped Bayer name on an X-Trans file means
            its X-Trans sibling where one ships (``teacher`` -> ``teacher-xtrans``). None: the file's
            :func:`darkc.models.pretrained.default_for_cfa` (``teacher-raw`` on Bayer).
        ratio: exposure ratio the raw is multiplied by (SID: long / short exposure, 100-300). None reads it
            from SID-style names (``short/ID_NN_<t>s.ext`` beside ``long/ID_00_<T>s.*``), else it is an error.
        bits: 8 or 16 bits per channel; None: 8 for PNG and JPEG, 16 for TIFF.
        tile, overlap: packed px, see :func:`darkc.inference.enhance_packed`.
        threads: CPU threads for inference; None keeps the runtime's default.
        progress: show a progress bar over the tiles.
        quality: JPEG quality 1-100 (default 95); only for ``.jpg``.
        srgb_anchor: an sRGB-output model's local colour put back to the file's own render
            (:func:`darkc.inference.anchor_srgb`; on by default here, as a user wants the camera's colour; ``darkc
            eval`` scores the model without it unless asked); raw-output models are always anchored to the file.

    Returns:
        Report: ``input``, ``output``, ``format``, ``width``, ``height`` (of the written image, after turning),
        ``offset`` ((dy, dx) of the image's top-left on the sensor, before turning), ``flip`` (LibRaw's
        orientation bits applied, 0 for none), ``exif`` (names of the copied tags), ``bits``, ``ratio``,
        ``model``, ``cfa``, ``seconds`` (wall, whole call), ``peak_rss_mib`` (the process's peak resident
        memory so far, not only this call's).

    Raises:
        DarkcError: one line naming the file: missing/truncated/unsupported raw, no ratio, a model for the
            other CFA, NaN/Inf, bad options, an output extension darkc cannot write, or an unwritable output.
            A raw whose EXIF cannot be read is no error: it enhances with a warning and no copied tags.
    """
    start = time.perf_counter()
    raw_path, out = Path(raw_path), Path(out)
    fmt, bits = check_output(out, bits, quality)
    if not raw_path.is_file():
        raise DarkcError(f"raw file {raw_path} does not exist: check the path")
    ratio = _resolve_ratio(raw_path, ratio)
    frame = read_raw(raw_path, signed=True)       # unclipped at black: the colour anchor of raw-output models
    model = default_for_cfa(frame.cfa) if model is None else pretrained_for_cfa(model, frame.cfa)
    runner = load_runner(model, threads)
    if frame.cfa != runner.cfa:
        want, got = CFA_NAMES[runner.cfa], CFA_NAMES[frame.cfa]
        raise DarkcError(f"model {runner.name} expects {runner.in_channels}-channel {want} input but {raw_path.name} "
                         f"is {got}; pass a model made for {got} raw")
    offset, flip = frame.offset, frame.flip
    exif, problem = read_exif(raw_path)
    if problem:
        _warn(f"cannot read the EXIF of {raw_path} ({problem}); {out} gets no camera metadata")
    rgb = enhance_raw_file(runner, raw_path, ratio, tile=tile, overlap=overlap, progress=progress, frame=frame,
                           srgb_anchor=srgb_anchor)
    del frame
    rgb = apply_flip(rgb, flip, channel_axis=0)
    write_image(out, rgb, bits, exif=exif, quality=quality)
    return {
        "input": str(raw_path), "output": str(out), "format": fmt, "width": int(rgb.shape[2]),
        "height": int(rgb.shape[1]), "offset": tuple(int(v) for v in offset), "flip": int(flip),
        "exif": sorted(COPIED[c][0] for c in exif), "bits": bits, "ratio": ratio, "model": runner.name,
        "srgb_anchor": bool(srgb_anchor and runner.output != "raw"),
        "cfa": runner.cfa, "seconds": round(time.perf_counter() - start, 3), "peak_rss_mib": round(_peak_rss_mib(), 1),
    }

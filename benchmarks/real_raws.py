"""Real camera raws: ``darkc enhance`` against LibRaw's own render of the same file (issue 16).

    python benchmarks/real_raws.py --model teacher [--model runs/new-teacher] [--raw FILE ...]

writes ``benchmarks/results/real_raws/report.md``, ``report.json`` and one ``<file>.png`` per raw file (crops at
100 %: LibRaw's render | each model | LibRaw + NLM).

Raw files: the known raws that Debian and PyPI packages ship (:data:`SOURCES`), each found where its Debian package
installs it or else extracted from the pinned package version (``apt-get download``; PyPI: ``pip download`` of the
sdist) into ``$DARKC_CACHE/real_raws`` (default ``~/.cache/darkc/real_raws``), its SHA-256 checked either way; none
is shipped in this repository. ``--raw FILE``
adds any other file, ``--no-sources`` leaves the packaged ones out.

Per file, on one crop (``--crop`` px of the frame, at the source's chosen centre, with 96 packed px of context
around it so that the crop equals a whole-frame pass of the SID U-Net, see :mod:`darkc.inference`):

(a) as-is: the file itself at ``--ratio`` (1: it is normally exposed; a night capture also at its source's
    brightening ratio, as a user would pass ``darkc enhance --ratio``) through the model exactly as ``darkc
    enhance`` runs it (:func:`darkc.inference.run_raw_file`'s steps: read_raw, amplify, noise level of the file,
    tiles; raw-output models rendered by LibRaw with the file's own colour), against LibRaw's render of the same
    amplified raw (camera WB, no auto-bright). Measures: colour cast (:func:`colour_cast`), CIEDE2000,
    checkerboard (:func:`checker`).
(b) simulated dark captures (normally exposed files only): the file's own signal scaled down by each ratio
    (100/250/300) and exposed with the
    physical noise of :func:`darkc.data.noise.expose` (profile ``--profile`` at ``--iso``, with the file's own
    black/white levels), then amplified by the ratio and enhanced; PSNR/SSIM against LibRaw's render of the
    original, beside LibRaw + NLM (:func:`darkc.evaluate.nlm_denoise`) of the same capture.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import json
import math
import os
import platform
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from darkc.data import cfa as cfa_mod
from darkc.data.noise import expose
from darkc.data.noise_level import level_of_file, level_of_profile
from darkc.data.profiles import get_profile
from darkc.data.raw import amplify, read_raw, render_packed, render_raw
from darkc.errors import DarkcError, atomic_path, one_line
from darkc.evaluate import nlm_denoise
from darkc.inference import (ANCHOR_SIGMA, anchor_means, chroma_to, enhance_packed, load_runner, model_input,
                             srgb_anchor_raw)
from darkc.metrics import psnr, ssim
from darkc.models.pretrained import pretrained_for_cfa


@dataclasses.dataclass(frozen=True)
class RawSource:
    """A real camera raw that a Debian or PyPI package ships."""
    name: str
    camera: str
    exposure: str
    package: str            # Debian binary package, or PyPI project (registry "pypi")
    version: str            # the package version it is pinned to (and was measured with)
    path: str               # where the package installs it (also its path inside the .deb); PyPI: inside the sdist
    sha256: str             # of the file itself
    licence: str
    centre: tuple           # (y, x) of the crop centre as fractions of the frame
    registry: str = "debian"
    night: float | None = None  # a night capture: the ratio that brightens it, as a user passes --ratio (and no (b))

    @property
    def install(self) -> str:
        if self.registry == "pypi":
            return f"pip download --no-deps --no-binary :all: {self.package}=={self.version}"
        return f"apt-get install {self.package}"


#: Real raws obtainable offline (Debian, PyPI and npm are the registries reachable here); the search and every candidate
#: rejected are in :data:`REJECTED` (printed in the report).
SOURCES = (
    RawSource("canon-eos30d", "Canon EOS 30D (8 MP APS-C Bayer RGGB, 12 bit)", "1/400 s, f/22, ISO 640, daylight",
              "rawtran-doc", "1.1-1", "/usr/share/doc/rawtran/IMG_5952.CR2",
              "9f4958fb43824fdc1defb6b262f8bacedb1879041b2d5f60dc5225ee1049d554",
              "GPL-3+ (debian/copyright of rawtran-doc: Files: *, (c) 2008-2019 Filip Hroch)", (0.45, 0.25)),
    # a concert at ISO 3200 under blue stage light; the crop is the guitar body (no face)
    RawSource("sony-ilce7rm3", "Sony ILCE-7RM3 (A7R III; 42 MP full-frame Bayer RGGB, 14 bit, compressed ARW)",
              "1/640 s, f/6.3, ISO 3200, night (stage light; mean 2 % of full scale)",
              "libraw-cffi", "0.19.0", "libraw_cffi-0.19.0/libraw_cffi/tests/_DSC2164.ARW",
              "42ec55eef6047c1bfbd1fd05fdcae78993f3513814138eff4cbcf9498c57d4e6",
              "MIT (the sdist's COPYING: (c) 2018 Julian Berman; PKG-INFO classifier License :: OSI Approved :: MIT "
              "License; the photo carries no licence of its own)", (0.62, 0.37), registry="pypi", night=8.0),
)


#: Where else a real raw was looked for (Dec 2026), and why none is used: (where, what is there, why not).
#: "Decodes" means rawpy with LibRaw 0.22.2 (the project's reader).
REJECTED = (
    ("Debian bookworm and trixie main binary packages (every path in Contents-amd64/-all with a camera-raw extension)",
     "one camera raw: rawtran-doc's IMG_5952.CR2", "used (canon-eos30d)"),
    ("PyPI libraw-cffi 0.19.0 sdist (also 0.10.3, 0.18.4), libraw_cffi/tests/", "_DSC2164.ARW (Sony ILCE-7RM3, ISO "
     "3200, 18.6 MB)", "used (sony-ilce7rm3)"),
    ("Debian source exiv2 0.27.6-1, test/data/", "Canon-R6-pruned.CR3 (492 KB), IMG_1361.dng (Apple iPhone 12 Pro, "
     "64 KB), exiv2-canon-powershot-s40.crw and fuzzing PoCs (.crw/.raf/.rw2, <= 10 KB)",
     "image data stripped: LibRaw I/O errors, or a 4032x3024 frame of zeros (IMG_1361.dng)"),
    ("Debian source libimage-exiftool-perl 12.57+dfsg-1, t/images/", "CanonRaw.cr2/.cr3/.crw, Nikon.nef, FujiFilm.raf, "
     "Panasonic.rw2 (DMC-LX3), DNG.dng (Canon EOS 350D), PhaseOne.iiq, Minolta.mrw, Sigma x3f (0.2-52 KB)",
     "image data stripped: LibRaw I/O/data errors, or a header-sized frame that is all zeros (DNG.dng) or 99.8 % "
     "zeros (Panasonic.rw2)"),
    ("Debian source kimageformats 5.103.0-2 and kf6-kimageformats 6.30.0-1, autotests/read/raw/",
     "RAW_KODAK_C330_FORMAT_NONE_YRGB.raw (Kodak EasyShare C330, 2.2 MB)",
     "LibRaw decodes it to 1216x912 four-channel pixels interpolated from the camera's YUV data, not a CFA mosaic"),
    ("Debian source tracker-miners 3.4.3-1, tests/functional-tests/test-extraction-data/images/",
     "raw-cr2.cr2 (40 KB)", "truncated: LibRaw I/O error"),
    ("Debian sources exempi 2.6.3, libextractor 1.11, vips 8.14.1, munipack 0.6.2, c-munipack 2.1.39, rawtran 1.1",
     "no camera raw (rawtran: the same IMG_5952.CR2)", "-"),
    ("Debian sources digikam 7.9.0, openimageio 2.4.7.1, rawtherapee 5.9, shotwell, siril, exiv2 0.28.x",
     "not checked", "the Debian mirror reachable here answered 404 for their source tarballs"),
    ("PyPI dngpy 0.1.3 sdist, extern/sample_files/ (Adobe DNG SDK 1.7.1 samples)",
     "03_jxl_bayer_raw_integer.dng: Sony ILCE-7RM4 Bayer mosaic 10240x7168; the others linear or synthetic "
     "('Test Camera')", "JPEG XL compressed (LibRaw: unsupported file format), and the Adobe licence agreement the "
     "files refer to is not in the package"),
    ("PyPI hachoir 3.4.0 sdist, tests/files/", "canon.raw.cr2 (98 KB)", "truncated: LibRaw unsupported file"),
    ("PyPI imagecodecs 2026.11.11 sdist, tests/data/ljpeg/", "dng0-7.ljp",
     "single lossless-JPEG tiles, not a raw file"),
    ("PyPI, no raw file in the newest sdist or wheel", "rawpy 0.28.0 (only 0.27+ have an sdist; its test raws are not "
     "in it), rawpy-demosaic, odmrawpy, newrawpy, cxx-image-io, flashraw, colour-hdri, colour-demosaicing, demosaic, "
     "dngparser, muimg, muraw, pidng, numpy2dng, miniraw, phaios-core, picamraw, pibayer, lica-raw, azotea, "
     "algol-bayer, process-raw, openisp, oh-dng, iiq2img, fastai-rawpy, exifread, exif, pyexiv2, lensfunpy, rawkit, "
     "pillow-raw-opener, getthumbnail, myarwreader, rafina, make-arq", "-"),
    ("npm (also reachable here), newest tarball", "exifr, tiff, utif2, dcraw, libraw-wasm, raw-decoder, "
     "exiftool-vendored.pl: no raw file", "-"),
)

# ---------------------------------------------------------------- getting the packaged raws
def cache_dir() -> Path:
    """Where packaged raws are extracted: ``$DARKC_CACHE/real_raws``, default ``~/.cache/darkc/real_raws``."""
    return Path(os.environ.get("DARKC_CACHE") or Path.home() / ".cache" / "darkc") / "real_raws"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def locate(src: RawSource, cache: Path | None = None, download: bool = True) -> Path:
    """The file of ``src`` with its pinned SHA-256: the installed copy, else the cached one (``<cache>/<name>/<file
    name>``), else (``download``) extracted from the pinned package version into the cache. A cached file with
    another hash is an error (it is not silently replaced)."""
    installed = Path(src.path)
    if src.registry == "debian" and installed.is_file() and sha256_of(installed) == src.sha256:
        return installed
    cached = (cache or cache_dir()) / src.name / installed.name
    if cached.is_file():
        got = sha256_of(cached)
        if got != src.sha256:
            raise DarkcError(f"{cached}: sha256 {got[:16]}... is not the pinned {src.sha256[:16]}... of {src.package} "
                             f"{src.version}: delete the file to extract it again")
        return cached
    if not download:
        where = "is not installed and not" if src.registry == "debian" else "is not"
        raise DarkcError(f"{src.name}: {src.path} {where} in {cached.parent}: run `{src.install}`")
    data = _extract_from_sdist(src) if src.registry == "pypi" else _extract_from_deb(src)
    with atomic_path(cached) as tmp:
        tmp.write_bytes(data)
    return cached


def _extract_from_deb(src: RawSource) -> bytes:
    """The bytes of ``src.path`` inside the .deb that ``apt-get download PACKAGE=VERSION`` fetches (nothing is
    installed), hash-checked."""
    def run(cmd, cwd):
        try:
            return subprocess.run(cmd, cwd=cwd, capture_output=True, timeout=900, check=False)
        except FileNotFoundError as exc:
            raise DarkcError(f"{src.name}: `{cmd[0]}` not found ({src.package} is a Debian package): get "
                             f"{src.path} from that package and pass it with --raw, or use --no-sources") from exc

    with tempfile.TemporaryDirectory(prefix="darkc-realraw-") as tmp:
        res = run(["apt-get", "download", f"{src.package}={src.version}"], tmp)
        debs = sorted(Path(tmp).glob(f"{src.package}_*.deb"))
        if res.returncode != 0 or not debs:
            why = (res.stderr.decode(errors="replace").strip().splitlines() or ["no .deb written"])[-1]
            raise DarkcError(f"{src.name}: `apt-get download {src.package}={src.version}` failed ({why}): run "
                             f"`apt-get update` first, or `{src.install}`")
        res = run(["dpkg-deb", "--fsys-tarfile", str(debs[0])], tmp)
        if res.returncode != 0:
            why = one_line(res.stderr.decode(errors="replace"))
            raise DarkcError(f"{debs[0].name}: dpkg-deb cannot read it ({why})")
    with tarfile.open(fileobj=io.BytesIO(res.stdout)) as tar:
        try:
            member = tar.getmember("." + src.path)
        except KeyError:
            raise DarkcError(f"{src.package} {src.version} has no {src.path}: fix its entry in SOURCES") from None
        data = tar.extractfile(member).read()
    got = hashlib.sha256(data).hexdigest()
    if got != src.sha256:
        raise DarkcError(f"{src.package} {src.version}: {src.path} has sha256 {got[:16]}..., not the pinned "
                         f"{src.sha256[:16]}...: check the file, then re-pin its entry in SOURCES")
    return data


def _extract_from_sdist(src: RawSource) -> bytes:
    """The bytes of ``src.path`` inside the sdist that ``pip download --no-binary :all: PROJECT==VERSION`` fetches
    (nothing is built or installed), hash-checked."""
    with tempfile.TemporaryDirectory(prefix="darkc-realraw-") as tmp:
        res = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                              "--disable-pip-version-check", "-d", tmp, f"{src.package}=={src.version}"],
                             capture_output=True, timeout=900, check=False)
        sdists = sorted(Path(tmp).glob("*.tar.gz"))
        if res.returncode != 0 or not sdists:
            why = (res.stderr.decode(errors="replace").strip().splitlines() or ["no sdist written"])[-1]
            raise DarkcError(f"{src.name}: `{src.install}` failed ({why}): check the network or the PyPI index")
        with tarfile.open(sdists[0]) as tar:
            try:
                data = tar.extractfile(tar.getmember(src.path)).read()
            except KeyError:
                raise DarkcError(f"{src.package} {src.version} has no {src.path}: fix its entry in SOURCES") from None
    got = hashlib.sha256(data).hexdigest()
    if got != src.sha256:
        raise DarkcError(f"{src.package} {src.version}: {src.path} has sha256 {got[:16]}..., not the pinned "
                         f"{src.sha256[:16]}...: check the file, then re-pin its entry in SOURCES")
    return data


RATIOS = (100, 250, 300)
#: Packed px of context around a crop: the SID U-Net's reach is ~95 packed px, so a crop with this much context
#: equals a whole-frame pass (the tiling argument of :mod:`darkc.inference`).
CONTEXT = 96
#: The issue's limit for the checkerboard amplitude, levels of 255.
CHECKER_LIMIT = 1.5
#: Largest |difference of mean chromaticity| still called "no cast". Our choice: 0.01 is ~4 % of a channel's
#: share (1/3) and below what a white-balance error of 5 % in one channel gives (0.011).
CAST_LIMIT = 0.01
#: Mid-tones: pixels whose reference mean (R+G+B)/3 lies in this range (sRGB, [0, 1]) carry the colour measure.
MID_TONES = (0.05, 0.9)


# ---------------------------------------------------------------- measures
def checker(img: np.ndarray, block: int = 8) -> dict:
    """Coherent period-2 pattern amplitude of an sRGB image (H, W, 3) in [0, 1], in levels of 255.

    Each 2x2 cell (a b / c d, cells on even coordinates) has three Hadamard components: horizontal
    (a - b + c - d) / 4, vertical (a + b - c - d) / 4 and diagonal (a - b - c + d) / 4. A component is averaged
    (with its sign) over each ``block`` x ``block`` px block, and the absolute block means are averaged over blocks
    and channels: a pattern that repeats coherently (a checkerboard ``+-k`` gives ``diagonal = k``) survives the
    block mean, noise mostly cancels (white noise of std s leaves ~0.1 s with 8x8 blocks).
    Returns ``{"horizontal", "vertical", "diagonal", "max"}``.

    To be replaced by ``darkc.metrics``'s checkerboard measure once that lands (parallel branch of issue 16).
    """
    x = np.asarray(img, np.float64) * 255.0
    if x.ndim == 2:
        x = x[..., None]
    h, w = (x.shape[0] // block) * block, (x.shape[1] // block) * block
    if h == 0 or w == 0 or block % 2:
        raise ValueError(f"checker needs an image of at least {block}x{block} px and an even block, got "
                         f"{x.shape[:2]} and {block}")
    x = x[:h, :w]
    a, b, c, d = x[0::2, 0::2], x[0::2, 1::2], x[1::2, 0::2], x[1::2, 1::2]
    comps = {"horizontal": (a - b + c - d) / 4, "vertical": (a + b - c - d) / 4, "diagonal": (a - b - c + d) / 4}
    n = block // 2
    out = {}
    for name, comp in comps.items():
        means = comp.reshape(h // block, n, w // block, n, -1).mean(axis=(1, 3))
        out[name] = float(np.abs(means).mean())
    out["max"] = max(out.values())
    return out


def colour_cast(out: np.ndarray, ref: np.ndarray, mid_tones: tuple = MID_TONES) -> dict:
    """Difference of mean chromaticity of ``out`` against ``ref`` (both (H, W, 3) sRGB in [0, 1]).

    Chromaticity is each channel's share r / (r + g + b) (g and b alike); it is averaged over the pixels where
    the reference is mid-tone (mean of R, G, B within ``mid_tones``). Returns ``{"ref": [r, g, b], "out": [...],
    "delta": out - ref, "cast": max |delta|, "pixels": n}``. A gain on one channel of ``out`` shows as a positive
    delta there; a change of brightness alone gives none.
    """
    out = np.asarray(out, np.float64)
    ref = np.asarray(ref, np.float64)
    if out.shape != ref.shape or out.ndim != 3 or out.shape[2] != 3:
        raise ValueError(f"colour_cast needs two (H, W, 3) images of one shape, got {out.shape} and {ref.shape}")
    mask = (ref.mean(axis=2) >= mid_tones[0]) & (ref.mean(axis=2) <= mid_tones[1])
    if not mask.any():
        raise ValueError(f"the reference has no mid-tone pixels (mean RGB in {mid_tones}) to measure colour on")

    def chroma(img):
        px = img[mask]
        return px / np.maximum(px.sum(axis=1, keepdims=True), 1e-6)

    c_ref, c_out = chroma(ref).mean(axis=0), chroma(out).mean(axis=0)
    delta = c_out - c_ref
    return {"ref": [round(float(v), 4) for v in c_ref], "out": [round(float(v), 4) for v in c_out],
            "delta": [round(float(v), 4) for v in delta], "cast": float(np.abs(delta).max()), "pixels": int(mask.sum())}


def deltae(out: np.ndarray, ref: np.ndarray) -> float:
    """Mean CIEDE2000 (skimage) between two sRGB images (H, W, 3) in [0, 1]."""
    from skimage.color import deltaE_ciede2000, rgb2lab

    return float(deltaE_ciede2000(rgb2lab(np.clip(ref, 0, 1)), rgb2lab(np.clip(out, 0, 1))).mean())


# ---------------------------------------------------------------- crops
@dataclasses.dataclass(frozen=True)
class Crop:
    """A crop in packed px (``y, x, h, w``) and the window (``wy, wx, wh, ww``) around it that the model sees."""
    y: int
    x: int
    h: int
    w: int
    wy: int
    wx: int
    wh: int
    ww: int


def plan_crop(packed_shape: tuple, size_px: int, centre: tuple, scale: int, context: int = CONTEXT) -> Crop:
    """The crop of about ``size_px`` frame px (a multiple of 16 packed px) around ``centre`` (fractions of the
    frame), moved inside the frame so that ``context`` packed px surround it where the frame allows."""
    _, ph, pw = packed_shape
    side = max(16, size_px // scale // 16 * 16)
    h, w = min(side, ph), min(side, pw)
    y = int(round(centre[0] * ph - h / 2))
    x = int(round(centre[1] * pw - w / 2))
    y = min(max(y, min(context, ph - h)), max(ph - h - context, 0))
    x = min(max(x, min(context, pw - w)), max(pw - w - context, 0))
    wy, wx = max(0, y - context), max(0, x - context)
    return Crop(y, x, h, w, wy, wx, min(ph, y + h + context) - wy, min(pw, x + w + context) - wx)


def _cut(img_hwc: np.ndarray, crop: Crop, scale: int) -> np.ndarray:
    return img_hwc[crop.y * scale:(crop.y + crop.h) * scale, crop.x * scale:(crop.x + crop.w) * scale]


def render_in_frame(path, full_packed: np.ndarray, window_packed: np.ndarray, crop: Crop) -> np.ndarray:
    """LibRaw's render (file's own levels, WB and colour) of the frame with the window replaced by
    ``window_packed``; the rest keeps the file's pixels so LibRaw's content-dependent maximum matches the file's
    own render. (H, W, 3) of the whole frame."""
    full = full_packed.copy()
    full[:, crop.wy:crop.wy + crop.wh, crop.wx:crop.wx + crop.ww] = window_packed
    return render_packed(path, full)


#: Gaussian sigma (packed px) of the noise-averaged reference: std of white noise / ~14, so black clipping after it
#: lifts the shadows by a negligible amount
SMOOTH_SIGMA = 4.0


def unclipped_packed(path) -> np.ndarray:
    """The file's packed raw on :func:`darkc.data.raw.read_raw`'s scale and cut, but not clipped at black: noise in
    the shadows keeps its negative half, so its mean is the signal's (``read_raw(signed=True)``, what ``darkc
    enhance`` anchors a raw-output model's colour to)."""
    return read_raw(path, signed=True).packed()


def noise_averaged_render(path, full_packed, window_unclipped: np.ndarray, ratio: float, crop: "Crop",
                          scale: int) -> np.ndarray:
    """LibRaw's render of the crop with each packed plane Gaussian-averaged (:data:`SMOOTH_SIGMA`) *before* the
    black clip and amplified by ``ratio``: the file's own colour pipeline on its mean signal. LibRaw's render of a
    noisy raw is tinted where noise is clipped at black (each channel lifted by its own noise), so on a night
    capture that render's mid-tone colour is not the scene's; this one's is (blurred: for colour, not detail)."""
    smooth = srgb_anchor_raw(window_unclipped, ratio, SMOOTH_SIGMA)     # the same averaging as --srgb-anchor's
    return _cut(render_in_frame(path, full_packed, smooth, crop), crop, scale)


def run_model(runner, path, full_packed: np.ndarray, window_in: np.ndarray, ratio: float, level, crop: Crop,
              scale: int, record: dict | None = None, window_signed: np.ndarray | None = None) -> np.ndarray:
    """The model's sRGB on the crop, (h*scale, w*scale, 3): ``window_in`` is the amplified packed window,
    ``level`` the capture's noise level (used by noise-conditioned models only). A raw-output model's clean raw
    is anchored to ``window_signed`` (the amplified window not clipped at black) as ``darkc enhance`` anchors it
    (:func:`darkc.inference.anchor_means`), and its packed channel means on the crop go into
    ``record["raw_means"]``."""
    out = enhance_packed(runner, model_input(runner, window_in, ratio, level), progress=False, source=str(path))
    if runner.output != "raw" and getattr(runner, "srgb_anchor", False):     # as `darkc enhance` (its default)
        s = runner.scale
        ref = render_in_frame(path, full_packed, srgb_anchor_raw(window_signed if window_signed is not None
                                                                 else window_in, 1.0), crop)
        ref = ref[crop.wy * s:(crop.wy + crop.wh) * s, crop.wx * s:(crop.wx + crop.ww) * s].transpose(2, 0, 1)
        out = chroma_to(out, ref, ANCHOR_SIGMA * s)
    if runner.output == "raw":
        out = anchor_means(out, window_signed if window_signed is not None else window_in)
        if record is not None:
            record["raw_means"] = _crop_means(out, crop)
        return _cut(render_in_frame(path, full_packed, out, crop), crop, scale)
    s = runner.scale
    y0, x0 = (crop.y - crop.wy) * s, (crop.x - crop.wx) * s
    return out[:, y0:y0 + crop.h * s, x0:x0 + crop.w * s].transpose(1, 2, 0)


def _crop_means(window_packed: np.ndarray, crop: Crop) -> list:
    """Mean of each packed channel over the crop inside the window."""
    y0, x0 = crop.y - crop.wy, crop.x - crop.wx
    return [float(v) for v in window_packed[:, y0:y0 + crop.h, x0:x0 + crop.w].mean(axis=(1, 2))]


def simulate_dark(window_mosaic: np.ndarray, ratio: float, profile, k: float, seed: int,
                  signed: bool = False) -> np.ndarray:
    """A short exposure of the scene in ``window_mosaic`` ((H, W) normalised raw of the long exposure, [0, 1]):
    signal divided by ``ratio``, shot/read/row/quantisation noise of ``profile`` at system gain ``k`` (DN/e-,
    its median read and row sigmas), normalised and clipped like :func:`darkc.data.raw.read_raw` (``signed``: like
    ``read_raw(signed=True)``, not clipped at black)."""
    span = float(profile.white - profile.black)
    signal = window_mosaic.astype(np.float64) * span / float(ratio)
    sigmas = (profile.read_sigma(k), profile.row_sigma(k))
    dn = expose(signal, k, profile, np.random.default_rng(seed), sigmas=sigmas)
    norm = (dn.astype(np.float32) - profile.black) / span
    return np.minimum(norm, 1.0) if signed else np.clip(norm, 0.0, 1.0)


# ---------------------------------------------------------------- one file
def measure_file(path: Path, runners: list, ratios=RATIOS, crop_px: int = 512, centre=(0.5, 0.5),
                 asis_ratios=(1.0,), profile_name: str = "canon-g7x-like", iso: float = 400, seed: int = 0,
                 bar=None) -> dict:
    """All measures of one raw file; returns the report entry and, under ``"images"``, the crops (H, W, 3).
    ``entry["as_is"]`` maps each of ``asis_ratios`` (``"x1"``, ``"x8"``) to the models' measures there; ``ratios``
    empty leaves out (b) (a night capture has no signal left at 1/100 of it)."""
    frame = read_raw(path)
    scale = cfa_mod.scale(frame.cfa)
    full = frame.packed()
    crop = plan_crop(full.shape, crop_px, centre, scale)
    ref_full = render_raw(path)
    ref = _cut(ref_full, crop, scale)
    del ref_full
    ref_checker = checker(ref)
    window = full[:, crop.wy:crop.wy + crop.wh, crop.wx:crop.wx + crop.ww]
    images = {}
    entry = {"cfa": frame.cfa, "crop_packed": dataclasses.asdict(crop),
             "crop_px": [crop.y * scale, crop.x * scale, crop.h * scale, crop.w * scale],
             "libraw_checker": ref_checker, "as_is": {}, "dark": {}}

    # (a) the file as it is, through each model as darkc enhance runs it, against LibRaw's render of the same raw
    level = None
    unclipped = unclipped_packed(path)[:, crop.wy:crop.wy + crop.wh, crop.wx:crop.wx + crop.ww]
    for r in asis_ratios:
        row_name = "as-is" if r == 1 else f"as-is x{r:g}"
        ref_r = ref if r == 1 else _cut(render_in_frame(path, full, amplify(window, r), crop), crop, scale)
        mean_ref = noise_averaged_render(path, full, unclipped, r, crop, scale)
        images[(row_name, "LibRaw render")] = ref_r
        rows = entry["as_is"][f"x{r:g}"] = {}
        entry.setdefault("libraw_vs_noise_averaged", {})[f"x{r:g}"] = colour_cast(ref_r, mean_ref)
        # the input's own channel means (not clipped at black: noise is zero-mean there), the yardstick of a
        # raw-output model's: a low-frequency colour error shows as a channel off by a fraction of its mean
        entry.setdefault("input_raw_means", {})[f"x{r:g}"] = _crop_means(amplify(unclipped, r), crop)
        for runner in runners:
            if runner.noise_input != "none" and level is None:
                level = level_of_file(path)
            t0 = time.perf_counter()
            record: dict = {}
            out = run_model(runner, path, full, amplify(window, r), r, level, crop, scale, record,
                            window_signed=amplify(unclipped, r))
            rows[runner.name] = {**record,
                "ratio": r, "checker": checker(out), "colour": colour_cast(out, ref_r),
                "colour_vs_noise_averaged": colour_cast(out, mean_ref), "deltae": deltae(out, ref_r),
                "psnr": psnr(out, ref_r), "ssim": ssim(out, ref_r), "seconds": round(time.perf_counter() - t0, 1),
                "output": runner.output, "reference_checker": checker(ref_r),
                "noise_level": None if level is None or runner.noise_input == "none" else
                {"gain": level.gain, "read": level.read, "source": level.source}}
            images[(row_name, runner.name)] = out
            if bar is not None:
                bar.update()

    # (b) simulated dark captures of the same scene
    entry["simulation"] = None
    if not ratios:
        entry["images"] = images
        return entry
    prof = dataclasses.replace(get_profile(profile_name), black=int(round(float(np.mean(frame.black)))),
                               white=int(frame.white))
    k = prof.gain_of_iso(iso)
    dark_level = level_of_profile(prof, k)
    mosaic_window = cfa_mod.unpack(window, frame.cfa)
    entry["simulation"] = {"profile": profile_name, "iso": iso, "gain_dn_per_e": k, "black": prof.black,
                           "white": prof.white, "read_sigma_dn": prof.read_sigma(k), "row_sigma_dn": prof.row_sigma(k),
                           "seed": seed}
    for j, ratio in enumerate(ratios):
        signed = cfa_mod.pack(simulate_dark(mosaic_window, ratio, prof, k, seed + j, signed=True), frame.cfa)
        noisy = np.maximum(signed, 0.0)
        amp = amplify(noisy, ratio)
        base = nlm_denoise(_cut(render_in_frame(path, full, amp, crop), crop, scale))
        row = {"libraw+nlm": {"psnr": psnr(base, ref), "ssim": ssim(base, ref), "checker": checker(base),
                              "colour": colour_cast(base, ref)}}
        images[(f"x{ratio}", "LibRaw + NLM")] = base
        images[(f"x{ratio}", "LibRaw render")] = ref
        for runner in runners:
            out = run_model(runner, path, full, amp, ratio, dark_level, crop, scale,
                            window_signed=amplify(signed, ratio))
            row[runner.name] = {"psnr": psnr(out, ref), "ssim": ssim(out, ref), "checker": checker(out),
                                "colour": colour_cast(out, ref)}
            images[(f"x{ratio}", runner.name)] = out
            if bar is not None:
                bar.update()
        entry["dark"][f"x{ratio}"] = row
    entry["images"] = images
    return entry


# ---------------------------------------------------------------- figure and report
def _label(tile: np.ndarray, text: str) -> np.ndarray:
    bar = np.full((22, tile.shape[1], 3), 255, np.uint8)
    cv2.putText(bar, text, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([bar, tile], axis=0)


def figure(images: dict, models: list, png: Path, show_px: int = 256) -> None:
    """One grid per file, rows as-is / x100 / x250 / x300, columns LibRaw render | models | LibRaw + NLM; the
    centre ``show_px`` x ``show_px`` of each crop at 100 % (no resampling), 8-bit sRGB as rendered."""
    rows = list(dict.fromkeys(r for r, _ in images))
    cols = ["LibRaw render", *models, "LibRaw + NLM"]
    any_img = next(iter(images.values()))
    h, w = any_img.shape[:2]
    s = min(show_px, h, w)
    y0, x0 = (h - s) // 2, (w - s) // 2
    grid_rows = []
    for r in rows:
        tiles = []
        for c in cols:
            img = images.get((r, c))
            if img is None:
                tile = np.full((s, s, 3), 235, np.uint8)
                text = f"{r}: (no baseline)"
            else:
                tile = np.rint(np.clip(img[y0:y0 + s, x0:x0 + s], 0, 1) * 255).astype(np.uint8)
                text = f"{r}: {c}"
            tiles.append(_label(np.ascontiguousarray(tile), text[:38]))
            tiles.append(np.full((s + 22, 4, 3), 255, np.uint8))
        grid_rows.append(np.concatenate(tiles[:-1], axis=1))
        grid_rows.append(np.full((4, grid_rows[-1].shape[1], 3), 255, np.uint8))
    grid = np.concatenate(grid_rows[:-1], axis=0)
    with atomic_path(png) as tmp:
        if not cv2.imwrite(str(tmp), grid[..., ::-1]):
            raise DarkcError(f"cannot write {png}: OpenCV failed to encode the PNG")


def _fmt_cast(c: dict) -> str:
    d = c["delta"]
    return f"{c['cast']:.4f} ({d[0]:+.4f}, {d[1]:+.4f}, {d[2]:+.4f})"


def _fmt_checker(c: dict) -> str:
    return f"{c['max']:.2f} ({c['horizontal']:.2f}/{c['vertical']:.2f}/{c['diagonal']:.2f})"


def report_md(report: dict) -> str:
    lines = [
        "# Real camera raws: darkc vs LibRaw's own render",
        "",
        f"Command: `{report['command']}`  ",
        f"Ran on {report['host']['machine']} CPU, {report['host']['threads']} torch thread(s), Python "
        f"{report['host']['python']}; {report['seconds']:.0f} s in all (wall time on a host shared with other "
        "jobs, so inflated by their load).",
        "",
        "How it is counted. One crop per file (`crop_px` = y, x, h, w in frame px), run with 96 packed px of "
        "context so it equals a whole-frame `darkc enhance` (tiling argument of `darkc/inference.py`); crops keep "
        "the runtime near 5 min per model on 1-2 shared cores (a whole 8 MP frame would take the SID U-Net ~5 min "
        "on one core alone: 36 s per 512 x 512 packed tile measured here).",
        f"- **checker**: coherent 2x2 pattern amplitude in levels of 255: |8x8-block mean| of each 2x2 Hadamard "
        f"component (horizontal/vertical/diagonal), averaged over blocks and channels; shown as max (h/v/d). Limit "
        f"{CHECKER_LIMIT} (issue 16). A smooth ramp of slope g levels/px also adds g/2 to h or v, so LibRaw's own "
        f"render scores ~0.4 there; d is the pure checkerboard. Own implementation in this script, to be replaced "
        f"by darkc.metrics' once merged.",
        f"- **cast**: max over R, G, B of |mean chromaticity (channel / (R+G+B)) of the output - of LibRaw's render|, "
        f"over pixels whose reference mean RGB lies in {list(MID_TONES)}; limit {CAST_LIMIT} (our choice: a 5 % "
        f"gain on one channel gives ~0.011), against LibRaw's render and against a **noise-averaged render**: the "
        f"packed raw Gaussian-averaged (sigma {SMOOTH_SIGMA:g} packed px) before the black clip, then rendered by "
        f"LibRaw with the same ratio, WB and matrix. LibRaw's render of a noisy raw is itself tinted where noise is "
        f"clipped at black (each channel's shadows lifted by its own noise: its row below shows by how much), so a "
        f"denoiser that is right differs from it; pass = checker and the cast vs the noise-averaged render within "
        f"their limits. dE00: mean CIEDE2000 (skimage) vs LibRaw's render.",
        "- (a) **as-is**: the file at ratio 1 (normally exposed; a night capture also at the ratio that brightens "
        "it, as a user passes `darkc enhance --ratio`) through the model as `darkc enhance` runs it; the reference "
        "is LibRaw's render of the same raw at the same ratio (`render_raw`: camera WB, no auto-bright, 16 bit), "
        "whose own checker is given per ratio.",
        "- (b) **simulated dark captures** (normally exposed files only): the file's signal / ratio with the "
        "physical noise of `darkc.data.noise.expose` (profile and ISO below, the file's own black/white levels), "
        "amplified by the ratio; PSNR/SSIM vs LibRaw's render of the original (which carries the original's own "
        "noise), beside LibRaw + NLM (`darkc.evaluate.nlm_denoise` on LibRaw's render of the amplified capture). "
        "The raw is clipped at black before amplification (as `read_raw` does), so in the shadows noise lifts the "
        "mean and LibRaw's white balance tints it: the baseline's cast at x250/x300.",
        "",
    ]
    for f in report["files"]:
        src = f["source"]
        lines += [f"## {f['name']}: {src['camera']}", "",
                  f"Source: {'PyPI sdist' if src.get('registry') == 'pypi' else 'package'} `{src['package']}` "
                  f"{src['version']}, file `{src['path']}`"
                  + (f" (sha256 `{src['sha256'][:16]}...`)" if src.get("sha256") else "")
                  + f"; {src['exposure']}; licence {src['licence']}. Not shipped here: "
                  + (f"extracted from the package into the cache at run time (or `{src['install']}`)."
                     if src.get("sha256") else "given with --raw."), "",
                  f"Crop {f['crop_px']} (frame px), {f['cfa']}. LibRaw's own render: checker "
                  f"{_fmt_checker(f['libraw_checker'])}.", "",
                  "### (a) as-is vs LibRaw's render", "",
                  "| ratio | model | output | checker max (h/v/d) | cast vs LibRaw's render (dR, dG, dB) | cast vs "
                  "noise-averaged render (dR, dG, dB) | dE00 | PSNR / SSIM | pass |",
                  "|---|---|---|---|---|---|---|---|---|"]
        means_rows = []
        for ratio, rows in f["as_is"].items():
            for name, m in rows.items():
                mean_c = m.get("colour_vs_noise_averaged", m["colour"])
                ok = m["checker"]["max"] <= CHECKER_LIMIT and mean_c["cast"] <= CAST_LIMIT
                lines.append(f"| {ratio} | {name} | {m['output']} | {_fmt_checker(m['checker'])} | "
                             f"{_fmt_cast(m['colour'])} | {_fmt_cast(mean_c)} | {m['deltae']:.2f} | "
                             f"{m['psnr']:.2f} / {m['ssim']:.3f} | {'yes' if ok else 'no'} |")
            ref_c = next(iter(rows.values()))["reference_checker"]
            if f.get("input_raw_means", {}).get(ratio):
                means_rows.append((ratio, "input (not clipped at black)", f["input_raw_means"][ratio]))
                means_rows += [(ratio, name, m["raw_means"]) for name, m in rows.items() if m.get("raw_means")]
            own = f.get("libraw_vs_noise_averaged", {}).get(ratio)
            lines.append(f"| {ratio} | LibRaw render | - | {_fmt_checker(ref_c)} | - | "
                         f"{_fmt_cast(own) if own else '-'} | - | - | - |")
        if means_rows:
            base = {r: v for r, name, v in means_rows if name.startswith("input")}
            lines += ["", "Packed raw channel means on the crop (darkc's packed order; raw-output models' clean raw "
                      "against the input's, whose noise averages out): a colour error of the model shows as a "
                      "channel off its input's mean.", "", "| ratio | raw | channel means | vs input |",
                      "|---|---|---|---|"]
            lines += [f"| {r} | {name} | {', '.join(f'{v:.4f}' for v in vals)} | "
                      f"{', '.join(f'{100 * (v / b - 1):+.0f} %' if b > 0 else '-' for v, b in zip(vals, base[r]))} |"
                      for r, name, vals in means_rows]
        sim = f["simulation"]
        if sim is None:
            lines += ["", "### (b) simulated dark captures: not made", "",
                      "This file is itself a night capture: scaled down by 100-300 it would hold almost no signal.",
                      "", f"![{f['name']}]({f['png']})", "",
                      "Crops: the centre 256 x 256 px of the crop at 100 %, 8-bit sRGB as rendered (no brightening).",
                      ""]
            continue
        lines += ["", f"### (b) simulated dark captures ({sim['profile']} noise at ISO {sim['iso']:g}: "
                  f"K = {sim['gain_dn_per_e']:.3g} DN/e-, read {sim['read_sigma_dn']:.2f} DN, row "
                  f"{sim['row_sigma_dn']:.2f} DN; levels {sim['black']}/{sim['white']})", "",
                  "| ratio | method | PSNR (dB) | SSIM | checker max | cast |", "|---|---|---|---|---|---|"]
        for ratio, row in f["dark"].items():
            for name, m in row.items():
                lines.append(f"| {ratio} | {name} | {m['psnr']:.2f} | {m['ssim']:.3f} | {m['checker']['max']:.2f} | "
                             f"{m['colour']['cast']:.4f} |")
        lines += ["", f"![{f['name']}]({f['png']})", "",
                  "Crops: the centre 256 x 256 px of the crop at 100 %, 8-bit sRGB as rendered (no brightening).", ""]
    lines += ["## Where else a real raw was looked for", "",
              "Package registries reachable offline only (Debian, PyPI, npm); `REJECTED` in `benchmarks/real_raws.py`. "
              "Decoded with rawpy "
              "(LibRaw 0.22.2).", "", "| where | what is there | why not used |", "|---|---|---|"]
    lines += [f"| {where} | {what} | {why} |" for where, what, why in REJECTED]
    return "\n".join(lines) + "\n"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", help="shipped name or artifact dir/.onnx/.tflite, run as darkc enhance runs it; "
                    "NAME+no-srgb-anchor: an sRGB model with darkc enhance --no-srgb-anchor; repeatable "
                    "(default: teacher)")
    ap.add_argument("--raw", action="append", default=[], help="a raw file to add to the packaged SOURCES; repeatable")
    ap.add_argument("--no-sources", action="store_true",
                    help="leave the packaged SOURCES out (measure --raw files only)")
    ap.add_argument("--out", default="benchmarks/results/real_raws")
    ap.add_argument("--crop", type=int, default=512, help="crop side in frame px (default 512)")
    ap.add_argument("--ratio", type=float, default=1.0, help="ratio for the as-is run (default 1)")
    ap.add_argument("--profile", default="canon-g7x-like", help="noise profile of the simulated dark captures")
    ap.add_argument("--iso", type=float, default=400, help="ISO of the simulated captures (the profile's gain there)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    models = args.model or ["teacher"]
    try:
        return _run(args, models)
    except DarkcError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _runner(model: str, cfa: str, threads: int):
    """``NAME`` (run as ``darkc enhance`` runs it: an sRGB model with ``--srgb-anchor``, its default) or
    ``NAME+no-srgb-anchor`` (an sRGB model's own colour, ``darkc enhance --no-srgb-anchor``)."""
    base, plus, option = model.partition("+")
    runner = load_runner(pretrained_for_cfa(base, cfa), threads)
    if plus and (option != "no-srgb-anchor" or runner.output == "raw"):
        raise DarkcError(f"--model {model}: the only suffix is '+no-srgb-anchor', for sRGB-output models (raw-output "
                         f"models are always anchored)")
    runner.srgb_anchor = runner.output != "raw" and not plus
    if plus:
        runner.name = f"{runner.name}+no-srgb-anchor"
    return runner


def _run(args, models: list) -> int:
    import torch

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    items = []
    for src in () if args.no_sources else SOURCES:
        path = locate(src)
        items.append((src.name, path, {"camera": src.camera, "exposure": src.exposure, "package": src.package,
                      "version": src.version, "path": src.path, "sha256": src.sha256, "licence": src.licence,
                      "install": src.install, "registry": src.registry}, src.centre, src.night))
    for raw in args.raw:
        p = Path(raw)
        items.append((_safe(p.stem), p, {"camera": "given with --raw", "exposure": "-", "package": "-",
                      "version": "-", "path": p.name, "licence": "-", "install": "-"}, (0.5, 0.5), None))
    if not items:
        raise DarkcError("no raw file to measure: pass --raw FILE, or drop --no-sources")
    out_dir = Path(args.out)
    files = []
    runs = sum(2 if night else 1 + len(RATIOS) for *_, night in items)
    bar = tqdm(total=runs * len(models), desc="real raws", unit="run")
    for name, path, source, centre, night in items:
        cfa = read_raw(path).cfa
        runners = [_runner(m, cfa, args.threads) for m in models]
        entry = measure_file(path, runners, ratios=() if night else RATIOS, crop_px=args.crop, centre=centre,
                             asis_ratios=(args.ratio, night) if night else (args.ratio,), profile_name=args.profile,
                             iso=args.iso, bar=bar)
        png = f"{name}.png"
        figure(entry.pop("images"), [r.name for r in runners], out_dir / png)
        files.append({"name": name, "source": source, "png": png, **entry})
    bar.close()
    command = "python benchmarks/real_raws.py " + " ".join(f"--model {m}" for m in models) \
        + "".join(f" --raw {Path(r).name}" for r in args.raw) + (" --no-sources" if args.no_sources else "") \
        + (f" --crop {args.crop}" if args.crop != 512 else "") \
        + (f" --ratio {args.ratio:g}" if args.ratio != 1 else "") \
        + (f" --profile {args.profile}" if args.profile != "canon-g7x-like" else "") \
        + (f" --iso {args.iso:g}" if args.iso != 400 else "")
    report = {"command": command, "models": models, "seconds": round(time.perf_counter() - start, 1),
              "host": {"machine": platform.machine(), "python": sys.version.split()[0], "threads": args.threads},
              "limits": {"checker": CHECKER_LIMIT, "cast": CAST_LIMIT, "mid_tones": list(MID_TONES)}, "files": files}
    with atomic_path(out_dir / "report.json") as tmp:
        tmp.write_text(json.dumps(report, indent=1, default=_json_default))
    md = report_md(report)
    with atomic_path(out_dir / "report.md") as tmp:
        tmp.write_text(md)
    print(md)
    return 0


def _json_default(v):
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    raise TypeError(f"not JSON serialisable: {type(v).__name__}")


if __name__ == "__main__":
    sys.exit(main())

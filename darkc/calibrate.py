"""``darkc calibrate``: a camera profile (noise model, levels, colour matrix) from raw frames of one sensor.

ELD's calibration (Wei et al. 2020), from what a maker can shoot in an afternoon:

* **dark frames** (lens capped) at two or more ISOs -> black level, read noise and row noise per ISO;
* **flat-field pairs** (two frames of a uniform target at the same ISO and exposure; several exposures
  per ISO) or **pairs from a burst of a static scene** -> system gain K per ISO, by the photon
  transfer curve of the pair's difference (scene and fixed pattern cancel in ``A - B``).

Frames are grouped by the ISO in their metadata (EXIF ``ISOSpeedRatings``). A frame is dark when its
mean is within 1 % of the raw range above the black level in its metadata. Lit frames of one ISO are
sorted by mean and paired with a neighbour whose mean is within 5 %.

Per ISO: read/row sigma (DN) of the dark frames (:func:`darkc.data.noise_estimate.dark_noise`,
quantisation's 1/12 DN^2 taken out); K from ``var((A - B) second difference) / 2 = K * S + pixel
variance`` over 32x32 blocks of each one-colour sub-lattice, the intercept fixed to the dark frames'
pixel variance. ISOs with dark frames but no pairs get K by proportion to ISO from the measured ones.
Then the profile's log-linear models ``log sigma = a log K + b`` (read, row) are fitted over the ISOs.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .data import cfa as cfa_mod
from .data.noise_estimate import dark_noise
from .data.profiles import CameraProfile
from .errors import DarkcError

DARK_LEVEL = 0.01        # a frame whose mean is this fraction of (white - black) above black or less is dark
PAIR_TOLERANCE = 0.05    # lit frames pair when their means (above black) are within 5 %
PTC_BLOCK = 32           # block side (sub-lattice pixels) of the photon transfer curve
RAW_SUFFIXES = {".dng", ".arw", ".nef", ".cr2", ".cr3", ".raf", ".orf", ".rw2", ".pef", ".srw", ".raw", ".tif", ".tiff"}


@dataclass
class FrameInfo:
    path: Path
    iso: int
    make: str
    model: str
    cfa: str
    pattern: np.ndarray
    shape: tuple
    black: float          # metadata black level (mean over channels), DN
    white: int
    xyz_to_cam: tuple | None
    mean: float = 0.0     # mean DN above the metadata black


def _tiff_meta(path: Path) -> dict:
    """ISO, make, model and DNG colour matrix of a TIFF-based raw (DNG, ARW, NEF, CR2, ...); {} if not TIFF."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            tags = tif.pages[0].tags
            exif = tags.get("ExifTag")
            exif = exif.value if exif is not None and isinstance(exif.value, dict) else {}
            get = lambda name: tags[name].value if name in tags else exif.get(name)  # noqa: E731
            iso = get("ISOSpeedRatings") or get("PhotographicSensitivity")
            matrix = get("ColorMatrix1")
            if get("ColorMatrix2") is not None and get("CalibrationIlluminant2") == 21:    # D65 is matrix 2
                matrix = get("ColorMatrix2")
            if matrix is not None:
                m = np.asarray(matrix, np.float64).ravel()
                matrix = tuple(float(a) / float(b) for a, b in zip(m[0::2], m[1::2])) if m.size == 18 \
                    else tuple(float(v) for v in m)
            return {"iso": int(iso[0] if isinstance(iso, (tuple, list)) else iso) if iso else None,
                    "make": str(get("Make") or "").strip(), "model": str(get("Model") or "").strip(),
                    "xyz_to_cam": matrix if matrix is not None and len(matrix) == 9 else None}
    except (tifffile.TiffFileError, OSError, ValueError, KeyError, IndexError):
        return {}


def _info(path: Path) -> FrameInfo:
    from .data.raw import open_raw

    with open_raw(path) as raw:
        try:
            pattern = cfa_mod.colour_pattern(raw.raw_pattern, raw.color_desc.decode())
            kind = cfa_mod.cfa_kind(pattern)
            vis = raw.raw_image_visible
            black = float(np.mean(raw.black_level_per_channel))
            white = int(raw.white_level)
            lib_matrix = np.asarray(raw.rgb_xyz_matrix[:3], np.float64)
            mean = float(vis.mean()) - black
            shape = vis.shape
        except Exception as exc:   # LibRaw errors while unpacking a truncated file
            raise DarkcError(f"cannot decode raw data in {path}: {exc}; the file may be truncated") from None
    meta = _tiff_meta(path)
    if not meta.get("iso"):
        raise DarkcError(f"{path} has no ISO in its metadata (EXIF ISOSpeedRatings): calibrate needs each frame's "
                         f"ISO; use the camera's own raw files (DNG/ARW/NEF/CR2)")
    matrix = meta.get("xyz_to_cam")
    if matrix is None and np.abs(lib_matrix).sum() > 0:
        matrix = tuple(float(v) for v in lib_matrix.ravel())
    return FrameInfo(path, meta["iso"], meta.get("make", ""), meta.get("model", ""), kind, pattern, shape,
                     black, white, matrix, mean)


def _load(path: Path) -> np.ndarray:
    from .data.raw import open_raw

    with open_raw(path) as raw:
        return raw.raw_image_visible.astype(np.float64)


def expand_frames(frames) -> list[Path]:
    """Files as given; folders replaced by the raw files in them (sorted)."""
    out: list[Path] = []
    for f in frames:
        p = Path(f)
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.suffix.lower() in RAW_SUFFIXES and q.is_file())
            if not found:
                raise DarkcError(f"folder {p} holds no raw files ({', '.join(sorted(RAW_SUFFIXES))})")
            out += found
        elif not p.is_file():
            raise DarkcError(f"raw file {p} does not exist: check the path")
        else:
            out.append(p)
    if not out:
        raise DarkcError("calibrate needs raw frames: dark frames and flat-field pairs at two or more ISOs")
    return out


def _check_one_sensor(infos: list[FrameInfo]) -> None:
    first = infos[0]
    key = lambda i: (i.make, i.model, i.cfa, i.shape, i.white)  # noqa: E731
    for i in infos[1:]:
        if key(i) != key(first):
            describe = lambda f: f"{f.make} {f.model} {f.cfa} {f.shape[1]}x{f.shape[0]} white {f.white}".strip()  # noqa: E731
            raise DarkcError(f"{i.path.name} ({describe(i)}) is not from the same sensor as {first.path.name} "
                             f"({describe(first)}): calibrate one camera at a time")


def _pairs(lit: list[FrameInfo]) -> tuple[list[tuple[FrameInfo, FrameInfo]], list[FrameInfo]]:
    """Pair lit frames of one ISO whose means agree within PAIR_TOLERANCE; returns (pairs, unpaired)."""
    rest = sorted(lit, key=lambda f: f.mean)
    pairs, single = [], []
    while rest:
        a = rest.pop(0)
        if rest and abs(rest[0].mean - a.mean) <= PAIR_TOLERANCE * max(a.mean, 1e-9):
            pairs.append((a, rest.pop(0)))
        else:
            single.append(a)
    return pairs, single


def _ptc_points(a: np.ndarray, b: np.ndarray, black: float, white: float, step: int):
    """Block (signal above black, half the variance of A - B) points of one pair, DN and DN^2."""
    xs, ys = [], []
    n = PTC_BLOCK
    for i in range(step):
        for j in range(step):
            sa, sb = a[i::step, j::step], b[i::step, j::step]
            d = sa - sb
            d2 = (d[:, :-2] - 2.0 * d[:, 1:-1] + d[:, 2:]) / np.sqrt(6.0)
            mean = ((sa + sb) / 2.0)[:, 1:-1]
            peak = np.maximum(sa, sb)[:, 1:-1]
            h, w = d2.shape[0] // n * n, d2.shape[1] // n * n
            if h == 0 or w == 0:
                continue
            blk = lambda x, f: f(x[:h, :w].reshape(h // n, n, w // n, n), axis=(1, 3)).ravel()  # noqa: E731
            ok = blk(peak, np.max) < white - 1
            xs.append((blk(mean, np.mean) - black)[ok])
            ys.append((blk(d2 ** 2, np.mean) / 2.0)[ok])
    return (np.concatenate(xs), np.concatenate(ys)) if xs else (np.zeros(0), np.zeros(0))


def _fit_gain(s: np.ndarray, v: np.ndarray, intercept: float) -> float:
    """K from v = K s + intercept by least squares weighted 1 / predicted v^2 (a block variance's spread is
    proportional to it). Weights from the predicted, not the observed, variance: observed weights favour
    blocks that came out low by chance and bias K down (by ~0.8 % at 32x32 blocks)."""
    k = float(np.sum(s * (v - intercept)) / np.sum(s * s))
    for _ in range(3):
        w2 = 1.0 / np.maximum(k * s + intercept, 1e-12) ** 2
        k = float(np.sum(w2 * s * (v - intercept)) / np.sum(w2 * s * s))
    return k


def calibrate(frames, *, name: str | None = None, progress: bool = True) -> tuple[CameraProfile, dict]:
    """Fit a :class:`CameraProfile` to raw frames of one sensor; returns (profile, calibration record)."""
    paths = expand_frames(frames)
    infos = [_info(p) for p in tqdm(paths, desc="darkc calibrate: read", unit="file", disable=not progress)]
    _check_one_sensor(infos)
    first = infos[0]
    span = first.white - first.black
    step = cfa_mod.tile(first.cfa)
    by_iso: dict[int, list[FrameInfo]] = {}
    for i in infos:
        by_iso.setdefault(i.iso, []).append(i)
    isos = sorted(by_iso)
    dark = {iso: [f for f in fs if f.mean <= DARK_LEVEL * span] for iso, fs in by_iso.items()}
    lit = {iso: [f for f in fs if f.mean > DARK_LEVEL * span] for iso, fs in by_iso.items()}
    dark_isos = [iso for iso in isos if dark[iso]]
    if not dark_isos:
        raise DarkcError(f"no dark frames among the {len(infos)} frames (ISO {', '.join(map(str, isos))}): add frames "
                         f"shot with the lens capped at two or more ISOs")
    if len(dark_isos) < 2:
        raise DarkcError(f"dark frames at ISO {dark_isos[0]} only: the read-noise fit needs dark frames at two or more "
                         f"ISOs; add lens-capped frames at another ISO")
    pairs = {iso: _pairs(lit[iso]) for iso in isos}
    if not any(p for p, _ in pairs.values()):
        raise DarkcError("no flat-field pairs: add two frames of a uniform, unsaturated target at the same ISO and "
                         "exposure (several exposures per ISO), or a burst of a static scene")
    rows = {}
    work = [(iso, "dark", f) for iso in isos for f in dark[iso]] + \
           [(iso, "pair", pr) for iso in isos for pr in pairs[iso][0]]
    acc: dict[int, dict] = {iso: {"pix": [], "row": [], "black": [], "s": [], "v": []} for iso in isos}
    for iso, kind, item in tqdm(work, desc="darkc calibrate: measure", unit="frame", disable=not progress):
        if kind == "dark":
            x = _load(item.path)
            pix, row = dark_noise(x, 0.0, 1.0, step)
            acc[iso]["black"].append(float(x.mean()))
            acc[iso]["pix"].append(pix)
            acc[iso]["row"].append(row)
        else:
            s, v = _ptc_points(_load(item[0].path), _load(item[1].path), first.black, first.white, step)
            acc[iso]["s"].append(s)
            acc[iso]["v"].append(v)
    black = float(np.mean([b for iso in dark_isos for b in acc[iso]["black"]]))
    for iso in isos:
        a = acc[iso]
        row = {"iso": iso, "dark_frames": len(dark[iso]), "pairs": len(pairs[iso][0]),
               "unpaired": [f.path.name for f in pairs[iso][1]]}
        if a["pix"]:
            pix = float(np.mean(a["pix"]))
            row.update(read_dn=float(np.sqrt(max(pix - 1.0 / 12.0, 1e-12))),
                       row_dn=float(np.sqrt(np.mean(a["row"]))), black_dn=float(np.mean(a["black"])))
        if a["s"]:
            s, v = np.concatenate(a["s"]), np.concatenate(a["v"])
            keep = s > 0
            if keep.sum() < 8:
                raise DarkcError(f"flat frames at ISO {iso} are saturated or black: expose the flat target between "
                                 f"5 % and 80 % of the raw range")
            s = s[keep] + first.black - black        # signal above the measured black
            intercept = pix if a["pix"] else float(np.median(v[s < np.quantile(s, 0.1)]))
            row.update(gain=_fit_gain(s, v[keep], intercept), gain_source="measured",
                       signal_range_dn=[float(s.min()), float(s.max())])
        rows[iso] = row
    measured = [iso for iso in isos if "gain" in rows[iso]]
    if not measured:
        raise DarkcError("no usable flat-field pairs: every pair was saturated or black")
    # K is proportional to ISO (analogue gain): ISOs with dark frames only get K from the measured ones
    k_per_iso = float(np.exp(np.mean([np.log(rows[i]["gain"] / i) for i in measured])))
    for iso in isos:
        if "gain" not in rows[iso]:
            rows[iso].update(gain=k_per_iso * iso, gain_source="ISO-proportional")
    fit = [rows[i] for i in dark_isos]
    ks = np.log([r["gain"] for r in fit])
    if np.ptp(ks) < 1e-6:
        raise DarkcError(f"dark frames at ISO {', '.join(map(str, dark_isos))} have the same gain: the read-noise fit "
                         f"needs two or more different ISOs")
    a_read, b_read = np.polyfit(ks, np.log([r["read_dn"] for r in fit]), 1)
    a_row, b_row = np.polyfit(ks, np.log([max(r["row_dn"], 1e-3) for r in fit]), 1)
    resid = np.log([r["read_dn"] for r in fit]) - (a_read * ks + b_read)
    gains = [rows[i]["gain"] for i in isos]
    model = first.model or "unknown"
    profile = CameraProfile(
        name=name or "calibrated-" + re.sub(r"[^a-z0-9]+", "-", model.lower()).strip("-"), cfa=first.cfa,
        bit_depth=int(np.ceil(np.log2(first.white + 1))), black=int(round(black)), white=first.white,
        xyz_to_cam=_matrix(first), gain_range=(float(min(gains)), float(max(gains))),
        a_read=float(a_read), b_read=float(b_read), a_row=float(a_row), b_row=float(b_row),
        sigma_log=float(max(CameraProfile.sigma_log, np.std(resid))) if len(fit) > 2 else CameraProfile.sigma_log,
        make=first.make or "unknown", model=model)
    record = {"frames": len(infos), "metadata_black_dn": first.black, "measured_black_dn": black,
              "per_iso": [{k: v for k, v in rows[i].items() if v != []} for i in isos]}
    return profile, record


def _matrix(info: FrameInfo) -> tuple:
    if info.xyz_to_cam is None:
        raise DarkcError(f"{info.path} carries no colour matrix (DNG ColorMatrix1/2) and LibRaw has none for its "
                         f"camera: convert the frames to DNG with Adobe DNG Converter")
    return tuple(float(v) for v in info.xyz_to_cam)


def format_record(profile: CameraProfile, record: dict) -> str:
    """A plain-text table of the per-ISO measurements and the fitted models."""
    lines = [f"profile {profile.name}: {profile.make} {profile.model}, {profile.cfa}, {profile.bit_depth} bit, "
             f"black {profile.black} (metadata {record['metadata_black_dn']:g}), white {profile.white}",
             f"{'ISO':>6}  {'K DN/e-':>9}  {'source':<17}  {'read DN':>8}  {'row DN':>7}  dark  pairs"]
    for r in record["per_iso"]:
        lines.append(f"{r['iso']:>6}  {r['gain']:>9.4f}  {r['gain_source']:<17}  "
                     f"{r.get('read_dn', float('nan')):>8.3f}  {r.get('row_dn', float('nan')):>7.3f}  "
                     f"{r['dark_frames']:>4}  {r['pairs']:>5}")
    lines.append(f"log(read) = {profile.a_read:.4f} log(K) + {profile.b_read:.4f};  "
                 f"log(row) = {profile.a_row:.4f} log(K) + {profile.b_row:.4f};  K in [{profile.gain_range[0]:.4g}, "
                 f"{profile.gain_range[1]:.4g}]")
    return "\n".join(lines)


def run(frames, out: str | os.PathLike, *, name: str | None = None, progress: bool = True) -> tuple[CameraProfile, dict]:
    """``darkc calibrate``: fit and write the profile file (atomically; nothing is written on error)."""
    from .data.profile_file import write_profile

    out = Path(out)
    if out.suffix != ".toml":
        raise DarkcError(f"profile file {out} must end in .toml (the format --profile FILE reads)")
    profile, record = calibrate(frames, name=name or out.stem, progress=progress)
    write_profile(profile, out, calibration=record)
    return profile, record

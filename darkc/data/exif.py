"""Reading the capture metadata a raw converter copies into its output: camera, lens, exposure, ISO, date.

::

    tags, problem = read_exif("DSC01234.ARW")    # {271: "SONY", 272: "ILCE-7S", 33434: Fraction(1, 25), ...}

Tags are keyed by their EXIF/TIFF number (:data:`COPIED`). They come from, in order:

1. the file's TIFF structure (DNG, ARW, NEF, CR2, ... are TIFF files): IFD0 and its EXIF IFD, read by tifffile;
2. else the EXIF of the JPEG preview LibRaw finds in the file (RAF and other non-TIFF raws embed one);
3. for exposure, aperture, ISO, focal length and lens still missing: LibRaw's own parse (rawpy ``other`` and
   ``lens``), which covers makers' private fields.
"""
from __future__ import annotations

import io
import os
from fractions import Fraction

import rawpy

from ..errors import one_line

IFD0, EXIF_IFD = "ifd0", "exif"
#: EXIF IFD pointer tag (34665): where the exposure tags live in a JPEG/PNG EXIF block.
EXIF_POINTER = 0x8769

#: Tags copied from the raw file: number -> (name, IFD it belongs in, kind "text" / "rational" / "short").
COPIED = {
    271: ("Make", IFD0, "text"),
    272: ("Model", IFD0, "text"),
    306: ("DateTime", IFD0, "text"),
    33434: ("ExposureTime", EXIF_IFD, "rational"),
    33437: ("FNumber", EXIF_IFD, "rational"),
    34855: ("ISOSpeedRatings", EXIF_IFD, "short"),
    36867: ("DateTimeOriginal", EXIF_IFD, "text"),
    36868: ("DateTimeDigitized", EXIF_IFD, "text"),
    37386: ("FocalLength", EXIF_IFD, "rational"),
    42035: ("LensMake", EXIF_IFD, "text"),
    42036: ("LensModel", EXIF_IFD, "text"),
}
_BY_NAME = {name: code for code, (name, _, _) in COPIED.items()}


def _normal(code: int, value):
    """A tag value as str / Fraction / int, or None when empty or malformed.

    Rationals arrive as ``(num, den)`` (tifffile), Pillow's ``IFDRational`` or a float (LibRaw)."""
    kind = COPIED[code][2]
    try:
        if kind == "rational":
            if isinstance(value, (tuple, list)):
                frac = Fraction(int(value[0]), int(value[1])) if len(value) == 2 and value[1] else None
            elif isinstance(value, float):
                frac = Fraction(value).limit_denominator(100000)
            else:
                frac = Fraction(int(value.numerator), int(value.denominator)) if value.denominator else None
            return frac if frac is not None and frac > 0 else None
        if isinstance(value, (tuple, list)):
            value = value[0] if value else None
        if kind == "text":
            text = value.decode("latin-1") if isinstance(value, bytes) else str(value or "")
            return text.strip("\x00 ") or None
        number = int(value)
        return number if number > 0 else None
    except (TypeError, ValueError, AttributeError, ZeroDivisionError):
        return None


def _tiff_tags(path: str | os.PathLike) -> dict:
    """Tags from IFD0 and its EXIF IFD of a TIFF-based raw; raises if the file is no TIFF."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        page = tif.pages.first
        found = {}
        exif = page.tags.get(EXIF_POINTER)
        if exif is not None and isinstance(exif.value, dict):
            for name, value in exif.value.items():
                if name in _BY_NAME:
                    found[_BY_NAME[name]] = value
        for code in COPIED:                      # DNG allows exposure tags in IFD0; EXIF IFD wins
            tag = page.tags.get(code)
            if tag is not None and code not in found:
                found[code] = tag.value
    return found


def _preview_tags(raw: "rawpy.RawPy") -> dict:
    """Tags from the EXIF of the embedded JPEG preview; raises if there is none."""
    from PIL import Image

    thumb = raw.extract_thumb()
    if thumb.format != rawpy.ThumbFormat.JPEG:
        raise ValueError("the embedded preview is not a JPEG")
    exif = Image.open(io.BytesIO(bytes(thumb.data))).getexif()
    found = {code: exif[code] for code in COPIED if code in exif}
    sub = exif.get_ifd(EXIF_POINTER)
    found.update({code: sub[code] for code in COPIED if code in sub})
    return found


def _libraw_tags(raw: "rawpy.RawPy") -> dict:
    """Exposure, aperture, ISO, focal length and lens as LibRaw parsed them (0 / "" when unknown)."""
    other, lens = raw.other, raw.lens
    return {33434: other.shutter_speed, 33437: other.aperture, 34855: round(other.iso_speed),
            37386: other.focal_length, 42035: lens.make, 42036: lens.model}


def read_exif(path: str | os.PathLike) -> tuple[dict, str | None]:
    """The :data:`COPIED` tags of a raw file, and why they could not be read (None when they could).

    Returns:
        ``(tags, problem)``: ``tags`` maps tag number to str / Fraction / int, leaving out what the file does
        not record; ``problem`` is a one-line reason when neither the TIFF structure nor an embedded preview
        gave any tags (then at most LibRaw's exposure fields are there).
    """
    tags: dict = {}
    problems = []
    try:
        tags = _tiff_tags(path)
    except Exception as exc:  # tifffile raises TiffFileError, ValueError, struct.error, ... on a non-TIFF raw
        problems.append(f"no TIFF structure ({one_line(exc)})")
    try:
        with rawpy.imread(str(path)) as raw:
            if not tags:
                try:
                    tags = _preview_tags(raw)
                except Exception as exc:  # rawpy LibRawNoThumbnailError, Pillow UnidentifiedImageError, ...
                    problems.append(f"no EXIF preview ({one_line(exc)})")
            for code, value in _libraw_tags(raw).items():
                tags.setdefault(code, value)
    except (rawpy.LibRawError, OSError) as exc:
        problems.append(f"LibRaw cannot parse it ({one_line(exc)})")
    clean = {code: v for code, v in ((c, _normal(c, value)) for c, value in tags.items()) if v is not None}
    if not any(COPIED[c][1] == IFD0 for c in clean) and problems:
        return clean, "; ".join(problems)
    return clean, None

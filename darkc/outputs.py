"""Writing enhanced images as a raw converter does: the format the extension names, with the source's EXIF.

::

    check_output("out.jpg", bits=None, quality=95)            # -> ("jpeg", 8): fails before any work is done
    write_image("out.jpg", rgb, exif=read_exif("a.ARW")[0])    # rgb: (3, H, W) sRGB in [0, 1]

========================  ======  ==========================================================================
extension                 bits    EXIF
========================  ======  ==========================================================================
``.png``                  8, 16   ``eXIf`` chunk (PNG 1.5), encoded by OpenCV
``.tif`` / ``.tiff``      16, 8   tags in IFD0 (as DNG keeps them), written by tifffile, deflate-compressed
``.jpg`` / ``.jpeg``      8       APP1 block, written by Pillow with ``quality`` (1-100, default 95)
========================  ======  ==========================================================================

Every output gets ``Software`` = darkc and its version and ``Orientation`` = 1 (the pixels are already turned,
see :mod:`darkc.data.orientation`), plus the copied tags of :data:`darkc.data.exif.COPIED`. Files are written
atomically: a failed write leaves nothing (and an older file intact).
"""
from __future__ import annotations

import os
import struct
import zlib
from fractions import Fraction
from pathlib import Path

import numpy as np

from . import __version__
from .data.exif import COPIED, EXIF_POINTER, IFD0
from .errors import DarkcError, atomic_path, one_line

#: Output extension -> (format, default bits, allowed bits).
FORMATS = {".png": ("png", 8, (8, 16)), ".tif": ("tiff", 16, (8, 16)), ".tiff": ("tiff", 16, (8, 16)),
           ".jpg": ("jpeg", 8, (8,)), ".jpeg": ("jpeg", 8, (8,))}
DEFAULT_QUALITY = 95
SOFTWARE = f"darkc {__version__}"
_ORIENTATION, _SOFTWARE = 274, 305


def check_output(path: str | os.PathLike, bits: int | None = None, quality: int | None = None) -> tuple[str, int]:
    """``(format, bits)`` for an output path, or a one-line error naming the formats darkc writes.

    ``bits`` None takes the format's default (8 for PNG and JPEG, 16 for TIFF); ``quality`` applies to JPEG.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise DarkcError(f"cannot write {path}: darkc writes .png (8/16-bit), .tif/.tiff (16-bit) and "
                         f".jpg/.jpeg (8-bit); pick one of these extensions")
    fmt, default_bits, allowed = FORMATS[suffix]
    bits = default_bits if bits is None else bits
    if bits not in allowed:
        raise DarkcError(f"--bits {bits!r} for {path}: {fmt.upper()} output takes "
                         f"{' or '.join(str(b) for b in allowed)} bits")
    if quality is not None:
        if fmt != "jpeg":
            raise DarkcError(f"--quality is for .jpg output; {path} is {fmt.upper()} (lossless)")
        if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
            raise DarkcError(f"--quality {quality!r} for {path}: pass a JPEG quality from 1 to 100 (default 95)")
    return fmt, bits


def _pixels(rgb: np.ndarray, bits: int) -> np.ndarray:
    """(3, H, W) float in [0, 1] -> (H, W, 3) uint8/uint16, one channel at a time (no full-size float copies)."""
    dtype, full = (np.uint8, 255.0) if bits == 8 else (np.uint16, 65535.0)
    img = np.empty(rgb.shape[1:] + (3,), dtype)
    for c in range(3):
        img[..., c] = np.rint(np.clip(rgb[c], 0.0, 1.0) * full)
    return img


def exif_block(tags: dict) -> bytes:
    """A TIFF-structured EXIF block (``Exif\\0\\0`` header included) with ``tags``, Software and Orientation 1."""
    from PIL import Image, TiffImagePlugin

    exif = Image.Exif()
    sub = exif.get_ifd(EXIF_POINTER)
    for code, value in sorted(tags.items()):
        if code not in COPIED:
            continue
        if isinstance(value, Fraction):
            value = TiffImagePlugin.IFDRational(value.numerator, value.denominator)
        (exif if COPIED[code][1] == IFD0 else sub)[code] = value
    exif[_SOFTWARE] = SOFTWARE
    exif[_ORIENTATION] = 1
    return exif.tobytes()


def _png_with_exif(png: bytes, exif: bytes) -> bytes:
    """Insert an ``eXIf`` chunk (PNG 1.5: the TIFF block without the ``Exif\\0\\0`` header) after IHDR."""
    body = exif[6:] if exif.startswith(b"Exif\x00\x00") else exif
    ihdr_end = 8 + 8 + struct.unpack(">I", png[8:12])[0] + 4            # signature, IHDR length+type, data, CRC
    chunk = struct.pack(">I", len(body)) + b"eXIf" + body + struct.pack(">I", zlib.crc32(b"eXIf" + body))
    return png[:ihdr_end] + chunk + png[ihdr_end:]


def _tiff_tags(tags: dict) -> list:
    """tifffile ``extratags`` for the copied tags (all kept in IFD0, as DNG files keep them)."""
    out = []
    for code, value in sorted(tags.items()):
        if code not in COPIED:
            continue
        kind = COPIED[code][2]
        if kind == "text":
            out.append((code, "s", 0, value, True))
        elif kind == "rational":
            frac = Fraction(value).limit_denominator(2**31 - 1)
            out.append((code, "2I", 1, (frac.numerator, frac.denominator), True))
        else:
            out.append((code, "H", 1, min(int(value), 65535), True))
    return out + [(_ORIENTATION, "H", 1, 1, True)]


def write_image(path: str | os.PathLike, rgb: np.ndarray, bits: int | None = None, exif: dict | None = None,
                quality: int | None = None) -> tuple[str, int]:
    """Write (3, H, W) sRGB in [0, 1] to ``path`` in the format its extension names; returns ``(format, bits)``.

    Args:
        path: ``.png``, ``.tif``/``.tiff`` or ``.jpg``/``.jpeg`` (see :func:`check_output`).
        rgb: (3, H, W) float sRGB; clipped to [0, 1].
        bits: 8 or 16 per channel; None: 8 for PNG/JPEG, 16 for TIFF.
        exif: tags from :func:`darkc.data.exif.read_exif` to copy; Software and Orientation 1 are always written.
        quality: JPEG quality 1-100 (default 95).

    Raises:
        DarkcError: an unsupported extension or bit depth, or the file cannot be written (nothing is left).
    """
    path = Path(path)
    fmt, bits = check_output(path, bits, quality)
    img = _pixels(rgb, bits)
    tags = exif or {}
    try:
        with atomic_path(path) as tmp:
            if fmt == "png":
                import cv2

                ok, encoded = cv2.imencode(".png", img[..., ::-1])       # RGB -> OpenCV's BGR
                if not ok:
                    raise DarkcError(f"cannot write {path}: OpenCV failed to encode the PNG")
                tmp.write_bytes(_png_with_exif(encoded.tobytes(), exif_block(tags)))
            elif fmt == "tiff":
                import tifffile

                tifffile.imwrite(tmp, img, photometric="rgb", compression="zlib", software=SOFTWARE,
                                 metadata=None, extratags=_tiff_tags(tags))
            else:
                from PIL import Image

                Image.fromarray(img).save(tmp, "JPEG", quality=quality or DEFAULT_QUALITY,
                                                  exif=exif_block(tags))
    except DarkcError:
        raise
    except Exception as exc:  # OSError (disk full, permissions), cv2.error, tifffile/Pillow encoder errors
        raise DarkcError(f"cannot write {path}: {one_line(exc)}; check the path and free space") from exc
    return fmt, bits

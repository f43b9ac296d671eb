"""Clean sRGB images to synthesise from: photos shipped in PyPI packages, optional Debian wallpapers,
procedural dead-leaves images, and the user's own folders.

The split is fixed: the project's reference validation set uses only images that ship with pip
packages (so anyone can rebuild it) plus dead-leaves images from a seed range training never uses.

Licences: sporco's test images (Kodak kodim23, Waterloo BragZone monarch/sail/tulips, barbara) are
"public domain or freely redistributable" per sporco's data README; scikit-image's astronaut (NASA,
public domain), coffee, chelsea (CC0), rocket (public domain), stereo motorcycle (Middlebury, free
for research); Debian plasma-workspace-wallpapers photographs are LGPL-3 or CC-BY-SA-4.0 (listed below).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from ..errors import DarkcError

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"}
WALLPAPER_DIR = Path("/usr/share/wallpapers")
# photographs (not illustrations) in Debian's plasma-workspace-wallpapers, with their licence
WALLPAPER_PHOTOS = {
    "BytheWater": "LGPL-3", "ColdRipple": "LGPL-3", "ColorfulCups": "LGPL-3", "DarkestHour": "LGPL-3",
    "EveningGlow": "LGPL-3", "FallenLeaf": "LGPL-3", "Grey": "LGPL-3", "Kite": "LGPL-3",
    "MilkyWay": "CC-BY-SA-4.0", "OneStandsOut": "LGPL-3", "Path": "LGPL-3", "Volna": "CC-BY-SA-4.0",
    "summer_1am": "LGPL-3",
}
# dead-leaves seeds: training draws from [0, 10**6), validation from [10**9, ...)
VAL_DEAD_LEAVES_SEED = 10**9
# colour spread of the disks (see dead_leaves). The reference validation set keeps 0.5; training uses
# more saturated disks: with 0.5 (target saturation ~0.1) and dead leaves at 77 % of the pool a fresh
# U-Net settled on grey output, with 1.2 and 16 images it learnt colour (600 steps, widths 16..256)
DEAD_LEAVES_CHROMA = {"train": 1.2, "val": 0.5}


@dataclass(frozen=True)
class CleanImage:
    name: str
    load: Callable[[], np.ndarray]   # -> (H, W, 3) float32 sRGB in [0, 1]
    licence: str = ""


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an 8- or 16-bit image file as (H, W, 3) float32 sRGB in [0, 1]."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DarkcError(f"cannot read image {path}: not an image file OpenCV can decode (png/jpg/tif)")
    scale = 65535.0 if img.dtype == np.uint16 else 255.0
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    elif img.shape[2] == 4:
        img = img[..., :3]
    return (img[..., ::-1].astype(np.float32) / scale).copy()


def _sporco(name: str) -> CleanImage:
    import sporco
    path = Path(sporco.__file__).parent / "data" / f"{name}.png"
    return CleanImage(f"sporco/{name}", lambda: read_image(path), "sporco test image (public domain / free)")


def _skimage(name: str, licence: str) -> CleanImage:
    import skimage.data
    path = Path(skimage.data.__file__).parent / name
    return CleanImage(f"skimage/{Path(name).stem}", lambda: read_image(path), licence)


def _wallpaper(name: str) -> CleanImage | None:
    folder = WALLPAPER_DIR / name / "contents" / "images"
    if not folder.is_dir():
        return None
    files = sorted(folder.iterdir(), key=lambda p: int(p.stem.split("x")[0]) * int(p.stem.split("x")[1]))
    path = files[-1]
    return CleanImage(f"wallpaper/{name}", lambda: read_image(path), WALLPAPER_PHOTOS[name])


def dead_leaves(size: tuple[int, int], seed: int, r_min: float = 3.0, r_max: float = 300.0,
                chroma: float = 0.5) -> np.ndarray:
    """Procedural dead-leaves image (occluding disks with power-law radii ~ r^-3), (H, W, 3) float32.

    Disks carry a random colour (a grey level plus up to ``chroma`` x a random RGB offset in
    [-0.5, 0.5]) and a gentle linear shading; the result is slightly blurred and
    given fine grain so it has edges at all scales, flat areas and texture, like natural photos.
    """
    h, w = size
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.float32)
    covered = np.zeros((h, w), bool)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    # inverse-CDF sampling of p(r) ~ r^-3 on [r_min, r_max]
    a, b = r_min ** -2, r_max ** -2
    n_covered = 0           # covered.sum(), kept as a count: a mean over the image per leaf dominated the cost
    for _ in range(20000):
        r = (a - rng.random() * (a - b)) ** -0.5
        cy, cx = rng.uniform(-r, h + r), rng.uniform(-r, w + r)
        y0, y1 = max(0, int(cy - r)), min(h, int(cy + r) + 1)
        x0, x1 = max(0, int(cx - r)), min(w, int(cx + r) + 1)
        if y0 >= y1 or x0 >= x1:
            continue
        disk = (yy[y0:y1, x0:x1] - cy) ** 2 + (xx[y0:y1, x0:x1] - cx) ** 2 <= r * r
        disk &= ~covered[y0:y1, x0:x1]
        if not disk.any():
            continue
        grey = rng.random() ** 1.3
        colour = np.clip(grey + rng.uniform(0, chroma) * (rng.random(3) - 0.5), 0, 1)
        gy, gx = rng.normal(0, 0.3 / max(r, 1), 2)
        shade = 1 + gy * (yy[y0:y1, x0:x1] - cy) + gx * (xx[y0:y1, x0:x1] - cx)
        patch = img[y0:y1, x0:x1]
        patch[disk] = np.clip(colour[None, :] * shade[disk][:, None], 0, 1)
        covered[y0:y1, x0:x1] |= disk
        n_covered += int(disk.sum())
        if n_covered / covered.size > 0.995:
            break
    sigma = rng.uniform(0.3, 1.2)
    img = cv2.GaussianBlur(img, (0, 0), sigma)
    img += rng.normal(0, 0.01, img.shape).astype(np.float32)
    return np.clip(img, 0, 1)


def builtin_photos(split: str) -> list[CleanImage]:
    """Photos shipped by pip packages. ``split``: 'train' or 'val' (disjoint)."""
    if split == "val":
        return [_sporco("kodim23"), _sporco("tulips"),
                _skimage("chelsea.png", "CC0"), _skimage("coffee.png", "CC0")]
    if split == "train":
        return [_sporco("monarch"), _sporco("sail"), _sporco("barbara"),
                _skimage("astronaut.png", "public domain (NASA)"), _skimage("rocket.jpg", "public domain"),
                _skimage("motorcycle_left.png", "Middlebury stereo, free for research")]
    raise DarkcError(f"unknown split {split!r}: use 'train' or 'val'")


def wallpaper_photos() -> list[CleanImage]:
    """Debian plasma-workspace-wallpapers photographs that are installed (none if the package is absent)."""
    return [w for w in (_wallpaper(n) for n in sorted(WALLPAPER_PHOTOS)) if w is not None]


def folder_images(folder: str | os.PathLike) -> list[CleanImage]:
    """Every image file under ``folder`` (recursively), sorted by path."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DarkcError(f"image folder {folder} does not exist: pass a directory of png/jpg/tif photos")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTS)
    if not files:
        raise DarkcError(f"no images (png/jpg/tif) found under {folder}: add clean photos or use the built-in set")
    return [CleanImage(f"folder/{p.relative_to(folder)}", (lambda p=p: read_image(p)), "user supplied") for p in files]


def dead_leaves_images(count: int, size: tuple[int, int], split: str) -> list[CleanImage]:
    base = VAL_DEAD_LEAVES_SEED if split == "val" else 0
    chroma = DEAD_LEAVES_CHROMA["val" if split == "val" else "train"]
    return [CleanImage(f"dead-leaves/{base + i}", (lambda s=base + i: dead_leaves(size, s, chroma=chroma)),
                       "procedural") for i in range(count)]


def training_images(folders: list[str] | None = None, dead_leaves_count: int = 16,
                    size: tuple[int, int] = (768, 768), with_wallpapers: bool = True) -> list[CleanImage]:
    """The teacher's training pool: user folders if given, else built-in + wallpaper photos, plus dead leaves."""
    if folders:
        imgs = [im for f in folders for im in folder_images(f)]
    else:
        imgs = builtin_photos("train") + (wallpaper_photos() if with_wallpapers else [])
    return imgs + dead_leaves_images(dead_leaves_count, size, "train")


def validation_images(size: tuple[int, int] = (512, 768), dead_leaves_count: int = 4) -> list[CleanImage]:
    """The project's reference validation images (pip-shipped photos + held-out dead leaves)."""
    return builtin_photos("val") + dead_leaves_images(dead_leaves_count, size, "val")

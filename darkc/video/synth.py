"""Synthetic low-light raw video with ground truth: camera motion and moving objects over a clean photo.

There is no paired low-light raw video data, so clips are made the way :mod:`darkc.data.synth` makes pairs:

1. a clean sRGB photo is the scene; a camera path (pan, zoom, hand-held jitter, as affine maps from frame
   pixels to scene coordinates) and a few textured objects moving in straight lines over it give one clean
   frame per time step, rendered from a 2x supersampled, lightly low-passed scene so that sub-pixel motion
   does not change sharpness from frame to frame;
2. every frame is unprocessed with the *same* camera parameters (colour matrix, white balance, brightness),
   and exposed at the same system gain K and read/row noise levels, each frame with fresh noise (shot, read,
   row, 14-bit quantisation): a short exposure with 1/ratio of the light;
3. the ground truth of a frame is its noise-free long exposure (the same mosaic at full light, quantised)
   rendered by LibRaw as SID renders its targets, except that LibRaw's ``adjust_maximum_thr`` is 0: by default
   LibRaw rescales a frame whose maximum lies between 75 % and 100 % of the white level by that maximum, so
   the brightness of a target would follow its content (an object entering the frame would brighten it).
   Per-frame quality and temporal stability are then both measured against a truth that does not flicker;
4. the true optical flow between consecutive frames follows from the camera maps and object tracks
   (:mod:`darkc.video.flow` conventions) and is saved in both directions.

Clip layout (``darkc synth --video -o DIR``)::

    DIR/clip.json            frame lists, ratio, fps, camera, objects, noise parameters, provenance
    DIR/raw/00000.dng ...    the dark frames (DNG, readable by rawpy/LibRaw)
    DIR/truth/00000.png ...  16-bit sRGB ground truth, same size as the raw frames
    DIR/flow/fwd_00000.flo   true flow frame 0 -> 1 (Middlebury .flo), ... up to fwd_<n-2>
    DIR/flow/bwd_00001.flo   true flow frame 1 -> 0, ... up to bwd_<n-1>
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass

import cv2
import numpy as np
from tqdm import tqdm

from ..data import cfa as cfa_mod
from ..data.dng import write_dng
from ..data.noise import expose, sample_gain, sample_sigmas
from ..data.noise_level import level_of_profile
from ..data.profiles import CameraProfile, get_profile
from ..data.render import render_mosaic
from ..data.sources import VAL_DEAD_LEAVES_SEED, CleanImage, builtin_photos, dead_leaves, folder_images
from ..data.unprocess import sample_params, unprocess
from ..errors import DarkcError, atomic_dir, atomic_path
from .flow import write_flo

CLIP_FILE = "clip.json"
CLIP_KIND = "darkc-synthetic-video"
DEFAULT_FRAMES = 24
DEFAULT_SIZE = 512
DEFAULT_FPS = 30.0
DEFAULT_RATIO = 100.0
MOTIONS = ("mixed", "pan", "zoom", "jitter", "static")
#: scene supersampling factor and the low-pass (in frame px) applied to the scene before sampling
SUPERSAMPLE = 2
SCENE_BLUR_PX = 0.5
#: objects' texture seeds: a dead-leaves range that neither training nor the reference set draws from
OBJECT_SEED_BASE = VAL_DEAD_LEAVES_SEED + 100_000


@dataclass
class Sprite:
    """A moving object: texture and alpha at SUPERSAMPLE x its frame size, top-left at ``start + t * velocity``
    (frame px)."""
    shape: str
    texture: np.ndarray        # (hs, ws, 3) float32 sRGB
    alpha: np.ndarray          # (hs, ws) float32 in [0, 1]
    start: tuple[float, float]  # (x, y)
    velocity: tuple[float, float]  # (vx, vy) px per frame

    def offset(self, t: float) -> np.ndarray:
        return np.array(self.start) + t * np.array(self.velocity)

    def record(self) -> dict:
        size = self.alpha.shape[0] / SUPERSAMPLE
        return {"shape": self.shape, "size_px": size, "start_xy": [round(v, 3) for v in self.start],
                "velocity_px_per_frame": [round(v, 3) for v in self.velocity]}


def camera_path(n: int, motion: str, rng: np.random.Generator, size: tuple[int, int]) -> list[np.ndarray]:
    """Per-frame 2x3 affine maps from frame pixels (x, y) to scene coordinates (frame px units, scene origin at
    frame 0's top-left before jitter).

    pan: constant velocity of 1.5-3 px/frame in a random direction; zoom: 8 % zoom-in over the clip about the
    frame centre; jitter: hand-held shake, independent Gaussian offsets of 0.6 px per frame; mixed: all three;
    static: a tripod.
    """
    if motion not in MOTIONS:
        raise DarkcError(f"unknown camera motion {motion!r}: use one of {', '.join(MOTIONS)}")
    h, w = size
    centre = np.array([(w - 1) / 2, (h - 1) / 2])
    angle = rng.uniform(0, 2 * np.pi)
    pan = np.zeros(2)
    if motion in ("pan", "mixed"):
        pan = rng.uniform(1.5, 3.0) * np.array([np.cos(angle), np.sin(angle)])
    zoom_total = 0.08 if motion in ("zoom", "mixed") else 0.0
    jitter = rng.normal(0, 0.6, (n, 2)) if motion in ("jitter", "mixed") else np.zeros((n, 2))
    maps = []
    for t in range(n):
        z = (1 + zoom_total) ** (-t / max(n - 1, 1))     # scene px per frame px: < 1 zooms in
        shift = centre - z * centre + pan * t + jitter[t]
        maps.append(np.array([[z, 0.0, shift[0]], [0.0, z, shift[1]]]))
    return maps


def _invert(a: np.ndarray) -> np.ndarray:
    return cv2.invertAffineTransform(a)


def _compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a o b for 2x3 affines."""
    return (np.vstack([a, [0, 0, 1]]) @ np.vstack([b, [0, 0, 1]]))[:2]


def make_sprites(count: int, rng: np.random.Generator, size: tuple[int, int], n: int, seed: int) -> list[Sprite]:
    """``count`` textured discs / rounded squares, 14-22 % of the shorter side, moving 2-5 px per frame on straight
    lines that cross the frame centre region mid-clip."""
    h, w = size
    sprites = []
    for k in range(count):
        side = int(rng.uniform(0.14, 0.22) * min(h, w))
        ss = side * SUPERSAMPLE
        tex = dead_leaves((ss, ss), OBJECT_SEED_BASE + seed * 16 + k, r_min=ss / 24, r_max=ss / 2)
        shape = ("disc", "square")[k % 2]
        yy, xx = np.mgrid[0:ss, 0:ss].astype(np.float32) + 0.5
        if shape == "disc":
            d = np.hypot(yy - ss / 2, xx - ss / 2) - ss / 2 * 0.95
        else:
            q = np.maximum(np.abs(yy - ss / 2), np.abs(xx - ss / 2)) - ss / 2 * 0.95
            d = q
        alpha = np.clip(0.5 - d / SUPERSAMPLE, 0, 1).astype(np.float32)     # ~1 frame px anti-aliased edge
        speed = rng.uniform(2.0, 5.0)
        ang = rng.uniform(0, 2 * np.pi)
        vel = speed * np.array([np.cos(ang), np.sin(ang)])
        mid = np.array([rng.uniform(0.3, 0.7) * w, rng.uniform(0.3, 0.7) * h]) - side / 2
        start = mid - vel * (n - 1) / 2
        sprites.append(Sprite(shape, tex, alpha, (float(start[0]), float(start[1])), (float(vel[0]), float(vel[1]))))
    return sprites


def _scene_texture(clean: np.ndarray, maps: list[np.ndarray], size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The clean photo resized to cover every frame's footprint, supersampled and low-passed, and the 2x3 map
    from scene coordinates to its pixels."""
    h, w = size
    corners = np.array([[0, 0, 1], [w - 1, 0, 1], [0, h - 1, 1], [w - 1, h - 1, 1]], float).T
    pts = np.concatenate([a @ corners for a in maps], axis=1)
    lo, hi = pts.min(axis=1) - 4, pts.max(axis=1) + 4
    need_w, need_h = hi - lo
    ih, iw = clean.shape[:2]
    s = max(need_w * SUPERSAMPLE / iw, need_h * SUPERSAMPLE / ih)
    big = cv2.resize(clean, (int(np.ceil(iw * s)), int(np.ceil(ih * s))),
                     interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
    big = cv2.GaussianBlur(np.clip(big, 0, 1), (0, 0), SCENE_BLUR_PX * SUPERSAMPLE)
    # centre the footprint in the resized photo
    off = (np.array([big.shape[1], big.shape[0]]) - np.array([need_w, need_h]) * SUPERSAMPLE) / 2
    to_pixels = np.array([[SUPERSAMPLE, 0, off[0] - lo[0] * SUPERSAMPLE],
                          [0, SUPERSAMPLE, off[1] - lo[1] * SUPERSAMPLE]])
    return big.astype(np.float32), to_pixels


def render_clean(scene: np.ndarray, to_pixels: np.ndarray, cam: np.ndarray, sprites: list[Sprite], t: int,
                 size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Clean frame ``t``: (H, W, 3) float32 sRGB in [0, 1] and the (H, W) int layer map (0 scene, k+1 sprite k)."""
    h, w = size
    frame = cv2.warpAffine(scene, _compose(to_pixels, cam), (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                           borderMode=cv2.BORDER_REFLECT)
    layers = np.zeros((h, w), np.int32)
    for k, sp in enumerate(sprites):
        ox, oy = sp.offset(t)
        m = np.array([[SUPERSAMPLE, 0, -ox * SUPERSAMPLE], [0, SUPERSAMPLE, -oy * SUPERSAMPLE]], float)
        tex = cv2.warpAffine(sp.texture, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                             borderMode=cv2.BORDER_REPLICATE)
        a = cv2.warpAffine(sp.alpha, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        frame = frame * (1 - a[..., None]) + tex * a[..., None]
        layers[a > 0.5] = k + 1
    return np.clip(frame, 0, 1).astype(np.float32), layers


def true_flow(cams: list[np.ndarray], sprites: list[Sprite], layers: np.ndarray, a: int, b: int) -> np.ndarray:
    """``F_a->b`` (H, W, 2) from the camera maps (scene pixels) and object tracks (sprite pixels), given frame
    ``a``'s layer map."""
    h, w = layers.shape
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    m = _compose(_invert(cams[b]), cams[a])                  # frame a px -> frame b px for the scene
    fx = m[0, 0] * gx + m[0, 1] * gy + m[0, 2] - gx
    fy = m[1, 0] * gx + m[1, 1] * gy + m[1, 2] - gy
    for k, sp in enumerate(sprites):
        sel = layers == k + 1
        d = (b - a) * np.array(sp.velocity)
        fx[sel], fy[sel] = d[0], d[1]
    return np.stack([fx, fy], axis=-1).astype(np.float32)


def _frame_size(size: int, cfa: str) -> tuple[int, int]:
    t = cfa_mod.tile(cfa)
    w = size // t * t
    h = round(size * 2 / 3) // t * t
    return h, w


def _background(images: list[str] | None, seed: int) -> CleanImage:
    pool = [im for f in images for im in folder_images(f)] if images else builtin_photos("val")
    return pool[seed % len(pool)]


@dataclass
class Shot:
    """One shot of a clip (between scene cuts): its background, camera path and objects, in shot-local frames."""
    start: int
    source: CleanImage
    cams: list[np.ndarray]
    sprites: list[Sprite]
    scene: np.ndarray
    to_pixels: np.ndarray

    @classmethod
    def make(cls, start: int, n: int, index: int, seed: int, images: list[str] | None, motion: str, objects: int,
             rng: np.random.Generator, size: tuple[int, int]) -> "Shot":
        src = _background(images, seed + index)
        cams = camera_path(n, motion, rng, size)
        sprites = make_sprites(objects, rng, size, n, seed + 7919 * index)
        scene, to_pixels = _scene_texture(src.load(), cams, size)
        return cls(start, src, cams, sprites, scene, to_pixels)


def write_clip(out: str | os.PathLike, *, frames: int = DEFAULT_FRAMES, size: int = DEFAULT_SIZE, seed: int = 0,
               cfa: str = "bayer", profile: str | CameraProfile | None = None, images: list[str] | None = None,
               motion: str = "mixed", objects: int = 2, ratio: float = DEFAULT_RATIO, fps: float = DEFAULT_FPS,
               cuts: tuple[int, ...] = (), progress: bool = True) -> dict:
    """``darkc synth --video``: write one synthetic raw clip with ground truth and true flow (layout above).

    Args:
        out: clip folder; written atomically (a temporary folder renamed at the end).
        frames: number of frames (at least 2).
        size: longer frame side in raw px (3:2 frames, cut to whole CFA tiles).
        seed: picks the background photo (the held-out photos of the reference set, or ``images``), the camera
            path, objects, camera parameters and noise.
        cfa, profile: sensor (see :func:`darkc.data.profiles.get_profile`).
        images: folders of clean photos to take the background from instead of the built-in held-out photos.
        motion: camera motion, one of :data:`MOTIONS`.
        objects: number of moving objects.
        ratio: exposure ratio of the dark frames (light 1/ratio of the ground truth's).
        fps: nominal frame rate stored with the clip (sets the DNG exposure time, 1/fps).
        cuts: scene cuts, each the index of the first frame of a new shot: a new background photo, camera path
            and objects (same camera, exposure and noise), and no flow from the frame before.

    Returns:
        Summary: ``frames``, ``size`` ((H, W)), ``ratio``, ``motion``, ``source``, ``path``.
    """
    if frames < 2:
        raise DarkcError(f"--count {frames} for a video clip: pass at least 2 frames")
    if size < 64:
        raise DarkcError(f"--size {size} is too small for a video clip: use at least 64 px")
    if objects < 0:
        raise DarkcError(f"objects {objects} must be non-negative")
    if not (np.isfinite(ratio) and ratio >= 1):
        raise DarkcError(f"exposure ratio {ratio} for the clip: pass a ratio of at least 1 (SID uses 100-300)")
    cuts = sorted(set(int(c) for c in cuts))
    if any(c <= 0 or c >= frames for c in cuts):
        raise DarkcError(f"scene cuts {cuts} for a {frames}-frame clip: each cut is the first frame of a new shot, "
                         f"between 1 and {frames - 1}")
    prof = profile if isinstance(profile, CameraProfile) else get_profile(profile, cfa)
    hw = _frame_size(size, prof.cfa)
    rng = np.random.default_rng([seed, 7001])
    starts = [0] + cuts
    shots = [Shot.make(start, end - start, shot_index, seed, images, motion, objects, rng, hw)
             for shot_index, (start, end) in enumerate(zip(starts, starts[1:] + [frames]))]
    params = sample_params(rng, prof)
    k = sample_gain(rng, prof)
    sigmas = sample_sigmas(rng, k, prof)
    iso = int(round(100 * k / prof.gain_range[0]))
    span = float(prof.white - prof.black)
    tags = dict(black=prof.black, white=prof.white, xyz_to_cam=prof.xyz_to_cam_matrix,
                as_shot_neutral=params.as_shot_neutral, iso=iso, model=prof.model,
                noise_profile=level_of_profile(prof, k).as_dng())     # what noise-conditioned models read
    names = {"raw": [], "truth": [], "flow_fwd": [], "flow_bwd": []}
    from ..enhance import write_png

    with atomic_dir(out) as tmp:
        for sub in ("raw", "truth", "flow"):
            shutil.rmtree(tmp / sub, ignore_errors=True)
        prev_layers = None
        for t in tqdm(range(frames), desc="darkc synth --video", unit="frame", disable=not progress):
            shot = next(s for s in reversed(shots) if s.start <= t)
            local = t - shot.start
            clean, layers = render_clean(shot.scene, shot.to_pixels, shot.cams[local], shot.sprites, local, hw)
            signal = cfa_mod.mosaic(unprocess(clean, params), prof.cfa) * span
            long_dn = np.clip(np.round(signal) + prof.black, 0, prof.white).astype(np.uint16)
            truth = render_mosaic(long_dn, prof.cfa, adjust_maximum_thr=0.0, exposure_time=ratio / fps, **tags)
            short_dn = expose(signal / ratio, k, prof, np.random.default_rng([seed, 7002, t]), sigmas=sigmas)
            name = f"{t:05d}"
            write_dng(tmp / "raw" / f"{name}.dng", short_dn, prof.cfa, exposure_time=1.0 / fps, **tags)
            write_png(tmp / "truth" / f"{name}.png", np.moveaxis(truth, -1, 0), bits=16)
            names["raw"].append(f"raw/{name}.dng")
            names["truth"].append(f"truth/{name}.png")
            if t and local == 0:                 # a cut: nothing of frame t-1 is in frame t, so there is no flow
                names["flow_fwd"].append(None)
                names["flow_bwd"].append(None)
            elif t:
                write_flo(tmp / "flow" / f"fwd_{t - 1:05d}.flo",
                          true_flow(shot.cams, shot.sprites, prev_layers, local - 1, local))
                write_flo(tmp / "flow" / f"bwd_{name}.flo",
                          true_flow(shot.cams, shot.sprites, layers, local, local - 1))
                names["flow_fwd"].append(f"flow/fwd_{t - 1:05d}.flo")
                names["flow_bwd"].append(f"flow/bwd_{name}.flo")
            prev_layers = layers
        src, cams, sprites = shots[0].source, shots[0].cams, shots[0].sprites
        meta = {
            "kind": CLIP_KIND, "version": 1, "frames": frames, "fps": fps, "ratio": float(ratio),
            "size": list(hw), "cfa": prof.cfa, "profile": prof.name, "seed": seed, "motion": motion,
            "source": {"name": src.name, "licence": src.licence},
            "camera": {"gain_dn_per_e": k, "iso": iso, "read_sigma_dn": sigmas[0], "row_sigma_dn": sigmas[1],
                       "red_gain": params.red_gain, "blue_gain": params.blue_gain, "brightness": params.brightness},
            "camera_path": [np.round(c, 6).tolist() for c in cams],
            "objects": [sp.record() for sp in sprites],
            "cuts": cuts,
            "shots": [{"start": sh.start, "frames": len(sh.cams), "source": sh.source.name,
                       "objects": [sp.record() for sp in sh.sprites]} for sh in shots],
            "truth_definition": "noise-free long exposure (ratio x the dark frame's light), quantised to 14 bit, "
                                "rendered by LibRaw (camera WB, no auto-bright, 16 bit) as SID renders targets, but "
                                "with adjust_maximum_thr=0 so brightness does not follow each frame's own maximum",
            "flow_definition": "F_a->b: content at pixel p of frame a is at p + F(p) in frame b; fwd_t = F_t->t+1, "
                               "bwd_t = F_t->t-1; x then y, raw px; null across a scene cut (no correspondence)",
            **names,
        }
        with atomic_path(tmp / CLIP_FILE) as f:
            f.write_text(json.dumps(meta, indent=1))
    return {"frames": frames, "size": hw, "ratio": float(ratio), "motion": motion, "source": src.name,
            "cuts": cuts, "path": str(out)}

"""Video input (a folder of raw frames, a synthetic clip, or ordinary video) and output (MP4/H.264 and/or PNG).

Input: a directory holding raw frames that rawpy/LibRaw reads (any of :data:`darkc.data.files.RAW_EXTS`, case-insensitive),
taken in natural name order (``f2`` before ``f10``), or a clip written by ``darkc synth --video`` (its
``clip.json`` lists the frames, the ground truth, the true flow, the exposure ratio and the frame rate).
Ordinary sRGB video, a video file ffmpeg reads (:data:`VIDEO_EXTS`) or a folder of images (:data:`IMAGE_EXTS`),
is read as 8-bit sRGB frames (:meth:`Sequence.rgb_frames`) for :mod:`darkc.video.darken` to turn into dark raw.

Output: an ``.mp4`` (H.264, yuv420p, through the ffmpeg binary that imageio-ffmpeg bundles) and/or a folder
of 8-bit PNG frames named by input frame index. Both are written to temporary names and renamed at the end,
so a failed run leaves nothing, never a shortened video.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..data.files import is_raw
from ..errors import DarkcError, atomic_dir, atomic_path
from .flow import read_flo
from .synth import CLIP_FILE, CLIP_KIND

#: ordinary video files (decoded by the ffmpeg that imageio-ffmpeg bundles) and image formats OpenCV reads
VIDEO_EXTS = {".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".ogv", ".wmv", ".flv", ".ts",
              ".y4m", ".gif"}
IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"}
FRAME_NAME = re.compile(r"^\d{5}\.png$")
#: H.264 constant rate factor of the MP4 (18: visually lossless for most content)
DEFAULT_CRF = 18


@dataclass
class FrameRef:
    """One input frame; ``fwd`` = true F_{t-1->t} and ``bwd`` = F_{t->t-1} to the previous frame (clips only)."""
    index: int
    path: Path
    truth: Path | None = None
    fwd: Path | None = None
    bwd: Path | None = None
    cut: bool = False          # the first frame of a new shot (a scene cut before it)

    def read_truth(self) -> np.ndarray:
        """(H, W, 3) float32 sRGB in [0, 1] from the 16-bit truth PNG."""
        img = cv2.imread(str(self.truth), cv2.IMREAD_UNCHANGED)
        if img is None or img.ndim != 3:
            raise DarkcError(f"cannot read ground truth {self.truth}: missing or not an RGB PNG; regenerate the clip "
                             f"with darkc synth --video")
        return img[..., ::-1].astype(np.float32) / (65535.0 if img.dtype == np.uint16 else 255.0)

    def read_flows(self) -> tuple[np.ndarray, np.ndarray] | None:
        if self.fwd is None or self.bwd is None:
            return None
        return read_flo(self.fwd), read_flo(self.bwd)


@dataclass
class Sequence:
    """The frames of a video in order, with what a synthetic clip adds (truth, flow, ratio, fps)."""
    root: Path
    frames: list[FrameRef]
    ratio: float | None = None
    fps: float | None = None
    meta: dict = field(default_factory=dict)
    kind: str = "raw"          # "raw" frames, or "rgb": an sRGB video file or image folder

    @property
    def has_truth(self) -> bool:
        return all(f.truth is not None for f in self.frames)

    def rgb_frames(self):
        """Yield (FrameRef, (H, W, 3) float32 sRGB in [0, 1]) in order, for an "rgb" sequence.

        Raises:
            DarkcError: a frame cannot be decoded, or the video has fewer frames than it announced.
        """
        if self.root.is_dir():
            for ref in self.frames:
                img = cv2.imread(str(ref.path), cv2.IMREAD_UNCHANGED)
                if img is None:
                    raise DarkcError(f"cannot read image {ref.path}: not an image OpenCV decodes; remove it or "
                                     f"convert it to PNG")
                yield ref, _to_rgb(img, ref.path)
            return
        import imageio_ffmpeg

        w, h = self.meta["width"], self.meta["height"]
        gen = imageio_ffmpeg.read_frames(str(self.root), pix_fmt="rgb24")
        try:
            next(gen)
            for ref in self.frames:
                try:
                    buf = next(gen)
                except StopIteration:
                    raise DarkcError(f"{self.root} ended after {ref.index} of {len(self.frames)} frames: the file "
                                     f"is truncated; re-encode it with ffmpeg") from None
                yield ref, np.frombuffer(buf, np.uint8).reshape(h, w, 3).astype(np.float32) / 255.0
        except RuntimeError as exc:                       # imageio-ffmpeg reports decoder failures so
            raise DarkcError(f"cannot decode {self.root}: {str(exc).splitlines()[0]}; re-encode it with "
                             f"ffmpeg") from exc
        finally:
            gen.close()


def _to_rgb(img: np.ndarray, path: Path) -> np.ndarray:
    """An OpenCV image (grey, BGR or BGRA; 8 or 16 bit) -> (H, W, 3) float32 sRGB in [0, 1]."""
    scale = 65535.0 if img.dtype == np.uint16 else 255.0 if img.dtype == np.uint8 else None
    if scale is None:
        raise DarkcError(f"image {path} is {img.dtype}: pass 8- or 16-bit images")
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    return np.ascontiguousarray(img[..., ::-1]).astype(np.float32) / scale


def _open_video_file(path: Path) -> Sequence:
    import imageio_ffmpeg

    try:
        gen = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
        info = next(gen)
        gen.close()
        count, _ = imageio_ffmpeg.count_frames_and_secs(str(path))
    except (RuntimeError, OSError, StopIteration) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DarkcError(f"cannot read video {path}: {first}; pass a file ffmpeg can decode, a folder of images, or "
                         f"a folder of raw frames") from exc
    if count < 1:
        raise DarkcError(f"video {path} has no frames")
    w, h = (int(v) for v in info["size"])
    meta = {"width": w, "height": h, "codec": info.get("codec"), "source_fps": info.get("fps")}
    return Sequence(path, [FrameRef(i, path) for i in range(count)], fps=float(info.get("fps") or 0) or None,
                    meta=meta, kind="rgb")


def _natural_key(path: Path) -> list:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def _open_clip(root: Path) -> Sequence:
    meta_file = root / CLIP_FILE
    try:
        meta = json.loads(meta_file.read_text())
    except (OSError, ValueError) as exc:
        raise DarkcError(f"cannot read {meta_file}: {exc}; regenerate the clip with darkc synth --video") from exc
    if meta.get("kind") != CLIP_KIND:
        raise DarkcError(f"{meta_file} is not a darkc synthetic clip (kind {meta.get('kind')!r}); "
                         f"remove it to read the folder as plain raw frames")
    raws, truths = meta.get("raw") or [], meta.get("truth") or []
    fwd, bwd = meta.get("flow_fwd") or [], meta.get("flow_bwd") or []
    n = len(raws)
    if n == 0 or len(truths) != n or len(fwd) != n - 1 or len(bwd) != n - 1:
        raise DarkcError(f"{meta_file} lists {n} raw frames, {len(truths)} truth frames and {len(fwd)}/{len(bwd)} "
                         f"flows (expected n, n, n-1, n-1); regenerate the clip")
    cuts = set(meta.get("cuts") or [])
    join = lambda name: root / name if name else None  # noqa: E731  (no flow across a scene cut)
    frames = [FrameRef(i, root / raws[i], root / truths[i], join(fwd[i - 1]) if i else None,
                       join(bwd[i - 1]) if i else None, cut=i in cuts) for i in range(n)]
    for f in frames:
        for p in (f.truth, f.fwd, f.bwd):
            if p is not None and not p.is_file():
                raise DarkcError(f"{p} listed in {meta_file} does not exist; regenerate the clip with "
                                 f"darkc synth --video")
    return Sequence(root, frames, ratio=float(meta["ratio"]), fps=float(meta.get("fps", 30.0)), meta=meta)


def open_sequence(path: str | os.PathLike) -> Sequence:
    """The frames of a raw folder or synthetic clip, in order.

    Raises:
        DarkcError: the path is missing or not a folder, or holds no raw frames.
    """
    root = Path(path)
    if not root.exists():
        raise DarkcError(f"video input {root} does not exist: pass a folder of raw frames or a darkc synth --video "
                         f"clip")
    if not root.is_dir():
        if root.suffix.lower() in VIDEO_EXTS:
            return _open_video_file(root)
        raise DarkcError(f"video input {root} is a file but not a video ({', '.join(sorted(VIDEO_EXTS))}): pass a "
                         f"video file, a folder of images, or the folder that holds the raw frames")
    if (root / CLIP_FILE).is_file():
        return _open_clip(root)
    files = sorted((p for p in root.iterdir() if p.is_file() and is_raw(p)), key=_natural_key)
    images = sorted((p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS), key=_natural_key)
    if not files and images:
        return Sequence(root, [FrameRef(i, p) for i, p in enumerate(images)], kind="rgb")
    if not files:
        others = sum(1 for p in root.iterdir() if not p.name.startswith("."))
        what = f"{others} other entries" if others else "it is empty"
        raise DarkcError(f"no raw frames in {root} ({what}): put the frames there as DNG/ARW/RAF/NEF/CR2/... files "
                         f"(or PNG/JPEG images, or pass a video file)")
    return Sequence(root, [FrameRef(i, p) for i, p in enumerate(files)])


def rgb8(frame: np.ndarray) -> np.ndarray:
    """The 8-bit frame the writer encodes: float sRGB in [0, 1] rounded to 0-255; uint8 frames as they are."""
    if frame.dtype == np.uint8:
        return frame
    return np.rint(np.clip(frame, 0.0, 1.0) * 255.0).astype(np.uint8)


class VideoWriter:
    """Writes (H, W, 3) sRGB frames (float in [0, 1] or uint8) to an MP4 and/or a PNG folder; commits only on a
    clean exit.

    Use as a context manager; leaving it with an exception removes everything written so far.
    """

    def __init__(self, mp4: str | os.PathLike | None, png_dir: str | os.PathLike | None, fps: float,
                 crf: int = DEFAULT_CRF):
        if mp4 is None and png_dir is None:
            raise DarkcError("no video output: pass -o OUT.mp4 and/or a PNG folder")
        if mp4 is not None and Path(mp4).suffix.lower() != ".mp4":
            raise DarkcError(f"video output {mp4} must end in .mp4 (or pass a folder for PNG frames)")
        if not (np.isfinite(fps) and fps > 0):
            raise DarkcError(f"--fps {fps} is invalid: pass a positive frame rate")
        self.mp4 = Path(mp4) if mp4 is not None else None
        self.png_dir = Path(png_dir) if png_dir is not None else None
        self.fps, self.crf = float(fps), int(crf)
        self.count = 0
        self.size: tuple[int, int] | None = None
        self._stack = contextlib.ExitStack()
        self._gen = None
        self._png_tmp: Path | None = None

    def __enter__(self) -> "VideoWriter":
        try:
            if self.mp4 is not None:
                self._mp4_tmp = self._stack.enter_context(atomic_path(self.mp4, suffix=".mp4"))
            if self.png_dir is not None:
                self._png_tmp = self._stack.enter_context(atomic_dir(self.png_dir))
                for old in self._png_tmp.iterdir():          # frames of an earlier run in the same folder
                    if FRAME_NAME.match(old.name):
                        old.unlink()
        except BaseException:
            self._stack.close()
            raise
        return self

    def write(self, frame: np.ndarray, index: int | None = None) -> None:
        """Append one (H, W, 3) sRGB frame (float in [0, 1] or uint8); ``index`` names its PNG (default: the
        count)."""
        h, w = frame.shape[:2]
        if self.size is None:
            self.size = (h, w)
            if self.mp4 is not None:
                self._start_mp4(w, h)
        elif (h, w) != self.size:
            raise DarkcError(f"frame {index if index is not None else self.count} is {w}x{h} but the video "
                             f"{self.mp4 or self.png_dir} is {self.size[1]}x{self.size[0]}: every frame must have the "
                             f"same size")
        rgb = rgb8(frame)
        if self._gen is not None:
            self._gen.send(np.ascontiguousarray(rgb).tobytes())
        if self._png_tmp is not None:
            name = self._png_tmp / f"{self.count if index is None else index:05d}.png"
            if not cv2.imwrite(str(name), rgb[..., ::-1]):
                raise DarkcError(f"cannot write {self.png_dir / name.name}: OpenCV failed to encode the PNG; "
                                 f"check the path and free space")
        self.count += 1

    def _start_mp4(self, w: int, h: int) -> None:
        import imageio_ffmpeg

        if w % 2 or h % 2:
            raise DarkcError(f"cannot write {self.mp4}: frames are {w}x{h} and H.264 (yuv420p) needs an even width "
                             f"and height; write PNG frames instead (pass a folder to -o)")
        self._gen = imageio_ffmpeg.write_frames(str(self._mp4_tmp), (w, h), fps=self.fps, codec="libx264",
                                                pix_fmt_in="rgb24", pix_fmt_out="yuv420p", quality=None,
                                                macro_block_size=1, ffmpeg_log_level="error",
                                                output_params=["-crf", str(self.crf), "-preset", "medium"])
        self._gen.send(None)

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            if self._gen is not None:
                if exc_type is None:
                    self._gen.close()
                else:
                    with contextlib.suppress(Exception):
                        self._gen.close()
            if exc_type is None and self.count == 0:
                raise DarkcError("no frame was written: every input frame was skipped")
        except BaseException as err:
            self._stack.__exit__(type(err), err, err.__traceback__)
            raise
        self._stack.__exit__(exc_type, exc, tb)
        return False


def probe_video(path: str | os.PathLike) -> dict:
    """Frame count, size and codec of a video file, read back with the bundled ffmpeg (for checks and tests)."""
    import imageio_ffmpeg

    path = Path(path)
    if not path.is_file():
        raise DarkcError(f"video {path} does not exist")
    gen = imageio_ffmpeg.read_frames(str(path))
    info = next(gen)
    count = sum(1 for _ in gen)
    return {"frames": count, "width": int(info["size"][0]), "height": int(info["size"][1]),
            "fps": float(info["fps"]), "codec": info.get("codec")}

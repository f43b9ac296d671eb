"""Hazards of darkc enhance's output as a raw converter's: a portrait photo written sideways, a format that
does not match the extension, camera metadata lost, a file left behind by a refused output."""
from __future__ import annotations

import json
from fractions import Fraction

import cv2
import numpy as np
import pytest
import rawpy
import tifffile
from click.testing import CliRunner
from PIL import Image

from darkc import __version__
from darkc.cli import cli, main
from darkc.data import exif as exif_mod
from darkc.data.dng import write_dng
from darkc.data.orientation import apply_flip
from darkc.enhance import enhance_file
from darkc.video import enhance_video
from helpers import raises_naming, tiny_checkpoint

SHAPE = (96, 128)                                   # sensor rows, columns (landscape)
TAGS = dict(black=512, white=16383, xyz_to_cam=np.eye(3), as_shot_neutral=(0.5, 1, 0.6), exposure_time=0.04,
            iso=3200, make="Sony", model="ILCE-7S", datetime="2026:01:02 03:04:05")


def scene_dng(path, orientation=1, bright=False):
    """A raw whose content says which way is up: a bright block near the top-left of the sensor, a dimmer
    bar along the right edge, a ramp down the rows. ``bright``: exposed for ratio 1, else for ratio 100."""
    h, w = SHAPE
    scene = np.full(SHAPE, 0.05)
    scene += 0.25 * np.linspace(0, 1, h)[:, None]
    scene[8:40, 8:56] = 0.9
    scene[:, w - 16:] = 0.5
    level = 1.0 if bright else 0.01
    rng = np.random.default_rng(orientation)
    mosaic = 512 + rng.poisson(scene * level * (16383 - 512))
    write_dng(path, np.clip(mosaic, 0, 16383).astype(np.uint16), "bayer", orientation=orientation, **TAGS)
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "m", {"arch": "sid-unet", "cfa": "bayer", "widths": [4] * 5})


def libraw_render(path):
    """LibRaw's own render of the file, turned to its orientation as every LibRaw-based converter shows it."""
    with rawpy.imread(str(path)) as raw:
        return raw.postprocess(use_camera_wb=True, no_auto_bright=True, output_bps=16).astype(np.float32) / 65535


def luminance_thumb(rgb_hwc):
    lum = rgb_hwc.astype(np.float32) @ np.array([0.2126, 0.7152, 0.0722], np.float32)
    return cv2.resize(lum, (lum.shape[1] // 8, lum.shape[0] // 8), interpolation=cv2.INTER_AREA).ravel()


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_turned_raw_comes_out_as_libraw_shows_it(tmp_path, orientation):
    """The shipped student on a raw with EXIF Orientation 3/6/8: same shape as LibRaw's render and its
    content lines up with it (luminance correlation of 8x-downscaled images) better than any other turn."""
    raw = scene_dng(tmp_path / "IMG.DNG", orientation, bright=True)
    out = tmp_path / "out.png"
    report = enhance_file(raw, out, model="student", ratio=1.0, progress=False)
    ours = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)[..., ::-1] / 255.0
    ref = libraw_render(raw)
    assert ours.shape == ref.shape == ((*SHAPE, 3) if orientation == 3 else (*SHAPE[::-1], 3))
    assert (report["height"], report["width"]) == ours.shape[:2] and report["flip"] == {3: 3, 6: 6, 8: 5}[orientation]
    # undo the turn (rotations by hand, not apply_flip) to get the sensor-grid output, then score every turn
    # of it against LibRaw's render: the one darkc chose must be the only good match
    on_sensor = {3: np.rot90(ours, 2), 6: np.rot90(ours, 1), 8: np.rot90(ours, -1)}[orientation]
    ref_thumb = luminance_thumb(ref)
    scores = {}
    for flip in (0, 3, 5, 6):
        turned = apply_flip(on_sensor, flip)
        if turned.shape == ref.shape:
            scores[flip] = np.corrcoef(luminance_thumb(turned), ref_thumb)[0, 1]
    assert scores[report["flip"]] > 0.9
    assert all(scores[report["flip"]] > s + 0.2 for f, s in scores.items() if f != report["flip"]), scores


def test_upright_raw_is_not_turned(tmp_path, tiny):
    raw = scene_dng(tmp_path / "IMG.DNG", 1)
    report = enhance_file(raw, tmp_path / "a.png", model=tiny, ratio=100, progress=False)
    assert (report["height"], report["width"], report["flip"]) == (*SHAPE, 0)


def read_back(path):
    """(pixels (H, W, 3), IFD0 tags, EXIF-IFD tags) of a written image, read by libraries other than the writer's."""
    if path.suffix == ".tif":
        with tifffile.TiffFile(path) as tif:
            page = tif.pages.first
            tags = {t.code: t.value for t in page.tags}
            return page.asarray(), tags, tags
    img = Image.open(path)
    exif = img.getexif()
    pixels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)[..., ::-1]
    return pixels, dict(exif), dict(exif.get_ifd(0x8769))


@pytest.mark.parametrize("name, bits, dtype", [("a.png", None, np.uint8), ("a.png", 16, np.uint16),
                                               ("a.tif", None, np.uint16), ("a.jpg", None, np.uint8)])
def test_each_format_reads_back_with_the_cameras_exif(tmp_path, tiny, name, bits, dtype):
    raw = scene_dng(tmp_path / "IMG.DNG", 6)
    out = tmp_path / "out" / name
    report = enhance_file(raw, out, model=tiny, ratio=100, bits=bits, progress=False)
    pixels, ifd0, sub = read_back(out)
    assert pixels.dtype == dtype and pixels.shape == (SHAPE[1], SHAPE[0], 3)
    assert report["bits"] == np.iinfo(dtype).bits and report["format"] == {"png": "png", "tif": "tiff",
                                                                            "jpg": "jpeg"}[name[2:]]
    assert ifd0[271] == "Sony" and ifd0[272] == "ILCE-7S"
    assert ifd0[305] == f"darkc {__version__}" and ifd0[274] == 1          # pixels are turned: normal
    assert sub[36867] == "2026:01:02 03:04:05" and int(np.ravel(sub[34855])[0]) == 3200
    exposure = sub[33434]
    assert (Fraction(*exposure) if isinstance(exposure, tuple) else Fraction(exposure).limit_denominator(1000)) \
        == Fraction(1, 25)
    assert {"Make", "Model", "ExposureTime", "ISOSpeedRatings", "DateTimeOriginal"} <= set(report["exif"])
    assert sorted(p.name for p in out.parent.iterdir()) == [name]


def test_png_16_bit_matches_8_bit(tmp_path, tiny):
    raw = scene_dng(tmp_path / "IMG.DNG", 8)
    enhance_file(raw, tmp_path / "a8.png", model=tiny, ratio=100, progress=False)
    enhance_file(raw, tmp_path / "a16.png", model=tiny, ratio=100, bits=16, progress=False)
    a8 = cv2.imread(str(tmp_path / "a8.png"), cv2.IMREAD_UNCHANGED).astype(float)
    a16 = cv2.imread(str(tmp_path / "a16.png"), cv2.IMREAD_UNCHANGED) / 257.0
    assert np.abs(a8 - a16).max() <= 0.51 and a8.std() > 1


def test_jpeg_quality_is_applied(tmp_path, tiny):
    raw = scene_dng(tmp_path / "IMG.DNG", 1)
    sizes = {}
    for q in (30, 95):
        enhance_file(raw, tmp_path / f"q{q}.jpg", model=tiny, ratio=100, quality=q, progress=False)
        sizes[q] = (tmp_path / f"q{q}.jpg").stat().st_size
    assert sizes[30] < 0.8 * sizes[95]


@pytest.mark.parametrize("name, opts, fragments", [
    ("a.webp", {}, ("a.webp", ".png", ".tif", ".jpg")),
    ("a.bmp", {}, ("a.bmp", ".png")),
    ("a", {}, (".png", ".jpg")),
    ("a.jpg", {"bits": 16}, ("--bits 16", "JPEG")),
    ("a.png", {"quality": 90}, ("--quality", ".jpg")),
    ("a.jpg", {"quality": 0}, ("--quality 0", "1 to 100")),
])
def test_refused_output_writes_nothing(tmp_path, tiny, name, opts, fragments):
    raw = scene_dng(tmp_path / "IMG.DNG", 6)
    out = tmp_path / "out"
    out.mkdir()
    with raises_naming(*fragments):
        enhance_file(raw, out / name, model=tiny, ratio=100, progress=False, **opts)
    assert list(out.iterdir()) == []


def test_raw_with_unreadable_exif_still_enhances_with_a_warning(tmp_path, tiny, monkeypatch, capsys):
    def broken(path):
        raise ValueError("invalid TIFF header")

    monkeypatch.setattr(exif_mod, "_tiff_tags", broken)
    raw = scene_dng(tmp_path / "IMG.DNG", 6)
    report = enhance_file(raw, tmp_path / "a.jpg", model=tiny, ratio=100, progress=False)
    err = capsys.readouterr().err
    assert "warning: cannot read the EXIF of" in err and "IMG.DNG" in err and "invalid TIFF header" in err
    _, ifd0, sub = read_back(tmp_path / "a.jpg")
    assert 271 not in ifd0 and ifd0[305] == f"darkc {__version__}"
    assert (report["height"], report["width"]) == SHAPE[::-1]
    assert abs(sub[33434] - 0.04) < 1e-6                      # LibRaw's own parse still gives the exposure


def test_exif_read_from_a_tiff_raw(tmp_path):
    tags, problem = exif_mod.read_exif(scene_dng(tmp_path / "IMG.DNG", 1))
    assert problem is None
    assert tags[271] == "Sony" and tags[272] == "ILCE-7S" and tags[34855] == 3200
    assert tags[33434] == Fraction(1, 25) and tags[36867] == "2026:01:02 03:04:05"


def test_cli_enhance_writes_tiff_16_bit_and_refuses_gif_in_one_line(tmp_path, tiny, capsys):
    raw = scene_dng(tmp_path / "IMG.DNG", 6)
    res = CliRunner().invoke(cli, ["enhance", str(raw), "-o", str(tmp_path / "a.tiff"), "--model", str(tiny),
                                   "--ratio", "100"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["bits"] == 16
    assert tifffile.imread(tmp_path / "a.tiff").shape == (SHAPE[1], SHAPE[0], 3)
    assert main(["enhance", str(raw), "-o", str(tmp_path / "a.gif"), "--model", str(tiny), "--ratio", "100"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot write") and "a.gif" in err and ".tif" in err and "\n" not in err
    assert not (tmp_path / "a.gif").exists()


def test_video_png_frames_are_turned(tmp_path, tiny):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(2):
        scene_dng(folder / f"f{i:02d}.dng", 6)
    report = enhance_video(folder, tmp_path / "png", model=tiny, ratio=100, temporal="none", progress=False)
    frame = cv2.imread(str(tmp_path / "png" / "00000.png"))
    assert frame.shape == (SHAPE[1], SHAPE[0], 3) and (report["height"], report["width"]) == SHAPE[::-1]


def test_apply_flip_matches_libraw_for_every_orientation(tmp_path):
    """LibRaw's turn of the sensor-grid render, for EXIF orientations 1-8 (mirrors included)."""
    for orientation in range(1, 9):
        path = scene_dng(tmp_path / f"o{orientation}.dng", orientation, bright=True)
        with rawpy.imread(str(path)) as raw:
            flip = raw.sizes.flip
            grid = raw.postprocess(use_camera_wb=True, no_auto_bright=True, output_bps=16, user_flip=0)
            shown = raw.postprocess(use_camera_wb=True, no_auto_bright=True, output_bps=16)
        np.testing.assert_array_equal(apply_flip(grid, flip), shown)
        np.testing.assert_array_equal(apply_flip(grid.transpose(2, 0, 1), flip, channel_axis=0),
                                      shown.transpose(2, 0, 1))

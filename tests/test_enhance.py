"""Tests for darkc/enhance.py: raw file -> PNG, ratio lookup, and user-facing errors."""
from __future__ import annotations


import cv2
import numpy as np
import pytest
import torch

from darkc import enhance as enhance_mod
from darkc.data.dng import write_dng
from darkc.data.raw import amplify, read_raw
from darkc.enhance import enhance_file, sid_ratio
from darkc.inference import enhance_packed, load_runner
from darkc.models import build_model, save_checkpoint
from helpers import raises_naming

TAGS = dict(black=512, white=16383, xyz_to_cam=np.eye(3), as_shot_neutral=(0.5, 1, 0.6), exposure_time=0.1)


def dark_dng(path, shape, cfa="bayer", seed=0):
    rng = np.random.default_rng(seed)
    write_dng(path, (512 + rng.poisson(40, shape)).astype(np.uint16), cfa, **TAGS)
    return path


def artifact(path, cfa):
    torch.manual_seed(0)
    spec = {"arch": "sid-unet", "cfa": cfa, "widths": [4] * 5}
    return save_checkpoint(build_model(spec), spec, path)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {cfa: artifact(root / cfa, cfa) for cfa in ("bayer", "xtrans")}


def pngs(folder):
    return sorted(p.name for p in folder.rglob("*.png"))


@pytest.mark.parametrize("bits, dtype, full", [(8, np.uint8, 255), (16, np.uint16, 65535)])
def test_png_matches_enhance_packed(tmp_path, models, bits, dtype, full):
    raw = dark_dng(tmp_path / "IMG_0001.DNG", (100, 150))
    out = tmp_path / "out" / "a.png"
    report = enhance_file(raw, out, model=models["bayer"], ratio=100, bits=bits, progress=False, srgb_anchor=False)
    img = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert img.shape == (100, 150, 3) and img.dtype == dtype
    assert (report["width"], report["height"], report["bits"], report["ratio"]) == (150, 100, bits, 100.0)
    assert report["output"] == str(out) and report["cfa"] == "bayer" and report["offset"] == (0, 0)
    # the process's peak resident memory in MiB (ru_maxrss is KiB on Linux), never more than it has now reached
    import resource
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert report["seconds"] > 0 and 0.9 * peak_mib <= report["peak_rss_mib"] <= peak_mib + 0.1
    rgb = enhance_packed(load_runner(models["bayer"]), amplify(read_raw(raw).packed(), 100), progress=False)
    expected = np.rint(rgb.transpose(1, 2, 0)[..., ::-1] * full)          # RGB -> BGR as stored
    assert rgb.std() > 0.01
    np.testing.assert_array_equal(img, expected.astype(dtype))
    assert pngs(tmp_path) == ["a.png"]


def test_srgb_models_get_the_files_colour_by_default(tmp_path, models):
    """darkc enhance anchors an sRGB model's colour to the file's own render unless told not to (--no-srgb-anchor);
    on an X-Trans frame smaller than LibRaw renders it says so and keeps the model's colour."""
    raw = dark_dng(tmp_path / "IMG_0001.DNG", (100, 150))
    on = enhance_file(raw, tmp_path / "on.png", model=models["bayer"], ratio=100, progress=False)
    off = enhance_file(raw, tmp_path / "off.png", model=models["bayer"], ratio=100, progress=False, srgb_anchor=False)
    assert on["srgb_anchor"] is True and off["srgb_anchor"] is False
    assert not np.array_equal(cv2.imread(str(tmp_path / "on.png")), cv2.imread(str(tmp_path / "off.png")))


def test_xtrans_png_size(tmp_path, models, capsys):
    raw = dark_dng(tmp_path / "DSCF0001.DNG", (96, 144), cfa="xtrans")
    report = enhance_file(raw, tmp_path / "x.png", model=models["xtrans"], ratio=250, progress=False)
    assert cv2.imread(str(tmp_path / "x.png")).shape == (96, 144, 3)
    assert (report["width"], report["height"], report["cfa"]) == (144, 96, "xtrans")
    assert "516 px" in capsys.readouterr().err                    # too small for LibRaw's X-Trans render: no anchor


def test_ratio_from_sid_names(tmp_path, models):
    short = dark_dng(tmp_path / "Sony" / "short" / "10003_00_0.04s.dng", (64, 64))
    assert sid_ratio(short) is None                                          # no long reference yet
    (tmp_path / "Sony" / "long").mkdir()
    (tmp_path / "Sony" / "long" / "10003_00_10s.dng.xmp").write_text("sidecar")
    assert sid_ratio(short) is None
    dark_dng(tmp_path / "Sony" / "long" / "10003_00_10s.dng", (64, 64))
    assert sid_ratio(short) == pytest.approx(250)
    report = enhance_file(short, tmp_path / "s.png", model=models["bayer"], progress=False)
    assert report["ratio"] == pytest.approx(250)


def test_failed_run_keeps_an_existing_output(tmp_path, models):
    out = tmp_path / "a.png"
    out.write_bytes(b"old")
    with raises_naming("missing.dng"):
        enhance_file(tmp_path / "missing.dng", out, model=models["bayer"], ratio=100, progress=False)
    assert out.read_bytes() == b"old" and pngs(tmp_path) == ["a.png"]


def truncated(tmp_path):
    raw = dark_dng(tmp_path / "cut.dng", (100, 150))
    data = raw.read_bytes()
    raw.write_bytes(data[: len(data) // 2])
    return raw


def nan_frame(monkeypatch, tmp_path):
    raw = dark_dng(tmp_path / "nan.dng", (64, 64))
    frame = read_raw(raw)
    frame.mosaic[5, 7] = np.nan
    monkeypatch.setattr(enhance_mod, "read_raw", lambda path, signed=False: frame)
    return raw


@pytest.mark.parametrize("case, fragments", [
    ("missing", ("missing.dng", "does not exist")),
    ("truncated", ("cut.dng", "truncated")),
    ("xtrans-to-bayer", ("expects 4-channel Bayer input", "DSCF.dng is X-Trans")),
    ("nan", ("nan.dng", "NaN/Inf")),
    ("no-ratio", ("plain.dng", "pass --ratio")),
    ("bad-ratio", ("plain.dng", "--ratio nan")),
    ("bad-bits", ("out.png", "--bits 12")),
    ("not-an-image", ("out.gif", "darkc writes .png")),
])
def test_bad_inputs_name_the_file_and_leave_no_png(tmp_path, models, monkeypatch, case, fragments):
    kwargs = {"ratio": 100}
    out = tmp_path / "out.png"
    if case == "missing":
        raw = tmp_path / "missing.dng"
    elif case == "truncated":
        raw = truncated(tmp_path)
    elif case == "xtrans-to-bayer":
        raw = dark_dng(tmp_path / "DSCF.dng", (96, 144), cfa="xtrans")
    elif case == "nan":
        raw = nan_frame(monkeypatch, tmp_path)
    else:
        raw = dark_dng(tmp_path / "plain.dng", (64, 64))
        kwargs = {"no-ratio": {"ratio": None}, "bad-ratio": {"ratio": float("nan")},
                  "bad-bits": {"ratio": 100, "bits": 12}, "not-an-image": {"ratio": 100}}[case]
        if case == "not-an-image":
            out = tmp_path / "out.gif"
    with raises_naming(*fragments):
        enhance_file(raw, out, model=models["bayer"], progress=False, **kwargs)
    assert not out.exists() and pngs(tmp_path) == [] and not list(tmp_path.glob(".out*"))


def test_unwritable_output_is_a_darkc_error(tmp_path, models):
    raw = dark_dng(tmp_path / "a.dng", (64, 64))
    (tmp_path / "file").write_bytes(b"")
    with raises_naming("cannot write", "file/a.png"):
        enhance_file(raw, tmp_path / "file" / "a.png", model=models["bayer"], ratio=100, progress=False)


def test_shipped_teacher_name_means_its_xtrans_sibling_on_xtrans_raw(tmp_path, monkeypatch):
    from darkc.models import pretrained as pretrained_mod

    shipped = tmp_path / "shipped"
    artifact(shipped / "teacher", "bayer")
    monkeypatch.setattr(pretrained_mod, "PRETRAINED_DIR", shipped)
    fuji = dark_dng(tmp_path / "DSCF0001.DNG", (96, 144), cfa="xtrans")
    sony = dark_dng(tmp_path / "DSC0001.DNG", (64, 64))
    with raises_naming("expects 4-channel Bayer input", "DSCF0001.DNG is X-Trans"):    # no X-Trans teacher shipped
        enhance_file(fuji, tmp_path / "a.png", model="teacher", ratio=100, progress=False)
    artifact(shipped / "teacher-xtrans", "xtrans")
    assert enhance_file(fuji, tmp_path / "b.png", model="teacher", ratio=100, progress=False)["cfa"] == "xtrans"
    assert enhance_file(sony, tmp_path / "c.png", model="teacher", ratio=100, progress=False)["cfa"] == "bayer"
    with raises_naming("expects 9-channel X-Trans input", "DSC0001.DNG is Bayer"):   # an explicit choice is kept
        enhance_file(sony, tmp_path / "d.png", model="teacher-xtrans", ratio=100, progress=False)
    monkeypatch.chdir(tmp_path)                                           # a folder named teacher wins over the name
    artifact(tmp_path / "teacher", "bayer")
    with raises_naming("expects 4-channel Bayer input"):
        enhance_file(fuji, tmp_path / "e.png", model="teacher", ratio=100, progress=False)


def test_default_model_is_the_raw_output_teacher_on_bayer_and_the_xtrans_teacher_on_xtrans(tmp_path, monkeypatch):
    """With no --model, a Bayer raw goes through teacher-raw (each file's own colour matrix: the sRGB teacher
    casts real raws) and an X-Trans raw through teacher-xtrans (no raw-output X-Trans model ships); an install
    without teacher-raw falls back to teacher."""
    from darkc.models import normalize_spec
    from darkc.models import pretrained as pretrained_mod

    shipped = tmp_path / "shipped"
    artifact(shipped / "teacher", "bayer")
    artifact(shipped / "teacher-xtrans", "xtrans")
    monkeypatch.setattr(pretrained_mod, "PRETRAINED_DIR", shipped)
    fuji = dark_dng(tmp_path / "DSCF0001.DNG", (96, 144), cfa="xtrans")
    sony = dark_dng(tmp_path / "DSC0001.DNG", (192, 192))     # big enough to estimate its noise
    assert enhance_file(sony, tmp_path / "a.png", ratio=100, progress=False)["model"] == "teacher"
    raw_spec = normalize_spec({"arch": "sid-unet", "output": "raw", "input": {"noise": "std-map"}, "widths": [4] * 5})
    torch.manual_seed(0)
    save_checkpoint(build_model(raw_spec), raw_spec, shipped / "teacher-raw")
    assert enhance_file(sony, tmp_path / "b.png", ratio=100, progress=False)["model"] == "teacher-raw"
    report = enhance_file(fuji, tmp_path / "c.png", ratio=100, progress=False)
    assert (report["model"], report["cfa"]) == ("teacher-xtrans", "xtrans")

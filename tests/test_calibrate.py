"""darkc calibrate: a known profile comes back from frames synthesised with it; the profile file
round-trips exactly and works as --profile FILE; bad or insufficient frames get one line naming what is
missing, and nothing is written."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from darkc.calibrate import calibrate
from darkc.cli import main
from darkc.data.calibration_frames import iso_gain, write_shoot
from darkc.data.dng import write_dng
from darkc.data.noise import expose
from darkc.data.profile_file import read_profile, write_profile
from darkc.data.profiles import PROFILES, get_profile
from darkc.data.sources import dead_leaves

ISOS = (100, 400, 1200)


@pytest.fixture(scope="module")
def bayer_shoot(tmp_path_factory):
    out = tmp_path_factory.mktemp("shoot")
    write_shoot(out, get_profile("sony-a7s2-like"), ISOS, size=(192, 256))
    return out


def _check_recovery(truth, fitted, record):
    for row in record["per_iso"]:
        k = iso_gain(truth, row["iso"])
        assert row["gain_source"] == "measured"
        assert row["gain"] == pytest.approx(k, rel=0.05)
        assert row["read_dn"] == pytest.approx(truth.read_sigma(k), rel=0.10)
        # the fitted log-linear model gives the read noise back at every calibrated gain too
        assert fitted.read_sigma(k) == pytest.approx(truth.read_sigma(k), rel=0.10)
        assert fitted.row_sigma(k) == pytest.approx(truth.row_sigma(k), rel=0.30)
    assert fitted.black == truth.black and fitted.white == truth.white and fitted.cfa == truth.cfa
    assert fitted.xyz_to_cam == pytest.approx(truth.xyz_to_cam, abs=1e-4)
    assert fitted.gain_range == pytest.approx((iso_gain(truth, ISOS[0]), iso_gain(truth, ISOS[-1])), rel=0.05)


def test_known_bayer_profile_comes_back_through_the_cli(bayer_shoot, tmp_path, capsys):
    out = tmp_path / "cam.toml"
    assert main(["calibrate", str(bayer_shoot), "-o", str(out)]) == 0
    assert "ISO" in capsys.readouterr().out
    fitted = get_profile(str(out))              # --profile FILE
    assert fitted.name == "cam"
    _check_recovery(get_profile("sony-a7s2-like"), fitted, calibrate([bayer_shoot], progress=False)[1])


def test_known_xtrans_profile_comes_back(tmp_path):
    truth = get_profile("fuji-xt2-like")
    write_shoot(tmp_path, truth, ISOS, size=(288, 384))
    fitted, record = calibrate([tmp_path], progress=False)
    _check_recovery(truth, fitted, record)


def test_gain_from_a_static_burst_instead_of_flats(tmp_path):
    """Pairs of a textured scene: the scene cancels in A - B, so K still comes back."""
    truth = get_profile("sony-a7s2-like")
    write_shoot(tmp_path, truth, ISOS, size=(192, 256), levels=())           # dark frames only
    scene = dead_leaves((192, 256), seed=1)[..., 1] * 0.6 * (truth.white - truth.black)
    rng = np.random.default_rng(3)
    for iso in ISOS:
        k = iso_gain(truth, iso)
        for j in range(2):
            raw = expose(scene, k, truth, rng, sigmas=(truth.read_sigma(k), truth.row_sigma(k)))
            write_dng(tmp_path / f"burst_{iso}_{j}.dng", raw, "bayer", black=truth.black, white=truth.white,
                      xyz_to_cam=truth.xyz_to_cam_matrix, as_shot_neutral=(0.5, 1, 0.6), exposure_time=0.01,
                      iso=iso, model=truth.model)
    _, record = calibrate([tmp_path], progress=False)
    for row in record["per_iso"]:
        assert row["gain"] == pytest.approx(iso_gain(truth, row["iso"]), rel=0.05)


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_profile_file_round_trips_exactly(name, tmp_path):
    prof = PROFILES[name]
    path = write_profile(prof, tmp_path / "p.toml")
    back = read_profile(path)
    assert back == prof
    assert all(type(getattr(back, f.name)) is type(getattr(prof, f.name)) for f in dataclasses.fields(prof))
    again = write_profile(back, tmp_path / "q.toml")
    assert again.read_bytes() == path.read_bytes()


def test_calibrated_profile_round_trips_and_drives_synth(bayer_shoot, tmp_path):
    fitted, record = calibrate([bayer_shoot], name="cam", progress=False)
    path = write_profile(fitted, tmp_path / "cam.toml", calibration=record)
    assert read_profile(path) == fitted                    # floats written exactly (shortest repr)
    assert main(["synth", "-o", str(tmp_path / "set"), "--count", "1", "--size", "64", "--ratios", "100",
                 "--profile", str(path)]) == 0
    assert '"profile": "cam"' in (tmp_path / "set" / "synth.json").read_text()


def _error_line(capsys) -> str:
    """The one error line on stderr (progress bars, drawn with carriage returns, may share its line)."""
    err = capsys.readouterr().err
    assert err.count("error: ") == 1, err
    return err[err.index("error: "):].split("\n")[0].split("\r")[0]


def _shoot(tmp_path, **kw):
    write_shoot(tmp_path, get_profile("sony-a7s2-like"), size=(96, 128), **kw)
    return tmp_path


@pytest.mark.parametrize("setup,fragments", [
    (lambda d: _shoot(d, isos=(400,)), ["dark frames at ISO 400 only", "two or more ISOs"]),
    (lambda d: _shoot(d, levels=()), ["no flat-field pairs"]),
    (lambda d: _shoot(d, darks=0), ["no dark frames"]),
])
def test_insufficient_frames_get_one_line_naming_what_is_missing(setup, fragments, tmp_path, capsys):
    frames = setup(tmp_path / "in")
    out = tmp_path / "p.toml"
    assert main(["calibrate", str(frames), "-o", str(out)]) == 1
    err = _error_line(capsys)
    assert all(f in err for f in fragments), err
    assert not out.exists()


def test_mixed_cameras_and_corrupt_files_are_named(tmp_path, capsys):
    frames = _shoot(tmp_path / "in", isos=(100, 400))
    other = tmp_path / "other.dng"
    prof = get_profile("sony-a7s2-like")
    write_dng(other, np.full((64, 64), 600, np.uint16), "bayer", black=prof.black, white=prof.white,
              xyz_to_cam=prof.xyz_to_cam_matrix, as_shot_neutral=(0.5, 1, 0.6), exposure_time=0.01, iso=100,
              model=prof.model)
    assert main(["calibrate", str(frames), str(other), "-o", str(tmp_path / "p.toml")]) == 1
    err = _error_line(capsys)
    assert "other.dng" in err and "same sensor" in err
    bad = tmp_path / "bad.dng"
    bad.write_bytes(other.read_bytes()[:200])
    assert main(["calibrate", str(frames), str(bad), "-o", str(tmp_path / "p.toml")]) == 1
    err = _error_line(capsys)
    assert "bad.dng" in err
    assert not (tmp_path / "p.toml").exists()


def test_bad_profile_files_get_one_line(tmp_path):
    from darkc.errors import DarkcError

    path = write_profile(PROFILES["sony-a7s2-like"], tmp_path / "p.toml")
    text = path.read_text()
    (tmp_path / "typo.toml").write_text(text.replace("a_read", "a_reed"))
    with pytest.raises(DarkcError, match="unknown field.*a_reed"):
        get_profile(str(tmp_path / "typo.toml"))
    (tmp_path / "broken.toml").write_text(text[:40] + "= =")
    with pytest.raises(DarkcError, match="not valid TOML"):
        get_profile(str(tmp_path / "broken.toml"))
    with pytest.raises(DarkcError, match="is a bayer sensor"):
        get_profile(str(path), "xtrans")
    with pytest.raises(DarkcError, match="does not exist"):
        get_profile(str(tmp_path / "missing.toml"))


def test_distill_takes_a_profile_file(tmp_path):
    from darkc.compress.distill import distill_data

    prof = dataclasses.replace(PROFILES["sony-a7s2-like"], name="mine", black=300)
    path = write_profile(prof, tmp_path / "mine.toml")
    ds, has_targets, _ = distill_data("synthetic", "bayer", patch=64, seed=0, profile=str(path))
    assert ds.profile == prof and has_targets

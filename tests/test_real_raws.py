"""benchmarks/real_raws.py: its measures (checkerboard amplitude, colour cast) on inputs with known answers, and
its crop/render path on a tiny synthetic DNG, so a report on real raws cannot come from a broken measure."""
import dataclasses
from pathlib import Path
import os
import re
import sys

import numpy as np
import pytest

from darkc.data.dng import write_dng
from darkc.data.profiles import get_profile
from darkc.data.raw import read_raw, render_raw
from darkc.inference import Runner
from helpers import load_benchmark



@pytest.fixture(scope="module")
def rr():
    mod = load_benchmark("real_raws")
    yield mod
    sys.modules.pop(mod.__name__, None)


def _smooth(h=96, w=128, seed=0, amp=0.3, freq=3.0):
    """A smooth colourful image (H, W, 3) in [0.5 - amp, 0.5 + amp]: no period-2 content of its own, but its
    gradient (up to amp * freq * 255 / max(h, w) levels per px) shows in the horizontal/vertical components as
    half its slope."""
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    rng = np.random.default_rng(seed)
    ph = rng.uniform(0, 2 * np.pi, 3)
    return np.stack([0.5 + amp * np.sin(freq * x + 2 / 3 * freq * y + p) for p in ph], axis=-1)


def _pattern(h, w, kind):
    y, x = np.mgrid[0:h, 0:w]
    return {"diagonal": (-1.0) ** (x + y), "horizontal": (-1.0) ** x, "vertical": (-1.0) ** y}[kind]


@pytest.mark.parametrize("kind", ["diagonal", "horizontal", "vertical"])
def test_checker_measures_an_added_pattern_in_its_own_component(rr, kind):
    k = 3.0
    base = _smooth(amp=0.1, freq=1.0)       # slope <= 0.3 levels/px: adds <= 0.15 to h/v
    img = base + (k / 255.0) * _pattern(*base.shape[:2], kind)[..., None]
    got = rr.checker(img)
    assert got[kind] == pytest.approx(k, abs=0.1)
    others = [c for c in ("horizontal", "vertical", "diagonal") if c != kind]
    assert all(got[c] < 0.15 for c in others), got
    assert got["max"] == pytest.approx(k, abs=0.1)


def test_checker_keeps_a_pattern_whose_phase_flips_between_regions(rr):
    """A checkerboard of +k on the left half and -k on the right is as visible as one of +k everywhere: a global
    mean of the component (instead of |block mean|) would report ~0."""
    base = _smooth(amp=0.1, freq=1.0)
    sign = np.where(np.arange(base.shape[1]) < base.shape[1] // 2, 1.0, -1.0)[None, :]
    img = base + (2.0 / 255.0) * (_pattern(*base.shape[:2], "diagonal") * sign)[..., None]
    assert rr.checker(img)["diagonal"] == pytest.approx(2.0, abs=0.1)


def test_checker_of_incoherent_noise_stays_small(rr):
    """White noise of std 5 levels is not a checkerboard: the 8x8 block mean leaves ~0.1 x 5 (taking |.| per
    pixel before the block mean would give ~2)."""
    rng = np.random.default_rng(1)
    img = _smooth(256, 256, amp=0.1, freq=1.0) + rng.normal(0, 5 / 255.0, (256, 256, 3))
    got = rr.checker(img)
    assert 0.2 < got["max"] < 0.8, got


def test_colour_cast_sees_a_channel_gain_and_not_a_brightness_change(rr):
    ref = _smooth()
    assert rr.colour_cast(ref, ref)["cast"] == pytest.approx(0.0, abs=1e-9)
    brighter = rr.colour_cast(np.clip(ref * 1.2, 0, 1), ref)
    assert brighter["cast"] < 1e-6
    blue = rr.colour_cast(ref * np.array([1.0, 1.0, 1.1]), ref)
    assert blue["cast"] > rr.CAST_LIMIT and blue["delta"][2] > 0 > blue["delta"][0]
    # a 10 % gain on one channel moves its share by ~ 0.1 * s * (1 - s) with s ~ 1/3: about 0.02
    assert blue["delta"][2] == pytest.approx(0.1 * (1 / 3) * (2 / 3), rel=0.25)


def test_colour_cast_counts_only_mid_tones(rr):
    ref = _smooth()
    ref[:48] = 0.01                       # shadows: out of the mid-tone range
    out = ref.copy()
    out[:48, :, 0] = 0.02                 # a red shift in the shadows only
    got = rr.colour_cast(out, ref)
    assert got["cast"] < 1e-9 and got["pixels"] == 48 * 128


class IdentityRaw(Runner):
    """A raw-output 'model' that returns its input: its render must be LibRaw's own render of the file."""

    def __init__(self):
        super().__init__("identity-raw", "bayer", output="raw")

    def __call__(self, x):
        return x.copy()


class GreySrgb(Runner):
    """An sRGB 'model' that outputs mid grey."""

    def __init__(self):
        super().__init__("grey-srgb", "bayer", output="srgb")

    def __call__(self, x):
        n, _, h, w = x.shape
        return np.full((n, 3, 2 * h, 2 * w), 0.5, np.float32)


@pytest.fixture(scope="module")
def tiny_dng(tmp_path_factory):
    """A 192x256 px Bayer DNG of a smooth colourful scene at about half of the white level."""
    from darkc.data.cfa import mosaic

    prof = get_profile("sony-a7s2-like")
    rgb = _smooth(192, 256, seed=3) * 0.6
    mos = mosaic(rgb.astype(np.float32), "bayer")
    dn = np.round(prof.black + mos * (prof.white - prof.black)).astype(np.uint16)
    path = tmp_path_factory.mktemp("real") / "tiny.dng"
    write_dng(path, dn, "bayer", black=prof.black, white=prof.white, xyz_to_cam=prof.xyz_to_cam_matrix,
              as_shot_neutral=(1 / 2.0, 1.0, 1 / 1.7), exposure_time=0.1)
    return path


def test_measure_file_on_a_tiny_dng_aligns_crops_with_libraw(rr, tiny_dng):
    """The identity raw model's crop, rendered in the frame, equals LibRaw's render of the same crop (a crop or
    render misplaced by one CFA tile fails the PSNR bound); the grey sRGB model shows a cast-free but wrong image;
    the dark captures give finite scores for the model and the baseline."""
    entry = rr.measure_file(tiny_dng, [IdentityRaw(), GreySrgb()], ratios=(100,), crop_px=64, centre=(0.5, 0.5),
                            profile_name="sony-a7s2-like", iso=400)
    y, x, h, w = entry["crop_px"]
    assert (h, w) == (64, 64) and 0 <= y <= 192 - h and 0 <= x <= 256 - w
    ident = entry["as_is"]["x1"]["identity-raw"]
    assert ident["psnr"] > 50 and ident["colour"]["cast"] < 1e-3
    assert ident["checker"]["max"] == pytest.approx(entry["libraw_checker"]["max"], abs=0.05)
    # its packed channel means on the crop are the input's (nothing below black in this bright scene)
    np.testing.assert_allclose(ident["raw_means"], entry["input_raw_means"]["x1"], rtol=1e-5)
    assert "raw_means" not in entry["as_is"]["x1"]["grey-srgb"]
    ref = render_raw(tiny_dng)[y:y + h, x:x + w]
    np.testing.assert_allclose(entry["images"][("as-is", "LibRaw render")], ref)
    grey = entry["as_is"]["x1"]["grey-srgb"]
    assert grey["psnr"] < 30 and grey["colour"]["cast"] > 0.01       # grey vs a colourful scene
    dark = entry["dark"]["x100"]
    assert set(dark) == {"libraw+nlm", "identity-raw", "grey-srgb"}
    assert all(np.isfinite(m["psnr"]) and 0 < m["ssim"] <= 1 for m in dark.values())
    # the identity model on a x100 dark capture is its noisy amplification: far below its as-is score
    assert dark["identity-raw"]["psnr"] < ident["psnr"] - 10


def test_simulated_dark_capture_keeps_the_signal_level(rr, tiny_dng):
    """Scaled down by the ratio, exposed with noise and amplified back, the mean signal is the long exposure's
    (a missing or doubled ratio would be off by 100x)."""
    frame = read_raw(tiny_dng)
    prof = get_profile("sony-a7s2-like")
    dark = rr.simulate_dark(frame.mosaic, 100, prof, prof.gain_of_iso(400), seed=0)
    assert dark.mean() * 100 == pytest.approx(frame.mosaic.mean(), rel=0.05)
    assert (dark * 100 - frame.mosaic).std() > 0.02        # and it is noisy


def test_plan_crop_keeps_the_context_inside_the_frame(rr):
    crop = rr.plan_crop((4, 500, 700), 256, (0.02, 0.98), 2)
    assert (crop.h, crop.w) == (128, 128)
    assert crop.y >= rr.CONTEXT and crop.x + crop.w + rr.CONTEXT <= 700
    assert crop.wy == crop.y - rr.CONTEXT and crop.wx + crop.ww == crop.x + crop.w + rr.CONTEXT


# ---------------------------------------------------------------- getting the packaged raws (a fake apt-get)
def _source(rr, sha, path="/usr/share/doc/darkc-fake/shot.raw"):
    return rr.RawSource("fake-cam", "Fake", "-", "darkc-fake-raws", "1.0-1", path, sha, "-", (0.5, 0.5))


@pytest.fixture
def fake_apt(tmp_path, monkeypatch):
    """A real .deb (built with dpkg-deb) holding one file, and an ``apt-get`` on PATH whose ``download PKG=VER``
    copies it into the working directory, as the real one does. Returns the file's bytes."""
    import shutil
    import subprocess

    if shutil.which("dpkg-deb") is None:
        pytest.fail("dpkg-deb is missing: it comes with every Debian system (apt-get install dpkg)")
    data = np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes()
    root = tmp_path / "pkg"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text("Package: darkc-fake-raws\nVersion: 1.0-1\nArchitecture: all\n"
                                             "Maintainer: darkc <darkc@example.org>\nDescription: test\n")
    (root / "usr/share/doc/darkc-fake").mkdir(parents=True)
    (root / "usr/share/doc/darkc-fake/shot.raw").write_bytes(data)
    deb = tmp_path / "darkc-fake-raws_1.0-1_all.deb"
    subprocess.run(["dpkg-deb", "-Zgzip", "--root-owner-group", "--build", str(root), str(deb)], check=True,
                   capture_output=True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "apt.log"
    (bin_dir / "apt-get").write_text(f'#!/bin/sh\necho "$@" >> {log}\n'
                                     f'[ "$1 $2" = "download darkc-fake-raws=1.0-1" ] || exit 100\ncp {deb} .\n')
    (bin_dir / "apt-get").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return data, log


def test_locate_extracts_the_pinned_file_from_the_package_once(rr, fake_apt, tmp_path):
    import hashlib

    data, log = fake_apt
    src = _source(rr, hashlib.sha256(data).hexdigest())
    cache = tmp_path / "cache"
    got = rr.locate(src, cache)
    assert got == cache / "fake-cam" / "shot.raw" and got.read_bytes() == data
    assert rr.locate(src, cache) == got                       # second call: from the cache, no download
    assert log.read_text().splitlines() == ["download darkc-fake-raws=1.0-1"]


def test_locate_refuses_a_package_file_with_another_hash_and_caches_nothing(rr, fake_apt, tmp_path):
    src = _source(rr, "0" * 64)
    cache = tmp_path / "cache"
    with pytest.raises(rr.DarkcError, match="not the pinned 0000000000000000"):
        rr.locate(src, cache)
    assert not cache.exists() or not any(cache.iterdir())


def test_locate_names_the_fix_for_a_missing_member_and_a_failed_download(rr, fake_apt, tmp_path):
    import hashlib

    data, _ = fake_apt
    with pytest.raises(rr.DarkcError, match="has no /usr/share/doc/darkc-fake/other.raw"):
        rr.locate(_source(rr, hashlib.sha256(data).hexdigest(), "/usr/share/doc/darkc-fake/other.raw"), tmp_path)
    other = dataclasses.replace(_source(rr, "0" * 64), version="9.9-9")
    with pytest.raises(rr.DarkcError, match=r"apt-get download darkc-fake-raws=9\.9-9` failed.*apt-get update"):
        rr.locate(other, tmp_path)


def test_locate_refuses_a_cached_file_with_another_hash(rr, tmp_path):
    (tmp_path / "fake-cam").mkdir()
    (tmp_path / "fake-cam" / "shot.raw").write_bytes(b"not the file")
    with pytest.raises(rr.DarkcError, match="fake-cam/shot.raw: sha256 .* delete the file"):
        rr.locate(_source(rr, "0" * 64), tmp_path, download=False)
    (tmp_path / "fake-cam" / "shot.raw").unlink()
    with pytest.raises(rr.DarkcError, match="is not installed .*`apt-get install darkc-fake-raws`"):
        rr.locate(_source(rr, "0" * 64), tmp_path, download=False)


def test_every_packaged_source_is_pinned(rr):
    for src in rr.SOURCES:
        assert re.fullmatch("[0-9a-f]{64}", src.sha256), src.name
        assert "=" not in src.package and src.version, src.name
        if src.registry == "pypi":             # a path inside the pinned sdist
            assert src.path.startswith(f"{src.package.replace('-', '_')}-{src.version}/"), src.name
        else:                                  # where the Debian package installs it
            assert src.registry == "debian" and src.path.startswith("/"), src.name
    assert len({src.camera.split(" (")[0] for src in rr.SOURCES}) >= 2      # issue 16: two camera models


def test_report_states_each_file_source_and_lists_the_rejected_candidates(rr, tiny_dng):
    entry = rr.measure_file(tiny_dng, [IdentityRaw()], ratios=(100,), crop_px=64, profile_name="sony-a7s2-like")
    entry.pop("images")
    src = rr.SOURCES[0]
    packaged = {"camera": src.camera, "exposure": src.exposure, "package": src.package, "version": src.version,
                "path": src.path, "sha256": src.sha256, "licence": src.licence, "install": src.install}
    given = {"camera": "given with --raw", "exposure": "-", "package": "-", "version": "-", "path": "tiny.dng",
             "licence": "-", "install": "-"}
    report = {"command": "x", "seconds": 1.0, "host": {"machine": "m", "threads": 1, "python": "3"},
              "files": [{"name": "a", "source": packaged, "png": "a.png", **entry},
                        {"name": "b", "source": given, "png": "b.png", **entry}]}
    md = rr.report_md(report)
    assert f"(sha256 `{src.sha256[:16]}...`)" in md and "extracted from the package into the cache" in md
    assert "Not shipped here: given with --raw." in md
    rows = md.split("## Where else a real raw was looked for")[1].strip().splitlines()
    assert len([r for r in rows if r.startswith("| ") and not r.startswith("| where")]) == len(rr.REJECTED)


def test_locate_extracts_a_pypi_source_from_its_pinned_sdist(rr, tmp_path, monkeypatch):
    """A PyPI source comes out of the sdist that `pip download --no-binary :all: PKG==VER` writes (faked here:
    the call is checked and the sdist built in the test); a wrong hash or member is refused, nothing cached."""
    import hashlib
    import io
    import subprocess
    import tarfile

    data = np.random.default_rng(2).integers(0, 256, 4000, dtype=np.uint8).tobytes()
    calls = []

    def fake_run(cmd, **kw):
        calls.append(cmd)
        dest = Path(cmd[cmd.index("-d") + 1])
        with tarfile.open(dest / "fake_raws-1.0.tar.gz", "w:gz") as tar:
            info = tarfile.TarInfo("fake_raws-1.0/tests/shot.ARW")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        return subprocess.CompletedProcess(cmd, 0, b"", b"")

    monkeypatch.setattr(rr.subprocess, "run", fake_run)
    src = rr.RawSource("fake-pypi", "Fake", "-", "fake-raws", "1.0", "fake_raws-1.0/tests/shot.ARW",
                       hashlib.sha256(data).hexdigest(), "MIT", (0.5, 0.5), registry="pypi")
    got = rr.locate(src, tmp_path / "cache")
    assert got.read_bytes() == data and got.name == "shot.ARW"
    assert calls[0][1:4] == ["-m", "pip", "download"] and "fake-raws==1.0" in calls[0] and ":all:" in calls[0]
    assert "pip download --no-deps --no-binary :all: fake-raws==1.0" == src.install
    with pytest.raises(rr.DarkcError, match="not the pinned 0000000000000000"):
        rr.locate(dataclasses.replace(src, name="other", sha256="0" * 64), tmp_path / "cache2")
    with pytest.raises(rr.DarkcError, match="has no fake_raws-1.0/tests/missing.ARW"):
        rr.locate(dataclasses.replace(src, name="other", path="fake_raws-1.0/tests/missing.ARW"), tmp_path / "c3")
    assert not (tmp_path / "cache2").exists() and not (tmp_path / "c3").exists()


def test_noise_averaged_render_is_the_mean_colour_that_libraws_render_of_a_noisy_raw_misses(rr, tmp_path):
    """A dark flat colour patch with noise as large as its signal: LibRaw's render of the amplified raw is tinted
    (each channel's clipped noise lifts it by its own amount), the noise-averaged render is not: it matches the
    render of the noise-free raw, which a denoiser that is right would give."""
    prof = get_profile("sony-a7s2-like")
    # the crop's mean must be known to ~1 %: the colour matrix turns a 4 % error in a weak camera channel into a
    # cast (so a 256 px crop, noise half the green signal, twice the weakest)
    h, w, level = 384, 512, 0.01
    rgb = np.broadcast_to(np.array([0.6, 1.0, 0.5], np.float32) * level, (h, w, 3))
    from darkc.data.cfa import mosaic

    clean = mosaic(np.ascontiguousarray(rgb), "bayer")
    noisy = clean + np.random.default_rng(4).normal(0, level / 2, clean.shape).astype(np.float32)
    span = prof.white - prof.black
    paths = {}
    for name, m in (("clean", clean), ("noisy", noisy)):
        dn = np.clip(np.round(prof.black + m * span), 0, prof.white).astype(np.uint16)
        paths[name] = tmp_path / f"{name}.dng"
        write_dng(paths[name], dn, "bayer", black=prof.black, white=prof.white, xyz_to_cam=prof.xyz_to_cam_matrix,
                  as_shot_neutral=(1 / 2.0, 1.0, 1 / 1.7), exposure_time=0.1)
    ratio = 30.0
    full = read_raw(paths["noisy"]).packed()
    crop = rr.plan_crop(full.shape, 256, (0.5, 0.5), 2, context=16)
    unclipped = rr.unclipped_packed(paths["noisy"])[:, crop.wy:crop.wy + crop.wh, crop.wx:crop.wx + crop.ww]
    averaged = rr.noise_averaged_render(paths["noisy"], full, unclipped, ratio, crop, 2)
    clean_full = read_raw(paths["clean"]).packed()
    window = (slice(None), slice(crop.wy, crop.wy + crop.wh), slice(crop.wx, crop.wx + crop.ww))
    truth = rr._cut(rr.render_in_frame(paths["clean"], clean_full, np.clip(clean_full[window] * ratio, 0, 1), crop),
                    crop, 2)
    libraw = rr._cut(rr.render_in_frame(paths["noisy"], full, np.clip(full[window] * ratio, 0, 1), crop), crop, 2)
    assert rr.colour_cast(truth, averaged)["cast"] < 0.3 * rr.CAST_LIMIT
    assert rr.colour_cast(libraw, averaged)["cast"] > rr.CAST_LIMIT


def test_an_srgb_model_with_the_srgb_anchor_takes_the_files_colour(rr, tiny_dng):
    """An sRGB model runs as `darkc enhance` runs it, with --srgb-anchor (NAME+no-srgb-anchor: without): the grey
    model's crop gets the file's own colour at the anchor's scale (32 px here, coarse against this 64-px crop: its
    cast less than halves)."""
    anchored = GreySrgb()
    anchored.srgb_anchor, anchored.name = True, "grey-srgb+srgb-anchor"
    entry = rr.measure_file(tiny_dng, [GreySrgb(), anchored], ratios=(), crop_px=64, centre=(0.5, 0.5))
    rows = entry["as_is"]["x1"]
    assert rows["grey-srgb+srgb-anchor"]["colour"]["cast"] < 0.5 * rows["grey-srgb"]["colour"]["cast"]
    for bad in ("teacher-raw+no-srgb-anchor", "teacher+srgb"):
        with pytest.raises(rr.DarkcError, match="no-srgb-anchor"):
            rr._runner(bad, "bayer", 1)

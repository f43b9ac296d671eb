"""Raw-output, noise-conditioned models and sensor-diverse data (issue: camera-agnostic models)."""
import numpy as np
import pytest
import torch
from helpers import raises_naming, tiny_checkpoint

from darkc.data import cfa as cfa_mod
from darkc.data.noise_level import (NoiseLevel, condition, level_from_dng_tag, level_of_file, level_of_profile,
                                    std_map)
from darkc.data.profiles import OOD_PROFILE, PROFILES, TRAIN_POOL, get_profile, training_profiles
from darkc.data.synth import make_pair, normalise
from darkc.models import build_model, normalize_spec

RAW_SPEC = {"arch": "sid-unet", "output": "raw", "input": {"noise": "std-map"}, "widths": [4, 8, 8, 8, 8]}


def test_raw_output_spec_derives_channels_and_scale():
    spec = normalize_spec(RAW_SPEC)
    assert (spec["in_channels"], spec["out_channels"], spec["scale"]) == (5, 4, 1)
    xt = normalize_spec({**RAW_SPEC, "cfa": "xtrans", "input": {"noise": "none"}})
    assert (xt["in_channels"], xt["out_channels"], xt["scale"]) == (9, 9, 1)
    # format-1 files kept the output as an object: still an sRGB model
    old = normalize_spec({"arch": "sid-unet", "output": {"space": "sRGB", "range": [0, 1]}})
    assert old["output"] == "srgb" and old["scale"] == 2
    with raises_naming("output", "raw"):
        normalize_spec({"arch": "sid-unet", "output": "linear"})
    with raises_naming("input.noise", "std-map"):
        normalize_spec({"arch": "sid-unet", "input": {"noise": "sigma"}})


def test_untrained_raw_model_is_the_identity_on_its_raw_input():
    torch.manual_seed(0)
    model = build_model(RAW_SPEC)
    x = torch.rand(2, 5, 32, 48)
    assert torch.equal(model(x), x[:, :4])


def test_identity_raw_model_renders_exactly_like_the_libraw_baseline(synth_bayer, tmp_path, monkeypatch):
    """A raw-output net that passes its input through must render like baseline (a): amplified raw through
    LibRaw with the file's levels, white balance and matrix. Breaks if render_packed mixes up black/white,
    CFA phase, packing order or the exposure scale. (The colour anchor off: it moves the clipped shadows.)"""
    from darkc import inference
    from darkc.evaluate import evaluate
    from darkc.models import save_checkpoint

    monkeypatch.setattr(inference, "ANCHOR_SIGMA", 0.0)

    torch.manual_seed(0)
    save_checkpoint(build_model(RAW_SPEC), normalize_spec(RAW_SPEC), tmp_path / "ident")
    res = evaluate(str(tmp_path / "ident"), str(synth_bayer.list_file), baselines=True, progress=False)
    base = res["baselines"]["libraw"]
    for mine, theirs in zip(res["images"], base["images"]):
        assert mine["psnr"] == pytest.approx(theirs["psnr"], abs=1e-6)
    assert "raw_psnr" in res and 0 < res["raw_psnr"] < 40


def test_trained_like_raw_output_beats_identity_when_it_denoises(synth_bayer, tmp_path, monkeypatch):
    """The sRGB score of a raw model must follow its raw output: an output equal to the long exposure's raw
    (an oracle runner) renders to the target itself (PSNR far above the noisy input's); the colour anchor leaves
    a right output nearly alone (its corrections of pure noise are shrunk), and off, exactly alone."""
    from darkc import inference
    from darkc.data.raw import read_raw
    from darkc.data.sid import load_pairs
    from darkc.inference import Runner, run_raw_file
    from darkc.metrics import psnr
    from darkc.data.raw import render_raw

    pair = load_pairs(synth_bayer.list_file)[0]
    long = read_raw(pair.long).packed()

    class Oracle(Runner):
        def __call__(self, x):
            return long[None, :, : x.shape[2], : x.shape[3]].astype(np.float32)

    runner = Oracle("oracle", "bayer", output="raw", noise_input="none")
    srgb, packed = run_raw_file(runner, pair.short, pair.ratio, progress=False)
    target = render_raw(pair.long)
    assert psnr(srgb.transpose(1, 2, 0), target) > 45
    assert np.abs(packed - np.clip(long, 0, 1)).mean() < 2e-3
    monkeypatch.setattr(inference, "ANCHOR_SIGMA", 0.0)
    srgb, packed = run_raw_file(runner, pair.short, pair.ratio, progress=False)
    assert np.array_equal(packed, np.clip(long, 0, 1))


def test_dng_noise_profile_round_trips_and_wins_over_the_profile(tmp_path):
    from darkc.data.dng import write_dng

    prof = get_profile("nikon-d810-like")
    pair = make_pair(np.random.default_rng(0).random((64, 96, 3)), prof, 100, seed=4)
    write_dng(tmp_path / "a.dng", pair.short, "bayer", **pair.dng_tags(0.1))
    got = level_of_file(tmp_path / "a.dng")
    want = pair.noise_level()
    assert got.gain == pytest.approx(want.gain, rel=1e-9) and got.read == pytest.approx(want.read, rel=1e-6)
    assert "NoiseProfile" in got.source
    with raises_naming("NoiseProfile", "malformed"):
        level_from_dng_tag({51041: (1e-4,)}, "b.dng")


def test_std_map_predicts_the_noise_of_synthetic_captures():
    """The std channel must match the empirical noise of amplified short exposures (within the per-capture
    spread of the read/row fits): fails if gain or read are mis-normalised or the ratio is applied wrongly."""
    rng = np.random.default_rng(1)
    flat = np.full((128, 128, 3), 0.5)
    for name in ("sony-a7s2-like", "phone-10bit-a-like", "canon-5d2-ood"):
        prof = get_profile(name)
        for ratio in (100, 300):
            errs = []
            for seed in range(6):
                pair = make_pair(flat, prof, ratio, seed=int(rng.integers(1e9)))
                a = np.minimum(cfa_mod.pack(normalise(pair.short, prof), "bayer") * ratio, 1.0)
                clean = cfa_mod.pack(normalise(pair.long, prof), "bayer")
                pred = std_map(a, ratio, pair.noise_level())
                emp = float(np.std(a[1] - clean[1]))      # one green channel, flat scene
                errs.append(float(np.median(pred)) / emp)
            assert 0.8 < np.median(errs) < 1.25, (name, ratio, errs)


def test_condition_appends_one_channel_only_for_std_map_models():
    x = np.random.default_rng(0).random((4, 8, 8)).astype(np.float32)
    level = NoiseLevel(1e-4, 2e-4)
    assert condition(x, 100, level, "none") is x
    y = condition(x, 100, level, "std-map")
    assert y.shape == (5, 8, 8) and np.array_equal(y[:4], x)
    a_coef, b_coef = level.amplified(100)
    assert np.allclose(y[4], np.sqrt(a_coef * x.mean(0) + b_coef), rtol=1e-5)
    with raises_naming("noise level"):
        condition(x, 100, None, "std-map")


def test_sensor_pool_spans_levels_matrices_and_holds_out_the_ood_sensor():
    pool = training_profiles(None, "bayer", pool=True)
    assert len({p.xyz_to_cam for p in pool}) >= 8
    assert {p.bit_depth for p in pool} == {10, 12, 14}
    ood = get_profile(OOD_PROFILE["bayer"])
    assert ood.name not in TRAIN_POOL["bayer"] and ood.xyz_to_cam not in {p.xyz_to_cam for p in pool}
    assert ood.black > max(p.black for p in pool)
    assert ood.gain_range[1] / ood.span > max(p.gain_range[1] / p.span for p in pool)
    assert all(PROFILES[n].cfa == "xtrans" for n in TRAIN_POOL["xtrans"])
    with raises_naming("pool", "one sensor"):
        get_profile("pool")


def test_synthetic_pool_draws_several_sensors_and_keeps_single_sensor_items():
    from darkc.data.datasets import SyntheticPairs
    from darkc.data.sources import dead_leaves_images

    imgs = dead_leaves_images(2, (96, 128), "train")
    pooled = SyntheticPairs(imgs, training_profiles(None, "bayer", pool=True), patch=64, target="raw",
                            noise_input="std-map")
    levels = {round(float(pooled[i]["input"][4].min()), 6) for i in range(12)}
    assert len(levels) > 6
    item = pooled[0]
    assert item["input"].shape == (5, 32, 32) and item["target"].shape == (4, 32, 32)
    single = SyntheticPairs(imgs, get_profile(None), patch=64)
    assert single[3]["target"].shape == (3, 64, 64)


def test_gamma_loss_weights_shadow_errors_above_highlight_errors():
    from darkc.losses import get_loss

    loss = get_loss("l1-gamma")
    y = torch.full((1, 4, 8, 8), 0.02)
    dark = loss(y + 0.01, y)
    y2 = torch.full((1, 4, 8, 8), 0.8)
    bright = loss(y2 + 0.01, y2)
    assert dark > 3 * bright
    out = torch.full((1, 4, 8, 8), -0.05, requires_grad=True)
    loss(out, torch.zeros_like(out)).backward()
    assert (out.grad < 0).all()      # a negative output is pushed up


def test_enhance_raw_model_tiles_like_a_whole_frame(synth_bayer, tmp_path):
    from darkc.data.sid import load_pairs
    from darkc.inference import load_runner, run_raw_file

    spec = normalize_spec(RAW_SPEC)
    tiny_checkpoint(tmp_path / "m", spec)
    runner = load_runner(tmp_path / "m")
    pair = load_pairs(synth_bayer.list_file)[0]
    whole, raw_whole = run_raw_file(runner, pair.short, pair.ratio, progress=False)
    tiled, raw_tiled = run_raw_file(runner, pair.short, pair.ratio, tile=32, overlap=16, progress=False)
    assert whole.shape[0] == 3 and raw_whole.shape[0] == 4
    assert np.abs(raw_whole - raw_tiled).max() < 0.05
    assert np.abs(whole - tiled).mean() < 0.01


def test_synth_ood_split_writes_the_held_out_sensor(tmp_path):
    from darkc.data.noise_level import profile_for_camera, _tiff_tags
    from darkc.data.synth import synthesize

    synthesize(tmp_path, count=1, split="ood", progress=False, ratios=(100,))
    dngs = sorted((tmp_path / "Sony" / "short").glob("*.dng"))
    assert len(dngs) == 1
    tags = _tiff_tags(dngs[0])
    assert profile_for_camera(tags.get(272)).name == OOD_PROFILE["bayer"]
    assert level_of_file(dngs[0]).gain > 0


def test_level_of_profile_is_the_median_fit():
    prof = get_profile("canon-g7x-like")
    lv = level_of_profile(prof, 1.0)
    assert lv.gain == pytest.approx(1.0 / prof.span)
    expected = np.sqrt(prof.read_sigma(1.0) ** 2 + prof.row_sigma(1.0) ** 2 + 1 / 12) / prof.span
    assert lv.read == pytest.approx(expected)


def test_isp_matrix_renders_the_raw_target_like_libraw():
    """The ISP map the isp-l1 loss trains through must put the long exposure's packed raw where LibRaw's render
    puts it (same colours up to LibRaw's tone curve): fails if white balance or the colour matrix is inverted."""
    from darkc.data.datasets import isp_matrix
    from darkc.data.sources import validation_images

    img = validation_images()[0].load()[:256, :256]
    for name in ("sony-a7s2-like", "canon-5d2-ood"):
        pair = make_pair(img, get_profile(name), 100, 3)
        lin = np.einsum("kc,chw->khw", isp_matrix(pair), cfa_mod.pack(normalise(pair.long, pair.profile), "bayer"))
        srgb = np.clip(lin, 0, 1) ** (1 / 2.2)
        target = pair.target()[::2, ::2].transpose(2, 0, 1)
        for c in range(3):
            assert np.corrcoef(srgb[c].ravel(), target[c].ravel())[0, 1] > 0.9
        ratio = srgb.mean((1, 2)) / target.mean((1, 2))
        assert np.ptp(ratio) < 0.2      # tone curves differ (power vs BT.709); an inverted WB gain is ~2x off


def test_isp_loss_punishes_a_colour_offset_that_the_raw_loss_barely_sees():
    from darkc.losses import get_loss

    isp = torch.tensor([[[2.0, -0.3, -0.2, -0.3], [-0.2, 0.8, -0.3, 0.8], [0.0, -0.4, 1.9, -0.4]]])
    y = torch.rand(1, 4, 16, 16) * 0.3 + 0.05
    shifted = y.clone()
    shifted[:, 2] += 0.04                      # blue offset
    noisy = y + 0.04 * torch.randn_like(y)     # zero-mean noise of the same size
    isp_loss, raw_loss = get_loss("isp-l1"), get_loss("l1-gamma")
    assert raw_loss(shifted, y) < raw_loss(noisy, y)
    assert isp_loss(shifted, y, isp) - raw_loss(shifted, y) > 0.5 * (isp_loss(noisy, y, isp) - raw_loss(noisy, y))
    assert isp_loss(y, y, isp) == 0

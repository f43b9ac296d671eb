"""Tests for darkc/video: synthetic clips, temporal filters, video metrics, the writer and the video stage."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from darkc.cli import main as cli_main
from darkc.data.dng import write_dng
from darkc.data.raw import read_raw
from darkc.data.sources import builtin_photos
from darkc.errors import DarkcError
from darkc.metrics import psnr
from darkc.models import build_model, save_checkpoint
from darkc.video import (VideoWriter, enhance_video, flicker, make_filter, occlusion_mask, open_sequence,
                         probe_video, warp, warp_error, write_clip)
from darkc.video.darken import Darkener
from darkc.video.metrics import NoRefScore, VideoScore
from darkc.video.process import DEFAULT_TEMPORAL
from darkc.video.temporal import KINDS
from helpers import raises_naming

ROOT = Path(__file__).resolve().parents[1]
TAGS = dict(black=512, white=16383, xyz_to_cam=np.eye(3), as_shot_neutral=(0.5, 1, 0.6), exposure_time=0.03)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    torch.manual_seed(0)
    spec = {"arch": "sid-unet", "cfa": "bayer", "widths": [4] * 5}
    return save_checkpoint(build_model(spec), spec, tmp_path_factory.mktemp("model") / "m")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 5-frame 96x64 Bayer clip, hand-held camera (jitter), two moving objects."""
    out = tmp_path_factory.mktemp("clip") / "c"
    write_clip(out, frames=5, size=96, seed=4, motion="jitter", progress=False)
    return out


def dark_dng(path, shape, cfa="bayer", seed=0):
    rng = np.random.default_rng(seed)
    write_dng(path, (512 + rng.poisson(40, shape)).astype(np.uint16), cfa, **TAGS)
    return path


# --- synthetic clips --------------------------------------------------------------------------------------

def test_clip_layout_frames_and_true_flow(clip):
    meta = json.loads((clip / "clip.json").read_text())
    assert meta["frames"] == 5 and meta["size"] == [64, 96] and meta["ratio"] == 100
    assert len(meta["raw"]) == len(meta["truth"]) == 5 and len(meta["flow_fwd"]) == len(meta["flow_bwd"]) == 4
    seq = open_sequence(clip)
    frames = [read_raw(f.path) for f in seq.frames]
    assert all(f.mosaic.shape == (64, 96) and f.cfa == "bayer" for f in frames)
    assert len({f.wb for f in frames}) == 1                                  # one camera per clip
    truths = [f.read_truth() for f in seq.frames]
    assert truths[0].shape == (64, 96, 3) and 0.05 < truths[0].mean() < 0.95
    for i in range(1, 5):
        fwd, bwd = seq.frames[i].read_flows()
        assert fwd.shape == (64, 96, 2) and np.abs(fwd).max() > 0.1         # the camera shakes
        err_warped, valid = warp_error(truths[i - 1], truths[i], fwd, bwd)
        err_still = float(((truths[i] - truths[i - 1]) ** 2).sum(-1).mean())
        assert valid > 0.6 and err_warped < 0.25 * err_still                 # the flow explains the motion
    # sensor noise in every dark frame: where the truth barely changes (< 0.01), the dark frames still differ by
    # ~80 % of their level, their truths by ~1.4 % (noise-free dark frames would differ by about as little)
    still = np.abs(truths[1] - truths[0]).max(-1) < 0.01
    assert still.mean() > 0.05
    d_raw = np.abs(frames[1].mosaic - frames[0].mosaic)[still].mean() / frames[0].mosaic[still].mean()
    d_truth = np.abs(truths[1] - truths[0])[still].mean() / truths[0][still].mean()
    assert d_raw > 10 * d_truth, (d_raw, d_truth)


def test_static_camera_truth_is_stable_and_noise_is_fresh(tmp_path):
    out = tmp_path / "static"
    write_clip(out, frames=3, size=96, seed=1, motion="static", objects=0, progress=False)
    seq = open_sequence(out)
    t0, t1 = seq.frames[0].read_truth(), seq.frames[1].read_truth()
    np.testing.assert_array_equal(t0, t1)                                    # no flicker in the truth
    m0, m1 = read_raw(seq.frames[0].path).mosaic, read_raw(seq.frames[1].path).mosaic
    assert np.abs(m0 - m1).mean() > 1e-4                                     # but new sensor noise
    fwd, _ = seq.frames[1].read_flows()
    assert np.abs(fwd).max() == 0


def test_xtrans_clip_runs_through_an_xtrans_model(tmp_path):
    write_clip(tmp_path / "x", frames=2, size=96, seed=0, cfa="xtrans", progress=False)
    assert read_raw(open_sequence(tmp_path / "x").frames[0].path).cfa == "xtrans"
    torch.manual_seed(0)
    spec = {"arch": "sid-unet", "cfa": "xtrans", "widths": [4] * 5}
    model = save_checkpoint(build_model(spec), spec, tmp_path / "m")
    rep = enhance_video(tmp_path / "x", tmp_path / "x.mp4", model=model, threads=1, progress=False)
    assert (rep["width"], rep["height"]) == (96, 60) and np.isfinite(rep["warp_error"])
    assert probe_video(tmp_path / "x.mp4")["frames"] == 2


def test_clip_bad_options(tmp_path):
    with raises_naming("--count 1", "at least 2"):
        write_clip(tmp_path / "c", frames=1, size=96, progress=False)
    with raises_naming("camera motion", "static"):
        write_clip(tmp_path / "c", frames=2, size=96, motion="orbit", progress=False)
    assert not (tmp_path / "c").exists()


def test_scene_cut_clip_has_no_flow_across_the_cut(tmp_path):
    out = tmp_path / "cut"
    write_clip(out, frames=5, size=96, seed=2, motion="pan", cuts=(3,), progress=False)
    meta = json.loads((out / "clip.json").read_text())
    assert meta["cuts"] == [3] and [s["start"] for s in meta["shots"]] == [0, 3]
    assert meta["flow_fwd"][2] is None and meta["flow_bwd"][2] is None and None not in meta["flow_fwd"][:2]
    seq = open_sequence(out)
    assert [f.cut for f in seq.frames] == [False, False, False, True, False] and seq.frames[3].read_flows() is None
    t = [f.read_truth() for f in seq.frames]
    within, across = np.abs(t[2] - t[1]).mean(), np.abs(t[3] - t[2]).mean()
    assert across > 2 * within                                              # a new scene, not more of the pan
    assert len({read_raw(f.path).wb for f in seq.frames}) == 1             # the same camera on both sides
    with raises_naming("scene cuts [5]", "between 1 and 4"):
        write_clip(tmp_path / "bad", frames=5, size=96, cuts=(5,), progress=False)
    assert not (tmp_path / "bad").exists()


def test_ghosting_score_counts_revealed_pixels_and_the_frame_after_a_cut():
    rng = np.random.default_rng(3)
    a, b = rng.random((24, 32, 3)).astype(np.float32), rng.random((24, 32, 3)).astype(np.float32)
    zero = np.zeros((24, 32, 2), np.float32)
    score = VideoScore()
    score.add(a, a)
    score.add(a, a, zero, zero)                                             # nothing revealed
    assert score.summary()["psnr_revealed"] is None
    score.add(a, b, cut=True)                                               # the old scene carried over a cut
    summary = score.summary()
    assert summary["psnr_revealed"] == pytest.approx(psnr(b, a), abs=0.01)
    assert len(summary["per_frame"]["warp_error"]) == 1                     # no temporal metric across the cut


# --- metrics ----------------------------------------------------------------------------------------------

def test_warp_error_and_occlusion_on_a_known_shift():
    rng = np.random.default_rng(0)
    a = cv2.GaussianBlur(rng.random((40, 60, 3)).astype(np.float32), (0, 0), 2)
    b = np.roll(a, 3, axis=1)                                # content moves 3 px right
    fwd = np.zeros((40, 60, 2), np.float32)
    fwd[..., 0] = 3
    bwd = -fwd
    occ = occlusion_mask(fwd, bwd)
    assert occ[:, -3:].all() and not occ[:, :-4].any()      # leaving the frame on the right
    err, valid = warp_error(a, b, fwd, bwd)
    assert err < 1e-10 and valid == pytest.approx(57 / 60)
    assert warp_error(a, a, fwd, bwd)[0] > 1e-4              # a frame that did not move is inconsistent
    np.testing.assert_allclose(warp(b, fwd)[:, :-3], a[:, :-3], atol=1e-6)


def test_flicker_counts_only_change_the_truth_does_not_have():
    rng = np.random.default_rng(1)
    t0 = rng.random((30, 30, 3)).astype(np.float32)
    t1 = t0.copy()
    t1[:10] += 0.2                                           # truth changes in the top rows
    o0, o1 = t0 + 0.01, t1 + 0.01
    assert flicker(o0, o1, t0, t1) == pytest.approx(0, abs=1e-6)
    o1 = o1 + np.float32(0.05)
    assert flicker(o0, o1, t0, t1) == pytest.approx(0.05, abs=1e-5)
    assert flicker(o0, o1, t0, t0 + 0.5) is None             # nothing static


# --- temporal filters -------------------------------------------------------------------------------------

def _noisy(truths, sigma, seed):
    rng = np.random.default_rng(seed)
    return [np.clip(t + rng.normal(0, sigma, t.shape).astype(np.float32), 0, 1) for t in truths]


def _mean_flicker(outs, truths):
    return float(np.mean([flicker(outs[i - 1], outs[i], truths[i - 1], truths[i]) for i in range(1, len(outs))]))


@pytest.mark.parametrize("kind", ["ema", "motion-adaptive", "flow", "fast-flow"])
def test_static_sequence_flicker_is_reduced(kind):
    rng = np.random.default_rng(2)
    scene = cv2.GaussianBlur(rng.random((64, 96, 3)).astype(np.float32), (0, 0), 3) * 0.6 + 0.2
    truths = [scene] * 10
    frames = _noisy(truths, 0.03, 3)
    filt = make_filter(kind)
    outs = [filt(f) for f in frames]
    assert _mean_flicker(outs, truths) < 0.5 * _mean_flicker(frames, truths)
    assert np.mean([psnr(t, o) for t, o in zip(truths[3:], outs[3:])]) > \
        np.mean([psnr(t, f) for t, f in zip(truths[3:], frames[3:])]) + 3


def _moving_square(n=8, size=(64, 96), side=16, speed=4):
    rng = np.random.default_rng(5)
    bg = cv2.GaussianBlur(rng.random(size + (3,)).astype(np.float32), (0, 0), 4) * 0.2 + 0.15
    truths, boxes = [], []
    for t in range(n):
        img = bg.copy()
        x0 = 8 + speed * t
        img[24:24 + side, x0:x0 + side] = (0.9, 0.8, 0.7)
        truths.append(img)
        boxes.append(x0)
    return truths, boxes, side


def _trail_error(outs, truths, boxes, side):
    """Mean |out - truth| where the square was one frame earlier but is not now (where a ghost would be)."""
    errs = []
    for t in range(2, len(outs)):
        mask = np.zeros(truths[t].shape[:2], bool)
        mask[24:24 + side, boxes[t - 1]:boxes[t]] = True
        errs.append(np.abs(outs[t][mask] - truths[t][mask]).mean())
    return float(np.mean(errs))


def test_moving_square_is_not_ghosted():
    truths, boxes, side = _moving_square()
    frames = _noisy(truths, 0.02, 6)
    base = _trail_error(frames, truths, boxes, side)
    errors = {}
    for kind in KINDS:
        filt = make_filter(kind)
        errors[kind] = _trail_error([filt(f) for f in frames], truths, boxes, side)
    assert errors["ema"] > 0.2                                 # the baseline leaves a trail: the test can fail
    assert errors["motion-adaptive"] < base + 0.03, errors
    assert errors["flow"] < base + 0.03, errors
    assert errors["fast-flow"] < base + 0.03, errors


def _subpixel_pan():
    """(truths, noisy frames): a textured scene panning 1.3 px right and 0.6 px down per frame, 160x288, 10 frames."""
    rng = np.random.default_rng(12)
    h, w, n = 160, 288, 10
    scene = cv2.resize(rng.random((h // 12 + 6, w // 12 + 6, 3)).astype(np.float32), (w + 36, h + 36),
                       interpolation=cv2.INTER_CUBIC) * 0.6 + 0.2
    truths = [cv2.warpAffine(scene, np.float32([[1, 0, 1.3 * t], [0, 1, 0.6 * t]]), (w, h), flags=cv2.INTER_LINEAR)
              for t in range(n)]
    return truths, _noisy(truths, 0.05, 13)


def test_fast_flow_follows_a_subpixel_pan_across_tiles():
    """A textured scene panning 1.3 px right and 0.6 px down per frame over 3x2 tiles of fast-flow (edge tiles read
    past the frame): each tile's translation must line the history up with the frame, to a fraction of a px, or the
    texture blurs or the history is rejected and the noise stays (with the tiles' flow sign flipped, or whole-px
    shifts only, the gain stayed far under the bound when tried)."""
    truths, frames = _subpixel_pan()
    filt = make_filter("fast-flow")
    outs = [filt(f) for f in frames]
    gain = np.mean([psnr(t, o) - psnr(t, f) for t, o, f in zip(truths[4:], outs[4:], frames[4:])])
    assert gain > 4.0, gain


def _u8(frames):
    return [np.rint(np.clip(f, 0, 1) * 255).astype(np.uint8) for f in frames]


def test_fast_flow_on_8bit_frames_keeps_its_gains():
    """darkc video hands fast-flow the 8-bit frames the writer encodes: it must give 8-bit frames back, with the same
    denoising on a sub-pixel pan and on a static scene as on float frames (an 8-bit history that stops following
    small changes, or decisions taken on 0-255 values, would lose it)."""
    truths, frames = _subpixel_pan()
    gains = {}
    for name, given in (("float", frames), ("uint8", _u8(frames))):
        filt = make_filter("fast-flow")
        outs = [filt(f) for f in given]
        assert all(o.dtype == given[0].dtype for o in outs)
        outs = [o.astype(np.float32) / 255 if o.dtype == np.uint8 else o for o in outs]
        gains[name] = np.mean([psnr(t, o) - psnr(t, f) for t, o, f in zip(truths[4:], outs[4:], frames[4:])])
    # 8-bit frames are downscaled by area averaging (a box: 1.7M guest instructions per 1080p frame on aarch64),
    # float ones by a Gaussian pyramid step (14.6M), which aliases this sub-pixel pan's texture less: 6.3 vs 6.9 dB
    # since the moved history is judged downscaled from full resolution (with area averaging for both: 6.3 and
    # 6.3). Decisions on 0-255 values or an 8-bit history that stops following small changes lose far more.
    assert gains["uint8"] > 4.0 and abs(gains["uint8"] - gains["float"]) < 0.7, gains
    static = _noisy([truths[0]] * 8, 0.03, 3)
    filt = make_filter("fast-flow")
    outs = [filt(f).astype(np.float32) / 255 for f in _u8(static)]
    assert _mean_flicker(outs, [truths[0]] * 8) < 0.5 * _mean_flicker(static, [truths[0]] * 8)
    with pytest.raises(DarkcError, match="float32 frame follows uint8"):
        filt(static[0])


def test_opencv_blend_linear_divides_by_the_weight_sum():
    """fast-flow's full-resolution blend relies on it (weights 1 and k / (1 - k)); an OpenCV that stops doing so
    must fail here rather than brighten every filtered video."""
    a, b = np.full((4, 6, 3), 100, np.uint8), np.full((4, 6, 3), 200, np.uint8)
    ones, three = np.ones((4, 6), np.float32), np.full((4, 6), 3.0, np.float32)
    assert (cv2.blendLinear(a, b, ones, three) == 175).all()
    assert np.allclose(cv2.blendLinear(a.astype(np.float32), b.astype(np.float32), ones, three), 175.0, atol=1e-3)


def test_scene_cut_does_not_ghost():
    """After many frames of one scene, the first frame of another must not carry the old one (the default filter
    detects the cut and restarts); ema, which cannot tell, shows the old scene: the test can fail."""
    rng = np.random.default_rng(9)
    scene_a = cv2.GaussianBlur(rng.random((64, 96, 3)).astype(np.float32), (0, 0), 3) * 0.5 + 0.1
    scene_b = np.ascontiguousarray(scene_a[::-1, ::-1] * 0.6 + 0.35)
    truths = [scene_a] * 8 + [scene_b] * 3
    frames = _noisy(truths, 0.03, 10)
    errors = {}
    for kind in ("ema", DEFAULT_TEMPORAL):
        filt = make_filter(kind)
        outs = [filt(f) for f in frames]
        errors[kind] = [float(np.abs(o - t).mean()) for o, t in zip(outs[8:], truths[8:])]
    per_frame = float(np.abs(frames[8] - truths[8]).mean())
    assert errors["ema"][0] > per_frame + 0.05, errors
    assert errors[DEFAULT_TEMPORAL][0] <= per_frame + 1e-6, errors       # the cut frame passes through
    assert errors[DEFAULT_TEMPORAL][2] < per_frame, errors                 # and smoothing resumes after it


def test_filter_instructions_are_counted_under_qemu_and_grow_with_the_frame(arm_setup, tmp_path):
    """The ARM cost of the filter: its own numpy/OpenCV code counted per frame in the aarch64 userland."""
    from darkc.video.cost import as_filtered, count_filter, count_filter_calls, stand_in_frames

    counts = {}
    for h, w in ((64, 96), (192, 288)):
        npy = tmp_path / f"f{h}.npy"
        np.save(npy, as_filtered("fast-flow", stand_in_frames(h, w, n=3)))
        counts[h] = count_filter("fast-flow", npy, "cortex-a76")
        assert len(counts[h]["per_frame"]) == 2 and min(counts[h]["per_frame"]) > 1e5
    # 9x the pixels; fast-flow has a fixed part per frame (its Python, per tile and per step), so not 9x the count
    assert counts[192]["instructions"] > 3 * counts[64]["instructions"], counts
    # no one-time cost (a library loading on first use) lands in the first counted frame
    assert max(counts[64]["per_frame"]) < 1.5 * min(counts[64]["per_frame"]), counts
    # per OpenCV call: the full-resolution calls of fast-flow are there once per tile or frame, and the calls'
    # windows hold part of the frame's count, not more
    calls = count_filter_calls("fast-flow", tmp_path / "f192.npy", "cortex-a76")
    # 8-bit frames: the full-resolution history moved and blended by one Numba pass each, the low-res blend by
    # OpenCV; the kernels' compilation is not in any frame (the per-frame bound above)
    assert calls["move_tiles (numba)"]["calls"] == 1 and calls["blend_rows (numba)"]["calls"] == 1, calls
    assert "getRectSubPix" not in calls and calls["blendLinear"]["calls"] == 1, calls
    assert calls["DIS flow"]["calls"] == 1 and calls["DIS flow"]["instructions"] > 1e4, calls
    inside = sum(c["instructions"] for c in calls.values())
    assert 0.3 * counts[192]["instructions"] < inside < counts[192]["instructions"], (inside, counts[192])


def test_filters_check_their_input():
    with raises_naming("--strength 1.0", "[0, 1)"):
        make_filter("ema", 1.0)
    with raises_naming("--temporal", "median", "flow"):
        make_filter("median")
    filt = make_filter("motion-adaptive")
    filt(np.zeros((8, 8, 3), np.float32))
    with raises_naming("same size"):
        filt(np.zeros((8, 10, 3), np.float32))


@pytest.mark.parametrize("channels", [4, 9])
def test_filters_take_packed_raw(channels):
    rng = np.random.default_rng(7)
    for kind in KINDS:
        filt = make_filter(kind)
        for _ in range(3):
            y = filt(rng.random((32, 48, channels)).astype(np.float32))
        assert y.shape == (32, 48, channels) and y.dtype == np.float32 and np.isfinite(y).all()


# --- writer -----------------------------------------------------------------------------------------------

def test_video_writer_frame_count_and_size(tmp_path):
    rng = np.random.default_rng(8)
    mp4, png = tmp_path / "v" / "out.mp4", tmp_path / "frames"
    with VideoWriter(mp4, png, fps=24) as w:
        for i in range(7):
            w.write(rng.random((48, 80, 3)).astype(np.float32), index=i)
    info = probe_video(mp4)
    assert (info["frames"], info["width"], info["height"], info["codec"]) == (7, 80, 48, "h264")
    assert info["fps"] == pytest.approx(24)
    assert sorted(p.name for p in png.iterdir()) == [f"{i:05d}.png" for i in range(7)]
    assert cv2.imread(str(png / "00003.png")).shape == (48, 80, 3)


def test_video_writer_leaves_nothing_on_failure(tmp_path):
    mp4 = tmp_path / "out.mp4"
    with pytest.raises(DarkcError, match="same size"):
        with VideoWriter(mp4, None, fps=30) as w:
            w.write(np.zeros((16, 16, 3), np.float32))
            w.write(np.zeros((16, 18, 3), np.float32))
    assert list(tmp_path.iterdir()) == []
    with raises_naming("odd.mp4", "even"):
        with VideoWriter(tmp_path / "odd.mp4", None, fps=30) as w:
            w.write(np.zeros((15, 16, 3), np.float32))
    assert list(tmp_path.iterdir()) == []


# --- the video stage --------------------------------------------------------------------------------------

def test_enhance_clip_writes_video_and_metrics(tmp_path, clip, tiny_model):
    out, metrics = tmp_path / "o.mp4", tmp_path / "m.json"
    rep = enhance_video(clip, out, model=tiny_model, temporal="flow", metrics=metrics, png=tmp_path / "png",
                        threads=1, progress=False)
    info = probe_video(out)
    assert (info["frames"], info["width"], info["height"]) == (5, 96, 64)
    assert len(list((tmp_path / "png").glob("*.png"))) == 5
    data = json.loads(metrics.read_text())
    for key in ("psnr", "ssim", "flicker", "warp_error", "fps"):
        assert isinstance(data[key], float) and np.isfinite(data[key]), key
    assert data["frames"] == 5 and data["skipped"] == [] and "true flow" in data["flow_for_metrics"]
    assert len(data["per_frame"]["psnr"]) == 5 and len(data["per_frame"]["warp_error"]) == 4
    assert rep["timing_ms_per_frame"]["network"] > 0 and rep["filter_over_network"] > 0


@pytest.mark.parametrize("domain", ["raw", "both"])
def test_raw_domain_filtering_runs(tmp_path, clip, tiny_model, domain):
    rep = enhance_video(clip, tmp_path / "frames", model=tiny_model, temporal="motion-adaptive", domain=domain,
                        threads=1, progress=False)
    assert rep["frames"] == 5 and len(list((tmp_path / "frames").glob("*.png"))) == 5
    assert rep["timing_ms_per_frame"]["raw_filter"] > 0


def _raw_folder(folder: Path, n=4, shape=(64, 96), cfa="bayer") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        dark_dng(folder / f"f{i + 1}.dng", shape, cfa, seed=i)
    return folder


def test_raw_folder_in_natural_order_needs_a_ratio(tmp_path, tiny_model):
    src = _raw_folder(tmp_path / "raw", n=11)
    assert [f.path.name for f in open_sequence(src).frames][:3] == ["f1.dng", "f2.dng", "f3.dng"]
    with raises_naming(str(src), "--ratio"):
        enhance_video(src, tmp_path / "o.mp4", model=tiny_model, progress=False)
    rep = enhance_video(src, tmp_path / "o.mp4", model=tiny_model, ratio=100, temporal="ema", progress=False,
                        metrics=tmp_path / "m.json")
    assert probe_video(tmp_path / "o.mp4")["frames"] == 11 and rep["psnr"] is None
    assert json.loads((tmp_path / "m.json").read_text())["fps"] > 0


def test_unreadable_frame_in_the_middle_is_an_error_or_skipped_on_request(tmp_path, tiny_model, capsys):
    src = _raw_folder(tmp_path / "raw", n=5)
    (src / "f3.dng").write_bytes(b"II*\x00 truncated")
    out = tmp_path / "o.mp4"
    with raises_naming("frame 3 of 5", "f3.dng", "--skip-bad"):
        enhance_video(src, out, model=tiny_model, ratio=100, progress=False)
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["raw"]
    rep = enhance_video(src, out, model=tiny_model, ratio=100, skip_bad=True, progress=False)
    assert rep["frames"] == 4 and [s["index"] for s in rep["skipped"]] == [2]
    assert probe_video(out)["frames"] == 4
    assert "warning: skipping frame 3 of 5" in capsys.readouterr().err


def test_mixed_sizes_and_cfas_are_errors(tmp_path, tiny_model):
    src = _raw_folder(tmp_path / "sizes", n=3)
    dark_dng(src / "f2.dng", (64, 100))
    with raises_naming("frame 2 of 3", "100x64", "96x64", "same size and CFA") as err:
        enhance_video(src, tmp_path / "a.mp4", model=tiny_model, ratio=100, progress=False)
    assert "\n" not in str(err.value)                                       # one line, as the CLI prints it
    src = _raw_folder(tmp_path / "cfas", n=3, shape=(96, 96))
    dark_dng(src / "f3.dng", (96, 96), cfa="xtrans")
    with raises_naming("frame 3 of 3", "X-Trans", "Bayer") as err:
        enhance_video(src, tmp_path / "b.mp4", model=tiny_model, ratio=100, progress=False)
    assert "\n" not in str(err.value)                                       # one line, as the CLI prints it
    assert not (tmp_path / "a.mp4").exists() and not (tmp_path / "b.mp4").exists()


def test_bad_inputs_and_options(tmp_path, clip, tiny_model):
    (tmp_path / "empty").mkdir()
    with raises_naming("no raw frames", "empty"):
        enhance_video(tmp_path / "empty", tmp_path / "o.mp4", model=tiny_model, progress=False)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("x")
    with raises_naming("no raw frames", "1 other entries"):
        enhance_video(tmp_path / "notes", tmp_path / "o.mp4", model=tiny_model, progress=False)
    with raises_naming("missing", "does not exist"):
        enhance_video(tmp_path / "missing", tmp_path / "o.mp4", model=tiny_model, progress=False)
    with raises_naming("o.avi", ".mp4"):
        enhance_video(clip, tmp_path / "o.avi", model=tiny_model, progress=False)
    with raises_naming("--domain", "output"):
        enhance_video(clip, tmp_path / "o.mp4", model=tiny_model, domain="input", progress=False)
    with raises_naming("--metrics", ".json"):
        enhance_video(clip, tmp_path / "o.mp4", model=tiny_model, metrics=tmp_path / "m.txt", progress=False)
    spec = {"arch": "sid-unet", "cfa": "xtrans", "widths": [4] * 5}
    xt = save_checkpoint(build_model(spec), spec, tmp_path / "xt")
    with raises_naming("9-channel X-Trans", "Bayer"):
        enhance_video(clip, tmp_path / "o.mp4", model=xt, progress=False)
    assert not (tmp_path / "o.mp4").exists()


def _ordinary_video(tmp_path: Path, frames=6) -> tuple[Path, Path]:
    """A small sRGB video, as an MP4 and as a PNG folder: blurred noise panning 1 px per frame."""
    rng = np.random.default_rng(11)
    base = cv2.GaussianBlur(rng.random((64, 96, 3)).astype(np.float32), (0, 0), 2) * 0.8 + 0.1
    with VideoWriter(tmp_path / "src.mp4", tmp_path / "src_png", fps=25) as w:
        for t in range(frames):
            w.write(np.roll(base, t, axis=1), index=t)
    return tmp_path / "src.mp4", tmp_path / "src_png"


def test_ordinary_video_is_unprocessed_to_dark_raw_and_scored_without_reference(tmp_path, tiny_model):
    mp4, pngs = _ordinary_video(tmp_path)
    for src in (mp4, pngs):
        out = tmp_path / f"out_{src.name}.mp4"
        rep = enhance_video(src, out, model=tiny_model, threads=1, progress=False, metrics=tmp_path / "m.json")
        assert probe_video(out)["frames"] == 6 and (rep["width"], rep["height"]) == (96, 64)
        assert rep["input_kind"].startswith("srgb") and "Brooks" in rep["simulation"] and "1/100" in rep["simulation"]
        assert rep["psnr"] is None and np.isfinite(rep["warp_error"]) and np.isfinite(rep["flicker"])
        assert len(rep["per_frame"]["warp_error"]) == 5 and "estimated on the output" in rep["flow_for_metrics"]


def test_darkener_gives_one_ratio_less_light_with_fresh_noise():
    rng = np.random.default_rng(12)
    srgb = cv2.GaussianBlur(rng.random((60, 90, 3)).astype(np.float32), (0, 0), 3) * 0.6 + 0.2
    bright = Darkener("bayer", ratio=1.0, seed=3)(srgb, 0, "x")
    dark = Darkener("bayer", ratio=100.0, seed=3)(srgb, 0, "x")
    assert bright.mosaic.shape == dark.mosaic.shape == (60, 90) and dark.cfa == "bayer"
    assert bright.mosaic.mean() / dark.mosaic.mean() == pytest.approx(100, rel=0.1)
    again = Darkener("bayer", ratio=100.0, seed=3)(srgb, 1, "x")           # the next frame: new noise, same camera
    assert np.abs(again.mosaic - dark.mosaic).mean() > 0 and again.wb == dark.wb
    assert Darkener("xtrans", ratio=100.0)(srgb, 0, "x").mosaic.shape == (60, 90)


def test_no_reference_score_skips_a_scene_cut():
    photos = builtin_photos("val")
    a, b = (cv2.resize(photos[i].load(), (144, 96), interpolation=cv2.INTER_AREA).astype(np.float32) for i in (0, 3))
    score = NoRefScore()
    for frame in (a, a, b, b):
        score.add(frame)
    s = score.summary()
    assert s["per_frame"]["warp_error"][1] is None and s["pairs_taken_for_cuts"] == 1
    assert s["flicker"] == pytest.approx(0, abs=1e-6) and s["warp_error"] < 1e-4


def test_unreadable_video_file_is_a_one_line_error(tmp_path, tiny_model):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00" * 64)
    with raises_naming("broken.mp4", "ffmpeg") as err:
        enhance_video(bad, tmp_path / "o.mp4", model=tiny_model, progress=False)
    assert "\n" not in str(err.value) and not (tmp_path / "o.mp4").exists()
    with raises_naming("notes.txt", "video file"):
        enhance_video(tmp_path / "notes.txt", tmp_path / "o.mp4", model=tiny_model, progress=False) \
            if (tmp_path / "notes.txt").write_text("x") else None


def test_cli_synth_video_and_video(tmp_path, tiny_model):
    clip = tmp_path / "clip"
    assert cli_main(["synth", "--video", "-o", str(clip), "--count", "3", "--size", "96", "--seed", "2",
                     "--motion", "pan"]) == 0
    assert json.loads((clip / "clip.json").read_text())["motion"] == "pan"
    assert cli_main(["video", str(clip), "-o", str(tmp_path / "v.mp4"), "--model", str(tiny_model),
                     "--temporal", "motion-adaptive", "--metrics", str(tmp_path / "m.json"), "--threads", "1"]) == 0
    assert probe_video(tmp_path / "v.mp4")["frames"] == 3
    assert set(json.loads((tmp_path / "m.json").read_text())) >= {"psnr", "ssim", "flicker", "warp_error", "fps"}
    assert cli_main(["video", str(tmp_path / "nowhere"), "-o", str(tmp_path / "w.mp4")]) == 1


def test_benchmark_script_on_a_tiny_case(tmp_path, tiny_model):
    out = tmp_path / "res"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    real, _ = _ordinary_video(tmp_path, frames=5)
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "video_temporal.py"), "--model", str(tiny_model),
                        "--frames", "8", "--size", "96", "--clips", "tripod,pan-zoom-cut", "--kinds", "ema,fast-flow",
                        "--cost-size", "96x64", "--cost-runs", "1", "--arm-kinds", "", "--out", str(out),
                        "--real", str(real),
                        "--real-frames", "0,5"],
                       capture_output=True, text=True, timeout=900, env=env)
    assert r.returncode == 0, r.stderr
    data = json.loads((out / "video_temporal.json").read_text())
    assert list(data["clips"]) == ["tripod", "pan-zoom-cut"] and data["clips"]["pan-zoom-cut"]["cuts"] == [6]
    assert list(data["clips"]["tripod"]["rows"]) == ["per-frame", "ema", "fast-flow"]
    row = data["clips"]["pan-zoom-cut"]["rows"]["fast-flow"]
    assert row["warp_error"] > 0 and row["filter_ms"] > 0 and row["fps"] > 0 and np.isfinite(row["psnr_revealed"])
    assert data["cost"]["host"]["fast-flow"]["network_ms"] > 0 and data["cost"]["arm"] == {}
    assert data["summary"]["fast-flow"]["cost_over_student"] > 0
    for png in ("video_temporal_tripod.png", "video_temporal_pan-zoom-cut.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    assert "| **fast-flow** (default) |" in (out / "video_temporal.md").read_text()
    assert len(data["real"]["runs"]["fast-flow"]["per_frame"]["warp_error"]) == 4
    assert (out / "video_real.png").read_bytes()[:4] == b"\x89PNG"

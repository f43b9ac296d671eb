"""--srgb-anchor: an sRGB model's local colour put back to the file's own render (darkc.inference.anchor_srgb),
its brightness and detail kept; off by default, so SID-kind figures keep the paper's protocol."""
import numpy as np
import pytest

from darkc.data.raw import render_raw
from darkc.data.sid import load_pairs
from darkc.inference import Runner, _bt709_to_linear, _linear_to_bt709, run_raw_file
from darkc.metrics import psnr


def _oracle(target_hwc: np.ndarray, gains, brightness: float = 1.0) -> Runner:
    """An sRGB 'model' that returns the target with a colour cast (linear gains per channel) and a brightness."""
    lin = _bt709_to_linear(target_hwc.transpose(2, 0, 1)) * np.asarray(gains, np.float32)[:, None, None]
    shown = _linear_to_bt709(lin * brightness)

    class Cast(Runner):
        def __call__(self, x):
            h, w = x.shape[2] * 2, x.shape[3] * 2
            out = np.zeros((1, 3, h, w), np.float32)
            out[0, :, : min(h, shown.shape[1]), : min(w, shown.shape[2])] = shown[:, :h, :w]
            return out

    return Cast("cast", "bayer", output="srgb", noise_input="none")


def _chroma(img_chw, mask):
    lin = _bt709_to_linear(img_chw)
    return lin[:, mask].mean(axis=1) / lin[:, mask].mean()


def test_a_colour_cast_is_taken_back_to_the_files_own_colour(synth_bayer):
    pair = load_pairs(synth_bayer.list_file)[0]
    target = render_raw(pair.long)
    runner = _oracle(target, (1.35, 1.0, 0.75))
    cast, _ = run_raw_file(runner, pair.short, pair.ratio, progress=False)
    fixed, _ = run_raw_file(runner, pair.short, pair.ratio, progress=False, srgb_anchor=True)
    t = target.transpose(2, 0, 1)
    mask = (t.mean(axis=0) > 0.1) & (t.mean(axis=0) < 0.9)
    err_cast = np.abs(_chroma(cast, mask) - _chroma(t, mask)).max()
    err_fixed = np.abs(_chroma(fixed, mask) - _chroma(t, mask)).max()
    assert err_fixed < 0.25 * err_cast
    assert psnr(fixed.transpose(1, 2, 0), target) > psnr(cast.transpose(1, 2, 0), target) + 3


def test_the_models_brightness_and_a_right_colour_are_kept(synth_bayer):
    pair = load_pairs(synth_bayer.list_file)[0]
    target = render_raw(pair.long)
    t = target.transpose(2, 0, 1)
    right, _ = run_raw_file(_oracle(target, (1, 1, 1)), pair.short, pair.ratio, progress=False, srgb_anchor=True)
    assert psnr(right.transpose(1, 2, 0), target) > 30              # a right output is left nearly alone
    dark = _oracle(target, (1, 1, 1), brightness=0.7)
    out, _ = run_raw_file(dark, pair.short, pair.ratio, progress=False, srgb_anchor=True)
    lin_out, lin_t = _bt709_to_linear(out), _bt709_to_linear(t)
    assert lin_out.mean() / lin_t.mean() == pytest.approx(0.7, rel=0.05)   # chroma only: brightness is the model's
    plain, _ = run_raw_file(dark, pair.short, pair.ratio, progress=False)
    assert not np.array_equal(plain, out)


def test_eval_and_enhance_take_the_option(synth_bayer, tmp_path):
    from darkc.enhance import enhance_file
    from darkc.evaluate import evaluate

    pair = load_pairs(synth_bayer.list_file)[0]
    target = render_raw(pair.long)
    runner = _oracle(target, (1.35, 1.0, 0.75))
    off = evaluate(runner, str(synth_bayer.list_file), progress=False, limit=1)
    on = evaluate(runner, str(synth_bayer.list_file), progress=False, limit=1, srgb_anchor=True)
    assert on["srgb_anchor"] and not off["srgb_anchor"] and on["psnr"] > off["psnr"] + 3
    rep = enhance_file(pair.short, tmp_path / "a.png", model=runner, srgb_anchor=True, progress=False)
    assert rep["srgb_anchor"] is True


def test_the_chunked_anchor_equals_the_whole_frame_formula():
    """chroma_to works in row chunks through 16-bit tables; across chunk borders (rows not a multiple of the chunk
    or of the 4x downscale) it must give the whole-frame result: the local mean ratios of the reference."""
    from darkc.inference import _CHUNK_ROWS, _smooth, chroma_to

    rng = np.random.default_rng(3)
    h, w = _CHUNK_ROWS * 2 + 37, 301
    y, x = np.mgrid[0:h, 0:w] / 90.0
    base = np.stack([0.3 + 0.2 * np.sin(x + k) * np.cos(y - 2 * k) for k in range(3)]).astype(np.float32)
    out = np.clip(base + rng.normal(0, 0.02, base.shape), 0, 1).astype(np.float32)
    ref = np.clip(base[[2, 0, 1]], 0, 1)                                  # other colours at the same places
    lin_o, lin_r = _bt709_to_linear(out), _bt709_to_linear(ref)
    m_o, m_r = _smooth(lin_o, 32), _smooth(lin_r, 32)
    gain = (m_r + 1e-4) / (m_o + 1e-4) * ((m_o.mean(0) + 1e-4) / (m_r.mean(0) + 1e-4))[None]
    want = _linear_to_bt709(lin_o * gain)
    got = chroma_to(out.copy(), ref, 32)
    assert np.abs(got - want).max() < 2e-3 and np.abs(got - want).mean() < 2e-4

"""The two measures of issue 16's failures: a colour cast (mean CIEDE2000) and a period-2 checkerboard
(coherent 2x2 Hadamard amplitude), as functions and in ``darkc eval``'s reports."""
import json

import numpy as np
import pytest
import torch

from darkc.cli import main
from darkc.data import load_pairs, read_raw, render_raw
from darkc.data.raw import amplify
from darkc.evaluate import evaluate, format_result
from darkc.metrics import checkerboard, deltae
from darkc.models import build_model, save_checkpoint


def _smooth(h=96, w=128):
    yy, xx = np.mgrid[0:h, 0:w] / w
    return np.stack([0.2 + 0.6 * xx, 0.3 + 0.5 * yy, 0.5 + 0.2 * np.sin(6 * xx) * yy], axis=-1)


@pytest.mark.parametrize("component,pattern", [
    ("d", lambda y, x: (-1.0) ** (y + x)),
    ("h", lambda y, x: (-1.0) ** x + 0 * y),
    ("v", lambda y, x: (-1.0) ** y + 0 * x),
])
def test_known_added_pattern_reads_its_amplitude(component, pattern):
    img = _smooth()
    yy, xx = np.mgrid[0:img.shape[0], 0:img.shape[1]]
    amp = 3.0 / 255.0
    res = checkerboard(img + amp * pattern(yy, xx)[..., None])
    assert res[component] == pytest.approx(3.0, abs=1e-3)     # the curved channel leaks ~1e-4
    assert res["checker"] == pytest.approx(3.0, abs=1e-3)
    assert max(v for k, v in res.items() if k not in (component, "checker")) < 0.01


def test_gradients_and_noise_are_not_a_checkerboard():
    img = _smooth()
    assert checkerboard(img)["checker"] < 0.01          # ramps cancel (an unshifted block mean reads 0.6 x 255 / 128 / 2)
    rng = np.random.default_rng(0)
    noisy = img + rng.normal(0, 3 / 255, img.shape)
    # noise floor ~0.1 x sigma; a real 1/255 checkerboard on the same noise stands out
    assert checkerboard(noisy)["checker"] < 0.45
    yy, xx = np.mgrid[0:img.shape[0], 0:img.shape[1]]
    assert checkerboard(noisy + (-1.0) ** (yy + xx)[..., None] / 255)["d"] == pytest.approx(1.0, abs=0.45)


def test_ciede2000_is_computed_on_lab_from_srgb():
    black, grey, white = (np.full((8, 8, 3), v) for v in (0.0, 0.5, 1.0))
    assert deltae(black, white) == pytest.approx(100.0, abs=1e-4)
    # sRGB 0.5 -> L* 53.39 (gamma undone); CIEDE2000's lightness weight S_L = 1.343 at mean L* 26.7
    assert deltae(black, grey) == pytest.approx(39.744, abs=0.01)
    assert deltae(grey, grey) == 0.0
    cast = grey * np.array([1.0, 1.1, 1.0])             # a green cast
    assert deltae(grey, cast) > 3 * deltae(grey, grey + 0.01)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    torch.manual_seed(0)
    spec = {"arch": "sid-unet", "cfa": "bayer", "widths": [8, 8, 8, 8, 8]}
    d = tmp_path_factory.mktemp("tiny")
    save_checkpoint(build_model(spec), spec, d)
    return d


def test_eval_reports_deltae_and_checker_per_ratio_and_for_baselines(synth_bayer, tiny_model, tmp_path):
    out = tmp_path / "r"
    assert main(["eval", "--model", str(tiny_model), "--data", str(synth_bayer.list_file), "--baselines",
                 "--format", "json", "-o", str(out)]) == 0
    res = json.loads((out / "eval_report.json").read_text())
    assert {"psnr", "ssim", "deltae", "checker"} <= set(res)
    for r in res["per_ratio"].values():
        assert {"psnr", "ssim", "deltae", "checker"} <= set(r)
    for base in res["baselines"].values():
        assert {"deltae", "checker"} <= set(base) and "deltae" in base["per_ratio"]["x100"]
    # the numbers are the metric functions' on the same output
    from darkc.models import load_checkpoint

    model, _ = load_checkpoint(tiny_model)
    p = load_pairs(synth_bayer.list_file)[0]
    with torch.no_grad():
        y = model(torch.from_numpy(amplify(read_raw(p.short).packed(), p.ratio))[None]).clamp(0, 1)
    y = y[0].numpy().transpose(1, 2, 0)
    row = res["images"][0]
    assert row["deltae"] == pytest.approx(deltae(y, render_raw(p.long)), abs=1e-3)
    assert row["checker"] == pytest.approx(checkerboard(y)["checker"], abs=1e-3)
    overall = evaluate(str(tiny_model), str(synth_bayer.list_file), progress=False)
    assert overall["deltae"] == pytest.approx(np.mean([r["deltae"] for r in overall["images"]]))
    md, table = format_result(res, "md"), format_result(res, "table")
    assert "CIEDE2000" in md and f"{res['deltae']:.2f}" in md and f"{res['checker']:.2f}" in md
    assert "checker /255" in table

"""darkc eval: metrics equal darkc.metrics on the same outputs, baselines, report formats, CLI."""
import json

import numpy as np
import pytest
import torch

from darkc.cli import main
from darkc.data import load_pairs, read_raw, render_raw
from darkc.data.raw import amplify
from darkc.evaluate import evaluate, format_result, libraw_baseline, nlm_denoise, reference_frames
from darkc.metrics import psnr, ssim
from darkc.models import build_model, load_checkpoint, save_checkpoint


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model({"arch": "sid-unet", "cfa": "bayer", "widths": [8, 8, 8, 8, 8]})
    d = tmp_path_factory.mktemp("tiny")
    save_checkpoint(model, {"arch": "sid-unet", "cfa": "bayer", "widths": [8, 8, 8, 8, 8]}, d)
    return d


def test_eval_equals_direct_metrics(synth_bayer, tiny_model):
    res = evaluate(str(tiny_model), str(synth_bayer.list_file), progress=False)
    model, _ = load_checkpoint(tiny_model)
    model.eval()
    direct = []
    for p in load_pairs(synth_bayer.list_file):
        x = torch.from_numpy(amplify(read_raw(p.short).packed(), p.ratio))[None]
        with torch.no_grad():
            out = model(x).clamp(0, 1)[0].numpy().transpose(1, 2, 0)
        t = render_raw(p.long)
        direct.append((p.ratio, psnr(out, t), ssim(out, t)))
    assert res["n"] == len(direct) == 6
    assert res["psnr"] == pytest.approx(np.mean([d[1] for d in direct]), abs=1e-4)
    assert res["ssim"] == pytest.approx(np.mean([d[2] for d in direct]), abs=1e-4)
    for r in (100, 250, 300):
        assert res["per_ratio"][f"x{r}"]["psnr"] == pytest.approx(
            np.mean([d[1] for d in direct if d[0] == r]), abs=1e-4)
    worst = min(direct, key=lambda d: d[1])
    assert res["worst"]["psnr"] == pytest.approx(worst[1], abs=1e-4)


def test_baselines_are_scored_on_the_same_pairs(synth_bayer):
    res = evaluate(None, str(synth_bayer.list_file), baselines=True, progress=False)
    base = res["baselines"]
    assert set(base) == {"libraw", "libraw+nlm"}
    p = load_pairs(synth_bayer.list_file)[0]
    t = render_raw(p.long)
    a = libraw_baseline(p.short, p.ratio)
    assert a.shape == t.shape
    assert base["libraw"]["images"][0]["psnr"] == pytest.approx(psnr(a, t), abs=1e-6)
    # the denoiser removes noise: better than no denoise on these noisy pairs
    assert base["libraw+nlm"]["psnr"] > base["libraw"]["psnr"]


def test_libraw_baseline_amplifies_in_raw_domain(synth_bayer):
    """At ratio r the amplified short exposure renders close to the long one: means within 20 %
    (not closer: clipping at black rectifies the amplified noise upwards; no amplification would be 100x off)."""
    p = [q for q in load_pairs(synth_bayer.list_file) if q.ratio == 100][0]
    a, t = libraw_baseline(p.short, p.ratio), render_raw(p.long)
    assert np.mean(a) == pytest.approx(np.mean(t), rel=0.2)


def test_nlm_reduces_noise():
    rng = np.random.default_rng(0)
    clean = np.tile(np.linspace(0.2, 0.8, 128, dtype=np.float32)[None, :, None], (96, 1, 3))
    noisy = np.clip(clean + rng.normal(0, 0.08, clean.shape).astype(np.float32), 0, 1)
    assert psnr(nlm_denoise(noisy), clean) > psnr(noisy, clean) + 5


def test_format_result(synth_bayer, tiny_model):
    res = evaluate(str(tiny_model), str(synth_bayer.list_file), baselines=True, progress=False, limit=3)
    data = json.loads(format_result(res, "json"))
    assert {"psnr", "ssim", "per_ratio", "worst", "baselines"} <= set(data)
    md = format_result(res, "md")
    assert md.startswith("| model |") and "baseline libraw+nlm" in md and f"{res['psnr']:.2f}" in md
    table = format_result(res, "table")
    assert "x100 PSNR/SSIM" in table


def test_cli_eval_json(synth_bayer, tiny_model, tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["eval", "--model", str(tiny_model), "--data", str(synth_bayer.dir), "--format", "json",
                 "-o", str(out)]) == 0
    data = json.loads((out / "eval_report.json").read_text())
    assert (out / "eval_report.md").read_text().startswith("# darkc eval")
    assert data["n"] == 6 and set(data["per_ratio"]) == {"x100", "x250", "x300"}


def test_cli_eval_bad_inputs(tmp_path, capsys, tiny_model):
    assert main(["eval", "--model", str(tmp_path / "nope"), "--data", str(tmp_path), "-o", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "nope" in err and len(err.strip().splitlines()) == 1
    assert main(["eval", "--model", str(tiny_model), "--data", str(tmp_path), "-o", str(tmp_path / "o")]) == 1
    assert "no SID list" in capsys.readouterr().err


def test_reference_frames_are_fixed():
    a = reference_frames("bayer", ratios=(100,), limit=1)
    b = reference_frames("bayer", ratios=(100,), limit=1)
    assert len(a) == 1 and np.array_equal(a[0][1], b[0][1]) and np.array_equal(a[0][2], b[0][2])
    assert a[0][1].shape == (4, 256, 384) and a[0][2].shape == (3, 512, 768)


def test_eval_default_teacher_on_xtrans_raw_uses_the_xtrans_teacher(tmp_path, monkeypatch, synth_bayer):
    from darkc.data.profiles import get_profile
    from darkc.data.sources import dead_leaves_images
    from darkc.data.synth import write_dataset
    from darkc.models import pretrained as pretrained_mod

    for name, cfa in (("teacher", "bayer"), ("teacher-xtrans", "xtrans")):
        spec = {"arch": "sid-unet", "cfa": cfa, "widths": [4] * 5}
        save_checkpoint(build_model(spec), spec, tmp_path / "shipped" / name)
    monkeypatch.setattr(pretrained_mod, "PRETRAINED_DIR", tmp_path / "shipped")
    fuji = write_dataset(tmp_path / "fuji", dead_leaves_images(1, (96, 96), "train"), get_profile(None, "xtrans"),
                         seed=1, size=96, progress=False)
    assert evaluate("teacher", str(fuji), progress=False)["model"] == "teacher-xtrans"
    assert evaluate("teacher", str(synth_bayer.list_file), progress=False, limit=1)["model"] == "teacher"

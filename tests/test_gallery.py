"""Hazards of galleries: a panel labelled with another image's or another model's score, a gallery silently
short of pairs, an --images typo that draws nothing useful, a partial PNG left on failure."""
from __future__ import annotations

import json

import numpy as np
import pytest

from darkc.cli import main
from darkc.data.raw import amplify, read_raw, render_raw
from darkc.data.sid import load_pairs
from darkc.evaluate import evaluate, libraw_baseline
from darkc.gallery import detail_centre, make_gallery, pair_id
from darkc.inference import enhance_packed, load_runner
from darkc.metrics import psnr
from helpers import raises_naming, tiny_checkpoint

SPEC = {"arch": "sid-unet", "cfa": "bayer", "widths": [4] * 5}


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("gallery_models")
    return [str(tiny_checkpoint(root / "a", SPEC, seed=0)), str(tiny_checkpoint(root / "b", SPEC, seed=1))]


def test_gallery_picks_best_median_worst_and_labels_each_panel_with_its_own_score(tmp_path, synth_bayer, two_models):
    out = tmp_path / "g.png"
    rep = make_gallery(two_models, out, str(synth_bayer.dir), baselines=True, progress=False)
    assert out.stat().st_size > 10_000 and json.loads(out.with_suffix(".json").read_text())["images"]
    ranking = evaluate(two_models[0], str(synth_bayer.dir), progress=False)
    by_psnr = sorted(ranking["images"], key=lambda r: -r["psnr"])
    ids = [r["id"] for r in rep["images"]]
    assert [r["why"] for r in rep["images"]] == ["best", "median", "worst"]
    assert ids == ["_".join(by_psnr[i]["image"].split("_")[:2]) for i in (0, len(by_psnr) // 2, -1)]
    labels = [p["label"] for p in rep["images"][0]["panels"]]
    assert labels[0].startswith("input x") and labels[1] == "baseline libraw+nlm" and labels[-1].startswith("reference")
    assert labels[2:4] == two_models
    # recompute two panels' PSNR independently: the worst pair, second model and the amplified input
    worst = {pair_id(p): p for p in load_pairs(synth_bayer.dir, "test")}[ids[-1]]
    target = render_raw(worst.long)
    model_b = enhance_packed(load_runner(two_models[1]), amplify(read_raw(worst.short).packed(), worst.ratio),
                             progress=False).transpose(1, 2, 0)
    panels = {p["key"]: p for p in rep["images"][-1]["panels"]}
    assert panels["model1"]["psnr"] == pytest.approx(psnr(model_b, target), abs=1e-6)
    assert panels["input"]["psnr"] == pytest.approx(psnr(libraw_baseline(worst.short, worst.ratio), target), abs=1e-6)
    assert panels["model0"]["psnr"] != pytest.approx(panels["model1"]["psnr"], abs=1e-3)


def test_images_by_id_and_an_absent_id_lists_the_ids(tmp_path, synth_bayer, two_models):
    pairs = load_pairs(synth_bayer.dir, "test")
    want = [pair_id(pairs[3]), pair_id(pairs[0])]
    rep = make_gallery(two_models[:1], tmp_path / "g.png", str(synth_bayer.dir), images=want, progress=False)
    assert [r["id"] for r in rep["images"]] == want and rep["ranked_by"] is None
    with raises_naming("--images 99999_00", "no such pair", pair_id(pairs[0]), pair_id(pairs[-1])):
        make_gallery(two_models[:1], tmp_path / "h.png", str(synth_bayer.dir), images=["99999_00"], progress=False)
    assert not (tmp_path / "h.png").exists() and not (tmp_path / "h.json").exists()


def test_set_smaller_than_asked_uses_what_there_is_and_says_so(tmp_path, synth_bayer, two_models, capsys):
    rep = make_gallery(two_models[:1], tmp_path / "g.png", str(synth_bayer.dir), count=10, progress=False)
    assert len(rep["images"]) == len(load_pairs(synth_bayer.dir, "test")) == 6
    assert "fewer than the 10 asked for" in capsys.readouterr().err


def test_cli_gallery_and_bad_options(tmp_path, synth_bayer, two_models, capsys):
    out = tmp_path / "g.png"
    assert main(["eval", "--model", two_models[0], "--model", two_models[1], "--data", str(synth_bayer.dir),
                 "--gallery", str(out)]) == 0
    assert out.is_file() and "3 pairs x 4 panels" in capsys.readouterr().out
    assert main(["eval", "--model", two_models[0], "--model", two_models[1], "--data", str(synth_bayer.dir)]) == 1
    assert "go with --gallery" in capsys.readouterr().err
    assert main(["eval", "--model", two_models[0], "--data", str(synth_bayer.dir), "--gallery",
                 str(tmp_path / "g.jpg")]) == 1
    assert "must end in .png" in capsys.readouterr().err and not (tmp_path / "g.jpg").exists()


def test_detail_region_is_where_the_texture_is():
    img = np.full((200, 300, 3), 0.5, np.float32)
    img[120:160, 40:80] = np.random.default_rng(0).random((40, 40, 3))
    y, x = detail_centre(img, size=32)
    assert 120 <= y < 160 and 40 <= x < 80


def test_a_raw_output_model_is_rendered_in_the_gallery_as_eval_scores_it(tmp_path, synth_bayer):
    """A raw-output model's panel is its clean raw rendered with the file's own colour (and anchored), as `darkc
    eval` and `enhance` run it: the panel's PSNR is eval's for that image (shown as sRGB, the packed raw would not
    even have the image's shape)."""
    raw_model = str(tiny_checkpoint(tmp_path / "raw", {**SPEC, "output": "raw"}, seed=2))
    rep = make_gallery([raw_model], tmp_path / "g.png", str(synth_bayer.dir), progress=False)
    scores = {"_".join(r["image"].split("_")[:2]): r["psnr"] for r in evaluate(raw_model, str(synth_bayer.dir),
                                                                             progress=False)["images"]}
    for row in rep["images"]:
        panel = {p["key"]: p for p in row["panels"]}["model0"]
        assert panel["psnr"] == pytest.approx(scores[row["id"]], abs=1e-6), row["id"]


def test_srgb_anchor_reaches_the_gallery_panels_and_its_ranking(tmp_path, synth_bayer, two_models):
    """--gallery --srgb-anchor shows sRGB models as darkc enhance runs them: each panel's score is its anchored
    output's, which differs from the plain one."""
    from darkc.inference import run_raw_file

    rep = make_gallery(two_models[:1], tmp_path / "a.png", str(synth_bayer.dir), images=["10001_00"], progress=False,
                       srgb_anchor=True)
    pair = {pair_id(p): p for p in load_pairs(synth_bayer.dir, "test")}["10001_00"]
    target = render_raw(pair.long)
    runner = load_runner(two_models[0])
    anchored = run_raw_file(runner, pair.short, pair.ratio, progress=False, srgb_anchor=True)[0].transpose(1, 2, 0)
    plain = run_raw_file(runner, pair.short, pair.ratio, progress=False)[0].transpose(1, 2, 0)
    panel = {p["key"]: p for p in rep["images"][0]["panels"]}["model0"]
    assert panel["psnr"] == pytest.approx(psnr(anchored, target), abs=1e-6)
    assert panel["psnr"] != pytest.approx(psnr(plain, target), abs=1e-3)

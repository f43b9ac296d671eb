"""Tests for darkc/pipeline.py: a tiny recipe end to end, skipping finished stages, re-running from a deleted
stage, --from, and recipe errors reported with their line before any work starts."""
from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest
import torch

from darkc.cli import main
from darkc.errors import DarkcError
from darkc.models import build_model, load_checkpoint, normalize_spec, save_checkpoint
from darkc.pipeline import load_recipe, run_pipeline


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    torch.manual_seed(0)
    spec = normalize_spec({"arch": "sid-unet", "cfa": "bayer", "widths": [16, 16, 16, 16, 16]})
    return save_checkpoint(build_model(spec), spec, tmp_path_factory.mktemp("t") / "teacher")


def recipe(tmp_path, teacher, extra: str = "", bench: bool = True) -> str:
    text = f'''
    [pipeline]
    teacher = "{teacher}"
    threads = 1

    [prune]
    ratio = 0.5
    round_to = 4

    [distill]
    init = "pruned"
    kd = "output,features"
    steps = 3
    batch_size = 1
    patch = 64
    val_every = 0
    ckpt_every = 2

    [quantize]
    targets = ["onnx"]
    input_size = "64x64"
    samples = 2

    [export]
    targets = ["onnx"]
    '''
    if bench:
        text += '''
    [bench]
    devices = ["host"]
    size = "64x64"
    runs = 2
    '''
    text += '''
    [eval]
    limit = 1
    models = ["teacher", "student", "onnx-int8"]
    ''' + extra
    path = tmp_path / "recipe.toml"
    path.write_text(textwrap.dedent(text))
    return str(path)


def stage_dirs(out):
    return sorted(p.name for p in out.iterdir() if p.is_dir())


@pytest.mark.usefixtures("reference_set")
def test_tiny_recipe_end_to_end_then_skip_then_rerun_from_deleted_stage(tmp_path, teacher):
    path, out = recipe(tmp_path, teacher), tmp_path / "run"
    res = run_pipeline(path, out, progress=False)
    stages = list(res["stages"])
    assert set(res["stages"].values()) == {"ran"}
    assert stages[:4] == ["prune", "distill", "quantize", "export"] and stages[-1] == "eval"
    for d in stage_dirs(out):
        m = json.loads((out / d / "manifest.json").read_text())
        assert m["outputs"] and m["versions"]["torch"] and m["command"].startswith("darkc pipeline")
    student, spec = load_checkpoint(out / "02-distill")
    assert spec["provenance"]["stage"] == "distill" and spec["widths"] == [8, 8, 8, 8, 8]
    assert (out / "03-quantize" / "model.onnx").is_file() and (out / "04-export" / "model.onnx").is_file()
    assert (out / "03-quantize" / "quantize_report.json").is_file() and (out / "01-prune" / "prune_report.md").is_file()
    report = json.loads((out / "report.json").read_text())
    assert {r["model"] for r in report["rows"] if "psnr" in r} == {"teacher", "student", "onnx-int8"}
    assert (out / "report.md").is_file() and (out / "report.png").stat().st_size > 1000
    # each row says which runtime ran it and the frame size is the one benched (bench.json), not the recipe's
    md = (out / "report.md").read_text()
    rows = {r["model"]: r for r in report["rows"]}
    assert rows["onnx-int8"]["runtime"] == "ONNX Runtime" and "| onnx-int8 | ONNX Runtime |" in md
    assert rows["teacher"]["runtime"] == "ONNX Runtime" and rows["teacher"]["resolution"] == "64x64"
    assert "for one 64x64 raw frame" in md
    # portable provenance: the run's records name its folders RUN/..., never this machine's absolute paths
    records = [f for f in out.rglob("*") if f.suffix in (".json", ".md") and f.is_file()]
    assert len(records) >= 8 and not [f for f in records if str(tmp_path) in f.read_text()]
    assert "--student RUN/01-prune " in spec["provenance"]["command"]
    assert spec["provenance"]["command"].endswith("-o RUN/02-distill")
    assert {r["path"] for r in report["rows"]} >= {"RUN/01-prune", "RUN/02-distill", "RUN/03-quantize/model.onnx"}
    mtimes = {d: (out / d / "manifest.json").stat().st_mtime_ns for d in stage_dirs(out)}

    # second run: no work
    res = run_pipeline(path, out, progress=False)
    assert set(res["stages"].values()) == {"skipped"}
    assert {d: (out / d / "manifest.json").stat().st_mtime_ns for d in stage_dirs(out)} == mtimes

    # delete the quantize stage: it and every later stage run again, earlier ones do not
    shutil.rmtree(out / "03-quantize")
    res = run_pipeline(path, out, progress=False)
    assert res["stages"]["prune"] == res["stages"]["distill"] == "skipped"
    assert all(res["stages"][s] == "ran" for s in stages[2:])

    # --from export re-runs export and after
    res = run_pipeline(path, out, from_stage="export", progress=False)
    assert [s for s, v in res["stages"].items() if v == "ran"] == stages[3:]


@pytest.mark.usefixtures("reference_set")
def test_changed_recipe_table_reruns_that_stage_and_later(tmp_path, teacher):
    out = tmp_path / "run"
    path = recipe(tmp_path, teacher, bench=False)
    text = open(path).read()
    open(path, "w").write(text.replace('models = ["teacher", "student", "onnx-int8"]', 'models = ["student"]'))
    run_pipeline(path, out, progress=False)
    open(path, "w").write(text.replace('models = ["teacher", "student", "onnx-int8"]', 'models = ["student"]')
                          .replace("samples = 2", "samples = 3"))
    res = run_pipeline(path, out, progress=False)
    assert res["stages"]["distill"] == "skipped" and res["stages"]["quantize"] == "ran"
    assert res["stages"]["eval"] == "ran"


def test_unknown_table_is_reported_with_its_line(tmp_path, teacher):
    assert load_recipe(recipe(tmp_path, teacher))["pipeline"]["teacher"] == str(teacher)
    path = recipe(tmp_path, teacher, "[finetune]\nsteps = 3\n")
    line = [ln.strip() for ln in open(path).read().splitlines()].index("[finetune]") + 1
    with pytest.raises(DarkcError, match=rf"recipe\.toml:{line}: unknown stage/table \[finetune\]"):
        load_recipe(path)


def test_bad_recipes_fail_before_any_work(tmp_path, teacher):
    base = recipe(tmp_path, teacher, bench=False)
    text = open(base).read()
    cases = [
        (text.replace("round_to = 4", "round_to = 4\nratoi = 0.2"), r"recipe\.toml:\d+: unknown key 'ratoi' in \[prune\]"),
        (text.replace("steps = 3", 'steps = "many"'), r":\d+: \[distill\] steps = 'many' must be a int"),
        (text.replace(str(teacher), str(tmp_path / "missing")), "teacher"),
        (text.replace("ratio = 0.5", 'target_macs = "1T@1920x1080"'), "impossible"),
        (text.replace("ratio = 0.5", 'target_macs = "1K@1920x1080"'), "impossible"),
        (text.replace("ratio = 0.5", "ratio = 1.5"), r"ratio 1.5 must lie in \(0, 1\)"),
        (text.replace('teacher = "', 'name = "x"\nteechur = "'), "unknown key 'teechur'"),
    ]
    for i, (body, fragment) in enumerate(cases):
        path = tmp_path / "recipe.toml"
        path.write_text(body)
        out = tmp_path / f"out{i}"
        with pytest.raises(DarkcError, match=fragment):
            run_pipeline(str(path), out, progress=False)
        assert not out.exists()


@pytest.mark.usefixtures("reference_set")
def test_cli_pipeline(tmp_path, teacher, capsys):
    path = recipe(tmp_path, teacher, bench=False)
    text = open(path).read()
    body = text[:text.index("[quantize]")] + text[text.index("[eval]"):].replace(
        'models = ["teacher", "student", "onnx-int8"]', 'models = ["student"]')
    open(path, "w").write(body)
    assert main(["pipeline", path, "-o", str(tmp_path / "run")]) == 0
    outp = capsys.readouterr().out
    assert "distill   ran" in outp and "report.md" in outp
    assert main(["pipeline", path, "-o", str(tmp_path / "run"), "--from", "nope"]) == 1
    assert "--from" in capsys.readouterr().err


RECIPES = Path(__file__).resolve().parents[1] / "recipes"


@pytest.mark.parametrize("recipe", sorted(p.name for p in RECIPES.glob("*.toml")))
def test_shipped_recipes_load_and_are_feasible(recipe):
    """Every recipe in recipes/ parses, holds only known keys with valid values, and its teacher exists and suits it
    (no training runs)."""
    from darkc.pipeline import _check_feasible

    loaded = load_recipe(RECIPES / recipe)
    teacher = _check_feasible(loaded)
    assert teacher["kind"] == "pretrained" and loaded["pipeline"]["teacher"] in ("teacher", "teacher-raw")

"""One stage interface (darkc.stages): the CLI options, the recipe keys and the recorded command all come from the
config dataclasses, so they cannot drift; every stage's run has the same shape and writes its report files."""
from __future__ import annotations

import dataclasses
import inspect
import json
import shlex

import pytest
import torch

from darkc.cli import cli, main
from darkc.errors import DarkcError
from darkc.models import build_model, normalize_spec, save_checkpoint
from darkc.pipeline import CHAIN_KEYS, load_recipe, recipe_schema
from darkc.stages import STAGES, command, config_from_cli, options, stage

#: CLI parameters of a stage command that are not config fields: what it starts from, where it writes, and
#: what is only about printing or another mode of the command.
NOT_CONFIG = {"prune": {"model", "out"}, "distill": {"model", "out", "teacher"}, "export": {"model", "out"},
              "quantize": {"model", "out"}, "bench": {"model", "model_arg", "out", "fmt", "setup_arm"},
              "eval": {"models", "out", "fmt", "gallery", "images"}}


@pytest.mark.parametrize("name", STAGES)
def test_cli_options_are_the_config_fields(name):
    params = {p.name for p in cli.commands[name].params}
    fields = {f.name for f in dataclasses.fields(stage(name).Config)}
    assert params - NOT_CONFIG[name] == fields
    assert NOT_CONFIG[name] <= params


@pytest.mark.parametrize("name", STAGES)
def test_cli_defaults_are_the_config_defaults(name):
    """No option given on the command line gives exactly ``Config()``: the bench runs, quantize targets and the
    like cannot differ between the CLI and a recipe."""
    ctx = cli.commands[name].make_context(name, ["-o", "x"])
    assert config_from_cli(stage(name).Config, ctx.params) == stage(name).Config()


@pytest.mark.parametrize("name", STAGES)
def test_recipe_keys_are_the_config_fields(name):
    keys = set(recipe_schema()[name])
    fields = {f.name for f in dataclasses.fields(stage(name).Config)}
    assert keys == fields | set(CHAIN_KEYS.get(name, {}))
    assert {"io", "int8_activation", "reduce_range"} <= set(recipe_schema()["quantize"])
    assert "student" in recipe_schema()["distill"]


def test_every_stage_run_has_the_same_shape():
    shapes = set()
    for name in STAGES:
        sig = inspect.signature(stage(name).run)
        shapes.add(tuple((p.name, p.kind, p.default if p.default is not p.empty else None)
                         for p in sig.parameters.values()))
        assert sig.parameters["config"].annotation in ("Config", stage(name).Config)
    assert shapes == {(("artifact", inspect.Parameter.POSITIONAL_OR_KEYWORD, None),
                       ("out_dir", inspect.Parameter.POSITIONAL_OR_KEYWORD, None),
                       ("config", inspect.Parameter.POSITIONAL_OR_KEYWORD, None),
                       ("progress", inspect.Parameter.KEYWORD_ONLY, True))}


@pytest.mark.parametrize("name", STAGES)
def test_recorded_command_parses_back_to_the_same_config(name):
    """Provenance is written one way, from the config; the command it records gives that config again."""
    changed = {"prune": dict(ratio=0.25, rescale=False, evaluate=False, round_to=4),
               "distill": dict(student_widths=[8, 8, 16, 16, 32], kd="output,features", resume=True),
               "export": dict(targets=["onnx", "tflite"], precisions=["fp16"], input_size="64x64", check=False),
               "quantize": dict(targets=["tflite"], io="int8", reduce_range="off", calib_ratio=100.0),
               "bench": dict(devices=["host", "cortex-a55"], threads=[1, 2], parity=False, runs=3),
               "eval": dict(limit=2, baselines=True)}[name]
    config = stage(name).Config(**changed)
    words = shlex.split(command(name, "teacher", "out dir", config))
    assert words[:4] == ["darkc", name, "--model", "teacher"] and words[-2:] == ["-o", "out dir"]
    ctx = cli.commands[name].make_context(name, words[2:])
    assert config_from_cli(stage(name).Config, ctx.params) == config


def _recipe(tmp_path, table: str, body: str) -> str:
    path = tmp_path / "recipe.toml"
    path.write_text(f'[pipeline]\nteacher = "teacher"\n\n[{table}]\n{body}\n')
    return str(path)


@pytest.mark.parametrize("name", STAGES)
def test_recipe_key_not_in_the_config_is_a_one_line_error_naming_it(tmp_path, name):
    path = _recipe(tmp_path, name, "not_an_option = 1")
    with pytest.raises(DarkcError) as err:
        load_recipe(path)
    msg = str(err.value)
    assert "\n" not in msg and f"unknown key 'not_an_option' in [{name}]" in msg and "recipe.toml:" in msg


def test_recipe_values_are_checked_against_the_field_types(tmp_path):
    with pytest.raises(DarkcError, match=r"\[bench\] threads = 1 must be a list of int"):
        load_recipe(_recipe(tmp_path, "bench", "threads = 1"))
    with pytest.raises(DarkcError, match=r"\[bench\] runtime 'tvm' is unknown"):
        load_recipe(_recipe(tmp_path, "bench", 'runtime = "tvm"'))
    rec = load_recipe(_recipe(tmp_path, "quantize", 'io = "int8"\nreduce_range = "off"\n'
                                                                 'int8_activation = "prelu"'))
    assert rec["quantize"] == {"io": "int8", "reduce_range": "off", "int8_activation": "prelu"}


@pytest.fixture(scope="module")
def tiny_teacher(tmp_path_factory):
    torch.manual_seed(0)
    spec = normalize_spec({"arch": "sid-unet", "cfa": "bayer", "widths": [8, 8, 8, 8, 8]})
    return save_checkpoint(build_model(spec), spec, tmp_path_factory.mktemp("t") / "teacher")


@pytest.mark.usefixtures("reference_set")
def test_every_stage_writes_its_report_files_from_the_cli(tmp_path, tiny_teacher, capsys):
    t, o = str(tiny_teacher), tmp_path
    runs = {
        "prune": ["--model", t, "--ratio", "0.5", "--round-to", "4", "--no-eval", "--latency-size", "none"],
        "distill": ["--model", t, "--student-widths", "4,4,4,4,4", "--steps", "1", "--batch-size", "1", "--patch",
                    "64", "--val-every", "0", "--no-eval", "--latency-size", "none"],
        "quantize": ["--model", t, "--input-size", "64x64", "--samples", "2"],
        "export": ["--model", t, "--precision", "fp32,fp16"],
        "bench": ["--model", t, "--size", "64x64", "--runs", "1", "--warmup", "0"],
        "eval": ["--model", t, "--limit", "1"],
    }
    for name, args in runs.items():
        assert main([name, *args, "-o", str(o / name)]) == 0, capsys.readouterr().err
        md, js = o / name / f"{name}_report.md", o / name / f"{name}_report.json"
        assert md.read_text().strip() and json.loads(js.read_text()), name
        assert str(tmp_path) not in js.read_text()               # portable records
    assert sorted(p.name for p in (o / "export").glob("model-*")) == ["model-fp16.onnx", "model-fp32.onnx"]
    assert json.loads((o / "quantize" / "quantize_report.json").read_text())["files"][0]["precision"] == "int8"


def test_o_is_required(tiny_teacher, capsys):
    for name in ("prune", "distill", "export", "quantize"):
        assert main([name, "--model", str(tiny_teacher)]) != 0
        assert "'-o'" in capsys.readouterr().err
    for name in ("bench", "eval"):
        assert main([name, "--model", str(tiny_teacher)]) == 1
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "-o DIR" in err


def test_every_option_has_help():
    missing = [f"{name}.{o.name}" for name in STAGES for o in options(stage(name).Config) if not o.help]
    assert not missing


def test_npu_devices_follow_the_export_record_not_the_file_name():
    from darkc.pipeline import _devices_for

    devices = ["host", "cortex-a55", "ethos-u55-256"]
    assert _devices_for({"target": "tflite", "precision": "int8", "file": "model.tflite"}, devices) == devices
    assert _devices_for({"target": "onnx", "precision": "int8", "file": "model-int8.tflite"}, devices) == devices[:2]
    assert _devices_for({"target": "tflite", "precision": "fp32"}, devices) == devices[:2]
    assert _devices_for(None, devices) == devices[:2]                      # a torch checkpoint

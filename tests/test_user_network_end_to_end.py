"""Bring your own network (issue 15): a network defined outside darkc, with layer names unlike SID's, registered by
import path only, goes through prune -> distill (output and feature KD) -> quantize -> export (ONNX, INT8 TFLite)
-> bench (torch, ort, litert; the bench worker is a separate process that must import the plugin too) -> eval from
the command line, and through ``darkc pipeline`` with a recipe. Tiny widths, 64 px, one or two steps."""
import json
import math
import sys
import textwrap

import pytest
from helpers import tiny_recipe
from safetensors.torch import load_file

from darkc.cli import main
from darkc.models import build_model, load_checkpoint, normalize_spec, save_checkpoint
from darkc.models import registry as registry_mod

pytest.importorskip("ai_edge_litert")

MODULE = "byo_lowlight_net"
ARCH = f"{MODULE}:make"
NET_SOURCE = textwrap.dedent('''
    """A user's low-light network: nothing in it knows darkc."""
    import torch
    import torch.nn.functional as F
    from torch import nn


    class LowLightNet(nn.Module):
        def __init__(self, cin, cout, scale, width=8):
            super().__init__()
            self.enc_a = nn.Conv2d(cin, width, 3, padding=1)
            self.enc_b = nn.Conv2d(width, 2 * width, 3, padding=1)
            self.mid = nn.Sequential(nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.LeakyReLU(0.2))
            self.grow = nn.ConvTranspose2d(2 * width, width, 2, stride=2)
            self.fuse = nn.Conv2d(2 * width, width, 3, padding=1)
            self.out_proj = nn.Conv2d(width, cout * scale * scale, 1)
            self.to_image = nn.PixelShuffle(scale)

        def forward(self, x):
            a = F.leaky_relu(self.enc_a(x), 0.2)
            b = self.mid(F.leaky_relu(self.enc_b(F.max_pool2d(a, 2)), 0.2))
            y = F.leaky_relu(self.fuse(torch.cat([self.grow(b), a], 1)), 0.2)
            return self.to_image(self.out_proj(y))


    def make(spec):
        return LowLightNet(spec["in_channels"], spec["out_channels"], spec["scale"])
''')


@pytest.fixture
def teacher(tmp_path, monkeypatch):
    """The user's module in tmp_path (outside darkc, on sys.path), and a teacher artifact of it made by import path."""
    plugin = tmp_path / "plugin"
    plugin.mkdir()
    (plugin / f"{MODULE}.py").write_text(NET_SOURCE)
    monkeypatch.syspath_prepend(str(plugin))
    monkeypatch.setattr(registry_mod, "_ARCHS", dict(registry_mod._ARCHS))
    monkeypatch.setattr(registry_mod, "_PLUGIN_PATHS", [])
    monkeypatch.delitem(sys.modules, MODULE, raising=False)
    monkeypatch.chdir(tmp_path)
    spec = normalize_spec({"arch": ARCH, "cfa": "bayer"})
    save_checkpoint(build_model(spec), spec, tmp_path / "teacher")
    yield tmp_path / "teacher"
    sys.modules.pop(MODULE, None)


def _json_out(capsys) -> dict:
    return json.loads(capsys.readouterr().out)


@pytest.mark.usefixtures("reference_set")
def test_user_network_through_every_command(teacher, tmp_path, capsys):
    assert json.loads((teacher / "model.json").read_text())["arch"] == ARCH
    assert main(["prune", "--model", str(teacher), "--ratio", "0.5", "--round-to", "4", "--patch", "64",
                 "--no-eval", "--latency-size", "none", "-o", "pruned"]) == 0
    pruned, pspec = load_checkpoint("pruned")
    assert pspec["channels"] == {"enc_a": 4, "enc_b": 8, "mid.0": 8, "grow": 4, "fuse": 4}
    assert pruned.out_proj.out_channels == 12                  # the head the adapter found is never pruned

    assert main(["distill", "--teacher", str(teacher), "--student", "pruned", "--kd", "output,features",
                 "--steps", "1", "--batch-size", "1", "--patch", "64", "--val-every", "0", "--ckpt-every", "1",
                 "--no-eval", "--latency-size", "none", "--threads", "1", "-o", "student"]) == 0
    state = load_file("student/train_state.safetensors")
    assert {k.split(".")[2] for k in state if k.startswith("extra.adapters.")} == {"fuse"}  # traced: the decoder level
    assert load_checkpoint("student")[1]["provenance"]["kd"] == "output,features"

    assert main(["quantize", "--model", "student", "--samples", "2", "--calib-size", "32",
                 "-o", "deploy/model-int8.onnx"]) == 0
    assert main(["export", "--model", "student", "--target", "onnx", "-o", "deploy/model.onnx"]) == 0
    assert main(["export", "--model", "student", "--target", "tflite", "--precision", "int8", "--input-size", "64x64",
                 "--samples", "2", "-o", "deploy/model-int8.tflite"]) == 0
    capsys.readouterr()
    record = json.loads((tmp_path / "deploy" / "model.json").read_text())["provenance"]["exports"]
    ops = record["model-int8.tflite"]["graph"]["op_counts"]
    assert ops.get("DEPTH_TO_SPACE") == 1 and "TRANSPOSE" not in ops        # PixelShuffle found by type
    assert record["model-int8.tflite"]["parity"]["passed"] and record["model-int8.onnx"]["parity"]["passed"]

    for model, runtime in (("student", "torch"), ("deploy/model-int8.onnx", "ort"),
                           ("deploy/model-int8.tflite", "litert")):
        assert main(["bench", "--model", model, "--runtime", runtime, "--size", "64x64", "--runs", "2", "--warmup",
                     "1", "--format", "json", "-o", f"bench-{runtime}"]) == 0
        res = _json_out(capsys)
        assert res["devices"]["host"]["latency_ms"] > 0, res

    assert main(["eval", "--model", "deploy/model-int8.tflite", "--limit", "1", "--format", "json", "-o", "eval"]) == 0
    assert math.isfinite(_json_out(capsys)["psnr"])


@pytest.mark.usefixtures("reference_set")
def test_user_network_through_the_pipeline(teacher, tmp_path, capsys):
    recipe = tiny_recipe(tmp_path / "recipe.toml", teacher)
    assert main(["pipeline", str(recipe), "-o", "run"]) == 0
    out = capsys.readouterr().out
    assert all(f"{stage:9s} ran" in out for stage in ("prune", "distill", "quantize", "bench", "eval")), out
    rows = {r["model"]: r for r in json.loads((tmp_path / "run" / "report.json").read_text())["rows"]}
    assert rows["student"]["psnr"] > 0 and rows["tflite-int8"]["latency_ms"]["host"] > 0
    assert load_checkpoint(tmp_path / "run" / "02-distill")[1]["arch"] == ARCH

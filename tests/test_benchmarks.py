"""Benchmark scripts run on a tiny case and write their md/json/png."""
import json
import subprocess
import sys
from pathlib import Path

import torch

from darkc.models import build_model, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def test_eval_quality_script(tmp_path, synth_bayer):
    spec = {"arch": "sid-unet", "cfa": "bayer", "widths": [8, 8, 8, 8, 8]}
    torch.manual_seed(0)
    save_checkpoint(build_model(spec), spec, tmp_path / "m")
    save_checkpoint(build_model(spec), spec, tmp_path / "other")
    out = tmp_path / "rep" / "q"
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "eval_quality.py"), "--model", str(tmp_path / "m"),
                        "--data", str(synth_bayer.list_file), "--out", str(out), "--limit", "3", "--threads", "1",
                        "--vs", str(tmp_path / "other")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    data = json.loads(out.with_suffix(".json").read_text())
    assert data["n"] == 3 and "libraw+nlm" in data["baselines"]
    assert data["vs"]["frames"] == 24 and 0 < data["vs"]["psnr"] < 100 and data["vs"]["macs_1920x1080"][0] > 0
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    assert "| model |" in out.with_suffix(".md").read_text()


def _tiny_teacher(path: Path) -> Path:
    spec = {"arch": "sid-unet", "cfa": "bayer", "widths": [16, 16, 16, 16, 16]}
    torch.manual_seed(0)
    return save_checkpoint(build_model(spec), spec, path)


def test_distill_ablation_script(tmp_path):
    teacher = _tiny_teacher(tmp_path / "t")
    out = tmp_path / "abl"
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "distill_ablation.py"), "--teacher", str(teacher),
                        "--steps", "2", "--batch-size", "1", "--patch", "64", "--eval-limit", "1", "--only", "0,3",
                        "--prune-ratio", "0.5", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    data = json.loads((out / "ablation.json").read_text())
    assert list(data["runs"]) == ["scratch / output", "pruned / output+features"]
    assert data["widths"] == [8, 8, 8, 8, 8]
    assert all(v["macs_1920x1080"] > 0 and v["psnr_vs_teacher"] > 0 for v in data["runs"].values())
    assert "| scratch / output |" in (out / "ablation.md").read_text()


def test_prune_sweep_script(tmp_path):
    teacher = _tiny_teacher(tmp_path / "t")
    out = tmp_path / "sweep" / "s"
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "prune_sweep.py"), "--model", str(teacher),
                        "--ratios", "0.5", "--finetune-iters", "2", "--batch-size", "1", "--patch", "64",
                        "--eval-limit", "1", "--latency-size", "64x64", "--latency-runs", "1", "--out", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    rows = json.loads(out.with_suffix(".json").read_text())["rows"]
    assert list(rows) == ["unpruned", "ratio 0.5", "ratio 0.5 + 2 fine-tune iters"]
    assert rows["ratio 0.5"]["params"] < rows["unpruned"]["params"]
    assert rows["ratio 0.5"]["latency_ms"] > 0
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"

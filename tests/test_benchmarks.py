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
    out = tmp_path / "rep" / "q"
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "eval_quality.py"), "--model", str(tmp_path / "m"),
                        "--data", str(synth_bayer.list_file), "--out", str(out), "--limit", "3", "--threads", "1"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    data = json.loads(out.with_suffix(".json").read_text())
    assert data["n"] == 3 and "libraw+nlm" in data["baselines"]
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    assert "| model |" in out.with_suffix(".md").read_text()

"""Hazard: a committed model card, manifest or report that names the folders of the machine that made it
(``/root/runs/...``, ``/work/checkout/...``, ``/tmp/...``), so no reader can rerun its command."""
from __future__ import annotations

import json
import re
import struct
import subprocess
from pathlib import Path


from darkc.provenance import portable, portable_text, run_root
from helpers import tiny_checkpoint

REPO = Path(__file__).resolve().parent.parent
ARTIFACT_ROOTS = ("darkc/models/pretrained", "benchmarks/results", "recipes")
MACHINE_PATH = re.compile(r"(?<![\w.~$-])(/root|/work|/home/[a-z][\w.-]*|/tmp|/Users/[\w.-]+|/private/var)(?=/|\b)")


def committed_artifacts() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "--", *ARTIFACT_ROOTS], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        out = [str(p.relative_to(REPO)) for root in ARTIFACT_ROOTS for p in (REPO / root).rglob("*") if p.is_file()]
    return [REPO / f for f in out]


def readable_text(path: Path) -> str | None:
    """The text a reader sees: the file, or a safetensors file's JSON header; None for other binaries."""
    data = path.read_bytes()
    if path.suffix == ".safetensors":
        (size,) = struct.unpack("<Q", data[:8])
        return data[8:8 + size].decode("utf-8")
    if b"\0" in data[:4096] or path.suffix in (".png", ".onnx", ".tflite", ".mp4"):
        return None
    return data.decode("utf-8", errors="replace")


def test_no_committed_artifact_names_a_machine_path():
    files = committed_artifacts()
    assert any(f.name == "model.json" for f in files) and any(f.suffix == ".safetensors" for f in files)
    bad = []
    for f in files:
        text = readable_text(f)
        for m in MACHINE_PATH.finditer(text or ""):
            line = text[:m.start()].count("\n") + 1
            bad.append(f"{f.relative_to(REPO)}:{line}: {text[m.start():m.start() + 60]!r}")
    assert not bad, "absolute machine paths in committed artifacts:\n" + "\n".join(bad[:20])


def test_scanner_sees_the_paths_it_must_refuse():
    for text in ("-o /root/sid-mobile4/01-prune", '"file": "/tmp/x/model.onnx"', "/work/main/darkc", "/home/ann/x",
                 "(cached in /root/.cache/darkc)"):
        assert MACHINE_PATH.search(text), text
    for text in ("RUN/01-prune", "~/.cache/darkc", "$TMPDIR/x", "data/root/x", "teacher"):
        assert not MACHINE_PATH.search(text), text


def test_portable_names_shipped_models_run_folders_cache_and_temp(tmp_path, monkeypatch):
    from darkc.models.pretrained import PRETRAINED_DIR

    monkeypatch.setenv("HOME", "/home/ann")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.chdir("/")
    run = tmp_path / "run"
    cmd = (f"darkc distill --teacher {PRETRAINED_DIR / 'teacher'} --student {run / '01-prune'} "
           f"-o {run / '02-distill.partial'}")
    assert portable_text(cmd, run) == "darkc distill --teacher teacher --student RUN/01-prune -o RUN/02-distill"
    with run_root(run):
        rec = portable({"files": [str(run / "03-quantize" / "m.onnx")], "note": f"from {PRETRAINED_DIR}/student/x"})
    assert rec == {"files": ["RUN/03-quantize/m.onnx"], "note": "from student/x"}
    assert portable_text("/home/ann/.cache/darkc/bench/a.onnx (cached in /home/ann/.cache/darkc)") == \
        "~/.cache/darkc/bench/a.onnx (cached in ~/.cache/darkc)"
    assert portable_text(f"{tmp_path}/x.json").startswith("$TMPDIR/")
    assert portable_text("/data/SID/Sony /home/annex data/home/ann/x") == "/data/SID/Sony /home/annex data/home/ann/x"


def test_checkpoint_records_its_command_without_the_machines_paths(tmp_path):
    spec = {"arch": "sid-unet", "cfa": "bayer", "widths": [4] * 5,
            "provenance": {"command": f"darkc train -o {tmp_path / 'runs' / 'a'}", "parent": str(tmp_path / "p")}}
    art = tiny_checkpoint(tmp_path / "art", spec)
    text = (art / "model.json").read_text()
    assert str(tmp_path) not in text
    prov = json.loads(text)["provenance"]
    assert prov["command"].endswith("/runs/a") and prov["command"].startswith("darkc train -o $TMPDIR/")


def test_benchmark_records_are_written_portable_and_whole(tmp_path, monkeypatch):
    from darkc.provenance import write_records

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    made = tmp_path / "home" / "runs" / "rs-1"
    prefix = tmp_path / "out" / "sub" / "report"
    write_records(prefix, {"command": f"darkc distill -o {made}", "psnr": 20.5}, "# report\n")
    data = json.loads(prefix.with_suffix(".json").read_text())
    assert data == {"command": "darkc distill -o ~/runs/rs-1", "psnr": 20.5}
    assert prefix.with_suffix(".md").read_text() == "# report\n"
    assert sorted(p.name for p in prefix.parent.iterdir()) == ["report.json", "report.md"]   # no temporary left

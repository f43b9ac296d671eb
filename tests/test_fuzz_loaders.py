"""Fuzzed loaders (benchmarks/fuzz_loaders.py, hypothesis): every corrupt raw/DNG, model.json, safetensors,
recipe, .onnx, .tflite, camera profile and .flo gives darkc's one-line DarkcError naming the file - never
another exception, a hang or a crash. The loaders run in a subprocess, so a native crash fails a test instead
of killing pytest; a fixed set of cases per loader (derandomised) keeps CI bounded, the script does long runs."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from darkc.errors import DarkcError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import fuzz_loaders  # noqa: E402

CASES = 12


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory):
    out = tmp_path_factory.mktemp("fuzz") / "fuzz.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "fuzz_loaders.py"), "--cases", str(CASES),
                        "--derandomize", "--case-timeout", "60", "--out", str(out)],
                       capture_output=True, text=True, timeout=900, cwd=ROOT, env=env)
    last = [ln for ln in r.stderr.splitlines() if ln.startswith("case ")][-1:]
    report = json.loads(out.read_text()) if out.is_file() else {"loaders": {}}
    return {"rc": r.returncode, "report": report["loaders"], "last_case": last, "stdout": r.stdout,
            "stderr_tail": r.stderr[-2000:]}


@pytest.mark.parametrize("loader", fuzz_loaders.LOADERS)
def test_corrupt_input_gives_one_line_darkc_error(fuzzed, loader):
    assert fuzzed["rc"] in (0, 1), (f"the fuzzing process died (exit {fuzzed['rc']}) at {fuzzed['last_case']}: "
                                    f"{fuzzed['stderr_tail']}")
    res = fuzzed["report"][loader]
    assert res["cases"] == CASES
    assert res["failures"] == [], "\n".join(f["problem"] for f in res["failures"])


def test_fuzz_check_flags_a_traceback_and_a_multiline_error(tmp_path):
    """The fuzz oracle itself: a loader raising a plain exception, or a DarkcError over two lines, is reported."""
    def plain(*a):
        raise ValueError("boom")

    def two_lines(*a):
        raise DarkcError("input.flo: bad\nsecond line")

    real = fuzz_loaders.load
    try:
        fuzz_loaders.load = plain
        assert fuzz_loaders.check_case("flo", tmp_path, b"x", 10).startswith("ValueError: boom")
        fuzz_loaders.load = two_lines
        assert "several lines" in fuzz_loaders.check_case("flo", tmp_path, b"x", 10)
    finally:
        fuzz_loaders.load = real
    assert fuzz_loaders.check_case("flo", tmp_path, b"PIEH", 10) is None     # read_flo's own one-line error


def test_a_tflite_that_crashes_litert_is_a_one_line_error():
    """tests/data/litert_segfault.tflite: a darkc export with bytes flipped by benchmarks/fuzz_loaders.py (case
    tflite 44 of a 200-case run) on which LiteRT's native loader dies with SIGSEGV; darkc probes it in a child
    process and reports it instead of crashing."""
    from darkc.inference import load_runner

    path = Path(__file__).parent / "data" / "litert_segfault.tflite"
    with pytest.raises(DarkcError, match=r"litert_segfault.tflite: LiteRT crashed reading it \(signal 11\); .*"
                                         r"re-export it"):
        load_runner(str(path))


@pytest.mark.parametrize("field, value", [("cfa", {"a": 1}), ("output", {"space": [1]}), ("input", {"noise": [2]})])
def test_unhashable_model_json_values_are_one_line_errors(field, value):
    """Found by a 200-case fuzz run: a dict where model.json holds a name raised TypeError (unhashable type)."""
    from darkc.models import normalize_spec

    with pytest.raises(DarkcError, match=rf"model.json: field '{field}(\.noise)?' is .*; use one of"):
        normalize_spec({"arch": "sid-unet", field: value}, "model.json")

"""SIGKILL during each writing stage: the previous artifact stays whole and a re-run completes or resumes; two
runs writing the same output never interleave (the second is refused).

The kill is deterministic: a driver process replaces ``os.replace`` (the commit of every atomic write) and
darkc's folder exchange with versions that SIGKILL the process on the N-th commit into the output - the moment
a stage has written everything to its temporary name and is about to put it in place."""
import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from darkc.cli import main
from darkc.errors import output_lock
from helpers import tiny_checkpoint

ROOT = Path(__file__).resolve().parents[1]
TINY = {"arch": "sid-unet", "cfa": "bayer", "widths": [4, 4, 8, 8, 16]}

DRIVER = textwrap.dedent('''
    import os, signal, sys
    target, nth = os.path.abspath(sys.argv[1]), int(sys.argv[2])
    seen = [0]

    def hit(dst):
        dst = os.path.abspath(os.fspath(dst))
        if dst == target or dst.startswith(target + os.sep):
            seen[0] += 1
            if seen[0] == nth:
                os.kill(os.getpid(), signal.SIGKILL)

    real_replace = os.replace
    def replace(src, dst, *a, **k):
        hit(dst)
        return real_replace(src, dst, *a, **k)
    os.replace = replace
    import darkc.errors
    real_exchange = darkc.errors._exchange
    def exchange(a, b):
        hit(b)
        return real_exchange(a, b)
    darkc.errors._exchange = exchange
    from darkc.cli import main
    sys.exit(main(sys.argv[3:]))
''')


def killed(args, target, nth=1):
    """Run ``darkc ARGS`` and SIGKILL it at its ``nth`` commit into ``target``; returns the exit status."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-c", DRIVER, str(target), str(nth), *map(str, args)],
                       capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)
    assert r.returncode == -signal.SIGKILL, f"not killed at commit {nth} into {target}: exit {r.returncode}\n{r.stderr[-2000:]}"
    return r.returncode


def snapshot(path: Path) -> dict:
    """sha256 of every visible file under ``path`` (or of ``path`` itself)."""
    if path.is_file():
        return {".": hashlib.sha256(path.read_bytes()).hexdigest()}
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file() and not any(s.startswith(".") for s in p.relative_to(path).parts)}


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("kill") / "teacher", TINY)


def _killed_keeps_previous_then_rerun(first, second, out, nth=1):
    first, second = [str(a) for a in first], [str(a) for a in second]
    assert main(first) == 0
    before = snapshot(out)
    assert before
    killed(second, out, nth)
    assert snapshot(out) == before, "the kill damaged the previous artifact"
    assert main(second) == 0
    after = snapshot(out)
    assert after and after != before
    return after


def test_kill_during_synth(tmp_path):
    out = tmp_path / "s"
    base = ["synth", "-o", out, "--count", "1", "--size", "64"]
    _killed_keeps_previous_then_rerun([*base, "--seed", "1"], [*base, "--seed", "2"], out)


def test_kill_during_prune(teacher, tmp_path, synth_bayer):
    out = tmp_path / "p"
    # --data: the rescale inputs from a few small DNGs, not 768 px dead-leaves scenes drawn again in each process
    base = ["prune", "--model", teacher, "--round-to", "4", "--no-eval", "--latency-size", "none",
            "--data", synth_bayer.dir, "--patch", "64", "-o", out]
    _killed_keeps_previous_then_rerun([*base, "--ratio", "0.5"], [*base, "--ratio", "0.25"], out)


def test_kill_during_quantize(teacher, tmp_path):
    out = tmp_path / "q"
    base = ["quantize", "--model", teacher, "--input-size", "64x64", "-o", out]
    _killed_keeps_previous_then_rerun([*base, "--samples", "2"], [*base, "--samples", "3"], out)


def test_kill_during_export(teacher, tmp_path):
    out = tmp_path / "e"
    first = ["export", "--model", teacher, "--precision", "fp32", "-o", out / "model.onnx"]
    second = ["export", "--model", teacher, "--precision", "fp16", "-o", out / "model-fp16.onnx"]
    after = _killed_keeps_previous_then_rerun(first, second, out)
    assert {"model.onnx", "model-fp16.onnx", "model.json"} <= set(after)


def test_kill_during_video(teacher, tmp_path):
    clip = tmp_path / "clip"
    assert main(["synth", "--video", "-o", str(clip), "--count", "3", "--size", "64", "--seed", "2"]) == 0
    out = tmp_path / "v.mp4"
    base = ["video", clip, "-o", out, "--model", teacher, "--threads", "1"]
    _killed_keeps_previous_then_rerun([*base, "--temporal", "none"], [*base, "--temporal", "ema"], out)


def test_kill_during_train_checkpoint_then_resume(tmp_path, synth_bayer):
    out = tmp_path / "t"
    args = ["train", "-o", out, "--data", synth_bayer.dir, "--widths", "4,4,4,4,4", "--patch", "64",
            "--batch-size", "1", "--val", "none", "--ckpt-every", "1", "--threads", "1"]
    killed([*args, "--steps", "3"], out / "train_state.json", nth=2)       # during step 2's checkpoint
    state = json.loads((out / "train_state.json").read_text())
    assert state["step"] == 1                                               # step 1's checkpoint, whole
    assert main([str(a) for a in [*args, "--steps", "3", "--resume"]]) == 0
    assert json.loads((out / "train_state.json").read_text())["step"] == 3


def test_kill_during_distill_then_resume(teacher, tmp_path, synth_bayer):
    out = tmp_path / "d"
    args = ["distill", "--model", teacher, "--student-widths", "4,4,4,4,4", "--data", synth_bayer.dir,
            "--batch-size", "1", "--patch", "64", "--val-every", "0", "--ckpt-every", "1", "--no-eval",
            "--latency-size", "none", "--threads", "1", "-o", out]
    killed([*args, "--steps", "3"], out / "train_state.json", nth=2)
    assert json.loads((out / "train_state.json").read_text())["step"] == 1
    assert main([str(a) for a in [*args, "--steps", "3", "--resume"]]) == 0
    assert (out / "model.safetensors").is_file()


def test_kill_during_pipeline_stage(teacher, tmp_path, synth_bayer):
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'[pipeline]\nteacher = "{teacher}"\nthreads = 1\n\n[prune]\nratio = 0.5\nround_to = 4\n'
                      f'data = "{synth_bayer.dir}"\npatch = 64\n')
    out = tmp_path / "run"
    assert main(["pipeline", str(recipe), "-o", str(out)]) == 0
    stage = next(p for p in out.iterdir() if p.is_dir() and "prune" in p.name)
    before = snapshot(stage)
    killed(["pipeline", recipe, "-o", out, "--from", "prune"], stage)
    assert snapshot(stage) == before
    assert main(["pipeline", str(recipe), "-o", str(out), "--from", "prune"]) == 0
    assert (stage / "model.safetensors").is_file()


def test_two_runs_writing_the_same_output_do_not_interleave(tmp_path, capsys):
    out = tmp_path / "s"
    with output_lock(out):                       # another run holds the output
        assert main(["synth", "-o", str(out), "--count", "1", "--size", "64"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: another darkc run") and err.count("\n") == 1 and not out.exists()
    assert main(["synth", "-o", str(out), "--count", "1", "--size", "64"]) == 0   # released with its holder
    assert not (tmp_path / ".s.lock").exists()


def test_pipeline_resumes_a_distillation_killed_half_way(teacher, tmp_path, synth_bayer):
    """A kill during the distill stage leaves RUN/02-distill.partial with its last checkpoint; the re-run resumes
    from it (its training history starts with the killed run's step-1 record, wall time included), and a .partial
    from another recipe is discarded (the history starts afresh)."""
    recipe = tmp_path / "r.toml"
    # data: the stages read a few small DNGs instead of drawing 768 px dead-leaves scenes in each process
    recipe.write_text(f'[pipeline]\nteacher = "{teacher}"\nthreads = 1\n\n[prune]\nratio = 0.5\nround_to = 4\n'
                      f'data = "{synth_bayer.dir}"\npatch = 64\n\n[distill]\ninit = "pruned"\nkd = "output"\nsteps = 3\n'
                      f'batch_size = 1\npatch = 64\nval_every = 0\nckpt_every = 1\ndata = "{synth_bayer.dir}"\n')
    out = tmp_path / "run"
    partial, final = out / "02-distill.partial", out / "02-distill"
    for stale in (False, True):
        killed(["pipeline", recipe, "-o", out, "--from", "distill"], partial / "train_state.json", nth=2)
        state = json.loads((partial / "train_state.json").read_text())
        assert state["step"] == 1 and state["history"]
        if stale:
            (partial / ".key").write_text("another recipe")
        assert main(["pipeline", str(recipe), "-o", str(out), "--from", "distill"]) == 0
        assert not partial.exists()
        done = json.loads((final / "train_state.json").read_text())
        assert done["step"] == 3
        resumed = done["history"][:len(state["history"])] == state["history"]
        assert resumed is not stale, ("stale" if stale else "fresh", state["history"], done["history"])

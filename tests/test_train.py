"""Tests for darkc/train.py: the shared training loop (fit), resume, DDP equivalence, validation, schedules,
and the ``darkc train`` stage end to end."""
from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch.utils.data import Dataset

from darkc.errors import DarkcError
from darkc.metrics import psnr_torch, ssim_torch
from darkc.models import build_model, load_checkpoint
from darkc.train import (STATE_JSON, STATE_TENSORS, DataOptions, TrainConfig, fit, forward_padded, lr_at,
                         supervised_objective, train, validate)
from helpers import torch_default_init

REPO = Path(__file__).resolve().parents[1]
TINY = {"arch": "sid-unet", "cfa": "bayer", "widths": [4, 4, 4, 4, 4]}
CPU = torch.device("cpu")


def toy_target(inp: np.ndarray) -> np.ndarray:
    """A fixed map packed RGGB (4, h, w) -> RGB (3, 2h, 2w): R, mean of the greens, B, nearest-upsampled."""
    rgb = np.stack([inp[0], 0.5 * (inp[1] + inp[2]), inp[3]])
    return np.ascontiguousarray(rgb.repeat(2, axis=1).repeat(2, axis=2))


class TinyPairs(Dataset):
    """Index-deterministic toy pairs: item ``i`` is a pure function of ``(seed, i)``.

    Item: dict(input=(4, side, side) float32 in [0, 1], target=(3, 2 side, 2 side) = toy_target(input), ratio).
    ``fail_from`` makes items at or past that index raise, to simulate a run killed mid-way.
    """

    def __init__(self, seed: int = 0, side: int = 32, fail_from: int | None = None):
        self.seed, self.side, self.fail_from = seed, side, fail_from

    def __len__(self) -> int:
        return 10**9

    def __getitem__(self, i: int) -> dict:
        if self.fail_from is not None and i >= self.fail_from:
            raise RuntimeError(f"simulated crash at item {i}")
        rng = np.random.default_rng([self.seed, i])
        inp = rng.random((4, self.side, self.side), dtype=np.float32)
        return {"input": torch.from_numpy(inp), "target": torch.from_numpy(toy_target(inp)),
                "ratio": torch.tensor(100.0)}


def tiny_model(seed: int = 0, widths=(4, 4, 4, 4, 4)):
    torch.manual_seed(seed)
    spec = dict(TINY, widths=list(widths))
    return torch_default_init(build_model(spec)), spec


def quick_cfg(**kw) -> TrainConfig:
    base = dict(steps=6, batch_size=2, lr=1e-3, min_lr=1e-4, threads=1, log_every=1)
    base.update(kw)
    return TrainConfig(**base)


def state_dicts_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def artifact_weights(path: Path) -> dict:
    return load_file(str(path / "model.safetensors"))


# --- the loop learns -----------------------------------------------------------------------------------

def test_fit_loss_decreases(tmp_path):
    model, spec = tiny_model(widths=(8, 8, 8, 8, 8))
    ds = TinyPairs()
    objective = supervised_objective("l1")
    held_out = {k: torch.stack([ds[10**6 + j][k] for j in range(4)]) for k in ("input", "target")}
    with torch.no_grad():
        before = float(objective(model, held_out)[0])
    step_losses = []

    def recording(model, batch):
        loss, logs = objective(model, batch)
        step_losses.append(float(loss.detach()))
        return loss, logs

    cfg = quick_cfg(steps=40, batch_size=2, lr=2e-3, min_lr=2e-4, ckpt_every=5)
    summary = fit(model, spec, ds, tmp_path / "run", cfg, objective=recording, progress=False)

    assert len(step_losses) == 40
    assert np.mean(step_losses[-5:]) < 0.8 * np.mean(step_losses[:5]), step_losses
    model.eval()
    with torch.no_grad():
        after = float(objective(model, held_out)[0])
    assert after < 0.8 * before, (before, after)
    # each history record holds the mean loss of the steps since the previous record
    losses = [r["loss"] for r in summary["history"]]
    assert [r["step"] for r in summary["history"]] == list(range(5, 41, 5))
    assert losses == pytest.approx([np.mean(step_losses[i:i + 5]) for i in range(0, 40, 5)], rel=1e-6)
    state = json.loads((tmp_path / "run" / STATE_JSON).read_text())
    assert state["step"] == 40 and [r["loss"] for r in state["history"]] == losses


# --- checkpoints and resume ----------------------------------------------------------------------------

def test_resume_continues_the_same_run(tmp_path):
    n = 3
    cfg = quick_cfg(steps=2 * n, ckpt_every=n, warmup=2)
    obj = supervised_objective("l1")

    straight, spec = tiny_model(seed=0)
    fit(straight, spec, TinyPairs(), tmp_path / "straight", cfg, objective=obj, progress=False)

    first, _ = tiny_model(seed=0)
    killed = TinyPairs(fail_from=n * cfg.batch_size)   # the run dies fetching step n's batch
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit(first, spec, killed, tmp_path / "resumed", cfg, objective=obj, progress=False)
    assert json.loads((tmp_path / "resumed" / STATE_JSON).read_text())["step"] == n

    second, _ = tiny_model(seed=123)                  # different init: the weights must come from the state
    fit(second, spec, TinyPairs(), tmp_path / "resumed", cfg, objective=obj, resume=True, progress=False)

    assert state_dicts_equal(second.state_dict(), straight.state_dict())
    assert state_dicts_equal(artifact_weights(tmp_path / "resumed" / "last"),
                             artifact_weights(tmp_path / "straight" / "last"))
    a, b = load_file(str(tmp_path / "straight" / STATE_TENSORS)), load_file(str(tmp_path / "resumed" / STATE_TENSORS))
    assert any(k.endswith("exp_avg_sq") for k in a) and state_dicts_equal(a, b)   # Adam moments too
    sa = json.loads((tmp_path / "straight" / STATE_JSON).read_text())
    sb = json.loads((tmp_path / "resumed" / STATE_JSON).read_text())
    assert sb["step"] == 2 * n and set(sb["adam_steps"].values()) == {2 * n}
    assert sa["adam_steps"] == sb["adam_steps"]
    assert [(r["step"], r["loss"]) for r in sb["history"]] == [(r["step"], r["loss"]) for r in sa["history"]]
    assert load_checkpoint(tmp_path / "resumed" / "last")[1]["provenance"]["train"]["step"] == 2 * n


def test_resume_errors(tmp_path):
    cfg = quick_cfg(steps=2)
    obj = supervised_objective("l1")
    model, spec = tiny_model()
    with pytest.raises(DarkcError, match=r"--resume: no training state in .*start without --resume"):
        fit(model, spec, TinyPairs(), tmp_path / "empty", cfg, objective=obj, resume=True, progress=False)

    fit(model, spec, TinyPairs(), tmp_path / "run", cfg, objective=obj, progress=False)
    with pytest.raises(DarkcError, match=r"already holds a training run: pass --resume"):
        fit(tiny_model()[0], spec, TinyPairs(), tmp_path / "run", cfg, objective=obj, progress=False)
    with pytest.raises(DarkcError, match=r"already finished 2 steps; raise --steps"):
        fit(tiny_model()[0], spec, TinyPairs(), tmp_path / "run", cfg, objective=obj, resume=True, progress=False)

    (tmp_path / "run" / STATE_TENSORS).write_bytes(b"not safetensors")
    with pytest.raises(DarkcError, match=r"training state in .* is corrupt"):
        fit(tiny_model()[0], spec, TinyPairs(), tmp_path / "run", quick_cfg(steps=4), objective=obj,
            resume=True, progress=False)


def test_nan_loss_names_the_step(tmp_path):
    base = supervised_objective("l1")
    calls = []

    def nan_from_step_3(model, batch):
        loss, logs = base(model, batch)
        calls.append(1)
        return (loss * float("nan") if len(calls) > 3 else loss), logs

    model, spec = tiny_model()
    with pytest.raises(DarkcError, match=r"diverged at step 3 \(loss nan\)"):
        fit(model, spec, TinyPairs(), tmp_path / "run", quick_cfg(steps=6), objective=nan_from_step_3,
            progress=False)
    assert len(calls) == 4


def test_config_is_checked():
    with pytest.raises(DarkcError, match="--schedule"):
        TrainConfig(schedule="linear").check()
    with pytest.raises(DarkcError, match="--steps"):
        TrainConfig(steps=0).check()
    with pytest.raises(DarkcError, match="--lr"):
        TrainConfig(lr=0).check()


# --- distributed ---------------------------------------------------------------------------------------

LAUNCHER = """
import json, sys
import torch
sys.path.insert(0, {tests!r})
from test_train import TinyPairs, quick_cfg, tiny_model
from darkc.train import fit, supervised_objective

out = sys.argv[1]
model, spec = tiny_model(seed=0)
summary = fit(model, spec, TinyPairs(seed=5), out, quick_cfg(steps=5, batch_size=4, lr=1e-3),
              objective=supervised_objective("l1"), progress=False)
if summary["world_size"] == 1 or torch.distributed.get_rank() == 0:
    with open(out + "/summary.json", "w") as f:
        json.dump({{"world_size": summary["world_size"], "history": summary["history"]}}, f)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_script(args: list[str]) -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env.update(PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
               OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"


@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                    reason="needs torch.distributed with gloo")
def test_ddp_two_ranks_match_one_process(tmp_path):
    script = tmp_path / "launch.py"
    script.write_text(LAUNCHER.format(tests=str(Path(__file__).parent)))
    run_script([str(script), str(tmp_path / "single")])
    run_script(["-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
                f"--master_port={free_port()}", str(script), str(tmp_path / "ddp")])

    assert json.loads((tmp_path / "single" / "summary.json").read_text())["world_size"] == 1
    assert json.loads((tmp_path / "ddp" / "summary.json").read_text())["world_size"] == 2
    single = artifact_weights(tmp_path / "single" / "last")
    ddp = artifact_weights(tmp_path / "ddp" / "last")
    init = tiny_model(seed=0)[0].state_dict()
    assert single.keys() == ddp.keys()
    assert max(float((single[k] - init[k]).abs().max()) for k in single) > 1e-3   # it did train
    diff = max(float((single[k] - ddp[k]).abs().max()) for k in single)
    assert diff < 1e-5, f"DDP weights differ from single-process weights by {diff:.3g}"
    s_single = json.loads((tmp_path / "single" / STATE_JSON).read_text())
    s_ddp = json.loads((tmp_path / "ddp" / STATE_JSON).read_text())
    assert s_single["step"] == s_ddp["step"] == 5


# --- validation ----------------------------------------------------------------------------------------

def test_validate_matches_metrics_per_ratio():
    model, _ = tiny_model(seed=1)
    with torch.no_grad():
        model.conv10.bias += 0.5        # outputs inside (0, 1), so the metrics see an image, not a clamp
    ds = TinyPairs(seed=2)
    ratios = [300.0, 100.0, 1000.0, 100.0]
    frames = [(f"f{i}", ds[i]["input"].numpy(), ds[i]["target"].numpy(), r) for i, r in enumerate(ratios)]

    res = validate(model, frames, CPU)

    assert model.training                   # fit goes on training after validating
    psnrs, ssims = [], []
    model.eval()
    with torch.no_grad():
        for _n, inp, tgt, _r in frames:
            out = model(torch.from_numpy(inp)[None]).clamp(0, 1)
            t = torch.from_numpy(tgt)[None]
            psnrs.append(float(psnr_torch(out, t)[0]))
            ssims.append(float(ssim_torch(out, t)[0]))
    assert len(set(np.round(psnrs, 3))) == 4
    assert res["psnr"] == pytest.approx(np.mean(psnrs), abs=1e-9)      # mean over frames, not over ratios
    assert res["ssim"] == pytest.approx(np.mean(ssims), abs=1e-9)
    assert list(res["per_ratio"]) == ["x100", "x300", "x1000"]          # numeric order
    assert res["per_ratio"]["x100"]["psnr"] == pytest.approx((psnrs[1] + psnrs[3]) / 2, abs=1e-9)
    assert res["per_ratio"]["x100"]["ssim"] == pytest.approx((ssims[1] + ssims[3]) / 2, abs=1e-9)
    assert res["per_ratio"]["x300"] == pytest.approx({"psnr": psnrs[0], "ssim": ssims[0]}, abs=1e-9)
    assert res["per_ratio"]["x1000"] == pytest.approx({"psnr": psnrs[2], "ssim": ssims[2]}, abs=1e-9)


def test_forward_padded_crops_back():
    model, _ = tiny_model(seed=1)
    model.eval()
    with torch.no_grad():
        x = torch.rand(1, 4, 32, 48)
        assert torch.equal(forward_padded(model, x), model(x))
        y = x[..., :24, :40]
        out = forward_padded(model, y)
        assert out.shape == (1, 3, 48, 80)
        ref = model(F.pad(y, (0, 8, 0, 8), mode="reflect"))[..., :48, :80]
        assert torch.equal(out, ref)


def test_fit_keeps_best_validation_weights(tmp_path):
    model, spec = tiny_model()
    ds = TinyPairs(seed=4)
    # black targets: as the model learns to output the (bright) training targets, validation PSNR falls,
    # so the best weights are the early ones, not the last
    frames = [(f"v{i}", ds[10**6 + i]["input"].numpy(), np.zeros((3, 64, 64), np.float32), 100.0)
              for i in range(2)]
    cfg = quick_cfg(steps=6, val_every=2, ckpt_every=3, lr=3e-3)
    summary = fit(model, spec, ds, tmp_path / "run", cfg, objective=supervised_objective("l1"),
                  val_frames=frames, progress=False)

    vals = [r for r in summary["history"] if "val" in r]
    assert [r["step"] for r in vals] == [2, 4, 6]
    best = summary["best"]
    assert best["val"]["psnr"] == max(r["val"]["psnr"] for r in vals) > vals[-1]["val"]["psnr"]
    assert best["step"] < 6
    assert not state_dicts_equal(artifact_weights(tmp_path / "run" / "best"),
                                 artifact_weights(tmp_path / "run" / "last"))
    best_model, best_spec = load_checkpoint(tmp_path / "run" / "best")
    assert best_spec["provenance"]["train"]["step"] == best["step"]
    assert best_spec["provenance"]["metrics"]["validation"]["psnr"] == pytest.approx(best["val"]["psnr"])
    assert validate(best_model, frames, CPU)["psnr"] == pytest.approx(best["val"]["psnr"], abs=1e-6)


# --- schedules -----------------------------------------------------------------------------------------

def test_lr_schedules():
    cos = TrainConfig(steps=100, lr=1e-3, min_lr=1e-5, schedule="cosine")
    lrs = [lr_at(cos, s) for s in range(101)]
    assert lrs[0] == pytest.approx(1e-3, rel=1e-12)
    assert lrs[50] == pytest.approx((1e-3 + 1e-5) / 2, rel=1e-12)
    assert lrs[100] == pytest.approx(1e-5, rel=1e-12)
    assert lrs[99] == pytest.approx(1e-5, rel=0.03)          # the last step trained is at min_lr, nearly
    assert all(a > b for a, b in zip(lrs, lrs[1:]))

    step = TrainConfig(steps=100, lr=1e-3, schedule="step")
    assert {lr_at(step, s) for s in range(80)} == {1e-3}
    assert [lr_at(step, s) for s in range(80, 100)] == pytest.approx([1e-4] * 20, rel=1e-12)

    warm = TrainConfig(steps=100, lr=1e-3, min_lr=1e-5, warmup=4)
    assert [lr_at(warm, s) for s in range(5)] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3], rel=1e-12)
    assert lr_at(warm, 100) == pytest.approx(1e-5, rel=1e-12)


# --- the train stage -----------------------------------------------------------------------------------

def test_train_stage_end_to_end(tmp_path):
    out = tmp_path / "teacher"
    cfg = TrainConfig(steps=3, batch_size=1, lr=1e-4, threads=1)
    summary = train(out, widths=[4, 4, 4, 4, 4], data=DataOptions(patch=64, dead_leaves=2, val="none"),
                    cfg=cfg, progress=False)

    assert summary["steps"] == 3 and summary["best"] is None
    assert not (out / "best").exists()
    model, spec = load_checkpoint(out)
    assert spec["widths"] == [4, 4, 4, 4, 4] and spec["cfa"] == "bayer"
    prov = spec["provenance"]
    assert prov["stage"] == "train" and prov["loss"] == "l1"
    assert prov["train"]["step"] == 3 and prov["train"]["config"]["steps"] == 3
    assert prov["train"]["world_size"] == 1 and prov["train"]["wall_s"] > 0
    assert prov["data"]["patch"] == 64 and prov["data"]["val"] == "none"
    # the final artifact is the `last` weights (no validation, so no best)
    assert state_dicts_equal(artifact_weights(out), artifact_weights(out / "last"))
    state = json.loads((out / STATE_JSON).read_text())
    assert state["step"] == 3 and math.isfinite(state["history"][-1]["loss"])
    with torch.no_grad():
        y = model(torch.rand(1, 4, 32, 32))
    assert y.shape == (1, 3, 64, 64) and torch.isfinite(y).all()


def test_train_init_takes_a_shipped_name_and_refuses_exported_files(tmp_path):
    from darkc.models import available_pretrained

    cfg = TrainConfig(steps=1, batch_size=1, lr=1e-5, threads=1)
    data = DataOptions(patch=64, dead_leaves=2, val="none")
    assert "student" in available_pretrained()          # shipped: its absence is a packaging failure, not a skip
    train(tmp_path / "ft", init="student", loss="l1-chroma", data=data, cfg=cfg, progress=False)
    _, spec = load_checkpoint(tmp_path / "ft")
    assert spec["widths"] == [8, 16, 32, 64, 128] and spec["provenance"]["parent"] == "student"
    assert spec["provenance"]["loss"] == "l1-chroma"
    fake = tmp_path / "model.onnx"
    fake.write_bytes(b"not onnx")
    with pytest.raises(DarkcError, match="--init .*onnx file"):
        train(tmp_path / "bad", init=str(fake), data=data, cfg=cfg, progress=False)

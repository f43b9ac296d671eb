"""Teacher training, and the one training loop every stage that trains (train, prune fine-tune, distill) uses.

``fit`` runs Adam with a step or cosine schedule on index-deterministic datasets, validates every N
steps, writes artifact checkpoints (``model.safetensors`` + ``model.json``) plus the training state
(optimizer moments and step in ``train_state.safetensors`` / ``train_state.json``, never pickled),
resumes from them, and runs unchanged under ``torchrun`` (DistributedDataParallel; gloo on CPU).
"""
from __future__ import annotations

import json
import math
import os
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm import tqdm

from .errors import DarkcError, atomic_path
from .losses import get_loss
from .metrics import psnr_torch, ssim_torch

STATE_JSON = "train_state.json"
STATE_TENSORS = "train_state.safetensors"


@dataclass
class TrainConfig:
    """Options of the training loop (recorded in every checkpoint's provenance)."""
    steps: int = 20000
    batch_size: int = 4                 # global batch (split across ranks under torchrun)
    lr: float = 1e-4
    min_lr: float = 1e-5
    schedule: str = "cosine"            # 'cosine' | 'step' (x0.1 at 80 % of the steps, like SID's epoch 2000)
    warmup: int = 0
    val_every: int = 500
    ckpt_every: int = 500
    seed: int = 0
    threads: int | None = None
    grad_clip: float | None = 1.0
    log_every: int = 10
    keep_best: bool = True              # the artifact written at the end holds the best-validation weights

    def check(self) -> "TrainConfig":
        if self.steps <= 0 or self.batch_size <= 0:
            raise DarkcError(f"--steps and --batch-size must be positive (got {self.steps}, {self.batch_size})")
        if self.schedule not in ("cosine", "step"):
            raise DarkcError(f"unknown --schedule {self.schedule!r}: use 'cosine' or 'step'")
        if not self.lr > 0:
            raise DarkcError(f"--lr must be positive, got {self.lr}")
        return self


def lr_at(cfg: TrainConfig, step: int) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    if cfg.schedule == "step":
        return cfg.lr if step < 0.8 * cfg.steps else cfg.lr * 0.1
    t = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * t))


# ---------------------------------------------------------------- distributed helpers
def rank_world() -> tuple[int, int]:
    """``(rank, world size)`` of this process: ``(0, 1)`` outside torch.distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_distributed() -> tuple[int, int]:
    """Join the process group when started by torchrun (WORLD_SIZE > 1); gloo on CPU, nccl on CUDA."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return rank_world()


def default_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


# ---------------------------------------------------------------- objective and validation
Objective = Callable[[nn.Module, dict], tuple[torch.Tensor, dict]]


def supervised_objective(loss_name: str = "l1", **loss_kw) -> Objective:
    """Loss between the model's output for ``batch['input']`` and ``batch['target']``."""
    loss_fn = get_loss(loss_name, **loss_kw)

    def objective(model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict]:
        out = model(batch["input"])
        out = out if loss_name in ("l1", "l1-gamma", "isp-l1") else out.clamp(0, 1)
        if loss_name == "isp-l1":       # raw-output models: the loss renders through each sample's ISP
            return loss_fn(out, batch["target"], batch.get("isp")), {}
        return loss_fn(out, batch["target"]), {}

    objective.loss_fn = loss_fn  # type: ignore[attr-defined]
    return objective


@torch.no_grad()
def validate(model: nn.Module, frames, device: torch.device) -> dict:
    """PSNR/SSIM of the model on whole validation frames, overall and per ratio."""
    model.eval()
    by_ratio: dict[str, list] = {}
    for _name, inp, target, ratio in frames:
        out = forward_padded(model, torch.from_numpy(inp)[None].to(device)).clamp(0, 1).cpu()
        t = torch.from_numpy(target)[None]
        by_ratio.setdefault(f"x{ratio:g}", []).append((float(psnr_torch(out, t)[0]), float(ssim_torch(out, t)[0])))
    model.train()
    allv = [v for vals in by_ratio.values() for v in vals]
    res = {"psnr": float(np.mean([v[0] for v in allv])), "ssim": float(np.mean([v[1] for v in allv]))}
    res["per_ratio"] = {k: {"psnr": float(np.mean([v[0] for v in vals])), "ssim": float(np.mean([v[1] for v in vals]))}
                        for k, vals in sorted(by_ratio.items(), key=lambda kv: float(kv[0][1:]))}
    return res


# ---------------------------------------------------------------- state I/O (no pickle)
def _save_state(out: Path, model: nn.Module, spec: dict, opt: torch.optim.Optimizer, step: int,
                cfg: TrainConfig, history: list, best: dict | None, extra_modules: dict[str, nn.Module]) -> None:
    from .models import save_checkpoint

    tensors: dict[str, torch.Tensor] = {}
    steps = {}
    for gi, group in enumerate(opt.param_groups):
        for pi, p in enumerate(group["params"]):
            st = opt.state.get(p, {})
            for k, v in st.items():
                if torch.is_tensor(v) and v.dim() > 0:
                    tensors[f"opt.{gi}.{pi}.{k}"] = v.detach().cpu().contiguous()
                elif k == "step":
                    steps[f"{gi}.{pi}"] = float(v)
    for name, mod in extra_modules.items():
        for k, v in mod.state_dict().items():
            tensors[f"extra.{name}.{k}"] = v.detach().cpu().contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    save_checkpoint(model, spec, out / "last")
    with atomic_path(out / STATE_TENSORS) as tmp:
        save_file(tensors, str(tmp))
    state = {"step": step, "config": asdict(cfg), "adam_steps": steps, "history": history, "best": best}
    with atomic_path(out / STATE_JSON) as tmp:
        tmp.write_text(json.dumps(state, indent=1))


def _load_state(out: Path, model: nn.Module, opt: torch.optim.Optimizer,
                extra_modules: dict[str, nn.Module]) -> dict:
    from .models import load_checkpoint

    sj, st = out / STATE_JSON, out / STATE_TENSORS
    if not sj.is_file() or not st.is_file():
        raise DarkcError(f"--resume: no training state in {out} ({STATE_JSON} / {STATE_TENSORS} missing); "
                         f"start without --resume")
    try:
        state = json.loads(sj.read_text())
        tensors = load_file(str(st))
    except Exception as exc:  # noqa: BLE001 - any decode failure is a corrupt state file
        raise DarkcError(f"--resume: training state in {out} is corrupt ({exc}); start again without --resume") from exc
    last, _ = load_checkpoint(out / "last")
    model.load_state_dict(last.state_dict())
    dev = next(model.parameters()).device
    for gi, group in enumerate(opt.param_groups):
        for pi, p in enumerate(group["params"]):
            st_p = {}
            for k in ("exp_avg", "exp_avg_sq"):
                key = f"opt.{gi}.{pi}.{k}"
                if key in tensors:
                    st_p[k] = tensors[key].to(dev)
            if st_p:
                st_p["step"] = torch.tensor(state["adam_steps"].get(f"{gi}.{pi}", state["step"]))
                opt.state[p] = st_p
    for name, mod in extra_modules.items():
        sd = {k[len(f"extra.{name}."):]: v for k, v in tensors.items() if k.startswith(f"extra.{name}.")}
        mod.load_state_dict(sd)
    torch.set_rng_state(tensors["rng.torch"])
    return state


def forward_padded(model: nn.Module, x: torch.Tensor, multiple: int | None = None) -> torch.Tensor:
    """Run ``model`` on NCHW ``x`` reflect-padded to a multiple of ``multiple`` (default: the model's size multiple,
    from its arch adapter); crop the output back."""
    if multiple is None:
        from .models import adapter_of

        multiple = adapter_of(model).size_multiple(model)
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        x = torch.nn.functional.pad(x, (0, pw, 0, ph), mode="reflect")
    out = model(x)
    s = out.shape[-1] // x.shape[-1]
    return out[..., : h * s, : w * s]


def _collate(items: list[dict]) -> dict:
    return {k: torch.stack([it[k] for it in items]) for k in items[0]}


# ---------------------------------------------------------------- the loop
def fit(model: nn.Module, spec: dict, dataset, out_dir: str | os.PathLike, cfg: TrainConfig, *,
        objective: Objective, val_frames=None, resume: bool = False, progress: bool = True,
        extra_modules: dict[str, nn.Module] | None = None, provenance: dict | None = None) -> dict:
    """Train ``model`` on ``dataset`` (index-deterministic items) and write checkpoints under ``out_dir``.

    Sample ``step * batch + b`` of the dataset is batch element ``b`` at ``step``; rank ``r`` of ``W``
    takes elements ``b = r, r + W, ...``, so a distributed run sees the same global batches as a
    single process. ``extra_modules`` (e.g. distillation adapters) are optimised and checkpointed in
    the training state, but are not part of the saved model artifact.

    Writes ``out_dir/last`` (latest weights), ``out_dir/best`` (best validation PSNR, if validating)
    and returns a summary dict (steps, wall time, final/best validation).
    """
    from .models import save_checkpoint

    cfg.check()
    out = Path(out_dir)
    rank, world = init_distributed()
    if cfg.batch_size % world:
        raise DarkcError(f"--batch-size {cfg.batch_size} must be divisible by the number of processes ({world})")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    device = default_device()
    model.to(device).train()
    extra_modules = extra_modules or {}
    for m in extra_modules.values():
        m.to(device).train()
    params = list(model.parameters()) + [p for m in extra_modules.values() for p in m.parameters()]
    opt = torch.optim.Adam(params, lr=cfg.lr)

    start, history, best = 0, [], None
    if resume:
        state = _load_state(out, model, opt, extra_modules)
        start, history, best = state["step"], state["history"], state.get("best")
        if start >= cfg.steps:
            raise DarkcError(f"--resume: {out} already finished {start} steps; raise --steps to train longer")
    elif (out / STATE_JSON).exists():
        raise DarkcError(f"{out} already holds a training run: pass --resume to continue it or choose another -o")

    net = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        if extra_modules:
            extra_modules = {k: nn.parallel.DistributedDataParallel(
                m, device_ids=[device.index] if device.type == "cuda" else None) for k, m in extra_modules.items()}
    t0 = time.time()
    wall_before = history[-1]["wall_s"] if history else 0.0
    bar = tqdm(total=cfg.steps, initial=start, desc="darkc train", unit="step",
               disable=not progress or rank != 0, dynamic_ncols=True)
    obj_model = _ObjectiveModel(net, extra_modules)
    running = []
    step = start
    for step in range(start, cfg.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(cfg, step)
        items = [dataset[step * cfg.batch_size + b] for b in range(rank, cfg.batch_size, world)]
        batch = {k: v.to(device) for k, v in _collate(items).items()}
        loss, logs = objective(obj_model, batch)
        if not torch.isfinite(loss):
            raise DarkcError(f"training diverged at step {step} (loss {loss.item()}): lower --lr or check the data")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        running.append(float(loss.detach()))
        bar.update(1)
        done = step + 1
        if done % cfg.log_every == 0 or done == cfg.steps:
            bar.set_postfix(loss=f"{np.mean(running):.4f}", lr=f"{lr_at(cfg, step):.1e}")
        record = None
        if val_frames is not None and (done % cfg.val_every == 0 or done == cfg.steps):
            if rank == 0:
                v = validate(model, val_frames, device)
                record = {"step": done, "loss": float(np.mean(running)), "val": v,
                          "wall_s": wall_before + time.time() - t0}
                history.append(record)
                running = []
                if best is None or v["psnr"] > best["val"]["psnr"]:
                    best = record
                    save_checkpoint(model, _with_provenance(spec, provenance, cfg, done, v), out / "best")
                if progress:
                    bar.write(f"step {done}: loss {record['loss']:.4f}  val PSNR {v['psnr']:.2f} dB  SSIM {v['ssim']:.4f}")
        if done % cfg.ckpt_every == 0 or done == cfg.steps:
            if record is None and rank == 0:
                history.append({"step": done, "loss": float(np.mean(running)) if running else None,
                                "wall_s": wall_before + time.time() - t0})
                running = []
            if rank == 0:
                _save_state(out, model, _with_provenance(spec, provenance, cfg, done, None), opt, done, cfg,
                            history, best, {k: _unwrap(m) for k, m in extra_modules.items()})
        if world > 1:
            dist.barrier()
    bar.close()
    wall = wall_before + time.time() - t0
    return {"steps": cfg.steps, "wall_s": wall, "best": best, "history": history, "world_size": world,
            "device": str(device)}


def _unwrap(m: nn.Module) -> nn.Module:
    return m.module if isinstance(m, nn.parallel.DistributedDataParallel) else m


class _ObjectiveModel(nn.Module):
    """What an objective sees: call it like the model; ``.extra[name]`` gives auxiliary modules."""

    def __init__(self, net: nn.Module, extra: dict[str, nn.Module]):
        super().__init__()
        self.net = net
        self.extra = extra

    @property
    def module(self) -> nn.Module:
        return _unwrap(self.net)

    def forward(self, x):
        return self.net(x)


def _with_provenance(spec: dict, provenance: dict | None, cfg: TrainConfig, step: int, val: dict | None) -> dict:
    spec = json.loads(json.dumps(spec))
    prov = dict(spec.get("provenance") or {})
    prov.update(provenance or {})
    prov["train"] = {"config": asdict(cfg), "step": step}
    if val is not None:
        prov.setdefault("metrics", {})["validation"] = val
    spec["provenance"] = prov
    return spec


# ---------------------------------------------------------------- the teacher-training stage
@dataclass
class DataOptions:
    data: str = "synthetic"             # 'synthetic' or a SID-layout folder / list file
    images: list[str] = field(default_factory=list)   # clean image folders for synthetic data
    cfa: str = "bayer"
    profile: str | None = None          # a profile name, 'pool' (the CFA's sensor pool), or None: the pool for
                                        # raw-output models, the CFA's default sensor for sRGB ones (an sRGB model
                                        # cannot see which camera's colour transform to apply)
    patch: int = 512                    # raw pixels
    ratios: tuple = (100, 250, 300)
    dead_leaves: int = 16
    val: str = "reference"              # 'reference' (built-in synthetic set), 'none', or a folder / list


def build_train_data(opts: DataOptions, seed: int, target: str = "srgb", noise_input: str = "none"):
    """The training dataset and validation frames the options describe, with inputs and targets as a model of
    output kind ``target`` ('srgb' | 'raw') and noise input ``noise_input`` ('none' | 'std-map') takes them."""
    from .data import load_pairs
    from .data.datasets import FullFrames, SIDPatches, SyntheticPairs
    from .data.profiles import training_profiles
    from .data.sources import training_images

    if opts.data == "synthetic":
        profiles = training_profiles(opts.profile, opts.cfa, pool=opts.profile == "pool" or
                                     (opts.profile is None and target == "raw"))
        ds = SyntheticPairs(training_images(opts.images or None, opts.dead_leaves), profiles,
                            patch=opts.patch, ratios=opts.ratios, seed=seed, target=target, noise_input=noise_input)
        cfa = profiles[0].cfa
    else:
        if target != "srgb" or noise_input != "none":
            raise DarkcError(f"--data {opts.data}: training raw-output or noise-conditioned models on SID folders is not "
                             f"supported yet; train them on --data synthetic")
        ds = SIDPatches(load_pairs(opts.data, "train"), patch=opts.patch, seed=seed)
        cfa = ds.cfa
    if opts.val == "none":
        val = None
    elif opts.val == "reference":
        from .evaluate import reference_frames
        val = reference_frames(cfa, target=target, noise_input=noise_input)
    else:
        if target != "srgb" or noise_input != "none":
            raise DarkcError(f"--val {opts.val}: validate raw-output or noise-conditioned models on --val reference")
        val = FullFrames.from_pairs(load_pairs(opts.val, "val"))
    return ds, val, cfa


def train(out_dir: str | os.PathLike, *, arch: str = "sid-unet", widths: list[int] | None = None,
          loss: str = "l1", data: DataOptions | None = None, cfg: TrainConfig | None = None,
          resume: bool = False, init: str | None = None, progress: bool = True, output: str = "srgb",
          noise: str = "none") -> dict:
    """``darkc train``: train a model from scratch (or from ``init``) and write its artifact to ``out_dir``.

    ``out_dir/best`` and ``out_dir/last`` are artifacts; ``out_dir`` itself receives the final one
    (best validation weights when validating) with provenance: command, data, steps, wall time.
    """
    from .models import build_model, load_checkpoint, save_checkpoint

    from .models import normalize_spec

    data = data or DataOptions()
    cfg = (cfg or TrainConfig()).check()
    if init:
        from .models import resolve_model_ref

        kind, init_path = resolve_model_ref(init)
        if kind not in ("pretrained", "checkpoint"):
            raise DarkcError(f"--init {init} is a {kind} file; pass a checkpoint directory or a shipped name")
        model, spec = load_checkpoint(init_path)
        output, noise = spec["output"], spec["input"]["noise"]
    ds, val, cfa = build_train_data(data, cfg.seed, output, noise)
    if init and spec.get("cfa") != cfa:
        raise DarkcError(f"--init {init} is a {spec.get('cfa')} model but the data is {cfa}")
    if not init:
        spec = normalize_spec({"arch": arch, "cfa": cfa, "output": output, "input": {"noise": noise},
                               **({"widths": list(widths)} if widths else {})})
        model = build_model(spec)
    prov = {"command": "darkc " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv else "",
            "parent": str(init) if init else None, "stage": "train", "loss": loss,
            "data": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(data).items()}}
    summary = fit(model, spec, ds, out_dir, cfg, objective=supervised_objective(loss), val_frames=val,
                  resume=resume, progress=progress, provenance=prov)
    rank, _ = rank_world()
    if rank == 0:
        final_src = Path(out_dir) / ("best" if (cfg.keep_best and summary["best"]) else "last")
        final, fspec = load_checkpoint(final_src)
        fspec["provenance"]["train"]["wall_s"] = summary["wall_s"]
        fspec["provenance"]["train"]["device"] = summary["device"]
        fspec["provenance"]["train"]["world_size"] = summary["world_size"]
        save_checkpoint(final, fspec, out_dir)
    return summary

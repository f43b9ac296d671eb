"""Fine-tuning a pruned model against its unpruned parent: the inputs (no targets needed), the objective and the
run (:func:`finetune_to_parent`).

Used between iterative pruning steps (:func:`darkc.compress.prune.prune`) and, for unlabelled raw folders, by
distillation (:func:`darkc.compress.distill.distill_data`).
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from darkc.data.files import example_exts, find_raw_files
from darkc.errors import DarkcError


class OffsetInputs(Dataset):
    """The packed inputs of another index-deterministic dataset, shifted by ``offset`` items."""

    def __init__(self, dataset, offset: int = 0):
        self.dataset, self.offset = dataset, offset

    def __len__(self) -> int:
        return 10**9

    def __getitem__(self, i: int) -> dict:
        return {"input": self.dataset[self.offset + i]["input"]}


class RawFolderInputs(Dataset):
    """Random packed crops of the raw files under a folder, amplified by a random SID ratio.

    Item ``i`` (a pure function of seed and ``i``): dict(input=(C, patch/s, patch/s) float32 in [0, 1]), followed
    with ``noise_input="std-map"`` by the noise-std channel from each file's level
    (:func:`darkc.data.noise_level.level_of_file`: its DNG NoiseProfile, a known profile, else estimated).
    """

    def __init__(self, folder: str | Path, cfa: str, patch: int = 256, ratios=(100, 250, 300), seed: int = 0,
                 cache: int = 4, noise_input: str = "none"):
        from darkc.data.datasets import check_patch
        from darkc.data.raw import read_raw

        folder = Path(folder)
        if not folder.is_dir():
            raise DarkcError(f"--data {folder} is neither 'synthetic' nor a folder of raw files")
        self.files = find_raw_files(folder)
        if not self.files:
            raise DarkcError(f"--data {folder} holds no raw files ({example_exts()}); "
                             f"pass a folder of camera raws or use 'synthetic'")
        first = read_raw(self.files[0])
        if first.cfa != cfa:
            raise DarkcError(f"--data {self.files[0]} is a {first.cfa} raw but the model takes {cfa}; "
                             f"pass raws of the model's sensor type")
        self.cfa, self.patch = cfa, check_patch(patch, cfa)
        self.ratios, self.seed, self.noise_input = tuple(ratios), seed, noise_input
        self._cache: dict[int, np.ndarray] = {0: first.packed()}
        self._cache_size = cache
        self._levels: dict[int, object] = {}

    def __len__(self) -> int:
        return 10**9

    def _packed(self, k: int) -> np.ndarray:
        from darkc.data.raw import read_raw

        if k not in self._cache:
            frame = read_raw(self.files[k])
            if frame.cfa != self.cfa:
                raise DarkcError(f"--data {self.files[k]} is a {frame.cfa} raw but the model takes {self.cfa}")
            if len(self._cache) >= self._cache_size:
                self._cache.pop(next(iter(self._cache)))
            self._cache[k] = frame.packed()
        return self._cache[k]

    def __getitem__(self, i: int) -> dict:
        from darkc.data import cfa as cfa_mod
        from darkc.data.raw import amplify

        rng = np.random.default_rng([self.seed, i, 17])
        k = int(rng.integers(len(self.files)))
        packed = self._packed(k)
        p = self.patch // cfa_mod.scale(self.cfa)
        h, w = packed.shape[1:]
        if h < p or w < p:
            raise DarkcError(f"--data {self.files[k]} is smaller than the fine-tuning patch ({self.patch} px); "
                             f"lower --patch")
        y, x = int(rng.integers(h - p + 1)), int(rng.integers(w - p + 1))
        ratio = float(self.ratios[int(rng.integers(len(self.ratios)))])
        inp = amplify(np.ascontiguousarray(packed[:, y:y + p, x:x + p]), ratio)
        if self.noise_input != "none":
            from darkc.data.noise_level import condition, level_of_file

            if k not in self._levels:
                self._levels[k] = level_of_file(self.files[k])
            inp = condition(inp, ratio, self._levels[k], self.noise_input)
        return {"input": torch.from_numpy(np.ascontiguousarray(inp, np.float32))}


def finetune_inputs(data, spec: dict, patch: int, seed: int):
    """Inputs of the model of ``spec``: 'synthetic' -> :func:`darkc.data.datasets.model_pairs` (the sensors, noise
    input and inputs it trains on); a folder -> its raws (with the noise channel it takes); a Dataset as is."""
    from darkc.models.builder import io_kind

    if isinstance(data, Dataset):
        return data
    if str(data) == "synthetic":
        from darkc.data.datasets import model_pairs
        from darkc.data.sources import training_images

        return model_pairs(spec, training_images(), patch=patch, seed=seed, targets=False)
    return RawFolderInputs(data, spec["cfa"], patch=patch, seed=seed, noise_input=io_kind(spec)[1])


def output_distance(output: str = "srgb") -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """How a student's output is compared with its teacher's: L1 for sRGB outputs; for raw outputs the
    ``l1-gamma`` loss (:class:`darkc.losses.GammaL1Loss`), which weights shadow errors as the sRGB render does
    (a plain L1 on linear raw counts an error in the dark regions, what these models exist for, least)."""
    if output == "raw":
        from darkc.losses import get_loss

        return get_loss("l1-gamma")
    return F.l1_loss


def match_parent_objective(teacher: nn.Module, output: str = "srgb"):
    """``fit`` objective of fine-tuning after pruning: :func:`output_distance` between the model's output and its
    frozen unpruned parent's (unclamped) on the same inputs; distillation's richer objective is
    :func:`darkc.compress.distill.distill_objective`."""
    distance = output_distance(output)

    def objective(model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict]:
        x = batch["input"]
        with torch.no_grad():
            target = teacher.to(x.device)(x)
        return distance(model(x), target), {}

    return objective


def finetune_to_parent(model: nn.Module, spec: dict, parent: nn.Module, inputs, step: int, iters: int,
                       batch_size: int, lr: float, seed: int, progress: bool = True) -> dict:
    """Fine-tune ``model`` (spec ``spec``) in place for ``iters`` iterations of ``darkc.train.fit`` (Adam at ``lr``,
    cosine to ``lr / 10``) on :func:`match_parent_objective` against its frozen ``parent``.

    Pruning step ``step`` (from 1) reads ``inputs`` (an index-deterministic dataset, :func:`finetune_inputs`) from
    item ``(step - 1) * iters * batch_size`` on, so each step sees fresh inputs; its seed is ``seed + step``.

    Returns:
        The log entry ``{"step", "iters", "wall_s", "loss"}`` (``loss``: the last logged loss, None without any).
    """
    from darkc.train import TrainConfig, fit

    cfg = TrainConfig(steps=iters, batch_size=batch_size, lr=lr, min_lr=lr * 0.1, val_every=10**9,
                      ckpt_every=iters, seed=seed + step, log_every=max(1, iters // 20))
    with tempfile.TemporaryDirectory(prefix="darkc-prune-finetune-") as tmp:
        summary = fit(model, spec, OffsetInputs(inputs, (step - 1) * iters * batch_size), tmp, cfg,
                      objective=match_parent_objective(parent, spec["output"]), progress=progress,
                      provenance={"stage": "prune-finetune", "step": step})
    return {"step": step, "iters": iters, "wall_s": summary["wall_s"],
            "loss": summary["history"][-1]["loss"] if summary["history"] else None}

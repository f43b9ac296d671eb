"""``darkc distill``: teach a compact student to reproduce a trained teacher.

Ten lines of use::

    from darkc.compress.distill import distill

    report = distill("teacher", "runs/student", student_widths=[8, 16, 32, 64, 128], steps=2000)
    report = distill("teacher", "runs/student-pruned", student="runs/pruned")        # pruned-teacher init
    report = distill("teacher", "runs/student-own", data="/captures/new-sensor")     # unlabelled raw files
    report["student"]["psnr"], report["student"]["psnr_vs_teacher"], report["student"]["macs"]["1920x1080"]

Losses (summed): output distillation ``beta * L1 + (1 - beta) * (1 - MS-SSIM)`` between the student's and the
frozen teacher's outputs (raw-output models: ``l1-gamma`` in place of L1, see
:func:`darkc.compress.finetune.output_distance`), optionally plus ``chroma_weight`` x L1 of their chroma (RGB minus the
per-pixel mean; sRGB outputs only); optional feature distillation at the decoder levels (the feature taps of the
arch's adapter, :func:`darkc.models.get_adapter`: one per decoder resolution), each student feature mapped to
the teacher's width by a 1x1 adapter and compared with a scale-free L1 (the adapters are trained and checkpointed in the training state but never saved into the student artifact); an
optional ground-truth L1 term when the data has targets (synthetic pairs or the SID layout). Training runs
through :func:`darkc.train.fit` (same schedule, checkpoints, resume, progress, torchrun as ``darkc train``).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from darkc.errors import DarkcError, atomic_path
from darkc.models.adapter import adapter_of
from darkc.provenance import command_line, portable

KD_KINDS = ("output", "features")
REPORT_JSON = "distill_report.json"
REPORT_MD = "distill_report.md"


# ---------------------------------------------------------------- feature taps and adapters
def feature_layers(model: nn.Module) -> list[str]:
    """The modules whose outputs feature distillation matches: the arch adapter's taps (one per decoder level)."""
    return adapter_of(model).feature_taps(model)


def adapter_key(name: str) -> str:
    """``ModuleDict`` key of the adapter for layer ``name`` (module paths hold dots, keys may not)."""
    return name.replace(".", "__")


def _submodule(model: nn.Module, name: str) -> nn.Module | None:
    try:
        return model.get_submodule(name)
    except AttributeError:
        return None


class FeatureTap:
    """Forward hooks that keep the outputs of ``layers`` of ``model`` (default: its arch's feature taps) from its
    latest forward."""

    def __init__(self, model: nn.Module, layers=None):
        self.layers = tuple(layers if layers is not None else feature_layers(model))
        self.features: dict[str, torch.Tensor] = {}
        missing = [n for n in self.layers if _submodule(model, n) is None]
        if missing or not self.layers:
            raise DarkcError(f"feature distillation needs the layers {missing or 'to tap'}, which "
                             f"{type(model).__name__} lacks; use --kd output")
        self._handles = [model.get_submodule(n).register_forward_hook(self._hook(n)) for n in self.layers]

    def _hook(self, name: str):
        def hook(_module, _inputs, output):
            self.features[name] = output
        return hook

    def take(self) -> list[torch.Tensor]:
        feats = [self.features.pop(n) for n in self.layers]
        return feats

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []


@torch.no_grad()
def _tap_sizes(model: nn.Module, names, side: int) -> dict[str, tuple[int, int]]:
    """Output (H, W) of each tapped module of ``model`` on one random packed input ``side`` px square, in the order
    the forward pass reaches them."""
    sizes: dict[str, tuple[int, int]] = {}
    hooks = [model.get_submodule(n).register_forward_hook(
        lambda m, i, o, n=n: sizes.__setitem__(n, tuple(o.shape[-2:]))) for n in names]
    p = next(model.parameters())
    was = model.training
    try:
        model.eval()(torch.rand(1, adapter_of(model).in_channels, side, side, device=p.device, dtype=p.dtype))
    finally:
        model.train(was)
        for h in hooks:
            h.remove()
    return sizes


def tap_pairs(student: nn.Module, teacher: nn.Module) -> list[tuple[str, str]]:
    """``(student layer, teacher layer)`` pairs that feature distillation compares.

    Same taps in both (a pruned teacher, the same arch): paired by name. Different architectures (a mobile-unet
    student of a SID U-Net teacher, a user's network): each teacher tap is paired with the student tap whose
    output has the same spatial size (the last one at that size), traced on one input; teacher taps without a
    student tap at their resolution are left out. A one-line error when no resolution is shared."""
    t_taps, s_taps = feature_layers(teacher), feature_layers(student)
    if t_taps and all(_submodule(student, n) is not None for n in t_taps) and set(t_taps) <= set(s_taps):
        return [(n, n) for n in t_taps]
    side = 4 * max(adapter_of(teacher).size_multiple(teacher), adapter_of(student).size_multiple(student))
    by_size = {hw: n for n, hw in _tap_sizes(student, s_taps, side).items()}
    pairs = [(by_size[hw], n) for n, hw in _tap_sizes(teacher, t_taps, side).items() if hw in by_size]
    if not pairs:
        raise DarkcError(f"feature distillation: the student's taps {s_taps} and the teacher's {t_taps} share no "
                         f"resolution; use --kd output")
    return pairs


def make_adapters(student: nn.Module, teacher: nn.Module, pairs=None) -> nn.ModuleDict:
    """A 1x1 conv per tapped pair (default: :func:`tap_pairs`) from the student layer's width to the teacher
    layer's (training only, dropped at export); keyed by :func:`adapter_key` of the student layer."""
    pairs = pairs if pairs is not None else tap_pairs(student, teacher)
    return nn.ModuleDict({adapter_key(s): nn.Conv2d(student.get_submodule(s).out_channels,
                                                    teacher.get_submodule(t).out_channels, 1) for s, t in pairs})


#: How a raw-output student's output is compared with its teacher's (``--raw-loss``). On teacher-raw's pruned
#: half-width student (400 steps, lr 2e-3, raw PSNR vs the ground truth of 8 training patches; teacher 28.4 dB):
#: l1 26.5 dB, l1-gamma 26.1; at lr 5e-4: l1 25.5, isp-l1 24.2 (the ISP's gamma and matrix make its gradient
#: dominated by the darkest pixels).
RAW_LOSSES = ("isp-l1", "l1-gamma", "l1")


def distill_objective(teacher: nn.Module, *, kd=("output",), gt_weight: float = 0.0, feature_weight: float = 0.1,
                      beta: float = 0.99, chroma_weight: float = 0.0, student: nn.Module | None = None,
                      output: str = "srgb", raw_loss: str = "isp-l1"):
    """The ``fit`` objective of distillation (see the module docstring for the terms).

    ``student`` is the bare student network (hooks for feature KD go on it); the adapters come from the
    objective model's ``extra['adapters']``. ``output`` is both models' output kind: ``raw`` compares outputs with
    ``raw_loss`` (:data:`RAW_LOSSES`): ``isp-l1`` where the batch carries each sample's ISP (synthetic data), else
    ``l1-gamma`` (shadows weighted as the sRGB render weights them); ``l1-gamma``; or ``l1`` on the linear raw;
    and has no chroma term. Logs each term.
    """
    from darkc.compress.finetune import output_distance
    from darkc.losses import MSSSIMLoss

    if output == "raw" and chroma_weight > 0:
        raise DarkcError(f"--chroma-weight {chroma_weight}: the chroma term compares RGB outputs, and this teacher "
                         f"outputs raw (its colour comes from the file's own matrix); drop --chroma-weight")
    if raw_loss not in RAW_LOSSES:
        raise DarkcError(f"--raw-loss {raw_loss!r}: use one of {', '.join(RAW_LOSSES)}")
    plain = F.l1_loss if output == "raw" and raw_loss == "l1" else output_distance(output)
    isp_loss = None
    if output == "raw" and raw_loss == "isp-l1":  # synthetic batches carry each sample's ISP: compare as rendered
        from darkc.losses import IspL1Loss

        isp_loss = IspL1Loss()

    def distance(a: torch.Tensor, b: torch.Tensor, isp: torch.Tensor | None = None) -> torch.Tensor:
        return isp_loss(a, b, isp) if isp_loss is not None and isp is not None else plain(a, b)
    kd = tuple(kd)
    teacher = teacher.eval().requires_grad_(False)
    ms_ssim = MSSSIMLoss()
    use_feat = "features" in kd
    pairs = tap_pairs(student, teacher) if use_feat else []
    tap_t = FeatureTap(teacher, [t for _, t in pairs]) if use_feat else None
    tap_s = FeatureTap(student, [s for s, _ in pairs]) if use_feat else None

    def objective(model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict]:
        x = batch["input"]
        with torch.no_grad():
            t_out = teacher.to(x.device)(x).clamp(0, 1)
            t_feats = tap_t.take() if use_feat else None
        s_out = model(x)
        logs = {}
        loss = s_out.new_zeros(())
        if "output" in kd:
            out_l1 = distance(s_out, t_out, batch["isp"]) if "isp" in batch else distance(s_out, t_out)
            term = beta * out_l1 + (1 - beta) * ms_ssim(s_out.clamp(0, 1), t_out) if beta < 1 else out_l1
            if chroma_weight > 0:   # each pixel's RGB minus its own mean: keeps a student off grey output
                term = term + chroma_weight * F.l1_loss(s_out - s_out.mean(1, keepdim=True),
                                                        t_out - t_out.mean(1, keepdim=True))
            loss = loss + term
            logs["kd_output"] = float(term.detach())
        if use_feat:
            adapters = model.extra["adapters"]
            feats = []
            for (name, _), s_f, t_f in zip(pairs, tap_s.take(), t_feats):
                feats.append(F.l1_loss(adapters[adapter_key(name)](s_f), t_f) / (t_f.abs().mean() + 1e-6))
            term = feature_weight * torch.stack(feats).mean()
            loss = loss + term
            logs["kd_features"] = float(term.detach())
        if gt_weight > 0:
            term = gt_weight * distance(s_out, batch["target"])
            loss = loss + term
            logs["gt"] = float(term.detach())
        return loss, logs

    objective.taps = (tap_t, tap_s)  # type: ignore[attr-defined]
    return objective


# ---------------------------------------------------------------- data
def distill_data(data, cfa: str, *, patch: int, seed: int, images=None, unlabelled: str | None = None,
                 spec: dict | None = None, profile: str | None = None):
    """(dataset, has_targets, description) for ``data``, as the teacher of ``spec`` takes its inputs (noise-std
    channel) and gives its outputs (sRGB or raw targets); default spec: a plain sRGB model of ``cfa``;
    ``profile``: the sensor (name or file) synthetic pairs use instead of the teacher's training sensors:

    - ``'synthetic'``: pairs synthesised on the fly from the training photos (or ``images`` folders), from the
      sensors the teacher trains on (:func:`darkc.data.datasets.model_pairs`);
    - a SID-layout folder or list file (``*_list.txt`` inside): its short/long pairs (plain sRGB models only);
    - a folder of raw files without lists, or ``unlabelled``: random crops of the raws, no targets;
    - a Dataset of dicts with ``input`` (and ``target``): used as is.
    """
    from torch.utils.data import Dataset

    from darkc.compress.finetune import RawFolderInputs
    from darkc.models.builder import io_kind

    spec = spec if spec is not None else {"cfa": cfa}
    output, noise = io_kind(spec)
    if isinstance(data, Dataset):
        return data, "target" in data[0], type(data).__name__
    if unlabelled is not None:
        return (RawFolderInputs(unlabelled, cfa, patch=patch, seed=seed, noise_input=noise), False,
                f"unlabelled raws in {unlabelled}")
    if str(data) == "synthetic":
        from darkc.data.datasets import model_pairs
        from darkc.data.sources import training_images

        ds = model_pairs({**spec, "cfa": cfa}, training_images(list(images) if images else None), patch=patch,
                         seed=seed, profile=profile)
        return ds, True, "synthetic pairs" + (f" from {', '.join(map(str, images))}" if images else "")
    path = Path(data)
    if not path.exists():
        raise DarkcError(f"--data {path} does not exist; pass 'synthetic', a SID-layout folder or a folder of raws")
    if path.is_file() or any(path.glob("*_list.txt")):
        if (output, noise) != ("srgb", "none"):
            raise DarkcError(f"--data {path}: SID-layout pairs give sRGB targets and no noise level, but the teacher "
                             f"has output {output!r} and noise input {noise!r}; pass --unlabelled {path} (its raws, "
                             f"no targets) or --data synthetic")
        from darkc.data import load_pairs
        from darkc.data.datasets import SIDPatches

        ds = SIDPatches(load_pairs(str(path), "train"), patch=patch, seed=seed)
        if ds.cfa != cfa:
            raise DarkcError(f"--data {path} holds {ds.cfa} raws but the teacher takes {cfa}")
        return ds, True, f"SID-layout pairs in {path}"
    return (RawFolderInputs(path, cfa, patch=patch, seed=seed, noise_input=noise), False,
            f"unlabelled raws in {path}")


# ---------------------------------------------------------------- measuring
@torch.inference_mode()
def agreement_with_teacher(student: nn.Module, teacher: nn.Module, frames) -> dict:
    """Mean PSNR/SSIM of the student's outputs against the teacher's on whole frames (float, clamped [0, 1]): sRGB,
    or the packed raw of raw-output models."""
    from darkc.metrics import psnr_torch, ssim_torch
    from darkc.train import forward_padded

    student.eval()
    teacher.eval()
    ps, ss = [], []
    for _name, inp, _target, _ratio in frames:
        x = torch.from_numpy(inp)[None]
        s = forward_padded(student, x).clamp(0, 1)
        t = forward_padded(teacher, x).clamp(0, 1)
        ps.append(float(psnr_torch(s, t)[0]))
        ss.append(float(ssim_torch(s, t)[0]))
    return {"psnr": float(np.mean(ps)), "ssim": float(np.mean(ss)), "frames": len(ps)}


# ---------------------------------------------------------------- the stage
def parse_student_options(items) -> dict:
    """``["stem=s2", "block=ds", "expansion=2"]`` -> ``{"stem": "s2", "block": "ds", "expansion": 2}`` (integers and
    floats converted); a one-line error for an item without ``=``."""
    options = {}
    for item in items or ():
        key, eq, value = str(item).partition("=")
        if not eq or not key.strip() or not value.strip():
            raise DarkcError(f"--student-options {item!r}: write key=value pairs, e.g. block=ds,stem=s2")
        value = value.strip()
        for kind in (int, float):
            try:
                value = kind(value)
                break
            except ValueError:
                continue
        options[key.strip()] = value
    return options


def _student(student, student_widths, student_arch, cfa: str, teacher_spec: dict,
             student_options=None) -> tuple[nn.Module, dict, str]:
    from darkc.models import build_model, io_kind, load_checkpoint, normalize_spec, resolve_model_ref

    given = [n for n, v in (("--student", student), ("--student-widths", student_widths)) if v is not None]
    if len(given) > 1:
        raise DarkcError("pass --student DIR or --student-widths, not both")
    extra = parse_student_options(student_options)
    if extra and student is not None:
        raise DarkcError("--student-options configure a fresh student; --student loads one with its own options: "
                         "drop one of them")
    reserved = sorted(set(extra) & {"arch", "cfa", "output", "input", "widths", "channels"})
    if reserved:
        raise DarkcError(f"--student-options sets {reserved}, which come from --student-arch, --student-widths and "
                         f"the teacher; drop them from --student-options")
    if student is not None:
        kind, path = resolve_model_ref(student)
        if kind not in ("pretrained", "checkpoint"):
            raise DarkcError(f"--student {student} is a {kind} file; pass a checkpoint directory (e.g. darkc prune "
                             f"output)")
        model, spec = load_checkpoint(path)
        init = f"checkpoint {student}"
    else:
        t_out, t_noise = io_kind(teacher_spec)
        spec = {**extra, "arch": student_arch or teacher_spec["arch"], "cfa": cfa, "output": t_out,
                "input": {"noise": t_noise}}
        if student_widths is not None:
            spec["widths"] = list(student_widths)
        spec = normalize_spec(spec, "student")
        model = build_model(spec, "student")
        init = "scratch"
    if spec.get("cfa") != cfa:
        raise DarkcError(f"--student {student} is a {spec.get('cfa')} model but the teacher is {cfa}")
    if io_kind(spec) != io_kind(teacher_spec):
        (s_out, s_noise), (t_out, t_noise) = io_kind(spec), io_kind(teacher_spec)
        raise DarkcError(f"--student {student} has output {s_out!r} and noise input {s_noise!r} but the teacher has "
                         f"output {t_out!r} and noise input {t_noise!r}; distil into a student of the teacher's kind "
                         f"(prune the teacher, or pass --student-widths)")
    for key in ("in_channels", "out_channels", "scale"):
        if key in spec and key in teacher_spec and spec[key] != teacher_spec[key]:
            raise DarkcError(f"the student's {key} is {spec[key]} but the teacher's is {teacher_spec[key]}; "
                             f"they must take and produce the same tensors")
    spec = {k: v for k, v in spec.items() if k != "provenance"}
    return model, spec, init


def distill(teacher_ref, out_dir, *, student=None, student_widths=None, student_arch: str | None = None,
            student_options=None,
            data="synthetic", unlabelled: str | None = None, images=None, kd=("output",), gt_weight: float = 0.0,
            feature_weight: float = 0.1, beta: float = 0.99, chroma_weight: float = 0.0, raw_loss: str = "isp-l1",
            steps: int = 2000, batch_size: int = 4,
            patch: int = 512, lr: float = 5e-4, min_lr: float = 1e-5, val_every: int = 500, ckpt_every: int = 250,
            seed: int = 0, threads: int | None = None, resume: bool = False, evaluate: bool = True,
            eval_limit: int | None = None, latency_size="1920x1080", latency_runs: int = 3,
            progress: bool = True, profile: str | None = None) -> dict:
    """``darkc distill``: train a compact student on a frozen teacher's outputs; write its artifact and report.

    Args:
        teacher_ref: shipped name or checkpoint directory of the teacher.
        out_dir: run folder: checkpoints (``best``/``last``), training state, and the final student artifact
            (best validation weights) with ``distill_report.md/.json``.
        student / student_widths / student_arch / student_options: the student's initialisation: a checkpoint
            (e.g. ``darkc prune`` output), or a fresh network of ``student_arch`` (default: the teacher's) with
            ``student_widths`` and its architecture's options as ``key=value`` (e.g. ``["block=ds", "stem=s2"]``).
        data: ``'synthetic'``, a SID-layout folder, or a folder of raw files (unlabelled); ``unlabelled`` forces
            the latter. ``images``: clean photo folders for synthetic data.
        kd: which distillation terms: ``output`` and/or ``features``.
        gt_weight: weight of the ground-truth L1 term (needs pairs).
        feature_weight, beta: weight of the feature term; L1 share of the output term.
        chroma_weight: weight of an L1 term on the output's chroma (RGB minus its per-pixel mean) against
            the teacher's, added to the output term.
        raw_loss: raw-output teachers: how outputs are compared (:data:`RAW_LOSSES`).
        steps .. threads, resume: training options of :class:`darkc.train.TrainConfig`.
        evaluate, eval_limit: score teacher and student on the reference validation set.
        latency_size: raw ``'WxH'`` for host latency (torch CPU, 1 thread); None skips it.
    """
    from darkc.sizes import packed_shape, parse_resolution
    from darkc.timing import measure
    from darkc.models import io_kind, load_checkpoint, resolve_model_ref, save_checkpoint
    from darkc.train import TrainConfig, fit

    t0 = time.time()
    kd = tuple(k.strip() for k in (kd.split(",") if isinstance(kd, str) else kd) if k.strip())
    bad = [k for k in kd if k not in KD_KINDS]
    if bad or not kd and gt_weight <= 0:
        raise DarkcError(f"--kd {','.join(kd) or '(none)'}: use output and/or features"
                         + (" (or a --gt-weight > 0)" if not kd else ""))
    if gt_weight < 0 or feature_weight < 0 or chroma_weight < 0 or not 0 <= beta <= 1:
        raise DarkcError(f"weights must be >= 0 and beta in [0, 1] (got gt {gt_weight}, features {feature_weight}, "
                         f"chroma {chroma_weight}, beta {beta})")
    if raw_loss not in RAW_LOSSES:
        raise DarkcError(f"--raw-loss {raw_loss!r}: use one of {', '.join(RAW_LOSSES)}")
    kind, tpath = resolve_model_ref(teacher_ref)
    if kind not in ("pretrained", "checkpoint"):
        raise DarkcError(f"--teacher {teacher_ref} is a {kind} file; distillation needs a torch checkpoint "
                         f"directory or a shipped name")
    teacher, tspec = load_checkpoint(tpath)
    teacher = teacher.float().eval().requires_grad_(False)
    cfa = tspec["cfa"]
    output, noise = io_kind(tspec)
    if output == "raw" and chroma_weight > 0:
        raise DarkcError(f"--chroma-weight {chroma_weight}: the chroma term compares RGB outputs, and teacher "
                         f"{teacher_ref} outputs raw (its colour comes from each file's own matrix); drop it")
    model, spec, init = _student(student, student_widths, student_arch, cfa, tspec, student_options)
    model = model.float()
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise DarkcError(f"-o {out} exists and is not a directory; pick a folder for the student run")
    if isinstance(latency_size, str):
        latency_size = None if latency_size.lower() in ("", "none", "0") else parse_resolution(latency_size,
                                                                                                "--latency-size")
    dataset, has_targets, data_desc = distill_data(data, cfa, patch=patch, seed=seed, images=images,
                                                   unlabelled=unlabelled, spec=tspec, profile=profile)
    if gt_weight > 0 and not has_targets:
        raise DarkcError(f"--gt-weight {gt_weight} needs ground truth but the data is {data_desc}; "
                         f"drop --gt-weight or pass pairs")
    extra = {"adapters": make_adapters(model, teacher)} if "features" in kd else {}

    from darkc.evaluate import reference_frames
    val = reference_frames(cfa, limit=eval_limit, target=output, noise_input=noise) if val_every else None
    cfg = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, min_lr=min_lr, val_every=val_every or 10**9,
                      ckpt_every=ckpt_every, seed=seed, threads=threads)
    options = {"student": str(student) if student is not None else None,
               "student_widths": list(student_widths) if student_widths is not None else None,
               "student_arch": student_arch, "student_options": list(student_options) if student_options else None,
               "data": (data if isinstance(data, str) else data_desc) if unlabelled is None else None,
               "unlabelled": unlabelled, "kd": ",".join(kd), "gt_weight": gt_weight,
               "feature_weight": feature_weight if "features" in kd else None, "beta": beta,
               "chroma_weight": chroma_weight or None, "raw_loss": raw_loss if output == "raw" else None,
               "steps": steps,
               "batch_size": batch_size, "patch": patch, "lr": lr, "seed": seed}
    command = command_line("distill", teacher_ref, options, out)
    prov = {"stage": "distill", "parent": str(teacher_ref), "command": command, "init": init, "data": data_desc,
            **{k: v for k, v in options.items() if k not in ("data", "unlabelled")},
            "teacher_provenance_command": (tspec.get("provenance") or {}).get("command")}
    objective = distill_objective(teacher, kd=kd, gt_weight=gt_weight, feature_weight=feature_weight, beta=beta,
                                  chroma_weight=chroma_weight, student=model, output=output, raw_loss=raw_loss)
    try:
        summary = fit(model, spec, dataset, out, cfg, objective=objective, val_frames=val, resume=resume,
                      progress=progress, extra_modules=extra, provenance=prov)
    finally:
        for tap in objective.taps:
            if tap is not None:
                tap.remove()

    from darkc.train import rank_world
    if rank_world()[0] != 0:
        return {"summary": summary}
    final_src = out / ("best" if summary["best"] else "last")
    final, fspec = load_checkpoint(final_src)
    final.float().eval()
    fspec["provenance"]["train"].update(wall_s=summary["wall_s"], device=summary["device"],
                                        world_size=summary["world_size"])
    latency_shape = packed_shape(cfa, latency_size, tspec["in_channels"]) if latency_size else None
    report = {"teacher": str(teacher_ref), "output": str(out), "command": command, "options": options,
              "model_output": output, "noise_input": noise,
              "init": init, "data": data_desc, "steps": summary["steps"], "wall_s": summary["wall_s"],
              "device": summary["device"], "best": summary["best"],
              "teacher_stats": measure(teacher, cfa, latency_shape, latency_runs),
              "student": measure(final, cfa, latency_shape, latency_runs),
              "latency": None if latency_shape is None else {
                  "raw": f"{latency_size[0]}x{latency_size[1]}", "threads": 1, "runs": latency_runs,
                  "runtime": f"torch {torch.__version__} CPU"}}
    if evaluate:
        from darkc.evaluate import evaluate as evaluate_model

        save_checkpoint(final, fspec, out)
        for key, ref in (("teacher_stats", teacher_ref), ("student", out)):
            res = evaluate_model(str(ref), "synthetic", limit=eval_limit, progress=progress)
            report[key].update(psnr=res["psnr"], ssim=res["ssim"], per_ratio=res["per_ratio"], eval_pairs=res["n"])
        frames = val if val is not None else reference_frames(cfa, limit=eval_limit, target=output,
                                                               noise_input=noise)
        agree = agreement_with_teacher(final, teacher, frames)
        report["student"].update(psnr_vs_teacher=agree["psnr"], ssim_vs_teacher=agree["ssim"])
        report["eval"] = {"data": "reference validation set (darkc eval --data synthetic)", "limit": eval_limit,
                          "protocol": res["protocol"]}
        fspec["provenance"]["metrics"] = {
            "reference": {k: report["student"][k] for k in ("psnr", "ssim", "psnr_vs_teacher", "ssim_vs_teacher",
                                                             "eval_pairs")},
            "teacher_reference": {k: report["teacher_stats"][k] for k in ("psnr", "ssim")},
            "macs_1920x1080": report["student"]["macs"]["1920x1080"], "params": report["student"]["params"]}
    save_checkpoint(final, fspec, out)
    report["seconds"] = time.time() - t0
    record = portable(report)                           # no absolute machine paths on disk
    with atomic_path(out / REPORT_JSON) as tmp:
        Path(tmp).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    with atomic_path(out / REPORT_MD) as tmp:
        Path(tmp).write_text(format_report(record, "md"), encoding="utf-8")
    return report


def format_report(report: dict, fmt: str = "table") -> str:
    """Teacher vs student: params, MACs, latency, PSNR/SSIM vs ground truth and vs the teacher."""
    from darkc.fmt import si

    t, s = report["teacher_stats"], report["student"]
    rows = [("params", si(t["params"]), si(s["params"]), f"{t['params'] / s['params']:.1f}x fewer")]
    for res in t["macs"]:
        rows.append((f"MACs @{res} (conv, packed, padded)", si(t["macs"][res]), si(s["macs"][res]),
                     f"{t['macs'][res] / s['macs'][res]:.1f}x fewer"))
    if "latency_ms" in s:
        lat = report["latency"]
        rows.append((f"latency ms @{lat['raw']} ({lat['runtime']}, 1 thread)", f"{t['latency_ms']:.0f}",
                     f"{s['latency_ms']:.0f}", f"{t['latency_ms'] / s['latency_ms']:.1f}x faster"))
    if "psnr" in s:
        rows.append(("PSNR vs ground truth", f"{t['psnr']:.2f} dB", f"{s['psnr']:.2f} dB",
                     f"{s['psnr'] - t['psnr']:+.2f} dB"))
        rows.append(("SSIM vs ground truth", f"{t['ssim']:.4f}", f"{s['ssim']:.4f}", f"{s['ssim'] - t['ssim']:+.4f}"))
        rows.append(("PSNR / SSIM vs teacher", "-", f"{s['psnr_vs_teacher']:.2f} dB / {s['ssim_vs_teacher']:.4f}", ""))
    table = [["", "teacher", "student", "change"]] + [list(r) for r in rows]
    o = report["options"]
    head = (f"distilled {report['teacher']} -> {report['output']} ({report['init']} init, kd {o['kd']}, "
            f"gt_weight {o['gt_weight']}, {report['steps']} steps, batch {o['batch_size']}, patch {o['patch']}, "
            f"data: {report['data']}, {report['wall_s'] / 60:.1f} min on {report['device']})")
    notes = []
    if "eval" in report:
        notes.append(f"PSNR/SSIM on the {report['eval']['data']}, {s.get('eval_pairs')} pairs; "
                     f"{report['eval']['protocol']}")
    if report.get("model_output") == "raw":
        notes.append("raw-output models: PSNR / SSIM vs teacher compare their packed raw outputs (linear, [0, 1]); "
                     "vs ground truth after LibRaw's render")
    if fmt == "md":
        lines = ["# darkc distill report", "", head, "", "| " + " | ".join(table[0]) + " |", "|---|---|---|---|"]
        lines += ["| " + " | ".join(r) + " |" for r in table[1:]]
        if "per_ratio" in s:
            lines += ["", "| ratio | teacher PSNR / SSIM | student PSNR / SSIM |", "|---|---|---|"]
            for r in s["per_ratio"]:
                tr, sr = t["per_ratio"][r], s["per_ratio"][r]
                lines.append(f"| {r} | {tr['psnr']:.2f} / {tr['ssim']:.4f} | {sr['psnr']:.2f} / {sr['ssim']:.4f} |")
        lines += [""] + [f"- {n}" for n in notes] + ["", f"Command: `{report['command']}`", ""]
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in table) for i in range(4)]
    return "\n".join([head] + ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table] + notes)

"""Models shipped with darkc, and classifying a ``--model`` argument.

A shipped model is a checkpoint directory ``darkc/models/pretrained/<name>/`` holding ``model.safetensors``,
``model.json`` and ``MODEL_CARD.md`` (where the weights come from, what they were trained on, how well they do).
"""
from __future__ import annotations

import os
from pathlib import Path

from torch import nn

from darkc.errors import DarkcError
from darkc.models.checkpoint import SPEC_FILE, WEIGHTS_FILE, load_checkpoint
from darkc.provenance import PRETRAINED_DIR  # defined in the lower layer, which needs it for portable paths

#: Every name darkc will ship, with what it is; :func:`available_pretrained` says which are present.
PRETRAINED_NAMES: dict[str, str] = {
    "teacher": "full SID U-Net (Bayer), the distillation teacher",
    "student": "compressed mobile student (Bayer)",
    "teacher-xtrans": "full SID U-Net (X-Trans), what `teacher` means for X-Trans raw files",
    "teacher-raw": "raw-output, noise-conditioned U-Net (Bayer) trained on a 9-sensor pool; its colour comes from "
                   "each file's own matrix (preview: shorter training than `teacher`)",
    "student-raw": "compressed mobile student of `teacher-raw` (Bayer, raw output: each file's own colour matrix; "
                   "preview)",
    "student-rt": "real-time student of `teacher-raw` (Bayer, raw output; mobile-unet s4, 0.28 GMACs per 1920x1080 "
                  "frame, made for a 4 x Cortex-A78 phone CPU at 30 fps; preview: below `student-raw`'s quality)",
}

#: Kinds returned by :func:`resolve_model_ref`.
MODEL_KINDS = ("pretrained", "checkpoint", "onnx", "tflite")


def available_pretrained() -> list[str]:
    """Names of shipped models whose weights and spec are present in this install."""
    return [name for name in PRETRAINED_NAMES
            if (PRETRAINED_DIR / name / WEIGHTS_FILE).is_file() and (PRETRAINED_DIR / name / SPEC_FILE).is_file()]


def _unknown_name_message(name: str) -> str:
    available = available_pretrained()
    missing = [n for n in PRETRAINED_NAMES if n not in available]
    not_yet = f"; not shipped in this install yet: {', '.join(missing)}" if missing else ""
    return f"no shipped model {name!r} (available: {', '.join(available) or 'none'}{not_yet})"


def pretrained_for_cfa(ref, cfa: str):
    """``ref`` with a shipped Bayer name swapped for its X-Trans sibling when the raw is X-Trans.

    ``teacher`` names the Bayer teacher; an X-Trans raw file cannot use it, so a caller that knows the file's
    CFA (``darkc enhance``) asks for ``teacher-xtrans`` instead when this install ships it. Anything else
    (paths, other names, a loaded runner, a Bayer raw) is returned unchanged.
    """
    if cfa == "xtrans" and isinstance(ref, str) and ref in PRETRAINED_NAMES and not Path(ref).exists() \
            and f"{ref}-xtrans" in available_pretrained():
        return f"{ref}-xtrans"
    return ref


def default_for_cfa(cfa: str) -> str:
    """The shipped model ``darkc enhance`` runs on a ``cfa`` raw when none is named: ``teacher-raw`` on Bayer
    files (raw output rendered with each file's own white balance and colour matrix: no colour cast on the real
    Canon raw of benchmarks/results/real_raws, where the sRGB ``teacher`` is off by 0.073 in chromaticity), and on
    X-Trans files, for which no raw-output model ships yet, ``teacher-xtrans``; ``teacher`` (or its X-Trans
    sibling) where this install lacks the raw one."""
    shipped = available_pretrained()
    if cfa != "xtrans" and "teacher-raw" in shipped:
        return "teacher-raw"
    return pretrained_for_cfa("teacher", cfa)


def pretrained_dir(name: str) -> Path:
    """The checkpoint directory of shipped model ``name``; :class:`DarkcError` listing the names otherwise."""
    if name not in available_pretrained():
        raise DarkcError(f"{_unknown_name_message(name)}; pass an available name, a checkpoint directory, "
                         f"a .onnx or a .tflite file")
    return PRETRAINED_DIR / name


def load_pretrained(name: str) -> tuple[nn.Module, dict]:
    """Load shipped model ``name`` (e.g. ``"teacher"``) as ``(model, spec)``; see ``load_checkpoint``."""
    return load_checkpoint(pretrained_dir(name))


def resolve_model_ref(ref: str | os.PathLike) -> tuple[str, Path]:
    """Classify a ``--model`` argument as ``(kind, path)``, kind one of :data:`MODEL_KINDS`.

    An existing path wins over a shipped name: a directory (or its ``model.json``/``model.safetensors``)
    is a ``"checkpoint"`` (its directory is returned), a ``.onnx`` / ``.tflite`` file is ``"onnx"`` /
    ``"tflite"``. Otherwise ``ref`` must be a shipped name: ``("pretrained", its directory)``.

    Raises:
        DarkcError: the path does not exist and is no shipped name, or is a file of another type.
    """
    path = Path(ref)
    if path.is_dir():
        return "checkpoint", path
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix == ".onnx":
            return "onnx", path
        if suffix == ".tflite":
            return "tflite", path
        if path.name in (SPEC_FILE, WEIGHTS_FILE):
            return "checkpoint", path.parent
        raise DarkcError(f"{path} is not a model: pass a checkpoint directory, a .onnx or .tflite file, or a "
                         f"shipped name {list(PRETRAINED_NAMES)}")
    if str(ref) in PRETRAINED_NAMES:
        return "pretrained", pretrained_dir(str(ref))
    raise DarkcError(f"{ref} does not exist and is not a shipped model (available: "
                     f"{', '.join(available_pretrained()) or 'none'}); "
                     f"pass a checkpoint directory, a .onnx or .tflite file, or a shipped name")

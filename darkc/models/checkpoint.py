"""The artifact every stage reads and writes: a directory with ``model.safetensors`` and ``model.json``.

``model.json`` is the normalised model spec (see :func:`darkc.models.normalize_spec`) plus ``params``,
``format_version`` and ``weights_dtype``; ``model.safetensors`` holds the ``state_dict``. Weights never go
through pickle. Other files in the directory (``model.onnx``, ``MODEL_CARD.md``) are left alone.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from darkc.errors import DarkcError, atomic_dir, one_line
from darkc.provenance import portable
from darkc.models.registry import get_adapter
from darkc.models.builder import build_model, normalize_spec
from darkc.models.complexity import count_params

FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
SPEC_FILE = "model.json"
_DTYPES = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}


def _first_mismatch(expected: dict[str, tuple], found: dict[str, tuple]) -> str | None:
    """Describe the first tensor that is missing, unexpected or of the wrong shape; None if all match."""
    missing = [k for k in expected if k not in found]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        return f"lacks tensor '{missing[0]}' of shape {expected[missing[0]]}{more}"
    unexpected = [k for k in found if k not in expected]
    if unexpected:
        more = f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else ""
        return f"has unexpected tensor '{unexpected[0]}' of shape {found[unexpected[0]]}{more}"
    for k, shape in expected.items():
        if found[k] != shape:
            return f"tensor '{k}' has shape {found[k]} but the spec needs {shape}"
    return None


def _layer_widths(model: nn.Module, spec: dict) -> dict[str, int]:
    """The model's per-layer widths as its arch's adapter reads them (what ``channels`` stores)."""
    adapter = get_adapter(spec, "save_checkpoint spec")
    for name in adapter.width_layers(model):
        if not hasattr(_submodule(model, name), "out_channels"):
            raise DarkcError(f"save_checkpoint: the model has no conv layer '{name}' that its arch "
                             f"{spec.get('arch')!r} names; pass the spec the model was built from")
    return adapter.widths(model)


def _submodule(model: nn.Module, name: str):
    try:
        return model.get_submodule(name)
    except AttributeError:
        return None


def save_checkpoint(model: nn.Module, spec: dict, dir: str | os.PathLike,
                    dtype: torch.dtype | None = None) -> Path:
    """Write ``model`` and its spec to the artifact directory ``dir``, atomically.

    Args:
        model: the network; its actual layer widths replace ``spec['channels']`` (so pruned models save right).
        spec: the model spec it was built from (``{"arch": ..., "cfa": ...}`` or a loaded ``model.json``).
        dir: artifact directory, created if needed; files in it other than the two written are kept.
        dtype: storage dtype of floating tensors: ``None``/``torch.float32`` or ``torch.float16``
            (``torch.bfloat16`` also works); ``load_checkpoint`` returns float32 either way.

    Returns:
        The directory path.

    Raises:
        DarkcError: bad spec or dtype, model does not match the spec, non-finite weights (also after an
            fp16 cast), or the directory cannot be written. ``dir`` is unchanged on any failure.
    """
    dest = Path(dir)
    dtype = torch.float32 if dtype is None else dtype
    if dtype not in _DTYPES:
        raise DarkcError(f"save_checkpoint: dtype {dtype} is not supported; use one of "
                         f"{[str(d) for d in _DTYPES]}")
    if dest.exists() and not dest.is_dir():
        raise DarkcError(f"{dest} exists and is not a directory; pick a directory path for the checkpoint")

    spec = normalize_spec(spec, "save_checkpoint spec")
    adapter = get_adapter(spec, "save_checkpoint spec")
    if "channels" in spec or not adapter.native_widths:
        spec["channels"] = _layer_widths(model, spec)
        if not adapter.native_widths:       # rebuilt by cutting a fresh net down to these; it needs its multiple
            spec["size_multiple"] = adapter.size_multiple(model)
        spec = normalize_spec(spec, "save_checkpoint spec")

    tensors = {}
    for key, value in model.state_dict().items():
        value = value.detach().to("cpu")
        if value.is_floating_point():
            value = value.to(dtype)
            if not torch.isfinite(value).all():
                raise DarkcError(f"save_checkpoint: tensor '{key}' has NaN or Inf when stored as "
                                 f"{_DTYPES[dtype]}; fix the model (or store float32) before saving")
        tensors[key] = value.contiguous()

    with torch.device("meta"):
        reference = build_model(spec, "save_checkpoint spec")
    mismatch = _first_mismatch({k: tuple(v.shape) for k, v in reference.state_dict().items()},
                               {k: tuple(v.shape) for k, v in tensors.items()})
    if mismatch:
        raise DarkcError(f"save_checkpoint: the model {mismatch}; pass the spec the model was built from")

    spec["params"] = count_params(model)
    spec["format_version"] = FORMAT_VERSION
    spec["weights_dtype"] = _DTYPES[dtype]
    try:
        with atomic_dir(dest) as tmp:
            save_file(tensors, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
            (tmp / SPEC_FILE).write_text(json.dumps(portable(spec), indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise DarkcError(f"cannot write checkpoint to {dest}: {one_line(exc)}; check the path and free space")
    return dest


def _checkpoint_dir(path: Path) -> Path:
    if not path.exists():
        raise DarkcError(f"{path} does not exist; pass a checkpoint directory holding {SPEC_FILE} and "
                         f"{WEIGHTS_FILE} (written by save_checkpoint)")
    if path.is_dir():
        return path
    if path.name in (SPEC_FILE, WEIGHTS_FILE):
        return path.parent
    raise DarkcError(f"{path} is not a checkpoint; pass its directory, or its {SPEC_FILE} or {WEIGHTS_FILE}")


def read_spec(path: str | os.PathLike) -> dict:
    """The normalised spec of a checkpoint (directory, ``model.json`` or ``model.safetensors``), no weights."""
    json_path = _checkpoint_dir(Path(path)) / SPEC_FILE
    if not json_path.is_file():
        raise DarkcError(f"{json_path} is missing; {json_path.parent} is not a complete checkpoint - "
                         f"re-run the stage that wrote it")
    try:
        raw = json.loads(json_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DarkcError(f"{json_path} is not valid JSON ({one_line(exc)}); restore it or re-save the "
                         f"checkpoint")
    except OSError as exc:
        raise DarkcError(f"cannot read {json_path}: {one_line(exc)}")
    if not isinstance(raw, dict):
        raise DarkcError(f"{json_path}: must hold a JSON object (the model spec), got {type(raw).__name__}")
    version = raw.get("format_version", FORMAT_VERSION)
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= FORMAT_VERSION:
        raise DarkcError(f"{json_path}: field 'format_version' is {version!r}; this darkc reads up to "
                         f"{FORMAT_VERSION} - upgrade darkc or re-save the checkpoint")
    return normalize_spec(raw, str(json_path))


def load_checkpoint(path: str | os.PathLike) -> tuple[nn.Module, dict]:
    """Load a checkpoint written by :func:`save_checkpoint`.

    Args:
        path: the artifact directory, or its ``model.json`` or ``model.safetensors``.

    Returns:
        ``(model, spec)``: the model in eval mode with float32 weights on CPU, and the normalised spec
        (including ``params``, ``format_version``, ``weights_dtype`` as stored).

    Raises:
        DarkcError: one line naming the file at fault - missing directory or file, invalid JSON or spec,
            corrupt/truncated safetensors, tensors that do not match the spec (first offending tensor with
            expected and found shape), or NaN/Inf weights.
    """
    spec = read_spec(path)
    ckpt_dir = _checkpoint_dir(Path(path))
    json_path, st_path = ckpt_dir / SPEC_FILE, ckpt_dir / WEIGHTS_FILE
    if not st_path.is_file():
        raise DarkcError(f"{st_path} is missing; {ckpt_dir} is not a complete checkpoint - re-run the stage "
                         f"that wrote it")
    try:
        tensors = load_file(str(st_path))
    except Exception as exc:  # safetensors raises its own error type, or OSError / ValueError
        raise DarkcError(f"{st_path} is corrupt or truncated ({one_line(exc)}); re-save or re-copy it")

    model = build_model(spec, str(json_path))
    mismatch = _first_mismatch({k: tuple(v.shape) for k, v in model.state_dict().items()},
                               {k: tuple(v.shape) for k, v in tensors.items()})
    if mismatch:
        raise DarkcError(f"{st_path} {mismatch} (from {json_path.name}); the weights and {json_path.name} "
                         f"come from different models - re-save the checkpoint")
    for key, value in tensors.items():
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise DarkcError(f"{st_path}: tensor '{key}' contains NaN or Inf; the weights are damaged - "
                             f"re-save from a good model")
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in tensors.items()},
                          strict=True)
    return model.eval(), spec

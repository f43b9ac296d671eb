"""One builder: a model spec (the content of ``model.json``, plain data) -> an ``nn.Module``.

A spec needs only ``arch``; everything else has a default::

    build_model({"arch": "sid-unet", "cfa": "xtrans"})

:func:`normalize_spec` returns the full spec that ``model.json`` stores: fields that follow from ``cfa``
(``in_channels``, ``out_channels``, ``scale``, ``input.packing``) are filled and checked, the arch fills its own
fields, and keys it does not know (``params``, ``format_version``, later stages' fields) are kept as they are.
"""
from __future__ import annotations

import copy
import functools

from torch import nn

from darkc.errors import DarkcError
from darkc.models.widths import is_pos_int, normalize_level_widths
from darkc.models.adapter import Adapter
from darkc.models.mobile_unet import adapter_options as mobile_adapter_options
from darkc.models.mobile_unet import build_mobile_unet, normalize_mobile_spec
from darkc.models.registry import list_archs, register_arch, resolve_arch
from darkc.models.sid_unet import (DEFAULT_WIDTHS, FEATURE_LAYERS, HEAD, SIZE_MULTIPLE, WIDTH_LAYERS, SIDUNet,
                                   channels_to_widths, widths_to_channels)

#: Colour filter arrays: how raw is packed into channels and how far the head upsamples.
CFAS: dict[str, dict] = {
    "bayer": {"in_channels": 4, "scale": 2, "packing": "bayer-rggb-4"},
    "xtrans": {"in_channels": 9, "scale": 3, "packing": "xtrans-9"},
}

#: Output kinds (``model.json`` ``output``) and what their values are.
OUTPUTS = {
    "srgb": "sRGB (LibRaw-rendered look, as SID)",
    "raw": "clean packed raw in the camera's colour space, scaled like the input; LibRaw renders it with the file's "
           "white balance and colour matrix",
}
#: Noise inputs (``model.json`` ``input.noise``) -> extra input channels after the packed raw.
NOISE_INPUTS = {"none": 0, "std-map": 1}

def io_kind(spec: dict) -> tuple[str, str]:
    """``(output, noise_input)`` of a model spec: ``'srgb'|'raw'`` and ``'none'|'std-map'`` (the defaults of older
    files). What every stage asks to build data, check shapes and name tensors for the model."""
    output = spec.get("output", "srgb")
    output = output if isinstance(output, str) else "srgb"     # format-1 object: an sRGB model
    noise = spec.get("input") or {}
    return output, (noise.get("noise", "none") if isinstance(noise, dict) else "none")


NORMALISATION = ("black-level subtracted, divided by (white - black), multiplied by the exposure ratio, "
                 "clipped to [0, 1]")

_ORDER = ("arch", "arch_import", "cfa", "in_channels", "out_channels", "scale", "widths", "channels", "input", "output",
          "output_space", "provenance")


def normalize_spec(spec: dict, where: str = "model spec") -> dict:
    """Return a copy of ``spec`` with every default filled and every field checked.

    Args:
        spec: model spec, e.g. ``{"arch": "sid-unet", "cfa": "bayer"}``.
        where: names the source in error messages (the ``model.json`` path when loading).

    Returns:
        The full spec: ``arch, cfa, in_channels, out_channels, scale``, the arch's fields (``widths``,
        ``channels`` for U-Nets), ``input`` (layout, packing, normalisation, noise), ``output`` ('srgb' or
        'raw'), ``output_space`` (what the output values are),
        ``provenance``, then any other keys of ``spec`` unchanged.

    Raises:
        DarkcError: a field is missing, unknown or inconsistent; the message names it and the valid values.
    """
    if not isinstance(spec, dict):
        raise DarkcError(f"{where}: a model spec must be a JSON object, got {type(spec).__name__}")
    spec = copy.deepcopy(spec)
    if "arch" not in spec:
        raise DarkcError(f"{where}: field 'arch' is missing; add one of {list_archs()}")
    entry = resolve_arch(spec, where)
    if entry.source and entry.source != spec["arch"]:
        spec["arch_import"] = entry.source      # reloads wherever the plugin's package is importable

    cfa = spec.setdefault("cfa", "bayer")
    if not isinstance(cfa, str) or cfa not in CFAS:
        raise DarkcError(f"{where}: field 'cfa' is {cfa!r}; use one of {sorted(CFAS)}")
    output = spec.get("output", "srgb")
    if isinstance(output, dict):            # format 1 files: {"space": "sRGB", "range": [0, 1]}
        output = "srgb" if str(output.get("space", "sRGB")).lower() == "srgb" else output.get("space")
    if not isinstance(output, str) or output not in OUTPUTS:
        raise DarkcError(f"{where}: field 'output' is {output!r}; use one of {sorted(OUTPUTS)}")
    spec["output"] = output
    given_input = spec.get("input", {})
    noise = given_input.get("noise", "none") if isinstance(given_input, dict) else "none"
    if not isinstance(noise, str) or noise not in NOISE_INPUTS:
        raise DarkcError(f"{where}: field 'input.noise' is {noise!r}; use one of {sorted(NOISE_INPUTS)}")
    raw_out = output == "raw"
    derived = {
        "in_channels": CFAS[cfa]["in_channels"] + NOISE_INPUTS[noise],
        "out_channels": CFAS[cfa]["in_channels"] if raw_out else 3,
        "scale": 1 if raw_out else CFAS[cfa]["scale"],
    }
    for key, value in derived.items():
        if spec.setdefault(key, value) != value:
            raise DarkcError(f"{where}: field {key!r} is {spec[key]!r} but cfa {cfa!r} needs {value}; "
                             f"drop {key!r} or fix 'cfa'")

    for key, defaults, fixed in (
        ("input", {"layout": "packed", "packing": CFAS[cfa]["packing"], "normalisation": NORMALISATION,
                   "noise": "none"}, ("layout", "packing")),
    ):
        given = spec.get(key, {})
        if not isinstance(given, dict):
            raise DarkcError(f"{where}: field {key!r} must be an object like {defaults}")
        merged = {**defaults, **given}
        for sub in fixed:
            if merged[sub] != defaults[sub]:
                raise DarkcError(f"{where}: field '{key}.{sub}' is {merged[sub]!r} but cfa {cfa!r} needs "
                                 f"{defaults[sub]!r}; drop it or fix 'cfa'")
        spec[key] = merged
    spec["output_space"] = {"space": OUTPUTS[output], "range": [0, 1]}
    spec.setdefault("provenance", {})
    if not isinstance(spec["provenance"], dict):
        raise DarkcError(f"{where}: field 'provenance' must be an object, got {spec['provenance']!r}")

    if entry.normalize is not None:
        spec = entry.normalize(spec, where)
    else:
        _check_generic_widths(spec, where)
    return {**{k: spec[k] for k in _ORDER if k in spec}, **{k: v for k, v in spec.items() if k not in _ORDER}}


def normalize_unet_widths(spec: dict, where: str) -> dict:
    """Fill and check ``widths`` (five level widths) and ``channels`` (per-layer widths) of a U-Net spec.

    ``channels`` wins when both are given; ``widths`` is then rewritten to match it, or ``None`` when the
    per-layer widths are uneven (as after pruning).
    """
    return normalize_level_widths(spec, where, default_widths=DEFAULT_WIDTHS, width_layers=WIDTH_LAYERS,
                                  to_channels=widths_to_channels, to_widths=channels_to_widths,
                                  levels="encoder levels 1-5")


def _check_generic_widths(spec: dict, where: str) -> None:
    """``channels`` of an arch without its own normalize: per-layer output widths (module name -> positive int),
    checked against the network when it is built; ``size_multiple`` a positive int."""
    channels = spec.get("channels")
    if channels is not None:
        if not isinstance(channels, dict) or not all(isinstance(k, str) and is_pos_int(v) for k, v in channels.items()):
            raise DarkcError(f"{where}: field 'channels' must map layer names to positive integer widths, got "
                             f"{channels!r}; re-save the model")
    multiple = spec.get("size_multiple")
    if multiple is not None and not is_pos_int(multiple):
        raise DarkcError(f"{where}: field 'size_multiple' is {multiple!r}; it must be a positive integer (packed px)")


#: The SID U-Net's adapter: everything declared, nothing traced.
sid_adapter = functools.partial(Adapter, head=HEAD, feature_taps=FEATURE_LAYERS, size_multiple=SIZE_MULTIPLE,
                                activations=("leaky_relu",), width_layers=WIDTH_LAYERS, native_widths=True)


@register_arch("sid-unet", normalize=normalize_unet_widths, adapter=sid_adapter)
def sid_unet(spec: dict) -> nn.Module:
    """The SID U-Net (Chen et al. 2018) with the spec's per-layer widths."""
    return SIDUNet(spec["in_channels"], spec["scale"], spec["channels"], output=spec["output"],
                   raw_channels=spec["out_channels"] if spec["output"] == "raw" else None)


def mobile_adapter(spec: dict) -> Adapter:
    """The mobile U-Net's adapter: stage-level widths (a stage's output width; its inner widths follow from the
    block type), the head convs, the decoder stages as feature taps, ReLU only; all of it follows the spec's
    ``stem`` and ``levels`` (:func:`darkc.models.mobile_unet.adapter_options`)."""
    return Adapter(spec, **mobile_adapter_options(spec))
register_arch("mobile-unet", normalize=normalize_mobile_spec, adapter=mobile_adapter)(build_mobile_unet)


def build_model(spec: dict, where: str = "model spec") -> nn.Module:
    """Build the model a spec describes (randomly initialised; see ``load_checkpoint`` for weights).

    Raises:
        DarkcError: the spec is invalid (see :func:`normalize_spec`).
    """
    spec = normalize_spec(spec, where)
    entry = resolve_arch(spec, where)
    try:
        model = entry.build(spec)
    except DarkcError:
        raise
    except Exception as exc:
        if entry.source is None:        # darkc's own archs: a bug, not bad input
            raise
        raise DarkcError(f"{where}: building arch {spec['arch']!r} failed ({type(exc).__name__}: "
                         f"{' '.join(str(exc).split())[:200]}); fix the spec or the build function") from None
    if not isinstance(model, nn.Module):
        raise DarkcError(f"{where}: the build function of arch {spec['arch']!r} returned {type(model).__name__}, "
                         f"not an nn.Module")
    adapter = entry.adapter(spec)
    if spec.get("channels") and not adapter.native_widths:
        adapter.set_widths(model, spec["channels"], where)
    if not isinstance(getattr(model, "size_multiple", None), int):
        model.size_multiple = adapter.size_multiple(model)      # inference, MAC counts and exports read it
    model.darkc_adapter = adapter                               # stages holding only the module ask it
    return model

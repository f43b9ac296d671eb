"""The input/output contract that travels with an exported model, so a phone integrator knows what to feed it.

One dict, stored three ways: in the export record of ``model.json`` (key ``contract``), in an ONNX file's
``metadata_props`` and in a TFLite file's ``metadata`` (both under :data:`METADATA_KEY`, as JSON)::

    contract = input_contract(spec, layout="NHWC", shape=[1, 544, 960, 4])
    read_contract("runs/student/model.tflite")["input"]["normalisation"]

It says: tensor names, layout (NCHW / NHWC), shapes, dtypes (with scale and zero point for integer I/O), the CFA
packing (channel order), black/white-level normalisation, exposure-ratio handling and what the output is.
"""
from __future__ import annotations

import json
import os

from darkc.errors import DarkcError, one_line

#: Name of the contract in ONNX ``metadata_props`` and in TFLite ``metadata``.
METADATA_KEY = "darkc.contract"
#: Version of the contract's layout; bump when a key changes meaning.
CONTRACT_FORMAT = "darkc.contract/1"

_PACKING = {
    "bayer": {
        "description": "Bayer mosaic cut to the RGGB phase and packed to 4 channels at half the raw size, SID's "
                       "order: channel 0 = R (0,0), 1 = G (0,1), 2 = B (1,1), 3 = G (1,0) of each 2x2 tile",
        "channels": ["R", "G", "B", "G"],
        "raw_px_per_packed_px": 2,
    },
    "xtrans": {
        "description": "X-Trans mosaic cut to SID's 6x6 phase and packed to 9 colour-pure channels at a third of "
                       "the raw size (SID's Fuji packing: each 6x6 tile becomes a 2x2 block of 9-channel pixels)",
        "channels": ["R", "G", "B", "R", "B", "G", "G", "G", "G"],
        "raw_px_per_packed_px": 3,
    },
}


def input_contract(spec: dict, layout: str, shape: list, dtype: str = "float32", quantization: dict | None = None,
                   output_shape: list | None = None, output_dtype: str = "float32",
                   output_quantization: dict | None = None, input_name: str = "raw",
                   output_name: str = "srgb", model=None) -> dict:
    """The contract of a model exported from ``spec``.

    Args:
        spec: the normalised model spec (``cfa``, ``in_channels``, ``scale``, ``arch``).
        layout: ``NCHW`` or ``NHWC`` (both tensors).
        shape, output_shape: tensor shapes, -1 for a dynamic axis.
        dtype, output_dtype: ``float32`` or ``int8``/``uint8``.
        quantization, output_quantization: ``{"scale", "zero_point"}`` of integer I/O (real = scale * (q - zero)).
        input_name, output_name: tensor names.
        model: the exported network; its adapter gives the size multiple (without it, the adapter of ``spec``'s
            arch, which must then be registered or importable).
    """
    if layout not in ("NCHW", "NHWC"):
        raise ValueError(f"layout must be NCHW or NHWC, got {layout!r}")
    from darkc.models.builder import io_kind

    cfa = spec["cfa"]
    output, noise = io_kind(spec)
    packing = dict(_PACKING[cfa])
    if noise == "std-map":
        packing["channels"] = [*packing["channels"], "noise_std"]
    from darkc.models import adapter_of, get_adapter

    multiple = (adapter_of(model) if model is not None else get_adapter(spec)).size_multiple(model)
    if output == "raw":
        out_desc = (f"the clean packed raw, same size, packing and channel order as the input's CFA channels "
                    f"({len(_PACKING[cfa]['channels'])}), normalised and amplified like the input: render it with the "
                    f"capture's own black/white level, white balance and colour matrix (darkc renders it through "
                    f"LibRaw, SID's target render); clip to [0, 1] before converting back to raw DN")
    else:
        out_desc = (f"RGB at {spec['scale']}x the packed size (the full raw resolution): the network's training "
                    f"target, LibRaw's render of the long exposure (camera white balance, sRGB primaries, LibRaw's "
                    f"default gamma); clip to [0, 1] before converting to 8/16 bit")
    contract = {
        "format": CONTRACT_FORMAT,
        "model": {"arch": spec.get("arch"), "cfa": cfa, "in_channels": spec["in_channels"], "scale": spec["scale"],
                  "output": output, "out_channels": spec.get("out_channels", 3), "noise_input": noise},
        "input": {
            "name": input_name, "layout": layout, "shape": list(shape), "dtype": dtype,
            "range": [0.0, 1.0],
            "packing": {**packing, "size_multiple_packed_px": multiple,
                        "size_multiple_raw_px": multiple * packing["raw_px_per_packed_px"]},
            "normalisation": "(raw - black_level) / (white_level - black_level), per CFA colour's black level "
                             "where the camera gives one",
            "ratio": "multiplied by the exposure ratio (target exposure / capture exposure; SID uses 100, 250, "
                     "300 and caps at 300) after normalisation, then clipped to [0, 1]; the model has no "
                     "ratio input",
            "padding": "pad H and W (packed px) up to the size multiple (reflect) and crop the output",
        },
        "output": {
            "name": output_name, "layout": layout, "shape": list(output_shape or []), "dtype": output_dtype,
            "range": [0.0, 1.0], "kind": output, "description": out_desc,
        },
    }
    if noise == "std-map":
        contract["input"]["noise"] = (
            "last channel: the predicted noise standard deviation of the amplified input, sqrt(A * m + B) at every "
            "packed pixel, m the mean of the CFA channels clipped to [0, 1], A = ratio * gain and B = (ratio * "
            "read)**2 from the capture's noise (variance = gain * x + read**2 in normalised units x; the DNG "
            "NoiseProfile (S, O) = (gain, read**2)); see darkc.data.noise_level")
    if quantization:
        contract["input"]["quantization"] = quantization
    if output_quantization:
        contract["output"]["quantization"] = output_quantization
    return contract


def embed_onnx(path: str | os.PathLike, contract: dict) -> None:
    """Write ``contract`` into the ONNX file's ``metadata_props`` (in place: pass a staging path)."""
    import onnx

    try:
        model = onnx.load(str(path))
        props = [p for p in model.metadata_props if p.key != METADATA_KEY]
        del model.metadata_props[:]
        model.metadata_props.extend(props)
        entry = model.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, json.dumps(contract, sort_keys=True)
        onnx.save(model, str(path))
    except Exception as exc:  # onnx raises DecodeError / ValueError / OSError
        raise DarkcError(f"cannot write the contract into {path}: {one_line(exc)[:200]}; re-export") from exc

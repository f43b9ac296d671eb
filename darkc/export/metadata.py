"""The input contract an exported ``.onnx`` / ``.tflite`` file carries (written by :mod:`darkc.export.contract`),
read back from either kind of file."""
from __future__ import annotations

import json
import os
from pathlib import Path

from darkc.errors import DarkcError
from darkc.export.contract import METADATA_KEY


def read_contract(path: str | os.PathLike) -> dict:
    """The contract embedded in an exported ``.onnx`` or ``.tflite`` file.

    Raises:
        DarkcError: the file does not exist, is of another kind, or has no darkc contract (exported by an older
            darkc or another tool: re-export it).
    """
    path = Path(path)
    if not path.is_file():
        raise DarkcError(f"{path} does not exist; pass an exported .onnx or .tflite file")
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        import onnx

        model = onnx.load(str(path), load_external_data=False)
        text = next((p.value for p in model.metadata_props if p.key == METADATA_KEY), None)
    elif suffix == ".tflite":
        from darkc.export.tflite_graph import read_metadata

        text = read_metadata(path).get(METADATA_KEY)
    else:
        raise DarkcError(f"{path} is not an .onnx or .tflite file; pass an exported model")
    if text is None:
        raise DarkcError(f"{path} carries no {METADATA_KEY} metadata; re-export it with darkc export")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise DarkcError(f"{path}: its {METADATA_KEY} metadata is not JSON ({exc}); re-export it") from exc

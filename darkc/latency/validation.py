"""The ARM estimator's validation: its fitted IPC correction and measured error band, as darkc applies them.

``benchmarks/validate_estimator.py`` estimates public models whose latency on named phones is published (TFLite's
MobileNet v1/v2 figures on Pixel 3 and Pixel 4), fits the IPC correction per dtype and the per-region
synchronisation cost on part of them, and measures the error on the rest. It writes the fit and the error band
to ``estimator_validation.json`` beside this module (and its report to benchmarks/results/); every ARM estimate
darkc prints then uses that fit and carries that band.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

from darkc.errors import DarkcError

VALIDATION_FILE = Path(__file__).with_name("estimator_validation.json")


@functools.lru_cache(maxsize=1)
def error_band() -> dict | None:
    """``{"fit": {"ipc_scale": {"fp32", "int8"}, "sync_us"}, "band": {"median_abs_pct", "n", "text", ...}}``,
    or None when no validation has been run (estimates then use the assumed IPC alone, and say so)."""
    if not VALIDATION_FILE.is_file():
        return None
    try:
        data = json.loads(VALIDATION_FILE.read_text())
        return {"fit": data["fit"], "band": data["band"]}
    except (ValueError, KeyError) as exc:
        raise DarkcError(f"{VALIDATION_FILE} is damaged ({exc}); rerun `python3 benchmarks/validate_estimator.py "
                         f"report`") from None


def band_text(band: dict | None) -> str:
    """``+/-18 % (median abs error vs published, 10 held-out figures)``, or says the estimate is unvalidated."""
    if not band:
        return "error band unknown (estimator not validated: run benchmarks/validate_estimator.py)"
    worst = f"; worst {band['max_abs_pct']:.0f} %" if band.get("max_abs_pct") is not None else ""
    return f"+/-{band['median_abs_pct']:.0f} % ({band['text']}{worst})"

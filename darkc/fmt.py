"""Number formatting shared by the reports."""
from __future__ import annotations


def si(value: float | None, unit: str = "") -> str:
    """``7.76e6`` -> ``'7.76M'``: three significant digits and an SI suffix (k, M, G, T); None -> ``'-'``."""
    if value is None:
        return "-"
    for div, suf in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= div:
            return f"{value / div:.3g}{suf}{unit}"
    return f"{value:.3g}{unit}"

"""Redraw the committed figures from their committed data, measuring nothing:

    python benchmarks/redraw_figures.py

- ``benchmarks/results/sid-mobile/report.png`` from ``report.json`` (its PSNR/SSIM: the run's eval stage, the
  same numbers as ``manifest-06-eval.json``);
- ``benchmarks/results/latency/latency.png`` from ``latency.json``, its quality panel re-read from the committed
  reference-set evaluation records (``bench_latency.py --replot``).
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_latency  # noqa: E402

from darkc.pipeline import redraw_report  # noqa: E402


def main() -> int:
    print(f"redrew {redraw_report('benchmarks/results/sid-mobile')}")
    return bench_latency.main(["--out", "benchmarks/results/latency/latency", "--replot"])


if __name__ == "__main__":
    sys.exit(main())

"""Gallery of the shipped models on the reference validation set: student, the student as INT8 TFLite, teacher.

    python benchmarks/gallery.py --out benchmarks/results/gallery/reference

exports the shipped student to INT8 TFLite (768x768 raw, 32 synthetic calibration samples, as
``benchmarks/export_tflite.py``; every reference image fits one window) into ``--work`` (default: a temporary
folder, deleted), then runs ``darkc eval --gallery`` on the reference set with the classical baselines (pairs ranked by the
student: its best, median and worst), and
writes ``<out>.png`` and ``<out>.json`` (the plotted PSNR/SSIM per panel). X-Trans: ``--cfa xtrans`` shows
``teacher-xtrans`` on the X-Trans reference set; the committed one shows the Bayer gallery's pairs
(``--images 10003_00,10005_02,10007_02``: ranking all 24 X-Trans pairs costs 24 full-size teacher runs).
"""
from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from pathlib import Path

import torch

from darkc.errors import DarkcError
from darkc.export import export
from darkc.gallery import make_gallery


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="benchmarks/results/gallery/reference", help="output prefix (.png, .json)")
    ap.add_argument("--cfa", choices=["bayer", "xtrans"], default="bayer")
    ap.add_argument("--work", default=None, help="keep the INT8 export here (default: a temporary folder)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--images", default=None, help="pair IDs to show instead of best/median/worst (comma-separated)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out).with_suffix(".png")
    t0 = time.time()
    try:
        if args.cfa == "xtrans":
            rep = make_gallery(["teacher-xtrans"], out, "synthetic", baselines=True, threads=args.threads,
                               images=args.images.split(",") if args.images else None)
        else:
            with tempfile.TemporaryDirectory(prefix="darkc-gallery-") as tmp:
                work = Path(args.work or tmp)
                int8 = export("student", work / "student-int8" / "model-int8.tflite", target="tflite",
                              precision="int8", input_size="768x768", samples=32,
                              command="python benchmarks/gallery.py (student INT8 TFLite for the gallery)")
                # ranked by the student (the first model): the phone model's best, median and worst pairs
                rep = make_gallery(["student", int8["file"], "teacher"], out, "synthetic", baselines=True,
                                   threads=args.threads, labels=["student", "student INT8 TFLite", "teacher"],
                                   images=args.images.split(",") if args.images else None)
    except DarkcError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    command = shlex.join(["python", "benchmarks/gallery.py", *(argv if argv is not None else sys.argv[1:])])
    print(f"wrote {out} and {out.with_suffix('.json')} in {time.time() - t0:.0f} s ({command})")
    for row in rep["images"]:
        print(f"{row['id']} x{row['ratio']:g} ({row['why']}): " + "; ".join(
            f"{p['label']} {p['psnr']:.2f}/{p['ssim']:.3f}" for p in row["panels"] if "psnr" in p))
    return 0


if __name__ == "__main__":
    sys.exit(main())

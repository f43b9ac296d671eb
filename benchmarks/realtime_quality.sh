#!/bin/bash
# Short quality probe of the real-time candidates (benchmarks/realtime_design.py): each student distilled from
# teacher-raw for 600 steps (far from converged: a ranking hint, not a quality figure), then scored by darkc eval on
# the reference set (synthetic) and the out-of-distribution sensor set (ood).
#
#     bash benchmarks/realtime_quality.sh [WORK]      (run from the repository root; WORK default /tmp/rtq)
#
# Writes benchmarks/results/realtime_design_quality/<label>-{synthetic,ood}.json and .../summary.md.
set -euo pipefail
WORK=${1:-/tmp/rtq}
OUT=benchmarks/results/realtime_design_quality
export OMP_NUM_THREADS=1 PYTHONPATH=$PWD
mkdir -p "$WORK" "$OUT"
# label | --student-widths | --student-options
CANDIDATES=(
  "s4-L3-16-96|16,24,48,96|stem=s4,levels=3,block=ds"
  "s2-L4-16-128|16,24,48,96,128|stem=s2,block=ds"
)
for c in "${CANDIDATES[@]}"; do
  IFS='|' read -r label widths options <<< "$c"
  if [ ! -f "$WORK/$label/model.json" ]; then
    python3 -m darkc.cli distill --model teacher-raw --student-arch mobile-unet --student-widths "$widths" \
      --student-options "$options" --kd output,features --steps 600 --batch-size 4 --patch 256 --lr 1e-3 \
      --val-every 0 --no-eval --latency-size none --threads 1 -o "$WORK/$label"
  fi
  for data in synthetic ood; do
    python3 -m darkc.cli eval --model "$WORK/$label" --data "$data" --threads 1 -o "$WORK/eval-$label-$data"
    cp "$WORK/eval-$label-$data/eval_report.json" "$OUT/$label-$data.json"
  done
done
python3 - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
teacher = json.loads(Path("benchmarks/results/teacher_raw_quality.json").read_text())
rows = ["# Real-time candidates: 600-step distillation quality probe", "",
        "Command: `bash benchmarks/realtime_quality.sh` (darkc distill from teacher-raw, --kd output,features, 600 steps, "
        "batch 4, patch 256, lr 1e-3, 1 thread; then darkc eval). 600 steps is far from converged: compare the "
        "candidates with each other, not with the teacher. PSNR in dB on float sRGB vs the LibRaw-rendered long "
        "exposure (darkc eval).", "",
        "| model | reference PSNR / SSIM | ood PSNR / SSIM | vs teacher (reference / ood) |", "|---|---|---|---|",
        f"| teacher-raw (benchmarks/results/teacher_raw_quality.json) | {teacher['psnr']:.2f} / {teacher['ssim']:.4f} | "
        f"{teacher['ood']['psnr']:.2f} / {teacher['ood']['ssim']:.4f} | - |"]
for f in sorted(out.glob("*-synthetic.json")):
    label = f.name[: -len("-synthetic.json")]
    ref = json.loads(f.read_text())
    ood = json.loads((out / f"{label}-ood.json").read_text())
    rows.append(f"| {label} (600 steps) | {ref['psnr']:.2f} / {ref['ssim']:.4f} | {ood['psnr']:.2f} / {ood['ssim']:.4f} | "
                f"{ref['psnr'] - teacher['psnr']:+.2f} / {ood['psnr'] - teacher['ood']['psnr']:+.2f} dB |")
(out / "summary.md").write_text("\n".join(rows) + "\n")
print("\n".join(rows))
PY

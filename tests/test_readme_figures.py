"""The README's quality and latency tables hold what the committed result JSON says (read, never restated here:
a re-shipped model changes the JSON and the README together, or this fails)."""
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
README = (ROOT / "README.md").read_text()


def table_rows(first_cell: str) -> list[list[str]]:
    """Cells of every README table row whose first cell is ``first_cell``."""
    rows = []
    for line in README.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == first_cell:
            rows.append(cells)
    return rows


def pair(cell: str) -> tuple[str, str]:
    m = re.fullmatch(r"([\d.]+) / ([\d.]+)(?: \(.*\))?", cell)
    assert m, f"not a 'PSNR / SSIM' cell: {cell!r}"
    return m.group(1), m.group(2)


def fmt(res: dict) -> tuple[str, str]:
    return f"{res['psnr']:.2f}", f"{res['ssim']:.3f}"


@pytest.mark.parametrize("model, result", [("`teacher`", "teacher_quality.json"),
                                           ("`student`", "student_quality.json"),
                                           ("`teacher-xtrans`", "teacher_xtrans_quality.json")])
def test_shipped_models_table_matches_eval_json(model, result):
    (row,) = [r for r in table_rows(model) if len(r) == 5]
    assert pair(row[-1]) == fmt(json.loads((RESULTS / result).read_text()))


def test_teacher_vs_baselines_table_matches_eval_json():
    res = json.loads((RESULTS / "teacher_quality.json").read_text())
    ratios = list(res["per_ratio"])
    expected = {"teacher": res, "LibRaw, no denoise": res["baselines"]["libraw"],
                "LibRaw + OpenCV non-local means (h = 2 sigma)": res["baselines"]["libraw+nlm"]}
    for name, r in expected.items():
        (row,) = [r for r in table_rows(name) if len(r) == len(ratios) + 2]
        assert [pair(c) for c in row[1:]] == [fmt(r["per_ratio"][k]) for k in ratios] + [fmt(r)], name


def test_xtrans_paragraph_matches_eval_json():
    res = json.loads((RESULTS / "teacher_xtrans_quality.json").read_text())
    nlm = res["baselines"]["libraw+nlm"]
    for r in (res, nlm):
        text = ", ".join(f"{a} / {b}" for a, b in (fmt(v) for v in r["per_ratio"].values()))
        assert text in README.replace("\n", " ")
    gaps = [nlm["per_ratio"][k]["ssim"] - res["per_ratio"][k]["ssim"] for k in res["per_ratio"]]
    assert f"{min(gaps):.3f}-{max(gaps):.3f} behind on SSIM" in README.replace("\n", " ")


def test_latency_table_matches_latency_json():
    lat = json.loads((RESULTS / "latency" / "latency.json").read_text())
    header = next(c for c in table_rows("model") if "host x86 (measured)" in c)
    devices = ["host", "cortex-a55", "cortex-a78", "cortex-x3", "ethos-u55-256", "ethos-u65-512", "ethos-u85-256"]
    assert len(header) == 1 + len(devices)
    checked = 0
    for m in lat["models"]:
        rows = [r for r in table_rows(m["model"]) if len(r) == len(header)]
        if not rows:
            continue
        (row,) = rows
        for cell, dev in zip(row[1:], devices):
            d = m["devices"].get(dev)
            if d is None:
                assert cell == "-", (m["model"], dev)
                continue
            assert cell.split()[0] == f"{d['latency_ms']:.0f}", (m["model"], dev, cell)
            if d["kind"] == "arm-cpu":
                assert f"({d['instructions'] / 1e9:.2f} G instr)" in cell
            elif d["kind"] == "npu":
                assert f"({d['cycles'] / 1e6:.0f} M cycles)" in cell
            checked += 1
    assert checked >= 4 * 3        # teacher and student, fp32 and int8

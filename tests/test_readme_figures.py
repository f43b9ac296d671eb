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
                                           ("`teacher-xtrans`", "teacher_xtrans_quality.json"),
                                           ("`teacher-raw`", "teacher_raw_quality.json"),
                                           ("`student-raw`", "student_raw_quality.json"),
                                           ("`student-rt`", "student_rt_quality.json")])
def test_shipped_models_table_matches_eval_json(model, result):
    (row,) = [r for r in table_rows(model) if len(r) == 5]
    res = json.loads((RESULTS / result).read_text())
    assert pair(row[-1]) == fmt(res)
    if "ood" in res and "held-out" in row[-1]:                  # raw models quote the held-out sensor too
        assert re.search(r"\(([\d.]+) / ([\d.]+) on the held-out sensor\)", row[-1]).groups() == fmt(res["ood"])


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


CARDS = ROOT / "darkc" / "models" / "pretrained"


def test_pipeline_report_states_the_benched_frame_and_each_rows_runtime():
    from darkc.pipeline import _runtime_label

    folder = RESULTS / "sid-mobile"
    bench = json.loads((folder / "bench.json").read_text())
    md = (folder / "report.md").read_text()
    (size,) = {m["resolution"]["raw"] for m in bench.values()}
    assert f"for one {size} " in md
    for name, entry in bench.items():
        (row,) = [ln for ln in md.splitlines() if ln.startswith(f"| {name} |")]
        assert row.split("|")[2].strip() == _runtime_label(entry["devices"]), name


def test_student_card_agreement_matches_eval_json():
    vs = json.loads((RESULTS / "student_quality.json").read_text())["vs"]
    card = (CARDS / "student" / "MODEL_CARD.md").read_text()
    assert f"{vs['psnr']:.2f} dB PSNR / {vs['ssim']:.3f} SSIM agreement" in card
    assert f"PSNR {vs['psnr']:.2f} dB, SSIM {vs['ssim']:.4f}" in (RESULTS / "student_quality.md").read_text()


def test_xtrans_card_gaps_match_eval_json():
    res = json.loads((RESULTS / "teacher_xtrans_quality.json").read_text())
    nlm = res["baselines"]["libraw+nlm"]
    dpsnr = " / ".join(f"+{res['per_ratio'][k]['psnr'] - nlm['per_ratio'][k]['psnr']:.1f}" for k in res["per_ratio"])
    gaps = [nlm["per_ratio"][k]["ssim"] - res["per_ratio"][k]["ssim"] for k in res["per_ratio"]]
    card = (CARDS / "teacher-xtrans" / "MODEL_CARD.md").read_text()
    assert f"({dpsnr} dB)" in card and f"SSIM by {min(gaps):.3f}-{max(gaps):.3f} at every ratio" in card


def test_vela_operator_counts_in_the_readme_match_latency_json():
    lat = json.loads((RESULTS / "latency" / "latency.json").read_text())
    # the teacher fits no U55 tile (2 MiB SRAM): its operator split is the U65-512's
    (u65,) = [m["devices"]["ethos-u65-512"] for m in lat["models"]
              if m["model"] == "teacher int8" and "ethos-u65-512" in m["devices"]]
    text = README.replace("\n", " ")
    assert u65["cpu_ops"] == 1 and "DEPTH_TO_SPACE stays on the CPU" in text
    assert f"({100 * u65['npu_share']:.0f} % of operators on the NPU)" in text


def test_mobile_architecture_paragraph_quotes_its_record():
    """The README's mobile-unet vs SID comparison holds what benchmarks/results/mobile_quality.json says."""
    rows = {r["label"]: r for r in json.loads((RESULTS / "mobile_quality.json").read_text())["rows"]}
    text = " ".join(README.split())
    for label in ("mobile-unet ds s2 16-112", "sid-unet 4-48"):
        r = rows[label]
        assert f"{r['reference']['psnr']:.2f}" in text and f"{r['ood']['psnr']:.2f}" in text, label
        assert f"{r['reference']['ssim']:.3f}" in text, label
        for device in ("cortex-a78 x1", "cortex-a78 x4", "ethos-u65-512", "ethos-u55-256", "host"):
            assert f"{r['devices'][device]['ms']:.1f}" in text, (label, device)


def test_int8_cost_sentence_quotes_its_record():
    data = json.loads((RESULTS / "int8_quality.json").read_text())
    rows, lat = data["rows"], data["latency"]["student-raw"]
    text = " ".join(README.split())

    def cost(model, file):
        fp32, q = rows[model]["FP32 (torch)"], rows[model][file]
        return [f"{fp32[s]['psnr'] - q[s]['psnr']:.2f}" for s in ("reference", "held-out sensor")]

    default, full = "TFLite int8 (default: full-res layers float)", "TFLite int8, full integer (--float-layers none)"
    assert "the sRGB student {} / {} dB (TFLite".format(*cost("student", "TFLite int8 (default: full integer)")) in text
    assert "the raw student {} / {} dB, because".format(*cost("student-raw", default)) in text
    assert "the raw student loses {} / {} dB (ONNX Runtime QDQ: {} / {} dB)".format(
        *cost("student-raw", full), *cost("student-raw", "ONNX int8, full integer (--float-layers none)")) in text
    assert "{:.1f} ms against {:.1f} ms full-integer and {:.1f} ms FP32".format(
        lat[default]["host_ms"], lat[full]["host_ms"], lat["FP32"]["host_ms"]) in text
    wide = "TFLite int8, full-res int16 (--int16-layers full-res)"
    assert "costs the raw student {} / {} dB (TFLite; ONNX Runtime {} / {} dB)".format(
        *cost("student-raw", wide), *cost("student-raw", "ONNX int8, full-res int16 (--int16-layers full-res)")) in text
    assert "at {:.1f} ms on Ethos-U65-512 (Vela) against {:.1f} ms full-integer".format(
        lat[wide]["npu_ms"], lat[full]["npu_ms"]) in text

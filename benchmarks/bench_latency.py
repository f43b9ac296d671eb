"""Latency report for the shipped models: host (measured), phone-class ARM cores (emulated), Ethos-U (Vela).

    python benchmarks/bench_latency.py --out benchmarks/results/latency/latency            # full report
    python benchmarks/bench_latency.py --quick --out /tmp/latency \\
        --baseline benchmarks/results/latency/baseline.json                                 # what CI runs

Every shipped model in darkc/models/pretrained (the teacher; the student once shipped) is exported - cached under
~/.cache/darkc/bench/exports - as TFLite fp32 and full-integer int8 at --size, and benched with `darkc.latency.bench`:
LiteRT/XNNPACK on the host (1 thread unless --threads), instruction counts under QEMU at --arm-size scaled by pixels
to --size for each core profile, Vela's estimate for each Ethos-U configuration (int8 only, int8 I/O).

Writes <out>.md, <out>.json, <out>.png, plus, unless --quick:
- calibration: for pairs of models that differ in precision (fp32 / int8) or width (teacher / a half-width SID
  U-Net, teacher / the shipped student), the ratio of ARM instruction counts beside the ratio of host latencies
  (LiteRT, 1 thread, minimum of the runs), and their agreement (instr ratio / host ratio);
- scaling: instructions at two emulated sizes vs the pixel ratio.

--baseline FILE fails (exit 1), against FILE, when: a key of FILE is not measured by this run or this run measures
one FILE lacks; an ARM instruction count or a Vela cycle count moved by more than --max-count-growth either way;
a host latency ratio (model variant / teacher fp32, same run) moved by more than --max-ratio-growth either way
(host ratios are kept per instruction-set level, e.g. `x86_64 avx512_vnni`, since INT8 vs FP32 speed depends on
it; on a level FILE lacks they are reported, not gated, and --write-baseline adds this host's level);
an Ethos-U NPU operator share fell or its CPU-fallback operator count rose; an aarch64-vs-x86-64 parity check
failed; or a shipped model's weights differ from those FILE was made for. FILE is made by --quick (what CI runs);
after re-shipping a model, regenerate it with one command:

    python benchmarks/bench_latency.py --quick --out /tmp/latency-baseline \\
        --baseline benchmarks/results/latency/baseline.json --write-baseline
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from darkc.errors import DarkcError, atomic_path, sha256_file
from darkc.provenance import portable
from darkc.latency import bench, write_report
from darkc.latency.bench import bench_npus, host_isa
from darkc.latency.report import plot, quality_from_eval
from darkc.latency.artifact import export_cached
from darkc.sizes import padded_hw, parse_resolution
from darkc.models import available_pretrained, build_model, read_spec, save_checkpoint
from darkc.models.pretrained import pretrained_dir

ARM_DEVICES = ["cortex-a55", "cortex-a78", "cortex-x3"]
NPU_DEVICES = ["ethos-u55-256", "ethos-u65-512", "ethos-u85-256"]
HALF_WIDTHS = [16, 32, 64, 128, 256]
HALF = "half-width SID U-Net (random weights)"


def _raw_hw(size: tuple[int, int], checkpoint: Path) -> str:
    """Raw HxW of a ``size`` frame packed and padded to the checkpoint's size multiple (Bayer: 2 raw px per packed)."""
    from darkc.models import read_spec, size_multiple_of

    h, w = padded_hw(size, "bayer", size_multiple_of(read_spec(checkpoint)))
    return f"{h * 2}x{w * 2}"


def variants(name: str, checkpoint: Path, size: tuple[int, int]) -> dict[str, Path]:
    """fp32 and int8 TFLite files of one checkpoint, fixed at ``size`` (int8 with int8 I/O, as an NPU takes it)."""
    out = {}
    for precision in ("fp32", "int8"):
        out[f"{name} {precision}"], _ = export_cached(checkpoint, "tflite", precision, _raw_hw(size, checkpoint),
                                                      "the latency report", io="int8" if precision == "int8" else "float")
    return out


def half_width_teacher(work: Path) -> Path:
    """A SID U-Net at half the teacher's widths (random weights: latency does not depend on them)."""
    import torch

    folder = work / "half-width-sid-unet"
    if not (folder / "model.safetensors").is_file():
        torch.manual_seed(0)
        spec = {"arch": "sid-unet", "cfa": "bayer", "widths": HALF_WIDTHS}
        save_checkpoint(build_model(spec), spec, folder)
    return folder


def npu_entries(path: Path, devices: list[str], size: str) -> tuple[dict[str, dict], dict[str, str]]:
    """Ethos-U entries of one int8 file (:func:`darkc.latency.bench.bench_npus`): a device no tile of which fits
    its SRAM is listed with the reason instead of failing the whole report."""
    return bench_npus(str(path), devices, size)


def run_all(files: dict[str, Path], devices: list[str], size: str, args) -> dict[str, dict]:
    results = {}
    for label, path in files.items():
        devs = [d for d in devices if not d.startswith("ethos")]
        npus = [d for d in devices if d.startswith("ethos") and label.endswith("int8")]
        t0 = time.monotonic()
        res = bench(str(path), devices=devs, size=size, threads=args.threads, runs=args.runs, warmup=args.warmup,
                    arm_size=args.arm_size, arm_repeats=args.arm_repeats)
        entries, unfit = npu_entries(path, npus, size)
        res["devices"].update(entries)
        res["label"] = label
        res["model"] = label
        res["npu_unfit"] = unfit
        res["bench_s"] = time.monotonic() - t0
        results[label] = res
        print(f"{label}: " + ", ".join(f"{d} {v['latency_ms']:.1f} ms" for d, v in res["devices"].items())
              + "".join(f", {d} does not fit" for d in unfit) + f" ({res['bench_s']:.0f} s)", file=sys.stderr,
              flush=True)
    return results


def host_min(res: dict) -> float:
    return res["devices"]["host"]["by_threads"]["1"]["min_ms"] if "1" in res["devices"]["host"]["by_threads"] \
        else res["devices"]["host"]["latency_ms"]


def calibration(results: dict[str, dict], pairs: list[tuple[str, str, str]]) -> list[dict]:
    """Per pair and core: ARM instruction ratio vs host latency ratio (both big / small)."""
    rows = []
    for kind, a, b in pairs:
        ra, rb = results[a], results[b]
        host_ratio = host_min(ra) / host_min(rb)
        for dev in ARM_DEVICES:
            if dev in ra["devices"] and dev in rb["devices"]:
                ir = ra["devices"][dev]["instructions"] / rb["devices"][dev]["instructions"]
                rows.append({"pair": f"{a} / {b}", "differs_in": kind, "device": dev, "instruction_ratio": ir,
                             "host_latency_ratio": host_ratio, "agreement": ir / host_ratio})
    return rows


def scaling(path: Path, arm_sizes: list[str], device: str) -> dict:
    """Instructions per inference at several emulated sizes, vs their pixel ratios (the first is the reference)."""
    from darkc.latency.bench import arm_file
    from darkc.latency.artifact import load_subject
    from darkc.latency import arm

    subject = load_subject(str(path))
    rows = []
    for s in arm_sizes:
        hw = padded_hw(parse_resolution(s, "--size"), subject.cfa, subject.multiple)
        f, runtime, hw, _ = arm_file(subject, hw, "int8" if "int8" in path.name else "fp32")
        shape = (1, hw[0], hw[1], subject.in_channels)
        c = arm.count_instructions(f, runtime, shape, arm.PROFILES[device])
        rows.append({"raw": s, "packed": f"{hw[1]}x{hw[0]}", "pixels": hw[0] * hw[1], "instructions": c["instructions"]})
    ref = rows[0]
    for r in rows:
        r["pixel_ratio"] = r["pixels"] / ref["pixels"]
        r["instruction_ratio"] = r["instructions"] / ref["instructions"]
    return {"model": str(path), "device": device, "rows": rows}


# ---------------------------------------------------------------- baseline gate
#: Devices and settings of ``--quick``: what CI runs, and so exactly what the baseline holds.
QUICK_DEVICES = "host,cortex-a55,cortex-a78,ethos-u55-256,ethos-u65-512"


def gated(results: dict[str, dict], reference: str) -> dict:
    """What the gate compares, per model variant and device.

    ``instructions`` (ARM, as measured, before scaling) and ``cycles`` (Vela): within +-``max_count`` of the
    baseline; ``latency / REF`` (host, relative to ``reference`` in the same run): within +-``max_ratio``;
    ``npu_share`` (Vela's operators on the NPU, 0-1): must not fall; ``cpu_ops`` (operators Vela leaves on the
    CPU, which its cycles leave out): must not rise; ``parity`` (1 when the aarch64 output matched the x86-64 one
    within the bench's criterion, else 0): must be 1.
    """
    ref = host_min(results[reference]) if reference in results and "host" in results[reference]["devices"] else None
    out = {}
    for label, res in results.items():
        for dev, d in res["devices"].items():
            if d["kind"] == "arm-cpu":
                out[f"{label} | {dev} | instructions"] = d["instructions_measured"]
                if d.get("parity") is not None:
                    out[f"{label} | {dev} | parity"] = 1.0 if d["parity"].get("passed") else 0.0
            elif d["kind"] == "npu":
                out[f"{label} | {dev} | cycles"] = d["cycles"]
                out[f"{label} | {dev} | npu_share"] = d["npu_share"]
                out[f"{label} | {dev} | cpu_ops"] = d["cpu_ops"]
            elif ref and label != reference:
                out[f"{label} | host | latency / {reference}"] = host_min(res) / ref
    return out


def split_host(current: dict) -> tuple[dict, dict]:
    """(counts, host ratios) of :func:`gated`'s keys: ARM/Vela counts are the same on every host; host latency
    ratios are comparable only between hosts of one instruction-set level (:func:`darkc.latency.bench.host_isa`),
    so the baseline keeps them per level."""
    host = {k: v for k, v in current.items() if " | host | " in k}
    return {k: v for k, v in current.items() if k not in host}, host


def gate(current: dict, base: dict, isa: str, max_count: float, max_ratio: float) -> tuple[list[str], list[str]]:
    """(failures, notes) of this run's :func:`gated` keys against the baseline file's content ``base``: counts
    against ``base['gated']``, host ratios against ``base['host_ratios'][isa]``; on a level the baseline lacks the
    host ratios are reported, not gated (a note says so)."""
    counts, host = split_host(current)
    failures, notes = compare(counts, base["gated"], max_count, max_ratio)
    by_isa = base.get("host_ratios", {})
    if isa in by_isa:
        more_failures, more_notes = compare(host, by_isa[isa], max_count, max_ratio)
        return failures + more_failures, notes + more_notes
    have = ", ".join(sorted(by_isa)) or "none"
    notes += [f"{key}: {value:.6g}, NOT GATED: the baseline has host ratios for {have}, this host is {isa} (INT8 "
              f"vs FP32 speed differs by instruction set); add this host's with --write-baseline"
              for key, value in host.items()]
    return failures, notes


def baseline_file(current: dict, isa: str, old: dict | None, weights: dict, **extra) -> dict:
    """The baseline written by --write-baseline: this run's counts and this host's ratios; another level's host
    ratios in ``old`` are kept when they were made for the same weights and size (else they are stale)."""
    counts, host = split_host(current)
    kept = {}
    if old and old.get("weights_sha256") == weights and old.get("size") == extra.get("size"):
        kept = {k: v for k, v in old.get("host_ratios", {}).items() if k != isa}
    return {"gated": counts, "host_ratios": {isa: host, **kept}, "weights_sha256": weights, **extra}


def compare(current: dict, baseline: dict, max_count: float, max_ratio: float) -> tuple[list[str], list[str]]:
    """(failures, notes) of ``current`` (:func:`gated` of this run) against ``baseline`` (the same keys).

    Fails on a baseline key the run lacks, a key the baseline lacks (the baseline covers exactly what CI runs), a
    count or latency ratio outside the tolerance either way (a drop is as suspicious as a growth: an operator that
    falls back to the CPU leaves Vela's cycles), a falling NPU share, a rising CPU-operator count and a failed
    aarch64-vs-x86 parity check.
    """
    failures, notes = [], []
    regen = "regenerate the baseline (see bench_latency.py's docstring) if the change is intended"
    for key in baseline:
        if key not in current:
            failures.append(f"{key}: in the baseline ({baseline[key]:.6g}) but not measured by this run; a model, "
                            f"device or check disappeared ({regen})")
    for key, value in current.items():
        if key not in baseline:
            failures.append(f"{key}: {value:.6g} measured but not in the baseline ({regen})")
            continue
        base = baseline[key]
        if key.endswith("| parity"):
            ok = value == 1.0
            line = f"{key}: aarch64 vs x86-64 output {'matches' if ok else 'DIFFERS (parity check failed)'}"
        elif key.endswith("| npu_share"):
            ok = value >= base - 1e-9
            line = f"{key}: {value * 100:.2f} % of operators on the NPU vs baseline {base * 100:.2f} % (must not fall)"
        elif key.endswith("| cpu_ops"):
            ok = value <= base
            line = f"{key}: {value:g} operators on the CPU vs baseline {base:g} (must not rise)"
        else:
            limit = max_ratio if "latency /" in key else max_count
            change = value / base - 1 if base else float("inf")
            ok = abs(change) <= limit
            line = (f"{key}: {value:.6g} vs baseline {base:.6g} ({change * 100:+.2f} %, limit "
                    f"+-{limit * 100:.0f} %)")
        (notes if ok else failures).append(line)
    return failures, notes


#: The committed reference-set evaluations of the shipped models (benchmarks/eval_quality.py writes them).
QUALITY_RECORDS = {"teacher": "benchmarks/results/teacher_quality.json",
                   "student": "benchmarks/results/student_quality.json"}


def _quality_records(pairs: list[str] | None) -> dict[str, str]:
    if not pairs:
        return {k: v for k, v in QUALITY_RECORDS.items() if Path(v).is_file()}
    out = {}
    for item in pairs:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise DarkcError(f"--quality {item!r}: pass NAME=FILE, e.g. teacher=benchmarks/results/teacher_quality.json")
        out[name] = path
    return out


def _attach_quality(results: dict[str, dict], quality: dict[str, str]) -> None:
    """Quality of each ``NAME fp32`` result from NAME's evaluation record. The fp32 TFLite export is scored as the
    checkpoint the record evaluated (export parity > 130 dB, see export_*.md); the int8 exports (int8 I/O) have
    no evaluation record of their own and stay unscored."""
    for name, path in quality.items():
        if f"{name} fp32" in results:
            results[f"{name} fp32"]["metrics"] = {**quality_from_eval(path), "scored": f"{name} (PyTorch checkpoint)"}
    for key, result in results.items():
        if not any(key == f"{n} fp32" for n in quality):
            result["metrics"] = None


def _replot(prefix: Path, quality: dict[str, str]) -> int:
    """Re-attach quality to ``prefix.json`` and redraw ``prefix.png`` from it (no measurement)."""
    payload = json.loads(prefix.with_suffix(".json").read_text())
    results = {r.get("label") or r["model"]: r for r in payload["models"]}
    _attach_quality(results, quality)
    with atomic_path(prefix.with_suffix(".json")) as tmp:
        Path(tmp).write_text(json.dumps(portable(payload), indent=1, default=str) + "\n")
    plot(payload["models"], prefix.with_suffix(".png"), payload.get("title", "darkc bench"))
    print(f"redrew {prefix.with_suffix('.png')} from {prefix.with_suffix('.json')}")
    return 0


def _checkpoint_of(label: str, work: Path | None) -> Path:
    """The checkpoint a report label (``NAME int8``) was exported from."""
    name = label.rsplit(" ", 1)[0]
    if name == HALF:
        from darkc.latency.artifact import cache_dir

        return half_width_teacher(work or cache_dir() / "calibration")
    return pretrained_dir(name)


def npu_only(a, quality: dict[str, str], argv) -> int:
    """Re-estimate only the Ethos-U entries of the report at ``--out`` (its JSON) and, with ``--baseline FILE
    --write-baseline``, only FILE's Ethos-U keys; every other figure stays as measured."""
    t0 = time.monotonic()
    prefix = Path(a.out)
    payload = json.loads(prefix.with_suffix(".json").read_text())
    results = {r.get("label") or r["model"]: r for r in payload["models"]}
    base = json.loads(Path(a.baseline).read_text()) if a.baseline and a.write_baseline else None
    devices = [d for d in payload["devices"] if d.startswith("ethos")]
    wanted = {(label, d) for label in results if label.endswith("int8") for d in devices}
    if base:
        wanted |= {tuple(k.split(" | ")[:2]) for k in base["gated"] if " | ethos" in k}
    entries: dict[str, dict] = {}
    unfit: dict[str, dict] = {}
    for label in sorted({lab for lab, _ in wanted}):
        ckpt = _checkpoint_of(label, Path(a.work) if a.work else None)
        path, _ = export_cached(ckpt, "tflite", "int8", _raw_hw(parse_resolution(payload["size"], "--size"), ckpt),
                                "the latency report", io="int8")
        devs = [d for lab, d in sorted(wanted) if lab == label]
        entries[label], unfit[label] = npu_entries(path, devs, payload["size"])
        print(f"{label}: " + ", ".join(f"{d} {v['latency_ms']:.1f} ms" for d, v in entries[label].items())
              + "".join(f", {d} does not fit" for d in unfit[label]), file=sys.stderr, flush=True)
    for label, res in results.items():
        if label in entries:
            kept = {d: v for d, v in res["devices"].items() if not d.startswith("ethos")}
            res["devices"] = {**kept, **{d: entries[label][d] for d in devices if d in entries[label]}}
            res["npu_unfit"] = {d: why for d, why in unfit[label].items() if d in devices}
    _attach_quality(results, quality)
    names = [lab.rsplit(" ", 1)[0] for lab in results if lab.endswith("fp32")]
    current = gated(results, f"{names[0]} fp32")
    extra = {k: v for k, v in payload.items() if k not in ("title", "models")}
    extra.update(gated=current, npu_wall_s=time.monotonic() - t0,
                 npu_command=" ".join(["python benchmarks/bench_latency.py",
                                       *(f"'{x}'" if " " in x else x for x in (argv or sys.argv[1:]))]))
    paths = write_report(list(results.values()), prefix, title=payload.get("title", "darkc bench"), extra=extra)
    _append_sections(Path(paths["md"]), extra, list(results.values()))
    if base:
        quick = {tuple(k.split(" | ")[:2]) for k in base["gated"] if " | ethos" in k}
        npu_gated = {f"{label} | {dev} | {key}": d[key] for label, devs in entries.items() for dev, d in devs.items()
                     if (label, dev) in quick for key in ("cycles", "npu_share", "cpu_ops")}
        base["gated"] = {**{k: v for k, v in base["gated"].items() if " | ethos" not in k}, **npu_gated}
        base["npu_command"] = extra["npu_command"]
        with atomic_path(a.baseline) as tmp:
            Path(tmp).write_text(json.dumps(portable(base), indent=1) + "\n")
        print(f"wrote the Ethos-U keys of {a.baseline}", file=sys.stderr)
    print(f"wrote {paths['md']} ({paths['json']}, {paths['png']}) in {time.monotonic() - t0:.0f} s", file=sys.stderr)
    return 0


def check_weights(models: dict[str, str], baseline_models: dict[str, str]) -> list[str]:
    """Failures when a model's weights (sha256 of model.safetensors) differ from those the baseline was made for."""
    return [f"{name}: weights {sha[:12]} differ from the baseline's {baseline_models.get(name, 'none')[:12]}; "
            f"regenerate the baseline for the shipped weights" for name, sha in models.items()
            if baseline_models.get(name) != sha]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="auto", help="shipped names, comma-separated (default: every shipped Bayer one)")
    p.add_argument("--size", default="1920x1080")
    p.add_argument("--arm-size", default="128x128")
    p.add_argument("--devices", default=",".join(["host", *ARM_DEVICES, *NPU_DEVICES]))
    p.add_argument("--threads", default="1")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--arm-repeats", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="CI: host, cortex-a55/a78, ethos-u55-256/u65-512; 3 runs; "
                   "no calibration or scaling")
    p.add_argument("--work", default=None, help="folder for the half-width calibration model (default: cache)")
    p.add_argument("--out", required=True, help="report prefix: writes .md, .json, .png")
    p.add_argument("--baseline", default=None)
    p.add_argument("--write-baseline", action="store_true")
    p.add_argument("--max-count-growth", type=float, default=0.02,
                   help="tolerance of ARM instruction and Vela cycle counts, either way (0.02 = +-2 %%)")
    p.add_argument("--max-ratio-growth", type=float, default=0.5,
                   help="tolerance of host latency ratios, either way (0.5 = +-50 %%)")
    p.add_argument("--note", default=None, help="a line about the host's conditions for the report")
    p.add_argument("--quality", action="append", default=None, metavar="NAME=FILE",
                   help="PSNR/SSIM of NAME's fp32 variant from a `darkc eval --format json` record (repeatable; "
                        "default: the committed reference-set records of the shipped teacher and student)")
    p.add_argument("--npu-only", action="store_true", help="re-estimate only the Ethos-U entries of the report at "
                   "--out (and, with --baseline --write-baseline, only the baseline's Ethos-U keys); nothing else runs")
    p.add_argument("--replot", action="store_true", help="re-attach --quality to the JSON at --out and redraw "
                   "its PNG, without measuring anything")
    a = p.parse_args(argv)
    try:
        quality = _quality_records(a.quality)
        if a.replot:
            return _replot(Path(a.out), quality)
        if a.npu_only:
            return npu_only(a, quality, argv)
    except DarkcError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if a.quick:
        a.devices, a.runs, a.arm_repeats = QUICK_DEVICES, 3, 1
    if a.write_baseline and not (a.quick and a.baseline):
        print("error: --write-baseline needs --quick and --baseline FILE: the baseline holds exactly what CI's "
              "--quick run measures", file=sys.stderr)
        return 1
    t0 = time.monotonic()
    # auto: the shipped Bayer models, which the gate's baseline covers (teacher-xtrans: --models teacher-xtrans)
    if a.models == "auto":
        names = [n for n in available_pretrained() if read_spec(pretrained_dir(n))["cfa"] == "bayer"]
    else:
        names = [m for m in a.models.split(",") if m]
    if not names:
        print("error: no shipped model found in darkc/models/pretrained; nothing to bench", file=sys.stderr)
        return 1
    size = parse_resolution(a.size, "--size")
    devices = [d for d in a.devices.split(",") if d]
    files: dict[str, Path] = {}
    for name in names:
        files.update(variants(name, pretrained_dir(name), size))
    pairs = [("precision", f"{n} fp32", f"{n} int8") for n in names]
    if not a.quick:
        from darkc.latency.artifact import cache_dir

        # width pairs: the teacher against a half-width SID U-Net (random weights, every layer still >= 16
        # channels) and against the shipped student when there is one
        wide = "teacher" if "teacher" in names else names[0]
        half = HALF
        files.update(variants(half, half_width_teacher(Path(a.work) if a.work else cache_dir() / "calibration"), size))
        pairs.append(("precision", f"{half} fp32", f"{half} int8"))
        narrow = [half] + [n for n in names if n != wide]
        pairs += [("width", f"{wide} {p}", f"{n} {p}") for n in narrow for p in ("fp32", "int8")]
    try:
        results = run_all(files, devices, a.size, a)
        extra = {"command": " ".join(["python benchmarks/bench_latency.py",
                                      *(f"'{x}'" if " " in x else x for x in (argv or sys.argv[1:]))]),
                 "size": a.size, "arm_size": a.arm_size, "devices": devices, "note": a.note}
        if not a.quick:
            extra["calibration"] = calibration(results, pairs)
            first = files[f"{names[0]} fp32"]
            arm_w, arm_h = parse_resolution(a.arm_size, "--arm-size")
            extra["scaling"] = scaling(first, [a.arm_size, f"{arm_w * 2}x{arm_h * 2}"], "cortex-a78")
    except DarkcError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    _attach_quality(results, quality)
    reference = f"{names[0]} fp32"
    current = gated(results, reference)
    extra["gated"] = current
    extra["wall_s"] = time.monotonic() - t0
    paths = write_report(list(results.values()), a.out, title="darkc latency report: shipped models", extra=extra)
    _append_sections(Path(paths["md"]), extra, list(results.values()))
    print(Path(paths["md"]).read_text())
    weights = {n: sha256_file(pretrained_dir(n) / "model.safetensors") for n in names}
    if a.write_baseline:
        old = json.loads(Path(a.baseline).read_text()) if Path(a.baseline).is_file() else None
        content = baseline_file(current, host_isa(), old, weights, size=a.size, arm_size=a.arm_size,
                                command=extra["command"])
        with atomic_path(a.baseline) as tmp:
            Path(tmp).write_text(json.dumps(portable(content), indent=1) + "\n")
        print(f"wrote baseline {a.baseline} (host ratios for {', '.join(content['host_ratios'])})", file=sys.stderr)
    elif a.baseline:
        base_path = Path(a.baseline)
        if not base_path.is_file():
            print(f"error: baseline {base_path} not found; create it with --write-baseline", file=sys.stderr)
            return 1
        base = json.loads(base_path.read_text())
        failures, notes = gate(current, base, host_isa(), a.max_count_growth, a.max_ratio_growth)
        failures += check_weights(weights, base.get("weights_sha256", {}))
        for n in notes:
            print(f"ok: {n}", file=sys.stderr)
        for f in failures:
            print(f"REGRESSION: {f}", file=sys.stderr)
        if failures:
            print(f"error: {len(failures)} latency regressions vs {base_path}; fix them, or if intended rerun with "
                  f"--write-baseline and commit the new baseline", file=sys.stderr)
            return 1
    print(f"wrote {paths['md']} ({paths['json']}, {paths['png']}) in {extra['wall_s']:.0f} s", file=sys.stderr)
    return 0


def npu_table(results: list[dict]) -> list[str]:
    """The Ethos-U rows as a markdown section: SRAM, halo, tile, whole-frame cycles and ms, the untiled figure."""
    lines = ["", "## Ethos-U: the frame tiled to fit the SRAM", "",
             "Vela estimates (compiled, not run). The whole frame is compiled first; when Vela needs more SRAM than "
             "the configuration has, square tiles (packed px) carrying the network's receptive-field halo on every "
             "side are compiled, smallest core first, and the fastest that fits is kept. Whole-frame cycles = tiles "
             "x cycles of one tile, so the overlap (halo) work is included; overlap = pixels computed beyond the "
             "frame's / the frame's. `untiled` is the whole frame as one arena, kept for reference only.", "",
             "| model | device | SRAM (mode) | halo px | tile (core) | tiles | overlap | SRAM used / tile | cycles / tile "
             "| whole-frame cycles | whole-frame ms | untiled ms (SRAM needed) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        for dev, d in r["devices"].items():
            if d["kind"] != "npu" or not d.get("tile"):
                continue
            t, u = d["tile"], d["untiled"]
            lines.append(f"| {r.get('label') or r['model']} | {dev} | {d['sram']['bytes'] / 1024:.0f} KiB "
                         f"({d['sram']['mode']}) | {t['halo_px']} | {t['tile'][1]}x{t['tile'][0]} ({t['core'][1]}x"
                         f"{t['core'][0]}) | {t['tiles']} | {t['overlap'] * 100:.0f} % | "
                         f"{d['per_tile']['sram_used_kib']:.0f} KiB | {d['per_tile']['cycles']:,} | {d['cycles']:,} | "
                         f"{d['latency_ms']:.1f} | {u['latency_ms']:.1f} ({u['sram_used_kib'] / 1024:.1f} MiB"
                         f"{'' if u['fits'] else ', does not fit'}) |")
        for dev, why in (r.get("npu_unfit") or {}).items():
            lines.append(f"| {r.get('label') or r['model']} | {dev} | does not fit: {why} |||||||||||")
    return lines


def _append_sections(md: Path, extra: dict, results: list[dict]) -> None:
    lines = npu_table(results)
    if extra.get("calibration"):
        lines += ["", "## Calibration: instruction-count ratios vs host latency ratios", "",
                  "Same pair of models on the emulated core (instructions per inference) and on this host (LiteRT "
                  "XNNPACK, 1 thread, minimum of the runs, x86-64). Agreement = instruction ratio / host ratio "
                  "(1.0 = the counts predict the host's relative cost exactly; x86 AVX and ARM NEON kernels differ, "
                  "so precision pairs need not agree).", "",
                  "| pair | differs in | core | instruction ratio | host latency ratio | agreement |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {r['pair']} | {r['differs_in']} | {r['device']} | {r['instruction_ratio']:.3f} | "
                  f"{r['host_latency_ratio']:.3f} | {r['agreement']:.3f} |" for r in extra["calibration"]]
    if extra.get("scaling"):
        s = extra["scaling"]
        lines += ["", f"## Scaling by pixels ({s['device']}, {Path(s['model']).name})", "",
                  "| raw | packed | pixel ratio | instruction ratio |", "|---|---|---|---|"]
        lines += [f"| {r['raw']} | {r['packed']} | {r['pixel_ratio']:.2f} | {r['instruction_ratio']:.3f} |"
                  for r in s["rows"]]
    if extra.get("note"):
        lines += ["", f"Host conditions: {extra['note']}"]
    lines += ["", f"Command: `{extra['command']}` ({extra['wall_s']:.0f} s on this machine)."]
    if extra.get("npu_command"):
        lines += ["", f"Ethos-U rows re-estimated by: `{extra['npu_command']}` ({extra['npu_wall_s']:.0f} s)."]
    with atomic_path(md) as tmp:
        Path(tmp).write_text(md.read_text() + portable("\n".join(lines)) + "\n")


if __name__ == "__main__":
    sys.exit(main())

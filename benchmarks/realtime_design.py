"""Real-time student design study: cost of mobile-unet variants for issue 17's targets, by darkc's own estimator.

    python benchmarks/realtime_design.py --out benchmarks/results/realtime_design [--work DIR] [--only SLUG,...]

Targets (issue 17, one 1920x1080 raw frame, INT8): <= 33 ms on a 4 x Cortex-A78 cluster, <= 16 ms on
Ethos-U65-512, <= 33 ms on Ethos-U55-256 with <= 2 MiB SRAM (Vela, tiled).

For each candidate (raw output + noise-std input like teacher-raw; seeded random weights: cost does not depend on
the weights, but the zero-initialised raw head is re-drawn small so that the INT8 residual ADD gets ordinary
quantisation scales, as a trained head does), conv MACs and params per 1920x1080 frame (packed 544x960), the
receptive-field halo and MACs per module, then one full-integer TFLite (int8 I/O) exported at 1088x1920 raw and
``darkc.latency.bench`` on it:

- ``cortex-a78`` at 1 and 4 threads (t threads on t A78 cores): estimated from QEMU guest instruction counts at
  bench's default emulation size, scaled by pixels, the validation's fitted IPC, with its error band;
- ``ethos-u65-512`` and ``ethos-u55-256``: Vela's estimate, the frame tiled so that each tile fits the
  configuration's SRAM (U55: 2 MiB holding the tensor arena), with the chosen tile, halo and overlap;
- ``host``: measured, LiteRT (XNNPACK) 1 thread on this shared 2-core host, and the per-operator split of it
  (:func:`darkc.latency.op_profile.op_profile`, one-operator models, CPU time) to show where CPU time goes.

Exports and checkpoints are kept in ``--work`` and reused; the JSON is rewritten after every candidate.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from int8_speed import cpu_flags, cpu_name      # benchmarks/ is on sys.path when a script in it runs
from mobile_arch import jsonable

from darkc.errors import atomic_path
from darkc.provenance import portable

NOISE = {"output": "raw", "input": {"noise": "std-map"}}
#: (label, spec, why): the s2 baseline, then the levers the cost analysis points at (see the module docstring of
#: darkc/models/mobile_unet.py and the report).
CANDIDATES = (
    ("s4 L3 16-96", {"stem": "s4", "levels": 3, "widths": [16, 24, 48, 96]},
     "s4 stem: every block at <= 1/4 packed resolution; bottleneck at 1/16 as the baseline (same halo)"),
    ("s4 L2 16-48", {"stem": "s4", "levels": 2, "widths": [16, 24, 48]},
     "s4 and two stages: bottleneck at 1/8, half the receptive field (halo) for Ethos-U55 tiles"),
    ("s4 L3 16-96 b1", {"stem": "s4", "levels": 3, "bottleneck": 1, "widths": [16, 24, 48, 96]},
     "s4, one block less at the bottleneck: a smaller halo at 5 % fewer MACs"),
    ("s2 L3 8-64", {"stem": "s2", "levels": 3, "widths": [8, 16, 32, 64]},
     "control without s4: the s2 net made narrow and three-stage to a similar MAC count"),
    ("s2 L4 16-128 (baseline)", {"stem": "s2", "widths": [16, 24, 48, 96, 128]},
     "the current mobile student design (block=ds, stem=s2)"),
    ("s4 L3 16-96 d2s", {"stem": "s4", "levels": 3, "head": "d2s", "widths": [16, 24, 48, 96]},
     "CPU student: the two transposed convs of the s4 head (46 % of the host INT8 time) replaced by a 1x1 conv + "
     "DEPTH_TO_SPACE (not an Ethos-U op)"),
    ("s4 L2 16-48 d2s", {"stem": "s4", "levels": 2, "head": "d2s", "widths": [16, 24, 48]},
     "CPU student: the cheapest s4 net with the DEPTH_TO_SPACE head"),
    ("s4 L2 16-48 b1 d2s", {"stem": "s4", "levels": 2, "bottleneck": 1, "head": "d2s", "widths": [16, 24, 48]},
     "CPU student: the previous one with one bottleneck block less (it missed 33 ms on A78 x4 by 0.1 ms)"),
    ("s4 L2 16-48 b1 half", {"stem": "s4", "levels": 2, "bottleneck": 1, "head": "half", "widths": [16, 24, 48]},
     "CPU student: the d2s head cannot learn (rank: 16 features set a 4x4 block of 64 raw values); head=half adds "
     "the input at 1/2 resolution (stem0, full rank) and ends in a native DEPTH_TO_SPACE(2), no layout transposes"),
    ("s4 L3 16-96 b1 half", {"stem": "s4", "levels": 3, "bottleneck": 1, "head": "half", "widths": [16, 24, 48, 96]},
     "CPU student: the three-stage s4 net (larger receptive field) with the half-resolution head"),
)
FRAME_RAW = "1088x1920"     # raw HxW of a 1920x1080 frame padded to the size multiple
PACKED = (544, 960)
TARGETS = {"cortex-a78 x4": 33.0, "ethos-u65-512": 16.0, "ethos-u55-256": 33.0}
NPUS = ("ethos-u65-512", "ethos-u55-256")


def slug(label: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in label.split(" (")[0]).strip("-")


def build(spec: dict, folder: Path):
    """The seeded random candidate, saved to ``folder`` (reused when there); the raw head re-drawn small."""
    from darkc.models import build_model, load_checkpoint, normalize_spec, save_checkpoint

    if (folder / "model.json").exists():
        return load_checkpoint(folder)
    spec = normalize_spec({"arch": "mobile-unet", "block": "ds", **NOISE, **spec})
    torch.manual_seed(0)
    model = build_model(spec)
    with torch.no_grad():
        for name in ("head_up", "head"):
            if hasattr(model, name):
                torch.nn.init.normal_(getattr(model, name).weight, 0.0, 1e-2)
    save_checkpoint(model, spec, folder)
    return load_checkpoint(folder)


def macs_by_module(model, in_channels: int) -> dict:
    """Conv MACs per top-level module for the packed frame (forward hooks; transposed convs: input px x cout x k^2)."""
    from torch import nn

    macs: dict[str, int] = {}

    def hook(name):
        def f(mod, inputs, out):
            k = mod.kernel_size[0] * mod.kernel_size[1]
            n = (inputs[0].numel() * mod.out_channels * k if isinstance(mod, nn.ConvTranspose2d) else
                 out.numel() * (mod.in_channels // mod.groups) * k)
            macs[name.split(".")[0]] = macs.get(name.split(".")[0], 0) + n
        return f

    hooks = [m.register_forward_hook(hook(n)) for n, m in model.named_modules()
             if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    with torch.no_grad():
        model(torch.zeros(1, in_channels, *PACKED))
    for h in hooks:
        h.remove()
    return macs


def vela_layers(path: Path, device: str = "ethos-u65-512", top: int = 6) -> dict:
    """Vela's per-layer estimate (``--verbose-performance``) of the whole-frame file on ``device``: the ``top``
    layers by cycles (position in the graph, type, share of the cycles, DRAM access cycles, MAC utilisation)."""
    import subprocess

    from darkc.latency import npu

    profile = npu.profile_of(device)
    with tempfile.TemporaryDirectory(prefix="darkc-vela-layers-") as tmp:
        cmd = [sys.executable, "-c", "import sys; from ethosu.vela.vela import main; sys.exit(main())",
               "--accelerator-config", device, "--system-config", profile.system_config, "--memory-mode",
               profile.memory_mode, "--config", "Arm/vela.ini", "--arena-cache-size", str(profile.sram_bytes),
               "--output-dir", tmp, "--verbose-performance", str(path)]
        text = subprocess.run(cmd, capture_output=True, text=True, timeout=1800).stdout
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("Original Operator")) + 2
    layers = []
    for ln in lines[start:]:
        f = ln.split()
        if len(f) < 15:
            break
        if f[5] != "0":
            layers.append({"op": f[0], "npu_op": f[1], "cycles": int(f[5]), "share": float(f[6]) / 100,
                           "dram_access_cycles": int(f[9]), "macs": int(f[12]), "mac_util": float(f[14]) / 100})
    for i, layer in enumerate(layers):
        layer["position"] = f"{i + 1}/{len(layers)}"
    return {"device": device, "estimated": True, "how": f"Vela --verbose-performance, whole frame, "
            f"{profile.system_config}/{profile.memory_mode} (per-layer cycles; not tiled)",
            "top": sorted(layers, key=lambda x: -x["cycles"])[:top]}


def measure(label: str, spec: dict, why: str, work: Path) -> dict:
    from darkc.export import export
    from darkc.export.tflite import graph_info
    from darkc.latency.bench import bench, bench_npus
    from darkc.latency.op_profile import op_profile
    from darkc.latency.tiling import receptive_halo
    from darkc.latency.validation import band_text
    from darkc.models import count_macs, count_params

    t0 = time.time()
    model, spec = build(spec, work)
    row = {"label": label, "why": why,
           "spec": {k: spec[k] for k in ("arch", "block", "stem", "levels", "bottleneck", "head", "upsample",
                                         "widths", "output", "input")},
           "macs_frame": count_macs(model, (spec["in_channels"], *PACKED)), "params": count_params(model),
           "macs_by_module": macs_by_module(model, spec["in_channels"]),
           "size_multiple": model.size_multiple,
           "halo": receptive_halo(model, spec["in_channels"], model.size_multiple),
           "resolution": {"raw": FRAME_RAW, "packed": f"{PACKED[0]}x{PACKED[1]}", "note": "HxW"}}
    int8 = work / f"model-int8-{FRAME_RAW}.tflite"
    if not int8.is_file():
        export(work, int8, target="tflite", precision="int8", input_size=FRAME_RAW, samples=4, io="int8")
    row["int8_ops"] = graph_info(int8)["op_counts"]

    host = bench(int8, devices=["host"], threads=[1], runs=5, warmup=1)["devices"]["host"]
    row["host"] = {"latency_ms": host["latency_ms"], "estimated": False, "threads": 1, "runtime": host["runtime"],
                   "cpu": host["cpu"], "how": f"measured, {host['runtime']}, 1 thread, {host['cpu']} (shared, "
                                              f"loaded 2-core host), median of 5"}
    prof = op_profile(int8, threads=1, runs=3)
    row["host_by_op"] = {k: {"count": v["count"], "ms": round(v["ms"], 2), "share": round(v["share"], 3)}
                         for k, v in prof["by_op"].items()}

    arm = bench(int8, devices=["cortex-a78"], threads=[1, 4], parity=False)["devices"]["cortex-a78"]
    for t, by in arm["by_threads"].items():
        row[f"cortex-a78 x{t}"] = {
            "latency_ms": by["latency_ms"], "estimated": True, "threads": int(t), "cores": by["cores"],
            "error_band": arm.get("error_band"), "serial_ms": by["serial_ms"], "parallel_ms": by["parallel_ms"],
            "sync_ms": by["sync_ms"], "dram_ms": by["dram_ms"], "instructions": by["instructions"],
            "how": f"estimated, {arm['runtime']}, {by['cores']}, {t} thread(s), QEMU instruction counts at packed "
                   f"{arm['measured_resolution']['packed']} x{arm['pixel_scale']:.1f} px, IPC x fitted "
                   f"{arm['ipc_scale']:.2f}, error band {band_text(arm.get('error_band'))}"}
    entries, unfit = bench_npus(int8, NPUS)
    for dev in NPUS:
        if dev in unfit:
            row[dev] = {"latency_ms": None, "estimated": True, "unfit": unfit[dev]}
            continue
        r = entries[dev]
        row[dev] = {"latency_ms": r["latency_ms"], "estimated": True, "tile": r["tile"],
                    "sram_limit_kib": r["sram"]["bytes"] / 1024, "sram_mode": r["sram"]["mode"],
                    "sram_used_kib_per_tile": r["per_tile"]["sram_used_kib"],
                    "untiled": r["untiled"], "candidates": r["candidates"], "cpu_ops": r["cpu_ops"],
                    "fallbacks": r["fallbacks"], "npu_share": r["npu_share"],
                    "how": f"estimated, {r['runtime']}, {r['method']}"}
    row["vela_layers_u65"] = vela_layers(int8)
    row["met"] = {k: (row[k]["latency_ms"] is not None and row[k]["latency_ms"] <= v) for k, v in TARGETS.items()}
    row["wall_s"] = round(time.time() - t0, 1)
    return row


def _ms(v) -> str:
    return "n/a" if v is None else f"{v:.1f}"


def format_md(rows: list[dict], command: str) -> str:
    band = next((r["cortex-a78 x1"]["error_band"] for r in rows if r.get("cortex-a78 x1")), None)
    from darkc.latency.validation import band_text

    lines = ["# Real-time student design study (issue 17)", "", f"Command: `{command}`", "",
             "Every candidate: mobile-unet, block=ds, raw output + noise-std input (like teacher-raw), seeded random "
             "weights (cost does not depend on them), one INT8 TFLite file (int8 I/O) exported at "
             f"{FRAME_RAW} raw (HxW; packed {PACKED[0]}x{PACKED[1]}), i.e. one 1920x1080 frame padded, benched by "
             "`darkc.latency.bench`. GMACs: conv MACs per frame (PyTorch count). A78: **estimated**, QEMU "
             f"instruction counts x fitted IPC, t threads on t Cortex-A78 cores (error band {band_text(band)}). "
             "Ethos-U: **estimated** by Vela, the frame tiled to the configuration's SRAM (U55-256: 2 MiB holding "
             "the tensor arena; U65-512: 512 KiB SRAM cache, arena in DRAM). Host: **measured**, LiteRT XNNPACK, 1 "
             "thread, on a shared, loaded 2-core host (compare, do not quote as a phone figure).", "",
             "Targets (issue 17): A78 x4 <= 33 ms, U65-512 <= 16 ms, U55-256 (<= 2 MiB SRAM, tiled) <= 33 ms.", "",
             "| candidate | GMACs | params | halo px (packed) | A78 x1 ms (est.) | A78 x4 ms (est.) | U65-512 ms "
             "(Vela, tiled) | U55-256 ms (Vela, 2 MiB, tiled) | U55 tile (core+halo, tiles, overlap) | host INT8 ms "
             "(LiteRT 1 thr, measured) | targets met |", "|" + "---|" * 11]
    for r in rows:
        u55 = r["ethos-u55-256"]
        tile = (f"{u55['tile']['core'][0]}+2x{u55['tile']['halo_px']}, {u55['tile']['tiles']}, "
                f"+{100 * u55['tile']['overlap']:.0f} %" if u55.get("tile") else u55.get("unfit", "n/a"))
        met = ", ".join(k for k, v in r["met"].items() if v) or "none"
        lines.append(f"| {r['label']} | {r['macs_frame'] / 1e9:.3f} | {r['params']:,} | {r['halo']['halo_px']} | "
                     f"{_ms(r['cortex-a78 x1']['latency_ms'])} | {_ms(r['cortex-a78 x4']['latency_ms'])} | "
                     f"{_ms(r['ethos-u65-512']['latency_ms'])} | {_ms(u55['latency_ms'])} | {tile} | "
                     f"{_ms(r['host']['latency_ms'])} | {met} |")
    lines += ["", "Spec of each candidate and why it is in the study:", ""]
    for r in rows:
        s = r["spec"]
        lines.append(f"- **{r['label']}**: stem={s['stem']}, levels={s['levels']}, bottleneck={s['bottleneck']}, "
                     f"head={s.get('head', 'tconv')}, "
                     f"widths={s['widths']}, size multiple {r['size_multiple']}: {r['why']}")
    lines += ["", "Conv MACs per module (M, per frame):", "", "| candidate | MACs by module |", "|---|---|"]
    for r in rows:
        lines.append(f"| {r['label']} | " + ", ".join(f"{k} {v / 1e6:.0f}" for k, v in r["macs_by_module"].items())
                     + " |")
    lines += ["", "A78 estimate split (ms, estimated): serial / parallel / sync / DRAM term, 1 and 4 threads:", "",
              "| candidate | x1 | x4 |", "|---|---|---|"]
    for r in rows:
        cells = [" / ".join(f"{r[f'cortex-a78 x{t}'][k]:.1f}" for k in ("serial_ms", "parallel_ms", "sync_ms",
                                                                        "dram_ms")) for t in (1, 4)]
        lines.append(f"| {r['label']} | {cells[0]} | {cells[1]} |")
    lines += ["", "Host INT8 time by operator (share of the summed one-operator CPU times, LiteRT XNNPACK, 1 thread, "
              "measured on the host, a proxy for where the ARM time goes):", "", "| candidate | top operators |",
              "|---|---|"]
    for r in rows:
        top = ", ".join(f"{k} x{v['count']} {100 * v['share']:.0f} %" for k, v in list(r["host_by_op"].items())[:6])
        lines.append(f"| {r['label']} | {top} |")
    lines += ["", "Ethos-U65-512 per layer (Vela --verbose-performance, whole frame, estimated): the layers with the "
              "most cycles (position in the graph, share of the cycles, DRAM access cycles / op cycles, MAC "
              "utilisation):", ""]
    for r in rows:
        if not r.get("vela_layers_u65"):
            continue
        lines.append(f"- {r['label']}: " + "; ".join(
            f"#{x['position']} {x['op']} {100 * x['share']:.0f} % (DRAM {x['dram_access_cycles'] / max(x['cycles'], 1):.0%}"
            f", util {100 * x['mac_util']:.0f} %)" for x in r["vela_layers_u65"]["top"]))
    lines += ["", "Ethos-U55-256 tile search (Vela, SRAM limit 2 MiB; per-tile SRAM use; whole-frame ms):", ""]
    for r in rows:
        u55 = r["ethos-u55-256"]
        if not u55.get("candidates"):
            lines.append(f"- {r['label']}: {u55.get('unfit')}")
            continue
        cands = "; ".join(f"{'frame' if c['halo_px'] == 0 else 'core ' + str(c['core'][0])}: "
                          f"{c['sram_used_kib']:.0f} KiB{'' if c['fits'] else ' (does not fit)'}, "
                          f"{c['latency_ms']:.1f} ms" for c in u55["candidates"])
        lines.append(f"- {r['label']}: {cands}")
    lines += ["", "Operators left on the CPU by Vela: " + (", ".join(
        f"{r['label']} {n}: {r[n]['fallbacks']}" for r in rows for n in NPUS if r[n].get("fallbacks")) or "none"),
        "", "INT8 operator counts:", "", "| candidate | ops |", "|---|---|"]
    for r in rows:
        lines.append(f"| {r['label']} | {', '.join(f'{k} {v}' for k, v in r['int8_ops'].items())} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="benchmarks/results/realtime_design")
    ap.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "darkc-realtime-design"),
                    help="keep the checkpoints and exports here and reuse them")
    ap.add_argument("--only", default=None, help="comma-separated candidate slugs to (re)measure; the others are "
                    "taken from --out's JSON when there")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    out, work = Path(args.out), Path(args.work)
    command = f"python benchmarks/realtime_design.py --out {args.out}"
    rows_path = out.with_suffix(".json")
    old = {r["label"]: r for r in json.loads(rows_path.read_text())["candidates"]} if rows_path.exists() else {}
    only = set(args.only.split(",")) if args.only else None
    rows = []
    for label, spec, why in CANDIDATES:
        if only is not None and slug(label) not in only:
            if label in old:
                rows.append(old[label])
                if "vela_layers_u65" not in rows[-1]:
                    rows[-1]["vela_layers_u65"] = vela_layers(work / slug(label) / f"model-int8-{FRAME_RAW}.tflite")
            continue
        print(f"[realtime_design] {label}", file=sys.stderr, flush=True)
        (work / slug(label)).mkdir(parents=True, exist_ok=True)
        rows.append(measure(label, spec, why, work / slug(label)))
        record = {"candidates": rows, "frame_raw_hw": FRAME_RAW, "packed_hw": list(PACKED), "targets_ms": TARGETS,
                  "host": {"cpu": cpu_name(), "simd": cpu_flags(), "cores": os.cpu_count()}, "command": command}
        with atomic_path(rows_path) as tmp:
            Path(tmp).write_text(json.dumps(portable(record), indent=1, default=jsonable) + "\n")
        with atomic_path(out.with_suffix(".md")) as tmp:
            Path(tmp).write_text(format_md(rows, command))
    print(out.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())

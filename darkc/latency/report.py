"""Bench results as a terminal table, markdown, JSON and a PNG plot; every figure keeps its label.

A row per (model, device): latency in ms and whether it is measured or estimated, resolution (raw and packed),
dtype, runtime/delegate and threads, and the device's own figures (host p90 and peak memory; ARM instruction count
and roofline; Ethos-U cycles, clock, traffic and NPU share).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from darkc.errors import DarkcError, atomic_path
from darkc.latency.validation import band_text
from darkc.fmt import si
from darkc.provenance import portable

FORMATS = ("table", "md", "json")


def model_label(result: dict) -> str:
    """The model's name as tables show it: with ``(raw out)`` / ``(+noise map)`` for models other than SID's sRGB
    kind, whose output and input differ (4 / 9 channels at the packed size; one more input channel)."""
    tags = (["raw out"] if result.get("output") == "raw" else []) + \
        (["+noise map"] if result.get("noise_input", "none") != "none" else [])
    return f"{result['model']} ({', '.join(tags)})" if tags else str(result["model"])


def npu_detail(d: dict) -> str:
    """Tile, SRAM and the labelled untiled figure of a tiled Ethos-U entry, in one clause."""
    t, s, u = d["tile"], d["sram"], d["untiled"]
    where = "arena in SRAM" if s["arena_in_sram"] else "SRAM cache, arena in DRAM"
    if t["tiles"] > 1:
        tile = (f"tile {t['tile'][1]}x{t['tile'][0]} packed (core {t['core'][1]}x{t['core'][0]} + halo "
                f"{t['halo_px']}) x {t['tiles']} ({t['grid'][0]}x{t['grid'][1]}), overlap {t['overlap'] * 100:.0f} %, "
                f"{si(d['per_tile']['cycles'])} cycles/tile, {d['per_tile']['sram_used_kib']:.0f} KiB SRAM used")
    else:
        tile = f"whole frame as 1 tile, {d['per_tile']['sram_used_kib']:.0f} KiB SRAM used"
    untiled = "" if t["tiles"] == 1 else (f"; {u['label']}: {u['latency_ms']:.1f} ms")
    return f"{tile} of {s['bytes'] / 1024:.0f} KiB ({s['mode']}, {where}){untiled}"


def rows(result: dict) -> list[dict]:
    """Flat rows of one :func:`darkc.latency.bench` result."""
    out = []
    res = result["resolution"]
    for name, d in result["devices"].items():
        row = {"model": model_label(result), "device": name, "latency_ms": d["latency_ms"],
               "how": "estimated" if d.get("estimated") else "measured", "raw": res["raw"], "packed": res["packed"],
               "dtype": result["dtype"], "runtime": d.get("runtime"), "threads": d.get("threads")}
        if d["kind"] == "host":
            first = d["by_threads"][str(d["threads"])]
            row["detail"] = (f"min {first['min_ms']:.1f} / p90 {first['p90_ms']:.1f} ms, peak RSS "
                             f"{first['peak_rss_mib']:.0f} MiB, {d['cpu']}")
            if len(d["by_threads"]) > 1:
                row["detail"] += "; " + ", ".join(f"{t} thr {v['median_ms']:.1f} ms" for t, v in d["by_threads"].items())
        elif d["kind"] == "arm-cpu":
            p = d["profile"]
            m = d["measured_resolution"]
            row["detail"] = (f"est. {d['latency_ms']:.3g} ms, {band_text(d.get('error_band'))}; "
                             f"{d.get('cores', p['name'])}; {si(d['instructions'])} instr, critical path "
                             f"{si(d.get('critical_path', d['instructions']))} (counted at packed {m['packed']} on QEMU "
                             f"-cpu {p['qemu_cpu']}, x{d['pixel_scale']:.1f}); IPC {p['ipc']}"
                             f"{' x %.2f fitted' % d['ipc_scale'] if d.get('error_band') else ' assumed'}; "
                             f"roofline {d['roofline_ms']:.1f} ms")
            if len(d.get("by_threads", {})) > 1:
                row["detail"] += "; " + ", ".join(f"{t} thr est. {v['latency_ms']:.3g} ms"
                                                  for t, v in d["by_threads"].items())
            if d.get("parity"):
                row["detail"] += f"; aarch64 vs x86 output PSNR {d['parity'].get('psnr_db', float('nan')):.1f} dB"
        else:
            row["detail"] = npu_detail(d) + "; " if d.get("tile") else ""
            row["detail"] += (f"{si(d['cycles'])} cycles @ {d['clock_hz'] / 1e6:.0f} MHz; SRAM {si(d['sram_bytes'], 'B')}"
                             f", DRAM {si(d['dram_bytes'], 'B')}, flash {si(d['flash_bytes'], 'B')}; NPU ops "
                             f"{d['npu_share'] * 100:.1f} %" + (f" (CPU: {', '.join(f['op'] for f in d['fallbacks'])})"
                                                                 if d["fallbacks"] else ""))
            if d.get("caveat"):
                row["detail"] += f"; CAVEAT: {d['caveat']}"
            used = d.get("resolution_used", {})
            if used.get("packed") and used["packed"] != res["packed"]:
                row["raw"], row["packed"] = used["raw"], used["packed"]
        out.append(row)
    return out


_HEAD = ["model", "device", "latency ms", "how", "raw WxH", "packed", "dtype", "runtime", "threads", "details"]


def _cells(r: dict) -> list[str]:
    return [str(r["model"]), r["device"], f"{r['latency_ms']:.2f}", r["how"], r["raw"], r["packed"], r["dtype"],
            str(r["runtime"]), "-" if r["threads"] is None else str(r["threads"]), r["detail"]]


def markdown(results: list[dict], title: str | None = None) -> str:
    lines = [f"# {title}", ""] if title else []
    lines += ["| " + " | ".join(_HEAD) + " |", "|" + "---|" * len(_HEAD)]
    for result in results:
        lines += ["| " + " | ".join(c.replace("|", "/") for c in _cells(r)) + " |" for r in rows(result)]
    notes = sorted({n for result in results for n in result.get("notes", [])} |
                   {d["file_note"] for result in results for d in result["devices"].values() if d.get("file_note")})
    methods = {}
    for result in results:
        for name, d in result["devices"].items():
            methods.setdefault(name, d["method"])
    lines += ["", "How each figure was obtained:", ""] + [f"- **{k}**: {v}" for k, v in methods.items()]
    profiles = {n: d["profile"] for result in results for n, d in result["devices"].items() if d["kind"] == "arm-cpu"}
    if profiles:
        lines += ["", "ARM core profiles (clock and SIMD/DRAM rates published; IPC assumed):", ""]
        for n, p in profiles.items():
            lines.append(f"- **{n}** (QEMU `-cpu {p['qemu_cpu']}`: {p['qemu_note']}): {p['clock_ghz']} GHz "
                         f"({p['clock_source']}); IPC {p['ipc']} ({p['ipc_basis']}); {p['fp32_macs_per_cycle']} fp32 / "
                         f"{p['int8_macs_per_cycle']} int8 MACs per cycle ({p['simd_source']}); DRAM {p['dram_gbs']} "
                         f"GB/s ({p['dram_source']})")
    bands = {json.dumps(d["error_band"], sort_keys=True) for result in results for d in result["devices"].values()
             if d.get("error_band")}
    for b in map(json.loads, sorted(bands)):
        lines += ["", f"ARM estimates carry the estimator's measured error: {band_text(b)}; validated on "
                      f"{b.get('validated_on', 'published phone figures')} ({b.get('report', '')}). The IPC above "
                      f"is multiplied by the correction fitted there."]
    srams = {n: d for result in results for n, d in result["devices"].items() if d["kind"] == "npu" and d.get("sram")}
    if srams:
        lines += ["", "Ethos-U memory systems (the frame is tiled so that each tile's Vela-reported SRAM use fits; "
                  "whole-frame cycles = tiles x cycles of one tile, halo overlap included):", ""]
        for n, d in srams.items():
            lines.append(f"- **{n}**: {d['sram']['bytes'] / 1024:.0f} KiB SRAM, {d['system']}; {d['sram']['source']}")
    if notes:
        lines += ["", "Files made for this run:", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def table(results: list[dict]) -> str:
    body = [_cells(r) for result in results for r in rows(result)]
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(_HEAD[:-1])]
    lines = ["  ".join(h.ljust(w) for h, w in zip(_HEAD[:-1], widths))]
    for b in body:
        lines.append("  ".join(c.ljust(w) for c, w in zip(b[:-1], widths)))
        lines.append("    " + b[-1])
    return "\n".join(lines)


def format_result(result: dict | list[dict], fmt: str = "table") -> str:
    """One result (or several) as ``table``, ``md`` or ``json`` (one object: the result, or {"models": [...]})."""
    if fmt not in FORMATS:
        raise DarkcError(f"--format {fmt!r} is unknown; use one of {', '.join(FORMATS)}")
    results = result if isinstance(result, list) else [result]
    if fmt == "json":
        return json.dumps(result if isinstance(result, dict) else {"models": results}, indent=1, default=str)
    return markdown(results) if fmt == "md" else table(results)


def plot(results: list[dict], png: str | os.PathLike, title: str = "darkc bench") -> None:
    """Latency per device and model (log scale; hatched = estimated), and PSNR vs latency where known."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    devices = list(dict.fromkeys(d for r in results for d in r["devices"]))
    with_quality = [r for r in results if (r.get("metrics") or {}).get("psnr") is not None]
    fig = plt.figure(figsize=(13 if with_quality else 8, 5.4))
    grid = fig.add_gridspec(2, 2 if with_quality else 1, height_ratios=[4, 1.1])
    ax = fig.add_subplot(grid[:, 0])
    width = 0.8 / max(len(results), 1)
    for i, r in enumerate(results):
        xs, ys, hatches = [], [], []
        for j, dev in enumerate(devices):
            if dev in r["devices"]:
                xs.append(j + i * width)
                ys.append(r["devices"][dev]["latency_ms"])
                hatches.append("//" if r["devices"][dev].get("estimated") else "")
        bars = ax.bar(xs, ys, width, label=f"{Path(str(r['model'])).name} ({r['dtype']}, {r['resolution']['raw']})")
        for b, h in zip(bars, hatches):
            b.set_hatch(h)
    ax.set_xticks([j + width * (len(results) - 1) / 2 for j in range(len(devices))])
    ax.set_xticklabels(devices, rotation=30, ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("latency per frame (ms, log)")
    ax.set_title("host measured; ARM / Ethos-U estimated (hatched)", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    if with_quality:
        from darkc.latency.chart import draw, lonely_table

        name = lambda r: r.get("label") or f"{Path(str(r['model'])).name} {r['dtype']}"  # noqa: E731
        points = [{"model": name(r), "device": dev, "latency_ms": d["latency_ms"],
                   "psnr": r["metrics"]["psnr"], "estimated": bool(d.get("estimated"))}
                  for r in with_quality for dev, d in r["devices"].items()]
        sets = sorted({str(r["metrics"].get("data", "?")) for r in with_quality})
        unscored = [name(r) for r in results if r not in with_quality]
        lonely = draw(fig.add_subplot(grid[0, 1]), points,
                      quality=f"darkc eval on {', '.join(sets)} (the record each result names)")
        scored = sorted({r["metrics"].get("scored", "") for r in with_quality} - {""})
        lonely_table(fig.add_subplot(grid[1, 1]), lonely,
                     note=(f"Scored as: {', '.join(scored)}. " if scored else "")
                     + (f"Not scored (no evaluation record of that file): {', '.join(unscored)}." if unscored else ""))
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(png) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def quality_from_eval(record: str | os.PathLike) -> dict:
    """``metrics`` for a bench result from a ``darkc eval --format json`` record: PSNR/SSIM, the set, the pair
    count and the record's path, so a plotted quality value can be traced to (and checked against) its source."""
    path = Path(record)
    try:
        rec = json.loads(path.read_text())
        return {"psnr": float(rec["psnr"]), "ssim": float(rec["ssim"]), "data": rec["data"], "n": int(rec["n"]),
                "source": portable(str(path))}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DarkcError(f"cannot read the evaluation record {path}: {exc}; pass a `darkc eval --format json` "
                         f"output") from exc


def write_report(results: list[dict], prefix: str | os.PathLike, title: str = "darkc bench",
                 extra: dict | None = None) -> dict:
    """``prefix.md``, ``prefix.json`` and ``prefix.png``; returns their paths."""
    prefix = Path(prefix)
    results, title = portable(results), portable(title)      # no absolute machine paths on disk
    payload = portable({"title": title, "models": results, **(extra or {})})
    md, js, png = prefix.with_suffix(".md"), prefix.with_suffix(".json"), prefix.with_suffix(".png")
    with atomic_path(js) as tmp:
        Path(tmp).write_text(json.dumps(payload, indent=1, default=str) + "\n")
    with atomic_path(md) as tmp:
        Path(tmp).write_text(markdown(results, title) + f"\n![latency]({png.name})\n")
    plot(results, png, title)
    return {"md": str(md), "json": str(js), "png": str(png)}

"""The quality-vs-latency chart shared by ``darkc bench`` reports and the pipeline report.

One marker shape per model/format, one colour per device; filled markers are measured, hollow ones estimated
(emulated ARM, Vela); each device's Pareto front (no other point of that device is both faster and better) is a
dashed step line. Models are named in a legend, never by annotations, so labels cannot overlap. A device with a
single point makes no useful panel: such points go into a table under the chart instead, as do points more
than :data:`OFF_SCALE_DB` below the best (an unusable intermediate such as a pruned, not yet distilled model),
which would squash the scale the deliverables differ on.
"""
from __future__ import annotations

MARKERS = "osD^vP*Xh<>p"
#: Points this many dB below the best PSNR go into the table, not onto the chart.
OFF_SCALE_DB = 5.0


def pareto(points: list[dict]) -> list[dict]:
    """The points no other point beats on both latency (lower) and PSNR (higher), fastest first."""
    front, best = [], float("-inf")
    for p in sorted(points, key=lambda p: (p["latency_ms"], -p["psnr"])):
        if p["psnr"] > best:
            front.append(p)
            best = p["psnr"]
    return front


def draw(ax, points: list[dict], *, quality: str) -> list[dict]:
    """Draw ``points`` (dicts: model, device, latency_ms, psnr, estimated) on ``ax``; return the points left
    off the chart for the caller's table (single-point devices, off-scale points, each with a ``why``).
    ``quality`` names the PSNR's source."""
    from matplotlib.lines import Line2D

    best = max(p["psnr"] for p in points)
    off = [{**p, "why": f"> {OFF_SCALE_DB:g} dB below the best"} for p in points
           if p["psnr"] < best - OFF_SCALE_DB]
    points = [p for p in points if p["psnr"] >= best - OFF_SCALE_DB]
    devices = list(dict.fromkeys(p["device"] for p in points))
    counts = {d: sum(p["device"] == d for p in points) for d in devices}
    lonely = [{**p, "why": "the device's only point"} for p in points if counts[p["device"]] == 1] + off
    shown = [p for p in points if counts[p["device"]] > 1]
    models = list(dict.fromkeys(p["model"] for p in shown))
    colour = {d: f"C{i % 10}" for i, d in enumerate(d for d in devices if counts[d] > 1)}
    marker = {m: MARKERS[i % len(MARKERS)] for i, m in enumerate(models)}
    for p in shown:
        c = colour[p["device"]]
        ax.plot(p["latency_ms"], p["psnr"], marker[p["model"]], ms=7, mec=c, mew=1.4,
                mfc="none" if p["estimated"] else c, ls="")
    for d in colour:
        front = pareto([p for p in shown if p["device"] == d])
        if len(front) > 1:
            ax.step([p["latency_ms"] for p in front], [p["psnr"] for p in front], where="post", color=colour[d],
                    ls="--", lw=0.9, alpha=0.8)
    handles = [Line2D([], [], marker="s", ls="--", lw=0.9, color=c, label=d) for d, c in colour.items()]
    handles += [Line2D([], [], marker=marker[m], ls="", color="0.3", mfc="0.3", label=m) for m in models]
    handles += [Line2D([], [], marker="o", ls="", color="0.3", mfc="0.3", label="measured"),
                Line2D([], [], marker="o", ls="", color="0.3", mfc="none", label="estimated")]
    ax.legend(handles=handles, fontsize=6.5, loc="best", ncol=2, framealpha=0.9)
    ax.set_xscale("log")
    ax.set_xlabel("latency per frame (ms, log)")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title(f"quality vs latency; dashed: each device's Pareto front\nPSNR: {quality}", fontsize=8)
    ax.grid(alpha=0.3, which="both")
    return lonely


def lonely_table(ax, lonely: list[dict], note: str | None = None) -> None:
    """The single-point devices as a small table in ``ax`` (axis hidden), and a wrapped ``note`` under it."""
    import textwrap

    ax.axis("off")
    if note:
        ax.text(0, 0, textwrap.fill(note, 110), fontsize=6.5, va="bottom", ha="left", transform=ax.transAxes)
    if not lonely:
        return
    cells = [[p["device"], p["model"], f"{p['latency_ms']:.1f}", "estimated" if p["estimated"] else "measured",
              f"{p['psnr']:.2f}", p.get("why", "")] for p in lonely]
    table = ax.table(cellText=cells, colLabels=["device", "model", "ms", "how", "PSNR dB", "not on the chart:"],
                     colWidths=[0.17, 0.2, 0.1, 0.12, 0.1, 0.31],
                     loc="upper center", cellLoc="left")
    table.auto_set_font_size(False)
    table.set_fontsize(7)
    table.scale(1, 1.2)

"""Ethos-U estimates that fit the chip: the frame cut into tiles whose working set fits the configuration's SRAM.

An Ethos-U55 keeps its tensor arena (every live feature map) in on-chip SRAM, a few MiB at most; a full-HD frame
through a U-Net needs tens of MiB. The frame is therefore cut into square tiles of ``core`` packed px, each run
with a halo of the network's receptive field on every side so that the stitched cores equal the whole-frame
output; one tile-sized model is compiled by Vela with the SRAM limit of the configuration (:data:`npu.SYSTEMS`),
and the whole-frame figure is ``tiles x per-tile cycles``: the overlap (halo) work is inside that product.

- :func:`receptive_halo`: the halo, from the model (the support of an output pixel's gradient);
- :func:`tile_grid`: tile size, count and overlap for a frame, a core and a halo;
- :func:`search`: the whole frame first, then tiles of growing core; the fastest that fits.
"""
from __future__ import annotations

import copy
import math
from typing import Callable

from darkc.errors import DarkcError
from darkc.latency import npu

#: Square tile cores tried (packed px), smallest first. The larger ones matter for a net whose tensors are small
#: next to its input and output (e.g. mobile-unet stem=s4): with a 40 px halo a 128 px core computes 2.6x its
#: pixels, a 256 px core 1.7x.
TILE_CORES = (16, 32, 48, 64, 128, 192, 256)


def receptive_halo(model, in_channels: int, multiple: int = 16, max_side: int = 1024) -> dict:
    """The receptive-field halo of ``model``, in packed px, measured as the support of an output pixel's gradient.

    A copy of the model with every parameter made positive (so no activation sits at zero and no two paths cancel)
    gets a constant input; the input pixels with a non-zero gradient of the centre output pixel are its receptive
    field. The input grows (doubling from ``8 * multiple``) until that field is clear of the borders.

    Returns:
        ``{"extent_px": [up, down, left, right]`` (packed px the field reaches from the centre pixel),
        ``"halo_px"`` (the largest extent rounded up to ``multiple``, so that tiles stay on the model's pooling
        grid), ``"multiple"``, ``"method"``}.
    """
    import torch

    probe = copy.deepcopy(model).float().eval()
    with torch.no_grad():
        for p in probe.parameters():
            p.abs_().add_(1e-3)
    side = 8 * multiple
    while side <= max_side:
        x = torch.ones(1, in_channels, side, side, requires_grad=True)
        y = probe(x)
        scale = y.shape[-1] // side
        c = side // 2
        y[..., c * scale, c * scale].sum().backward()
        support = (x.grad.abs().sum(dim=(0, 1)) > 0).nonzero()
        lo, hi = support.min(0).values.tolist(), support.max(0).values.tolist()
        if min(lo) > 0 and max(hi) < side - 1:
            extent = [c - lo[0], hi[0] - c, c - lo[1], hi[1] - c]
            halo = int(math.ceil(max(extent) / multiple) * multiple)
            return {"extent_px": extent, "halo_px": halo, "multiple": multiple,
                    "method": f"support of the centre output pixel's gradient at packed {side}x{side} (positive "
                              f"weights), rounded up to the size multiple {multiple}"}
        side *= 2
    raise DarkcError(f"the model's receptive field is wider than {max_side} packed px; tiling cannot help it fit")


def tile_grid(frame_hw: tuple[int, int], core: int | None, halo: int) -> dict:
    """Tiles of ``core`` packed px (None: the whole frame) with ``halo`` px each side, over packed ``frame_hw``.

    Along an axis where the tile with its halo would cover the frame anyway, one frame-long tile is used.

    Returns:
        ``{"core": [h, w], "tile": [h, w], "grid": [rows, cols], "tiles", "overlap"}``; ``overlap``: pixels
        computed beyond the frame's, as a fraction of the frame (0 = none).
    """
    tile, grid, cores = [], [], []
    for size in frame_hw:
        if core is None or core + 2 * halo >= size:
            tile.append(size), grid.append(1), cores.append(size)
        else:
            tile.append(core + 2 * halo), grid.append(math.ceil(size / core)), cores.append(core)
    tiles = grid[0] * grid[1]
    return {"core": cores, "tile": tile, "grid": grid, "tiles": tiles,
            "overlap": tiles * tile[0] * tile[1] / (frame_hw[0] * frame_hw[1]) - 1.0}


def _candidate(device: str, path, grid: dict, halo: int, sram: int) -> dict:
    est = npu.vela_estimate(path, device, sram_bytes=sram)
    return {**grid, "halo_px": halo, "per_tile": est, "fits": est["fits"], "sram_used_kib": est["sram_used_kib"],
            "cycles": grid["tiles"] * est["cycles"],
            "latency_ms": grid["tiles"] * est["cycles"] / est["clock_hz"] * 1e3 if est["clock_hz"] else 0.0}


def search(device: str, frame_hw: tuple[int, int], export_at: Callable[[tuple[int, int]], object],
           halo: Callable[[], dict] | None, *, sram_bytes: int | None = None, cores=TILE_CORES) -> dict:
    """The fastest tiling of packed ``frame_hw`` whose tile fits ``device``'s SRAM, by Vela.

    The whole frame is compiled first; if it fits, it is the answer (a tile repeats halo work and is not cheaper per
    pixel: the student on Ethos-U65-512, 118 cycles/px at a 256x256 packed tile vs 115 for the frame). Otherwise
    square tiles of each core in ``cores`` are compiled, smallest first, stopping at the first that does not fit
    (SRAM use grows with the tile), and the fitting one with the fewest whole-frame cycles is chosen.

    Args:
        export_at: packed ``(h, w)`` -> a full-integer TFLite file of the model at that input size.
        halo: () -> :func:`receptive_halo`'s dict; None when the model cannot be re-exported (only the whole frame
            is tried).
        sram_bytes: SRAM of the configuration; default :data:`npu.SYSTEMS`'s for the family.

    Returns:
        ``{"chosen": candidate, "untiled": candidate, "candidates": [...], "halo": dict | None, "sram_bytes",
        "profile"}``; a candidate is :func:`tile_grid`'s dict plus ``per_tile`` (Vela's estimate of one tile),
        ``fits``, ``sram_used_kib``, ``cycles`` and ``latency_ms`` for the whole frame.

    Raises:
        DarkcError: no tile fits (one line: the smallest tile's need and the SRAM).
    """
    profile = npu.profile_of(device)
    sram = int(sram_bytes if sram_bytes is not None else profile.sram_bytes)
    whole = tile_grid(frame_hw, None, 0)
    untiled = _candidate(device, export_at(tuple(whole["tile"])), whole, 0, sram)
    candidates = [untiled]
    rf = None
    if not untiled["fits"] and halo is not None:
        rf = halo()
        # a tile must stay on the model's size grid (a model with a coarser multiple skips the finer cores)
        for core in sorted(c for c in cores if c % rf["multiple"] == 0):
            grid = tile_grid(frame_hw, core, rf["halo_px"])
            if grid["tiles"] == 1:
                break
            cand = _candidate(device, export_at(tuple(grid["tile"])), grid, rf["halo_px"], sram)
            candidates.append(cand)
            if not cand["fits"]:
                break
    fitting = [c for c in candidates if c["fits"]]
    if not fitting:
        smallest = min(candidates, key=lambda c: c["tile"][0] * c["tile"][1])
        how = (f"the smallest tile, packed {smallest['tile'][1]}x{smallest['tile'][0]} (core "
               f"{smallest['core'][1]}x{smallest['core'][0]} + halo {smallest['halo_px']} px each side)"
               if smallest is not untiled else
               f"the whole frame (packed {frame_hw[1]}x{frame_hw[0]}; no checkpoint beside the file to export tiles)")
        raise DarkcError(f"no tile fits {device}'s {sram / 1024:.0f} KiB SRAM: {how} needs "
                         f"{smallest['sram_used_kib']:.0f} KiB by Vela; use a narrower model or more SRAM "
                         f"(--npu-sram KiB)")
    chosen = min(fitting, key=lambda c: c["cycles"])
    return {"chosen": chosen, "untiled": untiled, "candidates": candidates, "halo": rf, "sram_bytes": sram,
            "profile": profile}

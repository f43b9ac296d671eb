"""Ethos-U estimates that fit the chip: receptive-field halo, tile grid, Vela per tile under an SRAM limit.

Vela compiles of big inputs are slow here: a two-conv network (receptive field 5x5) at packed 64x64 stands in for
the U-Net; the U-Net itself is only probed for its halo (no Vela).
"""
import numpy as np
import pytest
import torch
from torch import nn

from darkc.errors import DarkcError
from darkc.latency import npu
from darkc.latency.tiling import receptive_halo, search, tile_grid
from darkc.models import build_model

FRAME = (64, 64)          # packed (h, w)
SRAM = 48 * 1024          # the whole 64x64 frame needs ~96 KiB of SRAM at this limit; a 40x40 tile ~45 KiB


def _plain():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.LeakyReLU(0.2), nn.Conv2d(8, 12, 3, padding=1),
                         nn.PixelShuffle(2)).eval()


@pytest.fixture(scope="module")
def export_at(tmp_path_factory):
    """packed (h, w) -> the two-conv network as full-integer TFLite at that size (cached for the module)."""
    pytest.importorskip("litert_torch")
    from darkc.export.tflite import export_tflite

    net, folder = _plain(), tmp_path_factory.mktemp("tiles")
    spec = {"arch": "plain", "cfa": "bayer", "in_channels": 4, "out_channels": 3, "scale": 2}

    def export(hw):
        path = folder / f"plain-{hw[0]}x{hw[1]}.tflite"
        if not path.is_file():
            rng = np.random.default_rng(0)
            calib = [rng.random((1, 4, *hw), dtype=np.float32) for _ in range(2)]
            export_tflite(net, spec, path, "int8", tuple(hw), calib, io="int8")
        return path
    return export


@pytest.fixture(scope="module")
def tiled(export_at):
    return search("ethos-u55-256", FRAME, export_at, lambda: receptive_halo(_plain(), 4, multiple=8),
                  sram_bytes=SRAM, cores=(8, 16, 24))


def test_receptive_halo_is_the_networks_field():
    # two 3x3 convolutions: 2 px each side; rounded up to the size multiple
    rf = receptive_halo(_plain(), 4, multiple=8)
    assert rf["extent_px"] == [2, 2, 2, 2] and rf["halo_px"] == 8
    # the SID U-Net (four 2x poolings, two 3x3 convs per level): 94 packed px up/left of an output pixel, 78
    # down/right (the pixel-shuffle head puts the probed pixel at the top-left of its packed pixel) -> 96
    unet = receptive_halo(build_model({"arch": "sid-unet", "cfa": "bayer", "widths": [8] * 5}), 4)
    assert unet["extent_px"] == [94, 78, 94, 78] and unet["halo_px"] == 96


def test_tile_grid_counts_tiles_and_overlap():
    g = tile_grid((544, 960), 48, 96)
    assert g["tile"] == [240, 240] and g["grid"] == [12, 20] and g["tiles"] == 240
    assert g["overlap"] == pytest.approx(240 * 240 * 240 / (544 * 960) - 1)
    # an axis the tile with its halo would cover anyway is one frame-long tile; no tiling, no overlap
    assert tile_grid((544, 960), 384, 96) == {"core": [544, 384], "tile": [544, 576], "grid": [1, 3], "tiles": 3,
                                              "overlap": pytest.approx(3 * 576 / 960 - 1)}
    assert tile_grid((544, 960), None, 0)["overlap"] == 0.0


def test_chosen_tile_fits_the_sram_by_velas_own_count(tiled):
    assert not tiled["untiled"]["fits"] and tiled["untiled"]["sram_used_kib"] * 1024 > SRAM
    chosen = tiled["chosen"]
    assert chosen["tiles"] > 1 and chosen["fits"]
    assert chosen["per_tile"]["sram_used_kib"] * 1024 <= SRAM == chosen["per_tile"]["sram_limit_bytes"]
    # the fastest of the fitting tilings, and every candidate but a last one that stopped the search fits
    fitting = [c for c in tiled["candidates"] if c["fits"]]
    assert chosen["cycles"] == min(c["cycles"] for c in fitting)
    assert all(c["fits"] for c in tiled["candidates"][1:-1])


def test_whole_frame_cycles_cover_the_halo(tiled, export_at):
    chosen = tiled["chosen"]
    assert chosen["cycles"] == chosen["tiles"] * chosen["per_tile"]["cycles"]
    # the same tiles without their halo (a model at the core size) cost less: the overlap is in the figure
    core = npu.vela_estimate(export_at(tuple(chosen["core"])), "ethos-u55-256", sram_bytes=SRAM)
    assert chosen["cycles"] > chosen["tiles"] * core["cycles"]
    assert chosen["overlap"] == pytest.approx(chosen["tiles"] * chosen["tile"][0] * chosen["tile"][1]
                                              / (FRAME[0] * FRAME[1]) - 1)


def test_too_small_sram_is_a_one_line_error(export_at):
    with pytest.raises(DarkcError, match=r"no tile fits ethos-u55-256's 2 KiB SRAM: the smallest tile, packed "
                                         r"24x24 \(core 8x8 \+ halo 8 px each side\) needs \d+ KiB") as err:
        search("ethos-u55-256", FRAME, export_at, lambda: receptive_halo(_plain(), 4, multiple=8),
               sram_bytes=2 * 1024, cores=(8, 16, 24))
    assert "\n" not in str(err.value)

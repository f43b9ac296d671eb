"""The mobile U-Net's real-time options (issue 17): ``stem="s4"`` (every block at <= 1/4 packed resolution, Ethos-U
strides only), ``levels`` and ``bottleneck`` (depth, and with it the receptive-field halo an Ethos-U tile carries),
through the spec, the adapter, pruning and the tile search. Tiny widths, 32-64 px."""
from __future__ import annotations

import importlib.util

import pytest
import torch
from torch import nn
from helpers import raises_naming

from darkc.latency import tiling
from darkc.latency.tiling import receptive_halo
from darkc.models import build_model, count_macs, get_adapter, load_checkpoint, normalize_spec, save_checkpoint
from darkc.models.mobile_unet import width_layers

RAW = {"arch": "mobile-unet", "output": "raw", "input": {"noise": "none"}, "block": "ds"}


def _perturb(model, scale: float) -> None:
    """Weights and biases moved off their initialisation, as after training (biases off zero: ReLUs not all on)."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn_like(p))


def _sizes(model, x) -> dict:
    sizes = {}
    hooks = [m.register_forward_hook(lambda m, i, o, n=n: sizes.__setitem__(n, tuple(o.shape[-2:])))
             for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    y = model(x)
    for h in hooks:
        h.remove()
    return sizes, y


def test_s4_runs_every_block_at_a_quarter_and_only_the_last_head_conv_at_full_resolution():
    torch.manual_seed(0)
    model = build_model({**RAW, "stem": "s4", "levels": 3, "widths": [4, 8, 8, 8]})
    x = torch.rand(1, 4, 32, 32)
    sizes, y = _sizes(model, x)
    assert [n for n, hw in sizes.items() if hw == (32, 32)] == ["head"]
    assert [n for n, hw in sizes.items() if hw == (16, 16)] == ["stem0", "head_up"]
    assert all(hw[0] <= 8 for n, hw in sizes.items() if n not in ("stem0", "head_up", "head"))
    assert sizes["stem"] == sizes["dec0.block.pw"] == sizes["enc1.blocks.0.pw"] == (8, 8)
    # Ethos-U: conv strides <= 3, transposed convs stride 2 only
    for m in model.modules():
        if isinstance(m, nn.ConvTranspose2d):
            assert m.stride == (2, 2)
        elif isinstance(m, nn.Conv2d):
            assert max(m.stride) <= 2
    assert torch.equal(y, x)                    # zero-initialised residual head: the identity before training
    assert model.size_multiple == 16
    with pytest.raises(ValueError, match="multiples of 16"):
        model(torch.rand(1, 4, 24, 32))


@pytest.mark.parametrize("stem,r", [("s2", 2), ("s4", 4)])
def test_d2s_head_is_a_1x1_conv_and_a_pixel_shuffle_without_transposed_convs(stem, r):
    """head="d2s" (CPU students): no transposed conv anywhere, identity before training, same output size."""
    model = build_model({**RAW, "stem": stem, "head": "d2s", "levels": 3, "widths": [4, 8, 8, 8]})
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in model.modules())
    assert model.head.kernel_size == (1, 1) and model.head.out_channels == 4 * r * r
    assert model.pixel_shuffle.upscale_factor == r and not hasattr(model, "head_up")
    x = torch.rand(1, 4, 32, 32)
    assert torch.equal(model(x), x)
    assert get_adapter(normalize_spec({**RAW, "stem": stem, "head": "d2s", "levels": 3,
                                       "widths": [4, 8, 8, 8]})).head(model) == ["head"]
    with raises_naming("head", "d2s", "tconv"):
        normalize_spec({**RAW, "stem": "full", "head": "d2s"})
    with raises_naming("head", "d2s", "tconv"):
        normalize_spec({**RAW, "output": "srgb", "stem": stem, "head": "d2s"})


def test_s4_srgb_head_shuffles_four_times_the_factor():
    model = build_model({**RAW, "output": "srgb", "stem": "s4", "levels": 3, "widths": [4, 8, 8, 8]})
    assert model(torch.rand(1, 4, 32, 32)).shape == (1, 3, 64, 64)
    assert model.pixel_shuffle.upscale_factor == 8 and not hasattr(model, "head_up")


def test_s4_cuts_the_macs_of_the_s2_net_at_the_same_widths():
    widths = [16, 24, 48, 96, 128]
    s2 = count_macs(build_model({**RAW, "stem": "s2", "widths": widths}), (4, 64, 64))
    s4 = count_macs(build_model({**RAW, "stem": "s4", "widths": widths}), (4, 64, 64))
    assert s4 < 0.45 * s2


@pytest.mark.parametrize("stem,levels,multiple", [("full", 4, 16), ("s2", 4, 16), ("s4", 4, 32), ("s4", 3, 16),
                                                  ("s4", 2, 8), ("s2", 3, 8), ("full", 2, 4)])
def test_levels_set_the_width_layers_and_the_size_multiple(stem, levels, multiple):
    spec = normalize_spec({**RAW, "stem": stem, "levels": levels, "widths": [4] * (levels + 1)})
    assert list(spec["channels"]) == list(width_layers(levels)) and spec["widths"] == [4] * (levels + 1)
    model = build_model(spec)
    adapter = get_adapter(spec)
    assert model.size_multiple == adapter.size_multiple(model) == multiple
    assert adapter.width_layers(model) == list(width_layers(levels))
    assert adapter.feature_taps(model) == [f"dec{k}" for k in range(levels - 1, -1, -1)]
    assert adapter.head(model) == (["head_up", "head"] if stem == "s4" else ["head"])
    x = torch.rand(1, 4, 2 * multiple, multiple)
    assert model(x).shape == (1, 4, 2 * multiple, multiple)


def test_spec_checks_levels_bottleneck_and_widths():
    spec = normalize_spec({"arch": "mobile-unet"})
    assert spec["levels"] == 4 and spec["bottleneck"] == 2 and spec["widths"] == [16, 24, 48, 96, 128]
    assert normalize_spec({"arch": "mobile-unet", "levels": 3})["widths"] == [16, 24, 48, 96]
    with raises_naming("levels", "[2, 3, 4]"):
        normalize_spec({"arch": "mobile-unet", "levels": 5})
    with raises_naming("bottleneck"):
        normalize_spec({"arch": "mobile-unet", "bottleneck": -1})
    with raises_naming("widths", "4 positive integers"):
        normalize_spec({"arch": "mobile-unet", "levels": 3, "widths": [8, 8, 8, 8, 8]})
    with raises_naming("channels", "enc4"):
        normalize_spec({"arch": "mobile-unet", "levels": 3,
                        "channels": {n: 4 for n in width_layers(4)}})


def test_fewer_levels_and_bottleneck_blocks_shrink_the_halo():
    """The halo an Ethos-U tile carries is the receptive field: each level and bottleneck block widens it."""
    def halo(**options):
        model = build_model({**RAW, "stem": "s4", "widths": [4] * (options.get("levels", 4) + 1), **options})
        return max(receptive_halo(model, 4, multiple=model.size_multiple)["extent_px"])

    l4, l3, l3b1, l2 = halo(levels=4), halo(levels=3), halo(levels=3, bottleneck=1), halo(levels=2)
    assert l4 > l3 > l3b1 and l3 > l2
    assert l3 - l3b1 == 16          # one 3x3 depthwise-separable block at 1/16: 16 packed px each side


def test_a_pruned_s4_net_keeps_its_head_and_reloads(tmp_path):
    from darkc.compress.pruning import prune_model

    spec = normalize_spec({**RAW, "input": {"noise": "std-map"}, "stem": "s4", "levels": 3,
                           "widths": [16, 32, 32, 64]})
    torch.manual_seed(0)
    model = build_model(spec)
    _perturb(model, 0.1)
    model, pspec = prune_model(model, spec, 0.5, round_to=4)
    assert pspec["channels"] == {"stem": 8, "enc1": 16, "enc2": 16, "enc3": 32, "dec2": 16, "dec1": 16, "dec0": 8}
    assert model.head_up.out_channels == 16 and model.head.out_channels == 4 and model.stem0.out_channels == 20
    save_checkpoint(model, pspec, tmp_path / "p")
    loaded, saved = load_checkpoint(tmp_path / "p")
    assert saved["levels"] == 3 and saved["stem"] == "s4"
    x = torch.rand(1, 5, 64, 64)
    assert torch.equal(loaded(x), model.eval()(x))


def test_tile_search_keeps_tiles_on_the_models_size_grid(monkeypatch):
    """A model whose size multiple is 32 cannot be exported at a 16- or 48-px core: those cores are skipped."""
    tried = []

    def candidate(device, path, grid, halo, sram):
        tried.append(grid["core"][0])
        fits = grid["tiles"] > 1
        return {**grid, "halo_px": halo, "per_tile": {"cycles": 1}, "fits": fits, "sram_used_kib": 1.0,
                "cycles": grid["tiles"], "latency_ms": 1.0}

    monkeypatch.setattr(tiling, "_candidate", candidate)
    tiling.search("ethos-u55-256", (544, 960), lambda hw: hw, lambda: {"halo_px": 64, "multiple": 32},
                  cores=(16, 32, 48, 64, 128))
    assert tried == [544, 32, 64, 128]       # the whole frame (544 high), then the cores on the 32 grid


def test_tflite_export_leaves_a_raw_d2s_head_in_the_graph():
    """The TFLite exporter moves an sRGB head's PixelShuffle out of the graph; a raw d2s head adds the input after
    its shuffle, so moving it would break the model (it once crashed the export when a 48-wide conv looked like an
    sRGB head)."""
    from darkc.export.tflite import split_pixel_shuffle

    raw = build_model({**RAW, "stem": "s4", "head": "d2s", "levels": 3, "widths": [4, 8, 48, 8]})
    assert split_pixel_shuffle(raw, 4) == (None, None)
    srgb = build_model({**RAW, "output": "srgb", "stem": "s4", "levels": 3, "widths": [4, 8, 8, 8]})
    body, r = split_pixel_shuffle(srgb, 4)
    assert r == 8 and body is not None


HALF = {**RAW, "input": {"noise": "std-map"}, "stem": "s4", "head": "half", "levels": 2, "bottleneck": 1,
        "widths": [8, 8, 16]}


def test_half_head_refines_at_half_resolution_and_ends_in_its_pixel_shuffle():
    """head="half": nothing at full packed resolution but the PixelShuffle, the output is the shuffle's (no input
    added after it), the lateral conv is as wide as stem0 (tied by the add) and neither is pruned."""
    torch.manual_seed(0)
    model = build_model(HALF)
    x = torch.rand(1, 5, 32, 32)
    sizes, y = _sizes(model, x)
    assert y.shape == (1, 4, 32, 32) and not torch.equal(y, x[:, :4])
    assert not any(hw == (32, 32) for hw in sizes.values())
    assert sizes["head"] == sizes["stem0"] == (16, 16) and sizes["lateral"] == (8, 8)
    assert model.lateral.out_channels == model.stem0.out_channels == 20 and model.head.out_channels == 16
    assert model.pixel_shuffle.upscale_factor == 2
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in model.modules())
    adapter = get_adapter(normalize_spec(HALF))
    assert adapter.head(model) == ["head"]
    assert {id(m) for m in adapter.fixed_modules(model)} == {id(model.stem0), id(model.lateral)}
    for bad in ({"stem": "s2"}, {"stem": "full"}, {"output": "srgb"}):
        with raises_naming("head", "half"):
            normalize_spec({**HALF, **bad})


def _block_jacobian(model, x, y0, x0, r):
    """The matrix d(output block r x r at (y0, x0), all channels) / d(input block of the same place)."""
    def f(patch):
        z = x.clone()
        z[:, :, y0:y0 + r, x0:x0 + r] = patch
        return model(z)[:, :, y0:y0 + r, x0:x0 + r]

    j = torch.autograd.functional.jacobian(f, x[:, :, y0:y0 + r, x0:x0 + r].clone())
    return j.reshape(-1, j[0, 0, 0, 0].numel())


def test_half_head_sets_each_pixel_where_the_d2s_head_is_rank_limited():
    """Why head="half" exists: after an s4 stem, the d2s head's residual over a 4x4 block of packed raw (64 values)
    is a linear map of dec0's few features, so it cannot follow per-pixel noise (rank <= dec0's width); the half head
    sees the input at 1/2 resolution through stem0 and reaches far more of the block."""
    torch.manual_seed(0)
    widths = {"levels": 2, "bottleneck": 1, "widths": [8, 8, 16]}
    d2s = build_model({**RAW, "stem": "s4", "head": "d2s", **widths}).eval()
    half = build_model({**RAW, "stem": "s4", "head": "half", **widths}).eval()
    for m in (d2s, half):
        _perturb(m, 0.05)
    x = torch.rand(1, 4, 32, 32)
    j_d2s = _block_jacobian(d2s, x, 8, 8, 4) - torch.eye(64)       # residual: the input's identity removed
    j_half = _block_jacobian(half, x, 8, 8, 4)
    rank = lambda j: int(torch.linalg.matrix_rank(j, atol=1e-6))    # noqa: E731
    assert rank(j_d2s) <= 8                     # dec0's width
    assert rank(j_half) >= 24


@pytest.mark.skipif(not all(importlib.util.find_spec(m) for m in ("litert_torch", "ai_edge_quantizer")),
                    reason="the tflite extra is not installed: pip install -e .[tflite]")
def test_half_head_exports_a_native_depth_to_space_without_transposes_and_keeps_its_head_float(tmp_path):
    """The TFLite exporter moves the half head's PixelShuffle to a DEPTH_TO_SPACE on the output (no layout
    TRANSPOSE ops: litert-torch lowers a mid-graph PixelShuffle to six of them at full resolution), and INT8's
    default float layers for a raw model keep the head conv float: its channels are the output's pixels."""
    import onnx

    from darkc.export import export
    from darkc.export.tflite import graph_info, split_pixel_shuffle

    torch.manual_seed(0)
    model = build_model(HALF).eval()
    _perturb(model, 0.05)
    body, r = split_pixel_shuffle(model, 5)
    assert r == 2 and body is not None
    save_checkpoint(model, normalize_spec(HALF), tmp_path / "m")
    parity = {}
    for precision, float_layers in (("fp32", "auto"), ("int8", "auto"), ("int8", "none")):     # auto: raw -> full-res
        f = tmp_path / f"m-{precision}-{float_layers}.tflite"
        rec = export(tmp_path / "m", f, target="tflite", precision=precision, input_size="128x192", samples=2,
                     float_layers=float_layers, check=True)
        info = graph_info(f)
        assert "TRANSPOSE" not in info["op_counts"] and info["op_counts"]["DEPTH_TO_SPACE"] == 1
        parity[precision, float_layers] = rec["parity"]["psnr_db"]
        if (precision, float_layers) == ("int8", "auto"):
            assert [op.split()[0] for op in info["float_ops"]] == ["DEQUANTIZE", "CONV_2D", "DEPTH_TO_SPACE"]
        elif precision == "int8":
            assert info["float_ops"] == [] or all(op.split()[0] in ("QUANTIZE", "DEQUANTIZE")
                                                  for op in info["float_ops"])
    assert parity["fp32", "auto"] > 80
    assert parity["int8", "auto"] > 40 and parity["int8", "none"] > 40, parity
    # 16-bit full-res layers: the head conv int16, and LiteRT has no int16 DEPTH_TO_SPACE, so it moves float data
    # after the DEQUANTIZE (it once failed to prepare on the int16 side)
    f = tmp_path / "m-int16.tflite"
    rec = export(tmp_path / "m", f, target="tflite", precision="int8", input_size="128x192", samples=2,
                 int16_layers="full-res", check=True)
    info = graph_info(f)
    assert info["ops"][-3:] == ["CONV_2D int16,int8,int64 -> int16", "DEQUANTIZE int16 -> float32",
                                "DEPTH_TO_SPACE float32 -> float32"]
    assert info["float_ops"] == [] and rec["parity"]["psnr_db"] > 40
    export(tmp_path / "m", tmp_path / "m-int8.onnx", target="onnx", precision="int8", calib_size=64, samples=2)
    nodes = onnx.load(str(tmp_path / "m-int8.onnx")).graph.node
    assert [n.op_type for n in nodes][-3:] == ["DequantizeLinear", "Conv", "DepthToSpace"]

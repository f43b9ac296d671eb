"""The mobile U-Net (darkc/models/mobile_unet.py): spec, shapes, cost structure, training, ONNX and INT8 TFLite
export with parity, and no Ethos-U CPU fallback."""
from __future__ import annotations

import importlib.util

import pytest
import torch
from torch import nn
from helpers import raises_naming, tiny_checkpoint

from darkc.models import build_model, count_macs, load_checkpoint, normalize_spec, save_checkpoint
from darkc.models.mobile_unet import WIDTH_LAYERS, MobileUNet, widths_to_channels

TINY = {"arch": "mobile-unet", "output": "raw", "input": {"noise": "std-map"}, "widths": [4, 8, 8, 8, 8]}
_TFLITE = all(importlib.util.find_spec(m) for m in ("litert_torch", "ai_edge_quantizer", "ai_edge_litert"))


def test_spec_fills_and_checks_its_fields():
    spec = normalize_spec({"arch": "mobile-unet"})
    assert spec["block"] == "ds" and spec["upsample"] == "nearest" and spec["stem"] == "full"
    assert spec["channels"] == widths_to_channels(spec["widths"]) and list(spec["channels"]) == list(WIDTH_LAYERS)
    uneven = normalize_spec({"arch": "mobile-unet", "channels": {**widths_to_channels([8] * 5), "dec2": 4}})
    assert uneven["widths"] is None and uneven["channels"]["dec2"] == 4
    with raises_naming("block", "ds"):
        normalize_spec({"arch": "mobile-unet", "block": "shuffle"})
    with raises_naming("upsample", "nearest"):
        normalize_spec({"arch": "mobile-unet", "upsample": "deconv"})
    with raises_naming("stem", "s4"):
        normalize_spec({"arch": "mobile-unet", "stem": "s8"})
    with raises_naming("widths"):
        normalize_spec({"arch": "mobile-unet", "widths": [8, 8, 8]})
    with raises_naming("channels", "enc1"):
        normalize_spec({"arch": "mobile-unet", "channels": {"stem": 8}})


@pytest.mark.parametrize("block", ["ds", "ir", "conv"])
@pytest.mark.parametrize("output,noise", [("raw", "std-map"), ("raw", "none"), ("srgb", "none")])
def test_shapes_for_every_kind_and_block(block, output, noise):
    torch.manual_seed(0)
    spec = {**TINY, "block": block, "output": output, "input": {"noise": noise}}
    model = build_model(spec)
    cin = 4 + (noise == "std-map")
    x = torch.rand(2, cin, 32, 48)
    y = model(x)
    if output == "raw":
        assert y.shape == (2, 4, 32, 48)
        assert torch.equal(y, x[:, :4])           # zero-initialised residual head: the identity before training
    else:
        assert y.shape == (2, 3, 64, 96) and isinstance(model.pixel_shuffle, nn.PixelShuffle)
    with pytest.raises(ValueError, match="multiples of 16"):
        model(torch.rand(1, cin, 24, 32))


def test_only_stem_decoder_block_and_head_run_at_full_resolution():
    """The design's point: the SID U-Net has 5 conv layers at full packed resolution, this net 4 convs (stem, one
    depthwise-separable block, the 1x1 head); a change that adds full-resolution work shows here."""
    model = build_model({**TINY, "widths": [16, 24, 48, 96, 128]})
    full = []
    hooks = [m.register_forward_hook(lambda m, i, o, n=n: full.append(n) if o.shape[-2:] == (32, 32) else None)
             for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    model(torch.rand(1, 5, 32, 32))
    for h in hooks:
        h.remove()
    assert full == ["stem", "dec0.block.dw", "dec0.block.pw", "head"]
    sid = build_model({"arch": "sid-unet", "output": "raw", "widths": [16, 24, 48, 96, 128]})
    assert count_macs(model, (5, 544, 960)) < 0.25 * count_macs(sid, (4, 544, 960))


@pytest.mark.parametrize("output,shape", [("raw", (1, 4, 32, 32)), ("srgb", (1, 3, 64, 64))])
def test_s2_stem_leaves_only_the_head_at_full_resolution(output, shape):
    """stem="s2": a 2x2 stride-2 stem, the first encoder stage and the last decoder stage at half resolution, and a
    2x2 stride-2 transposed-conv head (raw) or a PixelShuffle of twice the factor (sRGB)."""
    torch.manual_seed(0)
    spec = {**TINY, "stem": "s2", "output": output, "input": {"noise": "none"}}
    model = build_model(spec)
    sizes = {}

    def record(name):
        def hook(module, inputs, output):
            sizes[name] = tuple(output.shape[-2:])
        return hook

    hooks = [m.register_forward_hook(record(n))
             for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    x = torch.rand(1, 4, 32, 32)
    y = model(x)
    for h in hooks:
        h.remove()
    assert y.shape == shape
    assert [n for n, hw in sizes.items() if hw == (32, 32)] == (["head"] if output == "raw" else [])
    assert sizes["stem"] == sizes["dec0.block.pw"] == (16, 16)
    if output == "raw":
        assert isinstance(model.head, nn.ConvTranspose2d) and torch.equal(y, x)
    else:
        assert model.pixel_shuffle.upscale_factor == 4 and model.head.out_channels == 48


def test_channels_round_trip_through_a_checkpoint(tmp_path):
    torch.manual_seed(0)
    channels = {**widths_to_channels([8, 8, 16, 16, 16]), "dec1": 4}
    spec = {"arch": "mobile-unet", "output": "raw", "channels": channels, "block": "ir"}
    model = build_model(spec)
    assert model.channels == channels
    save_checkpoint(model, spec, tmp_path / "m")
    loaded, saved = load_checkpoint(tmp_path / "m")
    assert saved["channels"] == channels and saved["block"] == "ir" and saved["widths"] is None
    x = torch.rand(1, 4, 32, 32)
    assert torch.equal(loaded(x), model(x))


def test_cli_trains_it(tmp_path):
    from darkc.cli import main

    out = tmp_path / "m"
    assert main(["train", "--arch", "mobile-unet", "--widths", "4,8,8,8,8", "--output", "raw", "--noise", "std-map",
                 "--steps", "2", "--batch-size", "1", "--patch", "64", "--threads", "1", "--val", "none",
                 "-o", str(out)]) == 0
    model, spec = load_checkpoint(out)
    assert isinstance(model, MobileUNet) and spec["arch"] == "mobile-unet" and spec["widths"] == [4, 8, 8, 8, 8]


def test_onnx_export_matches_pytorch(tmp_path):
    from darkc.export import export

    ckpt = tiny_checkpoint(tmp_path / "m", TINY)
    report = export(ckpt, tmp_path / "m" / "model.onnx", target="onnx", input_size="128x128")
    assert report["parity"]["passed"] and report["parity"]["psnr_db"] > 60


@pytest.fixture(scope="module")
def int8(tmp_path_factory):
    if not _TFLITE:
        pytest.skip("the tflite extra is not installed: pip install -e .[tflite]")
    from darkc.export import export

    ckpt = tiny_checkpoint(tmp_path_factory.mktemp("mob") / "m", TINY)
    path = ckpt / "model-int8.tflite"
    report = export(ckpt, path, target="tflite", precision="int8", input_size="128x128", samples=4, io="int8")
    return ckpt, path, report


def test_int8_tflite_is_all_integer_without_transposed_conv_or_concat(int8):
    from darkc.export.tflite import graph_info

    _, path, report = int8
    info = graph_info(path)
    assert info["float_ops"] == [] and not any("float" in op for op in info["ops"])
    counts = info["op_counts"]
    for absent in ("TRANSPOSE_CONV", "CONCATENATION", "DEPTH_TO_SPACE", "LEAKY_RELU", "DEQUANTIZE"):
        assert absent not in counts, counts
    assert counts["DEPTHWISE_CONV_2D"] >= 8 and counts["RESIZE_NEAREST_NEIGHBOR"] == 4
    assert report["parity"]["passed"] and report["parity"]["psnr_db"] > 35
    assert report["kernels"]["xnnpack_vs_builtin_psnr_db"] > 40


def test_int8_tflite_runs_entirely_on_the_npu(int8):
    if importlib.util.find_spec("ethosu") is None:
        pytest.skip("Vela is not installed: pip install ethos-u-vela")
    from darkc.latency.npu import vela_estimate

    _, path, _ = int8
    est = vela_estimate(path, "ethos-u65-512", timeout=600)
    assert est["cpu_ops"] == 0 and est["fallbacks"] == [] and est["npu_ops"] > 0

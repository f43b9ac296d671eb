"""Tests for darkc/inference.py: runners (torch, ONNX, TFLite) and seamless tiling."""
from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from darkc.inference import (OnnxRunner, Runner, TFLiteRunner, TorchRunner, enhance_packed, load_runner)
from darkc.models import SIDUNet, build_model, save_checkpoint, widths_to_channels
from helpers import raises_naming


class LocalNet(nn.Module):
    """A random two-level U-Net whose output depends on inputs at most 6 packed px away."""

    size_multiple = 16

    def __init__(self, in_channels: int = 4, scale: int = 2):
        super().__init__()
        self.a = nn.Conv2d(in_channels, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 8, 3, padding=1)
        self.c = nn.Conv2d(16, 8, 3, padding=1)
        self.head = nn.Conv2d(8, 3 * scale * scale, 1)
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, x):
        skip = F.leaky_relu(self.a(x), 0.2)
        deep = F.leaky_relu(self.b(F.max_pool2d(skip, 2)), 0.2)
        x = torch.cat([skip, F.interpolate(deep, scale_factor=2.0, mode="nearest")], dim=1)
        return self.shuffle(self.head(F.leaky_relu(self.c(x), 0.2)))


class Recording(Runner):
    """Wraps a runner, recording the input shape of every call; optionally a fixed input size."""

    def __init__(self, inner: Runner, fixed_size=None):
        super().__init__(inner.name, inner.cfa)
        self.inner, self.fixed_size, self.shapes = inner, fixed_size, []

    def __call__(self, x):
        self.shapes.append(x.shape)
        return self.inner(x)


def he_init(model: nn.Module) -> nn.Module:
    """Signal-preserving random weights, so border effects reach as far as in a trained net."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, a=0.2, nonlinearity="leaky_relu")
            nn.init.uniform_(m.bias, -0.1, 0.1)
    return model.eval()


@pytest.fixture
def local():
    torch.manual_seed(0)
    return TorchRunner(LocalNet().eval(), {"cfa": "bayer"}, "local")


@pytest.fixture
def packed():
    return np.random.default_rng(0).random((4, 160, 224), dtype=np.float32)


def whole(runner, x):
    return enhance_packed(runner, x, tile=4096, progress=False)


# --- tiling ---------------------------------------------------------------------------------------------

def test_tiled_equals_whole_frame_for_a_local_model(local, packed):
    rec = Recording(local)
    tiled = enhance_packed(rec, packed, tile=64, overlap=32, progress=False)
    assert len(rec.shapes) == 4 * 6 and set(rec.shapes) == {(1, 4, 64, 64)}
    ref = whole(local, packed)
    assert tiled.shape == ref.shape == (3, 320, 448)
    assert np.abs(tiled - ref).max() < 1e-5
    assert 0.05 < ref.std()          # not a trivially flat (or fully clipped) output


def test_tiled_equals_whole_frame_for_sid_unet_at_default_overlap():
    torch.manual_seed(0)
    runner = TorchRunner(he_init(SIDUNet(4, 2, widths_to_channels([4] * 5))), {"cfa": "bayer"}, "sid")
    x = np.random.default_rng(1).random((4, 40, 590), dtype=np.float32)     # windows at 0, 96, 176, 272
    ref = whole(runner, x)
    rec = Recording(runner)
    tiled = enhance_packed(rec, x, tile=320, progress=False)      # default overlap 224: 4 windows of 320
    assert len(rec.shapes) == 4
    assert np.abs(tiled - ref).max() < 1e-5
    # the U-Net reaches ~95 px: a small overlap blends outputs that still see the cut
    assert np.abs(enhance_packed(runner, x, tile=64, overlap=32, progress=False) - ref).max() > 1e-3


class PerTileConstant(Runner):
    """Returns a different random constant for every tile: any seam shows as a jump."""

    def __init__(self):
        super().__init__("const", "bayer")
        self.rng = np.random.default_rng(0)

    def __call__(self, x):
        n, _, h, w = x.shape
        return np.full((n, 3, 2 * h, 2 * w), self.rng.random(), np.float32)


def max_step(img):
    return max(np.abs(np.diff(img, axis=1)).max(), np.abs(np.diff(img, axis=2)).max())


def test_tiles_blend_without_seams(packed):
    out = enhance_packed(PerTileConstant(), packed, tile=64, overlap=32, progress=False)
    spread = out.max() - out.min()
    assert spread > 0.3
    # raised cosine over 16 packed px = 32 output px: slope at most pi / 64 of the step between tiles
    assert max_step(out) <= spread * np.pi / 64 * 1.01
    hard = enhance_packed(PerTileConstant(), packed, tile=64, overlap=0, progress=False)
    assert max_step(hard) > 0.1                                     # the check sees seams when there are some


def test_blend_weights_sum_to_one():
    class Half(Runner):
        def __call__(self, x):
            return np.full((x.shape[0], 3, 2 * x.shape[2], 2 * x.shape[3]), 0.5, np.float32)

    for h, w, tile, overlap in [(160, 224, 64, 32), (97, 333, 96, 40), (300, 20, 112, 64), (17, 1000, 48, 17)]:
        out = enhance_packed(Half("half", "bayer"), np.zeros((4, h, w), np.float32), tile=tile, overlap=overlap,
                             progress=False)
        assert out.shape == (3, 2 * h, 2 * w)
        np.testing.assert_allclose(out, 0.5, atol=1e-6)


def test_fixed_size_runner_goes_through_tiles(local, packed):
    rec = Recording(local, fixed_size=(64, 48))
    tiled = enhance_packed(rec, packed, overlap=32, progress=False)
    assert len(rec.shapes) == 4 * 12 and set(rec.shapes) == {(1, 4, 64, 48)}
    assert np.abs(tiled - whole(local, packed)).max() < 1e-5


def test_fixed_size_runner_pads_a_small_frame(local, packed):
    rec = Recording(local, fixed_size=(64, 48))
    small = packed[:, :40, :30]
    out = enhance_packed(rec, small, progress=False)
    assert rec.shapes == [(1, 4, 64, 48)] and out.shape == (3, 80, 60)
    padded = np.pad(small, ((0, 0), (0, 24), (0, 18)), mode="reflect")
    np.testing.assert_allclose(out, np.clip(local(padded[None])[0, :, :80, :60], 0, 1), atol=1e-6)


def test_odd_sizes_are_reflect_padded_and_cropped(local):
    x = np.random.default_rng(2).random((4, 37, 53), dtype=np.float32)
    out = enhance_packed(local, x, progress=False)
    padded = np.pad(x, ((0, 0), (0, 11), (0, 11)), mode="reflect")
    np.testing.assert_allclose(out, np.clip(local(padded[None])[0, :, :74, :106], 0, 1), atol=1e-6)


# --- input validation -----------------------------------------------------------------------------------

def test_xtrans_input_to_bayer_model_names_both(local):
    with raises_naming("model local expects 4-channel Bayer input", "IMG_0001.RAF is 9-channel X-Trans"):
        enhance_packed(local, np.zeros((9, 32, 32), np.float32), source="IMG_0001.RAF", progress=False)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_input_names_the_file(local, bad):
    x = np.zeros((4, 32, 32), np.float32)
    x[1, 3, 4] = bad
    with raises_naming("IMG_0002.DNG", "NaN/Inf"):
        enhance_packed(local, x, source="IMG_0002.DNG", progress=False)


def test_model_returning_nan_or_wrong_shape_is_an_error(packed):
    class Broken(Runner):
        def __init__(self, result):
            super().__init__("broken", "bayer")
            self.result = result

        def __call__(self, x):
            return self.result(x)

    with raises_naming("model broken produced NaN/Inf on a.dng"):
        enhance_packed(Broken(lambda x: np.full((1, 3, 2 * x.shape[2], 2 * x.shape[3]), np.nan, np.float32)),
                       packed, source="a.dng", progress=False)
    with raises_naming("model broken returned shape (1, 3, 32, 32)"):
        enhance_packed(Broken(lambda x: np.zeros((1, 3, 32, 32), np.float32)), packed, progress=False)


@pytest.mark.parametrize("tile, overlap, fragment", [(8, 0, "tile is 8"), (64, 64, "overlap 64"),
                                                     (64, -1, "overlap is -1"), (64.0, 8, "tile is 64.0")])
def test_bad_tile_or_overlap(local, packed, tile, overlap, fragment):
    with raises_naming(fragment):
        enhance_packed(local, packed, tile=tile, overlap=overlap, progress=False)


# --- runners --------------------------------------------------------------------------------------------

def export_onnx(model, path, shape, dynamic=True):
    axes = {"raw": {0: "n", 2: "h", 3: "w"}, "rgb": {0: "n", 2: "H", 3: "W"}} if dynamic else None
    torch.onnx.export(model, (torch.rand(shape),), str(path), dynamo=False, opset_version=17,
                      input_names=["raw"], output_names=["rgb"], dynamic_axes=axes)
    return path


@pytest.fixture(scope="module")
def sid8():
    torch.manual_seed(0)
    return SIDUNet(4, 2, widths_to_channels([8] * 5)).eval()


def test_onnx_runner_matches_torch(tmp_path, sid8):
    path = export_onnx(sid8, tmp_path / "m.onnx", (1, 4, 32, 48))
    runner = load_runner(path, threads=1)
    assert isinstance(runner, OnnxRunner)
    assert (runner.cfa, runner.in_channels, runner.scale, runner.fixed_size) == ("bayer", 4, 2, None)
    x = np.random.default_rng(0).random((1, 4, 64, 80), dtype=np.float32)
    with torch.inference_mode():
        expected = sid8(torch.from_numpy(x)).numpy()
    assert runner(x).shape == (1, 3, 128, 160)
    assert np.abs(runner(x) - expected).max() < 1e-4
    big = np.random.default_rng(1).random((4, 70, 90), dtype=np.float32)
    torch_out = enhance_packed(TorchRunner(sid8, {"cfa": "bayer"}, "t"), big, tile=64, overlap=32, progress=False)
    assert np.abs(enhance_packed(runner, big, tile=64, overlap=32, progress=False) - torch_out).max() < 1e-4


def test_onnx_fixed_size_and_spec_beside(tmp_path):
    torch.manual_seed(0)
    spec = {"arch": "sid-unet", "cfa": "xtrans", "widths": [4] * 5}
    model = build_model(spec).eval()
    save_checkpoint(model, spec, tmp_path)
    runner = load_runner(export_onnx(model, tmp_path / "fixed.onnx", (1, 9, 32, 48), dynamic=False))
    assert (runner.cfa, runner.in_channels, runner.scale, runner.fixed_size) == ("xtrans", 9, 3, (32, 48))
    x = np.random.default_rng(0).random((9, 50, 70), dtype=np.float32)
    out = enhance_packed(runner, x, overlap=8, progress=False)
    assert out.shape == (3, 150, 210) and np.isfinite(out).all()


def test_onnx_errors_name_the_file(tmp_path, sid8):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not a model")
    with raises_naming("cannot load ONNX model", "broken.onnx"):
        load_runner(bad)
    odd = export_onnx(nn.Conv2d(6, 3, 1), tmp_path / "six.onnx", (1, 6, 16, 16))
    with raises_naming("six.onnx", "4 (Bayer) or 9 (X-Trans) channels", "5 or 10 with a noise channel"):
        load_runner(odd)
    conditioned = load_runner(export_onnx(nn.Conv2d(5, 4, 1), tmp_path / "five.onnx", (1, 5, 16, 16)))
    assert (conditioned.cfa, conditioned.noise_input, conditioned.output, conditioned.scale) == \
        ("bayer", "std-map", "raw", 1)
    with raises_naming("--threads is 0"):
        load_runner(export_onnx(sid8, tmp_path / "m.onnx", (1, 4, 32, 32)), threads=0)


def test_torch_runner_from_checkpoint(tmp_path, sid8, packed):
    save_checkpoint(sid8, {"arch": "sid-unet", "widths": [8] * 5}, tmp_path / "art")
    runner = load_runner(tmp_path / "art")
    assert isinstance(runner, TorchRunner) and runner.cfa == "bayer" and runner.fixed_size is None
    x = packed[None, :, :32, :48]
    with torch.inference_mode():
        np.testing.assert_array_equal(runner(x), sid8(torch.from_numpy(x)).numpy())
    with raises_naming("nothere", "does not exist"):
        load_runner(tmp_path / "nothere")


def test_tflite_without_runtime_says_what_to_install(tmp_path, monkeypatch):
    path = tmp_path / "m.tflite"
    path.write_bytes(b"TFL3")
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    with raises_naming("m.tflite", "install darkc[tflite]"):
        load_runner(path)


class FirstThreeUp(nn.Module):
    """Packed Bayer -> the first 3 channels upsampled 2x: a 1x1 conv that copies channel c to its 4 sub-pixel
    outputs, then the SID-style ``pixel_shuffle`` head the TFLite exporter turns into DEPTH_TO_SPACE."""

    def __init__(self):
        super().__init__()
        self.conv, self.pixel_shuffle = nn.Conv2d(4, 12, 1, bias=False), nn.PixelShuffle(2)
        with torch.no_grad():
            self.conv.weight.zero_()
            for c in range(3):
                self.conv.weight[4 * c:4 * c + 4, c] = 1.0

    def forward(self, x):
        return self.pixel_shuffle(self.conv(x))


@pytest.fixture(scope="module")
def litert_models(tmp_path_factory):
    """A real full-integer TFLite export (int8 I/O, packed 32x48, litert-torch + ai-edge-quantizer) of
    FirstThreeUp, and a copy whose input signature is made dynamic (1, -1, -1, 4) in the flatbuffer."""
    pytest.importorskip("litert_torch")
    from darkc.export.tflite import export_tflite
    from darkc.export.tflite_graph import read_model, write_model

    d = tmp_path_factory.mktemp("litert")
    spec = {"arch": "plain", "cfa": "bayer", "in_channels": 4, "out_channels": 3, "scale": 2}
    calib = [np.random.default_rng(i).random((1, 4, 32, 48), dtype=np.float32) for i in range(4)]
    export_tflite(FirstThreeUp().eval(), spec, d / "fixed.tflite", "int8", (32, 48), calib, io="int8")
    m = read_model((d / "fixed.tflite").read_bytes())
    g = m.subgraphs[0]
    g.tensors[g.inputs[0]].shapeSignature = np.array([1, -1, -1, 4], dtype=np.int32)
    (d / "dynamic.tflite").write_bytes(write_model(m))
    return d


#: int8 input and output over [0, 1]: scale 1/255, zero point -128 (what real exports use); half a step each way
INT8_IO_ERROR = 1 / 255 / 2 + 1 / 255 / 2 + 1e-6


def test_tflite_runner_nhwc_int8_dynamic(litert_models, monkeypatch):
    from ai_edge_litert import interpreter as litert

    made, resized = [], []

    class Spy(litert.Interpreter):                 # the real LiteRT interpreter, recording what the runner asks
        def __init__(self, *args, **kwargs):
            made.append(kwargs.get("num_threads"))
            super().__init__(*args, **kwargs)

        def resize_tensor_input(self, index, shape, strict=False):
            resized.append(list(shape))
            return super().resize_tensor_input(index, shape, strict=strict)

    monkeypatch.setattr(litert, "Interpreter", Spy)
    runner = load_runner(litert_models / "dynamic.tflite", threads=2)
    assert isinstance(runner, TFLiteRunner)
    assert (runner.layout, runner.cfa, runner.fixed_size) == ("nhwc", "bayer", None)
    assert [runner._in["quantization"][1], runner._out["quantization"][1]] == [-128, -128]
    x = np.random.default_rng(0).random((1, 4, 16, 24), dtype=np.float32)
    y = runner(x)
    assert y.shape == (1, 3, 32, 48) and y.dtype == np.float32
    assert np.abs(y - x[:, :3].repeat(2, axis=2).repeat(2, axis=3)).max() <= INT8_IO_ERROR
    assert made == [2] and resized == [[1, 16, 24, 4]]
    runner(x)
    assert resized == [[1, 16, 24, 4]]                                         # same shape: no resize


def test_tflite_runner_fixed_size(litert_models):
    runner = load_runner(litert_models / "fixed.tflite")
    assert runner.fixed_size == (32, 48)
    x = np.random.default_rng(0).random((4, 70, 100), dtype=np.float32)
    out = enhance_packed(runner, x, overlap=8, progress=False)
    expected = x[:3].repeat(2, axis=1).repeat(2, axis=2)
    assert np.abs(out - expected).max() <= INT8_IO_ERROR


def test_truncated_tflite_is_refused_by_the_real_runtime(litert_models, tmp_path):
    cut = tmp_path / "cut.tflite"
    cut.write_bytes((litert_models / "fixed.tflite").read_bytes()[:600])
    with raises_naming(str(cut), "re-export it") as info:
        load_runner(cut)
    assert "\n" not in str(info.value)

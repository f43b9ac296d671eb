"""Tests for darkc/models: the SID U-Net, builder/registry, checkpoint artifact, shipped models, MACs."""
from __future__ import annotations

import numpy as np
import json
import os
import re

import pytest
import torch
from safetensors.torch import load_file, save_file

from darkc.errors import DarkcError
from darkc.models import (LAYERS, WIDTH_LAYERS, SIDUNet, build_model, count_macs, count_macs_by_layer,
                          count_params, load_checkpoint, load_pretrained, normalize_spec, register_arch,
                          resolve_model_ref, save_checkpoint, widths_to_channels)
from darkc.models import checkpoint as checkpoint_mod
from darkc.models import pretrained as pretrained_mod
from darkc.models import registry as registry_mod

TINY = {"arch": "sid-unet", "cfa": "bayer", "widths": [4, 6, 8, 10, 12]}


def uneven_channels() -> dict[str, int]:
    channels = widths_to_channels([8, 8, 16, 16, 32])
    channels.update(conv1_1=5, conv1_2=3, conv4_2=14, up6=9, conv6_1=7, up9=2, conv9_2=6)
    return channels


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    return build_model(TINY).eval()


@pytest.fixture
def artifact(tmp_path, tiny):
    return save_checkpoint(tiny, TINY, tmp_path / "art")


def raises_naming(fragment: str):
    return pytest.raises(DarkcError, match=re.escape(fragment))


# --- network -------------------------------------------------------------------------------------------

def test_default_bayer_param_count_is_sid():
    model = build_model({"arch": "sid-unet"})
    assert count_params(model) == 7_760_748
    assert model.conv10.out_channels == 12 and model.conv1_1.in_channels == 4
    assert [n for n, _ in model.named_children() if n != "pixel_shuffle"] == list(LAYERS)


def test_state_dict_keys_are_layer_names(tiny):
    assert list(tiny.state_dict()) == [f"{n}.{p}" for n in LAYERS for p in ("weight", "bias")]


def test_xtrans_has_27_channel_head_and_3x_output():
    model = build_model({"arch": "sid-unet", "cfa": "xtrans", "widths": [4, 4, 4, 4, 4]})
    assert model.conv1_1.in_channels == 9 and model.conv10.out_channels == 27
    assert model(torch.rand(2, 9, 32, 48)).shape == (2, 3, 96, 144)


def test_uneven_widths_build_and_run():
    channels = uneven_channels()
    model = SIDUNet(4, 2, channels)
    assert model.channels == channels
    assert model.conv6_1.in_channels == 9 + 14  # up6 + conv4_2 skip
    assert model.up6.in_channels == 32 and model.conv2_1.in_channels == 3
    assert model.conv10.in_channels == 6
    assert model(torch.rand(1, 4, 32, 16)).shape == (1, 3, 64, 32)


@pytest.mark.parametrize("widths", [[32, 64, 128, 256, 512], [8, 16, 32, 64, 128]])
def test_init_keeps_signal_through_the_bottleneck(widths):
    # PyTorch's default conv init left std ~0.01 at conv5_2 of the full net (and the trained nets grey);
    # He init for LeakyReLU keeps every level near unit scale
    torch.manual_seed(0)
    model = build_model({"arch": "sid-unet", "cfa": "bayer", "widths": widths})
    stds = {}
    for name in ("conv1_2", "conv5_2", "conv9_2", "conv10"):
        getattr(model, name).register_forward_hook(lambda m, i, o, n=name: stds.__setitem__(n, o.std().item()))
    with torch.no_grad():
        model(torch.rand(2, 4, 64, 64))
    assert all(0.3 < s < 3.0 for s in stds.values()), stds


def test_concat_puts_upsampled_before_skip():
    model = SIDUNet(4, 2, {**widths_to_channels([3, 4, 4, 4, 4]), "up9": 2}).eval()
    seen = {}
    model.up9.register_forward_hook(lambda m, i, o: seen.update(up=o))
    model.conv1_2.register_forward_hook(lambda m, i, o: seen.update(skip=torch.nn.functional.leaky_relu(o, 0.2)))
    model.conv9_1.register_forward_pre_hook(lambda m, i: seen.update(cat=i[0]))
    model(torch.rand(1, 4, 16, 16))
    assert seen["cat"].shape[1] == 5
    assert torch.equal(seen["cat"][:, :2], seen["up"]) and torch.equal(seen["cat"][:, 2:], seen["skip"])


def test_widths_to_channels_mirrors_levels():
    c = widths_to_channels([1, 2, 3, 4, 5])
    assert set(c) == set(WIDTH_LAYERS)
    assert (c["conv1_2"], c["conv5_1"], c["up6"], c["conv6_2"], c["up9"], c["conv9_1"]) == (1, 5, 4, 4, 1, 1)
    with pytest.raises(ValueError, match="5 level widths"):
        widths_to_channels([1, 2, 3])


@pytest.mark.parametrize("shape", [(1, 4, 30, 32), (1, 4, 32, 540)])
def test_forward_rejects_size_not_multiple_of_16(tiny, shape):
    with pytest.raises(ValueError, match=r"multiples of 16.*" + str(shape[2])):
        tiny(torch.rand(shape))


def test_forward_rejects_wrong_channel_count(tiny):
    with pytest.raises(ValueError, match=r"\(N, 4, H, W\)"):
        tiny(torch.rand(1, 9, 32, 32))


@pytest.mark.parametrize("arch", ["sid-unet", "mobile-unet"])
def test_unet_constructors_refuse_bad_output_and_channels_alike(arch):
    """One check for both built-in U-Nets: the output kind, a raw output's scale and channels, the layer widths."""
    from darkc.models import mobile_unet, sid_unet

    cls, mod = (sid_unet.SIDUNet, sid_unet) if arch == "sid-unet" else (mobile_unet.MobileUNet, mobile_unet)
    channels = mod.widths_to_channels([4] * 5)
    with pytest.raises(ValueError, match="output must be 'srgb' or 'raw', got 'rgb'"):
        cls(4, 2, channels, output="rgb")
    with pytest.raises(ValueError, match=r"scale 1 and at most in_channels \(4\) raw channels, got scale 2"):
        cls(4, 2, channels, output="raw")
    with pytest.raises(ValueError, match="raw_channels 5"):
        cls(4, 1, channels, output="raw", raw_channels=5)
    assert cls(5, 1, channels, output="raw").raw_channels == 5
    assert cls(5, 1, channels, output="raw", raw_channels=4).raw_channels == 4
    with pytest.raises(ValueError, match=r"'channels' lacks \['.*'\] and has unknown \['extra'\]"):
        cls(4, 2, {**{n: 4 for n in list(channels)[1:]}, "extra": 4})
    with pytest.raises(ValueError, match="non-positive or non-integer widths"):
        cls(4, 2, {**channels, next(iter(channels)): 0})


# --- builder / registry ----------------------------------------------------------------------------------

def test_spec_round_trip_and_defaults():
    spec = normalize_spec({"arch": "sid-unet", "cfa": "xtrans"})
    assert (spec["in_channels"], spec["out_channels"], spec["scale"]) == (9, 3, 3)
    assert spec["widths"] == [32, 64, 128, 256, 512]
    assert spec["input"]["packing"] == "xtrans-9" and spec["input"]["layout"] == "packed"
    assert spec["output"] == "srgb" and spec["output_space"]["space"].startswith("sRGB") and spec["provenance"] == {}
    assert spec["input"]["noise"] == "none"
    again = normalize_spec(json.loads(json.dumps(spec)))
    assert again == spec
    assert build_model(again).channels == build_model(spec).channels == spec["channels"]


def test_channels_override_widths_and_uneven_widths_become_null():
    spec = normalize_spec({**TINY, "channels": uneven_channels()})
    assert spec["widths"] is None and spec["channels"] == uneven_channels()
    assert build_model(spec).channels == uneven_channels()
    even = normalize_spec({**TINY, "channels": widths_to_channels([3, 3, 3, 3, 3])})
    assert even["widths"] == [3, 3, 3, 3, 3]


def test_unknown_keys_are_kept():
    assert normalize_spec({**TINY, "params": 5, "quant": {"bits": 8}})["quant"] == {"bits": 8}


@pytest.mark.parametrize("spec, fragment", [
    ({"cfa": "bayer"}, "'arch' is missing"),
    ({"arch": "resnet"}, "'arch' is 'resnet'; use one of ['mobile-unet', 'sid-unet']"),
    ({"arch": "sid-unet", "cfa": "quad"}, "'cfa' is 'quad'; use one of ['bayer', 'xtrans']"),
    ({"arch": "sid-unet", "widths": [32, 64, 128, 256]}, "'widths'"),
    ({"arch": "sid-unet", "widths": [32, 0, 128, 256, 512]}, "'widths'"),
    ({"arch": "sid-unet", "widths": [32, 64.5, 128, 256, 512]}, "'widths'"),
    ({"arch": "sid-unet", "widths": "wide"}, "'widths'"),
    ({"arch": "sid-unet", "channels": {"conv1_1": 4}}, "'channels' lacks"),
    ({"arch": "sid-unet", "channels": {**widths_to_channels([4] * 5), "conv1_1": -1}}, "'channels'"),
    ({"arch": "sid-unet", "cfa": "bayer", "in_channels": 9}, "'in_channels' is 9"),
    ({"arch": "sid-unet", "cfa": "xtrans", "input": {"packing": "bayer-rggb-4"}}, "'input.packing'"),
    (["sid-unet"], "JSON object"),
])
def test_bad_spec_names_the_field(spec, fragment):
    with pytest.raises(DarkcError, match="model spec") as info:
        build_model(spec)
    assert fragment in str(info.value)


def test_register_arch_builds_new_arch(monkeypatch):
    monkeypatch.setattr(registry_mod, "_ARCHS", dict(registry_mod._ARCHS))

    @register_arch("toy")
    def toy(spec):
        return torch.nn.Conv2d(spec["in_channels"], 3 * spec["scale"] ** 2, 1)

    model = build_model({"arch": "toy", "cfa": "xtrans"})
    assert model.in_channels == 9 and model.out_channels == 27
    assert "toy" in str(pytest.raises(DarkcError, build_model, {"arch": "nope"}).value)


# --- MACs ------------------------------------------------------------------------------------------------

def test_count_macs_conv_only_at_padded_size():
    model = build_model({"arch": "sid-unet"})
    per_packed_pixel = 184_832  # sum over layers of cin*cout*k*k / (pixels at that level); see sid_unet.py
    full_hd = count_macs(model, (4, 540, 960))  # raw 1920x1080 -> packed 540x960 -> runs at 544x960
    assert full_hd == per_packed_pixel * 544 * 960 == 96_526_663_680
    sony = count_macs(model, (4, 1416, 2120))  # raw 4240x2832 -> packed 1416x2120 -> runs at 1424x2128
    assert sony == per_packed_pixel * 1424 * 2128
    assert count_macs(model, (1, 4, 544, 960)) == full_hd
    print(f"\nSID U-Net (Bayer, default widths) conv-only MACs: raw 1920x1080 (packed 4x544x960 padded) "
          f"{full_hd / 1e9:.2f} G; raw 4240x2832 (packed 4x1424x2128 padded) {sony / 1e9:.2f} G")


def test_count_macs_by_layer_matches_hand_count(tiny):
    layers = count_macs_by_layer(tiny, (4, 16, 32))
    assert set(layers) == set(LAYERS)
    assert layers["conv1_1"] == 16 * 32 * 4 * 4 * 9
    assert layers["up6"] == (1 * 2) * 12 * 10 * 4  # input pixels x cin x cout x 2x2
    assert layers["conv10"] == 16 * 32 * 4 * 12


# --- checkpoint ------------------------------------------------------------------------------------------

def test_save_load_round_trip_fp32_is_exact(tiny, artifact):
    model, spec = load_checkpoint(artifact)
    x = torch.rand(1, 4, 32, 32)
    assert torch.equal(model(x), tiny(x))
    on_disk = json.loads((artifact / "model.json").read_text())
    assert on_disk == spec
    assert (spec["params"], spec["format_version"], spec["weights_dtype"]) == (count_params(tiny), 1, "float32")
    assert spec["widths"] == TINY["widths"] and spec["input"]["packing"] == "bayer-rggb-4"
    for ref in (artifact / "model.json", artifact / "model.safetensors", str(artifact)):
        assert torch.equal(load_checkpoint(ref)[0](x), tiny(x))


def test_save_load_round_trip_fp16_storage(tmp_path, tiny):
    save_checkpoint(tiny, TINY, tmp_path / "half", dtype=torch.float16)
    stored = load_file(str(tmp_path / "half" / "model.safetensors"))
    assert all(t.dtype == torch.float16 for t in stored.values())
    model, spec = load_checkpoint(tmp_path / "half")
    assert spec["weights_dtype"] == "float16"
    assert all(p.dtype == torch.float32 for p in model.parameters())
    x = torch.rand(1, 4, 32, 32)
    torch.testing.assert_close(model(x), tiny(x), atol=2e-3, rtol=1e-2)


def test_save_records_actual_layer_widths(tmp_path):
    pruned = SIDUNet(4, 2, uneven_channels())
    _, spec = load_checkpoint(save_checkpoint(pruned, {"arch": "sid-unet"}, tmp_path / "p"))
    assert spec["channels"] == uneven_channels() and spec["widths"] is None
    assert spec["params"] == count_params(pruned)


def test_save_keeps_other_files_in_artifact_dir(tmp_path, tiny, artifact):
    (artifact / "model.onnx").write_bytes(b"onnx-bytes")
    save_checkpoint(tiny, TINY, artifact, dtype=torch.float16)
    assert (artifact / "model.onnx").read_bytes() == b"onnx-bytes"
    assert load_checkpoint(artifact)[1]["weights_dtype"] == "float16"
    assert sorted(os.listdir(tmp_path)) == ["art"]


def test_failed_save_leaves_old_dir_intact(tmp_path, tiny, artifact, monkeypatch):
    before = {p.name: p.read_bytes() for p in artifact.iterdir()}

    def half_write(tensors, path, metadata=None):
        open(path, "wb").write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint_mod, "save_file", half_write)
    with raises_naming("cannot write checkpoint to") as info:
        save_checkpoint(build_model({**TINY, "widths": [2, 2, 2, 2, 2]}), TINY, artifact)
    assert "No space left" in str(info.value)
    assert {p.name: p.read_bytes() for p in artifact.iterdir()} == before
    assert sorted(os.listdir(tmp_path)) == ["art"]


def test_save_rejects_non_finite_and_mismatched_models(tmp_path, tiny):
    with torch.no_grad():
        tiny.conv3_1.weight[0, 0, 0, 0] = 1e5  # finite in fp32, inf in fp16
    with raises_naming("'conv3_1.weight' has NaN or Inf when stored as float16"):
        save_checkpoint(tiny, TINY, tmp_path / "a", dtype=torch.float16)
    with raises_naming("dtype torch.int8"):
        save_checkpoint(tiny, TINY, tmp_path / "a", dtype=torch.int8)
    with raises_naming("has no conv layer 'conv1_1'"):
        save_checkpoint(torch.nn.Conv2d(4, 12, 1), TINY, tmp_path / "a")
    assert not (tmp_path / "a").exists()


def test_save_onto_a_file_is_refused(tmp_path, tiny):
    (tmp_path / "f").write_text("x")
    with raises_naming("is not a directory"):
        save_checkpoint(tiny, TINY, tmp_path / "f")


def _rewrite(artifact, edit):
    path = artifact / "model.safetensors"
    tensors = load_file(str(path))
    edit(tensors)
    save_file(tensors, str(path))


def test_load_missing_dir(tmp_path):
    with raises_naming("nowhere does not exist"):
        load_checkpoint(tmp_path / "nowhere")


def test_load_missing_json(artifact):
    (artifact / "model.json").unlink()
    with raises_naming("model.json is missing"):
        load_checkpoint(artifact)


def test_load_missing_safetensors(artifact):
    (artifact / "model.safetensors").unlink()
    with raises_naming("model.safetensors is missing"):
        load_checkpoint(artifact)


def test_load_corrupt_json(artifact):
    (artifact / "model.json").write_text('{"arch": "sid-unet",')
    with raises_naming("model.json is not valid JSON") as info:
        load_checkpoint(artifact)
    assert "\n" not in str(info.value)


def test_load_json_with_unknown_arch(artifact):
    spec = json.loads((artifact / "model.json").read_text())
    (artifact / "model.json").write_text(json.dumps({**spec, "arch": "unet-9000"}))
    with raises_naming("model.json: field 'arch' is 'unet-9000'; use one of ['mobile-unet', 'sid-unet']"):
        load_checkpoint(artifact)


def test_load_newer_format_version(artifact):
    spec = json.loads((artifact / "model.json").read_text())
    (artifact / "model.json").write_text(json.dumps({**spec, "format_version": 2}))
    with raises_naming("model.json: field 'format_version' is 2"):
        load_checkpoint(artifact)


def test_load_truncated_safetensors(artifact):
    path = artifact / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with raises_naming("model.safetensors is corrupt or truncated") as info:
        load_checkpoint(artifact)
    assert "\n" not in str(info.value)


def test_load_garbage_safetensors(artifact):
    (artifact / "model.safetensors").write_bytes(b"\x00" * 7)
    with raises_naming("model.safetensors is corrupt or truncated"):
        load_checkpoint(artifact)


def test_load_shape_mismatch_names_tensor_and_shapes(artifact):
    _rewrite(artifact, lambda t: t.update({"conv2_1.weight": torch.zeros(6, 3, 3, 3)}))
    with raises_naming("model.safetensors tensor 'conv2_1.weight' has shape (6, 3, 3, 3) but the spec "
                       "needs (6, 4, 3, 3)"):
        load_checkpoint(artifact)


def test_load_missing_key(artifact):
    _rewrite(artifact, lambda t: t.pop("up7.bias"))
    with raises_naming("model.safetensors lacks tensor 'up7.bias' of shape (8,)"):
        load_checkpoint(artifact)


def test_load_unexpected_key(artifact):
    _rewrite(artifact, lambda t: t.update({"extra.weight": torch.zeros(1)}))
    with raises_naming("model.safetensors has unexpected tensor 'extra.weight'"):
        load_checkpoint(artifact)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_load_non_finite_weights(artifact, bad):
    def poison(t):
        t["conv5_2.weight"][0, 0, 1, 1] = bad
    _rewrite(artifact, poison)
    with raises_naming("model.safetensors: tensor 'conv5_2.weight' contains NaN or Inf"):
        load_checkpoint(artifact)


def test_load_other_file_is_refused(tmp_path):
    (tmp_path / "weights.pth").write_bytes(b"pickle")
    with raises_naming("weights.pth is not a checkpoint"):
        load_checkpoint(tmp_path / "weights.pth")


# --- shipped models / --model references -----------------------------------------------------------------

def test_load_pretrained_unknown_or_unshipped_lists_names(tmp_path, monkeypatch):
    monkeypatch.setattr(pretrained_mod, "PRETRAINED_DIR", tmp_path)
    with raises_naming("no shipped model 'teacher' (available: none; not shipped in this install yet: "
                       "teacher, student, teacher-xtrans, teacher-raw, student-raw, student-rt)"):
        load_pretrained("teacher")
    with raises_naming("no shipped model 'big'"):
        load_pretrained("big")


def test_load_pretrained_from_shipped_dir(tmp_path, monkeypatch, tiny):
    monkeypatch.setattr(pretrained_mod, "PRETRAINED_DIR", tmp_path)
    save_checkpoint(tiny, TINY, tmp_path / "teacher")
    model, spec = load_pretrained("teacher")
    assert spec["widths"] == TINY["widths"] and count_params(model) == count_params(tiny)
    assert resolve_model_ref("teacher") == ("pretrained", tmp_path / "teacher")
    with raises_naming("(available: teacher; not shipped in this install yet: student, teacher-xtrans, teacher-raw, "
                       "student-raw, student-rt)"):
        load_pretrained("student")


def test_resolve_model_ref(tmp_path, artifact, monkeypatch):
    monkeypatch.setattr(pretrained_mod, "PRETRAINED_DIR", tmp_path / "shipped")
    (tmp_path / "m.onnx").write_bytes(b"")
    (tmp_path / "m.TFLITE").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("")
    assert resolve_model_ref(str(artifact)) == ("checkpoint", artifact)
    assert resolve_model_ref(artifact / "model.json") == ("checkpoint", artifact)
    assert resolve_model_ref(tmp_path / "m.onnx") == ("onnx", tmp_path / "m.onnx")
    assert resolve_model_ref(tmp_path / "m.TFLITE") == ("tflite", tmp_path / "m.TFLITE")
    with raises_naming("notes.txt is not a model"):
        resolve_model_ref(tmp_path / "notes.txt")
    with raises_naming("missing.onnx does not exist"):
        resolve_model_ref(tmp_path / "missing.onnx")
    with raises_naming("no shipped model 'student'"):
        resolve_model_ref("student")


@pytest.mark.parametrize("name", ["teacher", "student", "teacher-xtrans", "teacher-raw", "student-raw",
                                  "student-rt"])
def test_shipped_models_render_colour(name):
    # regression test for the first shipped teacher, whose output was nearly grey (mean RGB saturation
    # 0.012 against 0.195 in the target): a held-out colourful photo at x100 must keep most of its colour
    from darkc.data import cfa as cfa_mod
    from darkc.data.profiles import get_profile
    from darkc.data.datasets import model_io
    from darkc.data.render import render_mosaic
    from darkc.data.sources import builtin_photos
    from darkc.data.synth import make_pair
    from darkc.train import forward_padded

    model, spec = load_pretrained(name)
    cfa = spec["cfa"]
    side = 256 if cfa == "bayer" else 252                       # whole 2x2 / 6x6 CFA tiles
    photo = next(im for im in builtin_photos("val") if im.name.endswith("kodim23")).load()
    prof = get_profile(None, cfa)
    pair = make_pair(photo[128:128 + side, 256:256 + side], prof, 100, seed=3)
    x = model_io(pair, None, spec["input"]["noise"])["input"].numpy()
    with torch.no_grad():
        out = forward_padded(model.eval(), torch.from_numpy(x)[None]).clamp(0, 1)[0].numpy()
    if spec["output"] == "raw":     # LibRaw renders the clean raw with the file's colour, as darkc enhance does
        dn = prof.black + cfa_mod.unpack(out, cfa) * (prof.white - prof.black)
        out = render_mosaic(np.round(dn).astype(np.uint16), cfa, **pair.dng_tags(pair.long_exposure))
        out = out.transpose(2, 0, 1)
    target = pair.target().transpose(2, 0, 1)

    def saturation(img):
        return float((img.max(0) - img.min(0)).mean())

    assert saturation(out) > 0.6 * saturation(target), (saturation(out), saturation(target))

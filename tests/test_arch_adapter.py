"""The architecture adapter and plugin archs: what a stage learns about a network comes from tracing it (or from
its arch's declarations), never from one network's layer names; a user's network loads by import path or entry
point, and a missing plugin is a one-line error naming the module and the fix."""
import re
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from darkc.compress.pruning import match_activations, prune_model
from darkc.errors import DarkcError
from darkc.models import (Adapter, build_model, get_adapter, load_checkpoint, normalize_spec, read_spec,
                          save_checkpoint)
from darkc.models import registry as registry_mod
from darkc.models.sid_unet import FEATURE_LAYERS, HEAD, WIDTH_LAYERS, widths_to_channels

ROOT = Path(__file__).resolve().parents[1]
#: A user's network: nested blocks (dotted module names), two poolings (size multiple 4), a PixelShuffle that is
#: not called ``pixel_shuffle``, activations as modules and as a functional call.
NET_SOURCE = textwrap.dedent('''
    import torch
    import torch.nn.functional as F
    from torch import nn


    class Net(nn.Module):
        def __init__(self, cin, cout, scale, width=8):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(cin, width, 3, padding=1), nn.LeakyReLU(0.1))
            self.down = nn.Sequential(nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.LeakyReLU(0.1),
                                      nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1), nn.LeakyReLU(0.1))
            self.rise = nn.ModuleList([nn.ConvTranspose2d(2 * width, width, 2, stride=2),
                                       nn.ConvTranspose2d(width, width, 2, stride=2)])
            self.blend = nn.Conv2d(2 * width, width, 3, padding=1)
            self.to_rgb = nn.Conv2d(width, cout * scale * scale, 1)
            self.unpack = nn.PixelShuffle(scale)

        def forward(self, x):
            s = self.stem(x)
            y = self.down(s)
            y = F.leaky_relu(self.rise[0](y), 0.1)
            y = F.leaky_relu(self.rise[1](y), 0.1)
            y = F.leaky_relu(self.blend(torch.cat([y, s], 1)), 0.1)
            return self.unpack(self.to_rgb(y))


    def build(spec):
        return Net(spec["in_channels"], spec["out_channels"], spec["scale"], spec.get("width", 8))
''')


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """``adapter_user_net`` written outside darkc and importable; darkc's registry restored afterwards."""
    (tmp_path / "adapter_user_net.py").write_text(NET_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry_mod, "_ARCHS", dict(registry_mod._ARCHS))
    monkeypatch.delitem(sys.modules, "adapter_user_net", raising=False)
    yield "adapter_user_net:build"
    sys.modules.pop("adapter_user_net", None)


def test_generic_adapter_traces_a_user_network(user_module):
    spec = normalize_spec({"arch": user_module, "cfa": "bayer"})
    model = build_model(spec)
    a = get_adapter(spec)
    assert a.head(model) == ["to_rgb"]
    assert a.width_layers(model) == ["stem.0", "down.0", "down.2", "rise.0", "rise.1", "blend"]
    assert a.widths(model) == {"stem.0": 8, "down.0": 16, "down.2": 16, "rise.0": 8, "rise.1": 8, "blend": 8}
    assert a.size_multiple(model) == 4 and model.size_multiple == 4
    assert a.feature_taps(model) == ["rise.0", "blend"]          # last conv at 1/2 and at full resolution
    assert a.pixel_shuffle(model)[0] == "unpack"
    assert a.activations(model) == ("leaky_relu",) and a.rescalable(model) is None
    assert a.conv_order(model) == ["stem.0", "down.0", "down.2", "rise.0", "rise.1", "blend", "to_rgb"]


def test_traced_adapter_agrees_with_the_sid_unets_declared_one():
    spec = normalize_spec({"arch": "sid-unet", "widths": [8, 8, 16, 16, 32]})
    model = build_model(spec)
    traced = Adapter(spec)                                       # nothing declared: everything from hooks
    assert traced.head(model) == list(HEAD) == get_adapter(spec).head(model)
    assert traced.width_layers(model) == list(WIDTH_LAYERS)
    assert traced.feature_taps(model) == list(FEATURE_LAYERS) == get_adapter(spec).feature_taps(model)
    assert traced.traced_multiple(model) == 16 == get_adapter(spec).size_multiple(model)
    assert traced.pixel_shuffle(model)[0] == "pixel_shuffle"
    assert traced.widths(model) == widths_to_channels([8, 8, 16, 16, 32])


def test_export_contract_takes_the_size_multiple_from_the_models_adapter():
    """A network exported through the Python API under an arch name no registry knows: the contract states the
    network's own multiple (its attribute, else traced), not darkc's default 16; without a model, the arch's."""
    from darkc.export.contract import input_contract

    spec = {"arch": "plain-unregistered", "cfa": "bayer", "in_channels": 4, "out_channels": 3, "scale": 2}
    net = nn.Sequential(nn.Conv2d(4, 8, 3, stride=2, padding=1), nn.Conv2d(8, 8, 3, stride=2, padding=1),
                        nn.ConvTranspose2d(8, 12, 4, stride=4), nn.PixelShuffle(2))     # two 2x downsamplings

    def multiples(model, spec=spec):
        packing = input_contract(spec, "NHWC", [1, 64, 64, 4], model=model)["input"]["packing"]
        return packing["size_multiple_packed_px"], packing["size_multiple_raw_px"]

    assert multiples(net) == (4, 8)                               # traced: 64 px in, coarsest conv output 16 px
    net.size_multiple = 8
    assert multiples(net) == (8, 16)                              # the network's own declaration wins
    assert multiples(None, normalize_spec({"arch": "sid-unet", "cfa": "xtrans"})) == (16, 48)
    with pytest.raises(DarkcError, match="plain-unregistered"):
        multiples(None)                                           # no model, no adapter to ask: a named error


def test_pruned_user_network_reloads_bit_exact_by_import_path(user_module, tmp_path):
    spec = normalize_spec({"arch": user_module, "cfa": "bayer"})
    model = build_model(spec)
    x = torch.rand(2, 4, 16, 16, generator=torch.Generator().manual_seed(1))
    model, spec = prune_model(model, spec, 0.5, round_to=4, example_input=x)
    assert spec["channels"] == {"stem.0": 4, "down.0": 8, "down.2": 8, "rise.0": 4, "rise.1": 4, "blend": 4}
    save_checkpoint(model, spec, tmp_path / "ck")
    stored = read_spec(tmp_path / "ck")
    assert stored["arch"] == user_module and stored["size_multiple"] == 4 and stored["channels"] == spec["channels"]
    loaded, _ = load_checkpoint(tmp_path / "ck")
    with torch.no_grad():
        assert torch.equal(loaded(x), model.eval()(x))


def test_rescale_after_pruning_follows_the_traced_conv_order(user_module):
    spec = normalize_spec({"arch": user_module, "cfa": "bayer"})
    parent = build_model(spec).eval()
    x = torch.rand(4, 4, 32, 32, generator=torch.Generator().manual_seed(2))
    pruned, _ = prune_model(build_model(spec), spec, 0.75, round_to=2, example_input=x, rescale=False)
    a = get_adapter(spec)
    factors = match_activations(pruned, parent, x, a)
    assert list(factors) == a.conv_order(parent)                # every conv, in forward order, the head last
    outs = {}
    hooks = [m.register_forward_hook(lambda _m, _i, o, n=n, d=outs: d.setdefault(n, []).append(o))
             for n, m in [*pruned.named_modules(), *((f"parent.{k}", v) for k, v in parent.named_modules())]
             if n.split(".")[-1] in ("blend", "to_rgb")]
    with torch.no_grad():
        pruned(x), parent(x)
    for h in hooks:
        h.remove()
    assert outs["blend"][0].std().item() == pytest.approx(outs["parent.blend"][0].std().item(), rel=1e-4)
    torch.testing.assert_close(outs["to_rgb"][0].std((0, 2, 3)), outs["parent.to_rgb"][0].std((0, 2, 3)),
                               rtol=1e-3, atol=1e-6)


def test_rescale_is_refused_for_a_network_with_batch_norm(tmp_path, monkeypatch):
    monkeypatch.setattr(registry_mod, "_ARCHS", dict(registry_mod._ARCHS))

    def bn_net(spec):
        return nn.Sequential(nn.Conv2d(4, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.Conv2d(16, 12, 1),
                             nn.PixelShuffle(2))
    registry_mod.register_arch("test-bn-net")(bn_net)
    spec = normalize_spec({"arch": "test-bn-net"})
    with pytest.raises(DarkcError, match="BatchNorm2d.*--no-rescale"):
        prune_model(build_model(spec), spec, 0.5)
    model, spec = prune_model(build_model(spec), spec, 0.5, rescale=False)
    assert spec["channels"] == {"0": 8}


def test_missing_plugin_is_one_line_naming_the_module_and_the_fix(tmp_path):
    spec = {"arch": "no_such_pkg.nets:build", "cfa": "bayer"}
    with pytest.raises(DarkcError) as err:
        build_model(spec)
    msg = str(err.value)
    assert "\n" not in msg and "'no_such_pkg.nets'" in msg and "pip install" in msg and "PYTHONPATH" in msg
    with pytest.raises(DarkcError, match="not 'package.module:build'"):
        normalize_spec({"arch": "no_such:"})
    with pytest.raises(DarkcError, match="entry-point group 'darkc.archs'"):
        normalize_spec({"arch": "not-registered"})
    for path in ("os:system", "shutil:rmtree", "darkc.models.builder:build_model"):   # a model.json from elsewhere
        with pytest.raises(DarkcError, match="not an architecture"):
            normalize_spec({"arch": path})


def test_entry_point_name_records_the_import_path(user_module, tmp_path, monkeypatch):
    from importlib.metadata import EntryPoint

    ep = EntryPoint(name="user-net", value=user_module, group="darkc.archs")
    monkeypatch.setattr(registry_mod, "_entry_points", lambda: [ep])
    spec = normalize_spec({"arch": "user-net", "cfa": "bayer"})
    assert spec["arch_import"] == user_module
    save_checkpoint(build_model(spec), spec, tmp_path / "ck")
    # elsewhere, without the entry point installed: model.json's import path still loads it
    monkeypatch.setattr(registry_mod, "_entry_points", lambda: [])
    monkeypatch.setattr(registry_mod, "_ARCHS", {k: v for k, v in registry_mod._ARCHS.items() if k != "user-net"})
    model, loaded = load_checkpoint(tmp_path / "ck")
    assert loaded["arch"] == "user-net" and get_adapter(loaded).head(model) == ["to_rgb"]


def test_no_stage_names_a_sid_layer():
    """Every SID layer name lives in darkc/models/; stages ask the adapter (issue 15)."""
    pattern = re.compile(r"conv10|conv1_1|\bLAYERS\b|WIDTH_LAYERS|FEATURE_LAYERS")
    hits = [f"{p.relative_to(ROOT)}:{no}: {line.strip()}"
            for folder in ("darkc", "benchmarks") for p in sorted((ROOT / folder).rglob("*.py"))
            if not p.relative_to(ROOT).as_posix().startswith("darkc/models/")
            for no, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)]
    assert not hits, "\n".join(hits)

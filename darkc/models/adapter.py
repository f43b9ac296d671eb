"""What a stage may know about a network: its architecture adapter.

Every stage asks the adapter of a model's architecture instead of naming layers of one network::

    from darkc.models import build_model, get_adapter

    spec = {"arch": "my_nets.tiny:build", "cfa": "bayer"}       # a user's network, by import path
    model = build_model(spec)
    a = get_adapter(spec)
    a.in_channels, a.output, a.scale                          # input contract, output kind and scale
    a.size_multiple(model)                                    # packed H and W must be multiples of this
    a.head(model), a.widths(model), a.feature_taps(model)     # never pruned / prunable widths / KD taps
    a.conv_order(model), a.activations(model), a.pixel_shuffle(model)

The generic :class:`Adapter` works on any ``nn.Module`` that maps packed raw (N, C, h, w) to the spec's output by
tracing one forward pass with hooks: the head is the last conv called (it produces the output, so its width is
fixed), the prunable widths are every other conv's output channels (what ``model.json`` ``channels`` stores),
feature taps are the last conv at each decoder resolution (after the coarsest one), the size multiple is the input
side over the coarsest conv output's side. An architecture declares any of these instead (keyword arguments, or a
subclass such as the SID U-Net's in :mod:`darkc.models.builder`); ``register_arch(name, adapter=...)`` attaches it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from darkc.errors import DarkcError

#: Modules whose output channels are layer widths.
CONVS = (nn.Conv2d, nn.ConvTranspose2d)
#: Activation module types -> the names stages use (``activations``).
ACTIVATION_TYPES: dict[type, str] = {
    nn.ReLU: "relu", nn.LeakyReLU: "leaky_relu", nn.PReLU: "prelu", nn.ReLU6: "relu6", nn.Hardtanh: "hardtanh",
    nn.Hardswish: "hardswish", nn.Hardsigmoid: "hardsigmoid", nn.SiLU: "silu", nn.GELU: "gelu", nn.ELU: "elu",
    nn.Sigmoid: "sigmoid", nn.Tanh: "tanh", nn.Mish: "mish", nn.Softplus: "softplus",
}
#: Activations with f(a x) = a f(x) for a > 0: a layer's output can be rescaled without changing its shape.
HOMOGENEOUS = frozenset({"relu", "leaky_relu", "prelu"})
#: Layers that undo a rescaled conv output (their statistics are fixed): rescaling after pruning is wrong with them.
NORMS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm, nn.modules.instancenorm._InstanceNorm)
#: Packed sides a generic network is traced at, tried in order (the first its poolings divide).
TRACE_SIDES = (64, 256)


@dataclass(frozen=True)
class Call:
    """One call of a conv or PixelShuffle in a traced forward: module name, module, output shape (N, C, H, W)."""

    name: str
    module: nn.Module
    shape: tuple[int, ...]


class Adapter:
    """The architecture adapter of one model spec (see the module docstring).

    Args:
        spec: the normalised model spec (``in_channels``, ``out_channels``, ``scale``, ``output``, ``cfa``, ``input``).
        head: names of the modules that produce the output and are never pruned; None: the last conv called.
        feature_taps: names of modules whose outputs feature distillation matches; None: traced (decoder levels).
        size_multiple: packed H and W must be multiples of this; None: the model's ``size_multiple`` attribute,
            the spec's, else traced.
        activations: names of the activations the network uses (keys of :data:`ACTIVATION_TYPES`' values); None:
            found by module type and by ``torch.fx`` for functional calls.
        width_layers: names of the layers whose widths ``channels`` stores; None: every conv but the head.
        native_widths: the build function honours ``spec["channels"]`` itself; otherwise :meth:`set_widths`
            prunes a freshly built network to the stored widths (structurally, with Torch-Pruning's graph).
        fixed: names of inner convs whose widths the architecture fixes (not width layers, so a rebuild makes them
            as they were): never pruned, like the head.
    """

    def __init__(self, spec: dict, *, head=None, feature_taps=None, size_multiple: int | None = None,
                 activations=None, width_layers=None, native_widths: bool = False, fixed=()):
        self.spec = spec
        self._fixed = tuple(fixed)
        self._head = tuple(head) if head is not None else None
        self._taps = tuple(feature_taps) if feature_taps is not None else None
        self._multiple = size_multiple
        self._activations = tuple(activations) if activations is not None else None
        self._width_layers = tuple(width_layers) if width_layers is not None else None
        self.native_widths = native_widths

    # ---------------------------------------------------------------- input contract and output
    @property
    def arch(self) -> str:
        return self.spec.get("arch", "?")

    @property
    def in_channels(self) -> int:
        """Input channels: the CFA's packed channels, then the noise-std channel of noise-conditioned models."""
        return int(self.spec["in_channels"])

    @property
    def out_channels(self) -> int:
        return int(self.spec["out_channels"])

    @property
    def output(self) -> str:
        """``srgb`` or ``raw`` (clean packed raw, same size as the input)."""
        return self.spec.get("output", "srgb")

    @property
    def scale(self) -> int:
        """Output pixels per packed input pixel along each side (2 / 3 for sRGB, 1 for raw)."""
        return int(self.spec["scale"])

    @property
    def input_contract(self) -> dict:
        """CFA, packing, channels and noise input the network takes (from ``model.json`` ``input``)."""
        inp = self.spec.get("input") or {}
        return {"cfa": self.spec.get("cfa"), "packing": inp.get("packing"), "channels": self.in_channels,
                "noise": inp.get("noise", "none"), "layout": inp.get("layout", "packed")}

    # ---------------------------------------------------------------- tracing
    def _example(self, model: nn.Module, side: int) -> torch.Tensor:
        p = next(iter(model.parameters()), None)
        device = p.device if p is not None else torch.device("cpu")
        return torch.rand(1, self.in_channels, side, side, generator=torch.Generator().manual_seed(0)).to(device)

    def trace(self, model: nn.Module, x: torch.Tensor | None = None) -> list[Call]:
        """Every conv / PixelShuffle call of one forward (on ``x``, default a small random input), in order."""
        calls: list[Call] = []
        names = {m: n for n, m in model.named_modules()}
        hooks = [m.register_forward_hook(lambda mod, _i, out: calls.append(Call(names[mod], mod, tuple(out.shape))))
                 for m in names if isinstance(m, CONVS + (nn.PixelShuffle,))]
        was = model.training
        model.eval()
        try:
            sides = [None] if x is not None else [self._multiple * 4] if self._multiple else list(TRACE_SIDES)
            error = None
            for side in sides:
                calls.clear()
                try:
                    with torch.no_grad():
                        model(x if x is not None else self._example(model, side))
                    error = None
                    break
                except (RuntimeError, ValueError) as exc:
                    error = exc
            if error is not None:
                raise DarkcError(f"arch {self.arch!r}: a forward pass on packed input (1, {self.in_channels}, "
                                 f"{sides[-1]}, {sides[-1]}) failed ({' '.join(str(error).split())[:200]}); the "
                                 f"network must take packed raw (N, {self.in_channels}, H, W)")
        finally:
            for h in hooks:
                h.remove()
            model.train(was)
        return calls

    def _convs(self, model: nn.Module) -> list[Call]:
        seen, convs = set(), []
        for c in self.trace(model):
            if isinstance(c.module, CONVS) and c.name not in seen and len(c.shape) == 4:
                seen.add(c.name)
                convs.append(c)
        if not convs:
            raise DarkcError(f"arch {self.arch!r}: the network calls no Conv2d/ConvTranspose2d; darkc's stages "
                             f"work on convolutional networks")
        return convs

    # ---------------------------------------------------------------- what stages ask
    def size_multiple(self, model: nn.Module | None = None) -> int:
        """Packed H and W must be multiples of this (16 for the SID U-Net: four 2x poolings)."""
        if self._multiple:
            return int(self._multiple)
        if model is not None and isinstance(getattr(model, "size_multiple", None), int):
            return int(model.size_multiple)
        if isinstance(self.spec.get("size_multiple"), int):
            return int(self.spec["size_multiple"])
        if model is None:
            raise DarkcError(f"arch {self.arch!r}: its size multiple is neither declared nor in model.json; "
                             f"re-save the model (save_checkpoint records it)")
        return self.traced_multiple(model)

    def traced_multiple(self, model: nn.Module) -> int:
        """Input side over the coarsest conv output's side, as a power of two (1 without downsampling)."""
        side = TRACE_SIDES[0]
        calls = self.trace(model, self._example(model, side))
        coarsest = min(min(c.shape[2:]) for c in calls if len(c.shape) == 4)
        return 2 ** max(0, round(math.log2(side / max(coarsest, 1))))

    def conv_order(self, model: nn.Module) -> list[str]:
        """Names of the convs in the order a forward pass calls them (first call of each)."""
        return [c.name for c in self._convs(model)]

    def head(self, model: nn.Module) -> list[str]:
        """Names of the modules that produce the output: never pruned (their widths are the output's)."""
        if self._head is not None:
            return list(self._head)
        return [self._convs(model)[-1].name]

    def head_modules(self, model: nn.Module) -> list[nn.Module]:
        return [model.get_submodule(n) for n in self.head(model)]

    def fixed_modules(self, model: nn.Module) -> list[nn.Module]:
        """Inner convs whose widths the architecture fixes: never pruned (see ``fixed``)."""
        return [model.get_submodule(n) for n in self._fixed]

    def width_layers(self, model: nn.Module) -> list[str]:
        """Names of the layers whose output widths are free (``model.json`` ``channels``), in module order."""
        if self._width_layers is not None:
            return list(self._width_layers)
        head = set(self.head(model))
        called = {c.name for c in self._convs(model)}
        return [n for n, m in model.named_modules() if isinstance(m, CONVS) and n in called and n not in head]

    def widths(self, model: nn.Module) -> dict[str, int]:
        """Current output width of every width layer (reflects in-place pruning)."""
        return {n: int(model.get_submodule(n).out_channels) for n in self.width_layers(model)}

    def set_widths(self, model: nn.Module, channels: dict[str, int], where: str = "model spec") -> nn.Module:
        """Cut ``model`` (freshly built, unpruned) down to the per-layer ``channels`` in place, keeping the
        first channels of each layer (the weights are loaded afterwards); coupled layers follow Torch-Pruning's
        dependency graph. Returns ``model``."""
        import torch_pruning as tp

        have = self.widths(model)
        unknown = [n for n in channels if n not in have]
        if unknown:
            raise DarkcError(f"{where}: field 'channels' names {unknown}, which are not width layers of arch "
                             f"{self.arch!r} (those are {list(have)[:8]}{' ...' if len(have) > 8 else ''}); "
                             f"re-save the model")
        grow = {n: (c, have[n]) for n, c in channels.items() if c > have[n]}
        if grow:
            raise DarkcError(f"{where}: field 'channels' asks for more channels than arch {self.arch!r} builds "
                             f"({grow}, wanted, built); build it wider (its own options) or fix 'channels'")
        if all(have[n] == c for n, c in channels.items()):
            return model
        dg = tp.DependencyGraph().build_dependency(model, self._example(model, self.size_multiple(model) * 2))
        for name, want in channels.items():
            layer = model.get_submodule(name)
            width = int(layer.out_channels)
            if want < width:
                fn = dg.get_pruner_of_module(layer).prune_out_channels
                dg.get_pruning_group(layer, fn, list(range(want, width))).prune()
        got = self.widths(model)
        wrong = {n: (c, got[n]) for n, c in channels.items() if got[n] != c}
        if wrong:
            raise DarkcError(f"{where}: field 'channels' cannot be built for arch {self.arch!r}: coupled layers "
                             f"disagree ({wrong}, wanted, got); re-save the model")
        return model

    def feature_taps(self, model: nn.Module) -> list[str]:
        """Modules whose outputs feature distillation compares: one per decoder resolution, finest last."""
        if self._taps is not None:
            return list(self._taps)
        head = set(self.head(model))
        convs = [c for c in self._convs(model) if c.name not in head]
        if not convs:
            return []
        area = [c.shape[2] * c.shape[3] for c in convs]
        low = area.index(min(area))
        taps: dict[int, str] = {}
        for c, a in zip(convs[low:], area[low:]):
            if a > area[low]:
                taps[a] = c.name            # the last conv at each finer resolution
        return list(taps.values()) or [convs[-1].name]

    def activations(self, model: nn.Module) -> tuple[str, ...]:
        """Names of the nonlinearities the network applies (module types, and functional calls ``torch.fx`` sees)."""
        if self._activations is not None:
            return self._activations
        found = {ACTIVATION_TYPES[type(m)] for m in model.modules() if type(m) in ACTIVATION_TYPES}
        try:
            import torch.fx
            import torch.nn.functional as F

            functional = {F.relu: "relu", F.leaky_relu: "leaky_relu", F.prelu: "prelu", F.relu6: "relu6",
                          F.hardswish: "hardswish", F.silu: "silu", F.gelu: "gelu", F.elu: "elu",
                          torch.sigmoid: "sigmoid", torch.tanh: "tanh", torch.relu: "relu", F.sigmoid: "sigmoid",
                          F.tanh: "tanh", F.mish: "mish", F.softplus: "softplus", F.hardsigmoid: "hardsigmoid"}
            graph = torch.fx.symbolic_trace(model).graph
            found |= {functional[n.target] for n in graph.nodes if n.op == "call_function" and n.target in functional}
            found |= {m for n in graph.nodes if n.op == "call_method"
                      for m in [{"relu": "relu", "sigmoid": "sigmoid", "tanh": "tanh"}.get(n.target)] if m}
        except Exception:   # data-dependent control flow: fx cannot trace it; module types are what we know
            pass
        return tuple(sorted(found))

    def rescalable(self, model: nn.Module) -> str | None:
        """None when each conv's output can be rescaled without changing what the network computes up to scale
        (positively homogeneous activations, no normalisation layers); else why not."""
        acts = set(self.activations(model)) - HOMOGENEOUS
        norms = sorted({type(m).__name__ for m in model.modules() if isinstance(m, NORMS)})
        if acts or norms:
            return f"it uses {', '.join(sorted(acts) + norms)}, which a per-layer rescale would change"
        return None

    def pixel_shuffle(self, model: nn.Module) -> tuple[str, nn.PixelShuffle] | None:
        """``(name, module)`` of the network's PixelShuffle (found by type), or None."""
        found = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.PixelShuffle)]
        return found[-1] if found else None


def adapter_of(model: nn.Module) -> Adapter:
    """The adapter :func:`darkc.models.build_model` attached to ``model``; for a module built elsewhere, the generic
    adapter with the first conv's input channels."""
    found = getattr(model, "darkc_adapter", None)
    if isinstance(found, Adapter):
        return found
    first = next((m for m in model.modules() if isinstance(m, CONVS)), None)
    if first is None:
        raise DarkcError(f"{type(model).__name__} has no Conv2d/ConvTranspose2d; darkc's stages work on "
                         f"convolutional networks")
    return Adapter({"in_channels": first.in_channels})

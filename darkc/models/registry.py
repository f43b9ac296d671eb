"""Architectures found by name: the ``arch`` field of ``model.json`` picks an entry here.

An architecture registers a build function ``spec -> nn.Module`` (``spec`` already normalised by
:func:`darkc.models.normalize_spec`) and, optionally, a ``normalize`` function that fills and checks its
own fields (e.g. ``widths``/``channels``)::

    @register_arch("mobile-unet", normalize=normalize_unet_widths)
    def mobile_unet(spec):
        return MobileUNet(spec["in_channels"], spec["scale"], spec["channels"])
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from darkc.errors import DarkcError

BuildFn = Callable[[dict], nn.Module]
NormalizeFn = Callable[[dict, str], dict]


@dataclass(frozen=True)
class ArchEntry:
    """A registered architecture.

    ``normalize(spec, where)`` returns ``spec`` with the arch's own fields filled and validated, raising
    :class:`DarkcError` messages prefixed with ``where`` (the file or "model spec").
    """

    name: str
    build: BuildFn
    normalize: NormalizeFn | None = None


_ARCHS: dict[str, ArchEntry] = {}


def register_arch(name: str, *, normalize: NormalizeFn | None = None) -> Callable[[BuildFn], BuildFn]:
    """Decorator: register ``fn(spec) -> nn.Module`` as architecture ``name``."""

    def decorator(fn: BuildFn) -> BuildFn:
        if name in _ARCHS and _ARCHS[name].build is not fn:
            raise ValueError(f"architecture {name!r} is already registered by {_ARCHS[name].build!r}")
        _ARCHS[name] = ArchEntry(name, fn, normalize)
        return fn

    return decorator


def list_archs() -> list[str]:
    """Names of all registered architectures, sorted."""
    return sorted(_ARCHS)


def get_arch(name: str, where: str = "model spec") -> ArchEntry:
    """The entry registered as ``name``; a :class:`DarkcError` listing valid names otherwise."""
    if not isinstance(name, str) or name not in _ARCHS:
        raise DarkcError(f"{where}: field 'arch' is {name!r}; use one of {list_archs()}")
    return _ARCHS[name]

"""Architectures found by name: the ``arch`` field of ``model.json`` picks an entry here.

An architecture registers a build function ``spec -> nn.Module`` (``spec`` already normalised by
:func:`darkc.models.normalize_spec`), optionally a ``normalize`` function that fills and checks its own fields
(e.g. ``widths``/``channels``) and an ``adapter`` (what stages may know about it, :mod:`darkc.models.adapter`)::

    @register_arch("mobile-unet", normalize=normalize_unet_widths)
    def mobile_unet(spec):
        return MobileUNet(spec["in_channels"], spec["scale"], spec["channels"])

A user's network needs no change to darkc. ``arch`` may be

- a registered name (built in, or registered by code already imported);
- an entry point of the group ``darkc.archs`` of an installed package
  (``[options.entry_points] darkc.archs = my-net = my_nets.tiny:build``);
- an import path ``package.module:attr`` whose ``attr`` is a build function (plain, or decorated with
  ``@register_arch``, which then brings its normalize and adapter along).

``model.json`` keeps the import path (``arch_import``) of every plugin, so an artifact reloads wherever the
package is importable, whether or not its entry point is installed there. Loading such a ``model.json`` imports
that module and calls the named function with the spec (as installing the package would allow); import paths into
the standard library or into darkc itself are refused.
"""
from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from torch import nn

from darkc.errors import DarkcError, one_line
from darkc.models.adapter import Adapter

BuildFn = Callable[[dict], nn.Module]
NormalizeFn = Callable[[dict, str], dict]
AdapterFn = Callable[[dict], Adapter]
#: Entry-point group through which installed packages offer architectures.
ENTRY_POINT_GROUP = "darkc.archs"


@dataclass(frozen=True)
class ArchEntry:
    """A registered architecture.

    ``normalize(spec, where)`` returns ``spec`` with the arch's own fields filled and validated, raising
    :class:`DarkcError` messages prefixed with ``where`` (the file or "model spec"). ``adapter(spec)`` returns
    its :class:`~darkc.models.adapter.Adapter`. ``source`` is the import path of a plugin (None when built in).
    """

    name: str
    build: BuildFn
    normalize: NormalizeFn | None = None
    adapter: AdapterFn = field(default=Adapter)
    source: str | None = None


_ARCHS: dict[str, ArchEntry] = {}
#: sys.path entries plugins were imported from (a worker process needs them too).
_PLUGIN_PATHS: list[str] = []


def register_arch(name: str, *, normalize: NormalizeFn | None = None,
                  adapter: AdapterFn | None = None) -> Callable[[BuildFn], BuildFn]:
    """Decorator: register ``fn(spec) -> nn.Module`` as architecture ``name`` (``adapter``: default generic)."""

    def decorator(fn: BuildFn) -> BuildFn:
        if name in _ARCHS and _ARCHS[name].build is not fn:
            raise ValueError(f"architecture {name!r} is already registered by {_ARCHS[name].build!r}")
        plugin = not fn.__module__.startswith("darkc.") and fn.__module__ != "__main__" and "<" not in fn.__qualname__
        source = f"{fn.__module__}:{fn.__qualname__}" if plugin else None
        _ARCHS[name] = ArchEntry(name, fn, normalize, adapter or Adapter, source)
        return fn

    return decorator


def list_archs() -> list[str]:
    """Names of all registered architectures and installed ``darkc.archs`` entry points, sorted."""
    return sorted(set(_ARCHS) | {ep.name for ep in _entry_points()})


def _entry_points():
    from importlib.metadata import entry_points

    try:
        return list(entry_points(group=ENTRY_POINT_GROUP))
    except Exception:       # a broken distribution's metadata must not stop darkc
        return []


def _hint(name: str) -> str:
    return (f"use one of {list_archs()}, an import path 'package.module:build', or install the package that "
            f"offers {name!r} under the entry-point group '{ENTRY_POINT_GROUP}'")


def _remember_path(module) -> None:
    """Record the sys.path entry ``module`` was found under, for worker processes (see :func:`plugin_paths`)."""
    top = sys.modules.get(module.__name__.split(".")[0])
    origin = getattr(top, "__file__", None)
    if not origin:
        return
    root = Path(origin).resolve().parent
    if Path(origin).name == "__init__.py":
        root = root.parent
    for entry in sys.path:
        try:
            if entry and Path(entry).resolve() == root and entry not in _PLUGIN_PATHS:
                _PLUGIN_PATHS.append(entry)
        except OSError:
            continue


def plugin_paths() -> list[str]:
    """sys.path entries that architecture plugins were imported from in this process (put them on a child
    process's PYTHONPATH so it can load the same artifacts)."""
    return list(_PLUGIN_PATHS)


def _import(path: str, where: str, name: str | None = None) -> ArchEntry:
    """The entry for import path ``module:attr`` (registered by that import, or wrapping a plain build fn)."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise DarkcError(f"{where}: arch {path!r} is not 'package.module:build'; {_hint(path)}")
    top = module_name.split(".")[0]
    if top in sys.stdlib_module_names or top in ("builtins", "darkc"):
        # a model.json may come from elsewhere: never call a standard-library or darkc internal by its name
        raise DarkcError(f"{where}: arch {path!r} names a {'darkc' if top == 'darkc' else 'standard-library'} "
                         f"function, not an architecture; use a registered name ({list_archs()}) or your package's "
                         f"build function")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise DarkcError(f"{where}: arch {name or path!r} needs module {module_name!r}, which cannot be imported "
                         f"({one_line(exc)}); install the package that defines it (pip install ...) or put its folder "
                         f"on PYTHONPATH") from None
    _remember_path(module)
    obj = module
    for part in attr.split("."):
        obj = getattr(obj, part, None)
    if isinstance(obj, ArchEntry):
        return obj
    if not callable(obj):
        raise DarkcError(f"{where}: module {module_name!r} has no callable {attr!r} (a build function spec -> "
                         f"nn.Module); fix the import path {path!r}")
    registered = next((e for e in _ARCHS.values() if e.build is obj), None)
    entry = registered or ArchEntry(path, obj)
    from dataclasses import replace

    return replace(entry, name=name or path, source=path)


def resolve_arch(spec_or_name, where: str = "model spec") -> ArchEntry:
    """The entry of a spec's ``arch`` (or of a name): registered, an entry point, ``arch_import``, or an import path.

    Raises:
        DarkcError: one line naming the arch (or the plugin module) and the fix.
    """
    spec = spec_or_name if isinstance(spec_or_name, dict) else {"arch": spec_or_name}
    name = spec.get("arch")
    if not isinstance(name, str) or not name:
        raise DarkcError(f"{where}: field 'arch' is {name!r}; {_hint(str(name))}")
    if name in _ARCHS:
        return _ARCHS[name]
    for ep in _entry_points():
        if ep.name == name:
            entry = _import(ep.value, where, name)
            _ARCHS[name] = entry
            return entry
    source = spec.get("arch_import")
    if isinstance(source, str) and source:
        entry = _import(source, where, name)
        _ARCHS[name] = entry
        return entry
    if ":" in name:
        entry = _import(name, where)
        _ARCHS[name] = entry
        return entry
    raise DarkcError(f"{where}: field 'arch' is {name!r}; {_hint(name)}")


def get_arch(name: str, where: str = "model spec") -> ArchEntry:
    """The entry registered (or offered as a plugin) as ``name``; a :class:`DarkcError` listing valid names
    otherwise."""
    return resolve_arch(name, where)


def get_adapter(spec: dict, where: str = "model spec") -> Adapter:
    """The adapter of the architecture ``spec`` names (its entry's, else the generic :class:`Adapter`)."""
    return resolve_arch(spec, where).adapter(spec)


def size_multiple_of(spec: dict, model: "nn.Module | None" = None) -> int:
    """Packed H and W multiple of the model ``spec`` describes: declared by its arch, else in ``model.json``."""
    return get_adapter(spec).size_multiple(model)

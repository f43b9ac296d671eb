"""One interface for every stage: ``run(artifact, out_dir, config) -> report``.

Each stage module here (``prune``, ``distill``, ``quantize``, ``export``, ``bench``, ``eval``) holds a ``Config``
dataclass and a ``run`` that calls the stage's implementation (:mod:`darkc.compress`, :mod:`darkc.export`,
:mod:`darkc.latency`, :mod:`darkc.evaluate`) and writes ``out_dir/<stage>_report.md`` and ``.json``::

    from darkc.stages import config_of, stage
    report = stage("prune").run("teacher", "runs/pruned", config_of("prune", ratio=0.5, evaluate=False))

The dataclass is the one description of a stage's options: ``darkc <stage>``'s options (:func:`cli_options`)
and the keys of a ``darkc pipeline`` recipe table (:func:`recipe_keys`, :func:`config_from_table`) are
generated from its fields (type, default, ``help`` in the field's metadata), and the command recorded in
provenance is written from it (:func:`darkc.provenance.command_line`). Field metadata:

- ``help``: the option's help text;
- ``choices``: allowed values (a click Choice; checked in recipes too);
- ``flag``: the CLI flag when it is not ``--field-name`` (``--no-eval`` for ``evaluate``); a bool field that
  defaults to True gets a ``--no-...`` flag;
- ``aliases``: further CLI spellings of the same option (e.g. ``--target`` for ``targets``).
"""
from __future__ import annotations

import dataclasses
import importlib
import os
import types
import typing
from pathlib import Path
from typing import Any, Callable

import click

from darkc.errors import DarkcError

#: The stages, in the order ``darkc pipeline`` chains them.
STAGES = ("prune", "distill", "quantize", "export", "bench", "eval")


def stage(name: str) -> types.ModuleType:
    """The stage module ``darkc.stages.<name>`` (``Config``, ``run``, ``summary``)."""
    if name not in STAGES:
        raise DarkcError(f"unknown stage {name!r}; use one of {', '.join(STAGES)}")
    return importlib.import_module(f"darkc.stages.{name if name != 'eval' else 'evaluate'}")


def config_of(name: str, **values) -> Any:
    """``stage(name).Config(**values)``."""
    return stage(name).Config(**values)


# ---------------------------------------------------------------- fields
@dataclasses.dataclass(frozen=True)
class Option:
    """One field of a stage ``Config`` as the CLI and recipes see it."""

    name: str
    base: type                   # int, float, str or bool (of each element for a list)
    many: bool                   # a list (comma-separated on the command line)
    default: Any
    flag: str                    # --name, or --no-name for a bool that defaults to True
    aliases: tuple[str, ...]
    help: str
    choices: tuple[str, ...] | None


def options(cls) -> list[Option]:
    """The fields of a stage ``Config`` with their resolved types, in order."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if typing.get_origin(hint) in (typing.Union, types.UnionType):
            hint = next(a for a in typing.get_args(hint) if a is not type(None))
        many = typing.get_origin(hint) is list
        base = typing.get_args(hint)[0] if many else hint
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None
        flag = f.metadata.get("flag") or (("--no-" if base is bool and default is True else "--")
                                          + f.name.replace("_", "-"))
        choices = f.metadata.get("choices")
        out.append(Option(f.name, base, many, default, flag, tuple(f.metadata.get("aliases", ())),
                          f.metadata.get("help", ""), tuple(choices) if choices else None))
    return out


def _split(text: str, base: type, flag: str) -> list:
    try:
        return [base(v.strip()) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise DarkcError(f"{flag} must be comma-separated {base.__name__} values, got {text!r}") from None


# ---------------------------------------------------------------- CLI
def cli_options(cls) -> Callable:
    """A decorator adding one click option per field of ``cls`` (lists as comma-separated values)."""
    def decorate(fn):
        for o in reversed(options(cls)):
            names = [o.flag, *o.aliases, o.name]
            if o.base is bool and not o.many:
                fn = click.option(*names, is_flag=True, default=False, help=o.help)(fn)
            elif o.many:
                shown = f"  [default: {','.join(map(str, o.default))}]" if o.default else ""
                fn = click.option(*names, type=str, default=None, help=o.help + shown)(fn)
            else:
                kind = click.Choice(o.choices) if o.choices else o.base
                fn = click.option(*names, type=kind, default=o.default, show_default=o.default is not None,
                                  help=o.help)(fn)
        return fn
    return decorate


def config_from_cli(cls, params: dict) -> Any:
    """The ``Config`` for the values click parsed (``params``: field name -> value; other keys ignored)."""
    values = {}
    for o in options(cls):
        if o.name not in params:
            continue
        value = params[o.name]
        if o.base is bool and not o.many:
            value = (not value) if o.default is True else bool(value)
        elif o.many:
            if value is None:
                continue
            value = _split(value, o.base, o.flag)
        values[o.name] = value
    return cls(**values)


# ---------------------------------------------------------------- recipes
def recipe_keys(cls) -> dict[str, Option]:
    """Keys a recipe table of this stage may set: field name -> :class:`Option`."""
    return {o.name: o for o in options(cls)}


def check_value(cls, key: str, value, where: str, table: str) -> None:
    """A one-line DarkcError naming ``where`` (file:line), ``[table] key`` and the fix when ``key`` is not a
    field of ``cls`` or ``value`` does not fit it."""
    keys = recipe_keys(cls)
    if key not in keys:
        raise DarkcError(f"{where}: unknown key '{key}' in [{table}]; valid keys: {', '.join(keys)}")
    o = keys[key]

    def fits(v) -> bool:
        if o.base is bool:
            return isinstance(v, bool)
        return not isinstance(v, bool) and (isinstance(v, o.base) or (o.base is float and isinstance(v, int)))

    if not ((isinstance(value, list) and all(fits(v) for v in value)) if o.many else fits(value)):
        want = f"a list of {o.base.__name__}" if o.many else f"a {o.base.__name__}"
        raise DarkcError(f"{where}: [{table}] {key} = {value!r} must be {want}")
    bad = [v for v in (value if o.many else [value]) if o.choices and v not in o.choices]
    if bad:
        raise DarkcError(f"{where}: [{table}] {key} {bad[0]!r} is unknown; use one of {', '.join(o.choices)}")


def config_from_table(cls, table: dict, overrides: dict | None = None) -> Any:
    """The ``Config`` of a checked recipe table; ``overrides`` fill the keys the table does not set."""
    keys = recipe_keys(cls)
    values = {**(overrides or {}), **{k: v for k, v in table.items() if k in keys}}
    return cls(**{k: float(v) if keys[k].base is float and isinstance(v, int) else v for k, v in values.items()})


# ---------------------------------------------------------------- reports
def report_paths(out_dir: str | os.PathLike, name: str) -> tuple[Path, Path]:
    """``(out_dir/<name>_report.md, out_dir/<name>_report.json)``."""
    out_dir = Path(out_dir)
    return out_dir / f"{name}_report.md", out_dir / f"{name}_report.json"


def write_report(out_dir: str | os.PathLike, name: str, report: dict, markdown: str) -> dict:
    """Write a stage's report (paths made portable, see :mod:`darkc.provenance`) atomically; returns the report
    with ``report_files`` added."""
    from darkc.provenance import portable, write_records

    md, js = report_paths(out_dir, name)
    write_records(md.with_suffix(""), report, portable(markdown).rstrip() + "\n")
    return {**report, "report_files": [str(md), str(js)]}


def options_of(config) -> dict:
    """The config as ``{field: value}`` in field order, for reports."""
    return {o.name: getattr(config, o.name) for o in options(type(config))}


def command(name: str, artifact, out, config) -> str:
    """The ``darkc <stage>`` command that makes ``out`` from ``artifact`` with ``config`` (fields at their
    default left out), as recorded in provenance."""
    from darkc.provenance import command_line

    opts = {}
    for o in options(type(config)):
        value = getattr(config, o.name)
        if value != o.default:
            opts[o.flag] = True if o.base is bool and not o.many else value
    return command_line(name, artifact, opts, out)

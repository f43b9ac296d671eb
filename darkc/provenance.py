"""Portable provenance: commands and paths in model.json, manifests and reports that any reader can rerun.

A record written on one machine must not name that machine's folders. :func:`portable` rewrites every
absolute path inside a JSON-like record (dicts, lists, strings, commands included)::

    /work/main/darkc/models/pretrained/teacher        -> teacher              (shipped models by name)
    /work/main/darkc/models/pretrained/teacher/x.json -> teacher/x.json
    /root/runs/sid-mobile/01-prune.partial            -> RUN/01-prune         (inside the run folder, see run_root)
    /root/.cache/darkc/bench/exports/ab12/model.onnx  -> ~/.cache/darkc/bench/exports/ab12/model.onnx
    /tmp/darkc-export-bench-x1/art/model.onnx         -> $TMPDIR/darkc-export-bench-x1/art/model.onnx
    /work/main/benchmarks/results/x.json              -> benchmarks/results/x.json   (the working directory)
    /home/ann/data/SID                                -> ~/data/SID

Paths elsewhere (``/data/SID``) are kept: they name no user and no checkout. A stage run by ``darkc pipeline``
records its folder relative to the run (``RUN/01-prune``); the pipeline sets that root with :func:`run_root`
around its stages, and a ``.partial`` work folder is recorded under the name it is renamed to.
"""
from __future__ import annotations

import contextlib
import contextvars
import os
import re
import tempfile
from pathlib import Path
from typing import Iterator

#: What stands for the run folder of ``darkc pipeline`` in its records.
RUN = "RUN"
_run: contextvars.ContextVar[Path | None] = contextvars.ContextVar("darkc_run_root", default=None)
# a path ends where a path character is not: "/a/b.partial)" ends before ")"
_END = r"(?=$|[\s'\"`),;:\]}])"
_START = r"(?<![\w.~/$-])"      # and starts where one is not: "data/root/x" holds no "/root"


@contextlib.contextmanager
def run_root(path: str | os.PathLike) -> Iterator[None]:
    """Within the block, :func:`portable` records paths inside ``path`` as ``RUN/...``."""
    token = _run.set(Path(path).absolute())
    try:
        yield
    finally:
        _run.reset(token)


#: Where shipped models live: darkc.models.pretrained.PRETRAINED_DIR (spelled out, not imported: darkc.models imports
#: this module, and layers point one way)
PRETRAINED_DIR = Path(__file__).parent / "models" / "pretrained"


def _forms(path: Path) -> list[str]:
    """The spellings of a folder that may appear in a record: as given and with symlinks resolved."""
    forms = {str(path.absolute())}
    with contextlib.suppress(OSError):
        forms.add(str(path.resolve()))
    return [f.rstrip("/") for f in forms if f.rstrip("/")]


def _rules(run: Path | None) -> list[tuple[str, str]]:
    """``(absolute folder, replacement)``, most specific first; a replacement "" makes the path relative."""
    rules: list[tuple[str, str]] = []
    if run is not None:
        rules += [(f, RUN) for f in _forms(run)]
    rules += [(f, "") for f in _forms(PRETRAINED_DIR)]
    home = Path.home()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or home / ".cache")
    rules += [(f, "~/.cache") for f in _forms(cache)]
    rules += [(f, "$TMPDIR") for f in _forms(Path(tempfile.gettempdir()))]
    cwd = Path.cwd()
    if cwd != home and len(cwd.parts) > 1:
        rules += [(f, "") for f in _forms(cwd)]
    rules += [(f, "~") for f in _forms(home) if f != "/"]
    return sorted(rules, key=lambda r: -len(r[0]))


def portable_text(text: str, run: str | os.PathLike | None = None) -> str:
    """``text`` with every absolute path under a known folder rewritten (see the module docstring)."""
    root = Path(run).absolute() if run is not None else _run.get()
    rules = _rules(root)
    pattern = re.compile("|".join(f"{_START}({re.escape(prefix)})(/[^\\s'\"`),;:\\]}}]*)?{_END}"
                                  for prefix, _ in rules))

    def swap(m: re.Match) -> str:
        for i, (prefix, repl) in enumerate(rules):
            if m.group(2 * i + 1) is not None:
                rest = m.group(2 * i + 2) or ""
                if repl == RUN:
                    rest = re.sub(r"^(/[^/]+)\.partial(?=/|$)", r"\1", rest)
                if repl:
                    return repl + rest
                return rest[1:] or "."
        return m.group(0)

    return pattern.sub(swap, text)


def portable(record, run: str | os.PathLike | None = None):
    """A copy of a JSON-like record (dict / list / str / numbers) with :func:`portable_text` on every string,
    dict keys included; ``run`` (default: the :func:`run_root` in effect) is recorded as ``RUN``."""
    if isinstance(record, str):
        return portable_text(record, run)
    if isinstance(record, os.PathLike):
        return portable_text(os.fspath(record), run)
    if isinstance(record, dict):
        return {portable(k, run) if isinstance(k, str) else k: portable(v, run) for k, v in record.items()}
    if isinstance(record, list):
        return [portable(v, run) for v in record]
    if isinstance(record, tuple):
        return tuple(portable(v, run) for v in record)
    return record


def write_records(prefix: str | os.PathLike, data: dict, markdown: str) -> None:
    """A record pair, a benchmark's or a stage's report: ``<prefix>.json`` (``data`` made :func:`portable`, values
    JSON does not know written as text) and ``<prefix>.md``, each written atomically (a temporary file, then a
    rename), the folder created if needed."""
    import json

    from .errors import atomic_path

    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(prefix.with_suffix(".json")) as tmp:
        Path(tmp).write_text(json.dumps(portable(data), indent=1, default=str) + "\n")
    with atomic_path(prefix.with_suffix(".md")) as tmp:
        Path(tmp).write_text(markdown)


def command_line(stage: str, model, options: dict, out) -> str:
    """The shell command ``darkc STAGE --model MODEL --opt value ... -o OUT`` recorded in provenance, the one way
    every stage writes it. ``options`` are keyed by flag (``--no-eval``) or by name (``eval_limit`` ->
    ``--eval-limit``); None and False are left out, True is a bare flag, lists and tuples are comma-joined."""
    import shlex

    args = ["darkc", stage, "--model", str(model)]
    for key, value in options.items():
        if value is None or value is False:
            continue
        flag = key if key.startswith("-") else "--" + key.replace("_", "-")
        if isinstance(value, (list, tuple)):
            value = ",".join(map(str, value))
        args += [flag] if value is True else [flag, str(value)]
    return shlex.join(args + ["-o", str(out)])

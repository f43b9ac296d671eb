"""Layering hazards: an import cycle between darkc modules (module level or inside a function), a ``_private``
name imported from another module, and a shared constant defined twice. Read from the source with ``ast``,
nothing is imported."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "darkc"


def _modules() -> dict[str, Path]:
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return mods


def _imports(name: str, path: Path, mods: dict[str, Path]):
    """``(target module, imported names, line)`` for every import statement anywhere in the module."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                base = base[:len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                yield (sub, [], node.lineno) if sub in mods else (module, [alias.name], node.lineno)


def _owner(target: str, mods: dict[str, Path]) -> str | None:
    """The darkc module an import resolves to (``darkc.export.onnx.x`` -> ``darkc.export.onnx``)."""
    while target and target not in mods:
        target = target.rpartition(".")[0]
    return target or None


def import_graph(mods: dict[str, Path] | None = None) -> dict[str, set[str]]:
    mods = mods if mods is not None else _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        for target, _, _ in _imports(name, path, mods):
            owner = _owner(target, mods)
            if owner is not None and owner != name:
                graph[name].add(owner)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, on, stack, found, counter = {}, {}, set(), [], [], [0]

    def visit(root):
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_function_level_and_relative_imports():
    graph = import_graph()
    assert "darkc.errors" in graph["darkc.cli"]                       # from .errors import DarkcError
    assert "darkc.export.onnx_int8" in graph["darkc.export.onnx"]    # inside export_onnx()


def test_no_import_cycle_between_darkc_modules():
    found = cycles(import_graph())
    assert not found, f"import cycles (module or function level): {found}"


def test_no_private_name_imported_from_another_module():
    mods = _modules()
    files = {**mods, **{f"benchmarks.{p.stem}": p for p in (ROOT / "benchmarks").glob("*.py")}}
    bad = []
    for name, path in files.items():
        for target, names, line in _imports(name, path, mods):
            owner = _owner(target, mods)
            if owner is None or owner == name:
                continue
            bad += [f"{path.relative_to(ROOT)}:{line}: {n} from {owner}" for n in names
                    if n.startswith("_") and not n.startswith("__")]
    assert not bad, "private names imported across modules:\n" + "\n".join(bad)


def test_shared_constants_are_defined_once():
    """RAW_EXTS lives in darkc.data.files, the PSNR formula (a log10 of range^2 / MSE) in darkc.metrics."""
    where = {"RAW_EXTS": [], "psnr formula": []}
    for name, path in _modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any(isinstance(t, ast.Name) and t.id == "RAW_EXTS" for t in targets):
                    where["RAW_EXTS"].append(name)
            if isinstance(node, ast.Call) and ast.unparse(node.func) in ("np.log10", "math.log10") and \
                    "/" in ast.unparse(node.args[0]) and "mse" in ast.unparse(node.args[0]):
                where["psnr formula"].append(name)
    assert where == {"RAW_EXTS": ["darkc.data.files"], "psnr formula": ["darkc.metrics"]}

"""``darkc pipeline``: one recipe from teacher to phone-ready model, with its report.

A recipe (TOML) names the teacher and configures the stages, which always run in this order:

    prune -> distill -> quantize -> export -> bench -> eval

``prune`` (with its fine-tuning) makes the student's initialisation, ``distill`` trains it against the teacher,
``quantize`` writes the INT8 ONNX/TFLite files, ``export`` the float ones, ``bench`` measures every model on
the recipe's devices, ``eval`` scores every model on the reference validation set. A stage whose table is
absent is skipped (``distill`` then starts from scratch widths or the pruned model is the student; without
``prune`` the student needs ``student_widths``). Each stage writes its own folder ``RUN/NN-stage/`` and,
last, a ``manifest.json`` (inputs, options, the equivalent command, versions, metrics, output hashes).

Re-running the recipe skips every stage whose manifest records the same key (its recipe table, the key of the
stage before it and the teacher's weights hash); a stage without a manifest (interrupted, or deleted) runs
again, a distillation left half-way resumes from its checkpoints, and every stage after a re-run stage runs
again. ``--from STAGE`` re-runs from that stage on. The run's report (``report.md``, ``report.json``,
``report.png``: quality vs latency per device) is written at the end.

Recipe keys (all optional except ``pipeline.teacher``)::

    [pipeline]
    teacher = "teacher"                 # shipped name or checkpoint folder
    name = "sid-mobile"
    [prune]      ratio | target_macs, importance, scope, round_to, steps, finetune_iters, batch_size, patch, lr, rescale
    [distill]    init ("pruned" | "scratch"), student_widths, kd, gt_weight, feature_weight, beta, chroma_weight, steps,
                 batch_size, patch, lr, data, threads
    [quantize]   targets (["onnx", "tflite"]), input_size, calib, calib_method, samples
    [export]     targets, precisions (["fp32", "fp16"]), input_size
    [bench]      devices (["host", ...]), size ("1920x1080"), threads, runs
    [eval]       limit, models (["teacher", "pruned", "student", "onnx-int8", ...])
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
import shlex
import shutil
import time
import uuid
from pathlib import Path

from darkc.errors import DarkcError, atomic_path, replace_dir, sha256_file
from darkc.provenance import portable, run_root

STAGES = ("prune", "distill", "quantize", "export", "bench", "eval")
MANIFEST = "manifest.json"
REPORT = "report"

#: Allowed keys per recipe table, with their types (a tuple = any of these).
SCHEMA: dict[str, dict[str, type | tuple]] = {
    "pipeline": {"teacher": str, "name": str, "seed": int, "threads": int},
    "prune": {"ratio": float, "target_macs": str, "importance": str, "scope": str, "round_to": int, "steps": int,
              "finetune_iters": int, "batch_size": int, "patch": int, "lr": float, "data": str, "rescale": bool},
    "distill": {"init": str, "student_widths": list, "kd": str, "gt_weight": float, "feature_weight": float,
                "beta": float, "chroma_weight": float, "steps": int, "batch_size": int, "patch": int, "lr": float, "data": str,
                "val_every": int, "ckpt_every": int},
    "quantize": {"targets": list, "input_size": str, "calib": str, "calib_method": str, "samples": int},
    "export": {"targets": list, "precisions": list, "input_size": str},
    "bench": {"devices": list, "size": str, "threads": int, "runs": int},
    "eval": {"limit": int, "models": list},
}
TARGET_SUFFIX = {"onnx": ".onnx", "tflite": ".tflite"}


# ---------------------------------------------------------------- recipe
def _line_of(text: str, table: str, key: str | None = None) -> int | None:
    """1-based line of ``[table]`` (or of ``key`` inside it) in the recipe text, for error messages."""
    current = None
    for no, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        m = re.match(r"^\[\s*([^\]]+?)\s*\]", s)
        if m:
            current = m.group(1)
            if key is None and current == table:
                return no
            continue
        if current == table and key is not None and re.match(rf"^\"?{re.escape(key)}\"?\s*=", s):
            return no
    return None


def load_recipe(path: str | os.PathLike) -> dict:
    """Read and check a recipe; any unknown table/key, wrong type or bad value is a DarkcError with its line."""
    import tomllib

    path = Path(path)
    if not path.is_file():
        raise DarkcError(f"recipe {path} does not exist; pass a TOML recipe such as recipes/sid-mobile.toml")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DarkcError(f"recipe {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8 TOML") from None
    try:
        recipe = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DarkcError(f"recipe {path} is not valid TOML: {exc}") from None

    def where(table, key=None):
        line = _line_of(text, table, key)
        return f"{path}:{line}" if line else str(path)

    for table, body in recipe.items():
        if table not in SCHEMA:
            raise DarkcError(f"{where(table)}: unknown stage/table [{table}]; use {', '.join(SCHEMA)}")
        if not isinstance(body, dict):
            raise DarkcError(f"{where(table)}: '{table}' must be a table [{table}]")
        for key, value in body.items():
            if key not in SCHEMA[table]:
                raise DarkcError(f"{where(table, key)}: unknown key '{key}' in [{table}]; "
                                 f"valid keys: {', '.join(SCHEMA[table])}")
            want = SCHEMA[table][key]
            if want is bool:
                ok = isinstance(value, bool)
            else:
                ok = isinstance(value, want) and not isinstance(value, bool) or (
                    want is float and isinstance(value, int) and not isinstance(value, bool))
            if not ok:
                raise DarkcError(f"{where(table, key)}: [{table}] {key} = {value!r} must be a {want.__name__}")
    pipe = recipe.get("pipeline", {})
    if "teacher" not in pipe:
        raise DarkcError(f"{where('pipeline') if 'pipeline' in recipe else path}: the recipe needs "
                         f"[pipeline] teacher = \"teacher\" (a shipped name or checkpoint folder)")
    _check_values(recipe, where)
    recipe["_path"] = str(path)
    return recipe


def _check_values(recipe: dict, where) -> None:
    from darkc.compress.distill import KD_KINDS

    p = recipe.get("prune")
    if p is not None:
        if ("ratio" in p) == ("target_macs" in p):
            raise DarkcError(f"{where('prune')}: [prune] needs exactly one of ratio or target_macs")
        if "ratio" in p and not 0 < p["ratio"] < 1:
            raise DarkcError(f"{where('prune', 'ratio')}: [prune] ratio {p['ratio']} must lie in (0, 1)")
    d = recipe.get("distill")
    if d is not None:
        init = d.get("init", "pruned" if p is not None else "scratch")
        if init not in ("pruned", "scratch"):
            raise DarkcError(f"{where('distill', 'init')}: [distill] init must be 'pruned' or 'scratch'")
        if init == "pruned" and p is None:
            raise DarkcError(f"{where('distill', 'init')}: [distill] init = 'pruned' needs a [prune] table")
        if init == "scratch" and "student_widths" not in d:
            raise DarkcError(f"{where('distill')}: [distill] from scratch needs student_widths = [...]")
        bad = [k for k in d.get("kd", "output").split(",") if k.strip() not in KD_KINDS]
        if bad:
            raise DarkcError(f"{where('distill', 'kd')}: [distill] kd {d['kd']!r}: use output and/or features")
    for table in ("quantize", "export"):
        t = recipe.get(table)
        if t is not None:
            bad = [x for x in t.get("targets", ["onnx"]) if x not in TARGET_SUFFIX]
            if bad:
                raise DarkcError(f"{where(table, 'targets')}: [{table}] targets {bad} unknown; use onnx, tflite")
    e = recipe.get("export")
    if e is not None:
        bad = [x for x in e.get("precisions", ["fp32"]) if x not in ("fp32", "fp16")]
        if bad:
            raise DarkcError(f"{where('export', 'precisions')}: [export] precisions {bad}: use fp32/fp16 "
                             f"(INT8 files come from [quantize])")


def _check_feasible(recipe: dict) -> dict:
    """Teacher present and loadable; a MACs budget between the smallest prunable model and the teacher."""
    from darkc.models import load_checkpoint, resolve_model_ref

    teacher = recipe["pipeline"]["teacher"]
    where = f"{recipe['_path']}:{_line_of(Path(recipe['_path']).read_text(), 'pipeline', 'teacher') or ''}"
    try:
        kind, path = resolve_model_ref(teacher)
    except DarkcError as exc:
        raise DarkcError(f"{where}: teacher {teacher!r}: {exc}") from None
    if kind not in ("pretrained", "checkpoint"):
        raise DarkcError(f"{where}: teacher {teacher!r} is a {kind} file; the pipeline needs a torch checkpoint")
    model, spec = load_checkpoint(path)
    p = recipe.get("prune") or {}
    if "target_macs" in p:
        from darkc.compress.prune import packed_shape, parse_budget
        from darkc.models import build_model, count_macs, get_adapter, normalize_spec

        macs, res = parse_budget(p["target_macs"])
        full = count_macs(model, packed_shape(spec["cfa"], res, spec["in_channels"]))
        rt = p.get("round_to", 8)
        floor = {n: min(rt, w) for n, w in get_adapter(spec).widths(model).items()}
        smallest = build_model(normalize_spec({**{k: v for k, v in spec.items() if k not in ("channels", "provenance")},
                                               "channels": floor}))
        least = count_macs(smallest, packed_shape(spec["cfa"], res, spec["in_channels"]))
        if not least <= macs <= full:
            line = _line_of(Path(recipe["_path"]).read_text(), "prune", "target_macs")
            raise DarkcError(f"{recipe['_path']}:{line}: [prune] target_macs {p['target_macs']} is impossible: the "
                             f"teacher needs {full / 1e9:.3g}G and every layer at {rt} channels still needs "
                             f"{least / 1e9:.3g}G at {res[0]}x{res[1]}")
    from darkc.models import io_kind

    output, noise = io_kind(spec)
    if output == "raw" and (recipe.get("distill") or {}).get("chroma_weight"):
        line = _line_of(Path(recipe["_path"]).read_text(), "distill", "chroma_weight")
        raise DarkcError(f"{recipe['_path']}:{line}: [distill] chroma_weight compares RGB outputs but teacher "
                         f"{teacher!r} outputs raw (its colour comes from each file's own matrix); remove the key")
    return {"kind": kind, "path": str(path), "sha256": sha256_file(Path(path) / "model.safetensors"),
            "cfa": spec["cfa"], "output": output, "noise_input": noise}


# ---------------------------------------------------------------- manifests
def _hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): sha256_file(p) for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != MANIFEST and "train_state" not in p.name
            and not any(part in ("best", "last") for part in p.relative_to(folder).parts)}


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("darkc", "torch", "torch-pruning", "onnx", "onnxruntime", "ai-edge-litert", "litert-torch",
                "ai-edge-quantizer", "ethos-u-vela"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def _key(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _read_manifest(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------- stages
class _Run:
    def __init__(self, recipe: dict, out: Path, teacher: dict, progress: bool):
        self.recipe, self.out, self.teacher, self.progress = recipe, out, teacher, progress
        self.stages = [s for s in STAGES if s in recipe]
        self.dirs = {s: out / f"{i + 1:02d}-{s}" for i, s in enumerate(self.stages)}
        self.opts = {s: dict(recipe.get(s, {})) for s in STAGES}
        pipe = recipe["pipeline"]
        self.seed, self.threads = pipe.get("seed", 0), pipe.get("threads")

    # the models each stage produces, for bench/eval: name -> path
    def models(self) -> dict[str, str]:
        found = {"teacher": self.recipe["pipeline"]["teacher"]}
        if "prune" in self.dirs and (self.dirs["prune"] / "model.json").is_file():
            found["pruned"] = str(self.dirs["prune"])
        if "distill" in self.dirs and (self.dirs["distill"] / "model.json").is_file():
            found["student"] = str(self.dirs["distill"])
        for stage in ("quantize", "export"):
            if stage in self.dirs:
                for f in sorted(self.dirs[stage].iterdir()) if self.dirs[stage].is_dir() else []:
                    if f.suffix in (".onnx", ".tflite"):
                        found[f"{f.suffix[1:]}-{f.stem.split('-', 1)[-1] if '-' in f.stem else 'fp32'}"] = str(f)
        return found

    def student(self) -> str:
        if "distill" in self.dirs:
            return str(self.dirs["distill"])
        if "prune" in self.dirs:
            return str(self.dirs["prune"])
        return self.recipe["pipeline"]["teacher"]

    def run_prune(self, tmp: Path) -> dict:
        from darkc.compress.prune import prune

        o = self.opts["prune"]
        rep = prune(self.teacher["path"], tmp, seed=self.seed, evaluate=False, latency_size=None,
                    progress=self.progress, **o)
        return {"params": rep["after"]["params"], "macs": rep["after"]["macs"], "command": rep["command"]}

    def run_distill(self, tmp: Path) -> dict:
        from darkc.compress.distill import distill

        o = dict(self.opts["distill"])
        init = o.pop("init", "pruned" if "prune" in self.dirs else "scratch")
        if init == "pruned":
            o["student"] = str(self.dirs["prune"])
        resume = (tmp / "train_state.json").is_file()
        rep = distill(self.teacher["path"], tmp, seed=self.seed, threads=self.threads, evaluate=False,
                      latency_size=None, progress=self.progress, resume=resume, **o)
        return {"params": rep["student"]["params"], "macs": rep["student"]["macs"], "command": rep["command"],
                "wall_s": rep["wall_s"], "best": rep["best"]}

    def _exports(self, tmp: Path, targets, precisions, opts: dict) -> dict:
        from darkc.export import export

        files = {}
        for target in targets:
            for precision in precisions:
                name = f"model-{precision}{TARGET_SUFFIX[target]}"
                rep = export(self.student(), tmp / name, target=target, precision=precision, **opts)
                files[name] = {"parity": rep.get("parity"), "size_bytes": (tmp / name).stat().st_size}
        return {"files": files}

    def run_quantize(self, tmp: Path) -> dict:
        o = dict(self.opts["quantize"])
        targets = o.pop("targets", ["onnx", "tflite"])
        return self._exports(tmp, targets, ["int8"], o)

    def run_export(self, tmp: Path) -> dict:
        o = dict(self.opts["export"])
        targets, precisions = o.pop("targets", ["onnx", "tflite"]), o.pop("precisions", ["fp32"])
        return self._exports(tmp, targets, precisions, o)

    def run_bench(self, tmp: Path) -> dict:
        from darkc.latency import bench
        from darkc.latency.bench import bench_npus

        o = self.opts["bench"]
        results = {}
        for name, path in self.models().items():
            devices = _devices_for(path, o.get("devices", ["host"]))
            if not devices:
                continue
            npus = [d for d in devices if d.startswith("ethos-u")]
            others = [d for d in devices if d not in npus] or npus
            results[name] = bench(path, devices=others, size=o.get("size", "1920x1080"),
                                  threads=[o.get("threads", 1)], runs=o.get("runs", 5))
            if others is not npus:
                # an Ethos-U device no tile of which fits its SRAM is listed with the reason, not fatal
                entries, results[name]["npu_unfit"] = bench_npus(path, npus, o.get("size", "1920x1080"))
                results[name]["devices"].update(entries)
        with atomic_path(tmp / "bench.json") as t:
            Path(t).write_text(json.dumps(portable(results, self.out), indent=1, default=str))
        return {"models": list(results)}

    def run_eval(self, tmp: Path) -> dict:
        from darkc.evaluate import evaluate

        o = self.opts["eval"]
        models = self.models()
        chosen = o.get("models") or list(models)
        unknown = [m for m in chosen if m not in models]
        if unknown:
            raise DarkcError(f"[eval] models {unknown} are not produced by this recipe; choose from {list(models)}")
        results = {}
        for name in chosen:
            res = evaluate(models[name], "synthetic", limit=o.get("limit"), threads=self.threads,
                           progress=self.progress)
            results[name] = {k: res[k] for k in ("psnr", "ssim", "deltae", "checker", "raw_psnr", "per_ratio", "n") if k in res}
        with atomic_path(tmp / "eval.json") as t:
            Path(t).write_text(json.dumps(results, indent=1))
        return {"models": {k: {"psnr": v["psnr"], "ssim": v["ssim"]} for k, v in results.items()}}


def _devices_for(path: str, devices: list[str]) -> list[str]:
    """NPU targets only take integer TFLite files; ARM CPU profiles and host take any exported file."""
    is_int8_tflite = path.endswith("-int8.tflite")
    out = []
    for d in devices:
        if d.startswith("ethos-u") and not is_int8_tflite:
            continue
        out.append(d)
    return out


def run_pipeline(recipe_path, out_dir, *, from_stage: str | None = None, progress: bool = True) -> dict:
    """Run (or resume) a recipe into ``out_dir``; returns ``{stage: 'ran' | 'skipped'}`` plus the report."""
    recipe = load_recipe(recipe_path)
    if from_stage is not None and from_stage not in STAGES:
        raise DarkcError(f"--from {from_stage!r} is not a stage; use one of {', '.join(STAGES)}")
    if from_stage is not None and from_stage not in recipe:
        raise DarkcError(f"--from {from_stage}: the recipe {recipe_path} has no [{from_stage}] table")
    teacher = _check_feasible(recipe)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise DarkcError(f"-o {out} exists and is not a directory; pick a run folder")
    out.mkdir(parents=True, exist_ok=True)
    run = _Run(recipe, out, teacher, progress)
    status: dict[str, str] = {}
    prev_key = _key(teacher["sha256"], recipe["pipeline"])
    forced = False
    for stage in run.stages:
        folder = run.dirs[stage]
        key = _key(prev_key, stage, recipe[stage])
        forced = forced or stage == from_stage
        manifest = _read_manifest(folder)
        if manifest and manifest.get("key") == key and not forced:
            status[stage] = "skipped"
            prev_key = _key(key, manifest.get("run_id"))
            continue
        t0 = time.time()
        work = folder.with_name(folder.name + ".partial")
        resumable = (stage == "distill" and (work / "train_state.json").is_file()
                     and (work / ".key").is_file() and (work / ".key").read_text() == key)
        if work.exists() and not resumable:
            shutil.rmtree(work)
        work.mkdir(parents=True, exist_ok=True)
        (work / ".key").write_text(key)
        with run_root(out):                     # records inside the run name it RUN (darkc.provenance)
            metrics = getattr(run, f"run_{stage}")(work)
        (work / ".key").unlink(missing_ok=True)
        run_id = uuid.uuid4().hex
        manifest = {"stage": stage, "key": key, "run_id": run_id, "recipe": recipe["_path"], "options": recipe[stage],
                    "teacher": teacher, "command": f"darkc pipeline {shlex.quote(recipe['_path'])} -o "
                                                     f"{shlex.quote(str(out))}"
                                                     + (f" --from {stage}" if stage == from_stage else ""),
                    "metrics": metrics, "versions": _versions(), "seconds": time.time() - t0,
                    "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                    "outputs": _hashes(work)}
        with atomic_path(work / MANIFEST) as t:
            Path(t).write_text(json.dumps(portable(manifest, out), indent=1, default=str))
        replace_dir(work, folder)      # a kill here leaves the previous stage folder or the new one, whole
        status[stage] = "ran"
        prev_key = _key(key, run_id)
    report = write_report(run)
    return {"stages": status, "report": report}


# ---------------------------------------------------------------- report
def write_report(run: _Run) -> dict:
    """Collect MACs, params, eval and bench results of every model into report.md/.json/.png in the run."""
    models = run.models()
    evals = _load_json(run.dirs.get("eval"), "eval.json")
    benches = _load_json(run.dirs.get("bench"), "bench.json")
    rows = []
    for name, path in models.items():
        row = {"model": name, "path": path}
        if name in evals:
            row.update(psnr=evals[name]["psnr"], ssim=evals[name]["ssim"])
        row["latency_ms"] = {}
        bench_entry = benches.get(name) if isinstance(benches.get(name), dict) else {}
        if bench_entry.get("graph", {}).get("macs"):
            row["macs"] = bench_entry["graph"]["macs"]
        if bench_entry.get("resolution", {}).get("raw"):
            row["resolution"] = bench_entry["resolution"]["raw"]      # what was run: padded to the size multiple
        if bench_entry.get("devices"):
            row["runtime"] = _runtime_label(bench_entry["devices"])
        row["estimated"] = {}
        for dev, entry in (benches.get(name) or {}).get("devices", {}).items() if isinstance(benches.get(name),
                                                                                            dict) else []:
            if isinstance(entry, dict) and entry.get("latency_ms") is not None:
                row["latency_ms"][dev] = entry["latency_ms"]
                row["estimated"][dev] = bool(entry.get("estimated"))
        rows.append(row)
    report = portable({"recipe": run.recipe["_path"], "rows": rows,
                       "quality": {"source": str(run.dirs["eval"] / "eval.json") if "eval" in run.dirs else None,
                                   "data": "reference validation set (darkc eval --data synthetic)"},
                       "stages": {s: _read_manifest(d) and {k: _read_manifest(d)[k] for k in ("seconds", "finished",
                                                                                            "metrics")}
                                  for s, d in run.dirs.items()}}, run.out)
    report = {"run": portable(str(run.out)), **report}       # the folder itself, not "RUN"
    devices = sorted({d for r in rows for d in r["latency_ms"]}, key=lambda d: (d != "host", d))
    bench_opts = run.opts.get("bench", {})
    lines = [f"# darkc pipeline report: {Path(run.recipe['_path']).name}", "",
             f"Run folder `{portable(str(run.out))}` (`RUN` in the records); stages: {', '.join(run.stages)}. PSNR/SSIM "
             f"on the reference validation set (float sRGB vs LibRaw-rendered long exposure"
             + ("; these raw-output models' clean raw is rendered by LibRaw with each file's own colour first"
                if run.teacher.get("output") == "raw" else "")
             + "); latency as measured or estimated by `darkc bench` "
             "(each device's method is in `bench.json`: host = real runs, ARM = emulated instruction counts turned "
             "into time by a core profile, Ethos-U = Vela's estimate; none is a phone measurement).", "",
             f"Latency and MACs for one {_frame_size(rows, bench_opts)} raw frame, "
             f"{bench_opts.get('threads', 1)} thread(s); MACs: conv + transposed conv, from the graph; runtime: "
             f"what ran each model on the host and on the emulated ARM cores (Ethos-U: Vela).", "",
             "| model | runtime | GMACs | PSNR | SSIM | " + " | ".join(f"{d} ms" for d in devices) + " |",
             "|---|---|---|---|---|" + "---|" * len(devices)]
    for r in rows:
        macs = f"{r['macs'] / 1e9:.2f}" if r.get("macs") else "-"
        lines.append(f"| {r['model']} | {r.get('runtime', '-')} | {macs} | {r.get('psnr', float('nan')):.2f} | "
                     f"{r.get('ssim', float('nan')):.4f} | "
                     + " | ".join(f"{r['latency_ms'][d]:.1f}" if d in r["latency_ms"] else "-" for d in devices)
                     + " |")
    lines += ["", "![quality vs latency](report.png)", ""]
    for s, d in run.dirs.items():
        m = _read_manifest(d)
        if m:
            lines.append(f"- {s}: {m['seconds']:.0f} s, finished {m['finished']}")
    with atomic_path(run.out / f"{REPORT}.json") as t:
        Path(t).write_text(json.dumps(report, indent=1, default=str))
    with atomic_path(run.out / f"{REPORT}.md") as t:
        Path(t).write_text(portable("\n".join(lines), run.out) + "\n")
    _plot(report["rows"], run.out / f"{REPORT}.png")
    return report


def _runtime_label(devices: dict) -> str:
    """The runtime that ran a model on the host / ARM cores (bench.json's ``runtime``, e.g. "ONNX Runtime"), not
    its provider or architecture suffix; Ethos-U entries (Vela, compiled not run) are left out."""
    names = {str(e.get("runtime", "")).split(" (")[0].removesuffix(" aarch64").split(" CPU")[0]
             for e in devices.values() if isinstance(e, dict) and e.get("kind") != "npu" and e.get("runtime")}
    return " / ".join(sorted(n for n in names if n)) or "-"


def _frame_size(rows: list[dict], bench_opts: dict) -> str:
    """The raw frame size the bench ran (bench.json, padded to the models' size multiple) or the asked one."""
    sizes = sorted({r["resolution"] for r in rows if r.get("resolution")})
    if sizes:
        asked = bench_opts.get("size")
        padded = f" (the asked {asked}, padded to the size multiple)" if asked and [asked] != sizes else ""
        return " / ".join(sizes) + padded
    return bench_opts.get("size", "1920x1080")


def _load_json(folder: Path | None, name: str) -> dict:
    if folder is None or not (folder / name).is_file():
        return {}
    return json.loads((folder / name).read_text())


def _plot(rows: list[dict], png: Path) -> None:
    """Quality vs latency of every model on every device (see :mod:`darkc.latency.chart`); devices with one
    point go in a table under the chart."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from darkc.latency.chart import draw, lonely_table

    points = [{"model": r["model"], "device": dev, "latency_ms": ms, "psnr": r["psnr"],
               "estimated": r.get("estimated", {}).get(dev, dev != "host")}
              for r in rows if r.get("psnr") is not None for dev, ms in r["latency_ms"].items()]
    unscored = [r["model"] for r in rows if r.get("psnr") is None]
    fig = plt.figure(figsize=(9, 7.4))
    grid = fig.add_gridspec(2, 1, height_ratios=[4, 1.7])
    ax = fig.add_subplot(grid[0])
    lonely = draw(ax, points, quality="darkc eval on the reference validation set (the run's eval stage)") \
        if points else []
    if not points:
        ax.text(0.5, 0.5, "no model has both a PSNR and a latency", ha="center", transform=ax.transAxes)
    lonely_table(fig.add_subplot(grid[1]), lonely,
                 note=f"Not scored: {', '.join(unscored)}." if unscored else None)
    fig.suptitle("quality vs latency across pipeline stages", fontsize=10)
    fig.tight_layout()
    with atomic_path(png) as t:
        fig.savefig(t, dpi=110, format="png")
    plt.close(fig)


def redraw_report(folder: str | os.PathLike) -> Path:
    """Redraw ``report.png`` of a run (or of a folder holding its committed ``report.json``) from
    ``report.json``, without running anything; returns the PNG's path."""
    folder = Path(folder)
    report = _load_json(folder, f"{REPORT}.json")
    if not report.get("rows"):
        raise DarkcError(f"no {REPORT}.json with rows in {folder}: pass a pipeline run folder")
    png = folder / f"{REPORT}.png"
    _plot(report["rows"], png)
    return png

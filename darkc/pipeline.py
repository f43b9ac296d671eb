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

Recipe keys (all optional except ``pipeline.teacher``): a stage's table takes exactly the fields of its config
dataclass (``darkc.stages.<stage>.Config``, the same options as ``darkc <stage>``, see :func:`recipe_schema`),
plus what the chain itself decides::

    [pipeline]   teacher = "teacher" (shipped name or checkpoint folder), name, seed, threads
    [distill]    init = "pruned" | "scratch": start from the [prune] output (default when [prune] is there) or
                 from ``student_widths`` / ``student``
    [eval]       models = ["teacher", "pruned", "student", "onnx-int8", ...]: which of the run's models to score

Where a table leaves a key out, the stage's default applies, except :data:`CHAIN_DEFAULTS`: the chain's seed and
threads come from [pipeline], and prune/distill skip their own evaluation and host timing (the run's eval and
bench stages measure every model).
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
from darkc.stages import STAGES
from darkc.stages.export import SUFFIX

MANIFEST = "manifest.json"
REPORT = "report"
#: Keys the chain adds to a stage's table (not options of the stage itself), with their types.
CHAIN_KEYS: dict[str, dict[str, type]] = {"distill": {"init": str}, "eval": {"models": list}}
#: Values the chain gives a stage where its table is silent (see the module docstring).
CHAIN_DEFAULTS: dict[str, dict] = {"prune": {"evaluate": False, "latency_size": "none"},
                                   "distill": {"evaluate": False, "latency_size": "none"}}
PIPELINE_KEYS: dict[str, type] = {"teacher": str, "name": str, "seed": int, "threads": int}


def recipe_schema() -> dict[str, dict[str, type]]:
    """Allowed keys per recipe table with their types (a stage's list fields as ``list``), generated from the
    stage config dataclasses (:mod:`darkc.stages`) plus :data:`CHAIN_KEYS`."""
    from darkc.stages import recipe_keys, stage

    schema = {"pipeline": dict(PIPELINE_KEYS)}
    for name in STAGES:
        keys = {k: (list if o.many else o.base) for k, o in recipe_keys(stage(name).Config).items()}
        schema[name] = {**keys, **CHAIN_KEYS.get(name, {})}
    return schema


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

    from darkc.stages import check_value, stage

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

    tables = ("pipeline", *STAGES)
    for table, body in recipe.items():
        if table not in tables:
            raise DarkcError(f"{where(table)}: unknown stage/table [{table}]; use {', '.join(tables)}")
        if not isinstance(body, dict):
            raise DarkcError(f"{where(table)}: '{table}' must be a table [{table}]")
        own = PIPELINE_KEYS if table == "pipeline" else CHAIN_KEYS.get(table, {})
        for key, value in body.items():
            if key in own:
                want = own[key]
                if not isinstance(value, want) or isinstance(value, bool):
                    raise DarkcError(f"{where(table, key)}: [{table}] {key} = {value!r} must be a {want.__name__}")
            elif table == "pipeline":
                raise DarkcError(f"{where(table, key)}: unknown key '{key}' in [pipeline]; "
                                 f"valid keys: {', '.join(PIPELINE_KEYS)}")
            else:
                check_value(stage(table).Config, key, value, where(table, key), table)
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
        if sum(k in p for k in ("ratio", "target_macs", "target_ms")) != 1:
            raise DarkcError(f"{where('prune')}: [prune] needs exactly one of ratio, target_macs or target_ms")
        if "target_ms" in p:
            from darkc.compress.latency_budget import parse_target_ms

            try:
                parse_target_ms(p["target_ms"])
            except DarkcError as exc:
                raise DarkcError(f"{where('prune', 'target_ms')}: [prune] {exc}") from None
        if "ratio" in p and not 0 < p["ratio"] < 1:
            raise DarkcError(f"{where('prune', 'ratio')}: [prune] ratio {p['ratio']} must lie in (0, 1)")
    d = recipe.get("distill")
    if d is not None:
        init = d.get("init", "pruned" if p is not None and "student" not in d else "scratch")
        if init not in ("pruned", "scratch"):
            raise DarkcError(f"{where('distill', 'init')}: [distill] init must be 'pruned' or 'scratch'")
        if init == "pruned" and p is None:
            raise DarkcError(f"{where('distill', 'init')}: [distill] init = 'pruned' needs a [prune] table")
        if init == "pruned" and "student" in d:
            raise DarkcError(f"{where('distill', 'student')}: [distill] student and init = 'pruned' both name the "
                             f"student's start; keep one")
        if init == "scratch" and "student_widths" not in d and "student" not in d:
            raise DarkcError(f"{where('distill')}: [distill] from scratch needs student_widths = [...] or student")
        bad = [k for k in d.get("kd", "output").split(",") if k.strip() not in KD_KINDS]
        if bad:
            raise DarkcError(f"{where('distill', 'kd')}: [distill] kd {d['kd']!r}: use output and/or features")
    for table in ("quantize", "export"):
        t = recipe.get(table)
        if t is not None:
            bad = [x for x in t.get("targets", []) if x not in SUFFIX]
            if bad:
                raise DarkcError(f"{where(table, 'targets')}: [{table}] targets {bad} unknown; use onnx, tflite")
    e = recipe.get("export")
    if e is not None:
        bad = [x for x in e.get("precisions", []) if x not in ("fp32", "fp16")]
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
        from darkc.sizes import packed_shape, parse_budget
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
        return {name: path for name, (path, _) in self.produced().items()}

    def produced(self) -> dict[str, tuple[str, dict | None]]:
        """name -> (path, export record or None for a checkpoint); exported files are named ``<target>-<precision>``
        from their records in ``model.json`` (not from their file names)."""
        found = {"teacher": (self.recipe["pipeline"]["teacher"], None)}
        if "prune" in self.dirs and (self.dirs["prune"] / "model.json").is_file():
            found["pruned"] = (str(self.dirs["prune"]), None)
        if "distill" in self.dirs and (self.dirs["distill"] / "model.json").is_file():
            found["student"] = (str(self.dirs["distill"]), None)
        for stage in ("quantize", "export"):
            spec = _load_json(self.dirs.get(stage), "model.json")
            exports = (spec.get("provenance") or {}).get("exports") or {}
            for file, rec in sorted(exports.items()):
                if (self.dirs[stage] / file).is_file():
                    found[f"{rec['target']}-{rec['precision']}"] = (str(self.dirs[stage] / file), rec)
        return found

    def student(self) -> str:
        if "distill" in self.dirs:
            return str(self.dirs["distill"])
        if "prune" in self.dirs:
            return str(self.dirs["prune"])
        return self.recipe["pipeline"]["teacher"]

    def config(self, stage: str, **chain):
        """The stage's config: its recipe table, then ``chain`` and :data:`CHAIN_DEFAULTS` where the table is silent."""
        from darkc.stages import config_from_table, stage as stage_module

        return config_from_table(stage_module(stage).Config, self.opts[stage],
                                 {**CHAIN_DEFAULTS.get(stage, {}), **chain})

    def run_prune(self, tmp: Path) -> dict:
        from darkc.stages import prune

        rep = prune.run(self.teacher["path"], tmp, self.config("prune", seed=self.seed), progress=self.progress)
        out = {"params": rep["after"]["params"], "macs": rep["after"]["macs"], "command": rep["command"]}
        lat = (rep.get("budget") or {}).get("latency")
        if lat:     # a target_ms budget: what the result is estimated at, on which device, with which band
            out["latency_budget"] = {k: lat[k] for k in ("target", "device", "cores", "threads", "precision",
                                                         "resolution")} | {
                k: lat["result"][k] for k in ("estimated_ms", "predicted_ms", "error_band_text", "method")}
        return out

    def run_distill(self, tmp: Path) -> dict:
        from darkc.stages import distill

        o = self.opts["distill"]
        init = o.get("init", "pruned" if "prune" in self.dirs and "student" not in o else "scratch")
        chain = {"seed": self.seed, "threads": self.threads, "resume": (tmp / "train_state.json").is_file()}
        if init == "pruned":
            chain["student"] = str(self.dirs["prune"])
        rep = distill.run(self.teacher["path"], tmp, self.config("distill", **chain), progress=self.progress)
        return {"params": rep["student"]["params"], "macs": rep["student"]["macs"], "command": rep["command"],
                "wall_s": rep["wall_s"], "best": rep["best"]}

    def _files(self, rep: dict) -> dict:
        return {"files": {Path(r["file"]).name: {"target": r["target"], "precision": r["precision"],
                                                 "parity": r.get("parity"), "size_bytes": r["bytes"]}
                          for r in rep["files"]}}

    def run_quantize(self, tmp: Path) -> dict:
        from darkc.stages import quantize

        return self._files(quantize.run(self.student(), tmp, self.config("quantize"), progress=self.progress))

    def run_export(self, tmp: Path) -> dict:
        from darkc.stages import export

        return self._files(export.run(self.student(), tmp, self.config("export"), progress=self.progress))

    def run_bench(self, tmp: Path) -> dict:
        import dataclasses

        from darkc.stages import bench

        config = self.config("bench")
        results = {}
        for name, (path, record) in self.produced().items():
            devices = _devices_for(record, config.devices)
            if not devices:
                continue
            rep = bench.run(path, tmp / name, dataclasses.replace(config, devices=devices), progress=self.progress)
            results[name] = {k: v for k, v in rep.items() if k not in ("report_files",)}
        with atomic_path(tmp / "bench.json") as t:
            Path(t).write_text(json.dumps(portable(results, self.out), indent=1, default=str))
        return {"models": list(results)}

    def run_eval(self, tmp: Path) -> dict:
        from darkc.stages import evaluate

        o = self.opts["eval"]
        models = self.models()
        chosen = o.get("models") or list(models)
        unknown = [m for m in chosen if m not in models]
        if unknown:
            raise DarkcError(f"[eval] models {unknown} are not produced by this recipe; choose from {list(models)}")
        config = self.config("eval", threads=self.threads)
        results = {}
        for name in chosen:
            res = evaluate.run(models[name], tmp / name, config, progress=self.progress)
            results[name] = {k: res[k] for k in ("psnr", "ssim", "deltae", "checker", "raw_psnr", "per_ratio", "n") if k in res}
        with atomic_path(tmp / "eval.json") as t:
            Path(t).write_text(json.dumps(results, indent=1))
        return {"models": {k: {"psnr": v["psnr"], "ssim": v["ssim"]} for k, v in results.items()}}


def _devices_for(record: dict | None, devices: list[str]) -> list[str]:
    """NPU targets only take integer TFLite files (by the export record, not the file name); ARM CPU profiles and
    host take any model."""
    int8_tflite = bool(record) and record.get("target") == "tflite" and record.get("precision") == "int8"
    return [d for d in devices if int8_tflite or not d.startswith("ethos-u")]


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
    from darkc.stages.bench import Config as BenchConfig

    bench_cfg = run.config("bench") if "bench" in run.dirs else BenchConfig()
    frame = (f"one {_frame_size(rows, bench_cfg.size)} raw frame" if bench_cfg.size or any(r.get("resolution") for r in rows)
             else "one raw frame at each model's fixed input size (1920x1080 for dynamic-size models)")
    lines = [f"# darkc pipeline report: {Path(run.recipe['_path']).name}", "",
             f"Run folder `{portable(str(run.out))}` (`RUN` in the records); stages: {', '.join(run.stages)}. PSNR/SSIM "
             f"on the reference validation set (float sRGB vs LibRaw-rendered long exposure"
             + ("; these raw-output models' clean raw is rendered by LibRaw with each file's own colour first"
                if run.teacher.get("output") == "raw" else "")
             + "); latency as measured or estimated by `darkc bench` "
             "(each device's method is in `bench.json`: host = real runs, ARM = emulated instruction counts turned "
             "into time by a core profile, Ethos-U = Vela's estimate; none is a phone measurement).", "",
             f"Latency and MACs for {frame}, {','.join(map(str, bench_cfg.threads))} thread(s); MACs: conv + "
             f"transposed conv, from the graph; runtime: what ran each model on the host and on the emulated ARM "
             f"cores (Ethos-U: Vela).", "",
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


def _frame_size(rows: list[dict], asked: str | None) -> str:
    """The raw frame size the bench ran (bench.json, padded to the models' size multiple) or the asked one."""
    sizes = sorted({r["resolution"] for r in rows if r.get("resolution")})
    if sizes:
        padded = f" (the asked {asked}, padded to the size multiple)" if asked and [asked] != sizes else ""
        return " / ".join(sizes) + padded
    return asked or "1920x1080"


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

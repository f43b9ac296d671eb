"""Fuzz every loader a user feeds (hypothesis): each corrupt input must give darkc's one-line DarkcError naming
the file, never another exception, a hang or a crash.

    python benchmarks/fuzz_loaders.py --cases 2000 --out fuzz.json          # the long run (cases per loader)
    python benchmarks/fuzz_loaders.py --cases 12 --derandomize --out f.json  # what tests/test_fuzz_loaders.py runs

Loaders and what they get, each mutated from a valid seed file darkc writes (a tiny DNG, checkpoint, recipe, ONNX,
TFLite, .flo): ``raw`` (darkc.data.raw.read_raw: truncated, bit-flipped, zero-size, garbage, TIFF tags such as
ImageWidth / ImageLength / StripByteCounts / StripOffsets / BitsPerSample / CFARepeatPatternDim set to 0, small,
huge or random values), ``model.json`` (read_spec + load_checkpoint: JSON values replaced, keys dropped, text
mangled), ``safetensors`` (load_checkpoint: header length, dtype, shape, offsets, bytes), ``recipe``
(darkc.pipeline.load_recipe: values replaced, text mangled), ``onnx`` and ``tflite`` (darkc.inference.load_runner,
then one inference), ``profile`` (darkc.data.profiles.get_profile: names and CFAs) and ``flo``
(darkc.video.flow.read_flo: declared width/height, truncation, bit flips).

The loaders run in this process, so run it as a subprocess where a crash must not take the caller down: a native
crash ends it with a signal, after the loader and case it was on were printed to stderr (``case LOADER N``). Each
case has --case-timeout seconds (a hang fails). Prints, and writes to --out, the cases tried per loader and every
failing input (its bytes base64-encoded, the exception).
"""
from __future__ import annotations

import argparse
import base64
import json
import signal
import struct
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from darkc.errors import DarkcError

LOADERS = ("raw", "model.json", "safetensors", "recipe", "onnx", "tflite", "profile", "flo")
ROOT = Path(__file__).resolve().parents[1]
EDGE_INTS = [0, 1, 2, 3, 7, 255, 0x7FFF, 0xFFFF, 0x10000, 0x7FFFFFFF, 0xFFFFFFFF]


# ---------------------------------------------------------------- seed files
def seed_files(work: Path, loaders) -> dict[str, dict]:
    """A valid file per loader, plus the (offset, size) of the header fields worth setting to odd values."""
    import torch

    seeds = {}
    spec = {"arch": "sid-unet", "cfa": "bayer", "widths": [4, 4, 4, 4, 4]}
    ckpt = work / "ckpt"
    if {"model.json", "safetensors", "onnx", "tflite"} & set(loaders):
        from darkc.models import build_model, save_checkpoint

        torch.manual_seed(0)
        save_checkpoint(build_model(spec), spec, ckpt)
        seeds["model.json"] = {"bytes": (ckpt / "model.json").read_bytes(), "fields": []}
        st_bytes = (ckpt / "model.safetensors").read_bytes()
        seeds["safetensors"] = {"bytes": st_bytes, "fields": [(0, 8)]}
    if "raw" in loaders:
        import tifffile

        from darkc.data.dng import dng_bytes
        from darkc.data.profiles import get_profile

        prof = get_profile(None, "bayer")
        rng = np.random.default_rng(0)
        mosaic = rng.integers(prof.black, prof.white, (32, 48), dtype=np.uint16)
        data = dng_bytes(mosaic, "bayer", black=prof.black, white=prof.white,
                         xyz_to_cam=np.asarray(prof.xyz_to_cam), as_shot_neutral=(0.5, 1.0, 0.6),
                         exposure_time=0.1)
        path = work / "seed.dng"
        path.write_bytes(data)
        fields = []
        with tifffile.TiffFile(path) as tif:
            for tag in tif.pages[0].tags.values():
                if tag.code in (256, 257, 258, 273, 277, 278, 279, 33421, 33422, 50714, 50717):
                    fields.append((tag.valueoffset, min(tag.dtype.itemsize if hasattr(tag.dtype, "itemsize")
                                                        else 4, 4) if tag.count == 1 else 4))
        seeds["raw"] = {"bytes": data, "fields": fields}
    if "recipe" in loaders:
        seeds["recipe"] = {"bytes": (ROOT / "recipes" / "sid-mobile.toml").read_bytes(), "fields": []}
    if "onnx" in loaders:
        from darkc.export import export

        export(str(ckpt), work / "onnx" / "model.onnx", target="onnx", precision="fp32", input_size="dynamic")
        seeds["onnx"] = {"bytes": (work / "onnx" / "model.onnx").read_bytes(), "fields": []}
    if "tflite" in loaders:
        from darkc.export import export

        export(str(ckpt), work / "tflite" / "model.tflite", target="tflite", precision="int8",
               input_size="32x32", calib="synthetic", samples=2, io="int8")
        seeds["tflite"] = {"bytes": (work / "tflite" / "model.tflite").read_bytes(), "fields": [(0, 4), (4, 4)]}
    if "flo" in loaders:
        from darkc.video.flow import write_flo

        write_flo(work / "seed.flo", np.random.default_rng(0).normal(size=(6, 8, 2)).astype(np.float32))
        seeds["flo"] = {"bytes": (work / "seed.flo").read_bytes(), "fields": [(4, 4), (8, 4)]}
    return seeds


# ---------------------------------------------------------------- mutations
def byte_mutations(seed: bytes, fields: list[tuple[int, int]]):
    """Strategy of corrupt versions of ``seed``: empty, truncated, bit-flipped, garbage, header fields set."""
    n = len(seed)

    def flip(flips):
        b = bytearray(seed)
        for pos, bit in flips:
            b[pos] ^= 1 << bit
        return bytes(b)

    def set_field(args):
        (off, size), value = args
        b = bytearray(seed)
        b[off:off + size] = (value % (1 << (8 * size))).to_bytes(size, "little")
        return bytes(b)

    options = [
        st.just(b""),
        st.integers(0, n - 1).map(lambda k: seed[:k]),
        st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, 7)), min_size=1, max_size=16).map(flip),
        st.binary(max_size=512),
        st.tuples(st.integers(0, n - 1), st.binary(min_size=1, max_size=64)).map(
            lambda a: seed[:a[0]] + a[1] + seed[a[0] + len(a[1]):]),
    ]
    if fields:
        options.append(st.tuples(st.sampled_from(fields), st.sampled_from(EDGE_INTS) | st.integers(0, 2 ** 32 - 1))
                       .map(set_field))
    return st.one_of(options)


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers(-2 ** 40, 2 ** 40) | st.floats()
                           | st.text(max_size=12),
                           lambda kids: st.lists(kids, max_size=6) | st.dictionaries(st.text(max_size=8), kids,
                                                                                   max_size=4), max_leaves=12)


def json_mutations(seed: bytes):
    """Corrupt ``model.json``: a value (top level or nested) replaced by any JSON, a key dropped, or bytes."""
    doc = json.loads(seed)

    def paths(obj, prefix=()):
        out = [prefix] if prefix else []
        if isinstance(obj, dict):
            for k, v in obj.items():
                out += paths(v, prefix + (k,))
        elif isinstance(obj, list):
            for i, v in enumerate(obj):
                out += paths(v, prefix + (i,))
        return out

    all_paths = paths(doc)

    def replace(args):
        path, value, drop = args
        new = json.loads(seed)
        parent = new
        for k in path[:-1]:
            parent = parent[k]
        if drop and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = value
        return json.dumps(new).encode()

    return st.one_of(st.tuples(st.sampled_from(all_paths), JSON_VALUES, st.booleans()).map(replace),
                     byte_mutations(seed, []))


def safetensors_mutations(seed: bytes):
    """Corrupt safetensors: a tensor's dtype / shape / data_offsets replaced, or the bytes mangled."""
    hlen = struct.unpack("<Q", seed[:8])[0]
    header = json.loads(seed[8:8 + hlen])
    names = sorted(k for k in header if k != "__metadata__")
    field_values = {"dtype": st.sampled_from(["F32", "F16", "BF16", "I64", "U8", "BOOL", "F64", "XX", ""])
                    | JSON_VALUES,
                    "shape": st.lists(st.integers(-1, 2 ** 40) | st.sampled_from([0, 1, 2 ** 31]), max_size=5)
                    | JSON_VALUES,
                    "data_offsets": st.lists(st.integers(-1, 2 ** 40) | st.sampled_from([0, 1, len(seed)]),
                                             max_size=3) | JSON_VALUES}

    def rebuild(args):
        name, field, value = args
        new = json.loads(seed[8:8 + hlen])
        new[name][field] = value
        h = json.dumps(new).encode()
        return struct.pack("<Q", len(h)) + h + seed[8 + hlen:]

    per_field = st.one_of([st.tuples(st.sampled_from(names), st.just(f), v).map(rebuild)
                           for f, v in field_values.items()])
    return st.one_of(per_field, byte_mutations(seed, [(0, 8)]))


def toml_value():
    scalar = (st.integers(-2 ** 63, 2 ** 63 - 1) | st.floats(allow_nan=False, allow_infinity=False)
              | st.booleans() | st.text(max_size=10))
    return st.one_of(scalar, st.lists(scalar, max_size=4)).map(_toml)


def _toml(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    return "[" + ", ".join(_toml(x) for x in v) + "]"


def recipe_mutations(seed: bytes):
    """Corrupt recipe TOML: a ``key = value`` line's value replaced by any TOML value, a line dropped, bytes."""
    lines = seed.decode().splitlines()
    assignments = [i for i, ln in enumerate(lines) if "=" in ln and not ln.lstrip().startswith("#")]

    def replace(args):
        i, value = args
        new = list(lines)
        new[i] = new[i].split("=", 1)[0] + "= " + value
        return "\n".join(new).encode()

    def drop(i):
        return "\n".join(lines[:i] + lines[i + 1:]).encode()

    return st.one_of(st.tuples(st.sampled_from(assignments), toml_value()).map(replace),
                     st.integers(0, len(lines) - 1).map(drop), byte_mutations(seed, []))


# ---------------------------------------------------------------- loaders
def load(loader: str, path: Path) -> None:
    """Run ``loader`` on ``path`` as darkc's commands do (a runner also runs one inference)."""
    if loader == "raw":
        from darkc.data.raw import read_raw

        read_raw(path).packed()
    elif loader in ("model.json", "safetensors"):
        from darkc.models import load_checkpoint, read_spec

        read_spec(path.parent)
        load_checkpoint(path.parent)
    elif loader == "recipe":
        from darkc.pipeline import load_recipe

        load_recipe(path)
    elif loader in ("onnx", "tflite"):
        from darkc.inference import enhance_packed, load_runner

        runner = load_runner(str(path), threads=1)
        h, w = runner.fixed_size or (32, 32)
        enhance_packed(runner, np.full((runner.in_channels, h, w), 0.1, np.float32))
    elif loader == "flo":
        from darkc.video.flow import read_flo

        read_flo(path)
    else:
        raise ValueError(loader)


FILE_NAME = {"raw": "input.dng", "model.json": "model.json", "safetensors": "model.safetensors",
             "recipe": "recipe.toml", "onnx": "model.onnx", "tflite": "model.tflite", "flo": "input.flo"}


class CaseTimeout(Exception):
    pass


def _on_alarm(signum, frame):
    raise CaseTimeout()


def check_case(loader: str, folder: Path, data, timeout: float) -> str | None:
    """None when the loader accepted the input or gave a one-line DarkcError naming the file; else what went
    wrong."""
    if loader == "profile":
        from darkc.data.profiles import get_profile

        name, cfa = data
        target = str(name)
        call = lambda: get_profile(name, cfa)  # noqa: E731
    else:
        path = folder / FILE_NAME[loader]
        path.write_bytes(data)
        target = path.name
        call = lambda: load(loader, path)  # noqa: E731
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        call()
        return None
    except DarkcError as exc:
        msg = str(exc)
        if "\n" in msg:
            return f"DarkcError over several lines: {msg!r}"
        if target not in msg and loader != "profile":
            return f"DarkcError does not name {target}: {msg!r}"
        return None
    except CaseTimeout:
        return f"hang: no answer within {timeout:g} s"
    except BaseException as exc:  # noqa: BLE001 - anything but DarkcError is the bug being looked for
        if isinstance(exc, KeyboardInterrupt):
            raise
        return f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=-4)}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def fuzz(loader: str, seeds: dict, work: Path, cases: int, derandomize: bool, timeout: float) -> dict:
    folder = work / f"case-{loader.replace('.', '-')}"
    folder.mkdir(exist_ok=True)
    if loader in ("model.json", "safetensors"):
        for name in ("model.json", "model.safetensors"):
            (folder / name).write_bytes((work / "ckpt" / name).read_bytes())
    if loader == "profile":
        strategy = st.tuples(st.one_of(st.none(), st.text(max_size=20),
                                       st.sampled_from(["sony-a7s2-like", "fuji-xt2-like", "SONY-A7S2-LIKE"])),
                             st.one_of(st.none(), st.sampled_from(["bayer", "xtrans", "foveon", ""])))
    elif loader == "model.json":
        strategy = json_mutations(seeds[loader]["bytes"])
    elif loader == "safetensors":
        strategy = safetensors_mutations(seeds[loader]["bytes"])
    elif loader == "recipe":
        strategy = recipe_mutations(seeds[loader]["bytes"])
    else:
        strategy = byte_mutations(seeds[loader]["bytes"], seeds[loader]["fields"])
    tried, failures, t0 = 0, [], time.monotonic()

    @settings(max_examples=cases, deadline=None, database=None, derandomize=derandomize,
              suppress_health_check=list(HealthCheck), phases=["generate"])
    @given(strategy)
    def one(data):
        nonlocal tried
        tried += 1
        print(f"case {loader} {tried} ({folder})", file=sys.stderr, flush=True)
        problem = check_case(loader, folder, data, timeout)
        if problem and len(failures) < 20:
            failures.append({"problem": problem, "input": base64.b64encode(data).decode()
                             if isinstance(data, bytes) else repr(data)})

    one()
    return {"cases": tried, "failures": failures, "seconds": time.monotonic() - t0}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--loaders", default=",".join(LOADERS))
    p.add_argument("--cases", type=int, default=500, help="hypothesis examples per loader")
    p.add_argument("--derandomize", action="store_true", help="the same cases every run (CI)")
    p.add_argument("--case-timeout", type=float, default=30.0)
    p.add_argument("--out", default=None, help="JSON report")
    a = p.parse_args(argv)
    loaders = [x for x in a.loaders.split(",") if x]
    unknown = set(loaders) - set(LOADERS)
    if unknown:
        print(f"error: unknown loader(s) {', '.join(sorted(unknown))}; use {', '.join(LOADERS)}", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(1)
    signal.signal(signal.SIGALRM, _on_alarm)
    report = {"command": "python benchmarks/fuzz_loaders.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "loaders": {}}
    with tempfile.TemporaryDirectory(prefix="darkc-fuzz-") as tmp:
        work = Path(tmp)
        seeds = seed_files(work, loaders)
        for loader in loaders:
            res = fuzz(loader, seeds, work, a.cases, a.derandomize, a.case_timeout)
            report["loaders"][loader] = res
            print(f"{loader}: {res['cases']} cases, {len(res['failures'])} failing, {res['seconds']:.0f} s",
                  flush=True)
            for f in res["failures"][:3]:
                print(f"  {f['problem'].splitlines()[0]}", flush=True)
    if a.out:
        Path(a.out).write_text(json.dumps(report, indent=1) + "\n")
    return 1 if any(r["failures"] for r in report["loaders"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())

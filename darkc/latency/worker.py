"""One benchmark process: load a model in one runtime, run it, print one JSON line. No darkc imports at the top.

It runs both on the host (a subprocess per runtime and thread count, so peak memory and thread settings belong to
that configuration alone) and inside the emulated aarch64 userland, where only the standard library, numpy and
the runtime are installed. Modes:

- ``time``: ``--warmup`` untimed runs, then ``--runs`` timed ones; per-run wall times (ms), resident memory before
  loading and at its peak.
- ``count``: ``--warmup`` runs, then ``--invokes`` more; with ``DARKC_INSN_MARKERS=1`` each runtime inference call
  (``invoke()`` / ``session.run``, not the Python around it) sits between two marker syscalls, and darkc's QEMU
  plugin (``insn_window.c``) counts the guest instructions of each window; ``--save`` writes the last output
  (float32 .npy) for a parity check.

Input: a fixed pseudo-random packed raw tensor in [0, 1] (numpy PCG64, seed 0) of ``--shape`` in the model's own
layout; int8/uint8 inputs are quantised with the input tensor's scale and zero point. Dense convolutions cost the
same whatever the values.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time


def _status_mib(key: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _rss_mib() -> float | None:
    return _status_mib("VmRSS")


def _peak_rss_mib() -> float:
    """This process image's peak RSS: VmHWM (reset at exec), not ru_maxrss, which keeps the parent's peak."""
    hwm = _status_mib("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _input(np, shape, dtype, quant):
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    if np.dtype(dtype).kind == "f":
        return x.astype(dtype)
    scale, zero = quant
    info = np.iinfo(dtype)
    return np.clip(np.rint(x / scale) + zero, info.min, info.max).astype(dtype)


def _marked(call, marks: bool):
    """``call`` bracketed by the counting plugin's window markers when ``marks``."""
    if not marks:
        return call

    def run():
        _mark(MARK_START)
        y = call()
        _mark(MARK_STOP)
        return y
    return run


def _ort(np, path, threads, shape, marks=False):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if threads == 1:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    dtype = {"tensor(float)": np.float32, "tensor(float16)": np.float16}.get(inp.type)
    if dtype is None:
        raise SystemExit(f"error: {path}: ONNX input type {inp.type} is not float32/float16")
    feed = {inp.name: _input(np, shape, dtype, None)}
    return _marked(lambda: sess.run(None, feed)[0], marks), {"runtime": "onnxruntime", "version": ort.__version__,
                                              "provider": "CPUExecutionProvider"}


def _litert(np, path, threads, shape, marks=False):
    from ai_edge_litert.interpreter import Interpreter

    if marks and threads > 1:
        _mark_regions("pthreadpool_parallelize")

    it = Interpreter(model_path=path, num_threads=threads)
    d = it.get_input_details()[0]
    if tuple(d["shape"]) != tuple(shape):
        it.resize_tensor_input(d["index"], list(shape), strict=False)
    it.allocate_tensors()
    d = it.get_input_details()[0]
    out = it.get_output_details()[0]
    x = _input(np, shape, d["dtype"], d.get("quantization", (0.0, 0)))

    invoke = _marked(it.invoke, marks)

    def run():
        it.set_tensor(d["index"], x)
        invoke()
        return it.get_tensor(out["index"])

    def as_float(y):
        if np.dtype(y.dtype).kind == "f":
            return y.astype(np.float32)
        scale, zero = out.get("quantization", (0.0, 0))
        return ((y.astype(np.float32) - zero) * scale).astype(np.float32)

    import ai_edge_litert
    run.as_float = as_float
    return run, {"runtime": "litert", "version": getattr(ai_edge_litert, "__version__", None),
                 "delegate": "XNNPACK (default CPU delegate)"}


def _torch(np, path, threads, shape, marks=False):
    import torch

    from darkc.models import load_checkpoint

    torch.set_num_threads(threads)
    model, _ = load_checkpoint(path)
    model.eval()
    x = torch.from_numpy(_input(np, shape, np.float32, None))

    def run():
        with torch.inference_mode():
            return model(x).numpy()

    return run, {"runtime": "torch", "version": torch.__version__, "backend": "CPU (eager, inference_mode)"}


RUNTIMES = {"ort": _ort, "litert": _litert, "torch": _torch}


#: ``sched_get_priority_max`` policies that darkc's QEMU plugin (insn_window.c) reads as window start / stop,
#: and as "the thread pool's dispatch function is at this address".
MARK_START, MARK_STOP, MARK_REGION = 0x6461726B, 0x6461726C, 0x6461726D


def _mark(policy: int) -> None:
    """A marker syscall for the instruction-counting plugin: a harmless EINVAL on a real kernel."""
    try:
        os.sched_get_priority_max(policy)
    except OSError:
        pass


def _mark_address(policy: int, address: int, size: int) -> None:
    """A marker syscall whose second and third argument registers hold ``address`` and ``size``
    (``os.sched_get_priority_max`` takes one argument, so the raw aarch64 syscall 125 is made through libc). Only
    under emulation (see _mark_regions)."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).syscall(125, ctypes.c_long(policy), ctypes.c_ulong(address),
                                              ctypes.c_ulong(size))


def _elf_symbol(path: str, name: str) -> tuple[int, int] | None:
    """``(value, size)`` of symbol ``name`` (value: load-relative address) in the ELF64 little-endian file ``path``,
    from .symtab or .dynsym (local symbols included); None when absent."""
    import struct

    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return None
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    want = name.encode()
    for _, sh_type, _, _, off, size, link, _, _, entsize in sections:
        if sh_type not in (2, 11) or not entsize:      # SHT_SYMTAB, SHT_DYNSYM
            continue
        str_off, str_size = sections[link][4], sections[link][5]
        strtab = data[str_off:str_off + str_size]
        at = strtab.find(b"\0" + want + b"\0")
        if at < 0:
            continue
        for st_name, _, _, _, value, sym_size in struct.iter_unpack("<IBBHQQ", data[off:off + size]):
            if st_name == at + 1 and value:
                return value, sym_size
    return None


def _mark_regions(symbol: str) -> None:
    """Tell the counting plugin where ``symbol`` (the thread pool's dispatch function) is in every loaded LiteRT
    library that defines it: a marker syscall per copy (policy MARK_REGION, then its address and size)."""
    if os.uname().machine != "aarch64":     # the marker number is aarch64's; the plugin runs only under QEMU
        return
    bases = {}
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 6 and parts[2] == "00000000" and parts[5].endswith(".so") and parts[5] not in bases:
                bases[parts[5]] = int(parts[0].split("-")[0], 16)
    for lib, base in bases.items():
        if "litert" not in os.path.basename(lib).lower():
            continue
        found = _elf_symbol(lib, symbol)
        if found is not None:
            _mark_address(MARK_REGION, base + found[0], found[1])


def _pin(threads: int) -> list[int] | None:
    """Pin to the first ``threads`` allowed CPUs when there are that many; None when not pinned."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    if threads > len(allowed):
        return None
    os.sched_setaffinity(0, allowed[:threads])
    return allowed[:threads]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runtime", choices=sorted(RUNTIMES), required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--shape", required=True, help="comma-separated input shape in the model's layout")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--mode", choices=["time", "count"], default="time")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--invokes", type=int, default=1)
    p.add_argument("--pin", action="store_true", help="pin to the first --threads CPUs")
    p.add_argument("--save", default=None, help="count mode: write the last output here (.npy, float32)")
    a = p.parse_args(argv)
    import numpy as np

    shape = tuple(int(v) for v in a.shape.split(","))
    base_rss = _rss_mib() if a.mode == "time" else None   # /proc reads vary: kept out of counted runs
    pinned = _pin(a.threads) if a.pin else None
    t0 = time.perf_counter()
    # count mode: every inference call (warm-up ones too) sits in its own counting window
    markers = a.mode == "count" and os.environ.get("DARKC_INSN_MARKERS") == "1"
    run, info = RUNTIMES[a.runtime](np, a.model, a.threads, shape, marks=markers)
    load_s = time.perf_counter() - t0
    y = None
    for _ in range(a.warmup):
        y = run()
    res = {**info, "threads": a.threads, "shape": list(shape), "warmup": a.warmup, "pinned_cpus": pinned,
           "machine": os.uname().machine}
    if a.mode == "time":
        times = []
        for _ in range(a.runs):
            t = time.perf_counter_ns()
            y = run()
            times.append((time.perf_counter_ns() - t) / 1e6)
        res.update(times_ms=times, load_s=load_s, base_rss_mib=base_rss, peak_rss_mib=_peak_rss_mib())
    else:
        for _ in range(a.invokes):
            y = run()
        res.update(invokes=a.invokes, windows=a.warmup + a.invokes if markers else 0)
        if a.save and y is not None:
            as_float = getattr(run, "as_float", lambda v: np.asarray(v, dtype=np.float32))
            np.save(a.save, as_float(np.asarray(y)))
    sys.stdout.write("DARKC-BENCH " + json.dumps(res) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Run a temporal filter over frames from a .npy file, one window of the counting plugin per filtered frame.

Runs inside the emulated aarch64 userland (numpy, OpenCV and Numba only: no torch), so it imports
:mod:`darkc.video.temporal` without running ``darkc/video/__init__.py`` (which imports the network stack)::

    qemu-aarch64 ... python3.11 filter_worker.py --root REPO --frames frames.npy --kind fast-flow

``--frames``: float32 or uint8 (N, H, W, C). The first frame starts the filter (not counted); each of the others is
filtered between two marker syscalls (:data:`darkc.latency.worker.MARK_START` / ``MARK_STOP``), after the Numba
kernels are compiled. Prints one JSON line.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import types

MARK_START, MARK_STOP = 0x6461726B, 0x6461726C     # as darkc.latency.worker (no darkc import before the stubs)


def _mark(policy: int) -> None:
    try:
        os.sched_get_priority_max(policy)
    except OSError:
        pass


def load_temporal(root: str):
    """darkc.video.temporal from the source tree at ``root``, with darkc.video as a bare package (its __init__ not
    run)."""
    sys.path.insert(0, root)
    import darkc  # noqa: F401  (darkc/__init__.py only sets the version)

    pkg = types.ModuleType("darkc.video")
    pkg.__path__ = [os.path.join(root, "darkc", "video")]
    sys.modules["darkc.video"] = pkg
    from darkc.video import temporal

    return temporal


class _CallMarks:
    """Stands in for the ``cv2`` module of the filter's modules: every OpenCV function call (and DIS's ``calc``) runs
    between marker syscalls, outermost calls only (windows do not nest), and its name is appended to ``names``."""

    def __init__(self, cv2, names: list):
        self._cv2, self._names, self._depth = cv2, names, [0]

    def wrap(self, name: str, fn):
        names, depth = self._names, self._depth

        def call(*args, **kw):
            if depth[0]:
                return fn(*args, **kw)
            names.append(name)
            depth[0] += 1
            _mark(MARK_START)
            try:
                return fn(*args, **kw)
            finally:
                _mark(MARK_STOP)
                depth[0] -= 1
        return call

    def __getattr__(self, attr: str):
        value = getattr(self._cv2, attr)
        if callable(value) and not isinstance(value, type) and attr[:1].islower():
            return self.wrap(attr, value)
        return value


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", required=True)
    ap.add_argument("--frames", required=True)
    ap.add_argument("--kind", required=True)
    ap.add_argument("--marks", action="store_true", help="bracket each filtered frame with marker syscalls")
    ap.add_argument("--per-call", default=None, help="instead: bracket each OpenCV call of the filtered frames and "
                    "write their names, in order, to this JSON file")
    args = ap.parse_args(argv)
    import cv2
    import numpy as np

    cv2.setNumThreads(1)
    temporal = load_temporal(args.root)
    temporal.kernels.warm_up()  # JIT-compiled (or loaded from Numba's cache) before any window opens
    frames = np.load(args.frames)
    names: list[str] = []
    if args.per_call:
        from darkc.video import flow

        marks = _CallMarks(cv2, names)
        temporal.cv2 = flow.cv2 = marks
        flow.DISFlow.__call__ = marks.wrap("DIS flow", flow.DISFlow.__call__)
        for name in ("move_tiles", "blend_rows"):
            setattr(temporal.kernels, name, marks.wrap(f"{name} (numba)", getattr(temporal.kernels, name)))
    filt = temporal.make_filter(args.kind)
    filt(frames[0])
    first = len(names)          # the calls of the frame that starts the filter: not reported
    checksum = 0.0
    for x in frames[1:]:
        if args.marks:
            _mark(MARK_START)
        y = filt(x)
        if args.marks:
            _mark(MARK_STOP)
        checksum += float(np.asarray(y, np.float64).mean())
    if args.per_call:
        with open(args.per_call, "w") as f:
            json.dump({"first": first, "names": names}, f)
    print(json.dumps({"frames": int(len(frames) - 1), "shape": list(frames.shape[1:]), "kind": args.kind,
                      "opencv": cv2.__version__, "numpy": np.__version__,
                      "numba": sys.modules["numba"].__version__, "checksum": checksum}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

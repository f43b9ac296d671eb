"""Running Google's ai-edge tools (litert-torch, ai-edge-quantizer): their native log output kept off the
terminal, and their versions for the export record. Shared by :mod:`darkc.export.tflite` and
:mod:`darkc.export.tflite_int8`."""
from __future__ import annotations

import contextlib
import os
import tempfile


@contextlib.contextmanager
def quiet_native():
    """Send stdout/stderr (Python and C++: converter logs, tqdm bars) to a scratch file while converting."""
    import logging
    import sys

    import warnings

    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    root = logging.getLogger()
    level = root.level
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        root.setLevel(logging.ERROR)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            root.setLevel(level)


def tool_version(dist: str) -> str | None:
    """Installed version of distribution ``dist`` (e.g. ``ai-edge-litert``), None when it is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None

"""One error type for every user-facing failure, and atomic file writing.

A :class:`DarkcError` carries a single line that names the file or field at fault and what to do
about it; the CLI prints it as ``error: <message>`` and exits non-zero.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator


class DarkcError(Exception):
    """A user-facing error: one line, naming the file/field and the fix."""


def one_line(exc: BaseException) -> str:
    """An exception's text on one line (libraries raise multi-line messages), or its type name if empty."""
    return " ".join(str(exc).split()) or type(exc).__name__


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; rename it onto ``dest`` only if the block succeeds.

    Nothing is left behind on failure, and an existing ``dest`` is untouched until the rename.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=suffix or dest.suffix, dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)   # mkstemp makes 0600 files; give them the usual mode
    try:
        yield tmp
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(dest: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory beside ``dest``; it replaces ``dest`` only if the block succeeds.

    Files already in ``dest`` that the block does not rewrite are kept (they are copied in first),
    so exporting ``model.onnx`` into an artifact directory does not lose ``model.safetensors``.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    _restore_aside(dest)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        if dest.is_dir():
            shutil.copytree(dest, tmp, dirs_exist_ok=True)
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)            # mkdtemp makes 0700 folders; some writers make 0600 files
        for path in tmp.rglob("*"):
            if path.is_file() and not path.is_symlink():
                path.chmod(0o666 & ~umask)
        replace_dir(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def replace_dir(src: str | os.PathLike, dest: str | os.PathLike) -> None:
    """Move the folder ``src`` onto ``dest`` so that a kill at any moment leaves either the old ``dest`` or the
    new one whole: an atomic exchange where the OS has one, then the old folder (now at ``src``) is removed."""
    src, dest = Path(src), Path(dest)
    _restore_aside(dest)
    if not dest.exists():
        os.replace(src, dest)
    elif _exchange(src, dest):
        shutil.rmtree(src, ignore_errors=True)
    else:
        # no atomic exchange (not Linux, or a file system without it): the old folder is moved aside first;
        # _restore_aside puts it back if a kill lands between the two renames
        old = dest.with_name(f".{dest.name}.old")
        if old.exists():
            shutil.rmtree(old)
        os.replace(dest, old)
        os.replace(src, dest)
        shutil.rmtree(old, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False where that is unavailable."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def _restore_aside(dest: Path) -> None:
    """Put back a folder :func:`atomic_dir` moved aside (``.NAME.old``) when a kill stopped it before the swap."""
    old = dest.with_name(f".{dest.name}.old")
    if old.is_dir() and not dest.exists():
        os.replace(old, dest)


@contextlib.contextmanager
def output_lock(dest: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on the output ``dest`` for a whole command, so that two runs writing the same
    output never interleave: the second is refused with a DarkcError. The lock (``flock`` on ``.NAME.lock``
    beside ``dest``) dies with its process, so a killed run never blocks the next one."""
    import fcntl

    dest = Path(dest).absolute()
    made = [p for p in (dest.parent, *dest.parent.parents) if not p.exists()]
    lock = dest.with_name(f".{dest.name}.lock")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise DarkcError(f"cannot write {dest}: {one_line(exc)}; check the path and its permissions") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise DarkcError(f"another darkc run (pid {holder}) is writing {dest}; wait for it to finish or "
                             f"choose another output") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        try:
            yield
        finally:
            lock.unlink(missing_ok=True)
    finally:
        os.close(fd)
        for folder in made:                         # parents made only for the lock, left empty by a failure
            try:
                folder.rmdir()
            except OSError:
                break


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()

"""Which files are camera raws: the extensions LibRaw reads, and finding them in a folder."""
from __future__ import annotations

import os
from pathlib import Path

#: File extensions of camera raw formats LibRaw reads (the common ones; compared case-insensitively).
RAW_EXTS = frozenset({".dng", ".arw", ".srf", ".sr2", ".raf", ".nef", ".nrw", ".cr2", ".cr3", ".crw", ".orf",
                      ".rw2", ".pef", ".srw", ".3fr", ".iiq", ".erf", ".kdc", ".dcr", ".mos", ".mrw", ".x3f",
                      ".rwl", ".raw"})


def is_raw(path: str | os.PathLike) -> bool:
    """True when ``path`` names a camera raw file by its extension (the file need not exist)."""
    return Path(path).suffix.lower() in RAW_EXTS


def find_raw_files(folder: str | os.PathLike, *, skip_references: bool = False) -> list[Path]:
    """Raw files under ``folder`` (recursively, sorted); ``skip_references`` leaves out SID ``long/`` folders
    (ground-truth references, not inputs)."""
    folder = Path(folder)
    return sorted(p for p in folder.rglob("*")
                  if is_raw(p) and p.is_file()
                  and not (skip_references and "long" in p.relative_to(folder).parts[:-1]))


def example_exts(count: int = 6) -> str:
    """A few raw extensions for messages: ``.arw, .cr2, ...``."""
    return ", ".join(sorted(RAW_EXTS)[:count]) + ", ..."

"""Write a file so that readers see the old version or the new one, never half of either.

Every output of vasoflow (parquet tables, results.json, the report, manifests, ledgers) goes
through ``atomic_write``: the bytes land in a temporary file in the same folder, which is
renamed over the target only once complete (``os.replace`` is atomic within a file system).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import polars as pl


def atomic_write(path: Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` then rename ``tmp_path`` to ``path``; on failure remove it."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; outputs are meant to be read by the team
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: Path, text: str) -> Path:
    """UTF-8 text with ``\\n`` line ends, atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8", newline="\n"))


def write_parquet_atomic(frame: pl.DataFrame, path: Path) -> Path:
    return atomic_write(path, frame.write_parquet)

"""Open DuckDB files with the machine's resource settings (one place for every step).

``VASOFLOW_MEMORY_LIMIT`` (e.g. ``3GB``) is the one memory setting: it sets DuckDB's
``memory_limit`` and a ``temp_directory`` beside the database file (``<db>.spill``, inside the
step's scratch folder, so a killed run's spill files go with it), so operators that can spill
(joins, aggregates, sorts, ``CREATE TABLE AS``) degrade to disk instead of failing. Unset:
DuckDB's defaults (80% of RAM; spill to ``<db>.tmp``). ``VASOFLOW_THREADS`` caps DuckDB's
threads. Both are deployment settings, not study settings: they change neither results nor
cache keys, so they live in the environment rather than study.toml.

``attach`` opens other databases read-only beside the one written (a step reads the ingest's
database in place and stores only what it builds) and puts them on the search path, so the
SQL's unqualified names (``valid_chartevents``) resolve there; the written database comes
first, so its own ``study_param`` and ``concept_*`` tables shadow the attached ones.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

import duckdb

from pipeline.errors import ConfigError

_SIZE = re.compile(r"\s*[0-9]+(\.[0-9]+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*", re.IGNORECASE)


def memory_limit() -> str | None:
    """``VASOFLOW_MEMORY_LIMIT`` checked (a size such as ``3GB`` or ``512MiB``), or None."""
    value = os.environ.get("VASOFLOW_MEMORY_LIMIT", "").strip()
    if not value:
        return None
    if not _SIZE.fullmatch(value):
        raise ConfigError(f"VASOFLOW_MEMORY_LIMIT: {value!r} is not a size such as 3GB or 512MiB")
    return value


def connect(db_path: Path, attach: Mapping[str, Path] | None = None, **kwargs) -> duckdb.DuckDBPyConnection:
    """``duckdb.connect(db_path)`` with the memory limit, spill folder and thread cap applied;
    ``attach``: alias -> database file, attached read-only and searched after ``db_path``."""
    con = duckdb.connect(str(db_path), **kwargs)
    try:
        _apply_settings(con, db_path)
        if attach:
            for alias, path in attach.items():
                if not _ALIAS.fullmatch(alias):
                    raise ConfigError(f"{alias!r} is not a database alias (lower-case letters, digits, _)")
                quoted = str(path).replace("'", "''")  # ATTACH takes no bound parameters
                con.execute(f"ATTACH '{quoted}' AS {alias} (READ_ONLY)")
            main = con.execute("SELECT current_database()").fetchone()[0]
            path_list = ",".join([f'"{main}".main', *(f"{alias}.main" for alias in attach)])
            con.execute("SET search_path = ?", [path_list])
    except BaseException:
        con.close()
        raise
    return con


_ALIAS = re.compile(r"[a-z][a-z0-9_]*")


def thread_cap() -> int | None:
    """``VASOFLOW_THREADS`` checked (a positive integer), or None. It caps DuckDB's threads and
    the model steps' workers (pipeline.parallel)."""
    threads = os.environ.get("VASOFLOW_THREADS", "").strip()
    if not threads:
        return None
    if not threads.isdigit() or int(threads) < 1:
        raise ConfigError(f"VASOFLOW_THREADS: {threads!r} is not a positive integer")
    return int(threads)


def _apply_settings(con: duckdb.DuckDBPyConnection, db_path: Path) -> None:
    threads = thread_cap()
    if threads:
        con.execute(f"SET threads = {threads}")
    limit = memory_limit()
    if limit:
        spill = Path(str(db_path) + ".spill")
        con.execute(f"SET memory_limit = '{limit}'")  # checked by memory_limit(): digits and a unit
        con.execute("SET temp_directory = ?", [str(spill)])

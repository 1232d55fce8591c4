"""Run the SQL relations of ``sql/`` in their declared order.

Each ``sql/<layer>/<name>.sql`` file is one pure ``SELECT``; ``build_relations`` wraps it as
``CREATE OR REPLACE TABLE <name> AS <select>`` and runs the files in the order listed in
``sql/build_order.toml``. No SQL is string-formatted with values: thresholds and item ids come
from the ``concept_*`` and ``study_param`` tables the SQL joins against.
"""

from __future__ import annotations

import re
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import VasoflowError
from pipeline.resources import resource_dir

# Relations the SQL may read without building them: the ingest's tables and the concept tables.
SOURCE_RELATION_PATTERN = re.compile(r"^(valid_[a-z_]+|concept_[a-z_]+|study_param|source_table)$")

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class SqlRelation:
    """One SQL file: the relation it builds, its path and its SELECT text."""

    name: str
    path: Path
    select_sql: str


def sql_dir() -> Path:
    return resource_dir("sql")


def build_order(sql_root: Path | None = None) -> list[SqlRelation]:
    """The relations of ``sql/build_order.toml``, in order, with their SELECT text."""
    root = sql_root or sql_dir()
    order_path = root / "build_order.toml"
    try:
        with open(order_path, "rb") as fh:
            entries = tomllib.load(fh)["relations"]
    except (OSError, tomllib.TOMLDecodeError, KeyError) as exc:
        raise VasoflowError(f"{order_path}: cannot read the 'relations' list ({exc})") from None
    relations = []
    for entry in entries:
        path = root / f"{entry}.sql"
        name = path.stem
        if not _NAME.match(name):
            raise VasoflowError(f"{order_path}: '{entry}' is not a valid relation name")
        if not path.is_file():
            raise VasoflowError(f"{order_path}: '{entry}' has no file {path}")
        text = path.read_text(encoding="utf-8").strip()
        relations.append(SqlRelation(name=name, path=path, select_sql=text.rstrip(";").rstrip()))
    return relations


def build_relations(con, names: list[str] | None = None, sql_root: Path | None = None,
                    timings: dict[str, float] | None = None) -> list[str]:
    """Create (or replace) each relation as a table, in build order.

    ``names``: build only these (still in build order; their inputs must already exist).
    ``timings``: when given, receives each relation's build time in seconds (benchmarks).
    Returns the names built. Runs in the caller's transaction, if any.
    """
    relations = build_order(sql_root)
    if names is not None:
        known = {r.name for r in relations}
        unknown = sorted(set(names) - known)
        if unknown:
            raise VasoflowError(f"sql/build_order.toml: unknown relation(s) {', '.join(unknown)}")
        relations = [r for r in relations if r.name in set(names)]
    built = []
    for rel in relations:
        start = time.perf_counter()
        try:
            con.execute(f'CREATE OR REPLACE TABLE "{rel.name}" AS\n{rel.select_sql}')
        except Exception as exc:  # duckdb.Error subclasses; name the file that failed
            raise VasoflowError(f"{rel.path}: building '{rel.name}' failed: {exc}".splitlines()[0]) from exc
        if timings is not None:
            timings[rel.name] = time.perf_counter() - start
        built.append(rel.name)
    return built

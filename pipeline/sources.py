"""Which database layout a source folder is in: MIMIC-IV (``hosp/`` and ``icu/``) or eICU-CRD
(one folder of tables, ``patient`` and ``infusionDrug`` among them).

``detect_source_format(source_dir)`` returns ``"mimic"`` or ``"eicu"``. The environment variable
``VASOFLOW_SOURCE_FORMAT`` (set by ``--source-format`` on the command line) forces one; a folder
with both layouts is refused unless it is set (reading one and ignoring the other would be a
silent choice).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from pipeline.errors import InputFileError
from pipeline.resources import resource_dir

SOURCE_FORMATS = ("mimic", "eicu")
FORMAT_ENV = "VASOFLOW_SOURCE_FORMAT"


# Where the eICU settings and SQL live. Defined here, not in pipeline.eicu (which re-exports
# them), so that detecting the layout and computing the ingest key import no validation code
# (pandera took ~1-3 s of every run's start; issue 16).
def default_eicu_config_path() -> Path:
    return resource_dir("config") / "eicu.toml"


def eicu_sql_root() -> Path:
    return resource_dir("sql") / "sources" / "eicu"


def eicu_marker_tables() -> list[str]:
    """The tables whose presence marks an eICU folder (config/eicu.toml [layout].marker_tables)."""
    raw = tomllib.loads(default_eicu_config_path().read_text(encoding="utf-8"))
    return [str(t).lower() for t in raw["layout"]["marker_tables"]]


def _has_eicu_tables(source_dir: Path) -> bool:
    try:
        names = {p.name.lower() for p in Path(source_dir).iterdir()}
    except OSError:
        return False
    return all(any(f"{t}{s}" in names for s in (".csv.gz", ".csv", ".parquet")) for t in eicu_marker_tables())


def detect_source_format(source_dir: Path, forced: str | None = None) -> str:
    """``"mimic"`` or ``"eicu"`` for ``source_dir`` (see module docs)."""
    forced = forced or os.environ.get(FORMAT_ENV) or None
    if forced is not None:
        if forced not in SOURCE_FORMATS:
            raise InputFileError(f"source format '{forced}' is unknown (one of: {', '.join(SOURCE_FORMATS)})")
        return forced
    source_dir = Path(source_dir)
    is_mimic = (source_dir / "icu").is_dir() or (source_dir / "hosp").is_dir()
    is_eicu = _has_eicu_tables(source_dir)
    if is_mimic and is_eicu:
        raise InputFileError(f"{source_dir}: holds both MIMIC-IV (hosp/, icu/) and eICU tables; "
                             "choose one with --source-format mimic|eicu")
    return "eicu" if is_eicu else "mimic"


def source_tables(source_dir: Path) -> dict:
    """The table specs (``schemas.raw.RawTable`` by name) the ingest reads from ``source_dir``
    (eICU files are found by ``pipeline.eicu.find_table``, MIMIC-IV's by ``find_table_file``)."""
    if detect_source_format(source_dir) == "eicu":
        from schemas.eicu import EICU_TABLES

        return EICU_TABLES
    from schemas.raw import RAW_TABLES

    return RAW_TABLES

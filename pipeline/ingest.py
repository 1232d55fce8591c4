"""Load MIMIC-IV-layout files into DuckDB with explicit types, validate, and account for rows.

``ingest(source_dir, db_path, config)`` builds a new database file next to ``db_path`` and
swaps it in atomically only when everything succeeded: an existing database is never left
half-written. For each table in ``schemas.raw.RAW_TABLES`` it

1. finds ``<module>/<table>.csv.gz``, ``.csv`` or ``.parquet`` (a missing required table is an
   error; a missing optional one gives a warning, an empty table and ``is_available = false``
   in ``source_table``, so downstream steps mark the features that need it unavailable);
2. reads the header (parsed as CSV; a UTF-8 byte-order mark is dropped with a warning; a
   column named twice is an error), matches the known columns (case-insensitive), reads every
   value as text and casts it explicitly, only from its plain text form (no type sniffing; see
   ``_PLAIN_TEXT``: '41.4', '0x29', a zone suffix, 'infinity' are unparseable, not rounded);
   a required table with no rows is an error; tables with ``itemid_filter`` are cut to the
   concept item ids while they are read, inside DuckDB (full chartevents never reaches Python);
3. quarantines unparseable values (rule ``conformance.type``) and rows failing the Pandera
   model (``schemas.validation``), validated in chunks of collected polars frames that carry
   the columns a rule reads (every column's type is checked once, on an empty frame), on a
   second connection while DuckDB loads the next table; then, for
   inputevents, the context rule ``plausibility.rate_artifact`` (bag-finish rates far above both
   neighbours of the same drug), one set-based DuckDB window query;
4. records the ledger: rows read, loaded and quarantined (per rule), with
   rows_read == rows_loaded + rows_quarantined.

Tables in the database: ``raw_<table>`` (every row read, typed, with ``source_row``),
``quarantine`` (table_name, source_row, rule, column_name, value), ``valid_<table>`` (view: raw
minus quarantined), ``source_table``, ``ledger``, ``ledger_rule``, and the concept tables.
``source_row`` numbers the rows 1.. in the order DuckDB inserted them (the table's rowid; the
in-scope rows only, for tables filtered by item id). That is file order for a small file, but
not for a large .csv.gz: DuckDB inserts its blocks out of order (chartevents at 100k stays: row 1
is the file's 29,254th kept row), so each quarantined row also has ``row_key`` (its ids and first
time) to find it in the file. Parquet files give their own row number.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import json
import logging
import os
import re
import shutil
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandera.polars as pa
import polars as pl

from pipeline.concepts import Concepts, RateArtifactRule, load_concepts, register_concept_tables
from pipeline.config import StudyConfig
from pipeline.duckdb_settings import connect as connect_duckdb
from pipeline.errors import InputFileError, resource_exhausted
from pipeline.runs import remove_dead_builds
from pipeline.sources import detect_source_format
from schemas.raw import RAW_TABLES, RawTable, duckdb_type, empty_table_sql, find_table_file
from schemas.validation import (
    RATE_ARTIFACT_RULE,
    RATE_ARTIFACT_SQL,
    STAY_INTIME,
    STAY_OUTTIME,
    build_raw_schema,
    columns_with_rules,
    failure_rules,
    rule_column,
)

# Order matters: icustays first (other tables' time checks join it).
LOAD_ORDER = ["icustays", "patients", "admissions", "diagnoses_icd", "d_items", "inputevents",
              "procedureevents", "chartevents", "labevents", "prescriptions", "emar"]
assert sorted(LOAD_ORDER) == sorted(RAW_TABLES)

KEY_TABLES = {"patients", "admissions", "icustays", "d_items"}


log = logging.getLogger("vasoflow")


@dataclass(frozen=True)
class TableLedger:
    table: str
    file: str | None
    is_available: bool
    rows_read: int
    rows_loaded: int
    rows_quarantined: int
    itemid_filter: bool
    ignored_columns: tuple[str, ...] = ()
    absent_optional_columns: tuple[str, ...] = ()
    quarantined_by_rule: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0  # load + validate time of this table


@dataclass(frozen=True)
class IngestResult:
    db_path: Path
    ledger_path: Path
    tables: tuple[TableLedger, ...]
    warnings: tuple[str, ...]
    seconds: float

    def ledger_frame(self) -> pl.DataFrame:
        return pl.DataFrame(
            [
                {k: getattr(t, k) for k in ("table", "is_available", "rows_read", "rows_loaded",
                                            "rows_quarantined", "itemid_filter")}
                for t in self.tables
            ]
        )

    def describe(self) -> str:
        lines = [f"ingest: {self.db_path} ({self.seconds:.1f} s); ledger {self.ledger_path}"]
        for t in self.tables:
            if not t.is_available:
                lines.append(f"  {t.table:<16} not available (optional)")
                continue
            lines.append(
                f"  {t.table:<16} read {t.rows_read:>10,}  loaded {t.rows_loaded:>10,}  "
                f"quarantined {t.rows_quarantined:>7,}" + ("  (item-id filtered)" if t.itemid_filter else "")
            )
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Files and headers
# --------------------------------------------------------------------------------------------

def _read_csv_header(path: Path) -> list[str]:
    """Column names of a CSV header, parsed as CSV (a quoted name may hold a comma). A UTF-8
    byte-order mark is dropped (``utf-8-sig``); DuckDB skips it too when it reads the rows."""
    try:
        if path.stat().st_size == 0:
            raise InputFileError(f"{path}: file is empty (no header line)")
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8-sig", newline="") as fh:
            header = next(csv.reader(fh), [])
    except InputFileError:
        raise
    except csv.Error as exc:
        raise InputFileError(f"{path}: cannot parse the header line as CSV ({_short(exc)})") from None
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
        raise InputFileError(f"{path}: cannot read header ({_short(exc)})") from None
    header = [c.strip() for c in header]
    if not any(header):
        raise InputFileError(f"{path}: file is empty (no header line)")
    return header


def _has_bom(path: Path) -> bool:
    """True when a CSV starts with the UTF-8 byte-order mark (Excel writes one)."""
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            return fh.read(3) == codecs.BOM_UTF8
    except (OSError, EOFError, zlib.error):
        return False


def _parquet_header(con: duckdb.DuckDBPyConnection, path: Path) -> list[str]:
    try:
        rows = con.execute("SELECT name FROM parquet_schema(?) WHERE num_children IS NULL", [str(path)]).fetchall()
    except duckdb.Error as exc:
        raise InputFileError(f"{path}: cannot read parquet schema ({_short(exc)})") from None
    return [r[0] for r in rows]


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else exc.__class__.__name__


def _q(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# --------------------------------------------------------------------------------------------
# Loading one table
# --------------------------------------------------------------------------------------------

@dataclass
class _Mapped:
    header: list[str]
    present: dict[str, str]  # known column -> name in file
    ignored: list[str]
    absent_optional: list[str]


def _map_columns(path: Path, table: RawTable, header: list[str]) -> _Mapped:
    seen: set[str] = set()
    for h in header:
        if h.lower() in seen:  # which of the two would be read is a silent choice
            raise InputFileError(f"{path}: column '{h}' appears twice in the header")
        seen.add(h.lower())
    by_lower = {h.lower(): h for h in header}
    present = {c: by_lower[c] for c in table.columns if c in by_lower}
    missing = [c for c in table.required_columns if c not in present]
    if missing:
        raise InputFileError(
            f"{path}: missing required column{'s' if len(missing) > 1 else ''} "
            + ", ".join(f"'{m}'" for m in missing)
        )
    known = {c.lower() for c in table.columns}
    ignored = [h for h in header if h.lower() not in known]
    absent = [c for c in table.columns if c not in present]
    return _Mapped(header, present, ignored, absent)


def _source_relation(path: Path, mapped: _Mapped) -> str:
    """SQL of a relation with every file column as VARCHAR and ``_file_row`` (1-based)."""
    if path.name.endswith(".parquet"):
        cols = ", ".join(f"CAST({_q(h)} AS VARCHAR) AS {_q(h)}" for h in mapped.header)
        return (f"(SELECT {cols}, file_row_number + 1 AS _file_row "
                f"FROM read_parquet({_lit(str(path))}, file_row_number = true))")
    columns = "{" + ", ".join(f"{_lit(h)}: 'VARCHAR'" for h in mapped.header) + "}"
    return (
        f"(SELECT * FROM read_csv({_lit(str(path))}, header = true, auto_detect = false, "
        f"delim = ',', quote = '\"', escape = '\"', columns = {columns}, strict_mode = true))"
    )


# DuckDB's casts are lenient in ways that change meaning: '41.4' -> BIGINT 41, '0x29' -> 41,
# '2150-01-01 10:00-05:00' -> 10:00 with the zone dropped, 'infinity' -> year 9999 (and a
# PanicException in polars later), 'epoch' -> 1970. So a value is cast only when its text has
# the plain form below; anything else is unparseable (quarantined, rule conformance.type, or
# the file is refused when a whole column is). Stated conversions: an integral decimal
# ('41.0', written by float-typed exporters) is the integer 41; a date column accepts a
# midnight time ('2150-01-01 00:00:00'); 'T' between date and time is accepted.
_PLAIN_TEXT = {
    "BIGINT": r"\s*[+-]?[0-9]+(\.0*)?\s*",
    "TIMESTAMP": r"\s*[0-9]{4}-[0-9]{2}-[0-9]{2}([ T][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?)?\s*",
    "DATE": r"\s*[0-9]{4}-[0-9]{2}-[0-9]{2}([ T]00:00(:00(\.0+)?)?)?\s*",
}
# A time zone suffix ('Z', '+01:00', '-0500', ' EST'): MIMIC-IV times are local wall-clock
# times without a zone, and shifting them would move events relative to each other.
_ZONE_SUFFIX = r".*[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?\s*(Z|[+-][0-9]{2}(:?[0-9]{2})?|[A-Za-z]{2,5})\s*"


# Length of the canonical text of a value (years 1000-9999, no fraction): text of that length
# equal to the text of its own cast value is plain without the regular expression.
_CANONICAL_LENGTH = {"TIMESTAMP": 19, "DATE": 10}


def _typed_value(src: str, target: str) -> str:
    """SQL casting the text column ``src`` to ``target``; NULL when the text is not plain.

    Shortcut before the regular expression: text equal to the canonical text of its cast value
    ('41', '2150-01-01 10:00:00') is plain, as the expression would also say (the canonical
    form matches it; the length check excludes '(BC)', 5-digit years and fractions). Most values
    take it: the cast of chartevents at 100k stays took 12.7 instead of 18.5 CPU seconds."""
    if target in _PLAIN_TEXT:
        value = f"TRY_CAST({src} AS {target})"
        canonical = f"CAST({value} AS VARCHAR) = {src}"
        if target in _CANONICAL_LENGTH:
            canonical += f" AND length({src}) = {_CANONICAL_LENGTH[target]}"
        plain = f"regexp_full_match({src}, {_lit(_PLAIN_TEXT[target])})"
        return f"CASE WHEN ({canonical}) OR {plain} THEN {value} END"
    if target == "DOUBLE":  # 'inf' and 'nan' are not measurements
        return f"CASE WHEN isfinite(TRY_CAST({src} AS DOUBLE)) THEN TRY_CAST({src} AS DOUBLE) END"
    return f"TRY_CAST({src} AS {target})"


def _load_raw(con, path: Path, table: RawTable, mapped: _Mapped, concepts: Concepts) -> None:
    # Inner projection: each value is cast once (``__v<i>``) beside its text (``__s<i>``; the
    # generated names cannot collide with a file's columns). Outer: the typed columns, and the
    # unparseable values as a list that is built only for a row with one (NULL otherwise): the
    # list of structs for every row cost a fifth of the cast step (cProfile + timing, 30k stays).
    inner, casts, flags, errors = [], [], [], []
    for i, (col, dtype) in enumerate(table.columns.items()):
        target = duckdb_type(dtype)
        if col not in mapped.present:
            casts.append(f"CAST(NULL AS {target}) AS {_q(col)}")
            continue
        text, typed = f"__s{i}", f"__v{i}"
        inner.append(f"{_q(mapped.present[col])} AS {text}")
        if target == "VARCHAR":  # text never fails; an empty string is null (MIMIC writes nulls as empty fields)
            casts.append(f"{text} AS {_q(col)}")
            continue
        inner.append(f"{_typed_value(_q(mapped.present[col]), target)} AS {typed}")
        casts.append(f"{typed} AS {_q(col)}")
        flags.append(f"({text} IS NOT NULL AND {typed} IS NULL)")
        errors.append(f"CASE WHEN {text} IS NOT NULL AND {typed} IS NULL "
                      f"THEN {{'column_name': {_lit(col)}, 'value': {text}}} END")
    err_expr = (
        f"CASE WHEN {' OR '.join(flags)} THEN list_filter([{', '.join(errors)}], x -> x IS NOT NULL) END"
        if errors else "CAST(NULL AS STRUCT(column_name VARCHAR, value VARCHAR)[])"
    )
    where = ""
    if table.itemid_filter:
        ids = concepts.itemids(table=table.name)
        id_list = ", ".join(str(int(i)) for i in ids) or "NULL"
        itemid = _q(mapped.present["itemid"])
        # Rows whose itemid does not parse (the cast is NULL, so the IN is NULL) are kept, and
        # quarantined as conformance.type, rather than silently filtered out. One cast per row.
        where = f"WHERE coalesce(TRY_CAST({itemid} AS BIGINT) IN ({id_list}), true)"
    # One statement: read (cut by item id) and cast as the file streams, on both cores. Rows are
    # then numbered by the new table's rowid (insertion order; an UPDATE of one column, 0.6 s
    # for 8.6M rows). A text staging table first cost a fifth more (chartevents at 100k stays:
    # the staged strings are written, then read again), and a row_number() window over the scan
    # 1.5-2x (it makes the read one ordered stream). Parquet files give their row number.
    keep_file_row = path.name.endswith(".parquet") and not table.itemid_filter
    first = "__row" if keep_file_row else "CAST(NULL AS BIGINT)"
    file_row = "_file_row AS __row, " if keep_file_row else ""
    raw = _q("raw_" + table.name)
    try:
        con.execute(
            f"CREATE TABLE {raw} AS "
            f"SELECT {first} AS source_row, {', '.join(casts)}, {err_expr} AS _type_errors "
            f"FROM (SELECT {file_row}{', '.join(inner)} FROM {_source_relation(path, mapped)} {where})"
        )
        if not keep_file_row:
            con.execute(f"UPDATE {raw} SET source_row = rowid + 1")
    except duckdb.Error as exc:
        raise resource_exhausted(exc, f"loading {path}") or InputFileError(
            f"{path}: cannot read ({_short(exc)})") from None


def _quarantine_type_errors(con, path: Path, table: RawTable, rows_read: int, max_fraction: float) -> None:
    raw = _q("raw_" + table.name)
    per_col = con.execute(
        f"SELECT e.column_name, count(*), min(r.source_row), arg_min(e.value, r.source_row) "
        f"FROM {raw} r, unnest(r._type_errors) AS u(e) GROUP BY 1 ORDER BY 2 DESC"
    ).fetchall()
    for column, n, first_row, example in per_col:
        if rows_read and n / rows_read > max_fraction:
            target = duckdb_type(table.columns[column])
            hint = "wrong type or format"
            if target in ("TIMESTAMP", "DATE") and re.fullmatch(_ZONE_SUFFIX, str(example)):
                hint = ("times with a time zone are refused: MIMIC-IV times are local wall-clock times; "
                        "write them as local times without a zone")
            raise InputFileError(
                f"{path}: column '{column}': {n:,} of {rows_read:,} values are not {target} "
                f"(e.g. '{example}' in data row {first_row}); {hint}"
            )
    con.execute(
        f"INSERT INTO quarantine (table_name, source_row, rule, column_name, value) "
        f"SELECT {_lit(table.name)}, r.source_row, 'conformance.type', "
        f"e.column_name, e.value FROM {raw} r, unnest(r._type_errors) AS u(e)"
    )


def _validate(con, table: RawTable, concepts: Concepts, config: StudyConfig) -> pl.DataFrame | None:
    """Run the Pandera model over the rows that parsed, in chunks; returns the quarantine rows
    of the failures (None when every row passes). Only reads ``con``."""
    schema = build_raw_schema(table.name, concepts, config)
    raw = _q("raw_" + table.name)
    join = ""
    if table.time_columns_in_stay:
        join = "LEFT JOIN (SELECT stay_id, any_value(intime) AS intime, any_value(outtime) AS outtime " \
               "FROM raw_icustays GROUP BY stay_id) s ON s.stay_id = r.stay_id"
    stay = {STAY_INTIME: "s.intime", STAY_OUTTIME: "s.outtime"}

    def select(columns) -> str:
        return ", ".join(f"{stay[c]} AS {c}" if c in stay else f"r.{_q(c)}" for c in columns)

    # Every column's type, checked once on an empty frame (the cast fixed them); then the rows,
    # with only the columns a value rule reads (schemas.validation.columns_with_rules).
    schema.validate(pl.from_arrow(con.execute(f"SELECT {select(schema.columns)} FROM {raw} r {join} LIMIT 0").to_arrow_table()))
    needed = columns_with_rules(schema)
    if "source_row" not in needed:
        needed.insert(0, "source_row")
    chunk = int(config.get("ingest.validation_chunk_rows"))
    return failures_in_chunks(
        con, table.name, schema.select_columns(needed),
        f"SELECT {select(needed)} FROM {raw} r {join} WHERE r._type_errors IS NULL",
        None if table.name in KEY_TABLES else chunk,  # duplicate keys are found within one frame
    )


def validate_in_chunks(con, table_name: str, schema: pa.DataFrameSchema, select_sql: str,
                       chunk_rows: int | None, column_of=None) -> None:
    """Validate the rows of ``select_sql`` with ``schema`` and quarantine the failures."""
    _insert_quarantine(con, failures_in_chunks(con, table_name, schema, select_sql, chunk_rows, column_of))


def failures_in_chunks(con, table_name: str, schema: pa.DataFrameSchema, select_sql: str,
                       chunk_rows: int | None, column_of=None) -> pl.DataFrame | None:
    """The quarantine rows of the rows of ``select_sql`` that fail ``schema``, validated in
    frames of ``chunk_rows`` rows (all at once when None) streamed from one query. Frames come
    in no particular order: every rule is row-wise, except duplicate keys, which need the whole
    table (None). The rows are returned, not inserted: a statement on ``con`` would end the
    stream, and the ingest validates on a second connection while the next table loads."""
    result = con.execute(select_sql)
    batches = [result.to_arrow_table()] if chunk_rows is None else result.to_arrow_reader(chunk_rows)
    failures = []
    for batch in batches:
        frame = pl.from_arrow(batch)
        if isinstance(frame, pl.DataFrame) and frame.height:
            rows = _failure_rows(table_name, schema, frame, column_of)
            if rows is not None:
                failures.append(rows)
    if not failures:
        return None
    # in row order, so the quarantine does not depend on the order the frames came in
    return pl.concat(failures, how="vertical_relaxed").sort("source_row", maintain_order=True)


def _insert_quarantine(con, rows: pl.DataFrame | None) -> None:
    if rows is None:
        return
    con.register("_failures", rows.to_arrow())
    con.execute("INSERT INTO quarantine (table_name, source_row, rule, column_name, value) SELECT * FROM _failures")
    con.unregister("_failures")


def _failure_rows(table_name: str, schema: pa.DataFrameSchema, frame: pl.DataFrame,
                  column_of=None) -> pl.DataFrame | None:
    """The quarantine rows (table_name, source_row, rule, column_name, value) of ``frame``'s
    failures of ``schema``; None when it passes."""
    try:
        schema.validate(frame, lazy=True)
        return None
    except pa.errors.SchemaErrors as exc:
        cases = failure_rules(exc.failure_cases)
    indexed = frame.with_row_index("index").with_columns(pl.col("index").cast(pl.Int64))
    parts = []
    # Frame-level rules report the whole row; show the value of the column the rule is about.
    for (rule,), group in cases.group_by(["rule"], maintain_order=True):
        if not group["column_name"].is_null().all():
            parts.append(group.join(indexed.select("index", "source_row"), on="index", how="left"))
            continue
        column = (column_of or rule_column)(table_name, rule)
        picked = indexed.select(
            "index", "source_row",
            (pl.col(column).cast(pl.String) if column else pl.lit(None, pl.String)).alias("_value"),
        )
        parts.append(
            group.join(picked, on="index", how="left")
            .with_columns(pl.lit(column).alias("column_name"), pl.col("_value").alias("value"))
            .drop("_value")
        )
    return (
        pl.concat([p.select("source_row", "rule", "column_name", "value") for p in parts], how="vertical_relaxed")
        .select(pl.lit(table_name).alias("table_name"), "source_row", "rule", "column_name", "value")
        .unique(["source_row", "rule", "column_name"], maintain_order=True)
    )


# --------------------------------------------------------------------------------------------
# Context rules: need neighbouring rows, so they run set-based in DuckDB after the row-wise
# Pandera checks (which see one chunk at a time).
# --------------------------------------------------------------------------------------------

def rate_artifact_rows(con, rule: RateArtifactRule, *, exclude_quarantined: bool = True) -> pl.DataFrame:
    """Rows of ``raw_inputevents`` that rule ``plausibility.rate_artifact`` catches, with their
    context (duration_minutes, rate_canonical, previous/next_rate_canonical). Needs the
    ``concept_drug_unit`` and ``quarantine`` tables of an ingest database."""
    return con.execute(
        RATE_ARTIFACT_SQL,
        [rule.max_duration_minutes, rule.min_fraction_of_plausible_max, rule.min_jump_factor, exclude_quarantined],
    ).pl()


def _quarantine_rate_artifacts(con, concepts: Concepts) -> None:
    """Quarantine bag-finish rate artifacts of vasoactive drugs (concepts.toml [rate_artifact])."""
    rows = rate_artifact_rows(con, RateArtifactRule.from_concepts(concepts))
    if rows.is_empty():
        return
    con.register("_artifacts", rows.select("source_row", pl.col("rate").cast(pl.String).alias("value")).to_arrow())
    con.execute(
        "INSERT INTO quarantine (table_name, source_row, rule, column_name, value) "
        "SELECT 'inputevents', source_row, ?, 'rate', value FROM _artifacts",
        [RATE_ARTIFACT_RULE],
    )
    con.unregister("_artifacts")


_KEY_COLUMNS = ("subject_id", "hadm_id", "stay_id", "itemid")
_TIME_COLUMNS = ("starttime", "charttime", "intime", "admittime")


def _add_row_keys(con, table: RawTable) -> None:
    """Give each quarantined row a readable identity (ids and first time), so a user can find
    it in the source even where ``source_row`` numbers only the item-id-filtered rows."""
    parts = [f"'{c}=' || r.{_q(c)}" for c in _KEY_COLUMNS if c in table.columns]
    parts += [f"'{c}=' || strftime(r.{_q(c)}, '%Y-%m-%d %H:%M:%S')" for c in _TIME_COLUMNS if c in table.columns][:1]
    if not parts:
        return
    con.execute(
        f"UPDATE quarantine q SET row_key = concat_ws(' ', {', '.join(parts)}) "
        f"FROM {_q('raw_' + table.name)} r WHERE q.table_name = ? AND q.source_row = r.source_row",
        [table.name],
    )


# --------------------------------------------------------------------------------------------
# The whole ingest
# --------------------------------------------------------------------------------------------

def _connect(path: Path) -> duckdb.DuckDBPyConnection:
    return connect_duckdb(path)  # VASOFLOW_MEMORY_LIMIT / VASOFLOW_THREADS (pipeline.duckdb_settings)


def ingest(
    source_dir: Path,
    db_path: Path,
    config: StudyConfig,
    concepts: Concepts | None = None,
) -> IngestResult:
    """Build ``db_path`` from the MIMIC-IV-layout folder ``source_dir`` (see module docs)."""
    t0 = time.perf_counter()
    source_dir, db_path = Path(source_dir), Path(db_path)
    if not source_dir.is_dir():
        raise InputFileError(f"{source_dir}: source folder not found (expected hosp/ and icu/ inside)")
    concepts = concepts or load_concepts()
    source_format = detect_source_format(source_dir)
    if source_format == "eicu":  # eICU-CRD: its own tables, mapped onto the same valid_* relations
        from pipeline import eicu

        files, build = eicu.find_files(source_dir), eicu.build
    else:
        files, build = _find_files(source_dir), _build
    db_path.parent.mkdir(parents=True, exist_ok=True)

    for name in (db_path.name, "ledger.json"):  # a killed earlier ingest's partial files
        remove_dead_builds(db_path.parent, name)
    tmp_db = db_path.with_name(f".{db_path.name}.building-{os.getpid()}")
    tmp_ledger = db_path.with_name(f".ledger.json.building-{os.getpid()}")
    spill = tmp_db.with_name(tmp_db.name + ".spill")
    for p in (tmp_db, tmp_db.with_name(tmp_db.name + ".wal"), tmp_ledger):
        p.unlink(missing_ok=True)
    try:
        con = _connect(tmp_db)
        try:
            ledgers, notes = build(con, files, concepts, config)
        finally:
            con.close()
        ledger_path = db_path.with_name("ledger.json")
        payload = {
            "source_dir": str(source_dir.resolve()),
            "source_format": source_format,
            "tables": [
                {**{k: v for k, v in t.__dict__.items() if k != "quarantined_by_rule"},
                 "ignored_columns": list(t.ignored_columns),
                 "absent_optional_columns": list(t.absent_optional_columns),
                 "quarantined_by_rule": t.quarantined_by_rule}
                for t in ledgers
            ],
            "warnings": notes,
        }
        tmp_ledger.write_text(json.dumps(payload, indent=2, sort_keys=True))
        os.replace(tmp_db, db_path)
        os.replace(tmp_ledger, ledger_path)
    except BaseException:
        for p in (tmp_db, tmp_db.with_name(tmp_db.name + ".wal"), tmp_ledger):
            p.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(spill, ignore_errors=True)
    return IngestResult(db_path, ledger_path, tuple(ledgers), tuple(notes), time.perf_counter() - t0)


def _find_files(source_dir: Path) -> dict[str, Path | None]:
    """The MIMIC-IV-layout file of each table of LOAD_ORDER (None: optional and absent)."""
    files = {}
    for name in LOAD_ORDER:
        table = RAW_TABLES[name]
        path = find_table_file(source_dir, table)
        if path is None and table.is_required:
            raise InputFileError(
                f"{source_dir / table.module / (name + '.csv.gz')}: required table '{name}' not found "
                f"(also looked for .csv and .parquet)"
            )
        if path is not None and not os.access(path, os.R_OK):
            raise InputFileError(f"{path}: file is not readable (permissions)")
        files[name] = path
    return files


def load_table(con, path: Path, table: RawTable, name: str, concepts, max_fraction: float,
               notes: list[str]) -> tuple[dict, int]:
    """Read one source file into ``raw_<name>`` as text, refuse it when empty and quarantine
    values that do not cast; returns the column mapping and the rows read. Shared by the
    MIMIC-IV and eICU ingests (``pipeline.eicu``)."""
    header = _parquet_header(con, path) if path.name.endswith(".parquet") else _read_csv_header(path)
    mapped = _map_columns(path, table, header)
    if not path.name.endswith(".parquet") and _has_bom(path):
        notes.append(f"{path}: UTF-8 byte-order mark at the start ignored (read as UTF-8)")
    _load_raw(con, path, table, mapped, concepts)
    rows_read = con.execute(f"SELECT count(*) FROM {_q('raw_' + name)}").fetchone()[0]
    _check_not_empty(path, table, rows_read, notes)
    _quarantine_type_errors(con, path, table, rows_read, max_fraction)
    return mapped, rows_read


def _check_not_empty(path: Path, table: RawTable, rows_read: int, notes: list[str]) -> None:
    """A required table with a header and no rows is an error: the study would otherwise
    "succeed" with 0 stays. Item-filtered tables count only the concept's items, so none of
    them in a real file (e.g. no dialysis at a site) is a warning, not an error."""
    if rows_read or not table.is_required:
        return
    if not table.itemid_filter:
        raise InputFileError(f"{path}: required table '{table.name}' has no data rows (header only)")
    msg = f"{path}: no rows with the concept item ids of '{table.name}' (config/concepts.toml)"
    log.warning(msg)
    notes.append(msg)


def _build(con, files: dict[str, Path | None], concepts: Concepts, config: StudyConfig):
    register_concept_tables(con, concepts, config)
    con.execute(
        "CREATE TABLE quarantine (table_name VARCHAR, source_row BIGINT, rule VARCHAR, "
        "column_name VARCHAR, value VARCHAR, row_key VARCHAR)"
    )
    max_fraction = float(config.get("ingest.max_unparseable_fraction"))
    ledgers: list[TableLedger] = []
    notes: list[str] = []
    # Each table's Pandera validation (Python and polars, mostly one core) runs on a second
    # connection while DuckDB loads the next table; its quarantine rows, context rule, row keys
    # and ledger are written on this connection once both are done (``finish``), table by
    # table in load order, so the database is the same as a one-after-the-other ingest.
    pending: tuple | None = None

    def finish(name: str, path: Path, table: RawTable, mapped: _Mapped, rows_read: int,
               seconds: float, validation) -> None:
        failures, validate_seconds = validation.result()
        _insert_quarantine(con, failures)
        if name == "inputevents":
            _quarantine_rate_artifacts(con, concepts)
        con.execute(f"ALTER TABLE {_q('raw_' + name)} DROP COLUMN _type_errors")
        _add_row_keys(con, table)
        by_rule = dict(
            con.execute(
                "SELECT rule, count(DISTINCT source_row) FROM quarantine WHERE table_name = ? GROUP BY 1 ORDER BY 1",
                [name],
            ).fetchall()
        )
        n_quarantined = con.execute(
            "SELECT count(DISTINCT source_row) FROM quarantine WHERE table_name = ?", [name]
        ).fetchone()[0]
        ledgers.append(
            TableLedger(name, str(path), True, rows_read, rows_read - n_quarantined, n_quarantined,
                        table.itemid_filter, tuple(mapped.ignored), tuple(mapped.absent_optional), by_rule,
                        round(seconds + validate_seconds, 3))
        )

    def validate(cursor, table: RawTable):
        try:
            t0 = time.perf_counter()
            return _validate(cursor, table, concepts, config), time.perf_counter() - t0
        finally:
            cursor.close()

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="vasoflow-validate") as pool:
        for name in LOAD_ORDER:
            table = RAW_TABLES[name]
            path = files[name]
            if path is None:
                con.execute(empty_table_sql(table, "raw_" + name).replace("CREATE OR REPLACE TABLE", "CREATE TABLE"))
                msg = (f"optional table {table.relpath} not found: features that need it are marked unavailable")
                log.warning(msg)
                notes.append(msg)
                if pending is not None:
                    finish(*pending)
                    pending = None
                ledgers.append(TableLedger(name, None, False, 0, 0, 0, table.itemid_filter))
                continue
            t_table = time.perf_counter()
            mapped, rows_read = load_table(con, path, table, name, concepts, max_fraction, notes)
            seconds = time.perf_counter() - t_table
            if pending is not None:
                finish(*pending)
            pending = (name, path, table, mapped, rows_read, seconds, pool.submit(validate, con.cursor(), table))
        if pending is not None:
            finish(*pending)
    for name in LOAD_ORDER:
        cols = ", ".join(_q(c) for c in ["source_row", *RAW_TABLES[name].columns])
        con.execute(
            f"CREATE VIEW {_q('valid_' + name)} AS SELECT {cols} FROM {_q('raw_' + name)} r "
            f"WHERE NOT EXISTS (SELECT 1 FROM quarantine q WHERE q.table_name = {_lit(name)} "
            f"AND q.source_row = r.source_row)"
        )
    ledger = pl.DataFrame(
        [{k: getattr(t, k) for k in ("table", "file", "is_available", "rows_read", "rows_loaded",
                                      "rows_quarantined", "itemid_filter")} for t in ledgers],
        schema={"table": pl.String, "file": pl.String, "is_available": pl.Boolean, "rows_read": pl.Int64,
                "rows_loaded": pl.Int64, "rows_quarantined": pl.Int64, "itemid_filter": pl.Boolean},
    )
    rules = pl.DataFrame(
        [{"table": t.table, "rule": r, "rows": n} for t in ledgers for r, n in t.quarantined_by_rule.items()],
        schema={"table": pl.String, "rule": pl.String, "rows": pl.Int64},
    )
    for rel, frame in (("ledger", ledger), ("ledger_rule", rules)):
        con.register("_frame", frame.to_arrow())
        con.execute(f"CREATE TABLE {rel} AS SELECT * FROM _frame")
        con.unregister("_frame")
    con.execute(
        "CREATE TABLE source_table AS SELECT \"table\" AS table_name, is_available, rows_loaded FROM ledger"
    )
    return ledgers, notes

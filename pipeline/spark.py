"""Run the SQL layer on Apache Spark and compare its outputs with DuckDB's.

DuckDB is the embedded default engine. For data kept in a Spark warehouse, the same SQL files,
transpiled by ``pipeline.sqldialect``, run on a Spark session: ``run_relations_on_spark``
registers parquet copies of the validated tables (``valid_*``, ``concept_*``, ``study_param``,
``source_table``; exported from the ingested DuckDB database by ``export_sources``) as views and
builds each relation of ``sql/build_order.toml`` in order, materialised (local checkpoint) so
that every relation is computed once. ``compare_frames`` checks a Spark output against the DuckDB
one: exact for ids, times, classes and text, 1e-9 (relative, or absolute below 1) for
floating-point rates and durations; numbers printed inside ``detail`` texts may differ by one unit
in their last printed digit (DuckDB's printf rounds an exact tie like 0.25 to even, "0.2", Java's
rounds it up, "0.3").

``spark_engine_check`` is the step ``vasoflow run --engine spark`` adds: it runs the cohort and
audit relations on a local Spark session over parquet copies of the tables of the cohort
database and writes ``spark_<output>.parquet`` plus ``engine_check.json``; any difference from
the DuckDB outputs is an error.

pyspark is an optional extra (``pip install 'vasoflow[spark]'``) and needs Java 17 or newer:
both are checked first, with a one-line error (never a hang) when missing.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from pipeline.duckdb_settings import connect as connect_duckdb
from pipeline.errors import VasoflowError
from pipeline.sqlbuild import SOURCE_RELATION_PATTERN, SqlRelation, build_order
from pipeline.sqldialect import transpile_relation

MIN_JAVA_MAJOR = 17
FLOAT_TOLERANCE = 1e-9
# Columns of formatted text (printf) whose numbers are compared to their last printed digit.
FORMATTED_TEXT_COLUMNS = frozenset({"detail"})

# Output file stem -> relation, for the engine check of `vasoflow run --engine spark`.
SPARK_OUTPUTS: dict[str, str] = {
    "cohort": "mart_cohort",
    "attrition": "mart_attrition",
    "ne_timeline": "mart_ne_timeline",
    "audit": "mart_audit",
    "audit_summary": "mart_audit_summary",
}


class SparkUnavailableError(VasoflowError):
    """pyspark or a suitable Java runtime is missing."""


class EngineMismatchError(VasoflowError):
    """Spark and DuckDB gave different results for a relation."""


# --------------------------------------------------------------------------------------------
# Session
# --------------------------------------------------------------------------------------------

def java_version(timeout_s: float = 60.0) -> str:
    """The version of the Java that Spark will launch (JAVA_HOME's, else ``java`` on PATH);
    SparkUnavailableError when there is none or it is older than 17."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not java or not Path(java).exists():
        where = f"JAVA_HOME={home} has no bin/java" if home else "no `java` on PATH and JAVA_HOME is unset"
        raise SparkUnavailableError(f"the Spark engine needs Java {MIN_JAVA_MAJOR}+: {where}")
    try:
        proc = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=timeout_s,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SparkUnavailableError(f"the Spark engine needs Java {MIN_JAVA_MAJOR}+: `{java} -version` failed ({exc})") from None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', proc.stderr + proc.stdout)
    if proc.returncode != 0 or not match:
        raise SparkUnavailableError(f"the Spark engine needs Java {MIN_JAVA_MAJOR}+: `{java} -version` gave no version")
    major = int(match.group(1)) if match.group(1) != "1" else int(match.group(2) or 0)
    if major < MIN_JAVA_MAJOR:
        raise SparkUnavailableError(f"the Spark engine needs Java {MIN_JAVA_MAJOR}+, {java} is Java {major}")
    return match.group(0).split('"')[1]


def check_spark_available() -> str:
    """Fail fast (before a long run) when pyspark or Java 17+ is missing; returns the Java version."""
    version = java_version()
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise SparkUnavailableError(
            "the Spark engine needs pyspark: install the extra, `pip install 'vasoflow[spark]'` "
            "(or `uv sync --extra spark`)"
        ) from None
    return version


def start_spark(app_name: str = "vasoflow", cores: int = 2, driver_memory: str = "1g",
                conf: Mapping[str, str] | None = None):
    """A local Spark session for the SQL layer: ``local[cores]``, no UI, few shuffle
    partitions (small data), UTC session time zone, timestamps read as plain TIMESTAMP, bound
    to the loopback interface and with no package downloads (works offline). ``conf``: more
    Spark settings (e.g. the tests turn whole-stage code generation off: on tiny data compiling
    the generated code costs more than it saves)."""
    check_spark_available()
    from pyspark.sql import SparkSession
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = (
        SparkSession.builder.master(f"local[{cores}]")
        .appName(app_name)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", str(cores))
        .config("spark.default.parallelism", str(cores))
        .config("spark.driver.memory", driver_memory)
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        # no spark-warehouse/ folder in the caller's working directory (only temp views are made)
        .config("spark.sql.warehouse.dir", str(Path(tempfile.gettempdir()) / "vasoflow-spark-warehouse"))
        # DuckDB's TIMESTAMP is a wall-clock time; read it as Spark's TIMESTAMP in a UTC session
        # so that unix_seconds() and interval arithmetic see the same instants
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.parquet.inferTimestampNTZ.enabled", "false")
        .config("spark.sql.adaptive.enabled", "false")
        # Spark 4.3 fails with "key not found" in Union.rewriteConstraints on a union of
        # checkpointed relations (mart_audit); constraint propagation only prunes filters
        .config("spark.sql.constraintPropagation.enabled", "false")
    )
    for key, value in (conf or {}).items():
        builder = builder.config(key, value)
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # py4j / Java launch failures: one line
        raise SparkUnavailableError(f"cannot start a local Spark session: {str(exc).strip().splitlines()[0]}") from None
    spark.sparkContext.setLogLevel("FATAL")  # errors reach the caller as exceptions
    return spark


# --------------------------------------------------------------------------------------------
# Inputs and relations
# --------------------------------------------------------------------------------------------

def export_sources(con, out_dir: Path) -> dict[str, Path]:
    """Write each source relation of a DuckDB connection (``valid_*``, ``concept_*``,
    ``study_param``, ``source_table``) to ``out_dir/<name>.parquet``; returns name -> path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = [r[0] for r in con.execute(  # also those of attached databases (names resolve by search path)
        "select distinct table_name from information_schema.tables where table_schema = 'main' order by table_name"
    ).fetchall()]
    paths = {}
    for name in names:
        if SOURCE_RELATION_PATTERN.match(name):
            path = out_dir / f"{name}.parquet"
            con.execute(f"COPY (SELECT * FROM \"{name}\") TO '{path.as_posix()}' (FORMAT parquet)")
            paths[name] = path
    return paths


def run_relations_on_spark(spark, sources: Mapping[str, Path], relations: Iterable[SqlRelation]) -> dict[str, float]:
    """Register ``sources`` (name -> parquet) as views, then build each relation (in the order
    given) as a materialised view named after it. Returns relation -> seconds."""
    for name, path in sources.items():
        spark.read.parquet(str(path)).createOrReplaceTempView(name)
    seconds = {}
    for rel in relations:
        t0 = time.perf_counter()
        sql = transpile_relation(rel, "spark", pretty=False)
        try:
            frame = spark.sql(sql).localCheckpoint(eager=True)
        except Exception as exc:  # AnalysisException and friends: name the file
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise VasoflowError(f"{rel.path}: building '{rel.name}' on Spark failed: {first}") from exc
        frame.createOrReplaceTempView(rel.name)
        seconds[rel.name] = time.perf_counter() - t0
    return seconds


def spark_frame(spark, relation: str) -> pl.DataFrame:
    """A relation of the session as a polars frame (timestamps as naive UTC wall-clock times)."""
    frame = pl.from_arrow(spark.table(relation).toArrow())
    return frame.with_columns(
        pl.col(c).dt.replace_time_zone(None) for c, t in frame.schema.items()
        if isinstance(t, pl.Datetime) and t.time_zone is not None
    )


# --------------------------------------------------------------------------------------------
# Comparison
# --------------------------------------------------------------------------------------------

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def _normalise(frame: pl.DataFrame) -> pl.DataFrame:
    """One dtype per kind: Int64, Float64, Boolean, String, Datetime(us), Date."""
    exprs = []
    for name, dtype in frame.schema.items():
        col = pl.col(name)
        if dtype.is_integer():
            exprs.append(col.cast(pl.Int64))
        elif dtype.is_float() or dtype.is_decimal():
            exprs.append(col.cast(pl.Float64))
        elif isinstance(dtype, pl.Datetime):
            exprs.append(col.dt.replace_time_zone(None).dt.cast_time_unit("us"))
        elif dtype == pl.Null:
            exprs.append(col.cast(pl.String))
        else:
            exprs.append(col)
    return frame.select(exprs)


def _floats_equal(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= FLOAT_TOLERANCE * max(1.0, abs(a), abs(b))


def _texts_equal(a: str | None, b: str | None) -> bool:
    """Equal text, numbers allowed one unit apart in their last printed digit."""
    if a is None or b is None:
        return a is None and b is None
    if a == b:
        return True
    if _NUMBER.split(a) != _NUMBER.split(b):
        return False
    for x, y in zip(_NUMBER.findall(a), _NUMBER.findall(b), strict=True):
        decimals = len(x.split(".")[1]) if "." in x else 0
        if ("." in y) != ("." in x) or abs(float(x) - float(y)) > 1.000001 * 10.0 ** -decimals:
            return False
    return True


def compare_frames(expected: pl.DataFrame, actual: pl.DataFrame, name: str) -> list[str]:
    """Differences between two outputs of one relation (empty when they agree): same columns in
    the same order, same rows in any order, values as described in the module docs."""
    if expected.columns != actual.columns:
        return [f"{name}: columns differ: DuckDB {expected.columns} vs Spark {actual.columns}"]
    if expected.height != actual.height:
        return [f"{name}: {expected.height} rows on DuckDB vs {actual.height} on Spark"]
    expected, actual = _normalise(expected), _normalise(actual)
    problems = []
    for c in expected.columns:
        if {expected.schema[c], actual.schema[c]} == {pl.Int64, pl.Float64}:
            # DuckDB's sum() of integers is a HUGEINT, which arrives as a float: compare as
            # integers when every value is whole (a fraction stays a type difference)
            whole = [f[c].drop_nulls() for f in (expected, actual) if f.schema[c] == pl.Float64]
            if all(((v == v.round()) & v.is_finite()).all() for v in whole):
                expected = expected.with_columns(pl.col(c).cast(pl.Int64))
                actual = actual.with_columns(pl.col(c).cast(pl.Int64))
        if expected.schema[c] != actual.schema[c]:
            problems.append(f"{name}.{c}: type {expected.schema[c]} on DuckDB vs {actual.schema[c]} on Spark")
    if problems:
        return problems
    floats = [c for c, t in expected.schema.items() if t == pl.Float64]
    exact = [c for c in expected.columns if c not in floats]
    order = exact + floats
    expected = expected.sort(order, nulls_last=True) if order else expected
    actual = actual.sort(order, nulls_last=True) if order else actual
    for c in expected.columns:
        left, right = expected[c].to_list(), actual[c].to_list()
        if c in floats:
            same = _floats_equal
        elif c in FORMATTED_TEXT_COLUMNS and expected.schema[c] == pl.String:
            same = _texts_equal
        else:
            same = lambda a, b: a == b  # noqa: E731
        bad = [i for i, (a, b) in enumerate(zip(left, right, strict=True)) if not same(a, b)]
        if bad:
            i = bad[0]
            problems.append(
                f"{name}.{c}: {len(bad)} of {len(left)} rows differ, e.g. DuckDB {left[i]!r} vs Spark {right[i]!r}"
            )
    return problems


# --------------------------------------------------------------------------------------------
# The engine check of `vasoflow run --engine spark`
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SparkCheckResult:
    """What ran on Spark, how long, and whether it matched DuckDB."""

    outputs: dict[str, Path]
    report_path: Path
    n_relations: int
    seconds: float

    def describe(self) -> str:
        return (f"spark: {self.n_relations} relations on local Spark, outputs identical to DuckDB "
                f"({', '.join(self.outputs)}) -> {self.report_path} ({self.seconds:.1f} s)")


def spark_engine_check(
    db_path: Path,
    duckdb_outputs: Mapping[str, Path],
    out_dir: Path,
    relation_names: Iterable[str],
    spark=None,
    attach: Mapping[str, Path] | None = None,
) -> SparkCheckResult:
    """Build ``relation_names`` on a local Spark session over parquet copies of the source
    tables of the DuckDB database ``db_path`` (opened read-only), write the outputs of
    ``SPARK_OUTPUTS`` as ``out_dir/spark_<output>.parquet`` and compare each with the DuckDB
    output file of the same name in ``duckdb_outputs``; ``out_dir/engine_check.json`` lists
    the comparison. Raises EngineMismatchError (after writing the report) on any difference.
    ``spark``: a running session to use (left running, with every relation as a view);
    default: a local session started and stopped here. ``attach``: more source databases,
    read-only (pipeline.duckdb_settings.connect)."""
    from pipeline.atomic import write_parquet_atomic, write_text_atomic

    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    wanted = set(relation_names)
    relations = [r for r in build_order() if r.name in wanted]
    parquet_dir = out_dir / "spark_sources"
    con = connect_duckdb(db_path, attach=attach, read_only=True)
    try:
        sources = export_sources(con, parquet_dir)
    finally:
        con.close()
    own_session = spark is None
    if own_session:
        spark = start_spark("vasoflow-run")
    try:
        relation_seconds = run_relations_on_spark(spark, sources, relations)
        frames = {stem: spark_frame(spark, rel) for stem, rel in SPARK_OUTPUTS.items() if rel in wanted}
    finally:
        if own_session:
            spark.stop()
            shutil.rmtree(parquet_dir, ignore_errors=True)
    outputs, checks, problems = {}, [], []
    for stem, frame in frames.items():
        path = write_parquet_atomic(frame, out_dir / f"spark_{stem}.parquet")
        outputs[stem] = path
        expected = pl.read_parquet(duckdb_outputs[stem])
        diff = compare_frames(expected, frame, SPARK_OUTPUTS[stem])
        checks.append({"output": stem, "relation": SPARK_OUTPUTS[stem], "rows": frame.height,
                       "identical": not diff, "differences": diff})
        problems += diff
    report = {"engine": "spark", "relations": relation_seconds, "outputs": checks,
              "float_tolerance": FLOAT_TOLERANCE, "identical": not problems}
    report_path = write_text_atomic(out_dir / "engine_check.json", json.dumps(report, indent=2) + "\n")
    if problems:
        raise EngineMismatchError(f"Spark and DuckDB outputs differ ({report_path}): {problems[0]}")
    return SparkCheckResult(outputs=outputs, report_path=Path(report_path), n_relations=len(relations),
                            seconds=time.perf_counter() - t0)

"""The portable SQL subset of ``sql/`` and its translation to Spark SQL and BigQuery.

``sql/`` keeps one SQL source, written in DuckDB syntax (DuckDB runs it as it is: it is the
embedded default engine). This module parses each file with sqlglot, checks that it stays inside
the portable subset documented in ``sql/README.md`` and rewrites the few DuckDB constructs that
sqlglot does not translate (or translates with other semantics) before sqlglot generates the
target dialect:

* ``to_days/to_hours/to_minutes/to_seconds/to_microseconds(n)`` (an interval of n units added to
  or subtracted from a timestamp): Spark ``n * INTERVAL '1' HOUR`` (exact for integers, rounded
  to the microsecond otherwise), BigQuery ``INTERVAL CAST(n * <microseconds> AS INT64)
  MICROSECOND``;
* ``date_diff('second', a, b)``: Spark ``unix_seconds(b) - unix_seconds(a)`` (DuckDB counts
  second boundaries, as this does), BigQuery ``DATETIME_DIFF(b, a, SECOND)``;
* decimal literals (``3600.0``, ``3600e6``): Spark ``CAST(... AS DOUBLE)``; Spark reads
  ``3600.0`` as a DECIMAL, DuckDB's ``/`` and ``printf('%.1f')`` work on DOUBLE;
* BigQuery only: ``printf`` -> ``FORMAT``; ``strftime`` -> ``FORMAT_DATETIME`` and ``contains`` ->
  ``STRPOS(...) > 0`` (MIMIC-IV on BigQuery keeps times as DATETIME); ``greatest``/``least``
  ignore NULL arguments as in DuckDB and Spark; window ``ORDER BY x`` (DuckDB: NULLs last) ->
  ``ORDER BY x IS NULL, x`` (BigQuery allows no NULLS LAST in window aggregates).

Everything else is sqlglot's own translation, generated with ``unsupported_level=RAISE``: a
construct sqlglot cannot express in the target raises. A function sqlglot does not know (it
would be passed through by name and fail only on the warehouse) raises ``NonPortableSqlError``
unless it is one of the handled ones above.

The BigQuery output is generated and checked for portability here but is not run by the tests
(no BigQuery in CI); the Spark output is run and compared with DuckDB (tests/test_sql_spark.py).
"""

from __future__ import annotations

from pathlib import Path

import sqlglot
from sqlglot import ErrorLevel, exp
from sqlglot.errors import SqlglotError

from pipeline.errors import VasoflowError
from pipeline.sqlbuild import SqlRelation, build_order

SOURCE_DIALECT = "duckdb"
TARGET_DIALECTS = ("spark", "bigquery")

# DuckDB interval constructors allowed in the portable subset: microseconds per unit.
_INTERVAL_FUNCTIONS = {
    "to_days": 86_400_000_000,
    "to_hours": 3_600_000_000,
    "to_minutes": 60_000_000,
    "to_seconds": 1_000_000,
    "to_microseconds": 1,
}
_SPARK_INTERVAL = {
    "to_days": ("1", "DAY"),
    "to_hours": ("1", "HOUR"),
    "to_minutes": ("1", "MINUTE"),
    "to_seconds": ("1", "SECOND"),
    "to_microseconds": ("0.000001", "SECOND"),
}
# sqlglot models DuckDB's to_days (exp.ToDays) but not the other interval constructors.
_TO_DAYS = getattr(exp, "ToDays", None)
# Functions sqlglot parses as unknown (Anonymous) that the transforms below translate.
_HANDLED_FUNCTIONS = frozenset(_INTERVAL_FUNCTIONS) | {"printf"}


class NonPortableSqlError(VasoflowError):
    """A SQL file uses a construct outside the portable subset (sql/README.md)."""


def _function_name(node: exp.Expression) -> str:
    """Lower-case name of a function sqlglot does not model (or of to_days, which it does)."""
    if isinstance(node, exp.Anonymous):
        return node.name.lower()
    if _TO_DAYS is not None and isinstance(node, _TO_DAYS):
        return "to_days"
    return ""


def _first_argument(node: exp.Expression) -> exp.Expression:
    return node.expressions[0] if isinstance(node, exp.Anonymous) else node.this


def check_portable(tree: exp.Expression, where: str) -> None:
    """Raise NonPortableSqlError for the first construct outside the portable subset."""
    for node in tree.walk():
        if isinstance(node, exp.Anonymous) and _function_name(node) not in _HANDLED_FUNCTIONS:
            raise NonPortableSqlError(
                f"{where}: function {node.name}() is outside the portable SQL subset (see sql/README.md)"
            )
        if isinstance(node, exp.Cast) and isinstance(node.this, exp.Literal) and node.this.is_string:
            if node.this.name.strip().lower() in ("infinity", "-infinity"):
                raise NonPortableSqlError(
                    f"{where}: '{node.this.name}' timestamps are DuckDB-only (see sql/README.md)"
                )
        if isinstance(node, exp.Explode) and not isinstance(node.parent, (exp.Alias, exp.Select)):
            raise NonPortableSqlError(
                f"{where}: unnest() must be a whole select-list item (alias it, transform it one level up; "
                "see sql/README.md)"
            )
        if isinstance(node, exp.DateDiff) and node.unit and node.unit.name.lower() != "second":
            raise NonPortableSqlError(
                f"{where}: date_diff with unit '{node.unit.name}': only 'second' is portable (see sql/README.md)"
            )
        if _function_name(node) in _INTERVAL_FUNCTIONS and not isinstance(node.parent, (exp.Add, exp.Sub)):
            raise NonPortableSqlError(
                f"{where}: {_function_name(node)}() must be added to or subtracted from a timestamp (see sql/README.md)"
            )


# --------------------------------------------------------------------------------------------
# Rewrites (each takes one node and returns its replacement; applied with Expression.transform)
# --------------------------------------------------------------------------------------------

def _is_decimal_literal(node: exp.Expression) -> bool:
    return isinstance(node, exp.Literal) and not node.is_string and any(c in node.this for c in ".eE")


def _spark(node: exp.Expression) -> exp.Expression:
    """A copy of ``node`` with every rewrite applied (a replaced node's arguments are not
    visited by Expression.transform, so rewrites that keep arguments rewrite them first)."""
    return node.transform(_to_spark)


def _to_spark(node: exp.Expression) -> exp.Expression:
    name = _function_name(node)
    if name in _SPARK_INTERVAL:
        value, unit = _SPARK_INTERVAL[name]
        interval = exp.Interval(this=exp.Literal.string(value), unit=exp.Var(this=unit))
        return exp.Mul(this=exp.Paren(this=_spark(_first_argument(node))), expression=interval)
    if isinstance(node, exp.DateDiff):
        # DuckDB: date_diff('second', start, end); sqlglot: this = end, expression = start
        return exp.Paren(this=exp.Sub(
            this=exp.Anonymous(this="UNIX_SECONDS", expressions=[_spark(node.this)]),
            expression=exp.Anonymous(this="UNIX_SECONDS", expressions=[_spark(node.expression)]),
        ))
    if _is_decimal_literal(node) and not isinstance(node.parent, exp.Cast):
        return exp.Cast(this=node.copy(), to=exp.DataType.build("DOUBLE"))
    return node


def _null_safe_extremum(node: exp.Expression) -> exp.Expression:
    """greatest(a, b, c) ignoring NULLs (DuckDB, Spark) in a dialect where any NULL argument
    gives NULL: greatest(coalesce(a, b, c), coalesce(b, a, c), coalesce(c, a, b))."""
    args = [node.this, *node.expressions]
    if len(args) < 2:
        return node
    args = [_bigquery(a) for a in args]
    rotated = [
        exp.Coalesce(this=a.copy(), expressions=[b.copy() for j, b in enumerate(args) if j != i])
        for i, a in enumerate(args)
    ]
    return type(node)(this=rotated[0], expressions=rotated[1:])


def _bigquery(node: exp.Expression) -> exp.Expression:
    return node.transform(_to_bigquery)


def _to_bigquery(node: exp.Expression) -> exp.Expression:
    name = _function_name(node)
    if name in _INTERVAL_FUNCTIONS:
        micros = exp.Mul(this=exp.Paren(this=_bigquery(_first_argument(node))),
                         expression=exp.Literal.number(_INTERVAL_FUNCTIONS[name]))
        return exp.Interval(this=exp.Cast(this=micros, to=exp.DataType.build("BIGINT")),
                            unit=exp.Var(this="MICROSECOND"))
    if name == "printf":
        return exp.Anonymous(this="FORMAT", expressions=[_bigquery(e) for e in node.expressions])
    if isinstance(node, exp.DateDiff):
        return exp.Anonymous(this="DATETIME_DIFF",
                             expressions=[_bigquery(node.this), _bigquery(node.expression), exp.Var(this="SECOND")])
    if isinstance(node, exp.TimeToStr):
        return exp.Anonymous(this="FORMAT_DATETIME", expressions=[node.args["format"].copy(), _bigquery(node.this)])
    if isinstance(node, exp.Contains):
        return exp.GT(this=exp.Anonymous(this="STRPOS", expressions=[_bigquery(node.this), _bigquery(node.expression)]),
                      expression=exp.Literal.number(0))
    if isinstance(node, (exp.Greatest, exp.Least)) and not any(
        isinstance(a, exp.Coalesce) for a in [node.this, *node.expressions]
    ):
        return _null_safe_extremum(node)
    if isinstance(node, exp.Window):
        order = node.args.get("order")
        if order is not None:
            keys = []
            for key in order.expressions:
                # DuckDB sorts NULLs last in both directions; BigQuery's default is NULLs first
                # ascending, last descending. An ascending key gets an "x IS NULL" key before it.
                if not key.args.get("desc") and not key.args.get("nulls_first"):
                    keys.append(exp.Ordered(this=exp.Is(this=key.this.copy(), expression=exp.Null()),
                                            nulls_first=True))
                    keys.append(exp.Ordered(this=key.this.copy(), nulls_first=True))
                else:
                    keys.append(key.copy())
            order.set("expressions", keys)
    return node


_REWRITES = {"spark": _to_spark, "bigquery": _to_bigquery}


def transpile_sql(sql: str, dialect: str, where: str = "<sql>", pretty: bool = True) -> str:
    """One portable SELECT (DuckDB syntax) as ``dialect`` SQL ('duckdb', 'spark', 'bigquery').

    Raises NonPortableSqlError naming ``where`` for a construct outside the portable subset or
    one sqlglot cannot express in the target.
    """
    if dialect == SOURCE_DIALECT:
        return sql
    if dialect not in _REWRITES:
        raise VasoflowError(f"unknown SQL dialect {dialect!r} (one of: {', '.join(TARGET_DIALECTS)})")
    try:
        tree = sqlglot.parse_one(sql, read=SOURCE_DIALECT)
    except SqlglotError as exc:
        raise NonPortableSqlError(f"{where}: cannot parse ({str(exc).splitlines()[0]})") from None
    check_portable(tree, where)
    rewritten = tree.transform(_REWRITES[dialect])
    try:
        return rewritten.sql(dialect=dialect, pretty=pretty, unsupported_level=ErrorLevel.RAISE)
    except SqlglotError as exc:
        raise NonPortableSqlError(
            f"{where}: not portable to {dialect} ({str(exc).splitlines()[0]}; see sql/README.md)"
        ) from None


def transpile_relation(rel: SqlRelation, dialect: str, pretty: bool = True) -> str:
    return transpile_sql(rel.select_sql, dialect, where=str(rel.path), pretty=pretty)


def write_dialect(dialect: str, out_dir: Path, sql_root: Path | None = None) -> list[Path]:
    """Write every relation of build_order.toml as ``dialect`` SQL: ``out_dir/<layer>/<name>.sql``
    (one SELECT each, a header naming the source) plus ``build_order.txt``. All files are
    transpiled before anything is written, so a non-portable file leaves ``out_dir`` untouched."""
    relations = build_order(sql_root)
    texts = {}
    for rel in relations:
        layer = rel.path.parent.name
        header = (f"-- {rel.name}: generated by `vasoflow sql --dialect {dialect}` from "
                  f"sql/{layer}/{rel.path.name}; do not edit (edit the source and regenerate).\n")
        texts[Path(layer) / f"{rel.name}.sql"] = header + transpile_relation(rel, dialect) + "\n"
    out_dir = Path(out_dir)
    written = []
    for rel_path, text in texts.items():
        path = out_dir / rel_path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
        written.append(path)
    order = out_dir / "build_order.txt"
    order.write_text(
        "# Run in this order, each as CREATE TABLE <name> AS <file>.\n"
        + "".join(f"{p.relative_to(out_dir).as_posix()}\n" for p in written),
        encoding="utf-8",
    )
    return [*written, order]

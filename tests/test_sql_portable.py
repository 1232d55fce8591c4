"""The SQL layer stays inside the portable subset of sql/README.md: every file of
build_order.toml transpiles to Spark SQL and BigQuery with unsupported constructs raising, and the
constructs outside the subset are refused with a message naming the file."""

from __future__ import annotations

import pytest
import sqlglot
from sqlglot import exp

from pipeline.cli import main
from pipeline.sqlbuild import build_order
from pipeline.sqldialect import TARGET_DIALECTS, NonPortableSqlError, transpile_relation, transpile_sql, write_dialect

RELATIONS = build_order()


@pytest.mark.parametrize("dialect", TARGET_DIALECTS)
@pytest.mark.parametrize("relation", RELATIONS, ids=[r.name for r in RELATIONS])
def test_every_sql_file_is_portable(relation, dialect):
    text = transpile_relation(relation, dialect)
    # the output is one SELECT that parses in its own dialect
    assert isinstance(sqlglot.parse_one(text, read=dialect), exp.Query)
    # nothing DuckDB-only left behind by name
    for duckdb_only in ("to_hours(", "to_minutes(", "to_days(", "to_microseconds(", "'infinity'"):
        assert duckdb_only not in text.lower()


OUTSIDE_THE_SUBSET = {
    "unknown function": ("select list_aggregate(a, 'min') as x from t", "list_aggregate() is outside"),
    "infinity timestamp": ("select coalesce(a, 'infinity'::timestamp) as x from t", "'infinity' timestamps"),
    "unnest inside a function": ("select lower(unnest(string_split(a, '|'))) as x from t", "unnest() must be"),
    "date_diff in days": ("select date_diff('day', a, b) as x from t", "only 'second' is portable"),
    "interval function alone": ("select to_hours(n) as x from t", "to_hours() must be added"),
    "unparseable": ("select from where", "cannot parse"),
}


@pytest.mark.parametrize("dialect", TARGET_DIALECTS)
@pytest.mark.parametrize("case", OUTSIDE_THE_SUBSET, ids=list(OUTSIDE_THE_SUBSET))
def test_constructs_outside_the_subset_raise(case, dialect):
    sql, message = OUTSIDE_THE_SUBSET[case]
    with pytest.raises(NonPortableSqlError, match="sql/marts/x.sql") as err:
        transpile_sql(sql, dialect, where="sql/marts/x.sql")
    assert message in str(err.value)


def test_sqlglot_unsupported_construct_raises_for_its_dialect():
    # BigQuery has no NULLS LAST in window aggregates; sqlglot raises, the rewrite avoids it only
    # for the DuckDB default order (an explicit NULLS FIRST on a DESC key is left to raise)
    with pytest.raises(NonPortableSqlError, match="not portable to bigquery"):
        transpile_sql("select max(a) over (order by b desc nulls first) as m from t", "bigquery")


def test_interval_functions_become_interval_arithmetic():
    sql = "select ts + to_hours(p.h) as a, ts - to_microseconds(cast(p.x * 3600e6 as bigint)) as b from t, p"
    spark = transpile_sql(sql, "spark", pretty=False)
    assert "(p.h) * INTERVAL '1' HOUR" in spark
    assert "INTERVAL '0.000001' SECOND" in spark
    assert "CAST(3600e6 AS DOUBLE)" in spark  # a decimal literal is a DOUBLE, as in DuckDB
    bigquery = transpile_sql(sql, "bigquery", pretty=False)
    assert "INTERVAL (CAST((p.h) * 3600000000 AS INT64)) MICROSECOND" in bigquery


def test_date_diff_counts_second_boundaries():
    sql = "select date_diff('second', a, b) / 3600.0 as h from t"
    assert "(UNIX_SECONDS(b) - UNIX_SECONDS(a)) / CAST(3600.0 AS DOUBLE)" in transpile_sql(sql, "spark", pretty=False)
    assert "DATETIME_DIFF(b, a, SECOND) / 3600.0" in transpile_sql(sql, "bigquery", pretty=False)


def test_bigquery_keeps_duckdb_null_semantics():
    # greatest ignores NULL arguments in DuckDB and Spark; BigQuery's returns NULL
    out = transpile_sql("select greatest(a, b) as g from t", "bigquery", pretty=False)
    assert "GREATEST(COALESCE(a, b), COALESCE(b, a))" in out
    # window ORDER BY: DuckDB puts NULLs last ascending, BigQuery first
    out = transpile_sql("select sum(x) over (partition by k order by t) as s from f", "bigquery", pretty=False)
    assert "ORDER BY t IS NULL, t" in out and "NULLS" not in out
    out = transpile_sql("select printf('%.1f h', x) as d, strftime(ts, '%Y-%m') as m from f", "bigquery",
                        pretty=False)
    assert "FORMAT('%.1f h', x)" in out and "FORMAT_DATETIME('%Y-%m', ts)" in out


def test_rewrites_reach_arguments_of_rewritten_nodes():
    out = transpile_sql("select printf('%.1f', date_diff('second', a, b) / 3600.0) as d from t", "bigquery",
                        pretty=False)
    assert "FORMAT('%.1f', DATETIME_DIFF(b, a, SECOND) / 3600.0)" in out
    out = transpile_sql("select least(lead(t) over (order by t), t + to_hours(h)) as e from f", "spark", pretty=False)
    assert "to_hours" not in out.lower()


def test_sql_command_writes_every_relation(tmp_path, capsys):
    out = tmp_path / "bq"
    assert main(["sql", "--dialect", "bigquery", "--out", str(out)]) == 0
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.sql"))
    expected = sorted(f"{r.path.parent.name}/{r.name}.sql" for r in RELATIONS)
    assert written == expected
    order = (out / "build_order.txt").read_text().split("\n")
    assert [line for line in order if line.endswith(".sql")] == [f"{r.path.parent.name}/{r.name}.sql" for r in RELATIONS]
    first = (out / expected[0]).read_text()
    assert first.startswith(f"-- {expected[0].split('/')[1][:-4]}: generated by `vasoflow sql --dialect bigquery`")
    assert "relations as bigquery SQL" in capsys.readouterr().out


def test_non_portable_file_leaves_output_untouched(tmp_path, capsys):
    root = tmp_path / "sql"
    (root / "marts").mkdir(parents=True)
    (root / "build_order.toml").write_text('relations = ["marts/mart_a", "marts/mart_b"]\n')
    (root / "marts" / "mart_a.sql").write_text("select 1 as a")
    (root / "marts" / "mart_b.sql").write_text("select bar(a, 0, 1) as b from t")
    out = tmp_path / "out"
    with pytest.raises(NonPortableSqlError, match=r"mart_b.sql: function bar\(\)"):
        write_dialect("spark", out, sql_root=root)
    assert not out.exists()

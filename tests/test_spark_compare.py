"""The engine comparison catches real differences (no Spark needed), and a missing Java stops
`vasoflow run --engine spark` at once with one line."""

from __future__ import annotations

from datetime import datetime

import polars as pl
import pytest

from pipeline.cli import main
from pipeline.spark import SparkUnavailableError, compare_frames, java_version

BASE = pl.DataFrame({
    "stay_id": [1, 2, 3],
    "index_time": [datetime(2150, 1, 1, 8), datetime(2150, 1, 2, 9, 30), datetime(2150, 1, 3)],
    "timing_class": ["early", "delayed", None],
    "ne_rate_mcg_kg_min": [0.1, 0.35, None],
    "detail": ["NE at 0.250 mcg/kg/min for 1.5 h", "no vasopressin", None],
})


def test_identical_frames_in_any_row_order():
    assert compare_frames(BASE, BASE.reverse(), "mart_x") == []


def _with(frame: pl.DataFrame, column: str, row: int, value) -> pl.DataFrame:
    values = frame[column].to_list()
    values[row] = value
    return frame.with_columns(pl.Series(column, values, dtype=frame.schema[column]))


@pytest.mark.parametrize(
    "column, row, value",
    [
        ("stay_id", 1, 4),
        ("index_time", 1, datetime(2150, 1, 2, 9, 31)),
        ("timing_class", 1, "ssc_window"),
        ("timing_class", 2, "early"),
        ("ne_rate_mcg_kg_min", 1, 0.35 + 1e-6),
        ("ne_rate_mcg_kg_min", 2, 0.0),
        ("detail", 0, "NE at 0.250 mcg/kg/min for 1.7 h"),
        ("detail", 0, "NE at 0.250 mcg/kg/min during 1.5 h"),
    ],
)
def test_a_changed_value_is_reported(column, row, value):
    problems = compare_frames(BASE, _with(BASE, column, row, value), "mart_x")
    assert any(p.startswith(f"mart_x.{column}:") for p in problems), problems


def test_tolerances():
    # floats within 1e-9 (relative); printed numbers one unit apart in their last digit (C vs
    # Java rounding of an exact tie: 0.25 -> "0.2" / "0.3")
    close = BASE.with_columns(
        (pl.col("ne_rate_mcg_kg_min") * (1 + 1e-12)).alias("ne_rate_mcg_kg_min"),
        pl.col("detail").str.replace("1.5 h", "1.6 h"),
    )
    assert compare_frames(BASE, close, "mart_x") == []


def test_shape_and_types_are_checked():
    assert "rows on DuckDB" in compare_frames(BASE, BASE.head(2), "mart_x")[0]
    assert "columns differ" in compare_frames(BASE, BASE.select(reversed(BASE.columns)), "mart_x")[0]
    as_text = BASE.with_columns(pl.col("stay_id").cast(pl.String))
    assert "type" in compare_frames(BASE, as_text, "mart_x")[0]
    # a whole-number float (DuckDB's HUGEINT sums) equals the integer; a fraction does not
    assert compare_frames(BASE, BASE.with_columns(pl.col("stay_id").cast(pl.Float64)), "mart_x") == []
    halves = BASE.with_columns(pl.col("stay_id").cast(pl.Float64) + 0.5)
    assert compare_frames(BASE, halves, "mart_x")


def test_missing_java_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-java"))
    with pytest.raises(SparkUnavailableError, match="needs Java 17"):
        java_version()
    # the run stops before any step, exit code 2, one line on stderr
    assert main(["run", "--engine", "spark", "--no-prefect", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vasoflow: error: the Spark engine needs Java 17+") and "\n" not in err
    assert not (tmp_path / "out" / "latest").exists()

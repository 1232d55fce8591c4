"""Deterministic gzip CSV in MIMIC-IV's text format.

Same frames -> same bytes: the gzip header carries mtime 0 and no file name. Values are
formatted like PhysioNet's export: timestamps ``2132-12-16 19:50:00``, dates ``2137-09-02``,
an empty field for null, whole-number floats without ``.0`` (``patientweight`` ``91``).
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterable
from pathlib import Path

import polars as pl

from pipeline.synth.layout import HEADERS

GZIP_LEVEL = 6


def format_frame(df: pl.DataFrame) -> pl.DataFrame:
    """Every column as the text MIMIC-IV writes for it."""
    exprs = []
    for name, dtype in df.schema.items():
        col = pl.col(name)
        if dtype == pl.Datetime:
            exprs.append(col.dt.strftime("%Y-%m-%d %H:%M:%S"))
        elif dtype == pl.Date:
            exprs.append(col.dt.strftime("%Y-%m-%d"))
        elif dtype in (pl.Float64, pl.Float32):
            is_whole = (col == col.round(0)) & (col.abs() < 1e15)
            exprs.append(
                pl.when(is_whole).then(col.cast(pl.Int64).cast(pl.String)).otherwise(col.cast(pl.String))
            )
        else:
            exprs.append(col.cast(pl.String))
    return df.select(exprs)


def seconds_to_datetime(col: str) -> pl.Expr:
    """int64 seconds since 1970 (-1 = null) -> Datetime."""
    c = pl.col(col)
    return pl.when(c >= 0).then((c * 1_000_000).cast(pl.Datetime("us"))).otherwise(None).alias(col)


def write_table(out_dir: Path, table: str, frames: Iterable[pl.DataFrame]) -> int:
    """Write ``out_dir/<table>.csv.gz`` (table like "icu/inputevents") from frames with the
    table's columns (in any order; they are put in the real order). Returns the row count."""
    header = HEADERS[table]
    path = out_dir / f"{table}.csv.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0,
                                                compresslevel=GZIP_LEVEL) as gz:
        gz.write((",".join(header) + "\n").encode())
        for frame in frames:
            missing = [c for c in header if c not in frame.columns]
            if missing:
                raise ValueError(f"{table}: frame lacks columns {missing}")
            text = format_frame(frame.select(header))
            buf = io.BytesIO()
            text.write_csv(buf, include_header=False, null_value="")
            gz.write(buf.getvalue())
            n += frame.height
    return n

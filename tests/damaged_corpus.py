"""A corpus of damaged MIMIC-IV-layout sources, each with the outcome a careful user expects
(issue 18). Built from the MIMIC-IV demo read at run time (never copied into the repository):

* ``build_base(demo_dir, out)`` writes a small clean source: the demo's tables cut to a dozen
  patients (those with norepinephrine first), as plain ``.csv``;
* ``CASES``: one damage each (``damage(src)`` edits a copy of the base) and its expected
  outcome: ``Reject`` (one line naming the file and the rule), ``Quarantine`` (rows set aside
  under a rule, the ledger balanced) or ``Accept`` (loaded, with a stated conversion).

``tests/test_damaged_corpus.py`` runs the ingest on every case. To look at the corpus by hand:
``python tests/damaged_corpus.py OUT_DIR`` writes every damaged source under OUT_DIR.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

TABLES = {
    "hosp": ["patients", "admissions", "diagnoses_icd", "labevents", "prescriptions", "emar"],
    "icu": ["icustays", "d_items", "inputevents", "procedureevents"],
}
NE_ITEMID = "221906"  # config/concepts.toml [drugs.norepinephrine]
LACTATE_ITEMID = "50813"  # config/concepts.toml [measurements.lactate]
N_PATIENTS = 12


def build_base(demo_dir: Path, out: Path) -> Path:
    """The demo cut to ``N_PATIENTS`` patients (norepinephrine users first), as plain CSV, every
    value kept as the demo's text (read without type inference)."""
    demo_dir, out = Path(demo_dir), Path(out)
    inputs = pl.read_csv(demo_dir / "icu" / "inputevents.csv.gz", infer_schema=False)
    ne = inputs.filter(pl.col("itemid") == NE_ITEMID)["subject_id"].unique().sort().to_list()
    patients = pl.read_csv(demo_dir / "hosp" / "patients.csv.gz", infer_schema=False)
    others = [s for s in patients["subject_id"].sort().to_list() if s not in ne]
    keep = (ne[: N_PATIENTS - 2] + others[:2])
    for module, names in TABLES.items():
        (out / module).mkdir(parents=True, exist_ok=True)
        for name in names:
            frame = inputs if name == "inputevents" else pl.read_csv(
                demo_dir / module / f"{name}.csv.gz", infer_schema=False)
            if "subject_id" in frame.columns:
                frame = frame.filter(pl.col("subject_id").is_in(keep))
            frame.write_csv(out / module / f"{name}.csv")
    return out


# --------------------------------------------------------------------------------------------
# Editing helpers (text level, so the damage is exactly what a broken export would write)
# --------------------------------------------------------------------------------------------

def _path(src: Path, table: str) -> Path:
    module = next(m for m, names in TABLES.items() if table in names)
    return src / module / f"{table}.csv"


def _rows(src: Path, table: str) -> list[list[str]]:
    with open(_path(src, table), newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def _write_rows(src: Path, table: str, rows: list[list[str]], **kwargs) -> None:
    buf = io.StringIO()
    csv.writer(buf, lineterminator=kwargs.get("lineterminator", "\n"),
               quoting=kwargs.get("quoting", csv.QUOTE_MINIMAL)).writerows(rows)
    _path(src, table).write_text(buf.getvalue(), encoding="utf-8")


def set_value(table: str, column: str, value: str, where: Callable[[dict], bool] = lambda r: True,
              count: int = 1) -> Callable[[Path], None]:
    """Set ``column`` to ``value`` in the first ``count`` data rows matching ``where``."""

    def damage(src: Path) -> None:
        rows = _rows(src, table)
        header, done = rows[0], 0
        for row in rows[1:]:
            if done < count and where(dict(zip(header, row))):
                row[header.index(column)] = value
                done += 1
        assert done == count, f"{table}: only {done} rows matched"
        _write_rows(src, table, rows)

    return damage


def set_column(table: str, column: str, value: Callable[[str], str]) -> Callable[[Path], None]:
    def damage(src: Path) -> None:
        rows = _rows(src, table)
        i = rows[0].index(column)
        for row in rows[1:]:
            row[i] = value(row[i])
        _write_rows(src, table, rows)

    return damage


def edit_header(table: str, edit: Callable[[list[str]], list[str]]) -> Callable[[Path], None]:
    def damage(src: Path) -> None:
        rows = _rows(src, table)
        rows[0] = edit(rows[0])
        _write_rows(src, table, rows)

    return damage


def drop_column(table: str, column: str) -> Callable[[Path], None]:
    def damage(src: Path) -> None:
        rows = _rows(src, table)
        i = rows[0].index(column)
        _write_rows(src, table, [r[:i] + r[i + 1:] for r in rows])

    return damage


def raw_bytes(table: str, edit: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def damage(src: Path) -> None:
        path = _path(src, table)
        path.write_bytes(edit(path.read_bytes()))

    return damage


def to_format(table: str, suffix: str, keep_csv: bool = False) -> Callable[[Path], None]:
    """Rewrite a table as ``.csv.gz`` or ``.parquet`` (all text columns), optionally leaving
    the ``.csv`` too (a table in two formats)."""

    def damage(src: Path) -> None:
        path = _path(src, table)
        target = path.with_name(f"{table}{suffix}")
        if suffix == ".csv.gz":
            target.write_bytes(gzip.compress(path.read_bytes()))
        else:
            pl.read_csv(path, infer_schema=False).write_parquet(target)
        if not keep_csv:
            path.unlink()

    return damage


def replace_file(table: str, make: Callable[[Path], None]) -> Callable[[Path], None]:
    def damage(src: Path) -> None:
        path = _path(src, table)
        path.unlink()
        make(path)

    return damage


def remove(table: str) -> Callable[[Path], None]:
    return lambda src: _path(src, table).unlink()


def header_only(table: str) -> Callable[[Path], None]:
    return lambda src: _write_rows(src, table, _rows(src, table)[:1])


def all_of(*damages: Callable[[Path], None]) -> Callable[[Path], None]:
    def damage(src: Path) -> None:
        for d in damages:
            d(src)

    return damage


def _ne(r: dict) -> bool:
    return r["itemid"] == NE_ITEMID and r["rate"] not in ("", None)


def _lactate(r: dict) -> bool:
    return r["itemid"] == LACTATE_ITEMID and r["valuenum"] != ""


# --------------------------------------------------------------------------------------------
# Expected outcomes
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Reject:
    """The ingest stops with one line naming ``file`` (a path fragment) and matching ``rule``."""

    file: str
    rule: str


@dataclass(frozen=True)
class Quarantine:
    """``rows`` more rows of ``table`` than in the clean base are quarantined under ``rule``;
    rows read are unchanged and the ledger balances."""

    table: str
    rule: str
    rows: int = 1


@dataclass(frozen=True)
class Accept:
    """Loaded with nothing more quarantined than the clean base; ``warning`` (regex) must be in
    the ledger warnings when given; ``check(con)`` (DuckDB connection) must hold when given."""

    warning: str | None = None
    check: Callable | None = None
    note: str = ""
    # True when the case deletes source rows (quarantined ones may go with them).
    removes_rows: bool = False


def _value(con, sql: str):
    return con.execute(sql).fetchone()[0]


def _open_quote_in_last_row(data: bytes) -> bytes:
    start = data.rstrip(b"\n").rfind(b"\n") + 1
    return data[:start] + b'"' + data[start:]


def _mkfifo(path: Path) -> None:
    os.mkfifo(path)


CASES: dict[str, tuple[Callable[[Path], None], Reject | Quarantine | Accept]] = {
    # --- files and formats: rejected with one line -----------------------------------------
    "missing_required_table": (remove("icustays"), Reject("icustays", "required table 'icustays' not found")),
    "empty_file": (raw_bytes("patients", lambda b: b""), Reject("patients.csv", "file is empty")),
    "blank_first_line": (raw_bytes("patients", lambda b: b"\n" + b), Reject("patients.csv", "file is empty|missing required")),
    "header_only_icustays": (header_only("icustays"), Reject("icustays.csv", "required table 'icustays' has no data rows")),
    "header_only_admissions": (header_only("admissions"), Reject("admissions.csv", "has no data rows")),
    "header_only_patients": (header_only("patients"), Reject("patients.csv", "has no data rows")),
    "truncated_gzip": (all_of(to_format("inputevents", ".csv.gz"),
                              lambda s: (s / "icu/inputevents.csv.gz").write_bytes(
                                  (s / "icu/inputevents.csv.gz").read_bytes()[:3000])),
                       Reject("inputevents.csv.gz", "cannot read")),
    "plain_text_named_gz": (all_of(lambda s: shutil.copy(s / "icu/icustays.csv", s / "icu/icustays.csv.gz"),
                                   remove("icustays")), Reject("icustays.csv.gz", "cannot read header")),
    "corrupt_parquet": (all_of(remove("labevents"), lambda s: (s / "hosp/labevents.parquet").write_bytes(b"PAR1garbage")),
                        Reject("labevents.parquet", "cannot read parquet")),
    "two_formats": (to_format("patients", ".parquet", keep_csv=True),
                    Reject("patients.csv", r"patients.csv and patients.parquet: table 'patients' is present in two formats")),
    "two_formats_gz": (to_format("d_items", ".csv.gz", keep_csv=True), Reject("d_items", "two formats")),
    "fifo_instead_of_file": (replace_file("icustays", _mkfifo), Reject("icustays.csv", "is a FIFO, not a regular file")),
    "folder_instead_of_file": (replace_file("d_items", lambda p: p.mkdir()), Reject("d_items.csv", "is a folder")),
    "missing_required_column": (drop_column("icustays", "intime"), Reject("icustays.csv", "missing required column 'intime'")),
    "column_named_twice": (edit_header("admissions", lambda h: [("hadm_id" if c == "race" else c) for c in h]),
                           Reject("admissions.csv", "column 'hadm_id' appears twice")),
    "wrong_typed_id_column": (set_column("icustays", "stay_id", lambda v: "stay-" + v),
                              Reject("icustays.csv", r"column 'stay_id': .* values are not BIGINT")),
    "zone_suffix_whole_column": (set_column("icustays", "intime", lambda v: v + "-05:00"),
                                 Reject("icustays.csv", "times with a time zone are refused")),
    "utc_z_whole_column": (set_column("admissions", "admittime", lambda v: v.replace(" ", "T") + "Z"),
                           Reject("admissions.csv", "time zone")),
    "fractional_ids_whole_column": (set_column("patients", "subject_id", lambda v: v + ".4"),
                                    Reject("patients.csv", "values are not BIGINT")),
    "binary_garbage": (raw_bytes("patients", lambda b: bytes(range(256)) * 20), Reject("patients.csv", "cannot read header")),
    "latin1_header": (raw_bytes("d_items", lambda b: b.replace(b"label", b"lab\xe9l", 1)),
                      Reject("d_items.csv", "cannot read header")),
    "ragged_row": (raw_bytes("icustays", lambda b: b.replace(b"\n", b",extra,fields\n", 2)), Reject("icustays.csv", "cannot read")),
    "unterminated_quote": (raw_bytes("patients", _open_quote_in_last_row), Reject("patients.csv", "cannot read")),
    "ages_not_numbers": (set_column("patients", "anchor_age", lambda v: "about " + v), Reject("patients.csv", "anchor_age")),
    # --- values: rows quarantined under a rule -----------------------------------------------
    "fractional_subject_id": (set_value("inputevents", "subject_id", "10002428.4", _ne), Quarantine("inputevents", "conformance.type")),
    "hex_id": (set_value("inputevents", "orderid", "0x29", _ne), Quarantine("inputevents", "conformance.type")),
    "underscore_id": (set_value("inputevents", "orderid", "1_000", _ne), Quarantine("inputevents", "conformance.type")),
    "infinity_endtime": (set_value("inputevents", "endtime", "infinity", _ne), Quarantine("inputevents", "conformance.type")),
    "zone_suffix_one_row": (set_value("inputevents", "starttime", "2150-01-01 10:00:00-05:00", _ne),
                            Quarantine("inputevents", "conformance.type")),
    "epoch_charttime": (set_value("labevents", "charttime", "epoch", _lactate), Quarantine("labevents", "conformance.type")),
    "impossible_date": (set_value("labevents", "charttime", "2150-02-30 10:00:00", _lactate), Quarantine("labevents", "conformance.type")),
    "nan_rate": (set_value("inputevents", "rate", "nan", _ne), Quarantine("inputevents", "conformance.type")),
    "inf_rate": (set_value("inputevents", "rate", "inf", _ne), Quarantine("inputevents", "conformance.type")),
    "negative_rate": (set_value("inputevents", "rate", "-0.1", _ne), Quarantine("inputevents", "plausibility.negative_rate")),
    "implausible_ne_rate": (set_value("inputevents", "rate", "250", _ne), Quarantine("inputevents", "plausibility.rate_range")),
    "endtime_before_starttime": (set_value("inputevents", "endtime", "2000-01-01 00:00:00", _ne),
                                 Quarantine("inputevents", "plausibility.endtime_before_starttime")),
    "event_outside_stay": (set_value("inputevents", "starttime", "2001-01-01 00:00:00", _ne, count=2),
                           Quarantine("inputevents", "plausibility.time_in_stay", rows=2)),
    "outtime_before_intime": (set_value("icustays", "outtime", "2000-01-01 00:00:00"),
                              Quarantine("icustays", "plausibility.outtime_before_intime")),
    "anchor_age_200": (set_value("patients", "anchor_age", "200"), Quarantine("patients", "plausibility.anchor_age_range")),
    "non_numeric_itemid": (set_value("inputevents", "itemid", "NE", _ne), Quarantine("inputevents", "conformance.type")),
    # --- accepted, with a stated conversion ----------------------------------------------------
    "utf8_bom": (raw_bytes("icustays", lambda b: b"\xef\xbb\xbf" + b), Accept(warning="byte-order mark")),
    "utf8_bom_gz": (all_of(raw_bytes("patients", lambda b: b"\xef\xbb\xbf" + b), to_format("patients", ".csv.gz")),
                    Accept(warning="byte-order mark")),
    "quoted_header_with_comma": (lambda s: _write_rows(s, "admissions", [
        [*r, "free text, notes" if i == 0 else "a, b"] for i, r in enumerate(_rows(s, "admissions"))]),
                                 Accept(check=lambda con: _value(con, "SELECT count(*) FROM valid_admissions") > 0)),
    "all_fields_quoted": (lambda s: _write_rows(s, "icustays", _rows(s, "icustays"), quoting=csv.QUOTE_ALL),
                          Accept(check=lambda con: _value(con, "SELECT count(*) FROM valid_icustays") > 0)),
    "integral_decimal_ids": (set_column("icustays", "stay_id", lambda v: v + ".0"),
                             Accept(check=lambda con: _value(con, "SELECT min(stay_id) FROM raw_icustays") > 30_000_000,
                                    note="'41.0' is the integer 41")),
    "padded_ids": (set_column("patients", "subject_id", lambda v: f" {v} "), Accept()),
    "t_separator_times": (set_column("icustays", "intime", lambda v: v.replace(" ", "T")),
                          Accept(check=lambda con: _value(con, "SELECT count(intime) FROM raw_icustays") > 0)),
    "dod_with_midnight_time": (set_column("patients", "dod", lambda v: v and v + " 00:00:00"),
                               Accept(check=lambda con: _value(con, "SELECT count(dod) FROM raw_patients") > 0)),
    "crlf_line_ends": (lambda s: _write_rows(s, "admissions", _rows(s, "admissions"), lineterminator="\r\n"), Accept()),
    "upper_case_header": (edit_header("patients", lambda h: [c.upper() for c in h]), Accept()),
    "shuffled_columns": (lambda s: _write_rows(s, "icustays", [list(reversed(r)) for r in _rows(s, "icustays")]), Accept()),
    "extra_unknown_column": (lambda s: _write_rows(s, "patients", [[*r, "x"] for r in _rows(s, "patients")]), Accept()),
    "optional_table_missing": (remove("prescriptions"), Accept(warning="optional table hosp/prescriptions not found")),
    "gzip_instead_of_csv": (to_format("inputevents", ".csv.gz"), Accept()),
    "parquet_instead_of_csv": (to_format("icustays", ".parquet"), Accept()),
    "no_ne_rows": (lambda s: _write_rows(s, "inputevents", [r for r in _rows(s, "inputevents") if r[7] != NE_ITEMID]),
                   Accept(warning=None, removes_rows=True, check=lambda con: _value(
                       con, f"SELECT count(*) FROM raw_inputevents WHERE itemid = {NE_ITEMID}") == 0)),
}


def main(out: str) -> None:  # pragma: no cover - a helper for looking at the corpus by hand
    here = Path(__file__).resolve().parents[1]
    base = build_base(here.parent / "shared" / "data" / "mimic-iv-demo-2.2", Path(out) / "_base")
    for name, (damage, expected) in CASES.items():
        src = Path(out) / name
        shutil.copytree(base, src)
        damage(src)
        print(f"{name:<28} {expected}")


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1])

"""Ingest of MIMIC-IV-layout files: real demo facts, ledger balance, formats, bad input."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import duckdb
import polars as pl
import pytest

from pipeline.cli import main
from pipeline.errors import InputFileError
from pipeline.ingest import ingest
from schemas.raw import RAW_TABLES


def _copy_source(demo_dir: Path, dest: Path) -> Path:
    """A writable copy of the demo layout: files symlinked, so a test can replace one."""
    for table in RAW_TABLES.values():
        src = demo_dir / table.module / f"{table.name}.csv.gz"
        if src.exists():
            (dest / table.module).mkdir(parents=True, exist_ok=True)
            (dest / table.module / src.name).symlink_to(src)
    return dest


def _rewrite(path: Path, transform) -> None:
    """Replace a (symlinked) csv.gz by a transformed copy: transform(list[str]) -> list[str]."""
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    path.unlink()
    path.write_bytes(gzip.compress(("\n".join(transform(lines)) + "\n").encode()))


# ---------------------------------------------------------------------------------------------
# The real MIMIC-IV demo
# ---------------------------------------------------------------------------------------------

def test_demo_facts(demo_db):
    con = duckdb.connect(str(demo_db.db_path), read_only=True)
    assert con.execute("SELECT count(*) FROM valid_icustays").fetchone()[0] == 140
    ne = con.execute(
        "SELECT count(*), count(DISTINCT stay_id) FROM raw_inputevents WHERE itemid = 221906"
    ).fetchone()
    assert ne == (947, 33)
    vp = con.execute(
        "SELECT count(*), count(DISTINCT stay_id) FROM raw_inputevents WHERE itemid = 222315"
    ).fetchone()
    assert vp == (55, 9)
    # The 7.56 mcg/kg/min norepinephrine row is quarantined with its rule, out of the valid view.
    q = con.execute(
        "SELECT q.rule, q.column_name, r.stay_id FROM quarantine q JOIN raw_inputevents r "
        "USING (source_row) WHERE q.table_name = 'inputevents' AND round(r.rate, 2) = 7.56"
    ).fetchall()
    assert q == [("plausibility.rate_range", "rate", 30955999)]
    assert con.execute("SELECT count(*) FROM valid_inputevents WHERE itemid = 221906 AND rate > 7").fetchone()[0] == 0


def test_demo_ledger_balances(demo_db):
    con = duckdb.connect(str(demo_db.db_path), read_only=True)
    ledger = pl.from_arrow(con.execute("SELECT * FROM ledger").to_arrow_table())
    assert (ledger["rows_read"] == ledger["rows_loaded"] + ledger["rows_quarantined"]).all()
    for row in ledger.iter_rows(named=True):
        if not row["is_available"]:
            continue
        name = row["table"]
        n_valid = con.execute(f"SELECT count(*) FROM valid_{name}").fetchone()[0]
        n_raw = con.execute(f"SELECT count(*) FROM raw_{name}").fetchone()[0]
        n_q = con.execute(
            "SELECT count(DISTINCT source_row) FROM quarantine WHERE table_name = ?", [name]
        ).fetchone()[0]
        assert (n_raw, n_valid, n_q) == (row["rows_read"], row["rows_loaded"], row["rows_quarantined"])
    # Unfiltered tables: every data line of the file is read.
    patients_file = Path(ledger.filter(pl.col("table") == "patients")["file"][0])
    n_lines = len(gzip.decompress(patients_file.read_bytes()).splitlines()) - 1
    assert ledger.filter(pl.col("table") == "patients")["rows_read"][0] == n_lines
    on_disk = json.loads(demo_db.ledger_path.read_text())
    assert {t["table"]: t["rows_read"] for t in on_disk["tables"]} == dict(
        zip(ledger["table"], ledger["rows_read"])
    )


def test_demo_missing_chartevents_is_marked_unavailable(demo_db):
    con = duckdb.connect(str(demo_db.db_path), read_only=True)
    avail = dict(con.execute("SELECT table_name, is_available FROM source_table").fetchall())
    assert avail["chartevents"] is False and avail["inputevents"] is True
    assert con.execute("SELECT count(*) FROM valid_chartevents").fetchone()[0] == 0
    assert any("chartevents" in w for w in demo_db.warnings)


def test_source_row_of_unfiltered_table_is_the_file_data_row(demo_db, demo_dir):
    con = duckdb.connect(str(demo_db.db_path), read_only=True)
    lines = gzip.decompress((demo_dir / "icu" / "icustays.csv.gz").read_bytes()).decode().splitlines()
    for row_number in (1, 77, 140):
        stay_id = int(lines[row_number].split(",")[2])
        got = con.execute("SELECT source_row FROM raw_icustays WHERE stay_id = ?", [stay_id]).fetchone()[0]
        assert got == row_number


# ---------------------------------------------------------------------------------------------
# Formats and releases
# ---------------------------------------------------------------------------------------------

def test_parquet_and_plain_csv_give_the_same_rows(tmp_path, demo_dir, study_config):
    src = _copy_source(demo_dir, tmp_path / "src")
    ice = src / "icu" / "icustays.csv.gz"
    frame = pl.read_csv(gzip.decompress(ice.read_bytes()), infer_schema=False)
    ice.unlink()
    frame.write_parquet(src / "icu" / "icustays.parquet")
    pat = src / "hosp" / "patients.csv.gz"
    (src / "hosp" / "patients.csv").write_bytes(gzip.decompress(pat.read_bytes()))
    pat.unlink()
    result = ingest(src, tmp_path / "db.duckdb", study_config)
    by_table = {t.table: t for t in result.tables}
    assert by_table["icustays"].rows_loaded == 140
    assert by_table["patients"].rows_loaded == 100
    con = duckdb.connect(str(result.db_path), read_only=True)
    assert con.execute("SELECT min(source_row), max(source_row) FROM raw_icustays").fetchone() == (1, 140)


def test_mimic_3x_style_header_case_and_extra_columns(tmp_path, demo_dir, study_config):
    src = _copy_source(demo_dir, tmp_path / "src")

    def upper_and_extra(lines):
        header = lines[0].upper() + ",NEW_COLUMN_IN_3X"
        return [header] + [line + ",x" for line in lines[1:]]

    _rewrite(src / "icu" / "icustays.csv.gz", upper_and_extra)
    result = ingest(src, tmp_path / "db.duckdb", study_config)
    ice = {t.table: t for t in result.tables}["icustays"]
    assert ice.rows_loaded == 140
    assert ice.ignored_columns == ("NEW_COLUMN_IN_3X",)


# ---------------------------------------------------------------------------------------------
# Row-level problems are quarantined, not fatal
# ---------------------------------------------------------------------------------------------

def _ingest_with_icustays_fields(tmp_path, demo_dir, study_config, row: int, values: dict[int, str]):
    """Ingest the demo with fields of icustays' data row ``row`` replaced ({field index: text});
    returns icustays' quarantine rows (by column) and its ledger."""
    src = _copy_source(demo_dir, tmp_path / "src")

    def replace(lines):
        fields = lines[row].split(",")
        for i, text in values.items():
            fields[i] = text
        return lines[:row] + [",".join(fields)] + lines[row + 1:]

    _rewrite(src / "icu" / "icustays.csv.gz", replace)
    result = ingest(src, tmp_path / "db.duckdb", study_config)
    con = duckdb.connect(str(result.db_path), read_only=True)
    rows = con.execute("SELECT source_row, rule, column_name, value FROM quarantine "
                       "WHERE table_name = 'icustays' ORDER BY column_name").fetchall()
    con.close()
    return rows, {t.table: t for t in result.tables}["icustays"]


def test_single_unparseable_value_is_quarantined_with_its_row(tmp_path, demo_dir, study_config):
    # icustays.outtime of data row 5 is not a timestamp
    rows, ice = _ingest_with_icustays_fields(tmp_path, demo_dir, study_config, 5, {6: "2154-13-45 99:00:00"})
    assert rows == [(5, "conformance.type", "outtime", "2154-13-45 99:00:00")]
    assert (ice.rows_read, ice.rows_loaded, ice.rows_quarantined) == (140, 139, 1)


def test_every_unparseable_value_of_a_row_is_quarantined(tmp_path, demo_dir, study_config):
    """A row with two bad values: both are recorded (the cast step lists all of them, not the
    first), the row counts once in the ledger, and the other rows have none."""
    # icustays.stay_id of data row 7, and its intime with a zone
    rows, ice = _ingest_with_icustays_fields(tmp_path, demo_dir, study_config, 7,
                                             {2: "30000x", 5: "2154-01-01 10:00+01:00"})
    assert rows == [(7, "conformance.type", "intime", "2154-01-01 10:00+01:00"),
                    (7, "conformance.type", "stay_id", "30000x")]
    assert (ice.rows_read, ice.rows_loaded, ice.rows_quarantined) == (140, 139, 1)


# ---------------------------------------------------------------------------------------------
# Bad input: one line naming file and problem, exit 2, no traceback, nothing half-written
# ---------------------------------------------------------------------------------------------

def _run_cli(args, capsys):
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.err


@pytest.mark.parametrize(
    "breakage, expected",
    [
        ("truncated_gzip", "inputevents.csv.gz: cannot read"),
        ("missing_column", "icustays.csv.gz: missing required column 'intime'"),
        ("wrong_type", "icustays.csv.gz: column 'stay_id'"),
        ("empty_file", "patients.csv.gz: file is empty"),
        ("missing_required_table", "admissions.csv.gz: required table 'admissions' not found"),
    ],
)
def test_bad_input_gives_one_line_and_keeps_existing_db(tmp_path, demo_dir, study_config, capsys,
                                                         breakage, expected):
    good = _copy_source(demo_dir, tmp_path / "good")
    db = tmp_path / "out" / "vasoflow.duckdb"
    assert _run_cli(["ingest", "--source", str(good), "--db", str(db)], capsys)[0] == 0
    before = db.read_bytes()
    ledger_before = (db.parent / "ledger.json").read_text()

    bad = _copy_source(demo_dir, tmp_path / "bad")
    if breakage == "truncated_gzip":
        p = bad / "icu" / "inputevents.csv.gz"
        data = p.read_bytes()
        p.unlink()
        p.write_bytes(data[: len(data) // 2])
    elif breakage == "missing_column":
        _rewrite(bad / "icu" / "icustays.csv.gz",
                 lambda lines: [",".join(f.replace("intime", "in_time") for f in lines[0].split(","))] + lines[1:])
    elif breakage == "wrong_type":
        def letters(lines):
            out = [lines[0]]
            for line in lines[1:]:
                f = line.split(",")
                f[2] = "stay-" + f[2]
                out.append(",".join(f))
            return out
        _rewrite(bad / "icu" / "icustays.csv.gz", letters)
    elif breakage == "empty_file":
        p = bad / "hosp" / "patients.csv.gz"
        p.unlink()
        p.write_bytes(b"")
    elif breakage == "missing_required_table":
        (bad / "hosp" / "admissions.csv.gz").unlink()

    code, err = _run_cli(["ingest", "--source", str(bad), "--db", str(db)], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert expected in lines[0]
    assert "Traceback" not in err
    assert db.read_bytes() == before
    assert (db.parent / "ledger.json").read_text() == ledger_before
    assert not [p for p in db.parent.iterdir() if "building" in p.name]


def test_unreadable_source_folder(tmp_path, capsys):
    code, err = _run_cli(["ingest", "--source", str(tmp_path / "nope"), "--db", str(tmp_path / "x.duckdb")], capsys)
    assert code == 2 and "source folder not found" in err and len(err.strip().splitlines()) == 1


def test_ingest_function_raises_input_file_error(tmp_path, study_config):
    with pytest.raises(InputFileError, match="source folder not found"):
        ingest(tmp_path / "missing", tmp_path / "db.duckdb", study_config)


# ---------------------------------------------------------------------------------------------
# The plain-text rule's shortcut (pipeline.ingest._typed_value)
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("target", ["BIGINT", "TIMESTAMP", "DATE"])
def test_plain_text_shortcut_decides_as_the_regular_expression_does(target):
    """The cast takes text equal to its value's canonical text without the regular expression;
    on every kind of value, canonical or not, it must accept and refuse what the expression
    alone does (BC dates and 5-digit years round-trip through DuckDB, so the length matters)."""
    from pipeline.ingest import _PLAIN_TEXT, _lit, _typed_value

    values = ["41", "-41", "+41", "0041", " 41 ", "41.0", "41.4", "0x29", "1_000", "1e3", "",
              "2150-01-01", "2150-01-01 10:00:00", "2150-01-01 10:00", "2150-01-01T10:00:00",
              "2150-01-01 00:00:00", "2150-01-01 10:00:00.5", "2150-01-01 10:00:00.123456",
              "2150-01-01 10:00-05:00", "2150-01-01 10:00:00Z", "0044-03-15 (BC)",
              "0044-03-15 00:00:00 (BC)", "10000-01-01 00:00:00", "10000-01-01", "infinity",
              "epoch", "2150-1-1", "2150-02-30", "-0", "9223372036854775807", "9223372036854775808"]
    con = duckdb.connect()
    con.execute("CREATE TABLE t (s VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?)", [[v] for v in values])
    regex_only = f"CASE WHEN regexp_full_match(s, {_lit(_PLAIN_TEXT[target])}) THEN TRY_CAST(s AS {target}) END"
    rows = con.execute(f"SELECT s, {_typed_value('s', target)}, {regex_only} FROM t").fetchall()
    assert [(s, a) for s, a, _ in rows] == [(s, b) for s, _, b in rows]
    assert any(a is not None for _, a, _ in rows) and any(a is None for _, a, _ in rows)

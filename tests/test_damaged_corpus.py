"""The damaged-input corpus (tests/damaged_corpus.py, issue 18): every case gets the outcome a
careful user expects. The ingest runs in-process per case (a few subprocess cases check the
one-line CLI behaviour: exit 2, no traceback, the existing database untouched)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from pipeline.errors import InputFileError
from damaged_corpus import CASES, Accept, Quarantine, Reject, build_base


@pytest.fixture(scope="session")
def corpus_base(tmp_path_factory, demo_dir):
    return build_base(demo_dir, tmp_path_factory.mktemp("corpus") / "base")


@pytest.fixture(scope="session")
def base_ledger(corpus_base, tmp_path_factory, study_config):
    from pipeline.ingest import ingest

    result = ingest(corpus_base, tmp_path_factory.mktemp("corpus_db") / "base.duckdb", study_config)
    return {t.table: t for t in result.tables}


def test_the_corpus_is_large_enough_and_the_base_is_clean(base_ledger):
    assert len(CASES) >= 40
    kinds = {type(expected).__name__ for _, expected in CASES.values()}
    assert kinds == {"Reject", "Quarantine", "Accept"}
    assert base_ledger["icustays"].rows_read >= 10
    assert base_ledger["inputevents"].rows_read > 100


def _damaged(corpus_base: Path, tmp_path: Path, name: str) -> Path:
    src = tmp_path / "src"
    shutil.copytree(corpus_base, src)
    CASES[name][0](src)
    return src


@pytest.mark.parametrize("name", list(CASES))
def test_damaged_input(name, corpus_base, base_ledger, tmp_path, study_config):
    from pipeline.ingest import ingest

    src = _damaged(corpus_base, tmp_path, name)
    expected = CASES[name][1]
    db = tmp_path / "out" / "vasoflow.duckdb"
    if isinstance(expected, Reject):
        with pytest.raises(InputFileError) as err:
            ingest(src, db, study_config)
        message = str(err.value)
        assert "\n" not in message
        assert expected.file in message.split(":")[0], message
        assert re.search(expected.rule, message), message
        assert not db.exists() and not list(db.parent.glob(".*building*")) if db.parent.exists() else True
        return
    result = ingest(src, db, study_config)
    ledger = {t.table: t for t in result.tables}
    for t in ledger.values():
        assert t.rows_read == t.rows_loaded + t.rows_quarantined, t.table
        assert sum(t.quarantined_by_rule.values()) >= t.rows_quarantined
    on_disk = json.loads((db.parent / "ledger.json").read_text())
    assert {t["table"]: t["rows_quarantined"] for t in on_disk["tables"]} == \
        {k: v.rows_quarantined for k, v in ledger.items()}
    if isinstance(expected, Quarantine):
        table, base = ledger[expected.table], base_ledger[expected.table]
        assert table.rows_read == base.rows_read
        assert table.quarantined_by_rule.get(expected.rule, 0) - base.quarantined_by_rule.get(expected.rule, 0) \
            == expected.rows, table.quarantined_by_rule
        assert table.rows_quarantined == base.rows_quarantined + expected.rows
        con = duckdb.connect(str(db), read_only=True)
        try:
            n = con.execute("SELECT count(*) FROM quarantine WHERE table_name = ? AND rule = ?",
                            [expected.table, expected.rule]).fetchone()[0]
        finally:
            con.close()
        assert n >= expected.rows
        return
    assert isinstance(expected, Accept)
    for name_, t in ledger.items():
        if expected.removes_rows:
            # A case that deletes rows may delete quarantined ones too (the base's NE
            # bag-finish artifact in 'no_ne_rows'): never more, never a new rule.
            assert t.rows_quarantined <= base_ledger[name_].rows_quarantined, name_
            assert set(t.quarantined_by_rule) <= set(base_ledger[name_].quarantined_by_rule), name_
        else:
            assert t.rows_quarantined == base_ledger[name_].rows_quarantined, name_
    if expected.warning:
        assert any(re.search(expected.warning, w) for w in result.warnings), result.warnings
    if expected.check:
        con = duckdb.connect(str(db), read_only=True)
        try:
            assert expected.check(con)
        finally:
            con.close()


@pytest.mark.parametrize("name", ["fifo_instead_of_file", "header_only_icustays", "zone_suffix_whole_column"])
def test_cli_rejects_in_one_line_and_keeps_the_old_database(name, corpus_base, tmp_path):
    src = _damaged(corpus_base, tmp_path, name)
    db = tmp_path / "vasoflow.duckdb"
    db.write_bytes(b"the previous database")
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "ingest", "--source", str(src), "--db", str(db)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = [l for l in proc.stderr.splitlines() if not l.startswith("vasoflow: WARNING")]
    assert len(lines) == 1 and lines[0].startswith("vasoflow: error: "), proc.stderr
    assert CASES[name][1].file in lines[0] and "Traceback" not in proc.stderr
    assert db.read_bytes() == b"the previous database"


def test_out_of_memory_is_one_line_naming_memory(corpus_base, tmp_path):
    """DuckDB running out of memory (a 2 MB limit) is reported as memory, not as an unreadable
    input file, in one line with exit 2; the existing database stays."""
    import os

    db = tmp_path / "vasoflow.duckdb"
    db.write_bytes(b"the previous database")
    env = {**os.environ, "VASOFLOW_MEMORY_LIMIT": "2MB"}
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "ingest", "--source", str(corpus_base), "--db", str(db)],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 2
    lines = [l for l in proc.stderr.splitlines() if not l.startswith("vasoflow: WARNING")]
    assert len(lines) == 1 and "out of memory" in lines[0] and "cannot read" not in lines[0], proc.stderr
    assert db.read_bytes() == b"the previous database"
    assert not list(tmp_path.glob(".vasoflow.duckdb.building*"))


def test_a_full_disk_during_ingest_is_one_line_and_keeps_the_old_database(corpus_base, tmp_path, monkeypatch, capsys):
    import errno

    import pipeline.ingest as ingest_module
    from pipeline.cli import main

    db = tmp_path / "vasoflow.duckdb"
    db.write_bytes(b"the previous database")
    real_build = ingest_module._build

    def build_then_disk_full(con, *args, **kwargs):
        real_build(con, *args, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / ".vasoflow.duckdb.building"))

    monkeypatch.setattr(ingest_module, "_build", build_then_disk_full)
    assert main(["ingest", "--source", str(corpus_base), "--db", str(db)]) == 2
    err = [l for l in capsys.readouterr().err.splitlines() if "WARNING" not in l]
    assert len(err) == 1 and "no space left on device" in err[0], err
    assert db.read_bytes() == b"the previous database"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # partial files removed

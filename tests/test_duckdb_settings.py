"""Every DuckDB connection of the pipeline goes through pipeline.duckdb_settings.connect, so the
one memory setting (VASOFLOW_MEMORY_LIMIT) and the thread cap reach every step (issue 16)."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

from pipeline.duckdb_settings import connect

ROOT = Path(__file__).resolve().parents[1]


def test_no_module_opens_duckdb_around_the_settings():
    direct = re.compile(r"\bduckdb\.(connect|sql|query|execute|read_csv|read_parquet)\(")
    offenders = []
    for folder in ("pipeline", "schemas", "flows"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.name == "duckdb_settings.py":
                continue
            for n, line in enumerate(path.read_text().splitlines(), 1):
                if direct.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{n}")
    assert not offenders, offenders


def test_memory_limit_spill_folder_and_threads_reach_attached_reads(tmp_path, monkeypatch):
    src = tmp_path / "ingest.duckdb"
    con = duckdb.connect(str(src))
    con.execute("create table valid_x as select range as x from range(10)")
    con.close()
    monkeypatch.setenv("VASOFLOW_MEMORY_LIMIT", "300MB")
    monkeypatch.setenv("VASOFLOW_THREADS", "1")
    con = connect(tmp_path / "step.duckdb", attach={"vf_ingest": src})
    try:
        limit = con.execute("select current_setting('memory_limit')").fetchone()[0]
        assert limit.replace(" ", "") in ("286.1MiB", "300.0MB", "300MB"), limit
        assert con.execute("select current_setting('temp_directory')").fetchone()[0] == str(tmp_path / "step.duckdb.spill")
        assert con.execute("select current_setting('threads')").fetchone()[0] == 1
        # Unqualified names resolve in the attached database; writes go to the step's own.
        con.execute("create table built as select sum(x) as s from valid_x")
        assert con.execute("select s from built").fetchone()[0] == 45
        try:
            con.execute("create table vf_ingest.main.y as select 1")
        except duckdb.Error as exc:
            assert "read-only" in str(exc).lower()
        else:
            raise AssertionError("the attached database was writable")
    finally:
        con.close()
    con = duckdb.connect(str(src), read_only=True)
    assert {r[0] for r in con.execute("show tables").fetchall()} == {"valid_x"}
    con.close()

"""The step store, run folders and the ``latest`` pointer (pipeline.runs): a failed or killed
step must never leave something a later run reuses, and a failed run must never move latest."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline import runs
from pipeline.errors import VasoflowError


def test_a_step_runs_once_per_key(tmp_path):
    calls = []

    def produce(work: Path) -> None:
        calls.append(work)
        (work / "out.txt").write_text("42")

    first = runs.run_cached(tmp_path, "s", "k1", produce)
    second = runs.run_cached(tmp_path, "s", "k1", produce)
    assert len(calls) == 1
    assert not first.was_cached and second.was_cached
    assert second.files == ("out.txt",) and second.file("out.txt").read_text() == "42"
    runs.run_cached(tmp_path, "s", "k2", produce)
    assert len(calls) == 2


def test_a_failing_step_stores_nothing(tmp_path):
    def produce(work: Path) -> None:
        (work / "half.txt").write_text("partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        runs.run_cached(tmp_path, "s", "k", produce)
    assert not runs.is_complete(tmp_path, "s", "k")
    assert list((tmp_path / "s").iterdir()) == []  # no scratch folder left behind


def test_read_inputs_are_dropped_copies_kept_and_stored_files_protected(tmp_path):
    upstream = tmp_path / "up"
    upstream.mkdir()
    (upstream / "read.parquet").write_text("r")
    (upstream / "db.duckdb").write_text("db")

    def produce(work: Path) -> None:
        assert (work / "read.parquet").read_text() == "r"
        with open(work / "db.duckdb", "a") as fh:  # a step adding tables to its database copy
            fh.write("+cohort")
        (work / "new.json").write_text("{}")

    entry = runs.run_cached(tmp_path / "store", "s", "k", produce,
                            link_inputs={"read.parquet": upstream / "read.parquet"},
                            copy_inputs={"db.duckdb": upstream / "db.duckdb"})
    assert entry.files == ("db.duckdb", "new.json")
    assert (upstream / "db.duckdb").read_text() == "db"  # the upstream database is untouched
    assert entry.file("db.duckdb").read_text() == "db+cohort"
    assert entry.file("new.json").stat().st_mode & 0o222 == 0  # read-only


def test_discarded_copies_are_not_stored(tmp_path):
    (tmp_path / "db").write_text("x")
    entry = runs.run_cached(tmp_path / "store", "s", "k", lambda w: (w / "a.parquet").write_text("a"),
                            copy_inputs={"db.duckdb": tmp_path / "db"}, discard=("db.duckdb",))
    assert entry.files == ("a.parquet",)


def _finished_run(root: Path, text: str) -> Path:
    run_dir = runs.new_run_dir(root)
    (run_dir / "report.html").write_text(text)
    runs.write_manifest(run_dir, {"text": text})
    return run_dir


def test_latest_moves_only_to_finished_runs(tmp_path):
    good = _finished_run(tmp_path, "good")
    runs.promote_latest(tmp_path, good)
    assert runs.read_latest(tmp_path) == good.resolve()
    unfinished = runs.new_run_dir(tmp_path)  # a run that failed before writing its manifest
    with pytest.raises(VasoflowError):
        runs.promote_latest(tmp_path, unfinished)
    assert (tmp_path / "latest" / "report.html").read_text() == "good"
    newer = _finished_run(tmp_path, "newer")
    runs.promote_latest(tmp_path, newer)
    assert (tmp_path / "latest" / "report.html").read_text() == "newer"
    assert os.readlink(tmp_path / "latest") == os.path.join("runs", newer.name)  # relative: root can move
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".latest")]


def test_study_and_audit_pointers_are_separate(tmp_path):
    study = _finished_run(tmp_path, "s")
    runs.promote_latest(tmp_path, study, "study")
    audit = runs.new_run_dir(tmp_path, "audit")
    runs.write_manifest(audit, {})
    runs.promote_latest(tmp_path, audit, "audit")
    assert runs.read_latest(tmp_path, "study") == study.resolve()
    assert runs.read_latest(tmp_path, "audit") == audit.resolve()


def test_reused_means_built_before_the_run_started(tmp_path):
    before = runs.run_cached(tmp_path / "store", "s", "old", lambda w: (w / "a").write_text("1"))
    run_dir = runs.new_run_dir(tmp_path)
    after = runs.run_cached(tmp_path / "store", "s", "new", lambda w: (w / "a").write_text("2"))
    assert before.reused_by(run_dir) and not after.reused_by(run_dir)


def test_materialise_links_and_later_steps_win(tmp_path):
    a = runs.run_cached(tmp_path / "store", "a", "k", lambda w: [(w / n).write_text("a") for n in ("x", "db")])
    b = runs.run_cached(tmp_path / "store", "b", "k", lambda w: (w / "db").write_text("b"))
    run_dir = runs.new_run_dir(tmp_path)
    out = runs.materialise([a, b], run_dir)
    assert out["db"].read_text() == "b" and out["x"].read_text() == "a"
    assert out["x"].stat().st_ino == a.file("x").stat().st_ino  # a hard link, not a copy


def _leftovers(root):
    """What a kill -9 in the middle of steps and runs leaves behind."""
    from pipeline.runs import Layout

    layout = Layout(root)
    scratch = layout.store_dir / "ingest" / ".abc123.building-999-beef"
    scratch.mkdir(parents=True)
    (scratch / ".vasoflow.duckdb.building-999").write_bytes(b"\0" * 100_000)  # a partial database
    unfinished = layout.runs_dir / "study-20260101T000000000000Z-dead"
    unfinished.mkdir(parents=True)
    (unfinished / "cohort.parquet").write_bytes(b"x")
    finished = layout.runs_dir / "study-20250101T000000000000Z-good"
    finished.mkdir()
    (finished / "manifest.json").write_text("{}")
    entry = layout.store_dir / "ingest" / "abc123"
    entry.mkdir()
    (entry / "_step.json").write_text("{}")
    return scratch, unfinished, finished, entry


def test_leftovers_of_killed_runs_are_removed_at_the_next_start(tmp_path):
    from pipeline.runs import run_lock

    scratch, unfinished, finished, entry = _leftovers(tmp_path)
    with run_lock(tmp_path) as removed:
        assert set(removed) == {scratch, unfinished}
    assert not scratch.exists() and not unfinished.exists()
    assert (finished / "manifest.json").is_file() and (entry / "_step.json").is_file()


def test_a_run_in_progress_keeps_its_scratch_folders(tmp_path):
    """While one run holds the lock, a second run starting must not remove the first run's
    scratch folder or its unfinished run folder."""
    import fcntl
    import os

    from pipeline.runs import Layout, run_lock

    scratch, unfinished, _, _ = _leftovers(tmp_path)
    Layout(tmp_path).lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(Layout(tmp_path).lock_path, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)  # the first run, in progress
        with run_lock(tmp_path) as removed:
            assert removed == []
        assert scratch.exists() and unfinished.exists()
    finally:
        os.close(fd)
    with run_lock(tmp_path) as removed:  # the first run has ended: now they are leftovers
        assert scratch in removed


def test_partial_files_of_a_dead_builder_are_removed_not_those_of_a_live_one(tmp_path):
    import os
    import subprocess

    from pipeline.runs import remove_dead_builds

    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / f".vasoflow.duckdb.building-{dead.pid}"
    stale.write_bytes(b"partial")
    (tmp_path / f".vasoflow.duckdb.building-{dead.pid}.wal").write_bytes(b"partial")
    live = tmp_path / f".vasoflow.duckdb.building-{os.getpid()}"
    live.write_bytes(b"in progress")
    removed = remove_dead_builds(tmp_path, "vasoflow.duckdb")
    assert stale in removed and not stale.exists()
    assert live.exists()

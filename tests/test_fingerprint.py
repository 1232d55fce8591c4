"""Source fingerprints and step keys decide what a re-run may reuse: a stale key silently reuses
old results, so these check the cases that must and must not change a key."""

from __future__ import annotations

import os
from pathlib import Path


from pipeline import fingerprint as fpm
from pipeline.config import StudyConfig, load_study_config


def _tiny_source(root: Path) -> Path:
    (root / "hosp").mkdir(parents=True)
    (root / "icu").mkdir()
    (root / "hosp" / "patients.csv").write_text("subject_id,gender\n1,F\n")
    (root / "icu" / "icustays.csv").write_text("stay_id\n10\n")
    return root


def test_touch_or_copy_keeps_the_key_but_an_edit_changes_it(tmp_path):
    src = _tiny_source(tmp_path / "a")
    first = fpm.fingerprint_source(src)
    path = src / "hosp" / "patients.csv"
    os.utime(path, ns=(1, 1))  # same bytes, other mtime
    assert fpm.fingerprint_source(src).key == first.key
    copy = tmp_path / "b"
    import shutil

    shutil.copytree(src, copy)
    assert fpm.fingerprint_source(copy).key == first.key  # location is not content
    path.write_text("subject_id,gender\n1,M\n")  # same size, other content
    os.utime(path, ns=(1, 1))
    assert fpm.fingerprint_source(src).key != first.key


def test_an_added_optional_table_changes_the_key(tmp_path):
    src = _tiny_source(tmp_path / "a")
    before = fpm.fingerprint_source(src)
    assert "icu/chartevents" in before.absent_tables
    (src / "icu" / "chartevents.csv").write_text("stay_id\n")
    assert fpm.fingerprint_source(src).key != before.key


def test_the_memo_skips_rehashing_unchanged_files(tmp_path):
    src = _tiny_source(tmp_path / "a")
    memo = tmp_path / "memo.json"
    first = fpm.fingerprint_source(src, memo)
    assert first.bytes_hashed == first.total_bytes > 0
    again = fpm.fingerprint_source(src, memo)
    assert again.bytes_hashed == 0 and again.key == first.key
    path = src / "icu" / "icustays.csv"
    path.write_text("stay_id\n11\n")
    changed = fpm.fingerprint_source(src, memo)
    assert changed.bytes_hashed == path.stat().st_size  # only the changed file is read
    assert changed.key != first.key


def test_fingerprint_and_ingest_share_one_file_lookup(tmp_path):
    import pipeline.ingest as ingest_module
    from schemas.raw import RAW_TABLES, find_table_file

    assert fpm.find_table_file is find_table_file is ingest_module.find_table_file
    import pytest

    from pipeline.errors import InputFileError

    src = _tiny_source(tmp_path / "a")
    (src / "hosp" / "labevents.parquet").write_bytes(b"")
    assert find_table_file(src, RAW_TABLES["icustays"]).name == "icustays.csv"
    assert find_table_file(src, RAW_TABLES["labevents"]).name == "labevents.parquet"
    assert find_table_file(src, RAW_TABLES["chartevents"]) is None
    (src / "icu" / "icustays.csv.gz").write_bytes(b"")  # a second format of one table
    with pytest.raises(InputFileError, match=r"icustays.csv.gz and icustays.csv: table 'icustays' is present in two formats"):
        find_table_file(src, RAW_TABLES["icustays"])
    with pytest.raises(InputFileError, match="two formats"):
        fpm.fingerprint_source(src)


class _Recording(StudyConfig):
    """A study config that records every key read through ``get``."""

    def get(self, dotted):
        self.__dict__.setdefault("_read", set()).add(dotted)
        return super().get(dotted)


def test_ingest_reads_only_the_config_sections_in_its_key(tmp_path, demo_dir):
    """If the ingest starts reading another section, its cache key must include it."""
    from pipeline.ingest import ingest

    base = load_study_config()
    config = _Recording(settings=base.settings, source=base.source)
    ingest(demo_dir, tmp_path / "db.duckdb", config)
    sections = {key.split(".")[0] for key in config.__dict__["_read"]}
    assert sections and sections <= set(fpm.INGEST_CONFIG_SECTIONS)


def test_threshold_change_keeps_the_ingest_key_and_changes_downstream_keys(tmp_path):
    src = _tiny_source(tmp_path / "a")
    fp = fpm.fingerprint_source(src)
    base = load_study_config()
    user = tmp_path / "study.toml"
    user.write_text("[classification]\nvasst_more_severe_ne_mcg_min = 20.0\n")
    changed = load_study_config(user)
    assert fpm.ingest_key(fp, base) == fpm.ingest_key(fp, changed)
    up = {"ingest": fpm.ingest_key(fp, base)}
    assert (fpm.downstream_key("cohort", up, base, "pipeline.cohort", ("sql",))
            != fpm.downstream_key("cohort", up, changed, "pipeline.cohort", ("sql",)))
    ingest_change = tmp_path / "ingest.toml"
    ingest_change.write_text("[ingest]\nstay_time_margin_hours = 12\n")
    assert fpm.ingest_key(fp, load_study_config(ingest_change)) != fpm.ingest_key(fp, base)


def test_module_closure_follows_imports_without_importing(tmp_path):
    import sys

    files = {p.relative_to(p.parents[1]).as_posix() for p in fpm.module_closure(["pipeline.ingest"])}
    assert {"pipeline/ingest.py", "pipeline/concepts.py", "schemas/raw.py", "schemas/validation.py",
            "pipeline/__init__.py"} <= files
    assert "pipeline/cohort.py" not in files  # a cohort edit must not re-ingest
    before = set(sys.modules)
    fpm.module_closure(["pipeline.models"])
    assert not {m for m in set(sys.modules) - before if m.startswith("pipeline.models")}


def test_a_file_replaced_while_the_ingest_reads_it_does_not_poison_the_cache(tmp_path, monkeypatch):
    """Issue 18: a source file replaced mid-run (after fingerprinting, while the ingest reads)
    must not be stored under the key of the bytes hashed before; after the file is restored,
    the next run must not reuse outputs made from the other version."""
    import pytest

    import pipeline.ingest as ingest_module
    from pipeline.errors import InputFileError
    from pipeline.run import LEDGER_NAME, fingerprint_step, ingest_step
    from pipeline.runs import Layout

    src = _tiny_source(tmp_path / "src")
    target = src / "icu" / "icustays.csv"
    original = target.read_bytes()
    root = tmp_path / "out"
    config = load_study_config()

    def fake_ingest(source, db_path, cfg, swap=None):
        # Stands in for the real ingest: its output is exactly the bytes it read.
        if swap is not None:
            swap()
        db_path.write_bytes((Path(source) / "icu" / "icustays.csv").read_bytes())
        db_path.with_name(LEDGER_NAME).write_text("{}")

    def replace_file():
        tmp = target.with_name("icustays.new")
        tmp.write_bytes(b"stay_id\n99\n")
        os.replace(tmp, target)

    fp = fingerprint_step(root, src)
    monkeypatch.setattr(ingest_module, "ingest", lambda s, d, c: fake_ingest(s, d, c, replace_file))
    with pytest.raises(InputFileError, match="changed while the run read it"):
        ingest_step(root, src, fp, config)
    store = Layout(root).store_dir / "ingest"
    assert not [p for p in store.iterdir()] if store.exists() else True  # nothing stored, no scratch left

    # The file is restored (same bytes as fingerprinted, new inode): the next run re-ingests
    # and stores what it read, which is the original content.
    tmp = target.with_name("icustays.old")
    tmp.write_bytes(original)
    os.replace(tmp, target)
    monkeypatch.setattr(ingest_module, "ingest", fake_ingest)
    fp2 = fingerprint_step(root, src)
    assert fp2.key == fp.key
    entry = ingest_step(root, src, fp2, config)
    assert not entry.was_cached
    assert entry.file("vasoflow.duckdb").read_bytes() == original


def test_a_file_changed_during_hashing_is_refused(tmp_path, monkeypatch):
    import pytest

    from pipeline.errors import InputFileError

    src = _tiny_source(tmp_path / "a")
    real = fpm.hash_file

    def hash_then_edit(path):
        digest = real(path)
        with open(path, "a") as fh:
            fh.write("2,F\n")
        return digest

    monkeypatch.setattr(fpm, "hash_file", hash_then_edit)
    with pytest.raises(InputFileError, match="changed while it was being fingerprinted"):
        fpm.fingerprint_source(src)


def test_real_ingest_of_a_file_replaced_mid_read_stores_nothing_and_the_next_run_is_fresh(tmp_path, monkeypatch):
    """The same with the real ingest on synthetic data: inputevents is swapped for a version
    with half its rows just before the ingest reads it. Nothing may be stored; after the
    original is restored the next run must ingest again and read every original row."""
    import gzip
    import json

    import pytest

    import pipeline.ingest as ingest_module
    from pipeline.errors import InputFileError
    from pipeline.run import LEDGER_NAME, fingerprint_step, ingest_step
    from pipeline.runs import Layout
    from pipeline.synth import generate

    src, root = tmp_path / "src", tmp_path / "out"
    generate(src, n_stays=40, seed=3)
    target = src / "icu" / "inputevents.csv.gz"
    original = target.read_bytes()
    lines = gzip.decompress(original).decode().splitlines(keepends=True)
    config = load_study_config()
    fp = fingerprint_step(root, src)

    real_load = ingest_module._load_raw

    def swap_then_load(con, path, table, mapped, concepts):
        if table.name == "inputevents":
            tmp = target.with_name("inputevents.swap")
            tmp.write_bytes(gzip.compress("".join(lines[: len(lines) // 2]).encode()))
            os.replace(tmp, target)
        return real_load(con, path, table, mapped, concepts)

    monkeypatch.setattr(ingest_module, "_load_raw", swap_then_load)
    with pytest.raises(InputFileError, match="inputevents.csv.gz: the file changed while the run read it"):
        ingest_step(root, src, fp, config)
    assert not list((Layout(root).store_dir / "ingest").iterdir())

    monkeypatch.setattr(ingest_module, "_load_raw", real_load)
    tmp = target.with_name("inputevents.restore")
    tmp.write_bytes(original)
    os.replace(tmp, target)
    fp2 = fingerprint_step(root, src)
    assert fp2.key == fp.key
    entry = ingest_step(root, src, fp2, config)
    assert not entry.was_cached
    ledger = {t["table"]: t for t in json.loads(entry.file(LEDGER_NAME).read_text())["tables"]}
    fresh = ingest_module.ingest(src, tmp_path / "fresh" / "v.duckdb", config)
    assert ledger["inputevents"]["rows_read"] == {t.table: t for t in fresh.tables}["inputevents"].rows_read > 0


def test_a_cached_run_start_imports_no_validation_code(tmp_path):
    """Deciding whether the ingest can be reused (source fingerprint, ingest key) must not
    import pandera: it took 1-3 s of every run that reused everything (issue 16)."""
    import subprocess
    import sys

    code = ("import sys; from pathlib import Path; "
            "from pipeline.fingerprint import fingerprint_source, eicu_fingerprint, code_fingerprint; "
            f"fingerprint_source(Path({str(tmp_path)!r})); eicu_fingerprint(); code_fingerprint('pipeline.ingest'); "
            "print('pandera' in sys.modules)")
    (tmp_path / "hosp").mkdir()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

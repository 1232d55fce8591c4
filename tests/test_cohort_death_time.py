"""Death time with several death records: the earliest one (MIMIC maintainers' advice,
MIT-LCP/mimic-iv issue #71: organ-donor accounts add a second hadm_id with a later deathtime)."""

from __future__ import annotations

import shutil
from datetime import date, datetime

import duckdb
import polars as pl

from cohort_fixture import CohortDB, t
from pipeline.cohort import build_cohort


def test_organ_donor_account_does_not_move_death_later():
    db = CohortDB()
    subject, _ = db.septic_stay(1, deathtime=t(60 * 24 * 3))
    # the organ-donor account: a second admission opened after death, with a later deathtime
    db.admission(subject, 9_001, t(60 * 24 * 3 + 120), t(60 * 24 * 4), deathtime=t(60 * 24 * 4))
    db.infusion(1, "norepinephrine", 0, 60, 0.1)
    row = db.build().row(1)
    assert row["death_time"] == t(60 * 24 * 3)
    assert row["followup_end_time"] == t(60 * 24 * 3)


def test_dod_days_before_the_deathtime_wins_but_the_same_day_does_not():
    db = CohortDB()
    # 1: dod two days before the admission deathtime (conflicting records): the earlier, dod
    db.septic_stay(1, deathtime=t(60 * 24 * 10), dod=date(2150, 1, 9))
    db.infusion(1, "norepinephrine", 0, 60, 0.1)
    # 2: dod on the deathtime's day: the deathtime is the precise record (not 00:00)
    db.septic_stay(2, deathtime=t(60 * 24 * 10), dod=date(2150, 1, 11))
    db.infusion(2, "norepinephrine", 0, 60, 0.1)
    # 3: dod after the deathtime: the earlier, the deathtime
    db.septic_stay(3, deathtime=t(60 * 24 * 10), dod=date(2150, 2, 1))
    db.infusion(3, "norepinephrine", 0, 60, 0.1)
    db.build()
    assert db.row(1)["death_time"] == datetime(2150, 1, 9)
    assert db.row(2)["death_time"] == t(60 * 24 * 10)
    assert db.row(3)["death_time"] == t(60 * 24 * 10)


def test_demo_death_times_are_the_earliest_record(demo_db, demo_dir, tmp_path):
    db = tmp_path / "demo.duckdb"
    shutil.copy(demo_db.db_path, db)
    # Real demo patient 10023117 (stay 30955999) died in hospital 2175-07-20 22:50. Add an
    # organ-donor account as MIMIC would: a second admission after death, later deathtime.
    con = duckdb.connect(str(db))
    con.execute(
        "INSERT INTO raw_admissions (source_row, subject_id, hadm_id, admittime, dischtime, deathtime) "
        "VALUES (100000, 10023117, 29999999, TIMESTAMP '2175-07-21 02:00:00', "
        "TIMESTAMP '2175-07-21 09:00:00', TIMESTAMP '2175-07-21 08:00:00')"
    )
    con.close()
    cfg_path = tmp_path / "study.toml"
    cfg_path.write_text("[cohort]\nrequire_sepsis_diagnosis = false\nfirst_stay_only = false\n")
    from pipeline.config import load_study_config

    build_cohort(db, tmp_path / "out", load_study_config(cfg_path))
    con = duckdb.connect(str(db), read_only=True)
    out = con.execute("select subject_id, death_time from int_patient_outcomes").pl()
    con.close()
    by_subject = dict(zip(out["subject_id"].to_list(), out["death_time"].to_list()))
    assert by_subject[10023117] == datetime(2175, 7, 20, 22, 50)
    # Every other demo patient with an in-hospital death: the earliest deathtime of the raw file
    raw = pl.read_csv(demo_dir / "hosp" / "admissions.csv.gz", try_parse_dates=True, infer_schema_length=None)
    earliest = raw.filter(pl.col("deathtime").is_not_null()).group_by("subject_id").agg(pl.col("deathtime").min())
    assert earliest.height > 5
    for subject, when in earliest.iter_rows():
        assert by_subject[subject] == when, subject

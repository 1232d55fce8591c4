"""Cohort filters and the attrition table, with the switches on and off."""

from __future__ import annotations

import pytest

from cohort_fixture import CohortDB, study_config_with


@pytest.fixture
def population():
    """Eight stays of seven patients, each failing (or passing) a known filter."""
    db = CohortDB()
    # 1: 16 years old, septic, NE -> fails adult
    db.septic_stay(1, anchor_age=16)
    db.infusion(1, "norepinephrine", 0, 60, 0.1)
    # 2: adult, no sepsis code, NE -> fails sepsis
    db.septic_stay(2, sepsis=False)
    db.infusion(2, "norepinephrine", 0, 60, 0.1)
    # 3: adult, septic, no NE (vasopressin only) -> fails NE
    db.septic_stay(3)
    db.infusion(3, "vasopressin", 0, 60, 2.4, "units/hour")
    # 4 and 5: the same patient, two qualifying stays in one admission; 5 is earlier by intime
    db.septic_stay(4, subject_id=4_000, hadm_id=4_001, intime_min=3000, outtime_min=5000)
    db.infusion(4, "norepinephrine", 3100, 3200, 0.1, subject_id=4_000, hadm_id=4_001)
    db.septic_stay(5, subject_id=4_000, hadm_id=4_002, intime_min=-120, outtime_min=600, new_patient=False)
    db.infusion(5, "norepinephrine", 0, 60, 0.1, subject_id=4_000, hadm_id=4_002)
    # 6: qualifying
    db.septic_stay(6)
    db.infusion(6, "norepinephrine", 0, 60, 0.1)
    # 7: NE row with rate 0 only -> never infused, fails NE
    db.septic_stay(7)
    db.infusion(7, "norepinephrine", 0, 60, 0.0, status="Paused")
    # 8: 17 at anchor, admitted one year after anchor_year -> 18 at admission: adult
    db.septic_stay(8, anchor_age=17)
    db.con.execute("UPDATE valid_patients SET anchor_year = anchor_year - 1 WHERE subject_id = 1000008")
    db.infusion(8, "norepinephrine", 0, 60, 0.1)
    return db


def _attrition(db):
    return db.frame("select * from mart_attrition order by step").to_dicts()


def test_attrition_with_both_switches_on(population):
    rows = _attrition(population.build())
    assert [r["step_name"] for r in rows] == [
        "all_icu_stays", "adult", "sepsis_diagnosis", "received_ne", "first_stay_per_patient",
        "rrt_no_chronic_dialysis",
    ]
    assert [r["analysis"] for r in rows] == ["all"] * 5 + ["rrt"]
    assert [r["n_stays"] for r in rows] == [8, 7, 6, 4, 3, 3]
    assert [r["n_patients"] for r in rows] == [7, 6, 5, 3, 3, 3]
    assert [r["n_excluded"] for r in rows] == [0, 1, 1, 2, 1, 0]
    assert all(r["is_applied"] for r in rows)
    assert sorted(population.cohort()["stay_id"].to_list()) == [5, 6, 8]


def test_switches_off_keep_their_row_as_not_applied(population, tmp_path):
    cfg = study_config_with(tmp_path, "[cohort]\nrequire_sepsis_diagnosis = false\nfirst_stay_only = false\n")
    rows = _attrition(population.build(cfg))
    assert [r["n_stays"] for r in rows] == [8, 7, 7, 5, 5, 5]
    assert [r["n_excluded"] for r in rows] == [0, 1, 0, 2, 0, 0]
    for r in rows:
        if r["step_name"] in ("sepsis_diagnosis", "first_stay_per_patient"):
            assert not r["is_applied"] and "not applied" in r["description"]
    assert sorted(population.cohort()["stay_id"].to_list()) == [2, 4, 5, 6, 8]


def test_min_age_comes_from_the_config(population, tmp_path):
    cfg = study_config_with(tmp_path, "[cohort]\nmin_age_years = 65\n")
    rows = _attrition(population.build(cfg))
    assert rows[1]["n_stays"] == 0 and "65" in rows[1]["description"]
    assert population.cohort().height == 0


def test_icd9_codes_and_version_must_match(tmp_path):
    db = CohortDB()
    db.septic_stay(1, sepsis=False)
    db.diagnosis(1_000_001, 2_000_001, "99592", icd_version=9)  # ICD-9 severe sepsis
    db.infusion(1, "norepinephrine", 0, 60, 0.1)
    db.septic_stay(2, sepsis=False)
    db.diagnosis(1_000_002, 2_000_002, "99592", icd_version=10)  # not an ICD-10 sepsis prefix
    db.infusion(2, "norepinephrine", 0, 60, 0.1)
    assert db.build().cohort()["stay_id"].to_list() == [1]

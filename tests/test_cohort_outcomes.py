"""Outcomes from index_time (death, follow-up, RRT) and covariates before the decision time."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from cohort_fixture import CohortDB, measurement_itemid, rrt_procedure_itemid, t


def test_in_hospital_death_uses_deathtime():
    db = CohortDB()
    db.septic_stay(1, deathtime=t(60 * 24 * 10), dod=date(2150, 1, 11))
    db.infusion(1, "norepinephrine", 0, 60, 0.1)
    row = db.build().row(1)
    assert row["death_time"] == t(60 * 24 * 10)
    assert row["days_to_death"] == pytest.approx(10.0)
    assert row["death_28d"] is True and row["death_90d"] is True
    assert row["followup_end_time"] == row["death_time"]


def test_death_after_discharge_on_the_discharge_day_is_not_before_discharge():
    db = CohortDB()
    # discharged at day 6 08:00 (fixture: outtime + 1 day); dod is that same calendar day
    db.septic_stay(1, outtime_min=60 * 24 * 5, dod=date(2150, 1, 7))
    db.infusion(1, "norepinephrine", 0, 60, 0.1)
    row = db.build().row(1)
    assert row["death_time"] == t(60 * 24 * 6)  # the dischtime, not 00:00
    db2 = CohortDB()
    db2.septic_stay(2, dod=date(2150, 3, 1))  # 59 days later, out of hospital
    db2.infusion(2, "norepinephrine", 0, 60, 0.1)
    row2 = db2.build().row(2)
    assert row2["death_time"] == t(0).replace(month=3, day=1, hour=0)
    assert row2["death_28d"] is False and row2["death_90d"] is True


def test_survivor_is_followed_one_year_after_last_discharge():
    db = CohortDB()
    subject, _ = db.septic_stay(1)
    db.admission(subject, 9_999, t(60 * 24 * 100), t(60 * 24 * 110))  # later admission
    db.infusion(1, "norepinephrine", 0, 60, 0.1)
    row = db.build().row(1)
    assert row["death_time"] is None and row["days_to_death"] is None
    assert row["followup_end_time"] == t(60 * 24 * 110) + timedelta(days=365)
    assert row["death_28d"] is False and row["death_90d"] is False


def test_rrt_before_and_after_index():
    db = CohortDB()
    db.septic_stay(1)
    db.infusion(1, "norepinephrine", 0, 600, 0.1)
    db.procedure(1, rrt_procedure_itemid(), -60, -10)
    db.procedure(1, rrt_procedure_itemid(), 300, 900)
    db.procedure(1, rrt_procedure_itemid(), 200, 900, status="Rewritten")
    db.septic_stay(2)
    db.infusion(2, "norepinephrine", 0, 600, 0.1)
    db.procedure(2, rrt_procedure_itemid(), 0, 100)  # at index: after
    db.build()
    r1, r2 = db.row(1), db.row(2)
    assert (r1["rrt_before_index"], r1["rrt_after_index"], r1["rrt_first_time_after_index"]) == (True, True, t(300))
    assert (r2["rrt_before_index"], r2["rrt_after_index"], r2["rrt_first_time_after_index"]) == (False, True, t(0))


def test_lactate_map_and_creatinine_windows():
    db = CohortDB()
    subject, _ = db.septic_stay(1)
    db.infusion(1, "norepinephrine", 0, 600, 0.1)
    db.infusion(1, "vasopressin", 300, 600, 2.4, "units/hour")
    db.lab(subject, "lactate", -60 * 25, 9.0)  # outside the 24 h window of index + 1 h
    db.lab(subject, "lactate", -30, 4.0)
    db.lab(subject, "lactate", 60, 5.0)  # index + 1 h exactly: the last one at index
    db.lab(subject, "lactate", 120, 6.0)  # after index + 1 h, before VP
    db.lab(subject, "lactate", 301, 7.0)  # after VP start
    db.lab(subject, "creatinine", -60 * 24 * 8, 0.5)  # older than 7 days
    db.lab(subject, "creatinine", -60 * 24 * 2, 1.4)
    db.lab(subject, "creatinine", -60, 1.1)
    db.lab(subject, "creatinine", 30, 0.9)  # after index
    map_item = measurement_itemid("map")
    db.chart(1, map_item, 200, 70.0)  # more than 1 h before VP
    db.chart(1, map_item, 250, 58.0)
    db.chart(1, map_item, 310, 80.0)  # after VP
    row = db.build().row(1)
    assert row["lactate_at_index_mmol_l"] == 5.0
    assert row["lactate_before_vp_mmol_l"] == 6.0
    assert row["creatinine_baseline_mg_dl"] == 1.1
    assert row["map_before_vp_mmhg"] == 58.0
    assert row["has_lactate_source"] and row["has_map_source"] and row["has_chartevents"]


def test_missing_chartevents_is_flagged_not_just_null():
    db = CohortDB(unavailable=("chartevents",))
    db.septic_stay(1)
    db.infusion(1, "norepinephrine", 0, 600, 0.1)
    row = db.build().row(1)
    assert row["map_before_vp_mmhg"] is None
    assert row["has_map_source"] is False and row["has_chartevents"] is False
    assert row["has_lactate_source"] is True

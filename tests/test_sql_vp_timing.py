"""The NE rate at vasopressin start, exposure groups, VASST strata and timing classes
(cohort_spec.md), one small timeline per trap. Expected values are worked out by hand from the
spec, not read back from the SQL."""

from __future__ import annotations

import pytest

from cohort_fixture import CohortDB


def _vp_added(db: CohortDB, stay_id: int) -> dict:
    row = db.row(stay_id)
    assert row["exposure"] == "vp_added"
    return row


def test_same_minute_ne_rate_change_at_vp_start_counts_with_its_new_rate():
    db = CohortDB()
    db.septic_stay(1)
    # old row stays open 5 min past the change (MetaVision charting), new rate charted at 120
    db.infusion(1, "norepinephrine", 0, 125, 0.1, status="ChangeDose/Rate")
    db.infusion(1, "norepinephrine", 120, 300, 0.3)
    db.infusion(1, "vasopressin", 120, 300, 2.4, "units/hour")
    row = _vp_added(db.build(), 1)
    assert row["ne_rate_at_vp_mcg_kg_min"] == pytest.approx(0.3)
    assert row["ne_rate_at_vp_mcg_min"] == pytest.approx(0.3 * 80)
    assert row["hours_ne_to_vp"] == pytest.approx(2.0)


def test_ne_and_vp_starting_together_is_vp_added_with_the_first_ne_rate():
    db = CohortDB()
    db.septic_stay(1)
    db.infusion(1, "norepinephrine", 0, 60, 0.05)
    db.infusion(1, "norepinephrine", 60, 120, 0.2)
    db.infusion(1, "vasopressin", 0, 120, 0.03, "units/min")
    row = _vp_added(db.build(), 1)
    assert row["hours_ne_to_vp"] == 0
    assert row["ne_rate_at_vp_mcg_kg_min"] == pytest.approx(0.05)
    assert row["timing_class"] == "early"


def test_overlapping_ne_rows_take_the_latest_started_row_never_the_sum():
    db = CohortDB()
    for stay, vp_min in ((1, 90), (2, 150)):
        db.septic_stay(stay)
        db.infusion(stay, "norepinephrine", 0, 240, 0.2, orderid=10)
        db.infusion(stay, "norepinephrine", 60, 120, 0.4, orderid=11)  # inside the long row
        db.infusion(stay, "vasopressin", vp_min, 240, 2.4, "units/hour")
    db.build()
    assert _vp_added(db, 1)["ne_rate_at_vp_mcg_kg_min"] == pytest.approx(0.4)  # not 0.6
    assert _vp_added(db, 2)["ne_rate_at_vp_mcg_kg_min"] == pytest.approx(0.2)  # long row resumes
    intervals = db.frame(
        "select starttime, endtime, rate_mcg_kg_min from int_drug_rate_intervals "
        "where stay_id = 1 and drug = 'norepinephrine' order by starttime"
    )
    assert intervals["rate_mcg_kg_min"].to_list() == pytest.approx([0.2, 0.4, 0.2])
    # non-overlapping and contiguous
    assert intervals["endtime"].to_list()[:-1] == intervals["starttime"].to_list()[1:]


def test_same_start_ties_go_to_the_larger_orderid_then_the_larger_rate():
    db = CohortDB()
    db.septic_stay(1)
    db.infusion(1, "norepinephrine", 0, 120, 0.3, orderid=5)
    db.infusion(1, "norepinephrine", 0, 120, 0.1, orderid=6)
    db.infusion(1, "vasopressin", 30, 120, 2.4, "units/hour")
    db.septic_stay(2)
    db.infusion(2, "norepinephrine", 0, 120, 0.1, orderid=7)
    db.infusion(2, "norepinephrine", 0, 120, 0.3, orderid=7)
    db.infusion(2, "vasopressin", 30, 120, 2.4, "units/hour")
    db.build()
    assert _vp_added(db, 1)["ne_rate_at_vp_mcg_kg_min"] == pytest.approx(0.1)
    assert _vp_added(db, 2)["ne_rate_at_vp_mcg_kg_min"] == pytest.approx(0.3)


def test_rewritten_rows_are_ignored():
    db = CohortDB()
    db.septic_stay(1)
    # a Rewritten copy starting earlier must not move ne_start_time nor set the rate at VP
    db.infusion(1, "norepinephrine", -60, 240, 0.9, status="Rewritten")
    db.infusion(1, "norepinephrine", 0, 240, 0.15)
    db.infusion(1, "vasopressin", 60, 240, 2.4, "units/hour")
    db.infusion(1, "vasopressin", -30, 240, 2.4, "units/hour", status="Rewritten")
    row = _vp_added(db.build(), 1)
    assert row["ne_start_time"] == db.row(1)["index_time"]
    assert row["hours_ne_to_vp"] == pytest.approx(1.0)
    assert row["ne_rate_at_vp_mcg_kg_min"] == pytest.approx(0.15)
    assert db.frame("select count(*) as n from stg_inputevents_vasoactive")["n"][0] == 2


def test_vasopressin_units_per_min_and_per_hour_both_become_units_per_min():
    db = CohortDB()
    db.septic_stay(1)
    db.infusion(1, "norepinephrine", 0, 240, 0.2)
    db.infusion(1, "vasopressin", 60, 120, 0.03, "units/min")
    db.infusion(1, "vasopressin", 120, 240, 2.4, "units/hour")
    db.build()
    vp = db.frame(
        "select rate_units_min, rate_mcg_kg_min, nee_mcg_kg_min from stg_inputevents_vasoactive "
        "where drug = 'vasopressin' order by starttime"
    )
    assert vp["rate_units_min"].to_list() == pytest.approx([0.03, 0.04])
    assert vp["rate_mcg_kg_min"].to_list() == [None, None]
    assert vp["nee_mcg_kg_min"].to_list() == pytest.approx([0.075, 0.1])  # x 2.5 (Goradia)
    assert _vp_added(db, 1)["vp_start_time"] is not None


def test_nee_at_vp_sums_running_vasopressors_without_vasopressin_and_inotropes():
    db = CohortDB()
    db.septic_stay(1)
    db.infusion(1, "norepinephrine", 0, 240, 0.2)
    db.infusion(1, "epinephrine", 30, 240, 0.05)
    db.infusion(1, "phenylephrine", 30, 240, 1.0)  # x 0.1
    db.infusion(1, "dobutamine", 30, 240, 5.0)  # inotrope: not in NEE
    db.infusion(1, "vasopressin", 60, 240, 2.4, "units/hour")
    row = _vp_added(db.build(), 1)
    assert row["nee_at_vp_mcg_kg_min"] == pytest.approx(0.2 + 0.05 + 0.1)
    assert row["ne_rate_at_vp_mcg_kg_min"] == pytest.approx(0.2)


def test_vp_only_in_a_later_episode_is_ne_only():
    db = CohortDB()
    db.septic_stay(1)
    db.infusion(1, "norepinephrine", 0, 120, 0.2)
    # starts 7 h after NE stopped: > 6 h gap, a new shock episode
    db.infusion(1, "vasopressin", 120 + 7 * 60, 120 + 9 * 60, 2.4, "units/hour")
    row = db.build().row(1)
    assert row["exposure"] == "ne_only"
    assert row["vp_start_time"] is None and row["timing_class"] is None and row["vasst_stratum"] is None
    assert db.frame("select count(*) as n from int_shock_episodes where stay_id = 1")["n"][0] == 2


def test_vp_within_the_episode_gap_is_vp_added():
    db = CohortDB()
    db.septic_stay(1)
    db.infusion(1, "norepinephrine", 0, 120, 0.2)
    # exactly 6 h after NE stopped: still the same episode (gap <= 6 h); NE no longer running
    db.infusion(1, "vasopressin", 120 + 6 * 60, 120 + 9 * 60, 2.4, "units/hour")
    row = _vp_added(db.build(), 1)
    assert row["ne_rate_at_vp_mcg_kg_min"] == 0
    assert row["ne_rate_at_vp_mcg_min"] == 0
    assert (row["vasst_stratum"], row["timing_class"]) == ("below_entry", "early")


def test_vp_before_ne_in_the_same_episode():
    db = CohortDB()
    db.septic_stay(1)
    db.infusion(1, "vasopressin", -60, 240, 2.4, "units/hour")
    db.infusion(1, "norepinephrine", 0, 240, 0.2)
    row = db.build().row(1)
    assert row["exposure"] == "vp_before_ne"
    assert row["vp_start_time"] is None and row["ne_rate_at_vp_mcg_kg_min"] is None


def test_vp_row_with_rate_zero_is_not_an_exposure():
    db = CohortDB()
    db.septic_stay(1)
    db.infusion(1, "norepinephrine", 0, 240, 0.2)
    db.infusion(1, "vasopressin", 30, 60, 0.0, "units/hour", status="Paused")
    db.infusion(1, "vasopressin", 90, 240, 2.4, "units/hour")
    assert _vp_added(db.build(), 1)["hours_ne_to_vp"] == pytest.approx(1.5)


def test_ne_paused_at_vp_start_gives_rate_zero_and_the_last_weight():
    db = CohortDB()
    db.septic_stay(1)
    db.infusion(1, "norepinephrine", 0, 60, 0.2, weight=70.0, status="Paused")
    db.infusion(1, "norepinephrine", 90, 240, 0.2, weight=70.0)
    db.infusion(1, "vasopressin", 70, 240, 2.4, "units/hour")
    row = _vp_added(db.build(), 1)
    assert row["ne_rate_at_vp_mcg_kg_min"] == 0 and row["ne_rate_at_vp_mcg_min"] == 0
    assert row["weight_kg"] == 70.0


# (mcg/kg/min, weight kg) -> (mcg/min, vasst_stratum, timing_class), from the spec's cut-offs:
# below_entry < 5 <= less_severe < 15 <= more_severe; early < 0.1 <= recommended < 0.25 <=
# ssc_window <= 0.5 < delayed; > 35 mcg/min delayed whatever the weight.
BOUNDARIES = [
    (0.09, 50.0, 4.5, "below_entry", "early"),
    (0.1, 50.0, 5.0, "less_severe", "recommended"),  # exactly 0.1 and exactly 5
    (0.2, 74.0, 14.8, "less_severe", "recommended"),
    (0.25, 60.0, 15.0, "more_severe", "ssc_window"),  # exactly 0.25 and exactly 15
    (0.5, 70.0, 35.0, "more_severe", "ssc_window"),  # exactly 0.5 and exactly 35: not delayed
    (0.3, 120.0, 36.0, "more_severe", "delayed"),  # absolute rule wins over 0.3 mcg/kg/min
    (0.51, 40.0, 20.4, "more_severe", "delayed"),  # per-kg rule
]


@pytest.mark.parametrize("rate,weight,mcg_min,stratum,timing", BOUNDARIES)
def test_strata_and_timing_at_the_boundaries(rate, weight, mcg_min, stratum, timing):
    db = CohortDB()
    db.septic_stay(1)
    db.infusion(1, "norepinephrine", 0, 240, rate, weight=weight)
    db.infusion(1, "vasopressin", 60, 240, 2.4, "units/hour")
    row = _vp_added(db.build(), 1)
    assert row["ne_rate_at_vp_mcg_min"] == pytest.approx(mcg_min)
    assert row["weight_kg"] == weight
    assert (row["vasst_stratum"], row["timing_class"]) == (stratum, timing)

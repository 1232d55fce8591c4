"""Infusions (drug gap <= 60 min), shock episodes (vasopressor gap <= 6 h), index episodes."""

from __future__ import annotations

from cohort_fixture import CohortDB, study_config_with, t


def _infusions(db, drug="norepinephrine"):
    return db.frame(
        f"select starttime, endtime, n_rows from int_drug_infusions where drug = '{drug}' order by starttime"
    )


def test_ne_rows_60_min_apart_are_one_infusion_61_min_apart_are_two():
    db = CohortDB()
    db.septic_stay(1)
    db.infusion(1, "norepinephrine", 0, 60, 0.1)
    db.infusion(1, "norepinephrine", 120, 180, 0.1)  # gap exactly 60 min: same infusion
    db.infusion(1, "norepinephrine", 241, 300, 0.1)  # gap 61 min: new infusion
    inf = _infusions(db.build())
    assert inf["starttime"].to_list() == [t(0), t(241)]
    assert inf["endtime"].to_list() == [t(180), t(300)]
    assert inf["n_rows"].to_list() == [2, 1]


def test_drug_gap_comes_from_the_config(tmp_path):
    db = CohortDB()
    db.septic_stay(1)
    db.infusion(1, "norepinephrine", 0, 60, 0.1)
    db.infusion(1, "norepinephrine", 120, 180, 0.1)
    db.build(study_config_with(tmp_path, "[episodes]\ndrug_gap_minutes = 30\n"))
    assert _infusions(db).height == 2


def test_gap_is_measured_from_the_latest_end_of_overlapping_rows():
    db = CohortDB()
    db.septic_stay(1)
    db.infusion(1, "norepinephrine", 0, 600, 0.1)  # long row
    db.infusion(1, "norepinephrine", 30, 60, 0.2)  # short row inside it
    db.infusion(1, "norepinephrine", 630, 700, 0.1)  # 30 min after the long row ends
    assert _infusions(db.build()).height == 1


def test_rows_with_rate_zero_do_not_bridge_or_start_infusions():
    db = CohortDB()
    db.septic_stay(1)
    db.infusion(1, "norepinephrine", -120, 0, 0.0, status="Paused")
    db.infusion(1, "norepinephrine", 0, 60, 0.1)
    db.infusion(1, "norepinephrine", 60, 200, 0.0, status="Paused")
    db.infusion(1, "norepinephrine", 200, 260, 0.1)  # 140 min after the last infusing row
    db.build()
    assert _infusions(db)["starttime"].to_list() == [t(0), t(200)]
    assert db.row(1)["ne_start_time"] == t(0)


def test_shock_episode_joins_vasopressors_within_6_h_and_ignores_inotropes():
    db = CohortDB()
    db.septic_stay(1)
    db.infusion(1, "norepinephrine", 0, 60, 0.1)
    db.infusion(1, "phenylephrine", 60 + 6 * 60, 500, 1.0)  # exactly 6 h later: same episode
    db.infusion(1, "dobutamine", 1000, 1100, 5.0)  # inotrope: no episode
    db.infusion(1, "norepinephrine", 500 + 6 * 60 + 1, 1300, 0.1)  # 6 h 1 min later: new episode
    eps = db.build().frame(
        "select episode_start_time, episode_end_time from int_shock_episodes where stay_id = 1 order by 1"
    )
    assert eps["episode_start_time"].to_list() == [t(0), t(861)]
    assert eps["episode_end_time"].to_list() == [t(500), t(1300)]
    row = db.row(1)
    assert (row["episode_start_time"], row["episode_end_time"]) == (t(0), t(500))


def test_index_episode_is_the_one_with_the_first_ne_even_if_another_vasopressor_came_first():
    db = CohortDB()
    db.septic_stay(1)
    db.infusion(1, "epinephrine", -900, -800, 0.05)  # earlier episode without NE
    db.infusion(1, "phenylephrine", -60, 30, 1.0)  # starts the index episode
    db.infusion(1, "norepinephrine", 0, 120, 0.1)
    row = db.build().row(1)
    assert row["index_time"] == row["ne_start_time"] == t(0)
    assert row["episode_start_time"] == t(-60)
    assert row["exposure"] == "ne_only"


def test_ne_timeline_covers_the_index_episode_only_with_rates_in_force():
    db = CohortDB()
    db.septic_stay(1)
    db.infusion(1, "norepinephrine", 0, 120, 0.1, weight=50.0)
    db.infusion(1, "norepinephrine", 60, 180, 0.3, weight=50.0)
    db.infusion(1, "norepinephrine", 180, 200, 0.0, weight=50.0, status="Paused")
    db.infusion(1, "norepinephrine", 200, 240, 0.2, weight=50.0)
    db.infusion(1, "norepinephrine", 2000, 2100, 0.9)  # later episode: not in the timeline
    tl = db.build().frame("select * from mart_ne_timeline order by starttime")
    assert tl["starttime"].to_list() == [t(0), t(60), t(180), t(200)]
    assert tl["endtime"].to_list() == [t(60), t(180), t(200), t(240)]
    assert tl["ne_rate_mcg_kg_min"].to_list() == [0.1, 0.3, 0.0, 0.2]
    assert tl["ne_rate_mcg_min"].to_list() == [5.0, 15.0, 0.0, 10.0]
    row = db.row(1)
    assert row["ne_max_rate_mcg_kg_min"] == 0.3 and row["ne_max_rate_mcg_min"] == 15.0

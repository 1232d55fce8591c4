"""mart_hourly_panel (contract B) against independent polars computations from the other cohort
outputs: the hour grid and death stop from cohort.parquet, the NE rate per hour from
ne_timeline.parquet, the VP start hour from cohort.vp_start_time; and on the MIMIC-IV demo (no
chartevents) the MAP columns say "not assessable" instead of carrying made-up values."""

from __future__ import annotations

import shutil
from datetime import timedelta

import polars as pl
import pytest

from pipeline.cohort import build_cohort
from pipeline.config import load_study_config
from pipeline.ingest import ingest
from pipeline.synth import generate


@pytest.fixture(scope="module")
def synth_panel(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("panel_synth")
    generate(tmp / "src", n_stays=300, seed=11)
    cfg = load_study_config()
    ingest(tmp / "src", tmp / "db.duckdb", cfg)
    result = build_cohort(tmp / "db.duckdb", tmp / "out", cfg)
    return (cfg, pl.read_parquet(result.cohort_path), pl.read_parquet(result.ne_timeline_path),
            pl.read_parquet(result.hourly_panel_path))


def test_one_row_per_stay_and_hour_until_window_end_or_death(synth_panel):
    cfg, cohort, _, panel = synth_panel
    window = int(cfg.typed("tte").decision_window_hours)
    assert panel.select("stay_id", "hour").is_duplicated().sum() == 0
    assert set(panel["stay_id"]) == set(cohort["stay_id"])
    last = panel.group_by("stay_id").agg(pl.col("hour").max().alias("last"), pl.len().alias("n"))
    exp = cohort.select(
        "stay_id",
        pl.when(pl.col("death_time").is_null()).then(window - 1)
        .otherwise(((pl.col("death_time") - pl.col("index_time")).dt.total_seconds() // 3600)
                   .clip(upper_bound=window - 1)).cast(pl.Int64).alias("expected_last"),
    )
    j = last.join(exp, on="stay_id")
    assert (j["last"] == j["expected_last"]).all()
    assert (j["n"] == j["last"] + 1).all()  # no gaps
    deaths = panel.filter(pl.col("is_death_in_hour"))
    assert deaths.select("stay_id").is_duplicated().sum() == 0
    assert deaths.height > 0 and panel["is_alive_at_start"].all()
    # a death row is the stay's last row
    assert deaths.join(last, on="stay_id").select((pl.col("hour") == pl.col("last")).all()).item()


def test_ne_rate_is_the_highest_rate_in_force_during_the_hour(synth_panel):
    _, cohort, timeline, panel = synth_panel
    rows = panel.join(cohort.select("stay_id", "episode_end_time"), on="stay_id").filter(
        pl.col("hour_start_time") + pl.duration(hours=1) <= pl.col("episode_end_time"))
    overl = rows.select("stay_id", "hour", "hour_start_time").join(timeline, on="stay_id").filter(
        (pl.col("starttime") < pl.col("hour_start_time") + pl.duration(hours=1))
        & (pl.col("endtime") > pl.col("hour_start_time")))
    expected = overl.group_by("stay_id", "hour").agg(pl.col("ne_rate_mcg_kg_min").max().alias("exp"))
    j = rows.join(expected, on=["stay_id", "hour"], how="left").with_columns(pl.col("exp").fill_null(0.0))
    assert j.height > 1000
    assert ((j["ne_rate_mcg_kg_min"] - j["exp"]).abs() < 1e-9).all()
    assert (panel.filter(pl.col("hour") == 0)["ne_rate_mcg_kg_min"] > 0).all()  # time zero = NE start
    assert (panel["nee_dose_mcg_kg_min"] >= panel["ne_rate_mcg_kg_min"] - 1e-9).all()


def test_vp_start_hour_matches_the_cohort_vp_start(synth_panel):
    cfg, cohort, _, panel = synth_panel
    vp = cohort.filter(pl.col("exposure") == "vp_added").select(
        "stay_id", ((pl.col("vp_start_time") - pl.col("index_time")).dt.total_seconds() // 3600)
        .cast(pl.Int64).alias("vp_hour"))
    starts = panel.filter(pl.col("is_vp_start_hour")).select("stay_id", "hour")
    assert starts.select("stay_id").is_duplicated().sum() == 0
    j = vp.join(starts, on="stay_id", how="left").filter(
        pl.col("vp_hour") < cfg.typed("tte").decision_window_hours)
    j = j.join(panel.group_by("stay_id").agg(pl.col("hour").max().alias("last")), on="stay_id")
    j = j.filter(pl.col("vp_hour") <= pl.col("last"))
    assert j.height > 10 and (j["hour"] == j["vp_hour"]).all()
    # has_vp_before switches on in the hour after the start hour and stays on
    after = panel.join(starts.rename({"hour": "start"}), on="stay_id")
    assert (after["has_vp_before"] == (after["hour"] > after["start"])).all()
    # ne_only = no VP in the index episode: a VP start in the window can only come after it ends
    ne_only = cohort.filter(pl.col("exposure") == "ne_only").select("stay_id", "episode_end_time")
    late = panel.join(ne_only, on="stay_id").filter(pl.col("is_vp_start_hour"))
    assert late.select((pl.col("hour_start_time") + pl.duration(hours=1) > pl.col("episode_end_time")).all()).item()


def test_map_and_lactate_carried_forward_with_their_age(synth_panel):
    _, _, _, panel = synth_panel
    assert panel["is_map_assessable"].all() and panel["is_lactate_assessable"].all()
    has = panel.filter(pl.col("map_mmhg").is_not_null())
    assert has.height > 0.5 * panel.height
    assert (has["map_age_hours"] >= 0).all()
    # a value carried forward ages by exactly one hour per row until a new one is charted
    s = panel.sort("stay_id", "hour").with_columns(
        pl.col("lactate_mmol_l").shift(1).over("stay_id").alias("prev"),
        pl.col("lactate_age_hours").shift(1).over("stay_id").alias("prev_age"))
    same = s.filter(pl.col("prev").is_not_null() & (pl.col("lactate_age_hours") >= 1))
    assert same.height > 0
    assert ((same["lactate_age_hours"] - same["prev_age"] - 1).abs() < 1e-9).all()


def test_demo_has_no_chartevents_so_map_is_not_assessable(demo_db, tmp_path):
    db = tmp_path / "demo.duckdb"
    shutil.copy(demo_db.db_path, db)
    result = build_cohort(db, tmp_path / "out", load_study_config())
    panel = pl.read_parquet(result.hourly_panel_path)
    assert panel.height > 0
    assert not panel["is_map_assessable"].any()
    assert panel["map_mmhg"].null_count() == panel.height  # never imputed
    assert panel["is_lactate_assessable"].all()

"""End to end on the MIMIC-IV demo 2.2: ingest (shared fixture) -> build_cohort.

The NE rate at VP start is checked against an independent polars lookup in the raw
icu/inputevents file (not through the SQL): the first infusing VP row of the stay, and the
non-Rewritten NE row covering that instant with the latest start."""

from __future__ import annotations

import shutil

import polars as pl
import pytest

from cohort_fixture import CONCEPTS, study_config_with
from pipeline.cohort import build_cohort

# The demo's stays where VP is added to NE (both switches off), known from reading the raw file.
DEMO_VP_ADDED = {32119961, 32128372, 32359580, 33281088, 34100191, 34617352, 37093652, 39061571}


@pytest.fixture(scope="module")
def demo_cohort(demo_db, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("demo_cohort")
    db_copy = tmp / "demo.duckdb"
    shutil.copy(demo_db.db_path, db_copy)  # the shared ingest stays read-only
    cfg = study_config_with(tmp, "[cohort]\nrequire_sepsis_diagnosis = false\nfirst_stay_only = false\n")
    return build_cohort(db_copy, tmp / "out", cfg)


def _raw_ne_at_vp_start(demo_dir) -> pl.DataFrame:
    ne_id = CONCEPTS.raw["drugs"]["norepinephrine"]["itemids"][0]
    vp_id = CONCEPTS.raw["drugs"]["vasopressin"]["itemids"][0]
    raw = pl.read_csv(demo_dir / "icu" / "inputevents.csv.gz", try_parse_dates=True, infer_schema_length=None)
    raw = raw.filter(pl.col("statusdescription") != "Rewritten")
    vp_start = (
        raw.filter((pl.col("itemid") == vp_id) & (pl.col("rate") > 0))
        .group_by("stay_id").agg(pl.col("starttime").min().alias("vp_start"))
    )
    covering = (
        raw.filter(pl.col("itemid") == ne_id).join(vp_start, on="stay_id")
        .filter((pl.col("starttime") <= pl.col("vp_start")) & (pl.col("vp_start") < pl.col("endtime")))
        .sort(["starttime", "orderid", "rate"], descending=True)
        .group_by("stay_id").first()
    )
    return covering.select(
        "stay_id", "vp_start", pl.col("rate").alias("raw_rate"), pl.col("patientweight").alias("raw_weight")
    )


def test_demo_vp_added_stays_match_the_raw_rows(demo_cohort, demo_dir):
    cohort = pl.read_parquet(demo_cohort.cohort_path)
    vp_added = cohort.filter(pl.col("exposure") == "vp_added")
    assert set(vp_added["stay_id"].to_list()) == DEMO_VP_ADDED
    assert vp_added["timing_class"].null_count() == 0 and vp_added["vasst_stratum"].null_count() == 0
    raw = _raw_ne_at_vp_start(demo_dir)
    both = vp_added.join(raw, on="stay_id", how="left")
    assert both["raw_rate"].null_count() == 0, "every VP start has a covering NE row in the raw file"
    for row in both.iter_rows(named=True):
        assert row["vp_start_time"] == row["vp_start"], row["stay_id"]
        assert row["ne_rate_at_vp_mcg_kg_min"] == pytest.approx(row["raw_rate"]), row["stay_id"]
        assert row["ne_rate_at_vp_mcg_min"] == pytest.approx(row["raw_rate"] * row["raw_weight"]), row["stay_id"]
        assert row["weight_kg"] == pytest.approx(row["raw_weight"])


def test_demo_known_classifications(demo_cohort):
    cohort = pl.read_parquet(demo_cohort.cohort_path).filter(pl.col("exposure") == "vp_added")
    by_stay = {r["stay_id"]: r for r in cohort.iter_rows(named=True)}
    # 39061571: 0.400 mcg/kg/min x 88.4 kg = 35.4 mcg/min > 35: delayed by the absolute rule
    assert by_stay[39061571]["timing_class"] == "delayed"
    # 33281088: 0.300 mcg/kg/min x 49.8 kg = 14.9 mcg/min: SSC window, VASST less severe
    assert (by_stay[33281088]["timing_class"], by_stay[33281088]["vasst_stratum"]) == ("ssc_window", "less_severe")
    # 32128372: NE and VP start in the same minute; the NE row's first rate 0.120
    assert by_stay[32128372]["hours_ne_to_vp"] == 0
    assert by_stay[32128372]["timing_class"] == "recommended"


def test_demo_flags_and_attrition(demo_cohort):
    cohort = pl.read_parquet(demo_cohort.cohort_path)
    # the demo has no chartevents: MAP is unavailable, not merely missing; labs are present
    assert not cohort["has_map_source"].any() and not cohort["has_chartevents"].any()
    assert cohort["has_lactate_source"].all()
    assert cohort["map_before_vp_mmhg"].null_count() == cohort.height
    att = demo_cohort.attrition
    assert att["n_stays"].to_list()[0] == 140  # icu/icustays rows of the demo
    assert att.filter(pl.col("step_name") == "sepsis_diagnosis")["n_excluded"].item() == 0
    main = att.filter(pl.col("analysis") == "all")
    assert main["n_stays"].to_list()[-1] == cohort.height


def test_demo_chronic_dialysis_is_flagged_and_left_out_of_rrt_analyses(demo_cohort):
    from pipeline.models.competing import rrt_population

    cohort = pl.read_parquet(demo_cohort.cohort_path)
    by_stay = {r["stay_id"]: r for r in cohort.iter_rows(named=True)}
    # 32119961 (subject 10010471): N18.6 + Z99.2 on this admission and on one seven months
    # earlier: maintenance dialysis, whose in-stay dialysis is not a new RRT outcome
    esrd = by_stay[32119961]
    assert esrd["has_chronic_dialysis"] and esrd["rrt_after_index"] and esrd["exposure"] == "vp_added"
    # 33281088 (subject 10039708): ESRD is coded only on admissions three years after this stay
    assert by_stay[33281088]["has_chronic_dialysis"] is False
    assert cohort["has_chronic_dialysis"].sum() == 1
    step = demo_cohort.attrition.filter(pl.col("step_name") == "rrt_no_chronic_dialysis").to_dicts()[0]
    assert (step["analysis"], step["n_excluded"]) == ("rrt", 1)
    pop = rrt_population(cohort.with_columns(has_died=pl.col("death_time").is_not_null()), 28.0)
    assert 32119961 not in pop["stay_id"].to_list() and 33281088 in pop["stay_id"].to_list()


def test_demo_rrt_after_index_is_an_active_procedure_from_the_raw_file(demo_cohort, demo_dir):
    # The demo has no chartevents, so RRT comes from procedureevents (all active items in
    # mimic-code's rrt.sql): recompute "an RRT procedure starts at or after index_time in the
    # stay" from the raw file and compare.
    ids = [int(i) for i in CONCEPTS.raw["rrt"]["procedureevents_itemids"]]
    raw = pl.read_csv(demo_dir / "icu" / "procedureevents.csv.gz", try_parse_dates=True, infer_schema_length=None)
    raw = raw.filter(pl.col("itemid").is_in(ids) & (pl.col("statusdescription") != "Rewritten"))
    cohort = pl.read_parquet(demo_cohort.cohort_path)
    after = (cohort.join(raw.select("stay_id", "starttime"), on="stay_id")
             .filter(pl.col("starttime") >= pl.col("index_time"))["stay_id"].unique().sort().to_list())
    assert after, "the demo cohort has RRT after index (e.g. stay 32119961)"
    assert cohort.filter(pl.col("rrt_after_index"))["stay_id"].sort().to_list() == after


def test_demo_ne_maximum_ignores_bag_finish_artifacts(demo_cohort):
    # Before the rate_artifact rule, 3.19 and 2.41 mcg/kg/min bag-finish rows set these maxima to
    # 285.7 and 305.9 mcg/min; the true maxima of the charted titration are 10.75 and 50.96.
    cohort = pl.read_parquet(demo_cohort.cohort_path)
    by_stay = {r["stay_id"]: r for r in cohort.iter_rows(named=True)}
    assert by_stay[30932571]["ne_max_rate_mcg_min"] == pytest.approx(10.75, abs=0.01)
    assert by_stay[34100191]["ne_max_rate_mcg_min"] == pytest.approx(50.96, abs=0.01)
    assert by_stay[34100191]["ne_max_rate_mcg_kg_min"] == pytest.approx(0.401, abs=0.001)
    assert cohort["ne_max_rate_mcg_kg_min"].max() < 1.0  # no demo stay is left with an artifact

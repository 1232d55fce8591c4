"""build_cohort: outputs, transaction safety, config re-registration, schema validation."""

from __future__ import annotations

import duckdb
import polars as pl
import pytest

from cohort_fixture import CohortDB, study_config_with
from pipeline.cohort import build_cohort
from pipeline.config import load_study_config
from pipeline.errors import InputFileError, VasoflowError
from schemas.cohort import CohortValidationError, validate_cohort

REQUIRED_COLUMNS = [
    "subject_id", "hadm_id", "stay_id", "index_time", "ne_start_time", "vp_start_time", "exposure",
    "ne_rate_at_vp_mcg_kg_min", "ne_rate_at_vp_mcg_min", "nee_at_vp_mcg_kg_min", "weight_kg",
    "hours_ne_to_vp", "vasst_stratum", "timing_class", "death_time", "death_28d", "death_90d",
    "rrt_before_index", "rrt_after_index", "age_years", "gender", "anchor_year_group",
    "first_careunit", "intime", "outtime", "episode_end_time", "followup_end_time", "days_to_death",
    "rrt_first_time_after_index", "lactate_before_vp_mmol_l", "lactate_at_index_mmol_l",
    "map_before_vp_mmhg", "creatinine_baseline_mg_dl", "ne_max_rate_mcg_kg_min",
    "ne_max_rate_mcg_min", "has_lactate_source", "has_map_source", "has_chartevents",
]


@pytest.fixture
def db_file(tmp_path):
    path = tmp_path / "fixture.duckdb"
    db = CohortDB(path)
    db.septic_stay(1)
    db.infusion(1, "norepinephrine", 0, 240, 0.2, weight=80.0)  # 16 mcg/min
    db.infusion(1, "vasopressin", 60, 240, 2.4, "units/hour")
    db.septic_stay(2)
    db.infusion(2, "norepinephrine", 0, 240, 0.1)
    db.con.close()
    return path


def test_build_cohort_writes_three_parquet_files(db_file, tmp_path):
    out = tmp_path / "out"
    res = build_cohort(db_file, out, load_study_config())
    cohort = pl.read_parquet(res.cohort_path)
    assert res.n_rows == cohort.height == 2
    assert set(REQUIRED_COLUMNS) <= set(cohort.columns)
    attrition = pl.read_parquet(res.attrition_path)
    assert {"step", "description", "n_stays", "n_patients", "n_excluded"} <= set(attrition.columns)
    assert attrition.equals(res.attrition)
    timeline = pl.read_parquet(res.ne_timeline_path)
    assert timeline.columns == ["stay_id", "starttime", "endtime", "ne_rate_mcg_kg_min", "ne_rate_mcg_min"]
    assert timeline.height == 2
    assert not list(out.glob(".*")), "temp files left behind"
    assert "vp_added 1" in res.describe() and "2 ICU stays" in res.describe()


def test_changed_threshold_takes_effect_without_reingest(db_file, tmp_path):
    res = build_cohort(db_file, tmp_path / "a", load_study_config())
    row = pl.read_parquet(res.cohort_path).filter(pl.col("stay_id") == 1).row(0, named=True)
    assert (row["vasst_stratum"], row["timing_class"]) == ("more_severe", "recommended")
    cfg = study_config_with(
        tmp_path,
        "[classification]\nvasst_more_severe_ne_mcg_min = 20.0\ntiming_ssc_window_ne_mcg_kg_min = 0.15\n",
    )
    res = build_cohort(db_file, tmp_path / "b", cfg)
    row = pl.read_parquet(res.cohort_path).filter(pl.col("stay_id") == 1).row(0, named=True)
    assert (row["vasst_stratum"], row["timing_class"]) == ("less_severe", "ssc_window")


def test_a_failed_build_leaves_the_database_as_it_was(db_file, tmp_path):
    build_cohort(db_file, tmp_path / "a", load_study_config())
    con = duckdb.connect(str(db_file))
    con.execute("DROP TABLE valid_diagnoses_icd")  # int_cohort_eligibility will fail mid-build
    con.execute("DROP TABLE mart_cohort")
    con.close()
    cfg = study_config_with(tmp_path, "[cohort]\nmin_age_years = 30\n")
    with pytest.raises(VasoflowError, match="int_cohort_eligibility"):
        build_cohort(db_file, tmp_path / "b", cfg)
    con = duckdb.connect(str(db_file))
    tables = {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}
    # the first build's relations survive, the failed build created nothing and changed no param
    assert "stg_inputevents_vasoactive" in tables and "mart_cohort" not in tables
    assert con.execute("select cohort_min_age_years from study_param").fetchone()[0] == 18
    con.close()
    assert not (tmp_path / "b" / "cohort.parquet").exists()


def test_missing_or_foreign_database_is_a_one_line_error(tmp_path):
    with pytest.raises(InputFileError, match="database not found"):
        build_cohort(tmp_path / "nope.duckdb", tmp_path / "out", load_study_config())
    duckdb.connect(str(tmp_path / "empty.duckdb")).close()
    with pytest.raises(InputFileError, match="not an ingested vasoflow database"):
        build_cohort(tmp_path / "empty.duckdb", tmp_path / "out", load_study_config())


def test_cohort_model_rejects_inconsistent_rows(db_file, tmp_path):
    cfg = load_study_config()
    good = pl.read_parquet(build_cohort(db_file, tmp_path / "a", cfg).cohort_path)
    validate_cohort(good, cfg)
    is_vp = pl.col("exposure") == "vp_added"
    bad_frames = {
        "vp field on ne_only": good.with_columns(
            pl.when(~is_vp).then(pl.lit(0.3)).otherwise(pl.col("ne_rate_at_vp_mcg_kg_min")).alias("ne_rate_at_vp_mcg_kg_min")
        ),
        "wrong timing class": good.with_columns(
            pl.when(is_vp).then(pl.lit("delayed")).otherwise(pl.col("timing_class")).alias("timing_class")
        ),
        "wrong stratum": good.with_columns(
            pl.when(is_vp).then(pl.lit("below_entry")).otherwise(pl.col("vasst_stratum")).alias("vasst_stratum")
        ),
        "negative rate": good.with_columns(pl.lit(-0.1).alias("ne_max_rate_mcg_kg_min")),
        "28d without 90d": good.with_columns(pl.lit(True).alias("death_28d"), pl.lit(False).alias("death_90d")),
        "unknown exposure": good.with_columns(pl.lit("vp_maybe").alias("exposure")),
        "duplicate stay": pl.concat([good, good.head(1)]),
    }
    for what, frame in bad_frames.items():
        with pytest.raises(CohortValidationError):
            validate_cohort(frame, cfg)
            pytest.fail(f"accepted: {what}")

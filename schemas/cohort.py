"""Pandera (polars backend) model of the analysis cohort (``cohort.parquet``).

``CohortModel`` holds what does not depend on the study settings: column types, allowed
categories, ranges (rates, durations, weights >= 0) and row rules (vasopressin fields null
unless ``exposure == 'vp_added'``, ``death_28d`` implies ``death_90d``, index time inside the
index episode). ``cohort_schema(config)`` adds the rules that depend on study.toml: the VASST
stratum and timing class must follow from the NE rate at VP start and the configured
thresholds, and ages must meet the adult threshold. ``validate_cohort`` runs it lazily (every
failure at once) and raises ``CohortValidationError`` with a one-line summary.
"""

from __future__ import annotations

import copy
from datetime import datetime

import pandera.polars as pa
import polars as pl
from pandera.api.polars.types import PolarsData

from pipeline.errors import VasoflowError

EXPOSURES = ["ne_only", "vp_added", "vp_before_ne"]
VASST_STRATA = ["below_entry", "less_severe", "more_severe"]
TIMING_CLASSES = ["early", "recommended", "ssc_window", "delayed"]

# Columns that describe the vasopressin decision: null unless exposure == 'vp_added'.
VP_COLUMNS = [
    "vp_start_time", "hours_ne_to_vp", "ne_rate_at_vp_mcg_kg_min", "ne_rate_at_vp_mcg_min",
    "nee_at_vp_mcg_kg_min", "weight_kg", "vasst_stratum", "timing_class",
    "lactate_before_vp_mmol_l", "map_before_vp_mmhg",
]
# Columns every vp_added row must have.
VP_REQUIRED = ["vp_start_time", "hours_ne_to_vp", "ne_rate_at_vp_mcg_kg_min", "timing_class"]


class CohortValidationError(VasoflowError):
    """The cohort frame breaks its model (a bug in the cohort SQL or a corrupt database)."""


def _rows(expr: pl.Expr, name: str) -> pa.Check:
    """Frame-level check: ``expr`` is True for a good row (null counts as failing)."""

    def fn(data: PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(expr.fill_null(False).alias(name))

    return pa.Check(fn, name=name)


def _ge0(nullable: bool = True):
    return pa.Field(ge=0, nullable=nullable)


class CohortModel(pa.DataFrameModel):
    """One row per ICU stay of the cohort. Units are in the column names."""

    subject_id: int = pa.Field(nullable=False)
    hadm_id: int = pa.Field(nullable=False)
    stay_id: int = pa.Field(nullable=False, unique=True)
    age_years: int = pa.Field(ge=0, le=130, nullable=False)
    gender: str = pa.Field(nullable=True)
    anchor_year_group: str = pa.Field(nullable=True)
    first_careunit: str = pa.Field(nullable=True)
    intime: datetime = pa.Field(nullable=False)
    outtime: datetime = pa.Field(nullable=True)
    index_time: datetime = pa.Field(nullable=False)
    ne_start_time: datetime = pa.Field(nullable=False)
    episode_start_time: datetime = pa.Field(nullable=False)
    episode_end_time: datetime = pa.Field(nullable=False)
    exposure: str = pa.Field(isin=EXPOSURES, nullable=False)
    vp_start_time: datetime = pa.Field(nullable=True)
    hours_ne_to_vp: float = _ge0()
    ne_rate_at_vp_mcg_kg_min: float = _ge0()
    ne_rate_at_vp_mcg_min: float = _ge0()
    nee_at_vp_mcg_kg_min: float = _ge0()
    weight_kg: float = pa.Field(gt=0, nullable=True)
    vasst_stratum: str = pa.Field(isin=VASST_STRATA, nullable=True)
    timing_class: str = pa.Field(isin=TIMING_CLASSES, nullable=True)
    ne_max_rate_mcg_kg_min: float = _ge0()
    ne_max_rate_mcg_min: float = _ge0()
    death_time: datetime = pa.Field(nullable=True)
    followup_end_time: datetime = pa.Field(nullable=True)
    days_to_death: float = pa.Field(nullable=True)
    death_28d: bool = pa.Field(nullable=True)
    death_90d: bool = pa.Field(nullable=True)
    has_chronic_dialysis: bool = pa.Field(nullable=False)
    rrt_before_index: bool = pa.Field(nullable=False)
    rrt_after_index: bool = pa.Field(nullable=False)
    rrt_first_time_after_index: datetime = pa.Field(nullable=True)
    lactate_before_vp_mmol_l: float = _ge0()
    lactate_at_index_mmol_l: float = _ge0()
    map_before_vp_mmhg: float = _ge0()
    creatinine_baseline_mg_dl: float = _ge0()
    has_lactate_source: bool = pa.Field(nullable=False)
    has_map_source: bool = pa.Field(nullable=False)
    has_chartevents: bool = pa.Field(nullable=False)

    class Config:
        strict = False  # extra columns are allowed (documented in sql/README.md)
        coerce = False

    @pa.dataframe_check
    def vp_fields_null_unless_vp_added(cls, data: PolarsData) -> pl.LazyFrame:
        all_null = pl.all_horizontal([pl.col(c).is_null() for c in VP_COLUMNS])
        return data.lazyframe.select((pl.col("exposure") == "vp_added") | all_null)

    @pa.dataframe_check
    def vp_added_has_dose_and_class(cls, data: PolarsData) -> pl.LazyFrame:
        present = pl.all_horizontal([pl.col(c).is_not_null() for c in VP_REQUIRED])
        return data.lazyframe.select((pl.col("exposure") != "vp_added") | present)

    @pa.dataframe_check
    def vp_start_in_index_episode(cls, data: PolarsData) -> pl.LazyFrame:
        ok = pl.col("vp_start_time").is_null() | (
            (pl.col("vp_start_time") >= pl.col("ne_start_time"))
            & (pl.col("vp_start_time") <= pl.col("episode_end_time"))
        )
        return data.lazyframe.select(ok)

    @pa.dataframe_check
    def index_time_is_ne_start_in_episode(cls, data: PolarsData) -> pl.LazyFrame:
        ok = (pl.col("index_time") == pl.col("ne_start_time")) & (
            pl.col("episode_start_time") <= pl.col("ne_start_time")
        ) & (pl.col("ne_start_time") <= pl.col("episode_end_time"))
        return data.lazyframe.select(ok)

    @pa.dataframe_check
    def death_28d_implies_death_90d(cls, data: PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(~pl.col("death_28d").fill_null(False) | pl.col("death_90d").fill_null(False))

    @pa.dataframe_check
    def death_flags_match_death_time(cls, data: PolarsData) -> pl.LazyFrame:
        # a death flag is true only with a death time, and a death time means days_to_death is set
        ok = (~pl.col("death_90d").fill_null(False) | pl.col("death_time").is_not_null()) & (
            pl.col("death_time").is_null() == pl.col("days_to_death").is_null()
        )
        return data.lazyframe.select(ok)

    @pa.dataframe_check
    def rrt_first_time_matches_flag(cls, data: PolarsData) -> pl.LazyFrame:
        ok = pl.col("rrt_after_index") == pl.col("rrt_first_time_after_index").is_not_null()
        ok = ok & (pl.col("rrt_first_time_after_index").is_null()
                   | (pl.col("rrt_first_time_after_index") >= pl.col("index_time")))
        return data.lazyframe.select(ok)

    @pa.dataframe_check
    def lactate_and_map_need_their_source(cls, data: PolarsData) -> pl.LazyFrame:
        ok = (pl.col("has_lactate_source") | (pl.col("lactate_at_index_mmol_l").is_null()
                                              & pl.col("lactate_before_vp_mmol_l").is_null())) & (
            pl.col("has_map_source") | pl.col("map_before_vp_mmhg").is_null()
        )
        return data.lazyframe.select(ok)


def _classification_checks(config) -> list[pa.Check]:
    """Rules tying vasst_stratum/timing_class to the NE rate at VP start and study.toml."""
    entry = float(config.get("classification.vasst_entry_ne_mcg_min"))
    severe = float(config.get("classification.vasst_more_severe_ne_mcg_min"))
    rec = float(config.get("classification.timing_recommended_ne_mcg_kg_min"))
    ssc = float(config.get("classification.timing_ssc_window_ne_mcg_kg_min"))
    late_kg = float(config.get("classification.timing_delayed_above_ne_mcg_kg_min"))
    late_abs = float(config.get("classification.timing_delayed_above_ne_mcg_min"))
    min_age = int(config.get("cohort.min_age_years"))
    mcg_min, mcg_kg = pl.col("ne_rate_at_vp_mcg_min"), pl.col("ne_rate_at_vp_mcg_kg_min")
    stratum = (
        pl.when(mcg_min < entry).then(pl.lit("below_entry"))
        .when(mcg_min < severe).then(pl.lit("less_severe"))
        .when(mcg_min >= severe).then(pl.lit("more_severe"))
    )
    timing = (
        pl.when((mcg_min > late_abs) | (mcg_kg > late_kg)).then(pl.lit("delayed"))
        .when(mcg_kg < rec).then(pl.lit("early"))
        .when(mcg_kg < ssc).then(pl.lit("recommended"))
        .when(mcg_kg >= ssc).then(pl.lit("ssc_window"))
    )
    is_vp = pl.col("exposure") == "vp_added"
    return [
        _rows(~is_vp | pl.col("vasst_stratum").eq_missing(stratum), "vasst_stratum_matches_ne_mcg_min"),
        _rows(~is_vp | pl.col("timing_class").eq_missing(timing), "timing_class_matches_ne_rate"),
        _rows(pl.col("age_years") >= min_age, "age_at_least_cohort_min_age_years"),
    ]


def cohort_schema(config) -> pa.DataFrameSchema:
    """``CohortModel`` plus the checks that depend on the study settings in ``config``."""
    schema = copy.deepcopy(CohortModel.to_schema())
    schema.checks = list(schema.checks) + _classification_checks(config)
    return schema


def validate_cohort(frame: pl.DataFrame, config) -> pl.DataFrame:
    """Validate a collected cohort frame; raise ``CohortValidationError`` listing every failure."""
    try:
        return cohort_schema(config).validate(frame, lazy=True)
    except (pa.errors.SchemaErrors, pa.errors.SchemaError) as exc:
        cases = getattr(exc, "failure_cases", None)
        if cases is not None and hasattr(cases, "height"):
            summary = "; ".join(
                sorted({f"{r.get('column') or 'frame'}: {r.get('check')}" for r in cases.head(50).to_dicts()})
            )
        else:
            summary = str(exc).splitlines()[0]
        raise CohortValidationError(f"cohort.parquet: cohort frame fails schemas/cohort.py ({summary})") from exc

"""Reading the analysis cohort and turning it into survival data.

Grain of the input: one row per patient (index septic-shock episode), see
docs in RESULTS_SCHEMA.md "Input". Times here are in **days** from a stated time zero; an event or
censoring at time zero is moved to one minute (``MIN_TIME_DAYS``) because a Cox risk set needs
positive follow-up (a death charted in the same minute as NE start still counts as a death).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from pipeline.errors import InputFileError

# One minute, in days: the smallest follow-up a row can have (see module docstring).
MIN_TIME_DAYS = 1.0 / 1440.0
_DAY = pl.duration(days=1)

COHORT_COLUMNS: dict[str, type[pl.DataType] | pl.DataType] = {
    "subject_id": pl.Int64,
    "stay_id": pl.Int64,
    "index_time": pl.Datetime,
    "vp_start_time": pl.Datetime,
    "death_time": pl.Datetime,
    "followup_end_time": pl.Datetime,
    "rrt_first_time_after_index": pl.Datetime,
    "outtime": pl.Datetime,
    "exposure": pl.String,
    "vasst_stratum": pl.String,
    "timing_class": pl.String,
    "gender": pl.String,
    "age_years": pl.Float64,
    "ne_rate_at_vp_mcg_min": pl.Float64,
    "nee_at_vp_mcg_kg_min": pl.Float64,
    "lactate_before_vp_mmol_l": pl.Float64,
    "lactate_at_index_mmol_l": pl.Float64,
    "map_before_vp_mmhg": pl.Float64,
    "creatinine_baseline_mg_dl": pl.Float64,
    "rrt_before_index": pl.Boolean,
    "rrt_after_index": pl.Boolean,
}
NE_TIMELINE_COLUMNS = ("stay_id", "starttime", "endtime", "ne_rate_mcg_kg_min", "ne_rate_mcg_min")
EXPOSURES = ("vp_added", "vp_before_ne", "ne_only")


def _check_columns(frame: pl.DataFrame, required: tuple[str, ...] | list[str], where: str) -> None:
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise InputFileError(f"{where}: missing column(s) {', '.join(missing)}")


def read_cohort(cohort_path: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Read cohort.parquet and the ne_timeline.parquet beside it; check the columns we use."""
    cohort_path = Path(cohort_path)
    timeline_path = cohort_path.parent / "ne_timeline.parquet"
    for p in (cohort_path, timeline_path):
        if not p.is_file():
            raise InputFileError(f"{p}: file not found (the cohort step writes it)")
    try:
        cohort = pl.read_parquet(cohort_path)
        timeline = pl.read_parquet(timeline_path)
    except (OSError, pl.exceptions.PolarsError) as exc:  # truncated / not parquet
        raise InputFileError(f"{cohort_path.parent}: cannot read cohort parquet ({exc})") from None
    _check_columns(cohort, list(COHORT_COLUMNS), str(cohort_path))
    _check_columns(timeline, list(NE_TIMELINE_COLUMNS), str(timeline_path))
    bad = cohort.filter(~pl.col("exposure").is_in(EXPOSURES))
    if bad.height:
        raise InputFileError(
            f"{cohort_path}: column 'exposure': {bad.height} values not in {EXPOSURES} "
            f"(e.g. {bad['exposure'][0]!r})"
        )
    return cohort, timeline


def prepare(cohort: pl.DataFrame) -> pl.DataFrame:
    """Add the derived columns the models use.

    * ``is_female`` (Int8 0/1, from gender) - a covariate name usable in config lists;
    * ``followup_days``: index_time -> min(death_time, followup_end_time), days (>= 1 minute);
    * ``has_died``: death observed within follow-up;
    * ``vp_days_from_index``: VP start - index_time in days (null unless vp_added).
    """
    end = pl.min_horizontal("death_time", "followup_end_time")
    return (
        cohort.sort("subject_id", "stay_id")
        .with_columns(
            is_female=(pl.col("gender") == "F").cast(pl.Int8),
            followup_days=((end - pl.col("index_time")) / _DAY).clip(lower_bound=MIN_TIME_DAYS),
            has_died=pl.col("death_time").is_not_null()
            & (pl.col("death_time") <= pl.col("followup_end_time").fill_null(pl.col("death_time"))),
            vp_days_from_index=pl.when(pl.col("exposure") == "vp_added")
            .then((pl.col("vp_start_time") - pl.col("index_time")) / _DAY)
            .otherwise(None),
        )
    )


def survival_from(
    frame: pl.DataFrame, time_zero_col: str, horizon_days: float | None
) -> pl.DataFrame:
    """Add ``time_days`` and ``event`` (Int8): death from ``time_zero_col``, administratively
    censored at ``horizon_days`` (None: no horizon). Needs ``prepare``'s columns."""
    end = pl.min_horizontal("death_time", "followup_end_time")
    t = ((end - pl.col(time_zero_col)) / _DAY).clip(lower_bound=MIN_TIME_DAYS)
    died = pl.col("has_died")
    if horizon_days is not None:
        died = died & (t <= horizon_days)
        t = t.clip(upper_bound=horizon_days)
    return frame.with_columns(time_days=t, event=died.cast(pl.Int8))

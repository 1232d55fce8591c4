"""The trial question - VP added vs NE alone, within VASST strata - without immortal-time bias.

Population: exposure in (vp_added, ne_only); vp_before_ne is left out (VP came first: a
different question). Time zero = index_time (first NE start); death within the horizon.

Since results.json 2.0 (issue 12) ``analyze`` reports only the naive model from this module
(as a labelled descriptive warning example); the time-varying and landmark models below adjust
for baseline covariates only, which leaves the current NE dose, MAP and lactate confounding VP
initiation, and are replaced by pipeline/models/panel.py (time-updated model, sequential trials).
They stay for benchmarks/models_validation.py and the VASST side-by-side landmark table.

Three analyses:

* **time-varying** (lifelines CoxTimeVaryingFitter): VP is 0 from index until VP start, 1 after;
  each patient's person-time is split at VP start and where the stratum changes.
* **landmark** at each configured hour L: patients alive and under follow-up at L; exposed = VP
  started by L; follow-up from L to the horizon (counted from index_time).
* **naive "ever VP"**: vp_added vs ne_only from index, as if VP were known at index. Biased by
  immortal time (patients must survive until VP to be "VP"); shown only as a warning example.

Stratum rule (``[models].trial_stratum_rule``; never-VP patients have no "NE at VP start"):

* ``max_before_vp`` (default): the highest NE rate (mcg/min) reached before VP start, or, for
  person-time not (yet) on VP, before the time point. A never-VP patient who reached 20 mcg/min
  is "more_severe" from that moment on, as a VP patient started at 20 mcg/min is. Both keep the
  stratum after recovery, so neither group sheds its recovered person-time.
* ``current``: the NE rate at VP start (= the cohort's vasst_stratum) for exposed person-time,
  the rate running at the time point for unexposed person-time (0 once NE stopped). Closer to
  the letter of "dose at the landmark", but unexposed patients who recover leave the severe
  strata while exposed ones stay, which favours VP.

In the naive analysis ne_only patients are stratified by their episode's maximum NE rate
(``ne_max_rate_mcg_min``, known only at the end: part of why it is naive).
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from pipeline.models.cox import fit_cox, fit_cox_time_varying
from pipeline.models.data import MIN_TIME_DAYS, survival_from
from pipeline.models.results import ModelResult
from pipeline.models.settings import ModelSettings

_DAY = pl.duration(days=1)
TRIAL_STRATA = ("all", "less_severe", "more_severe")


def stratum_expr(dose_mcg_min: pl.Expr, settings: ModelSettings) -> pl.Expr:
    """VASST stratum from an NE rate in mcg/min (thresholds from [classification])."""
    return (
        pl.when(dose_mcg_min < settings.vasst_entry_ne_mcg_min).then(pl.lit("below_entry"))
        .when(dose_mcg_min < settings.vasst_more_severe_ne_mcg_min).then(pl.lit("less_severe"))
        .otherwise(pl.lit("more_severe"))
    )


def trial_population(cohort: pl.DataFrame, horizon_days: float) -> pl.DataFrame:
    """vp_added + ne_only with ``time_days``/``event`` from index_time and ``vp_days`` (VP start
    in days from index; null if never)."""
    return survival_from(
        cohort.filter(pl.col("exposure").is_in(["vp_added", "ne_only"])), "index_time", horizon_days
    ).with_columns(vp_days=pl.col("vp_days_from_index"))


def _timeline_days(cohort: pl.DataFrame, ne_timeline: pl.DataFrame) -> pl.DataFrame:
    """NE intervals in days from index_time with the running maximum rate (mcg/min)."""
    return (
        ne_timeline.join(cohort.select("stay_id", "index_time"), on="stay_id", how="inner")
        .with_columns(
            ne_start_days=(pl.col("starttime") - pl.col("index_time")) / _DAY,
            ne_end_days=(pl.col("endtime") - pl.col("index_time")) / _DAY,
        )
        .filter(pl.col("ne_rate_mcg_min").is_not_null())
        .sort("stay_id", "ne_start_days")
        .with_columns(ne_cummax_mcg_min=pl.col("ne_rate_mcg_min").cum_max().over("stay_id"))
        .select("stay_id", "ne_start_days", "ne_end_days", "ne_rate_mcg_min", "ne_cummax_mcg_min")
    )


def dose_at(points: pl.DataFrame, timeline: pl.DataFrame, rule: str) -> pl.DataFrame:
    """Add ``stratum_dose_mcg_min`` to ``points`` (stay_id, t_eval_days): the NE rate that sets
    the stratum at t_eval_days under ``rule`` (see module docstring). 0 before any NE."""
    joined = points.sort("t_eval_days").join_asof(
        timeline.sort("ne_start_days"), left_on="t_eval_days", right_on="ne_start_days",
        by="stay_id", strategy="backward", check_sortedness=False,  # both sorted just above
    )
    if rule == "max_before_vp":
        dose = pl.col("ne_cummax_mcg_min").fill_null(0.0)
    else:
        dose = (
            pl.when(pl.col("t_eval_days") < pl.col("ne_end_days")).then(pl.col("ne_rate_mcg_min"))
            .otherwise(0.0).fill_null(0.0)
        )
    return joined.with_columns(stratum_dose_mcg_min=dose).drop(
        "ne_start_days", "ne_end_days", "ne_rate_mcg_min", "ne_cummax_mcg_min"
    )


def long_format(
    cohort: pl.DataFrame, ne_timeline: pl.DataFrame, settings: ModelSettings, horizon_days: float,
    covariates: Sequence[str] = (),
) -> pl.DataFrame:
    """Counting-process rows (one per patient and constant (vp, stratum) spell):
    subject_id, start_days, stop_days, event (at the spell's stop), vp (0/1), stratum,
    stratum_dose_mcg_min, + covariates. Days from index_time; follow-up to the horizon."""
    pop = trial_population(cohort, horizon_days)
    timeline = _timeline_days(pop, ne_timeline)
    base = pop.select("subject_id", "stay_id", "time_days", "event", "vp_days", *covariates)
    # Cut points: 0, every NE interval start and end, VP start; inside (0, time_days).
    cuts = pl.concat([
        base.select("stay_id", cut=pl.lit(0.0)),
        base.filter(pl.col("vp_days").is_not_null()).select("stay_id", cut=pl.col("vp_days")),
        timeline.select("stay_id", cut=pl.col("ne_start_days")),
        timeline.select("stay_id", cut=pl.col("ne_end_days")),
    ]).join(base.select("stay_id", "time_days"), on="stay_id")
    cuts = cuts.filter((pl.col("cut") >= 0) & (pl.col("cut") < pl.col("time_days"))).unique(
        ["stay_id", "cut"]).sort("stay_id", "cut")
    seg = (
        cuts.with_columns(stop=pl.col("cut").shift(-1).over("stay_id"))
        .with_columns(stop_days=pl.col("stop").fill_null(pl.col("time_days")))
        .rename({"cut": "start_days"})
        .drop("stop", "time_days")
        .join(base, on="stay_id")
        .with_columns(
            vp=(pl.col("vp_days").is_not_null() & (pl.col("start_days") >= pl.col("vp_days"))).cast(pl.Int8),
            t_eval_days=pl.min_horizontal("start_days", pl.col("vp_days").fill_null(float("inf"))),
        )
    )
    seg = dose_at(seg, timeline, settings.trial_stratum_rule)
    if settings.trial_stratum_rule == "current":
        # Exposed person-time keeps the dose at VP start: the cohort's own ne_rate_at_vp.
        seg = seg.join(pop.select("stay_id", "ne_rate_at_vp_mcg_min"), on="stay_id").with_columns(
            stratum_dose_mcg_min=pl.when(pl.col("vp") == 1)
            .then(pl.col("ne_rate_at_vp_mcg_min").fill_null(0.0))
            .otherwise(pl.col("stratum_dose_mcg_min"))
        ).drop("ne_rate_at_vp_mcg_min")
    seg = seg.with_columns(stratum=stratum_expr(pl.col("stratum_dose_mcg_min"), settings))
    # Merge consecutive segments with the same (vp, stratum): fewer rows, same likelihood.
    seg = seg.sort("stay_id", "start_days").with_columns(
        spell=((pl.col("vp") != pl.col("vp").shift(1)) | (pl.col("stratum") != pl.col("stratum").shift(1)))
        .fill_null(True).cum_sum().over("stay_id")
    )
    long = (
        seg.group_by("stay_id", "spell", maintain_order=True)
        .agg(
            pl.col("subject_id").first(), pl.col("start_days").min(), pl.col("stop_days").max(),
            pl.col("vp").first(), pl.col("stratum").first(), pl.col("stratum_dose_mcg_min").max(),
            pl.col("time_days").first(), pl.col("event").first().alias("patient_event"),
            *[pl.col(c).first() for c in covariates],
        )
        .with_columns(
            event=((pl.col("stop_days") >= pl.col("time_days")) & (pl.col("patient_event") == 1)).cast(pl.Int8),
        )
        .filter(pl.col("stop_days") > pl.col("start_days"))
        .drop("spell", "time_days", "patient_event")
        .sort("subject_id", "start_days")
    )
    return long


def _subset(frame: pl.DataFrame, stratum: str) -> pl.DataFrame:
    return frame if stratum == "all" else frame.filter(pl.col("stratum") == stratum)


def time_varying_models(
    long: pl.DataFrame, settings: ModelSettings, horizon_days: float, adjusted: bool,
) -> list[ModelResult]:
    """Time-varying VP Cox per stratum ('all' is stratified by the current stratum)."""
    kind = "adjusted" if adjusted else "unadjusted"
    out = []
    for s in TRIAL_STRATA:
        out.append(fit_cox_time_varying(
            _subset(long, s), name=f"trial.time_varying.{s}.{int(horizon_days)}d.{kind}",
            label=f"Time-varying VP, {s}, {int(horizon_days)}-day, {kind}",
            contrast="VP running vs not (from index)", exposure_col="vp",
            covariates=settings.baseline_covariates if adjusted else (), settings=settings,
            strata=["stratum"] if s == "all" else None,
        ).with_details(analysis="time_varying", stratum=s, horizon_days=horizon_days,
                       adjusted=adjusted, stratum_rule=settings.trial_stratum_rule))
    return out


def landmark_frame(
    cohort: pl.DataFrame, ne_timeline: pl.DataFrame, settings: ModelSettings,
    landmark_hours: float, horizon_days: float,
) -> pl.DataFrame:
    """Patients alive and under follow-up at the landmark, with ``vp`` (VP started by it),
    ``stratum`` (rule applied at min(landmark, VP start)) and ``time_days``/``event`` counted
    from the landmark to ``horizon_days`` after index."""
    lm_days = landmark_hours / 24.0
    pop = trial_population(cohort, horizon_days).filter(pl.col("time_days") > lm_days)
    timeline = _timeline_days(pop, ne_timeline)
    pts = pop.with_columns(
        vp=(pl.col("vp_days").is_not_null() & (pl.col("vp_days") <= lm_days)).cast(pl.Int8),
    ).with_columns(
        t_eval_days=pl.when(pl.col("vp") == 1).then(pl.col("vp_days")).otherwise(pl.lit(lm_days)),
    )
    pts = dose_at(pts, timeline, settings.trial_stratum_rule)
    if settings.trial_stratum_rule == "current":
        pts = pts.with_columns(stratum_dose_mcg_min=pl.when(pl.col("vp") == 1)
                               .then(pl.col("ne_rate_at_vp_mcg_min").fill_null(0.0))
                               .otherwise(pl.col("stratum_dose_mcg_min")))
    return pts.with_columns(
        stratum=stratum_expr(pl.col("stratum_dose_mcg_min"), settings),
        time_days=(pl.col("time_days") - lm_days).clip(lower_bound=MIN_TIME_DAYS),
    ).sort("subject_id")


def landmark_models(
    cohort: pl.DataFrame, ne_timeline: pl.DataFrame, settings: ModelSettings,
    landmark_hours: float, horizon_days: float, adjusted: bool,
) -> list[ModelResult]:
    frame = landmark_frame(cohort, ne_timeline, settings, landmark_hours, horizon_days)
    kind = "adjusted" if adjusted else "unadjusted"
    tag = f"landmark_{landmark_hours:g}h"
    out = []
    for s in TRIAL_STRATA:
        out.append(fit_cox(
            _subset(frame, s), name=f"trial.{tag}.{s}.{int(horizon_days)}d.{kind}",
            label=f"Landmark {landmark_hours:g} h, {s}, {int(horizon_days)}-day, {kind}",
            contrast=f"VP started by {landmark_hours:g} h vs not (alive at landmark)",
            exposure_col="vp", covariates=settings.baseline_covariates if adjusted else (),
            settings=settings, strata=["stratum"] if s == "all" else None,
            ph_test=False,  # PH is checked on the VASST models; this saves seconds per fit
        ).with_details(analysis=tag, stratum=s, horizon_days=horizon_days, adjusted=adjusted,
                       landmark_hours=landmark_hours, stratum_rule=settings.trial_stratum_rule))
    return out


def naive_models(
    cohort: pl.DataFrame, settings: ModelSettings, horizon_days: float, adjusted: bool,
) -> list[ModelResult]:
    """NAIVE "ever VP" Cox from index (immortal-time biased; for comparison only)."""
    frame = trial_population(cohort, horizon_days).with_columns(
        vp=(pl.col("exposure") == "vp_added").cast(pl.Int8),
        stratum=pl.when(pl.col("exposure") == "vp_added").then(pl.col("vasst_stratum"))
        .otherwise(stratum_expr(pl.col("ne_max_rate_mcg_min"), settings)),
    )
    kind = "adjusted" if adjusted else "unadjusted"
    out = []
    for s in TRIAL_STRATA:
        out.append(fit_cox(
            _subset(frame, s), name=f"trial.naive.{s}.{int(horizon_days)}d.{kind}",
            label=f"NAIVE ever-VP, {s}, {int(horizon_days)}-day, {kind}",
            contrast="ever VP vs never (baseline, immortal-time biased)", exposure_col="vp",
            covariates=settings.baseline_covariates if adjusted else (), settings=settings,
            strata=["stratum"] if s == "all" else None, ph_test=False,
        ).with_details(analysis="naive", stratum=s, horizon_days=horizon_days, adjusted=adjusted)
         .with_role("descriptive", NAIVE_ESTIMAND.format(h=horizon_days), NAIVE_BIAS_NOTE))
    return out


NAIVE_ESTIMAND = ("Hazard ratio of death within {h:g} days from NE start for patients who ever got VP "
                  "after NE vs those who never did, as if VP were known at NE start.")
NAIVE_BIAS_NOTE = ("Biased by immortal time (a patient is 'VP' only if alive when VP started, so VP is "
                   "credited with the survival before it) and by confounding (sicker patients get VP; "
                   "never-VP strata use the episode's maximum NE dose, known only afterwards). Shown "
                   "as a warning example, not an effect.")

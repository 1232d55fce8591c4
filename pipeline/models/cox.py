"""Cox models with the not-estimable rules, and the VASST-strata echo among vp_added.

``fit_cox`` is the one place a Cox model is fitted on one-row-per-patient (or entry/stop) data;
every Cox result of the package goes through it, so the minimum-count rules, complete-case
handling, robust SEs and the proportional-hazards check are the same everywhere.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
import polars as pl
from lifelines import CoxPHFitter, CoxTimeVaryingFitter
from lifelines.exceptions import ConvergenceError, ConvergenceWarning
from lifelines.statistics import proportional_hazard_test
from scipy.stats import norm

from pipeline.models.coxph_linear import LinearCoxPHFitter
from pipeline.models.data import survival_from
from pipeline.models.results import ModelResult
from pipeline.models.settings import ModelSettings


def _summary_frame(coef: pd.Series, se: pd.Series, p: pd.Series, z: float) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "term": [str(t) for t in coef.index],
            "estimate": np.exp(coef.values),
            "ci_low": np.exp(coef.values - z * se.values),
            "ci_high": np.exp(coef.values + z * se.values),
            "coef": coef.values.astype(float),
            "se": se.values.astype(float),
            "p": p.values.astype(float),
        }
    )


def check_counts(
    frame: pl.DataFrame, exposure_col: str, event_col: str, n_covariates: int,
    settings: ModelSettings, weight_col: str | None = None, id_col: str = "subject_id",
) -> str:
    """Reason the model is not estimable ("" if it is): each exposure level needs
    ``min_patients_per_group`` patients, the model ``min_events_total`` events and
    ``min_events_per_covariate`` events per parameter (exposure + covariates), and each exposure
    level at least one event (otherwise the HR is 0 or infinite)."""
    if frame.height == 0:
        return "no patients"
    per = frame.group_by(exposure_col).agg(
        n=pl.col(id_col).n_unique(), events=pl.col(event_col).sum()
    )
    levels = dict(zip(per[exposure_col].to_list(), zip(per["n"].to_list(), per["events"].to_list())))
    for level in (0, 1):
        n, ev = levels.get(level, (0, 0))
        if n < settings.min_patients_per_group:
            return f"{n} patients with {exposure_col}={level} (< {settings.min_patients_per_group})"
        if ev == 0:
            return f"no events with {exposure_col}={level}"
    events = int(frame[event_col].sum())
    if events < settings.min_events_total:
        return f"{events} events (< {settings.min_events_total})"
    needed = settings.min_events_per_covariate * (1 + n_covariates)
    if events < needed:
        return (f"{events} events for {1 + n_covariates} parameters "
                f"(< {settings.min_events_per_covariate} per parameter)")
    return ""


def complete_cases(frame: pl.DataFrame, covariates: Sequence[str]) -> tuple[pl.DataFrame, int, list[str]]:
    """Rows with every covariate present (complete-case analysis; the count dropped is reported),
    and the covariates kept (a covariate constant in the data is dropped, and named)."""
    missing = [c for c in covariates if c not in frame.columns]
    if missing:
        from pipeline.errors import ConfigError

        raise ConfigError(f"models: covariate(s) {', '.join(missing)} are not cohort columns")
    cc = frame.drop_nulls(list(covariates)) if covariates else frame
    for c in covariates:
        cc = cc.filter(pl.col(c).cast(pl.Float64).is_finite())
    kept = [c for c in covariates if cc.height and cc[c].cast(pl.Float64).n_unique() > 1]
    return cc, frame.height - cc.height, kept


def fit_cox(
    frame: pl.DataFrame, *, name: str, label: str, contrast: str, exposure_col: str,
    covariates: Sequence[str], settings: ModelSettings, time_col: str = "time_days",
    event_col: str = "event", entry_col: str | None = None, weight_col: str | None = None,
    strata: Sequence[str] | None = None, id_col: str = "subject_id", measure: str = "HR",
    ph_test: bool = True, fitter: type[CoxPHFitter] = LinearCoxPHFitter,
) -> ModelResult:
    """Cox model of ``event_col`` on ``exposure_col`` (0/1) + ``covariates``; robust (sandwich)
    SEs clustered on ``id_col``; Efron ties (lifelines). ``entry_col`` gives delayed entry
    (counting-process rows), ``weight_col`` case weights. Returns the exposure's HR.

    ``details``: n_dropped_missing, covariates_used, covariates_dropped_constant and, when the
    model allows it, ph_test_p (Grambsch-Therneau test on rank time for the exposure) and
    ph_test_global_min_p (smallest p over all terms).

    ``fitter``: ``LinearCoxPHFitter`` (lifelines' fit with its O(n^2) sandwich and per-row loops
    replaced by running sums: the same numbers to ~1e-12, linear in rows); lifelines'
    ``CoxPHFitter`` gives the original code path (tests and benchmarks/bench_cox.py compare them).
    """
    cc, dropped, kept = complete_cases(frame, covariates)
    details: dict = {"n_dropped_missing": dropped, "covariates_used": ",".join(kept),
                     "covariates_dropped_constant": ",".join(c for c in covariates if c not in kept)}
    n = cc[id_col].n_unique() if cc.height else 0
    events = int(cc[event_col].sum()) if cc.height else 0
    reason = check_counts(cc, exposure_col, event_col, len(kept), settings, weight_col, id_col)
    if reason:
        return ModelResult.not_estimable(name, label, measure, contrast, reason, n, events, details)
    cols = [time_col, event_col, exposure_col, *kept, id_col]
    for extra in (entry_col, weight_col, *(strata or [])):
        if extra and extra not in cols:
            cols.append(extra)
    df = cc.select(cols).to_pandas()
    df[exposure_col] = df[exposure_col].astype(float)
    cph = fitter(alpha=settings.alpha)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cph.fit(
                df, duration_col=time_col, event_col=event_col, entry_col=entry_col,
                weights_col=weight_col, cluster_col=id_col, robust=True,
                strata=list(strata) if strata else None,
            )
    except (ConvergenceError, ConvergenceWarning, np.linalg.LinAlgError, ValueError) as exc:
        return ModelResult.not_estimable(
            name, label, measure, contrast, f"Cox fit failed: {str(exc).splitlines()[0][:120]}",
            n, events, details,
        )
    z = float(norm.ppf(1 - settings.alpha / 2))
    summary = _summary_frame(cph.params_, cph.standard_errors_, cph.summary["p"], z)
    row = summary.filter(pl.col("term") == exposure_col).row(0, named=True)
    if ph_test and entry_col is None and weight_col is None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ph = proportional_hazard_test(cph, df, time_transform="rank")
            ph_p = ph.summary["p"]
            details["ph_test_p"] = float(ph_p.loc[exposure_col]) if exposure_col in ph_p.index else None
            details["ph_test_global_min_p"] = float(ph_p.min())
            details["ph_test_method"] = "Grambsch-Therneau, rank(time), lifelines proportional_hazard_test"
        except Exception as exc:  # noqa: BLE001 - a failed diagnostic must not kill the model
            details["ph_test_error"] = str(exc).splitlines()[0][:120]
    if not np.isfinite(row["ci_high"]) or row["se"] > 10:
        return ModelResult.not_estimable(name, label, measure, contrast,
                                         "estimate not finite (separation)", n, events, details)
    return ModelResult(
        name=name, label=label, measure=measure, contrast=contrast, estimable=True,
        estimate=row["estimate"], ci_low=row["ci_low"], ci_high=row["ci_high"], p=row["p"],
        n=n, events=events, se_type="robust (sandwich, clustered on patient)", details=details,
        summary=summary,
    )


def fit_cox_time_varying(
    long: pl.DataFrame, *, name: str, label: str, contrast: str, exposure_col: str,
    covariates: Sequence[str], settings: ModelSettings, strata: Sequence[str] | None = None,
    id_col: str = "subject_id",
) -> ModelResult:
    """lifelines CoxTimeVaryingFitter on counting-process rows (start_days, stop_days, event).

    Model-based SEs: lifelines 0.30 has no robust SEs for this fitter; with unit weights and at
    most one event per patient the model-based SE is the usual one (the same model through
    CoxPHFitter with entry times and robust SEs is reported in ``details['robust_se']``).
    """
    cc, dropped, kept = complete_cases(long, covariates)
    details: dict = {"n_dropped_missing_rows": dropped, "covariates_used": ",".join(kept)}
    n = cc[id_col].n_unique() if cc.height else 0
    events = int(cc["event"].sum()) if cc.height else 0
    reason = check_counts(cc, exposure_col, "event", len(kept), settings, id_col=id_col)
    if reason:
        return ModelResult.not_estimable(name, label, "HR", contrast, reason, n, events, details)
    cols = [id_col, "start_days", "stop_days", "event", exposure_col, *kept, *(strata or [])]
    df = cc.select(cols).to_pandas()
    df[exposure_col] = df[exposure_col].astype(float)
    ctv = CoxTimeVaryingFitter(alpha=settings.alpha)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ctv.fit(df, event_col="event", start_col="start_days", stop_col="stop_days",
                    id_col=id_col, strata=list(strata) if strata else None)
    except (ConvergenceError, ConvergenceWarning, np.linalg.LinAlgError, ValueError) as exc:
        return ModelResult.not_estimable(name, label, "HR", contrast,
                                         f"Cox fit failed: {str(exc).splitlines()[0][:120]}", n, events, details)
    z = float(norm.ppf(1 - settings.alpha / 2))
    summary = _summary_frame(ctv.params_, ctv.standard_errors_, ctv.summary["p"], z)
    row = summary.filter(pl.col("term") == exposure_col).row(0, named=True)
    if not np.isfinite(row["ci_high"]) or row["se"] > 10:
        return ModelResult.not_estimable(name, label, "HR", contrast,
                                         "estimate not finite (separation)", n, events, details)
    return ModelResult(
        name=name, label=label, measure="HR", contrast=contrast, estimable=True,
        estimate=row["estimate"], ci_low=row["ci_low"], ci_high=row["ci_high"], p=row["p"],
        n=n, events=events, se_type="model-based (CoxTimeVaryingFitter)", details=details,
        summary=summary,
    )


VASST_STRATA = ("less_severe", "more_severe")
# Columns that define the VASST stratum itself: adjusting the stratum contrast for them would
# compare patients who cannot differ (issue 12), so they are refused as prognosis covariates.
STRATUM_DEFINING_COLUMNS = ("ne_rate_at_vp_mcg_min", "nee_at_vp_mcg_kg_min")


def prognosis_estimand(horizon_days: float, adjusted: bool) -> str:
    adj = " at equal age, sex and lactate before VP" if adjusted else ""
    return (f"Among patients given VP after NE, how much higher the hazard of death within "
            f"{horizon_days:g} days from VP start is for the more severe VASST stratum (NE at VP "
            f"start >= the more-severe threshold) than for the less severe one{adj}: prognosis of "
            f"sicker patients, not an effect of VP or of its timing.")


def prognosis_among_vp(
    cohort: pl.DataFrame, settings: ModelSettings, horizon_days: float, adjusted: bool,
) -> ModelResult:
    """Prognosis among vp_added (formerly "VASST strata HR"): HR of death, more_severe vs
    less_severe (NE mcg/min at VP start), time zero = VP start, administratively censored at
    ``horizon_days``. Adjusted for ``settings.vasst_adjust_covariates`` when ``adjusted``, never
    for the NE dose that defines the stratum. Descriptive: no p-value, no E-value."""
    covs = tuple(c for c in settings.vasst_adjust_covariates if c not in STRATUM_DEFINING_COLUMNS)
    frame = survival_from(
        cohort.filter((pl.col("exposure") == "vp_added") & pl.col("vasst_stratum").is_in(VASST_STRATA)),
        "vp_start_time", horizon_days,
    ).with_columns(is_more_severe=(pl.col("vasst_stratum") == "more_severe").cast(pl.Int8))
    kind = "adjusted" if adjusted else "unadjusted"
    return fit_cox(
        frame, name=f"vp_prognosis.{int(horizon_days)}d.{kind}",
        label=f"Prognosis among VP patients (more vs less severe stratum), {int(horizon_days)}-day, {kind}",
        contrast="more_severe vs less_severe (among vp_added, from VP start)",
        exposure_col="is_more_severe", covariates=covs if adjusted else (), settings=settings,
    ).with_details(horizon_days=horizon_days, time_zero="vp_start_time").with_role(
        "descriptive", prognosis_estimand(horizon_days, adjusted),
        "Both groups received VP; the strata differ by illness severity (the NE dose at VP start), "
        "so the ratio describes prognosis and says nothing about whether VP helps.")

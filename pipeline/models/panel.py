"""Secondary analyses on the hourly person-time panel (``hourly_panel.parquet``, contract B).

Both answer narrower questions than the target-trial emulation (the primary analysis) and say so
in their ``estimand`` (issue 12 item 3):

* **time-updated VP model** (``trial.time_updated.*``): discrete-time hazard of death per hour
  in the decision window, pooled logistic regression (Newton-Raphson, pipeline.models.logit) of
  ``is_death_in_hour`` on VP running at the hour start, the *current* NE dose, MAP and lactate
  (``[models].time_updated_covariates``), the baseline covariates and a smooth function of the
  hour; cluster-robust SEs by patient. With hourly death risks of a few per cent the odds ratio
  approximates the hazard ratio (D'Agostino RB et al. Stat Med 1990;9:1501-1515). Conditioning on
  the current NE dose, which VP itself lowers, makes this a conditional (direct) hazard ratio
  given the current state, not the effect of any VP-timing strategy.
* **sequential trials** (``trial.sequential.*``; Hernan MA et al. Epidemiology 2008;19:766-779;
  Gran JM et al. Stat Med 2010;29:2757-2768): at each hour L of ``[models].sequential_trial_hours``
  the eligible patients are alive at L, on NE >= the VASST entry dose in hour L and not yet on VP;
  arm "VP now" = VP started in [L, L+1 h), arm "not now" = not (they may start later). Covariates
  are the panel values in hour L (+ baseline covariates); the stratum is the NE dose in hour L
  for both arms. Outcome: death within the horizon from the start of hour L (rows whose outcome
  is unknown are dropped and counted); logistic model with one intercept per trial hour, pooled
  over L, robust SEs clustered on patient (a patient is in several trials). A logistic model
  rather than a Cox model because it scales linearly (lifelines and statsmodels PHReg took
  minutes on 45k trial rows under load). Per VASST stratum and the stratum x VP interaction
  (ratio of the two ORs, Wald test): the VASST question.

Missing MAP/lactate within an assessable source (no value charted yet) get a missing-indicator
column and the median as a fill value (stated in ``details``); a covariate the source cannot
assess at all (``is_map_assessable`` false everywhere) is left out and named.
Every fit scales linearly with the number of panel rows (no quadratic time-varying Cox).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl
from scipy.stats import norm

from pipeline.errors import InputFileError
from pipeline.models.cox import check_counts, complete_cases
from pipeline.models.data import survival_from
from pipeline.models.logit import fit_logit_clustered
from pipeline.models.results import ModelResult
from pipeline.models.settings import ModelSettings

PANEL_FILE = "hourly_panel.parquet"
PANEL_COLUMNS = ("stay_id", "subject_id", "hour", "hour_start_time", "is_alive_at_start",
                 "is_death_in_hour", "ne_rate_mcg_kg_min", "ne_rate_mcg_min", "map_mmhg",
                 "lactate_mmol_l", "is_vp_start_hour", "has_vp_before", "is_map_assessable",
                 "is_lactate_assessable")
_ASSESSABLE = {"map_mmhg": "is_map_assessable", "lactate_mmol_l": "is_lactate_assessable"}
STRATA = ("all", "less_severe", "more_severe")
# What each model can be checked against in the synthetic hourly world (issue 10's
# true_effects.json; issue 12 item 8). Written into details["synthetic_truth"].
TRUTH_TIME_UPDATED = (
    "true_effects.json hazard_ratios.vasopressin_direct_while_on_ne is the direct HR given the "
    "current dose and the latent severity; this model sees MAP and lactate in place of severity, "
    "so it recovers that value only approximately (benchmarks/panel_models.py --hard-world)")
TRUTH_SEQUENTIAL = (
    "none by design: 'start VP now vs not now, later starts allowed' has no value in "
    "true_effects.json (it depends on later care); checked under the null on "
    "pipeline.models.panel_world.simulate_panel_world (tests/models/test_models_panel.py)")


def read_panel(cohort_path: Path) -> pl.DataFrame | None:
    """The hourly panel beside cohort.parquet, or None when the cohort step did not write one
    (then the panel models are reported as not estimable, with that reason)."""
    path = Path(cohort_path).parent / PANEL_FILE
    if not path.is_file():
        return None
    try:
        panel = pl.read_parquet(path)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise InputFileError(f"{path}: cannot read parquet ({exc})") from None
    missing = [c for c in PANEL_COLUMNS if c not in panel.columns]
    if missing:
        raise InputFileError(f"{path}: missing column(s) {', '.join(missing)}")
    return panel


# Knot quantiles of a 4-knot restricted cubic spline (Harrell FE. Regression Modeling
# Strategies, 2nd ed. 2015, section 2.4.6: 0.05, 0.35, 0.65, 0.95).
RCS_KNOT_QUANTILES = (0.05, 0.35, 0.65, 0.95)


def rcs_basis(x: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """Restricted cubic spline basis (Harrell's parametrisation, scaled by the outer-knot range
    squared): the linear term plus len(knots) - 2 non-linear terms, linear beyond the outer knots."""
    k = np.asarray(knots, dtype=float)
    scale = (k[-1] - k[0]) ** 2 or 1.0
    pos = lambda u: np.clip(u, 0.0, None) ** 3  # noqa: E731
    cols = [x]
    for j in range(len(k) - 2):
        cols.append((pos(x - k[j]) - pos(x - k[-2]) * (k[-1] - k[j]) / (k[-1] - k[-2])
                     + pos(x - k[-1]) * (k[-2] - k[j]) / (k[-1] - k[-2])) / scale)
    return np.column_stack(cols)


def _time_updated(frame: pl.DataFrame, covariates: Sequence[str]) -> tuple[pl.DataFrame, list[str], dict]:
    """Model columns for the time-updated covariates: a restricted cubic spline of each (a dose
    or a lab does not act linearly on the log hazard; a linear term left residual confounding in
    tests/models/test_models_panel.py), a missing indicator plus median fill where some hours have
    no value yet, and nothing for a covariate the source cannot assess. Returns (frame, model
    column names, details)."""
    cols, left_out, filled = [], [], []
    for c in covariates:
        flag = _ASSESSABLE.get(c)
        if frame.height == 0 or (flag is not None and not frame.get_column(flag).fill_null(False).any()):
            left_out.append(c)
            continue
        if frame[c].null_count():
            med = frame[c].median()
            frame = frame.with_columns(pl.col(c).is_null().cast(pl.Int8).alias(f"is_missing_{c}"),
                                       pl.col(c).fill_null(med if med is not None else 0.0))
            cols.append(f"is_missing_{c}")
            filled.append(c)
        x = frame[c].cast(pl.Float64).to_numpy()
        knots = np.unique(np.quantile(x, RCS_KNOT_QUANTILES))
        if knots.size < 3:  # too few distinct values for a spline: linear term only
            cols.append(c)
            continue
        basis = rcs_basis(x, knots)
        names = [c] + [f"{c}_rcs{j}" for j in range(1, basis.shape[1])]
        frame = frame.with_columns([pl.Series(nm, basis[:, j]) for j, nm in enumerate(names)])
        cols += names
    return frame, cols, {"time_updated_not_assessable": ",".join(left_out),
                         "time_updated_missing_indicator": ",".join(filled),
                         "time_updated_form": "restricted cubic spline, 4 knots (Harrell 2015)"}


def _stratum(dose_mcg_min: pl.Expr, settings: ModelSettings) -> pl.Expr:
    return (pl.when(dose_mcg_min < settings.vasst_entry_ne_mcg_min).then(pl.lit("below_entry"))
            .when(dose_mcg_min < settings.vasst_more_severe_ne_mcg_min).then(pl.lit("less_severe"))
            .otherwise(pl.lit("more_severe")))


def _panel_columns(panel: pl.DataFrame, settings: ModelSettings, *extra: str) -> pl.DataFrame:
    """The panel columns a model reads (keys, hour, NE dose, the time-updated covariates and
    their assessability flags, ``extra``): the models' frames hold no other columns (memory at
    100k stays, issue 16)."""
    wanted = ["stay_id", "subject_id", "hour", "is_alive_at_start", "ne_rate_mcg_min", *extra,
              *settings.time_updated_covariates, *[_ASSESSABLE[c] for c in settings.time_updated_covariates
                                                  if c in _ASSESSABLE]]
    return panel.select([c for c in dict.fromkeys(wanted) if c in panel.columns])


def _trial_cohort(cohort: pl.DataFrame, covariates: Sequence[str]) -> pl.DataFrame:
    return cohort.filter(pl.col("exposure").is_in(["vp_added", "ne_only"])).select(
        "stay_id", "death_time", "followup_end_time", "has_died", *covariates)


# ---------------------------------------------------------------- time-updated model
def time_updated_estimand(settings: ModelSettings, window_hours: float, stratum: str) -> str:
    where = "" if stratum == "all" else f" in the {stratum.replace('_', ' ')} stratum (current NE dose)"
    return (f"Conditional hazard ratio of death per hour during the first {window_hours:g} h for VP "
            f"running vs not{where}, among patients with the same current NE dose, MAP and lactate and "
            f"the same baseline factors: a direct effect given the current state, not the effect of a "
            f"VP-timing strategy (conditioning on NE dose, which VP lowers, blocks part of VP's effect).")


def pooled_logistic(
    frame: pl.DataFrame, *, name: str, label: str, contrast: str, exposure_col: str,
    covariates: Sequence[str], settings: ModelSettings, event_col: str = "is_death_in_hour",
    id_col: str = "subject_id", time_col: str = "hour", time_form: str = "log_cubic",
    measure: str = "HR",
) -> ModelResult:
    """Logistic regression of ``event_col`` on the exposure, the covariates and a function of
    ``time_col``; cluster-robust (sandwich) SEs by ``id_col`` (Newton-Raphson, one pass over the
    rows per iteration, so it scales linearly: pipeline.models.logit, equal to statsmodels'
    Logit with cov_type="cluster" to 1e-8 and ~3x faster). ``time_form``: "log_cubic" (cubic in log(1 + hour): the
    discrete-time hazard of the time-updated model, whose odds ratio is reported as an HR) or
    "indicators" (one intercept per value, e.g. per sequential trial)."""
    cc, dropped, kept = complete_cases(frame, covariates)
    details = {"n_dropped_missing_rows": dropped, "covariates_used": ",".join(kept),
               "n_rows": cc.height, "method": f"pooled logistic, {time_col} as {time_form}"}
    n = cc[id_col].n_unique() if cc.height else 0
    events = int(cc[event_col].cast(pl.Int64).sum()) if cc.height else 0
    cc = cc.with_columns(pl.col(event_col).cast(pl.Int8), pl.col(exposure_col).cast(pl.Int8))
    n_time = 3 if time_form == "log_cubic" else (cc[time_col].n_unique() - 1 if cc.height else 0)
    reason = check_counts(cc, exposure_col, event_col, len(kept) + n_time, settings, id_col=id_col)
    if reason:
        return ModelResult.not_estimable(name, label, measure, contrast, reason, n, events, details)
    t = cc[time_col].cast(pl.Float64).to_numpy()
    if time_form == "log_cubic":
        lt = np.log1p(t)
        time_cols = [lambda: lt, lambda: lt ** 2, lambda: lt ** 3]
        time_terms = ["log1p_hour", "log1p_hour_2", "log1p_hour_3"]
    else:
        levels = np.unique(t)[1:]
        time_cols = [(lambda v=v: (t == v).astype(float)) for v in levels]
        time_terms = [f"{time_col}_{v:g}" for v in levels]
    # The design matrix is filled column by column in place (issue 16: stacking, centring and
    # stacking again held three copies of it; at 100k stays that was ~1.5 GB). Every column but
    # the intercept and the exposure is centred and scaled: spline and hour terms on their raw
    # scales made Newton's method stall (~100 iterations instead of ~8). Coefficients are put
    # back on the original scale below; the exposure's is unchanged by the scaling of the others.
    columns = [*[(lambda c=c: cc[c].cast(pl.Float64).to_numpy()) for c in kept], *time_cols]
    X = np.empty((cc.height, 2 + len(columns)))
    X[:, 0] = 1.0
    X[:, 1] = cc[exposure_col].cast(pl.Float64).to_numpy()
    sd = np.ones(len(columns))
    for j, column in enumerate(columns):
        values = column()
        centre, spread = values.mean(), values.std()
        sd[j] = spread if spread > 0 else 1.0
        X[:, 2 + j] = (values - centre) / sd[j]
    terms = [exposure_col, *kept, *time_terms]
    groups = cc[id_col].rank("dense").cast(pl.Int64).to_numpy()
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            fit = fit_logit_clustered(cc[event_col].cast(pl.Float64).to_numpy(), X, groups, maxiter=50)
    except (np.linalg.LinAlgError, ValueError) as exc:
        return ModelResult.not_estimable(name, label, measure, contrast,
                                         f"logistic fit failed: {str(exc).splitlines()[0][:120]}",
                                         n, events, details)
    details["newton_iterations"] = fit.iterations
    if not fit.converged:
        return ModelResult.not_estimable(name, label, measure, contrast, "logistic fit did not converge",
                                         n, events, details)
    unscale = np.concatenate([[1.0], sd])
    summary = _summary(terms, np.asarray(fit.params)[1:] / unscale, np.asarray(fit.bse)[1:] / unscale,
                       np.asarray(fit.pvalues)[1:], settings)
    r = summary.row(0, named=True)
    if not np.isfinite(r["ci_high"]) or not np.isfinite(r["se"]) or r["se"] > 10:
        return ModelResult.not_estimable(name, label, measure, contrast, "estimate not finite (separation)",
                                         n, events, details)
    return ModelResult(name=name, label=label, measure=measure, contrast=contrast, estimable=True,
                       estimate=r["estimate"], ci_low=r["ci_low"], ci_high=r["ci_high"], p=r["p"],
                       n=n, events=events, se_type="robust (sandwich, clustered on patient)",
                       details=details, summary=summary)


def _summary(terms: list[str], params: np.ndarray, se: np.ndarray, p: np.ndarray,
             settings: ModelSettings) -> pl.DataFrame:
    z = float(norm.ppf(1 - settings.alpha / 2))
    with np.errstate(over="ignore"):  # spline terms can have huge ratios; only the exposure's is used
        return pl.DataFrame({"term": terms, "estimate": np.exp(params), "ci_low": np.exp(params - z * se),
                             "ci_high": np.exp(params + z * se), "coef": params, "se": se, "p": p})


def time_updated_models(
    panel: pl.DataFrame | None, cohort: pl.DataFrame, settings: ModelSettings, window_hours: float,
) -> list[ModelResult]:
    """Time-updated VP model overall and per current VASST stratum (see module docstring)."""
    names = [(s, f"trial.time_updated.{s}.{window_hours:g}h.adjusted") for s in STRATA]
    contrast = "VP running vs not at the hour start (hourly panel)"
    if panel is None:
        return [ModelResult.not_estimable(nm, f"Time-updated VP, {s}", "HR", contrast,
                                          f"no {PANEL_FILE} beside cohort.parquet")
                .with_role("secondary", time_updated_estimand(settings, window_hours, s))
                .with_details(analysis="time_updated", stratum=s, adjusted=True)
                for s, nm in names]
    base = list(settings.baseline_covariates)
    rows = (_panel_columns(panel, settings, "has_vp_before", "is_death_in_hour")
            .filter(pl.col("is_alive_at_start") & (pl.col("hour") < window_hours))
            .join(_trial_cohort(cohort, base).select("stay_id", *base), on="stay_id", how="inner")
            .with_columns(vp=pl.col("has_vp_before").fill_null(False).cast(pl.Int8),
                          stratum=_stratum(pl.col("ne_rate_mcg_min").fill_null(0.0), settings)))
    out = []
    for s, nm in names:
        # Spline knots and median fills from the rows of this model (knots from all rows left
        # near-constant basis columns in a stratum, and Newton's method did not converge).
        sub, tu_cols, tu_details = _time_updated(rows if s == "all" else rows.filter(pl.col("stratum") == s),
                                                 settings.time_updated_covariates)
        out.append(pooled_logistic(
            sub, name=nm, label=f"Time-updated VP (hourly panel), {s}, first {window_hours:g} h, adjusted",
            contrast=contrast, exposure_col="vp", covariates=[*tu_cols, *base], settings=settings,
        ).with_details(analysis="time_updated", stratum=s, adjusted=True, horizon_hours=window_hours,
                       synthetic_truth=TRUTH_TIME_UPDATED, **tu_details).with_role("secondary", time_updated_estimand(settings, window_hours, s)))
    return out


# ---------------------------------------------------------------- sequential trials
def sequential_trial_rows(
    panel: pl.DataFrame, cohort: pl.DataFrame, settings: ModelSettings, horizon_days: float,
) -> pl.DataFrame:
    """One row per (patient, trial hour L) eligible at L: ``trial_hour``, ``vp`` (VP started in
    hour L), ``stratum`` (NE mcg/min in hour L, the same moment for both arms), the panel
    covariates at L, baseline covariates, ``time_days``/``event`` (death from the start of hour L,
    censored ``horizon_days`` later) and ``is_outcome_known`` (died by then or followed to then)."""
    base = list(settings.baseline_covariates)
    hours = [int(h) for h in settings.sequential_trial_hours]
    cohort_part = _trial_cohort(cohort, base)
    elig = _panel_columns(panel, settings, "has_vp_before", "is_vp_start_hour", "hour_start_time").filter(
        pl.col("hour").is_in(hours) & pl.col("is_alive_at_start")
        & ~pl.col("has_vp_before").fill_null(False)
        & (pl.col("ne_rate_mcg_min").fill_null(0.0) >= settings.vasst_entry_ne_mcg_min)
    ).join(cohort_part, on="stay_id", how="inner").with_columns(
        pl.col("hour_start_time").cast(cohort_part.schema["death_time"]))
    out = survival_from(elig, "hour_start_time", horizon_days)
    return out.with_columns(
        trial_hour=pl.col("hour").cast(pl.Int64),
        vp=pl.col("is_vp_start_hour").fill_null(False).cast(pl.Int8),
        stratum=_stratum(pl.col("ne_rate_mcg_min"), settings),
        is_outcome_known=(pl.col("event") == 1) | (pl.col("time_days") >= horizon_days - 1e-9),
    ).with_columns(is_more_severe=(pl.col("stratum") == "more_severe").cast(pl.Int8)).with_columns(
        vp_x_more_severe=pl.col("vp") * pl.col("is_more_severe"),
    ).sort("subject_id", "trial_hour")


def sequential_estimand(horizon_days: float, stratum: str) -> str:
    where = ("" if stratum == "all" else
             f" whose NE dose in that hour puts them in the {stratum.replace('_', ' ')} VASST stratum")
    return (f"Among patients alive, on NE at or above the VASST entry dose and not yet on VP at a "
            f"given hour{where}, the odds ratio of death within {horizon_days:g} days for starting VP "
            f"in that hour vs not starting it then (later starts allowed), at equal NE dose, MAP, "
            f"lactate and baseline factors, pooled over the trial hours. Valid only if these covariates "
            f"capture why VP was started in that hour; not the effect of a VP-timing strategy.")


def sequential_trial_models(
    panel: pl.DataFrame | None, cohort: pl.DataFrame, settings: ModelSettings, horizon_days: float,
) -> list[ModelResult]:
    """Pooled sequential trials per stratum plus the stratum x VP interaction: logistic model of
    death by the horizon (patients with a known outcome) with one intercept per trial hour,
    cluster-robust SEs by patient (a patient enters several trials)."""
    h = int(horizon_days)
    specs = [(s, f"trial.sequential.{s}.{h}d.adjusted") for s in STRATA]
    contrast = "VP started in this hour vs not (eligible: alive, on NE >= entry dose, no VP yet)"
    inter_name = f"trial.sequential.interaction.{h}d.adjusted"
    inter_contrast = "ratio of VP ORs, more_severe / less_severe (stratum x VP interaction)"
    inter_estimand = (f"How many times larger the odds ratio of death within {horizon_days:g} days for "
                      f"starting VP now vs not now is in the more severe than in the less severe VASST "
                      f"stratum (1 = the same effect in both; VASST's question), with the assumptions of "
                      f"the sequential trials; an interaction test has little power in small cohorts.")
    common = dict(analysis="sequential", adjusted=True, horizon_days=horizon_days,
                  synthetic_truth=TRUTH_SEQUENTIAL, trial_hours=",".join(f"{x:g}" for x in settings.sequential_trial_hours))
    if panel is None:
        reason = f"no {PANEL_FILE} beside cohort.parquet"
        out = [ModelResult.not_estimable(nm, f"Sequential trials, {s}", "OR", contrast, reason)
               .with_details(stratum=s, **common).with_role("secondary", sequential_estimand(horizon_days, s))
               for s, nm in specs]
        return out + [ModelResult.not_estimable(inter_name, "Sequential trials, interaction", "OR",
                                                inter_contrast, reason)
                      .with_details(stratum="interaction", **common).with_role("secondary", inter_estimand)]
    rows = sequential_trial_rows(panel, cohort, settings, horizon_days)
    n_unknown = int((~rows["is_outcome_known"]).sum())
    rows = rows.filter(pl.col("is_outcome_known"))
    base = list(settings.baseline_covariates)
    fit = dict(settings=settings, event_col="event", time_col="trial_hour", time_form="indicators",
               measure="OR")
    out = []
    for s, nm in specs:
        sub, tu_cols, tu_details = _time_updated(rows if s == "all" else rows.filter(pl.col("stratum") == s),
                                                 settings.time_updated_covariates)
        cov = [*tu_cols, *base, "is_more_severe"] if s == "all" else [*tu_cols, *base]
        details = dict(tu_details, n_trial_rows=sub.height, n_rows_outcome_unknown=n_unknown, **common)
        out.append(pooled_logistic(sub, name=nm, label=f"Sequential trials (hourly), {s}, {h}-day, adjusted",
                                   contrast=contrast, exposure_col="vp", covariates=cov, **fit)
                   .with_details(stratum=s, **details)
                   .with_role("secondary", sequential_estimand(horizon_days, s)))
    # Interaction: vp, is_more_severe and their product; exp(coef of the product) is the ratio
    # of the stratum-specific ORs, its Wald p the interaction test.
    inter, tu_cols, tu_details = _time_updated(
        rows.filter(pl.col("stratum").is_in(["less_severe", "more_severe"])), settings.time_updated_covariates)
    covs = [*tu_cols, *base]
    details = dict(tu_details, n_trial_rows=inter.height, n_rows_outcome_unknown=n_unknown, **common)
    res = pooled_logistic(inter, name=inter_name, label="Sequential trials, stratum x VP interaction",
                          contrast=inter_contrast, exposure_col="vp_x_more_severe",
                          covariates=[*covs, "vp", "is_more_severe"], **fit)
    out.append(res.with_details(stratum="interaction", **{**details, "analysis": "sequential_interaction"})
               .with_role("secondary", inter_estimand))
    return out

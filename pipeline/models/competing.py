"""RRT with death as a competing risk, among vp_added patients without RRT before VP start.

Time zero = VP start; horizon = [outcomes].short_term_days. Status per patient:
1 = first RRT in the index stay (rrt_first_time_after_index) within the horizon;
2 = death within the horizon before any RRT; 0 = censored (alive without RRT at the horizon or
at the end of follow-up). RRT after ICU discharge is not in the data (the cohort records RRT in
the same stay only): such patients count as RRT-free - a stated limitation.

* logistic risk of RRT by the horizon (OR): stratum, timing class;
* cumulative incidence (Aalen-Johansen, lifelines; seeded because it jitters tied times);
* cause-specific Cox (competing death censors);
* Fine-Gray subdistribution hazards by the weighted-Cox construction (below).

Fine-Gray model (Fine JP, Gray RJ. JASA 1999;94:496-509; Geskus RB. Biometrics 2011;67:39-49):
a patient with a competing event at T_i stays in the risk set after T_i with weight
G(t-)/G(T_i-), G = Kaplan-Meier of the censoring distribution; everyone else has weight 1 until
their own time. ``fine_gray_fit`` maximises that weighted partial likelihood directly (running
sums over patients sorted by time, linear in patients) and gives robust (sandwich, per patient) SEs that treat G as known, as
Geskus 2011 does; cmprsk::crr's variance also accounts for estimating G (usually a small
difference). ``fine_gray_rows`` writes the same model as counting-process rows (checked against
the direct fit in the tests). Until results 2.0 the SEs came from lifelines' robust variance on
those rows, which was 1.5-1.8x too wide (issue 12).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import polars as pl
import statsmodels.api as sm
from lifelines import AalenJohansenFitter, KaplanMeierFitter
from scipy.stats import norm

from pipeline.models.cox import check_counts, complete_cases, fit_cox
from pipeline.models.data import MIN_TIME_DAYS
from pipeline.models.results import ModelResult
from pipeline.models.settings import ModelSettings

_DAY = pl.duration(days=1)


def rrt_population(cohort: pl.DataFrame, horizon_days: float) -> pl.DataFrame:
    """vp_added without RRT before VP start and without chronic dialysis / ESRD (mart_attrition
    step rrt_no_chronic_dialysis; a cohort without the column keeps everyone), with
    ``time_days`` and ``status`` (0/1/2)."""
    chronic = (pl.col("has_chronic_dialysis").fill_null(False) if "has_chronic_dialysis" in cohort.columns
               else pl.lit(False))
    pop = cohort.filter(
        (pl.col("exposure") == "vp_added")
        & ~chronic
        & ~pl.col("rrt_before_index").fill_null(False)
        & (pl.col("rrt_first_time_after_index").is_null()
           | (pl.col("rrt_first_time_after_index") >= pl.col("vp_start_time")))
    )
    t0 = pl.col("vp_start_time")
    rrt_d = (pl.col("rrt_first_time_after_index") - t0) / _DAY
    death_d = pl.when(pl.col("has_died")).then((pl.col("death_time") - t0) / _DAY)
    end_d = (pl.min_horizontal("death_time", "followup_end_time") - t0) / _DAY
    return pop.with_columns(rrt_d=rrt_d, death_d=death_d, end_d=end_d).with_columns(
        status=pl.when(pl.col("rrt_d").is_not_null() & (pl.col("rrt_d") <= horizon_days)).then(1)
        .when(pl.col("death_d").is_not_null() & (pl.col("death_d") <= horizon_days)).then(2)
        .otherwise(0).cast(pl.Int8),
        time_days=pl.min_horizontal(pl.col("rrt_d").fill_null(float("inf")), pl.col("end_d"),
                                    pl.lit(horizon_days)).clip(lower_bound=MIN_TIME_DAYS),
        is_more_severe=(pl.col("vasst_stratum") == "more_severe").cast(pl.Int8),
        is_delayed=(pl.col("timing_class") == "delayed").cast(pl.Int8),
    ).drop("rrt_d", "death_d", "end_d")


# ---------------------------------------------------------------- Fine-Gray
def censoring_survival(time: np.ndarray, status: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kaplan-Meier of the censoring distribution: (distinct censoring times, G just after each).
    Events of any cause censor the censoring process; at tied times events come first."""
    kmf = KaplanMeierFitter().fit(time, (status == 0).astype(int))
    sf = kmf.survival_function_.iloc[:, 0]
    cens_times = np.unique(time[status == 0])
    return cens_times, sf.loc[cens_times].to_numpy()


def _g_before(t: np.ndarray, cens_times: np.ndarray, g_after: np.ndarray) -> np.ndarray:
    """G(t-): value after the last censoring time strictly before t."""
    if cens_times.size == 0:  # no censoring: G = 1 throughout
        return np.ones_like(t, dtype=float)
    idx = np.searchsorted(cens_times, t, side="left") - 1
    return np.where(idx >= 0, g_after[np.clip(idx, 0, None)], 1.0)


def fine_gray_rows(
    ids: np.ndarray, time: np.ndarray, status: np.ndarray, failcode: int = 1,
) -> pd.DataFrame:
    """Counting-process rows (id, start, stop, event, fg_weight) of the Fine-Gray weighted Cox."""
    cens_times, g_after = censoring_survival(time, status)
    fail_times = time[status == failcode]
    t_max = fail_times.max() if fail_times.size else 0.0
    rows_id, rows_start, rows_stop, rows_event, rows_w = [ids], [np.zeros_like(time)], [time], \
        [(status == failcode).astype(int)], [np.ones_like(time)]
    competing = (status != failcode) & (status != 0) & (time < t_max)
    g_ti = _g_before(time, cens_times, g_after)
    for i in np.flatnonzero(competing):
        ti = time[i]
        inner = cens_times[(cens_times > ti) & (cens_times < t_max)]
        starts = np.concatenate([[ti], inner])
        stops = np.concatenate([inner, [t_max]])
        # For t in (a, b]: G(t-) = G right after a (a = T_i or a censoring time).
        g_a = np.concatenate([[_g_before(np.array([np.nextafter(ti, np.inf)]), cens_times, g_after)[0]],
                              g_after[np.searchsorted(cens_times, inner)]])
        rows_id.append(np.full(starts.size, ids[i]))
        rows_start.append(starts)
        rows_stop.append(stops)
        rows_event.append(np.zeros(starts.size, dtype=int))
        rows_w.append(g_a / g_ti[i])
    out = pd.DataFrame({
        "id": np.concatenate(rows_id), "start": np.concatenate(rows_start),
        "stop": np.concatenate(rows_stop), "event": np.concatenate(rows_event),
        "fg_weight": np.concatenate(rows_w),
    })
    return out[out["fg_weight"] > 0]


def fine_gray_fit(
    X: np.ndarray, time: np.ndarray, status: np.ndarray, failcode: int = 1,
    max_iter: int = 50, tol: float = 1e-9,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fine-Gray proportional subdistribution hazards by Newton-Raphson on the weighted partial
    likelihood (Breslow ties), with the robust (sandwich) variance.

    At each event time t_j of ``failcode`` the risk set holds everyone with T_i >= t_j (weight
    1) and everyone with a competing event before t_j, with weight G(t_j-)/G(T_i-) (G = Kaplan-
    Meier of censoring). Variance: I^-1 (sum_i W_i W_i') I^-1, W_i the score residual of patient
    i (event term minus its weighted compensator over all event times), as in Fine & Gray 1999
    section 3 and Geskus 2011 without the term for estimating G. Returns (beta, se, cov).

    Why not lifelines' robust SEs on the expanded (entry, stop, weight) rows, used before issue
    12: over 40 simulated data sets they averaged 1.5-1.8x the spread of the estimates (issue
    12; tests/models/test_models_competing.py), and the expansion has one row per competing
    patient and later censoring time (quadratic).

    Linear in patients (issue 16): the risk-set sums at every event time are a reverse
    cumulative sum over patients sorted by time (weight 1) plus G(t_j-) times a forward
    cumulative sum of r_i / G(T_i-) over competing patients with T_i < t_j; the compensator of
    each score residual is likewise a prefix sum over event times t_j <= T_i plus, for a
    competing patient, a suffix sum over t_j > T_i divided by G(T_i-). Until issue 16 the same
    formulas ran as a loop over event times with an n-vector of weights each, O(E x n) time and
    memory; tests/models/test_fine_gray_linear.py checks the two agree to 1e-10.
    """
    X = np.asarray(X, dtype=float)
    n, p = X.shape
    cens_times, g_after = censoring_survival(time, status)
    g_ti = _g_before(time, cens_times, g_after)
    competing = (status != failcode) & (status != 0)
    is_event = status == failcode
    event_times, event_of = np.unique(time[is_event], return_inverse=True)
    d = np.bincount(event_of, minlength=event_times.size).astype(float)
    sum_x_events = np.zeros((event_times.size, p))
    np.add.at(sum_x_events, event_of, X[is_event])
    g_tj = _g_before(event_times, cens_times, g_after)

    # rows by time: those from first_at_risk[j] on have T_i >= t_j (weight 1)
    by_time = np.argsort(time, kind="stable")
    first_at_risk = np.searchsorted(time[by_time], event_times, side="left")
    # competing rows by time: the first n_late[j] have T_i < t_j (weight G(t_j-)/G(T_i-))
    comp = np.flatnonzero(competing)
    comp = comp[np.argsort(time[comp], kind="stable")]
    n_late = np.searchsorted(time[comp], event_times, side="left")
    xx = X[:, :, None] * X[:, None, :]

    def risk_sums(v: np.ndarray) -> np.ndarray:
        """sum_i w_ij v_i for every event time j (v: per-patient rows of any shape)."""
        tail = np.concatenate([v[by_time][::-1].cumsum(0)[::-1], np.zeros((1, *v.shape[1:]))])
        late = v[comp] / g_ti[comp].reshape(-1, *([1] * (v.ndim - 1)))
        head = np.concatenate([np.zeros((1, *v.shape[1:])), late.cumsum(0)])
        return tail[first_at_risk] + g_tj.reshape(-1, *([1] * (v.ndim - 1))) * head[n_late]

    def moments(beta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        r = np.exp(X @ beta)
        s0 = risk_sums(r)
        xbar = risk_sums(r[:, None] * X) / s0[:, None]
        s2 = risk_sums(r[:, None, None] * xx)
        info = np.einsum("j,jab->ab", d, s2 / s0[:, None, None]) - np.einsum("j,ja,jb->ab", d, xbar, xbar)
        return r, s0, xbar, info

    beta = np.zeros(p)
    for _ in range(max_iter):
        _, _, xbar, info = moments(beta)
        score = sum_x_events.sum(0) - d @ xbar
        step = np.linalg.solve(info, score)
        beta = beta + step
        if np.max(np.abs(step)) < tol:
            break
    else:
        raise np.linalg.LinAlgError("Fine-Gray Newton-Raphson did not converge")
    r, s0, xbar, info = moments(beta)
    # compensator of patient i: sum_j (d_j w_ij r_i / s0_j) (x_i - xbar_j)
    c = d / s0
    cx = c[:, None] * xbar
    upto = np.searchsorted(event_times, time, side="right")  # event times t_j <= T_i: w_ij = 1
    a = np.concatenate([[0.0], c.cumsum()])[upto]
    b = np.concatenate([np.zeros((1, p)), cx.cumsum(0)])[upto]
    resid = -r[:, None] * (X * a[:, None] - b)
    # competing patients after their own time (t_j > T_i): w_ij = G(t_j-)/G(T_i-)
    cg = np.concatenate([(c * g_tj)[::-1].cumsum()[::-1], [0.0]])[upto[comp]]
    cxg = np.concatenate([(cx * g_tj[:, None])[::-1].cumsum(0)[::-1], np.zeros((1, p))])[upto[comp]]
    resid[comp] -= (r[comp] / g_ti[comp])[:, None] * (X[comp] * cg[:, None] - cxg)
    resid[is_event] += X[is_event] - xbar[event_of]
    inv = np.linalg.inv(info)
    cov = inv @ (resid.T @ resid) @ inv
    return beta, np.sqrt(np.diag(cov)), cov


def fine_gray(
    frame: pl.DataFrame, *, name: str, label: str, contrast: str, exposure_col: str,
    covariates: Sequence[str], settings: ModelSettings, failcode: int = 1, id_col: str = "subject_id",
) -> ModelResult:
    """Fine-Gray subdistribution HR (sHR) of ``failcode`` for ``exposure_col`` + covariates.
    ``frame`` needs time_days, status (0 censored, 1.. causes) and the covariates; one row per
    patient. Robust SEs (``fine_gray_fit``)."""
    cc, dropped, kept = complete_cases(frame, [exposure_col, *covariates])
    kept = [c for c in kept if c != exposure_col]
    details = {"n_dropped_missing": dropped, "covariates_used": ",".join(kept),
               "method": "Fine-Gray weighted partial likelihood, Newton-Raphson, Breslow ties "
                         "(Fine & Gray 1999; Geskus 2011)"}
    cc = cc.with_columns(event=(pl.col("status") == failcode).cast(pl.Int8))
    n, events = cc.height, int(cc["event"].sum()) if cc.height else 0
    reason = check_counts(cc, exposure_col, "event", len(kept), settings, id_col=id_col)
    if reason:
        return ModelResult.not_estimable(name, label, "sHR", contrast, reason, n, events, details)
    terms = [exposure_col, *kept]
    X = cc.select(terms).cast(pl.Float64).to_numpy()
    try:
        beta, se, _ = fine_gray_fit(X, cc["time_days"].to_numpy(), cc["status"].to_numpy(), failcode)
    except np.linalg.LinAlgError as exc:
        return ModelResult.not_estimable(name, label, "sHR", contrast,
                                         f"Fine-Gray fit failed: {str(exc).splitlines()[0][:120]}",
                                         n, events, details)
    z = float(norm.ppf(1 - settings.alpha / 2))
    with np.errstate(over="ignore"):
        pvals = 2 * norm.sf(np.abs(beta / se))
        summary = pl.DataFrame({"term": terms, "estimate": np.exp(beta), "ci_low": np.exp(beta - z * se),
                                "ci_high": np.exp(beta + z * se), "coef": beta, "se": se, "p": pvals})
    row = summary.row(0, named=True)
    if not np.isfinite(row["ci_high"]) or not np.isfinite(row["se"]) or row["se"] > 10:
        return ModelResult.not_estimable(name, label, "sHR", contrast, "estimate not finite (separation)",
                                         n, events, details)
    return ModelResult(name=name, label=label, measure="sHR", contrast=contrast, estimable=True,
                       estimate=row["estimate"], ci_low=row["ci_low"], ci_high=row["ci_high"], p=row["p"],
                       n=n, events=events, se_type="robust (sandwich, per patient; G treated as known)",
                       details=details, summary=summary)


# ---------------------------------------------------------------- other RRT models
def logistic_or(
    frame: pl.DataFrame, *, name: str, label: str, contrast: str, exposure_cols: Sequence[str],
    covariates: Sequence[str], settings: ModelSettings, outcome_col: str = "has_rrt",
) -> list[ModelResult]:
    """Logistic regression of ``outcome_col`` (0/1); one ModelResult (OR, Wald CI) per exposure
    column (dummies of one factor share one fit and summary)."""
    cc, dropped, kept = complete_cases(frame, [*exposure_cols, *covariates])
    kept = [c for c in kept if c not in exposure_cols]
    out = []
    n, events = cc.height, int(cc[outcome_col].sum()) if cc.height else 0
    details = {"n_dropped_missing": dropped, "covariates_used": ",".join(kept)}
    reason = ""
    for col in exposure_cols:
        reason = reason or check_counts(cc.with_columns(pl.col(col).cast(pl.Int8)), col, outcome_col,
                                        len(kept) + len(exposure_cols) - 1, settings)
    if not reason and min(events, n - events) < settings.min_events_total:
        reason = f"{min(events, n - events)} patients in the rarer outcome class (< {settings.min_events_total})"
    fit = None
    if not reason:
        X = sm.add_constant(cc.select(*exposure_cols, *kept).cast(pl.Float64).to_pandas(), has_constant="add")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit = sm.Logit(cc[outcome_col].cast(pl.Float64).to_numpy(), X).fit(disp=0)
        except (np.linalg.LinAlgError, ValueError, sm.tools.sm_exceptions.PerfectSeparationError) as exc:
            reason = f"logistic fit failed: {str(exc).splitlines()[0][:120]}"
    if reason:
        return [ModelResult.not_estimable(f"{name}.{c}", f"{label}: {c}", "OR", contrast, reason,
                                          n, events, details) for c in exposure_cols]
    z = float(norm.ppf(1 - settings.alpha / 2))
    params, se, p = fit.params, fit.bse, fit.pvalues
    summary = pl.DataFrame({
        "term": [str(t) for t in params.index], "estimate": np.exp(params.values),
        "ci_low": np.exp(params.values - z * se.values), "ci_high": np.exp(params.values + z * se.values),
        "coef": params.values, "se": se.values, "p": p.values,
    })
    for c in exposure_cols:
        r = summary.filter(pl.col("term") == c).row(0, named=True)
        if not np.isfinite(r["ci_high"]) or r["se"] > 10:
            out.append(ModelResult.not_estimable(f"{name}.{c}", f"{label}: {c}", "OR", contrast,
                                                 "estimate not finite (separation)", n, events, details))
            continue
        out.append(ModelResult(
            name=f"{name}.{c}", label=f"{label}: {c}", measure="OR", contrast=contrast, estimable=True,
            estimate=r["estimate"], ci_low=r["ci_low"], ci_high=r["ci_high"], p=r["p"], n=n,
            events=events, se_type="model-based (logistic MLE)", details=details, summary=summary))
    return out


def cumulative_incidence(
    frame: pl.DataFrame, grouping: str, settings: ModelSettings, at_days: Sequence[float],
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Aalen-Johansen cumulative incidence of RRT (cause 1) and death (cause 2) per group.

    Returns (curves: grouping, group, cause, time_days, cumulative_incidence, ci_low, ci_high;
    at_times: grouping, group, cause, time_days, n_at_risk, cumulative_incidence). Groups with
    fewer than ``min_patients_per_group`` patients are left out (listed nowhere else)."""
    curve_rows, at_rows = [], []
    data = frame.filter(pl.col(grouping).is_not_null())
    for group in sorted(data[grouping].unique().to_list()):
        g = data.filter(pl.col(grouping) == group)
        if g.height < settings.min_patients_per_group:
            continue
        t, s = g["time_days"].to_numpy(), g["status"].to_numpy()
        for cause, cname in ((1, "rrt"), (2, "death")):
            if not (s == cause).any():
                continue
            ajf = AalenJohansenFitter(seed=settings.aalen_johansen_seed, alpha=settings.alpha)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ajf.fit(t, s, event_of_interest=cause)
            cif = ajf.cumulative_density_.iloc[:, 0]
            ci = ajf.confidence_interval_cumulative_density_
            for tt, v, lo, hi in zip(cif.index, cif.values, ci.iloc[:, 0].values, ci.iloc[:, 1].values):
                curve_rows.append({"grouping": grouping, "group": str(group), "cause": cname,
                                   "time_days": float(tt), "cumulative_incidence": float(v),
                                   "ci_low": float(lo), "ci_high": float(hi)})
            for a in at_days:
                val = cif[cif.index <= a]
                at_rows.append({"grouping": grouping, "group": str(group), "cause": cname,
                                "time_days": float(a), "n_at_risk": int((t >= a).sum()),
                                "cumulative_incidence": float(val.iloc[-1]) if len(val) else 0.0})
    curves = pl.DataFrame(curve_rows, schema={"grouping": pl.String, "group": pl.String, "cause": pl.String,
                          "time_days": pl.Float64, "cumulative_incidence": pl.Float64,
                          "ci_low": pl.Float64, "ci_high": pl.Float64})
    at = pl.DataFrame(at_rows, schema={"grouping": pl.String, "group": pl.String, "cause": pl.String,
                      "time_days": pl.Float64, "n_at_risk": pl.Int64, "cumulative_incidence": pl.Float64})
    return curves, at


@dataclass(frozen=True)
class RrtResult:
    horizon_days: float
    n: int
    n_rrt: int
    n_death_first: int
    models: tuple[ModelResult, ...]
    cif_curves: pl.DataFrame
    cif_at_times: pl.DataFrame

    def to_dict(self) -> dict:
        return {"horizon_days": self.horizon_days, "n": self.n, "n_rrt": self.n_rrt,
                "n_death_before_rrt": self.n_death_first,
                "models": {m.name: m.to_dict() for m in self.models}}


RRT_BIAS_NOTE = (
    "Both groups received VP; stratum and timing class are set by the NE dose at VP start, i.e. by "
    "how sick the patient was, so these ratios describe who needs RRT, not what VP or its timing "
    "does. The effect of VP on RRT is estimated by the target-trial emulation (tte.rrt).")


def rrt_estimand(m: ModelResult, horizon_days: float) -> str:
    """One sentence per RRT model: what its ratio compares."""
    kind = m.name.split(".")[1]
    what = {"logistic": "odds of a first RRT by day {h:g}",
            "cause_specific": "cause-specific hazard of a first RRT (deaths censored) within {h:g} days",
            "fine_gray": "subdistribution hazard of a first RRT within {h:g} days (deaths kept in the "
                         "risk set, so it tracks the cumulative incidence of RRT)"}[kind]
    return (f"Among VP patients without RRT or chronic dialysis before VP start, the ratio of the "
            f"{what.format(h=horizon_days)} from VP start for {m.contrast}, at equal age, sex, "
            f"lactate at index and baseline creatinine: an association, not an effect of VP.")


def rrt_analysis(cohort: pl.DataFrame, settings: ModelSettings) -> RrtResult:
    h = settings.short_term_days
    pop = rrt_population(cohort, h).with_columns(has_rrt=(pl.col("status") == 1).cast(pl.Int8))
    strat = pop.filter(pl.col("vasst_stratum").is_in(["less_severe", "more_severe"]))
    timing = pop.filter(pl.col("timing_class").is_not_null()).with_columns(
        **{f"is_{c}": (pl.col("timing_class") == c).cast(pl.Int8) for c in ("recommended", "ssc_window", "delayed")}
    )
    cov = settings.rrt_covariates  # baseline factors + baseline creatinine (issue 12 item 7)
    models: list[ModelResult] = []
    models += logistic_or(strat, name="rrt.logistic.stratum", label="RRT risk (logistic)",
                          contrast="more_severe vs less_severe", exposure_cols=["is_more_severe"],
                          covariates=cov, settings=settings)
    models += logistic_or(timing, name="rrt.logistic.timing", label="RRT risk (logistic)",
                          contrast="timing class vs early", covariates=cov, settings=settings,
                          exposure_cols=["is_recommended", "is_ssc_window", "is_delayed"])
    for frame, col, contrast in ((strat, "is_more_severe", "more_severe vs less_severe"),
                                 (timing, "is_delayed", "delayed vs earlier")):
        tag = "stratum" if col == "is_more_severe" else "timing"
        cs = frame.with_columns(event=(pl.col("status") == 1).cast(pl.Int8))
        models.append(fit_cox(cs, name=f"rrt.cause_specific.{tag}", label=f"RRT cause-specific Cox, {tag}",
                              contrast=contrast, exposure_col=col, covariates=cov, settings=settings))
        models.append(fine_gray(frame, name=f"rrt.fine_gray.{tag}", label=f"RRT Fine-Gray, {tag}",
                                contrast=contrast, exposure_col=col, covariates=cov, settings=settings))
    models = [m.with_details(horizon_days=h, time_zero="vp_start_time")
              .with_role("descriptive", rrt_estimand(m, h), RRT_BIAS_NOTE) for m in models]
    at = [d for d in settings.at_risk_days if d <= h]
    c1, a1 = cumulative_incidence(pop, "vasst_stratum", settings, at)
    c2, a2 = cumulative_incidence(pop, "timing_class", settings, at)
    return RrtResult(h, pop.height, int((pop["status"] == 1).sum()), int((pop["status"] == 2).sum()),
                     tuple(models), pl.concat([c1, c2]), pl.concat([a1, a2]))

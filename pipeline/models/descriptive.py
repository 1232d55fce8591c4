"""Descriptive survival: mortality with Wilson CIs, Kaplan-Meier curves with log-rank tests,
median follow-up by reverse Kaplan-Meier. Times in days from index_time unless stated."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl
from lifelines import KaplanMeierFitter
from scipy.stats import norm

from pipeline.models.data import survival_from


def wilson_ci(events: int, n: int, confidence_level: float = 0.95) -> tuple[float | None, float | None]:
    """Wilson score interval for a binomial proportion (Wilson EB, JASA 1927;22:209-212).

    Returns (low, high) as proportions; (None, None) when n == 0.
    """
    if n <= 0:
        return (None, None)
    z = float(norm.ppf(1 - (1 - confidence_level) / 2))
    p = events / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def mortality_table(
    cohort: pl.DataFrame, horizons_days: tuple[float, ...], confidence_level: float = 0.95
) -> pl.DataFrame:
    """Crude mortality at each horizon per exposure, vasst_stratum and timing_class.

    One row per (grouping, group, horizon_days). Denominator: patients whose outcome at the
    horizon is known (``death_<h>d`` not null; follow-up ended earlier without death -> excluded,
    counted in ``n_unknown``). Columns: grouping, group, horizon_days, n, deaths, n_unknown,
    mortality, ci_low, ci_high (proportions, Wilson interval).
    """
    rows = []
    groupings = {"overall": pl.lit("all"), "exposure": pl.col("exposure"),
                 "vasst_stratum": pl.col("vasst_stratum"), "timing_class": pl.col("timing_class")}
    for h in horizons_days:
        col = f"death_{int(h)}d"
        if col in cohort.columns:
            known = pl.col(col)
        else:  # horizon without a cohort flag: derive from the times (same rule as the cohort)
            surv = survival_from(cohort, "index_time", h)
            cohort = cohort.with_columns(
                pl.when(surv["event"] == 1).then(True)
                .when(surv["time_days"] >= h).then(False).otherwise(None).alias(col)
            )
            known = pl.col(col)
        for name, expr in groupings.items():
            g = (
                cohort.with_columns(group=expr)
                .filter(pl.col("group").is_not_null())
                .group_by("group")
                .agg(
                    n=known.is_not_null().sum(),
                    deaths=known.fill_null(False).sum(),
                    n_unknown=known.is_null().sum(),
                )
                .sort("group")
            )
            for r in g.iter_rows(named=True):
                lo, hi = wilson_ci(int(r["deaths"]), int(r["n"]), confidence_level)
                rows.append({
                    "grouping": name, "group": r["group"], "horizon_days": float(h),
                    "n": int(r["n"]), "deaths": int(r["deaths"]), "n_unknown": int(r["n_unknown"]),
                    "mortality": r["deaths"] / r["n"] if r["n"] else None,
                    "ci_low": lo, "ci_high": hi,
                })
    schema = {"grouping": pl.String, "group": pl.String, "horizon_days": pl.Float64, "n": pl.Int64,
              "deaths": pl.Int64, "n_unknown": pl.Int64, "mortality": pl.Float64,
              "ci_low": pl.Float64, "ci_high": pl.Float64}
    return pl.DataFrame(rows, schema=schema)


@dataclass(frozen=True)
class KaplanMeierResult:
    """KM curves of one grouping (descriptive: no test; issue 12).

    ``curves``: grouping, group, time_days, survival, ci_low, ci_high (step function, one row per
    distinct time). ``at_risk``: grouping, group, time_days, n_at_risk, survival at fixed times.
    ``estimable`` is False when fewer than two groups reach ``min_patients_per_group``.
    ``estimand`` and ``caption`` (why the comparison is not an effect) come from the caller.
    """

    grouping: str
    horizon_days: float
    estimable: bool
    reason: str
    curves: pl.DataFrame
    at_risk: pl.DataFrame
    estimand: str = ""
    caption: str = ""

    def to_dict(self) -> dict:
        return {"grouping": self.grouping, "horizon_days": self.horizon_days,
                "estimable": self.estimable, "reason": self.reason, "role": "descriptive",
                "estimand": self.estimand, "caption": self.caption, "bias_note": self.caption}


def kaplan_meier(
    frame: pl.DataFrame, grouping: str, at_risk_days: tuple[float, ...], horizon_days: float,
    min_patients_per_group: int, confidence_level: float = 0.95, time_zero_col: str = "index_time",
    estimand: str = "", caption: str = "",
) -> KaplanMeierResult:
    """KM survival per level of ``grouping`` (rows with a null group are left out), censored at
    ``horizon_days``. No log-rank test: these curves are descriptive (issue 12); ``estimand``
    and ``caption`` say what they show and why they are not an effect of VP."""
    surv = survival_from(frame, time_zero_col, horizon_days).filter(pl.col(grouping).is_not_null())
    curve_rows: list[dict] = []
    risk_rows: list[dict] = []
    kept = []
    for group in sorted(surv[grouping].unique().to_list()):
        g = surv.filter(pl.col(grouping) == group)
        kmf = KaplanMeierFitter(alpha=1 - confidence_level)
        kmf.fit(g["time_days"].to_numpy(), g["event"].to_numpy(), label=str(group))
        sf = kmf.survival_function_.iloc[:, 0]
        ci = kmf.confidence_interval_survival_function_
        for t, s, lo, hi in zip(sf.index, sf.values, ci.iloc[:, 0].values, ci.iloc[:, 1].values):
            curve_rows.append({"grouping": grouping, "group": str(group), "time_days": float(t),
                               "survival": float(s), "ci_low": float(lo), "ci_high": float(hi)})
        times = g["time_days"].to_numpy()
        for t in at_risk_days:
            if t > horizon_days:
                continue
            risk_rows.append({"grouping": grouping, "group": str(group), "time_days": float(t),
                              "n_at_risk": int((times >= t).sum()) if t > 0 else int(times.size),
                              "survival": float(kmf.predict(t))})
        if g.height >= min_patients_per_group:
            kept.append(group)
    curves = pl.DataFrame(curve_rows, schema={"grouping": pl.String, "group": pl.String,
                          "time_days": pl.Float64, "survival": pl.Float64,
                          "ci_low": pl.Float64, "ci_high": pl.Float64})
    at_risk = pl.DataFrame(risk_rows, schema={"grouping": pl.String, "group": pl.String,
                           "time_days": pl.Float64, "n_at_risk": pl.Int64, "survival": pl.Float64})
    reason = f"fewer than 2 groups with >= {min_patients_per_group} patients" if len(kept) < 2 else ""
    return KaplanMeierResult(grouping, horizon_days, not reason, reason, curves, at_risk,
                             estimand, caption)


def median_followup_days(frame: pl.DataFrame) -> dict:
    """Median potential follow-up by reverse Kaplan-Meier (Schemper M, Smith TL. Control Clin
    Trials 1996;17:343-346): censoring is the "event", death censors. Days from index_time."""
    surv = survival_from(frame, "index_time", None)
    if surv.height == 0:
        return {"median_days": None, "n": 0}
    kmf = KaplanMeierFitter().fit(surv["time_days"].to_numpy(), 1 - surv["event"].to_numpy())
    med = float(kmf.median_survival_time_)
    return {"median_days": med if np.isfinite(med) else None, "n": surv.height,
            "method": "reverse Kaplan-Meier (Schemper & Smith 1996)"}

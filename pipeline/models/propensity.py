"""Confounding by indication: delayed vs earlier VP start among vp_added.

Treatment = timing_class "delayed" (NE > 0.5 mcg/kg/min or > 35 mcg/min at VP start) vs any
earlier class. Propensity = P(delayed | pre-VP covariates), logistic (statsmodels GLM).
Weights (``[models].weighting``): "overlap" (treated 1 - ps, control ps; Li, Morgan & Zaslavsky
2018) or "iptw" (stabilised: P(T)/ps, (1 - P(T))/(1 - ps)). Balance: standardised mean
differences before/after weighting with the unweighted pooled SD as denominator (Austin 2009).
Outcome: weighted Cox from VP start (time zero shared by both groups: no immortal time between
index and VP enters the comparison), robust SEs clustered on patient.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import statsmodels.api as sm

from pipeline.models.cox import complete_cases, fit_cox
from pipeline.models.data import survival_from
from pipeline.models.results import ModelResult
from pipeline.models.settings import ModelSettings


@dataclass(frozen=True)
class PropensityResult:
    """Weights, balance table and weighted Cox results of the delayed-VP comparison.

    ``balance``: covariate, smd_unweighted, smd_weighted, is_balanced (|smd_weighted| below the
    threshold). ``models``: weighted Cox per horizon; ``unweighted``: crude Cox per horizon.
    """

    estimable: bool
    reason: str
    weighting: str
    n: int
    n_treated: int
    balance: pl.DataFrame
    models: tuple[ModelResult, ...]
    unweighted: tuple[ModelResult, ...]
    ps_min: float | None = None
    ps_max: float | None = None

    def to_dict(self) -> dict:
        return {
            "estimable": self.estimable, "reason": self.reason, "weighting": self.weighting,
            "n": self.n, "n_treated": self.n_treated, "ps_min": self.ps_min, "ps_max": self.ps_max,
            "max_abs_smd_weighted": (float(self.balance["smd_weighted"].abs().max())
                                     if self.balance.height else None),
            "balance": self.balance.to_dicts(),
            "weighted": {m.name: m.to_dict() for m in self.models},
            "unweighted": {m.name: m.to_dict() for m in self.unweighted},
        }


def smd(x: np.ndarray, treated: np.ndarray, w: np.ndarray | None = None) -> float:
    """Standardised mean difference treated - control; denominator: unweighted pooled SD
    sqrt((var_t + var_c) / 2) so that before/after values are on one scale (Austin 2009)."""
    t, c = treated == 1, treated == 0
    sd = np.sqrt((np.var(x[t], ddof=1) + np.var(x[c], ddof=1)) / 2)
    if w is None:
        w = np.ones_like(x, dtype=float)
    diff = np.average(x[t], weights=w[t]) - np.average(x[c], weights=w[c])
    return float(diff / sd) if sd > 0 else 0.0


def propensity_weights(ps: np.ndarray, treated: np.ndarray, weighting: str) -> np.ndarray:
    if weighting == "overlap":
        return np.where(treated == 1, 1 - ps, ps)
    p_t = treated.mean()
    return np.where(treated == 1, p_t / ps, (1 - p_t) / (1 - ps))


def delayed_vp_analysis(cohort: pl.DataFrame, settings: ModelSettings) -> PropensityResult:
    base = cohort.filter((pl.col("exposure") == "vp_added") & pl.col("timing_class").is_not_null()).with_columns(
        is_delayed=(pl.col("timing_class") == "delayed").cast(pl.Int8)
    )
    cc, dropped, kept = complete_cases(base, settings.propensity_covariates)
    n, n_t = cc.height, int(cc["is_delayed"].sum()) if cc.height else 0
    empty = pl.DataFrame(schema={"covariate": pl.String, "smd_unweighted": pl.Float64,
                                 "smd_weighted": pl.Float64, "is_balanced": pl.Boolean})
    need = settings.min_patients_per_group
    if n_t < need or n - n_t < need:
        return PropensityResult(False, f"{n_t} delayed / {n - n_t} earlier patients with complete "
                                f"covariates (< {need} per group)", settings.weighting, n, n_t, empty, (), ())
    X = sm.add_constant(cc.select(kept).cast(pl.Float64).to_numpy(), has_constant="add")
    y = cc["is_delayed"].to_numpy()
    try:
        fit = sm.GLM(y, X, family=sm.families.Binomial()).fit()
    except (np.linalg.LinAlgError, ValueError) as exc:
        return PropensityResult(False, f"propensity model failed: {exc}", settings.weighting, n, n_t, empty, (), ())
    ps = np.clip(fit.predict(X), 1e-6, 1 - 1e-6)
    w = propensity_weights(ps, y, settings.weighting)
    rows = []
    for i, c in enumerate(kept):
        x = X[:, i + 1]
        before, after = smd(x, y), smd(x, y, w)
        rows.append({"covariate": c, "smd_unweighted": before, "smd_weighted": after,
                     "is_balanced": abs(after) < settings.smd_balance_threshold})
    balance = pl.DataFrame(rows, schema=empty.schema)
    weighted = cc.with_columns(ps=pl.Series(ps), ps_weight=pl.Series(w))
    models, crude = [], []
    for h in settings.horizons_days:
        surv = survival_from(weighted, "vp_start_time", h)
        common = dict(contrast="delayed vs earlier VP start (among vp_added, from VP start)",
                      exposure_col="is_delayed", covariates=(), settings=settings)
        models.append(fit_cox(surv, name=f"delayed_vp.weighted.{int(h)}d",
                              label=f"Delayed VP, {settings.weighting}-weighted, {int(h)}-day",
                              weight_col="ps_weight", **common)
                      .with_details(horizon_days=h, weighting=settings.weighting,
                                    n_dropped_missing_ps=dropped))
        crude.append(fit_cox(surv, name=f"delayed_vp.unweighted.{int(h)}d",
                             label=f"Delayed VP, unweighted, {int(h)}-day", **common)
                     .with_details(horizon_days=h))
    return PropensityResult(True, "", settings.weighting, n, n_t, balance, tuple(models), tuple(crude),
                            float(ps.min()), float(ps.max()))

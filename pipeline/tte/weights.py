"""Inverse probability of censoring weights (clone-censor-weight; Maringe et al. 2020).

The probability of starting VP in hour h, p_h, comes from one pooled logistic model
(statsmodels GLM, binomial) fitted on the person-hours at risk of a first VP start (no VP
before) with NE running, given the time-updated NE dose (log and linear), MAP and lactate (when
assessable), other vasopressors, hours since time zero and the baseline covariates
(``TteData.design``). Hours with NE off use the observed share of VP starts among such hours
(none in a source where VP is only added to NE: then p = 0 there, and "no start" is certain).

A clone's weight at hour h is the product over its hours k <= h of 1 / P(the action the strategy
requires at k): 1 / (1 - p_k) for a forbidden start, 1 / p_k for a required one, 1 otherwise.
"""

from __future__ import annotations

import warnings

import numpy as np

from pipeline.tte.data import TteData
from pipeline.tte.strategies import MUST, MUST_NOT

P_FLOOR = 1e-6  # keeps 1/p finite; a p this small is a positivity failure reported elsewhere


class CensoringModelError(ValueError):
    """The VP initiation model cannot be fitted (reason in the message)."""


def newton_logistic(x: np.ndarray, y: np.ndarray, w: np.ndarray, start: np.ndarray,
                    tol: float = 1e-10, max_iter: int = 50) -> np.ndarray:
    """Maximum-likelihood logistic coefficients by Newton-Raphson (frequency weights ``w``),
    from ``start``. The same estimator as statsmodels' GLM (tests check the coefficients agree);
    used for the bootstrap replicates, warm-started at the point estimate, because it forms
    only the k x k information matrix per iteration (statsmodels' IRLS solves an N x k least
    squares problem per iteration: ~10x slower on a million person-hours)."""
    beta = start.astype(float).copy()
    for _ in range(max_iter):
        eta = x @ beta
        mu = 1.0 / (1.0 + np.exp(-eta))
        score = x.T @ (w * (y - mu))
        info = (x * (w * mu * (1.0 - mu))[:, None]).T @ x
        try:
            step = np.linalg.solve(info, score)
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(info, score, rcond=None)[0]
        beta += step
        if not np.all(np.isfinite(beta)):
            raise CensoringModelError("the VP initiation model did not converge")
        if np.max(np.abs(step)) < tol * (1.0 + np.max(np.abs(beta))):
            return beta
    raise CensoringModelError("the VP initiation model did not converge")


def fit_start_probability(data: TteData, mult: np.ndarray | None = None, min_starts: int = 1,
                          start: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(R,) fitted probability of a VP start in each person-hour (nan after VP started) and the
    coefficients. ``mult``: (n,) bootstrap multiplicity of each patient (None = 1 each).
    ``start``: coefficients to warm-start Newton-Raphson from (bootstrap replicates); None =
    fit with statsmodels' GLM (the point estimate)."""
    w_row = np.ones(len(data.row_pid)) if mult is None else mult[data.row_pid].astype(float)
    cand = ~data.has_vp_before & (w_row > 0)
    on = cand & (data.ne_rate > 0)
    off = cand & (data.ne_rate <= 0)
    p = np.full(len(data.row_pid), np.nan)
    y = data.is_vp_start[on].astype(float)
    n_starts = float((y * w_row[on]).sum())
    if n_starts < min_starts:
        raise CensoringModelError(f"{int(n_starts)} VP starts while on NE (the model needs >= {min_starts})")
    if n_starts >= w_row[on].sum():
        raise CensoringModelError("every hour at risk has a VP start (no variation to model)")
    x = data.design[on]
    keep = np.ptp(x, axis=0) > 0
    keep[0] = True  # intercept
    beta = np.zeros(x.shape[1])
    if start is None:
        from statsmodels.genmod import families
        from statsmodels.genmod.generalized_linear_model import GLM

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                # Newton-Raphson first (cheap); statsmodels' IRLS then confirms the maximum in
                # one or two iterations instead of ~9 from its own start
                with np.errstate(over="ignore"):
                    try:
                        warm = newton_logistic(x[:, keep], y, w_row[on], np.zeros(int(keep.sum())))
                    except CensoringModelError:
                        warm = None
                res = GLM(y, x[:, keep], family=families.Binomial(), freq_weights=w_row[on]).fit(start_params=warm)
            except Exception as exc:  # statsmodels raises several types (separation, linalg)
                raise CensoringModelError(f"the VP initiation model did not fit ({type(exc).__name__})") from None
        beta[keep] = res.params
    else:
        with np.errstate(over="ignore"):
            beta[keep] = newton_logistic(x[:, keep], y, w_row[on], start[keep])
    if not np.all(np.isfinite(beta)):
        raise CensoringModelError("the VP initiation model did not converge")
    cand_all = ~data.has_vp_before
    on_all = cand_all & (data.ne_rate > 0)
    p[on_all] = 1.0 / (1.0 + np.exp(-(data.design[on_all] @ beta)))
    off_all = cand_all & (data.ne_rate <= 0)
    if off_all.any():
        w_off = w_row[off]
        share = float((data.is_vp_start[off] * w_off).sum() / w_off.sum()) if w_off.sum() > 0 else 0.0
        p[off_all] = share
    return p, beta


def cumulative_weights(data: TteData, kind: np.ndarray, p: np.ndarray) -> np.ndarray:
    """(R,) the clone's cumulative inverse probability of remaining uncensored through each
    hour (meaningful on the hours it is at risk)."""
    pc = np.clip(np.nan_to_num(p, nan=0.5), P_FLOOR, 1.0 - P_FLOOR)
    logw = np.where(kind == MUST_NOT, -np.log1p(-pc), np.where(kind == MUST, -np.log(pc), 0.0))
    cs = np.cumsum(logw)
    # grouped cumulative sum: subtract the total before each patient's first row
    before = np.concatenate([[0.0], cs])[data.row_start[data.row_pid]]
    return np.exp(cs - before)

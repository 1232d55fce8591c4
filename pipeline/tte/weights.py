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
from dataclasses import dataclass

import numpy as np

from pipeline.tte.data import TteData
from pipeline.tte.strategies import MUST, MUST_NOT

P_FLOOR = 1e-6  # keeps 1/p finite; a p this small is a positivity failure reported elsewhere


class CensoringModelError(ValueError):
    """The VP initiation model cannot be fitted (reason in the message)."""


BLOCK_ROWS = 8192  # rows per block of the Newton-Raphson sums (a block stays in the CPU cache)


def _sigmoid(eta: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-eta)), in place."""
    np.negative(eta, out=eta)
    np.exp(eta, out=eta)
    eta += 1.0
    return np.reciprocal(eta, out=eta)


def linear_predictor(x: np.ndarray, beta: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """x[rows] @ beta, by blocks of rows (see ``newton_logistic``; no copy of x[rows])."""
    out = np.empty(len(rows))
    for a in range(0, len(rows), BLOCK_ROWS):
        np.matmul(x[rows[a:a + BLOCK_ROWS]], beta, out=out[a:a + BLOCK_ROWS])
    return out


def newton_logistic(x: np.ndarray, y: np.ndarray, w: np.ndarray, start: np.ndarray,
                    tol: float = 1e-10, max_iter: int = 50) -> np.ndarray:
    """Maximum-likelihood logistic coefficients by Newton-Raphson (frequency weights ``w``),
    from ``start``. The same estimator as statsmodels' GLM (tests check the coefficients agree);
    used for the bootstrap replicates, warm-started at the point estimate, because it forms
    only the k x k information matrix per iteration (statsmodels' IRLS solves an N x k least
    squares problem per iteration: ~10x slower on a million person-hours).

    The score and information are summed over blocks of BLOCK_ROWS rows, each read from memory
    once per iteration and kept in the cache for the three products (a whole-array pass reads
    the million-row matrix three times per iteration), and each block's products are small
    enough for a single BLAS thread: with two bootstrap workers on two cores a multithreaded
    BLAS call oversubscribes the cores (measured 3x slower per iteration under load). The
    information block is (x sqrt(v))' (x sqrt(v)), a symmetric rank-k update."""
    beta = start.astype(float).copy()
    k = x.shape[1]
    for _ in range(max_iter):
        score = np.zeros(k)
        info = np.zeros((k, k))
        for a in range(0, len(x), BLOCK_ROWS):
            xb, wb = x[a:a + BLOCK_ROWS], w[a:a + BLOCK_ROWS]
            mu = _sigmoid(xb @ beta)
            score += xb.T @ (wb * (y[a:a + BLOCK_ROWS] - mu))
            v = np.sqrt(wb * mu * (1.0 - mu))
            xs = xb * v[:, None]
            info += xs.T @ xs
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


@dataclass(frozen=True)
class StartRows:
    """The person-hours of the VP initiation model, which do not depend on the bootstrap sample:
    taken once (``start_rows``) so that a replicate only selects its patients' rows."""

    on: np.ndarray  # rows at risk of a first VP start with NE running
    on_y: np.ndarray  # 1.0 = VP started in the hour
    on_pid: np.ndarray  # their patients
    off: np.ndarray  # rows at risk of a first VP start with NE off
    off_y: np.ndarray
    off_pid: np.ndarray


def start_rows(data: TteData) -> StartRows:
    cand = ~data.has_vp_before
    on = np.flatnonzero(cand & (data.ne_rate > 0))
    off = np.flatnonzero(cand & (data.ne_rate <= 0))
    return StartRows(on=on, on_y=data.is_vp_start[on].astype(float), on_pid=data.row_pid[on],
                     off=off, off_y=data.is_vp_start[off].astype(float), off_pid=data.row_pid[off])


def fit_start_probability(data: TteData, mult: np.ndarray | None = None, min_starts: int = 1,
                          start: np.ndarray | None = None,
                          rows: StartRows | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(R,) fitted probability of a VP start in each person-hour (nan after VP started) and the
    coefficients. ``mult``: (n,) bootstrap multiplicity of each patient (None = 1 each).
    ``start``: coefficients to warm-start Newton-Raphson from (bootstrap replicates); None =
    fit with statsmodels' GLM (the point estimate). ``rows``: ``start_rows(data)`` if already
    taken."""
    rows = start_rows(data) if rows is None else rows
    w_all = np.ones(len(rows.on)) if mult is None else mult[rows.on_pid].astype(float)
    sample = w_all > 0  # the person-hours of the patients in the sample
    if sample.all():
        x, y, w_on = data.design[rows.on], rows.on_y, w_all
    else:
        x, y, w_on = data.design[rows.on[sample]], rows.on_y[sample], w_all[sample]
    n_starts = float((y * w_on).sum())
    if n_starts < min_starts:
        raise CensoringModelError(f"{int(n_starts)} VP starts while on NE (the model needs >= {min_starts})")
    if n_starts >= w_on.sum():
        raise CensoringModelError("every hour at risk has a VP start (no variation to model)")
    keep = np.ptp(x, axis=0) > 0
    keep[0] = True  # intercept
    xk = x if keep.all() else x[:, keep]
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
                        warm = newton_logistic(xk, y, w_on, np.zeros(int(keep.sum())))
                    except CensoringModelError:
                        warm = None
                res = GLM(y, xk, family=families.Binomial(), freq_weights=w_on).fit(start_params=warm)
            except Exception as exc:  # statsmodels raises several types (separation, linalg)
                raise CensoringModelError(f"the VP initiation model did not fit ({type(exc).__name__})") from None
        beta[keep] = res.params
    else:
        with np.errstate(over="ignore"):
            beta[keep] = newton_logistic(xk, y, w_on, start[keep])
    if not np.all(np.isfinite(beta)):
        raise CensoringModelError("the VP initiation model did not converge")
    p = np.full(len(data.row_pid), np.nan)
    p[rows.on] = _sigmoid(linear_predictor(data.design, beta, rows.on))
    if len(rows.off):
        w_off = np.ones(len(rows.off)) if mult is None else mult[rows.off_pid].astype(float)
        share = float((rows.off_y * w_off).sum() / w_off.sum()) if w_off.sum() > 0 else 0.0
        p[rows.off] = share
    return p, beta


def log_factors(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(R,) log inverse probabilities of the two constrained actions: -log(1 - p) (no start, for
    a forbidden start) and -log(p) (a start, for a required one); p clipped to [P_FLOOR,
    1 - P_FLOOR], nan (VP already started: no constraint) read as 0.5."""
    pc = np.clip(np.nan_to_num(p, nan=0.5), P_FLOOR, 1.0 - P_FLOOR)
    return -np.log1p(-pc), -np.log(pc)


def cumulative_weights(data: TteData, kind: np.ndarray, p: np.ndarray,
                       factors: tuple[np.ndarray, np.ndarray] | None = None,
                       rows: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """(R,) the clone's cumulative inverse probability of remaining uncensored through each
    hour (meaningful on the hours it is at risk). ``factors``: ``log_factors(p)`` if already
    computed (they are shared by every strategy); ``rows``: ``constrained_rows(kind)`` if
    already taken (they do not depend on the bootstrap sample)."""
    no_start, start = log_factors(p) if factors is None else factors
    must_not, must = constrained_rows(kind) if rows is None else rows
    logw = np.where(must_not, no_start, 0.0)
    logw[must] = start[must]
    np.cumsum(logw, out=logw)
    # grouped cumulative sum: subtract the total before each patient's first row
    first = data.row_start
    before = np.zeros(len(first))
    inside = (first > 0) & (first <= len(logw))
    before[inside] = logw[first[inside] - 1]
    logw -= np.repeat(before, np.diff(np.append(first, len(logw))))
    return np.exp(logw, out=logw)


def constrained_rows(kind: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(R,) bool rows where a start is forbidden, and the indices of the rows where one is
    required, of a strategy's row kinds."""
    return kind == MUST_NOT, np.flatnonzero(kind == MUST)

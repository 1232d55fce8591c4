"""Logistic regression by Newton-Raphson with cluster-robust (CRV1) standard errors, for the
pooled logistic models of the hourly panel (pipeline.models.panel).

Why not statsmodels ``Logit(...).fit(cov_type="cluster")``, which gives the same numbers (checked
to 1e-8 in tests/models/test_logit.py): on the 1.05M-row time-updated panel of 30k stays it took
5.5 s of CPU per fit, and the analyze step runs eleven such fits. Per Newton iteration statsmodels
evaluates the log-likelihood, the score and the Hessian separately (three passes of X @ b and a
(k, n) temporary for the Hessian), checks the rank of X with an SVD first and starts every
coefficient at zero (13 iterations where the events are rare). Here each iteration is one pass:
X @ b, the score and the weighted cross-product, accumulated over row blocks so the memory is
bounded by the block, not the panel. A step that would lower the likelihood is halved (plain
Newton diverged on one simulated panel where statsmodels happened to converge).

The estimator is the same maximum-likelihood fit and the same sandwich: Hessian^-1 S Hessian^-1,
S = sum over clusters of the cluster's summed score outer product, times the small-sample factor
G/(G-1) x (N-1)/(N-K) (statsmodels' default for ``cov_type="cluster"``; Cameron AC, Miller DL.
J Hum Resour 2015;50:317-372, CRV1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit
from scipy.stats import norm

# Added to the Hessian's diagonal in each Newton step (statsmodels' ``ridge_factor`` default):
# keeps a step defined when two columns are nearly collinear; the covariance uses the plain Hessian.
RIDGE = 1e-10
# Step halvings tried before a Newton step is taken as it is.
MAX_HALVINGS = 30
# Rows per block of the Hessian/score accumulation: bounds the temporary to block x k floats
# (~40 MB at k = 20) whatever the number of panel rows.
BLOCK_ROWS = 262_144


@dataclass(frozen=True)
class LogitFit:
    params: np.ndarray
    bse: np.ndarray
    pvalues: np.ndarray
    cov: np.ndarray
    iterations: int
    converged: bool


def _loglik_score_hessian(y: np.ndarray, X: np.ndarray, b: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Log-likelihood, score and Hessian (negated) at ``b``: one pass over the rows, in blocks."""
    k = X.shape[1]
    ll, grad, hess = 0.0, np.zeros(k), np.zeros((k, k))
    for lo in range(0, X.shape[0], BLOCK_ROWS):
        xb, yb = X[lo:lo + BLOCK_ROWS], y[lo:lo + BLOCK_ROWS]
        eta = xb @ b
        mu = expit(eta)
        ll += float(yb @ eta - np.logaddexp(0.0, eta).sum())
        grad += xb.T @ (yb - mu)
        xw = xb * np.sqrt(mu * (1.0 - mu))[:, None]
        hess += xw.T @ xw
    return ll, grad, hess


def fit_logit_clustered(y: np.ndarray, X: np.ndarray, groups: np.ndarray, *, maxiter: int = 50,
                        tol: float = 1e-8) -> LogitFit:
    """Maximum-likelihood logistic regression of 0/1 ``y`` on ``X`` (first column the intercept),
    Newton-Raphson from zero until no coefficient moves by more than ``tol`` (statsmodels' start
    and criterion), and the CRV1 cluster-robust covariance by ``groups`` (integer labels). A step
    that lowers the log-likelihood is halved until it does not (plain Newton can overshoot and
    diverge on badly scaled columns; the maximum is the same). Raises
    ``numpy.linalg.LinAlgError`` when the Hessian is singular."""
    y = np.asarray(y, dtype=float)
    X = np.ascontiguousarray(X, dtype=float)
    n, k = X.shape
    b = np.zeros(k)
    ll, grad, hess = _loglik_score_hessian(y, X, b)
    converged, iterations = False, 0
    for iterations in range(1, maxiter + 1):
        hess[np.diag_indices(k)] += RIDGE  # as statsmodels' Newton does
        step = np.linalg.solve(hess, grad)
        for _ in range(MAX_HALVINGS):
            new_ll, new_grad, new_hess = _loglik_score_hessian(y, X, b + step)
            if np.isfinite(new_ll) and new_ll >= ll - 1e-12 * abs(ll):
                break
            step = step / 2.0
        b, ll, grad, hess = b + step, new_ll, new_grad, new_hess
        if not np.all(np.isfinite(b)):
            break
        if np.max(np.abs(step)) <= tol:
            converged = True
            break
    # The sandwich at the final estimate: the bread is the inverse Hessian there.
    bread = np.linalg.inv(hess)
    _, g = np.unique(np.asarray(groups), return_inverse=True)
    n_groups = int(g.max()) + 1 if n else 0
    # Each cluster's summed score (a cluster may span row blocks), then their cross-product.
    cluster_scores = np.zeros((n_groups, k))
    for lo in range(0, n, BLOCK_ROWS):
        xb = X[lo:lo + BLOCK_ROWS]
        resid = y[lo:lo + BLOCK_ROWS] - expit(xb @ b)
        gb = g[lo:lo + BLOCK_ROWS]
        for j in range(k):
            cluster_scores[:, j] += np.bincount(gb, weights=xb[:, j] * resid, minlength=n_groups)
    meat = cluster_scores.T @ cluster_scores
    correction = (n_groups / (n_groups - 1.0)) * ((n - 1.0) / (n - k)) if n_groups > 1 and n > k else np.nan
    cov = bread @ meat @ bread * correction
    bse = np.sqrt(np.diag(cov))
    with np.errstate(divide="ignore", invalid="ignore"):
        pvalues = 2.0 * norm.sf(np.abs(b / bse))
    return LogitFit(params=b, bse=bse, pvalues=pvalues, cov=cov, iterations=iterations, converged=converged)

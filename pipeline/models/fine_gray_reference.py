"""The Fine-Gray fit as it was before issue 16 (a loop over event times with an n-vector of
risk-set weights each: O(E x n) time and memory), kept verbatim as the reference that the linear
``pipeline.models.competing.fine_gray_fit`` is checked against (tests/models/test_fine_gray_linear.py
and benchmarks/bench_cox.py)."""

from __future__ import annotations

import numpy as np

from pipeline.models.competing import _g_before, censoring_survival


def fine_gray_fit_loop(
    X: np.ndarray, time: np.ndarray, status: np.ndarray, failcode: int = 1,
    max_iter: int = 50, tol: float = 1e-9,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The same estimator as ``competing.fine_gray_fit`` (see its docstring), written as the
    direct definition: one pass over all patients at every event time."""
    X = np.asarray(X, dtype=float)
    n, p = X.shape
    cens_times, g_after = censoring_survival(time, status)
    g_ti = _g_before(time, cens_times, g_after)
    competing = (status != failcode) & (status != 0)
    is_event = status == failcode
    event_times = np.unique(time[is_event])
    d = np.array([(is_event & (time == t)).sum() for t in event_times], dtype=float)
    sum_x_events = np.array([X[is_event & (time == t)].sum(axis=0) for t in event_times])
    g_tj = _g_before(event_times, cens_times, g_after)

    def risk_weights(j: int) -> np.ndarray:
        t = event_times[j]
        w = (time >= t).astype(float)
        late = competing & (time < t)
        w[late] = g_tj[j] / g_ti[late]
        return w

    weights = [risk_weights(j) for j in range(event_times.size)]
    beta = np.zeros(p)
    for _ in range(max_iter):
        r = np.exp(X @ beta)
        score, info = np.zeros(p), np.zeros((p, p))
        for j, w in enumerate(weights):
            wr = w * r
            s0 = wr.sum()
            s1 = wr @ X
            s2 = (X * wr[:, None]).T @ X
            xbar = s1 / s0
            score += sum_x_events[j] - d[j] * xbar
            info += d[j] * (s2 / s0 - np.outer(xbar, xbar))
        step = np.linalg.solve(info, score)
        beta = beta + step
        if np.max(np.abs(step)) < tol:
            break
    else:
        raise np.linalg.LinAlgError("Fine-Gray Newton-Raphson did not converge")
    r = np.exp(X @ beta)
    resid = np.zeros((n, p))
    info = np.zeros((p, p))
    for j, w in enumerate(weights):
        wr = w * r
        s0 = wr.sum()
        xbar = (wr @ X) / s0
        info += d[j] * (((X * wr[:, None]).T @ X) / s0 - np.outer(xbar, xbar))
        at = is_event & (time == event_times[j])
        resid[at] += X[at] - xbar
        resid -= (d[j] * wr / s0)[:, None] * (X - xbar)
    inv = np.linalg.inv(info)
    cov = inv @ (resid.T @ resid) @ inv
    return beta, np.sqrt(np.diag(cov)), cov

"""The linear Fine-Gray fit (issue 16) against the loop over event times it replaced
(pipeline.models.fine_gray_reference), on data with tied times across causes and censoring, a
binary and a continuous covariate: coefficients, robust SEs and covariance to 1e-10."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.models.competing import fine_gray_fit
from pipeline.models.fine_gray_reference import fine_gray_fit_loop


def _world(n: int, seed: int, censoring: bool = True, competing: bool = True):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2, n)
    z = rng.normal(50, 10, n)
    t1 = rng.exponential(1 / (0.3 * np.exp(0.5 * x + 0.02 * (z - 50))))
    t2 = rng.exponential(1 / 0.4, n) if competing else np.full(n, np.inf)
    c = rng.uniform(0, 4, n) if censoring else np.full(n, np.inf)
    t = np.minimum(np.minimum(t1, t2), c)
    status = np.where(t == c, 0, np.where(t1 <= t2, 1, 2))
    t = np.round(t, 1) + 0.1  # a 0.1-day grid: ties within and across causes and censoring
    return np.c_[x, z], t, status


@pytest.mark.parametrize("n, seed, censoring, competing", [
    (40, 1, True, True), (400, 2, True, True), (1500, 3, True, True),
    (300, 4, False, True), (300, 5, True, False),
])
def test_linear_fine_gray_equals_the_event_time_loop(n, seed, censoring, competing):
    X, t, status = _world(n, seed, censoring, competing)
    assert (status == 1).sum() > len(np.unique(t[status == 1]))  # tied events of interest
    beta0, se0, cov0 = fine_gray_fit_loop(X, t, status)
    beta1, se1, cov1 = fine_gray_fit(X, t, status)
    np.testing.assert_allclose(beta1, beta0, rtol=0, atol=1e-10)
    np.testing.assert_allclose(se1, se0, rtol=1e-10, atol=0)
    np.testing.assert_allclose(cov1, cov0, rtol=0, atol=1e-12)


def test_competing_weights_matter_in_these_data():
    """Treating competing events as censored (cause-specific) gives a different answer, so the
    comparison above exercises the G(t-)/G(T_i-) terms."""
    X, t, status = _world(400, 2)
    beta_fg, _, _ = fine_gray_fit(X, t, status)
    beta_cs, _, _ = fine_gray_fit(X, t, np.where(status == 2, 0, status))
    assert np.abs(beta_fg - beta_cs).max() > 0.01

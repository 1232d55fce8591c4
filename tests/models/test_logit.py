"""The panel models' logistic fit (pipeline.models.logit) is statsmodels' Logit with CRV1
cluster-robust SEs, computed in one pass per Newton step (issue 16): the same numbers, checked
here against statsmodels itself, including clusters that span the row blocks."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm

from pipeline.models import logit


def _data(seed: int, n: int, n_groups: int, base: float):
    rng = np.random.default_rng(seed)
    X = np.column_stack([np.ones(n), rng.binomial(1, 0.3, n), rng.normal(size=(n, 4)),
                         rng.normal(size=n) * 30.0])  # one badly scaled column
    g = np.sort(rng.integers(0, n_groups, n))  # patients' rows are contiguous, as in the panel
    eta = base + 0.4 * X[:, 1] + X[:, 2:6] @ np.array([0.3, -0.2, 0.1, 0.0]) + 0.01 * X[:, 6] \
        + rng.normal(0, 0.8, n_groups)[g]
    y = rng.binomial(1, 1 / (1 + np.exp(-eta))).astype(float)
    return y, X, g


@pytest.mark.parametrize("seed,base", [(1, -4.0), (2, -1.0)])
def test_estimates_and_cluster_robust_ses_equal_statsmodels(seed, base, monkeypatch):
    y, X, g = _data(seed, 40_000, 3_000, base)
    ref = sm.Logit(y, X).fit(disp=0, maxiter=50, cov_type="cluster", cov_kwds={"groups": g})
    monkeypatch.setattr(logit, "BLOCK_ROWS", 7_001)  # clusters straddle the blocks
    fit = logit.fit_logit_clustered(y, X, g)
    assert fit.converged
    np.testing.assert_allclose(fit.params, ref.params, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(fit.bse, ref.bse, rtol=1e-8)
    np.testing.assert_allclose(fit.pvalues, ref.pvalues, rtol=1e-6, atol=1e-12)


def test_the_clusters_matter(monkeypatch):
    """Relabelling rows as their own clusters changes the SEs: the grouping is really used."""
    y, X, g = _data(3, 20_000, 1_000, -2.0)
    by_patient = logit.fit_logit_clustered(y, X, g)
    by_row = logit.fit_logit_clustered(y, X, np.arange(len(y)))
    ref = sm.Logit(y, X).fit(disp=0, cov_type="cluster", cov_kwds={"groups": np.arange(len(y))})
    np.testing.assert_allclose(by_row.bse, ref.bse, rtol=1e-8)
    assert not np.allclose(by_patient.bse, by_row.bse, rtol=1e-3)

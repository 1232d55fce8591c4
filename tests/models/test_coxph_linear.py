"""LinearCoxPHFitter against lifelines' own CoxPHFitter code path (issue 16 item 2: every
replacement checked against the current estimates before switching).

The data have tied event times (several deaths at one time, so Efron's correction is active),
censored rows tied with deaths, two strata columns, non-integer case weights and clusters of
several rows: a dropped or mis-indexed term in any replaced piece changes the numbers far beyond
the tolerances here (the pieces are also compared one by one, method against method)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import polars as pl
import pytest
from lifelines import CoxPHFitter
from lifelines.fitters.coxph_fitter import SemiParametricPHFitter
from lifelines.statistics import proportional_hazard_test

from pipeline.models import cox
from pipeline.models.coxph_linear import LinearCoxPHFitter


def _data(n: int = 600, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "x1": rng.normal(size=n),
        "x2": rng.integers(0, 2, n).astype(float),
        "x3": rng.normal(60, 15, n),  # far from 0: normalisation matters
    })
    lp = 0.6 * df.x1 - 0.4 * df.x2 + 0.02 * df.x3
    df["T"] = np.ceil(rng.exponential(np.exp(-lp)) * 8) / 2  # coarse grid: many ties
    df["E"] = (rng.random(n) < 0.65).astype(int)
    df["w"] = rng.uniform(0.3, 2.5, n)
    df["s1"] = rng.integers(0, 2, n)
    df["s2"] = rng.integers(0, 2, n)
    df["id"] = rng.integers(0, n // 3, n)  # ~3 rows per cluster
    return df


def _fit(cls, df: pd.DataFrame, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cls().fit(df, "T", "E", robust=True, **kw)


def test_data_exercise_ties_weights_and_clusters():
    df = _data()
    deaths_per_time = df[df.E == 1].groupby("T").size()
    assert deaths_per_time.max() >= 5 and (deaths_per_time > 1).sum() >= 10
    assert df.groupby("id").size().max() >= 3 and df.w.std() > 0.3


@pytest.mark.parametrize("kw", [
    {},
    {"weights_col": "w"},
    {"strata": ["s1", "s2"]},
    {"weights_col": "w", "strata": ["s1"], "cluster_col": "id"},
    {"cluster_col": "id"},
])
def test_fit_matches_lifelines(kw):
    df = _data()
    cols = ["T", "E", "x1", "x2", "x3", *[kw[k] for k in ("weights_col", "cluster_col") if k in kw],
            *kw.get("strata", [])]
    old, new = _fit(CoxPHFitter, df[cols], **kw), _fit(LinearCoxPHFitter, df[cols], **kw)
    np.testing.assert_allclose(new.params_.values, old.params_.values, rtol=0, atol=1e-8)
    np.testing.assert_allclose(new.standard_errors_.values, old.standard_errors_.values, rtol=0, atol=1e-8)
    np.testing.assert_allclose(new.variance_matrix_.values, old.variance_matrix_.values, rtol=0, atol=1e-8)
    assert new.log_likelihood_ == pytest.approx(old.log_likelihood_, abs=1e-8)
    assert new.summary["p"].values == pytest.approx(old.summary["p"].values, abs=1e-8)
    # the robust SEs are not the model-based ones (the sandwich was actually computed)
    assert np.abs(new.standard_errors_.values - np.sqrt(np.diag(new.variance_matrix_.values))).max() > 1e-4


def _inner(kw):
    """The fitted inner models (old, new) and lifelines' preprocessed frames for the new one."""
    df = _data()
    cols = ["T", "E", "x1", "x2", "x3", "w", "id", *kw.get("strata", [])]
    old = _fit(CoxPHFitter, df[cols], weights_col="w", cluster_col="id", **kw)._model
    new = _fit(LinearCoxPHFitter, df[cols], weights_col="w", cluster_col="id", **kw)._model
    X, T, E, W, _, index, _ = new._preprocess_dataframe(df[cols])
    return old, new, X, T, E, W, index


def test_score_residuals_match_lifelines_row_by_row():
    old, new, X, T, E, W, _ = _inner({})
    Xn = (X - new._norm_mean) / new._norm_std
    mine = new._compute_score_within_strata(Xn, T, E, W, None)
    theirs = SemiParametricPHFitter._compute_score_within_strata(new, Xn, T, E, W, None)
    assert np.abs(theirs).max() > 0.1
    np.testing.assert_allclose(mine, theirs, rtol=0, atol=1e-10)


def test_schoenfeld_residuals_match_lifelines_row_by_row():
    _, new, X, T, E, W, _ = _inner({})
    mine = new._compute_schoenfeld_within_strata(X, T, E, W, None)
    theirs = SemiParametricPHFitter._compute_schoenfeld_within_strata(new, X, T, E, W, None)
    assert np.abs(theirs).max() > 0.1
    np.testing.assert_allclose(mine, theirs, rtol=0, atol=1e-10)
    no_deaths = E.copy()
    no_deaths[:] = False
    assert not new._compute_schoenfeld_within_strata(X, T, no_deaths, W, None).any()


def test_efron_sums_match_lifelines_at_a_nonzero_beta():
    _, new, X, T, E, W, _ = _inner({})
    Xn = (X - new._norm_mean) / new._norm_std
    beta = np.array([0.4, -0.3, 0.2])
    h1, g1, ll1 = new._get_efron_values_linear(Xn, T, E, W, None, beta)
    h0, g0, ll0 = SemiParametricPHFitter._get_efron_values_single(new, Xn, T, E, W, None, beta)
    np.testing.assert_allclose(g1, g0, rtol=1e-11, atol=1e-9)
    np.testing.assert_allclose(h1, h0, rtol=1e-11, atol=1e-9)
    assert ll1 == pytest.approx(ll0, rel=1e-12)
    # Breslow sums (no tie correction) would differ: the tied deaths matter in these data
    _, g_b, _ = SemiParametricPHFitter._get_efron_values_single(
        new, Xn, T.rank(method="first"), E, W, None, beta)
    assert np.abs(g_b - g0).max() > 1e-3


def test_ph_test_matches_lifelines_with_strata():
    df = _data()
    cols = ["T", "E", "x1", "x2", "x3", "s1"]
    old, new = _fit(CoxPHFitter, df[cols], strata=["s1"]), _fit(LinearCoxPHFitter, df[cols], strata=["s1"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p_old = proportional_hazard_test(old, df[cols], time_transform="rank").summary
        p_new = proportional_hazard_test(new, df[cols], time_transform="rank").summary
    np.testing.assert_allclose(p_new["test_statistic"].values, p_old["test_statistic"].values, rtol=1e-9)
    np.testing.assert_allclose(p_new["p"].values, p_old["p"].values, rtol=0, atol=1e-10)


def test_entry_times_still_use_lifelines_sums():
    """Delayed entry goes through lifelines' counting-process sums unchanged."""
    df = _data()
    df["start"] = np.minimum(df["T"] - 0.25, np.round(np.random.default_rng(1).uniform(0, 1, len(df)), 1)).clip(0)
    cols = ["T", "E", "x1", "x2", "start"]
    old = _fit(CoxPHFitter, df[cols], entry_col="start")
    new = _fit(LinearCoxPHFitter, df[cols], entry_col="start")
    np.testing.assert_allclose(new.params_.values, old.params_.values, rtol=0, atol=1e-8)
    np.testing.assert_allclose(new.standard_errors_.values, old.standard_errors_.values, rtol=0, atol=1e-8)


def test_fit_cox_defaults_to_the_linear_fitter_with_lifelines_numbers(settings):
    """fit_cox as the NAIVE/prognosis models call it: same HR, CI, p and PH test as lifelines."""
    df = _data()
    frame = pl.from_pandas(df).rename({"T": "time_days", "E": "event", "id": "subject_id"}).with_columns(
        vp=pl.col("x2").cast(pl.Int8), stratum=pl.col("s1").cast(pl.String))
    kw = dict(name="t", label="t", contrast="", exposure_col="vp", covariates=("x1", "x3"), settings=settings)
    for extra in ({}, {"strata": ["stratum"], "ph_test": False}):
        new = cox.fit_cox(frame, **kw, **extra)
        old = cox.fit_cox(frame, **kw, **extra, fitter=CoxPHFitter)
        assert new.estimable and old.estimable
        for col in ("coef", "se", "p", "ci_low", "ci_high"):
            np.testing.assert_allclose(new.summary[col].to_numpy(), old.summary[col].to_numpy(), rtol=0, atol=1e-8)
        if not extra:
            assert new.details["ph_test_p"] == pytest.approx(old.details["ph_test_p"], abs=1e-10)

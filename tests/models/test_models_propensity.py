import numpy as np
import pytest

from pipeline.models import propensity
from pipeline.models.settings import ModelSettings


def test_overlap_weights_balance_exactly(cohort_null, settings):
    """Overlap weights with a logistic propensity model give exact mean balance on every
    covariate of the model (Li, Morgan & Zaslavsky 2018, Theorem 3)."""
    res = propensity.delayed_vp_analysis(cohort_null, settings)
    assert res.estimable
    assert np.abs(res.balance["smd_weighted"].to_numpy()).max() < 1e-6
    # lactate drives NE dose and so "delayed": imbalanced before weighting
    before = dict(zip(res.balance["covariate"], res.balance["smd_unweighted"]))
    assert abs(before["lactate_before_vp_mmol_l"]) > 0.2


def test_iptw_improves_balance(cohort_null, settings):
    s = ModelSettings(**{**settings.__dict__, "weighting": "iptw"})
    res = propensity.delayed_vp_analysis(cohort_null, s)
    b = res.balance
    assert (b["smd_weighted"].abs() <= b["smd_unweighted"].abs() + 0.05).all()
    assert res.models[0].estimable and "robust" in res.models[0].se_type


def test_smd_formula():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    t = np.array([1, 1, 0, 0])
    # means 1.5 vs 3.5, both variances 0.5 -> SMD = -2 / sqrt(0.5)
    assert propensity.smd(x, t) == pytest.approx(-2 / np.sqrt(0.5))

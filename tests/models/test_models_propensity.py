import numpy as np
import pytest

from pipeline.models import propensity


def test_smd_formula():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    t = np.array([1, 1, 0, 0])
    # means 1.5 vs 3.5, both variances 0.5 -> SMD = -2 / sqrt(0.5)
    assert propensity.smd(x, t) == pytest.approx(-2 / np.sqrt(0.5))


def test_overlap_weights_are_the_other_arms_probability():
    ps = np.array([0.2, 0.7])
    assert propensity.propensity_weights(ps, np.array([1, 0]), "overlap") == pytest.approx([0.8, 0.7])

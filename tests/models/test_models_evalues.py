import pytest

from pipeline.models.evalues import evalue, evalue_rr, hr_to_rr


def test_published_example():
    # VanderWeele & Ding 2017 (Ann Intern Med 167:268): RR 3.9 (95% CI 1.8-8.7) ->
    # E-value 7.26 for the estimate and 3.02 for the lower limit.
    assert evalue_rr(3.9) == pytest.approx(7.26, abs=0.01)
    out = evalue(3.9, 1.8, 8.7, "RR", 0.5)
    assert out["evalue_ci"] == pytest.approx(3.0, abs=0.01)


def test_protective_and_null_interval():
    assert evalue_rr(0.5) == pytest.approx(evalue_rr(2.0))
    assert evalue(0.8, 0.6, 1.1, "HR", 0.05)["evalue_ci"] == 1.0


def test_common_outcome_hr_uses_sqrt_transformation():
    # Common outcome: RR = (1 - 0.5**sqrt(HR)) / (1 - 0.5**sqrt(1/HR)); HR 1 -> RR 1 and the
    # conversion shrinks the ratio toward 1.
    assert hr_to_rr(1.0, outcome_is_rare=False) == pytest.approx(1.0)
    rr = hr_to_rr(2.0, outcome_is_rare=False)
    assert rr == pytest.approx((1 - 0.5 ** 2 ** 0.5) / (1 - 0.5 ** 0.5 ** 0.5))
    assert 1.0 < rr < 2.0
    assert evalue(2.0, 1.5, 2.7, "HR", 0.4)["evalue_rr_scale"] == pytest.approx(rr)
    assert evalue(2.0, 1.5, 2.7, "HR", 0.05)["evalue_rr_scale"] == pytest.approx(2.0)

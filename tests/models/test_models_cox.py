import numpy as np
import polars as pl
import pytest
from statsmodels.duration.hazard_regression import PHReg

from pipeline.models import cox, trial
from pipeline.models.data import survival_from


def test_cox_matches_statsmodels_phreg(cohort_null, settings):
    """The prognosis Cox (lifelines, Efron ties) against statsmodels PHReg (Efron) on the
    same rows: same coefficients; lifelines' robust SE vs PHReg's robust SE (groups=patient)."""
    res = cox.prognosis_among_vp(cohort_null, settings, 90.0, adjusted=True)
    assert res.estimable
    frame = survival_from(
        cohort_null.filter((pl.col("exposure") == "vp_added")
                           & pl.col("vasst_stratum").is_in(["less_severe", "more_severe"])),
        "vp_start_time", 90.0,
    ).with_columns(is_more_severe=(pl.col("vasst_stratum") == "more_severe").cast(pl.Int8))
    cols = ["is_more_severe", *settings.vasst_adjust_covariates]
    frame = frame.drop_nulls(cols)
    ph = PHReg(frame["time_days"].to_numpy(), frame.select(cols).cast(pl.Float64).to_numpy(),
               status=frame["event"].to_numpy(), ties="efron").fit(
                   groups=frame["subject_id"].to_numpy())  # groups -> robust (sandwich) covariance
    coef = res.summary.filter(pl.col("term") == "is_more_severe")["coef"][0]
    assert coef == pytest.approx(ph.params[0], abs=1e-5)
    se = res.summary.filter(pl.col("term") == "is_more_severe")["se"][0]
    assert se == pytest.approx(ph.bse[0], rel=0.02)
    assert res.n == frame.height and res.events == int(frame["event"].sum())
    assert "ph_test_p" in res.details and 0 <= res.details["ph_test_p"] <= 1


def test_not_estimable_small_groups(cohort_null, settings):
    tiny = cohort_null.filter(pl.col("exposure") == "vp_added").head(8)
    res = cox.prognosis_among_vp(tiny, settings, 90.0, adjusted=True)
    assert not res.estimable
    assert "patients" in res.reason or "events" in res.reason
    assert res.estimate is None and res.to_dict()["hr"] is None


def test_prognosis_is_descriptive_and_never_adjusted_for_the_stratum_dose(cohort_null, settings):
    """Issue 12: the stratum contrast among VP patients is prognosis - no p, no E-value - and
    is not adjusted for the NE dose that defines the stratum, even if the config lists it."""
    import dataclasses

    s = dataclasses.replace(settings, vasst_adjust_covariates=(*settings.vasst_adjust_covariates,
                                                               "nee_at_vp_mcg_kg_min"))
    res = cox.prognosis_among_vp(cohort_null, s, 90.0, adjusted=True)
    assert res.estimable and res.role == "descriptive" and res.estimand
    assert res.p is None and res.to_dict()["p"] is None
    assert "nee_at_vp" not in res.details["covariates_used"]
    assert "evalue_estimate" not in res.with_details(evalue_estimate=2.0).details


def test_time_varying_fitter_equals_counting_process_coxph(cohort_null, sim_null, settings):
    """CoxTimeVaryingFitter and CoxPHFitter with entry times maximise the same partial
    likelihood on the same (start, stop] rows: same coefficient."""
    long = trial.long_format(cohort_null, sim_null.ne_timeline, settings, 90.0, ())
    tv = cox.fit_cox_time_varying(long, name="a", label="a", contrast="", exposure_col="vp",
                                  covariates=(), settings=settings)
    cp = cox.fit_cox(long, name="b", label="b", contrast="", exposure_col="vp", covariates=(),
                     settings=settings, time_col="stop_days", entry_col="start_days", ph_test=False)
    assert tv.estimable and cp.estimable
    assert np.log(tv.estimate) == pytest.approx(np.log(cp.estimate), abs=1e-5)


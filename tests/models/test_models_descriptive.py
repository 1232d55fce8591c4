import math

import polars as pl
import pytest

from pipeline.models import descriptive


def test_wilson_matches_closed_form_example():
    # Wilson interval for 81/263 (Newcombe RG, Stat Med 1998;17:857-872, Table I example
    # "81/263": 0.2553 to 0.3662).
    lo, hi = descriptive.wilson_ci(81, 263, 0.95)
    assert lo == pytest.approx(0.2553, abs=5e-4)
    assert hi == pytest.approx(0.3662, abs=5e-4)


def test_wilson_edge_cases():
    lo, hi = descriptive.wilson_ci(0, 10)
    assert lo == 0.0 and 0 < hi < 0.35  # Wilson never gives a zero-width interval at 0/n
    assert descriptive.wilson_ci(0, 0) == (None, None)


def test_mortality_table_counts_match_cohort(cohort_null):
    tab = descriptive.mortality_table(cohort_null, (28.0, 90.0))
    row = tab.filter((pl.col("grouping") == "exposure") & (pl.col("group") == "vp_added")
                     & (pl.col("horizon_days") == 28.0)).row(0, named=True)
    vp = cohort_null.filter(pl.col("exposure") == "vp_added")
    assert row["n"] == vp["death_28d"].is_not_null().sum()
    assert row["deaths"] == vp["death_28d"].fill_null(False).sum()
    assert row["ci_low"] < row["mortality"] < row["ci_high"]
    # Every patient appears once in the exposure grouping.
    per = tab.filter((pl.col("grouping") == "exposure") & (pl.col("horizon_days") == 90.0))
    assert int((per["n"] + per["n_unknown"]).sum()) == cohort_null.height


def test_km_shapes_and_no_test(cohort_null, settings):
    km = descriptive.kaplan_meier(cohort_null, "exposure", settings.at_risk_days, 90.0,
                                  settings.min_patients_per_group, caption="biased")
    assert km.estimable
    d = km.to_dict()
    # Descriptive curves carry no test (issue 12) but say why they are biased.
    assert d["role"] == "descriptive" and d["caption"] == "biased"
    assert not any(k.startswith("logrank") for k in d)
    first = km.at_risk.filter(pl.col("time_days") == 0.0)
    assert int(first["n_at_risk"].sum()) == cohort_null.height
    # survival is non-increasing within each group
    for _, g in km.curves.group_by("group"):
        s = g.sort("time_days")["survival"].to_numpy()
        assert (s[1:] <= s[:-1] + 1e-12).all()


def test_reverse_km_median_followup_without_deaths_is_plain_median():
    # With no deaths, reverse KM = KM of all follow-up times: median of 1..5 days is 3.
    import datetime as dt

    t0 = dt.datetime(2150, 1, 1)
    frame = pl.DataFrame({
        "index_time": [t0] * 5,
        "death_time": pl.Series([None] * 5, dtype=pl.Datetime),
        "followup_end_time": [t0 + dt.timedelta(days=d) for d in (1, 2, 3, 4, 5)],
        "has_died": [False] * 5,
    })
    assert descriptive.median_followup_days(frame)["median_days"] == pytest.approx(3.0)
    assert math.isfinite(3.0)

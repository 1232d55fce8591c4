"""p-chart limits and run rules against hand-computed examples (pipeline.audit.spc)."""

from __future__ import annotations

import polars as pl
import pytest

from pipeline.audit.spc import p_chart


def _chart(n_pass, n, **kw):
    periods = [f"p{i:02d}" for i in range(len(n))]
    return p_chart(pl.DataFrame({"period": periods, "n_pass": n_pass, "n": n}), **kw)


def test_limits_vary_with_n_hand_computed():
    # Pooled p = 525 / 1050 = 0.5, so sigma = sqrt(0.25 / n): 0.05 at n=100, 0.1 at n=25,
    # 0.025 at n=400; 3-sigma limits 0.35-0.65, 0.2-0.8 and 0.425-0.575.
    out = _chart([50, 40, 21, 4, 210, 200], [100, 100, 25, 25, 400, 400])
    assert out["centre_line"].to_list() == pytest.approx([0.5] * 6)
    assert out["lcl"].to_list() == pytest.approx([0.35, 0.35, 0.2, 0.2, 0.425, 0.425])
    assert out["ucl"].to_list() == pytest.approx([0.65, 0.65, 0.8, 0.8, 0.575, 0.575])
    assert out["p"].to_list() == pytest.approx([0.5, 0.4, 0.84, 0.16, 0.525, 0.5])
    # 0.84 > 0.80 and 0.16 < 0.20 are outside their own (wide, n=25) limits; 0.4 at n=100 is not.
    assert out["is_outside_limits"].to_list() == [False, False, True, True, False, False]
    # z of 0.84 is +3.4, of 0.16 is -3.4: opposite sides, so no 2-of-3 signal.
    assert not any(out["is_two_of_three"].to_list())


def test_limits_clip_to_zero_and_one():
    # p_bar = 0.9; n = 4: sigma = 0.15, 0.9 + 0.45 > 1 -> UCL 1; 0.9 - 0.45 = 0.45.
    out = _chart([4, 356], [4, 396])
    assert out["ucl"].to_list()[0] == 1.0
    assert out["lcl"].to_list()[0] == pytest.approx(0.45)


def test_shift_of_eight_on_one_side():
    # Eight periods at 0.55-0.62 with p_bar = 0.5 (the last two pull it down): a shift; the two
    # low points (0.2, 0.12) are below the LCL of 0.35.
    out = _chart([60, 61, 62, 55, 58, 57, 59, 56, 20, 12], [100] * 10)
    assert out["centre_line"][0] == pytest.approx(0.5)
    assert out["is_shift"].to_list() == [True] * 8 + [False, False]
    assert out["is_outside_limits"].to_list() == [False] * 8 + [True, True]


def test_seven_on_one_side_is_not_a_shift_and_centre_points_do_not_break():
    # 7 above, one exactly on the centre line, then 1 more above -> 8 above with the on-line
    # point skipped: a shift on the 8 points above, not on the centre point.
    x = [55, 55, 55, 55, 55, 55, 55, 50, 55, 10, 10, 10]
    out = _chart(x, [100] * len(x))
    assert out["centre_line"][0] == pytest.approx(sum(x) / 1200)  # 0.4375
    # p_bar = 0.4375, so 0.5 is above: all 9 first points are above.
    assert out["is_shift"].to_list()[:9] == [True] * 9
    x2 = [55] * 7 + [10, 10, 10]
    out2 = _chart(x2, [100] * len(x2))
    assert not any(out2["is_shift"].to_list())


def test_shift_skips_on_line_points():
    # p_bar = 0.5 exactly; the 0.5 points sit on the line and neither add nor break.
    x = [60, 50] + [60] * 7 + [40] * 8 + [50]
    out = _chart(x, [100] * len(x))
    assert out["centre_line"][0] == pytest.approx(0.5)
    # 8 above (indices 0, 2-8) with the on-line index 1 skipped; 8 below; the last on the line.
    assert out["is_shift"].to_list() == [True, False] + [True] * 7 + [True] * 8 + [False]


def test_trend_of_six_rising_ignores_ties():
    # 40, 42, 42 (tie: skipped, neither adds nor breaks), 44, 46, 48, 50: six rising values.
    x = [40, 42, 42, 44, 46, 48, 50, 45]
    out = _chart(x, [100] * len(x))
    assert out["is_trend"].to_list() == [True, True, False, True, True, True, True, False]
    # With the tie counted as a point the run would still be only 6 values; without the 50 it
    # is five distinct rising values: no trend.
    out_tie5 = _chart([40, 42, 42, 44, 46, 48, 45], [100] * 7)
    assert not any(out_tie5["is_trend"].to_list())
    # Five rising points is not a trend.
    out5 = _chart([40, 42, 44, 46, 48, 45], [100] * 6)
    assert not any(out5["is_trend"].to_list())


def test_trend_falling_starts_at_the_peak():
    # Rise to 50, then fall 50 > 48 > 46 > 44 > 42 > 40: the peak begins the falling run.
    out = _chart([45, 50, 48, 46, 44, 42, 40], [100] * 7)
    assert out["is_trend"].to_list() == [False] + [True] * 6


def test_two_of_three_beyond_two_sigma():
    # n = 100, p_bar = 0.5, sigma = 0.05: 0.61 and 0.62 are beyond 2 sigma (0.60), inside 3.
    x = [50, 61, 45, 62, 41, 41]
    out = _chart(x, [100] * 6)
    assert out["centre_line"][0] == pytest.approx(0.5)
    assert out["is_two_of_three"].to_list() == [False, True, False, True, False, False]
    assert not any(out["is_outside_limits"].to_list())


def test_empty_periods_and_groups():
    counts = pl.DataFrame(
        {
            "rule": ["a", "a", "a", "b", "b"],
            "period": ["2008", "2011", "2014", "2008", "2011"],
            "n_pass": [1, 0, 3, 0, 0],
            "n": [2, 0, 4, 1, 1],
        }
    )
    out = p_chart(counts, by="rule")
    a = out.filter(pl.col("rule") == "a")
    assert a["centre_line"].to_list() == pytest.approx([4 / 6] * 3)
    assert a["p"].to_list()[1] is None and a["lcl"].to_list()[1] is None
    b = out.filter(pl.col("rule") == "b")
    # All fail: p_bar = 0, sigma = 0, limits collapse on 0 and nothing is special.
    assert b["ucl"].to_list() == [0.0, 0.0]
    assert not any(b["is_special_cause"].to_list())


def test_rejects_impossible_counts():
    with pytest.raises(ValueError, match="n_pass"):
        _chart([5], [3])

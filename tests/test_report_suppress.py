"""Small-cell suppression rules (pipeline/report/suppress.py): primary and complementary."""

from __future__ import annotations

import itertools
import random

import pytest

from pipeline.report.suppress import CellPolicy, chain_visible, small_integers_in, suppress_cells

P = CellPolicy(11)


def test_small_is_one_to_threshold_minus_one():
    assert [P.is_small(n) for n in (0, 1, 10, 11, 500)] == [False, True, True, False, False]
    assert P.count(0) == "0" and P.count(10) == "<11" and P.count(11) == "11" and P.count(1234) == "1,234"
    # a large cell hidden by complementary suppression must not claim to be small
    assert P.count(57, hidden=True) == "*"


def test_percent_hidden_when_numerator_denominator_or_complement_is_small():
    assert P.percent(50, 100) == "50.0%"
    assert P.percent(5, 100) == "-"  # numerator small
    assert P.percent(95, 100) == "-"  # 100 - 95 = 5 would be revealed
    assert P.percent(0, 8) == "-"  # denominator small
    assert P.percent(0, 40) == "0.0%"  # zero identifies nobody


def test_one_small_part_forces_a_second_hidden_part():
    hidden = suppress_cells({"n": 40, "f": 3, "m": 37}, [("n", ["f", "m"])], P)
    assert hidden == {"f", "m"}


def test_hidden_parts_summing_to_a_small_count_force_a_third():
    cells = {"t": 157, "a": 3, "b": 4, "c": 50, "d": 100}
    hidden = suppress_cells(cells, [("t", ["a", "b", "c", "d"])], P)
    # a + b = 7 would be revealed as t - c - d: c (the smaller shown part) goes too
    assert hidden == {"a", "b", "c"}


def test_implied_cells_are_hidden_before_displayed_ones():
    cells = {"n": 40, "yes": 20, "no": 17, "unknown": 3}
    hidden = suppress_cells(cells, [("n", ["yes", "no", "unknown"])], P, implied={"no", "unknown"})
    assert hidden == {"unknown", "no"}


def test_no_hidden_cell_solvable_on_random_two_way_tables():
    """Property: after suppression no relation has exactly one hidden cell, and hidden parts of a
    shown total never add up to a small count (so nothing small can be worked out)."""
    rng = random.Random(7)
    for _ in range(200):
        rows, cols = rng.randint(2, 4), rng.randint(2, 4)
        cells = {(i, j): rng.choice([0, 1, 2, 5, 9, 12, 30, 80]) for i in range(rows) for j in range(cols)}
        for i in range(rows):
            cells[(i, "T")] = sum(cells[(i, j)] for j in range(cols))
        for j in range(cols):
            cells[("T", j)] = sum(cells[(i, j)] for i in range(rows))
        cells[("T", "T")] = sum(cells[(i, "T")] for i in range(rows))
        rel = [((i, "T"), [(i, j) for j in range(cols)]) for i in range(rows)]
        rel += [(("T", j), [(i, j) for i in range(rows)]) for j in range(cols)]
        rel += [(("T", "T"), [(i, "T") for i in range(rows)]), (("T", "T"), [("T", j) for j in range(cols)])]
        hidden = suppress_cells(cells, rel, P)
        assert all(k in hidden for k, v in cells.items() if P.is_small(v))
        for total, parts in rel:
            members = [total, *parts]
            n_hidden = sum(k in hidden for k in members)
            hidden_sum = sum(cells[k] for k in parts if k in hidden)
            assert n_hidden != 1 or (total not in hidden and hidden_sum == 0), (cells, hidden, total)
            if total not in hidden:
                assert not P.is_small(hidden_sum)


def test_attrition_chain_hides_a_step_whose_difference_is_small():
    # MIMIC-IV demo attrition (ICU stays): 140 -> 140 -> 26 -> 14 -> 12
    assert chain_visible([140, 140, 26, 14, 12], P) == [True, True, True, False, True]
    # numbers at risk keep the group size first
    assert chain_visible([100, 95, 80, 60], P, keep="first") == [True, False, True, True]


def test_chain_shown_values_never_differ_by_a_small_count():
    rng = random.Random(3)
    for _ in range(300):
        values = sorted((rng.randint(0, 60) for _ in range(rng.randint(1, 7))), reverse=True)
        for keep in ("first", "last"):
            vis = chain_visible(values, P, keep=keep)
            shown = [v for v, ok in zip(values, vis) if ok]
            assert not any(P.is_small(v) for v in shown)
            assert not any(P.is_small(abs(a - b)) for a, b in itertools.combinations(shown, 2))


@pytest.mark.parametrize("text, hits", [
    ("3 patients died", 1), ("at 6 h and 24 h", 0), ("NE 0.5 mcg/kg/min", 0), ("<11 patients", 0),
    ("28-day and 7-day", 0), ("n = 1,234", 0), ("excluded: 4 ICU stays", 1), ("stay 10", 1),
])
def test_small_integer_scanner(text, hits):
    assert len(small_integers_in(text, P)) == hits


def test_report_wide_registry_hides_a_count_one_away_from_a_shown_one():
    """Issue 18: 12 patients in the cohort flow and 11 in a model row revealed 1 exclusion."""
    from pipeline.report.suppress import ReportCounts

    reg = ReportCounts(11)
    policy = CellPolicy(11, reg)
    flow, model, other, pct = policy.count(12), policy.count(11), policy.count(300), policy.percent(150, 300)
    assert reg.resolve([flow, model, other, pct]) == ["12", "*", "300", "50.0%"]
    assert reg.withheld_values() == {11}
    # a percentage whose numerator sits within 10 of a shown count is not shown either
    reg = ReportCounts(11)
    policy = CellPolicy(11, reg)
    assert reg.resolve([policy.count(100), policy.percent(95, 300)]) == ["100", "-"]


def test_a_withheld_count_hides_a_complement_in_its_table():
    """A count hidden report-wide must not be recoverable as total minus the other parts."""
    policy = CellPolicy(11, withheld=frozenset({40}))
    assert suppress_cells({"n": 75, "a": 40, "b": 35}, [("n", ["a", "b"])], policy) == {"a", "b"}
    assert policy.count(40) == "*" and policy.percent(40, 75) == "-"
    assert chain_visible([158, 40, 25], policy, keep="first") == [True, False, True]

"""The hour-by-hour synthetic world (pipeline.synth.world) and its interventional truth.

Checks that the world is *hard* (time-varying confounding makes crude comparisons wrong), that
the truth is computed the way contract A says (forced strategies, common random numbers), and
that the null switch really switches the effect off."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest

from pipeline.config import load_study_config
from pipeline.synth import SynthParams, strategy_truth
from pipeline.synth import world
from pipeline.synth.params import MEANINGS

N_TRUTH = 40_000
SEED = 97


@pytest.fixture(scope="module")
def tte():
    return load_study_config().typed("tte")


@pytest.fixture(scope="module")
def runs(tte):
    return world.run_strategies(SynthParams(), N_TRUTH, SEED, tte)


def test_every_parameter_has_a_meaning():
    names = {f.name for f in fields(SynthParams)}
    assert names == set(MEANINGS), names ^ set(MEANINGS)
    assert all(len(v) > 10 for v in MEANINGS.values())


def test_truth_follows_contract_a(tte):
    t = strategy_truth(SynthParams(), 5_000, SEED, load_study_config())
    ids = [s["id"] for s in t["strategies"]]
    assert ids == [f"ne_{x:.2f}" for x in tte.strategy_thresholds_ne_mcg_kg_min] + ["never"]
    assert t["decision_window_hours"] == tte.decision_window_hours and t["grace_hours"] == tte.grace_hours
    assert t["n_simulated"] == 5_000 and t["seed"] == SEED
    never = t["strategies"][-1]
    assert never["threshold_ne_mcg_kg_min"] is None
    for s in t["strategies"]:
        assert {"risk_28d", "risk_90d", "mc_se_28d", "mc_se_90d", "rrt_risk_28d", "grace_hours"} <= set(s)
        assert 0 < s["risk_28d"] <= s["risk_90d"] < 1
    # one contrast per (strategy, reference), the reference itself excluded
    refs = {c["reference"] for c in t["contrasts"]}
    assert refs == {"ne_0.25", "never"}
    assert len(t["contrasts"]) == 2 * (len(ids) - 1)
    by = {s["id"]: s for s in t["strategies"]}
    c = next(c for c in t["contrasts"] if c["strategy"] == "ne_0.10" and c["reference"] == "ne_0.25")
    assert c["risk_difference_28d"] == pytest.approx(by["ne_0.10"]["risk_28d"] - by["ne_0.25"]["risk_28d"])
    assert c["risk_ratio_28d"] == pytest.approx(by["ne_0.10"]["risk_28d"] / by["ne_0.25"]["risk_28d"])


def test_default_world_earlier_vp_is_better(runs):
    """Default effect sizes: 28-day risk rises monotonically with the threshold X and 'never' is
    worst, by more than Monte Carlo error (paired differences under common random numbers)."""
    order = ["ne_0.10", "ne_0.15", "ne_0.25", "ne_0.35", "ne_0.50", "never"]
    d = [runs[k].risk(28).astype(float) for k in order]
    for a, b in zip(d, d[1:]):
        diff = b - a
        assert diff.mean() > 4 * diff.std() / np.sqrt(len(diff))
    assert 0.02 < d[-1].mean() - d[0].mean() < 0.10


def test_null_switch_makes_strategies_equal(tte):
    t = strategy_truth(SynthParams.null(), 20_000, SEED, load_study_config())
    risks = np.array([s["risk_28d"] for s in t["strategies"]])
    se = max(s["mc_se_28d"] for s in t["strategies"])
    assert risks.max() - risks.min() <= 2 * se
    assert all(abs(c["risk_difference_28d"]) <= 2 * c["mc_se_rd_28d"] + 1e-12 for c in t["contrasts"])
    # ... while the default world, same patients, separates them
    d = strategy_truth(SynthParams(), 20_000, SEED, load_study_config())
    rd = next(c for c in d["contrasts"] if c["strategy"] == "ne_0.10" and c["reference"] == "never")
    assert rd["risk_difference_28d"] < -5 * rd["mc_se_rd_28d"]


def _crude_by_dose_at_vp(nat: world.Course, split: float) -> float:
    d28 = nat.risk(28).astype(float)
    vp = nat.vp_start_hour >= 0
    low = vp & (nat.rate_at_vp < split - 1e-9)
    high = vp & (nat.rate_at_vp >= split - 1e-9)
    return d28[low].mean() - d28[high].mean()


def test_crude_comparisons_are_biased(runs):
    """In the natural course, VP starts because the current dose is high, and the dose drives
    death: comparing patients by the NE dose at VP start, or VP against no VP, is far from the
    interventional truth of the same patients."""
    nat = runs["natural"]
    d = {k: runs[k].risk(28).mean() for k in ("ne_0.10", "ne_0.25", "ne_0.50", "never")}
    tol = 0.03  # far above the Monte Carlo error of either side at n = 40,000
    # VP started below 0.25 vs at/above 0.25: the truth (ne_0.10 vs ne_0.50) is a few points
    crude_dose = _crude_by_dose_at_vp(nat, 0.25)
    true_dose = d["ne_0.10"] - d["ne_0.50"]
    assert abs(crude_dose - true_dose) > tol, (crude_dose, true_dose)
    assert crude_dose < true_dose - tol  # crude overstates the benefit of early VP
    # ever VP vs never VP: the crude comparison points the wrong way (harm)
    d28 = nat.risk(28).astype(float)
    vp = nat.vp_start_hour >= 0
    crude_ever = d28[vp].mean() - d28[~vp].mean()
    true_ever = d["ne_0.25"] - d["never"]
    assert true_ever < 0 < crude_ever, (crude_ever, true_ever)


def test_forced_strategies_follow_their_rule(tte):
    """Common random numbers: under 'threshold X', VP starts exactly in the first hour whose
    charted NE rate reaches X (grace 1 h), never before; under 'never', no VP in the window;
    the courses of two strategies are identical up to the first VP start."""
    prm = SynthParams()
    base = world.baseline(np.random.default_rng(5), 3_000, prm)
    W = tte.decision_window_hours
    x = 0.25
    nat, thr, nev = world.simulate_many(base, prm, 5, [None, ("threshold", x), world.NEVER],
                                        window_hours=W, grace_hours=1, keep_hourly=True)
    H = thr.rate.shape[1]
    hours = np.arange(H)
    reached = thr.rate >= x - 1e-6
    first = np.where(reached.any(1), reached.argmax(1), -1)
    in_window = (first >= 0) & (first < W)
    vh = thr.vp_start_hour
    assert (vh[in_window] == first[in_window]).all()
    assert (vh[~in_window & (vh >= 0)] >= W).all()
    assert (nev.vp_start_hour[nev.vp_start_hour >= 0] >= W).all()
    assert in_window.any() and (~in_window).any()
    # identical courses before any VP start under either strategy
    diverge = np.where(vh >= 0, vh, H)
    diverge = np.minimum(diverge, np.where(nev.vp_start_hour >= 0, nev.vp_start_hour, H))
    before = hours[None, :] <= diverge[:, None]
    assert np.array_equal(np.where(before, thr.rate, 0), np.where(before, nev.rate, 0))
    never_vp = (vh < 0) & (nev.vp_start_hour < 0)
    assert np.array_equal(thr.death_hour[never_vp], nev.death_hour[never_vp])
    # natural course: positivity - VP at low and at high doses, and some never
    r = nat.rate_at_vp[nat.vp_start_hour >= 0]
    assert (r < 0.1).mean() > 0.05 and (r > 0.3).mean() > 0.05 and (nat.vp_start_hour < 0).mean() > 0.3

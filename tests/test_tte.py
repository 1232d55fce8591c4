"""pipeline.tte: clone-censor-weight estimation of the [tte] strategies.

Mechanics on small hand-made panels (deviation hours against a plain re-statement of the
protocol, weighted Kaplan-Meier against lifelines), statistics on the synthetic hour-by-hour
world (pipeline.synth.world) whose interventional truth is known: the weighted estimate
recovers each strategy's 28-day risk, the unweighted clone analysis does not, and in the null
world every strategy has the same risk. The MIMIC-IV demo is too small: every strategy is "not
estimable" with a reason, and the section still has the contract's keys."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import polars as pl
import pytest

from pipeline.config import load_study_config
from pipeline.synth.params import SynthParams
from pipeline.tte.data import NEVER_HOUR, prepare
from pipeline.tte.estimate import EstimateSettings, bootstrap, estimate, make_clones
from pipeline.tte.strategies import MUST, MUST_NOT, at_risk, clone, strategies_of
from pipeline.tte.survival import hourly_counts, km_risk_curve, weighted_km
from pipeline.tte.weights import fit_start_probability, newton_logistic
from pipeline.tte.world_panel import frames_from_arrays, world_frames

COVS = ["age_years", "is_female", "lactate_at_index_mmol_l"]
SETTINGS = EstimateSettings(short_days=28, long_days=90, truncation_percentile=100, min_starts=10)


@pytest.fixture(scope="module")
def tte_cfg():
    return load_study_config().typed("tte")


def _hand_panel(rates: list[list[float]], vp: list[int], death: list[float]):
    n, w = len(rates), 72
    rate = np.zeros((n, w))
    for i, r in enumerate(rates):
        rate[i, : len(r)] = r
        rate[i, len(r):] = r[-1]
    nan = np.full((n, w), np.nan)
    return frames_from_arrays(rate, nan, nan, np.array(vp), np.array(death, dtype=float),
                              np.full(n, np.inf), np.full(n, 60.0), w)


def test_deviation_hours_follow_the_protocol():
    # NE reaches 0.25 at hour 2 in every patient; VP at hour 2 (on time), 1 (too early),
    # 4 (too late), never; patient 4 never reaches 0.25 and starts VP at hour 5.
    rates = [[0.1, 0.2, 0.3]] * 4 + [[0.1, 0.2]]
    cohort, panel = _hand_panel(rates, [2, 1, 4, -1, 5], [np.inf] * 5)
    data = prepare(cohort, panel, 72, [])
    kind, censor, initiated = clone(data, ("threshold", 0.25), grace_hours=1)
    assert list(censor) == [NEVER_HOUR, 1, 2, 2, 5]
    assert list(initiated) == [True, False, False, False, False]
    # grace of 3 hours: VP at hour 4 is now on time, no VP is censored at the last grace hour
    _, censor3, init3 = clone(data, ("threshold", 0.25), grace_hours=3)
    assert list(censor3) == [NEVER_HOUR, 1, NEVER_HOUR, 4, 5]
    assert list(init3) == [True, False, True, False, False]
    _, never, _ = clone(data, ("never",), grace_hours=1)
    assert list(never) == [2, 1, 4, NEVER_HOUR, 5]
    # 0.10 is reached at hour 0: only a VP start in hour 0 follows it
    _, c10, _ = clone(data, ("threshold", 0.10), grace_hours=1)
    assert list(c10) == [0, 0, 0, 0, 0]
    # the row kinds: forbidden before the threshold hour, required in the last grace hour
    r0 = data.row_pid == 0
    assert list(kind[r0][:4]) == [MUST_NOT, MUST_NOT, MUST, 1]


def test_clone_invariants_on_the_world(tte_cfg):
    cohort, panel = world_frames(1500, seed=3)
    data = prepare(cohort, panel, tte_cfg.decision_window_hours, COVS)
    clones = make_clones(data, strategies_of(tte_cfg), tte_cfg.grace_hours)
    # one clone per strategy per patient
    assert len(set(clones.ids)) == len(clones.ids) == len(tte_cfg.strategy_thresholds_ne_mcg_kg_min) + 1
    assert all(c.shape == (data.n,) for c in clones.censor)
    p, _ = fit_start_probability(data, min_starts=10)
    for s, sid in enumerate(clones.ids):
        risk = at_risk(data, clones.censor[s])
        # a clone's time is the patient's own hours from time zero up to its deviation (a prefix)
        first_out = np.where(~risk, data.row_hour, NEVER_HOUR)
        stop = np.full(data.n, NEVER_HOUR)
        np.minimum.at(stop, data.row_pid, first_out)
        assert (data.row_hour[risk] < stop[data.row_pid[risk]]).all(), sid
        # while at risk, the clone did what its strategy says
        k = clones.kind[s]
        assert not data.is_vp_start[risk & (k == MUST_NOT)].any(), sid
        assert data.is_vp_start[risk & (k == MUST)].all(), sid
    # every clone is identical to the patient (and to the other clones) until it deviates: at
    # hour 0 no clone can have deviated except by the VP decision of hour 0
    h0 = data.row_hour == 0
    no_vp0 = ~data.is_vp_start[h0]
    reach0 = data.ne_rate[h0] >= 0.10 - 1e-9
    assert at_risk(data, clones.censor[clones.ids.index("never")])[h0][no_vp0].all()
    # the weights start at 1 / P(the hour-0 action) and grow only by factors >= 1
    w = estimate(data, clones, SETTINGS).weights[clones.ids.index("never")]
    assert np.allclose(w[h0][no_vp0], 1 / (1 - p[h0][no_vp0]))
    assert reach0.any()


def test_weighted_km_matches_lifelines():
    from lifelines import KaplanMeierFitter

    rng = np.random.default_rng(5)
    n = 60
    t = rng.integers(1, 40, n).astype(float)
    e = rng.random(n) < 0.6
    w = rng.uniform(0.5, 3.0, n)
    kmf = KaplanMeierFitter().fit(t, e, weights=w)
    for at in (5.0, 17.0, 39.0):
        ours = weighted_km(t, e, w, at)
        theirs = 1.0 - float(kmf.survival_function_at_times(at).iloc[0])
        assert ours == pytest.approx(theirs, abs=1e-10)


def test_hourly_estimator_equals_the_product_limit():
    """No VP at all: every clone of "never" is uncensored with weight 1, so the hourly
    estimator must be the plain Kaplan-Meier of death (admin censoring included), inside the
    decision window and after it."""
    rng = np.random.default_rng(2)
    n = 300
    death = np.where(rng.random(n) < 0.5, rng.uniform(0, 24 * 40, n), np.inf)
    fu = rng.uniform(10, 24 * 60, n)
    death = np.where(death <= fu, death, np.inf)
    rate = np.full((n, 72), 0.2)
    nan = np.full((n, 72), np.nan)
    cohort, panel = frames_from_arrays(rate, nan, nan, np.full(n, -1), death, np.full(n, np.inf),
                                       np.full(n, 60.0), 72, followup_hours=fu)
    data = prepare(cohort, panel, 72, [])
    clones = make_clones(data, [("never",)], 1)
    n_h, d_h, _ = hourly_counts(data, clones.censor[0], np.ones(len(data.row_pid)), np.ones(data.n), 24 * 30)
    ours = km_risk_curve(n_h, d_h)
    # product limit on exit times (an event in hour h ends at h + 1; censored at ceil(fu))
    dur = np.where(np.isfinite(death), np.floor(death) + 1, np.ceil(fu))
    for day in (2, 3, 10, 28):
        assert ours[day * 24 - 1] == pytest.approx(weighted_km(dur, np.isfinite(death), np.ones(n), day * 24.0), abs=1e-12)


def test_newton_fit_equals_statsmodels_glm():
    import statsmodels.api as sm

    rng = np.random.default_rng(1)
    x = np.column_stack([np.ones(500), rng.normal(size=(500, 3))])
    y = (rng.random(500) < 1 / (1 + np.exp(-(x @ [-1, 0.5, -0.3, 0.8])))).astype(float)
    fw = rng.integers(0, 3, 500).astype(float)
    ref = sm.GLM(y, x, family=sm.families.Binomial(), freq_weights=fw).fit().params
    assert np.allclose(newton_logistic(x, y, fw, np.zeros(4)), ref, atol=1e-7)


@pytest.mark.parametrize("block_rows", [997, None])
def test_replicate_by_row_blocks_equals_the_whole_array_estimate(tte_cfg, monkeypatch, block_rows):
    """A bootstrap replicate computes its values by blocks of patients' rows without keeping the
    weights; they must be the whole-array estimate's (weights, then hourly counts) on the same
    sample, including with blocks so small that most patients sit at a block edge."""
    import pipeline.tte.estimate as est_mod

    if block_rows:
        blocks = est_mod._row_blocks
        monkeypatch.setattr(est_mod, "_row_blocks", lambda data: blocks(data, block_rows))
    cohort, panel = world_frames(1500, seed=8)
    data = prepare(cohort, panel, tte_cfg.decision_window_hours, COVS)
    clones = make_clones(data, strategies_of(tte_cfg), tte_cfg.grace_hours)
    point = estimate(data, clones, SETTINGS)
    mult = np.bincount(np.random.default_rng(4).integers(0, data.n, data.n), minlength=data.n).astype(float)
    whole = estimate(data, clones, SETTINGS, mult, start=point.coefficients).values
    blocked = estimate(data, clones, SETTINGS, mult, start=point.coefficients, keep_weights=False).values
    assert len(est_mod._row_blocks(data)) > 2
    assert np.isfinite(whole).sum() >= 2 * len(clones.ids)
    assert np.allclose(blocked, whole, rtol=0, atol=1e-12, equal_nan=True)


def test_bootstrap_does_not_depend_on_the_number_of_workers(tte_cfg):
    """Replicate b draws from its own seed, whichever process runs it: one worker (in-process)
    and two worker processes give the same replicates in the same order."""
    cohort, panel = world_frames(1500, seed=6)
    data = prepare(cohort, panel, tte_cfg.decision_window_hours, COVS)
    clones = make_clones(data, strategies_of(tte_cfg), tte_cfg.grace_hours)
    est = estimate(data, clones, SETTINGS)
    one = bootstrap(data, clones, SETTINGS, 5, seed=3, workers=1, start=est.coefficients)
    two = bootstrap(data, clones, SETTINGS, 5, seed=3, workers=2, start=est.coefficients)
    assert one.shape == (5, len(clones.ids), 3) and np.isfinite(one[:, :, 0]).any()
    assert np.array_equal(one, two, equal_nan=True)
    # and the replicates are different samples (a seed shared by the replicates would pass above)
    assert not np.allclose(one[0], one[1], equal_nan=True)


TRUTH_N = 30_000  # patients re-simulated per strategy (the generator uses 100,000: slower)


def _truth(params):
    from pipeline.synth.truth import strategy_truth

    return {s["id"]: s for s in strategy_truth(params, TRUTH_N, 7, load_study_config())["strategies"]}


@pytest.fixture(scope="module")
def world_fit(tte_cfg):
    cohort, panel = world_frames(6000, seed=11)
    data = prepare(cohort, panel, tte_cfg.decision_window_hours, COVS)
    clones = make_clones(data, strategies_of(tte_cfg), tte_cfg.grace_hours)
    est = estimate(data, clones, SETTINGS)
    plain = EstimateSettings(28, 90, 100, 10, weighted=False)
    unweighted = estimate(data, clones, plain).values
    boots = bootstrap(data, clones, SETTINGS, 20, seed=1, workers=2, start=est.coefficients)
    boots_u = bootstrap(data, clones, plain, 20, seed=1, workers=2)
    return data, clones, est, unweighted, boots, boots_u


def test_weighted_risks_recover_the_truth_and_unweighted_do_not(world_fit):
    data, clones, est, unweighted, boots, boots_u = world_fit
    truth = _truth(SynthParams())
    se = np.nanstd(boots[:, :, 0], axis=0, ddof=1)
    se_u = np.nanstd(boots_u[:, :, 0], axis=0, ddof=1)
    z_w, z_u = [], []
    for s, sid in enumerate(clones.ids):
        mc = truth[sid]["mc_se_28d"] * math.sqrt(100_000 / TRUTH_N)  # truth's own Monte Carlo error
        z_w.append((est.values[s, 0] - truth[sid]["risk_28d"]) / math.hypot(se[s], mc))
        z_u.append((unweighted[s, 0] - truth[sid]["risk_28d"]) / math.hypot(se_u[s], mc))
    assert max(abs(z) for z in z_w) <= 3, dict(zip(clones.ids, z_w))
    # the clone analysis without weights is biased downwards (VP is started for the sickest):
    # its own 3-SE interval misses the truth in most strategies
    assert sum(z < -3 for z in z_u) >= len(z_u) // 2, dict(zip(clones.ids, z_u))


def test_bootstrap_se_matches_the_spread_over_simulated_data_sets(tte_cfg):
    """On the confounded world (VP started because the dose rises, death hazard on the current
    dose), the bootstrap SE of each strategy's 28-day risk is about the standard deviation of
    the point estimates over independent simulated data sets. A bootstrap that resampled rows
    instead of patients, reused the point estimate's weights, or did not resample, would be far
    off. 30 data sets: the spread itself is uncertain by ~13%, hence the wide bounds."""
    points, ses = [], []
    for k in range(30):
        cohort, panel = world_frames(2000, seed=200 + k)
        data = prepare(cohort, panel, tte_cfg.decision_window_hours, COVS)
        clones = make_clones(data, strategies_of(tte_cfg), tte_cfg.grace_hours)
        est = estimate(data, clones, SETTINGS)
        boots = bootstrap(data, clones, SETTINGS, 30, seed=k, workers=2, start=est.coefficients)
        points.append(est.values[:, 0])
        ses.append(np.nanstd(boots[:, :, 0], axis=0, ddof=1))
    ratio = np.nanmean(ses, axis=0) / np.nanstd(points, axis=0, ddof=1)
    assert np.all((ratio > 0.6) & (ratio < 1.6)), dict(zip(clones.ids, ratio.round(2)))


def test_mean_weight_is_about_one(world_fit):
    data, clones, est, _, _, _ = world_fit
    last = data.row_hour == data.window_hours - 1
    for s, sid in enumerate(clones.ids):
        w = est.weights[s]
        risk = at_risk(data, clones.censor[s])
        # the uncensored clones stand for every patient alive: sum of weights / patients ~ 1
        ratio = w[risk & last].sum() / last.sum()
        assert 0.75 < ratio < 1.3, (sid, ratio)


def test_null_world_all_strategies_agree(tte_cfg):
    cohort, panel = world_frames(4000, seed=12, params=SynthParams.null())
    data = prepare(cohort, panel, tte_cfg.decision_window_hours, COVS)
    clones = make_clones(data, strategies_of(tte_cfg), tte_cfg.grace_hours)
    est = estimate(data, clones, SETTINGS)
    boots = bootstrap(data, clones, SETTINGS, 20, seed=2, workers=2, start=est.coefficients)
    ref = clones.ids.index("never")
    for s, sid in enumerate(clones.ids):
        if s == ref:
            continue
        diff = est.values[s, 0] - est.values[ref, 0]
        se = np.nanstd(boots[:, s, 0] - boots[:, ref, 0], ddof=1)
        assert abs(diff) <= 3 * se, (sid, diff, se)


def test_demo_runs_and_says_not_estimable(demo_db, tmp_path):
    from pipeline.cohort import build_cohort
    from pipeline.tte import run_tte

    db = tmp_path / "demo.duckdb"
    shutil.copy(demo_db.db_path, db)
    cfg = load_study_config()
    result = build_cohort(db, tmp_path / "out", cfg)
    section = run_tte(result.cohort_path, tmp_path / "tte", cfg)
    assert json.loads((tmp_path / "tte" / "tte.json").read_text()) == section
    assert section["role"] == "primary" and section["estimand"]
    assert not section["estimable"]
    for s in section["strategies"]:
        assert set(s) >= {"id", "threshold_ne_mcg_kg_min", "grace_hours", "risk_28d", "ci_low", "ci_high",
                          "risk_90d", "risk_90d_ci_low", "risk_90d_ci_high", "n_following",
                          "effective_sample_size", "estimable", "reason"}
        assert s["estimable"] is False and s["reason"] and s["risk_28d"] is None
    assert {c["reference"] for c in section["contrasts"]} == {"ne_0.25", "never"}
    assert all(c["risk_difference_28d"] is None for c in section["contrasts"])
    assert any("MAP not assessable" in w for w in section["diagnostics"]["warnings"])
    assert [r["item"] for r in section["protocol"]] == ["eligibility", "time zero", "strategies", "grace period",
                                                         "follow-up", "outcomes", "contrasts", "analysis"]


def test_cli_tte_writes_the_section_and_merges_it_into_results(tmp_path, capsys):
    from pipeline.cli import main

    cohort, panel = world_frames(1500, seed=4)
    cohort.write_parquet(tmp_path / "cohort.parquet")
    panel.write_parquet(tmp_path / "hourly_panel.parquet")
    (tmp_path / "results.json").write_text(json.dumps({"schema_version": "1.0.0", "models": []}))
    out = tmp_path / "out"
    assert main(["tte", "--cohort", str(tmp_path / "cohort.parquet"), "--out", str(out),
                 "--results", str(tmp_path / "results.json"), "--bootstrap", "4"]) == 0
    printed = capsys.readouterr().out
    merged = json.loads((out / "results.json").read_text())
    assert merged["schema_version"] == "1.0.0" and merged["models"] == []
    assert merged["tte"] == json.loads((out / "tte.json").read_text())
    assert merged["tte"]["n_bootstrap"] == 4
    assert "never" in printed and "28-day risk" in printed
    ok = [s for s in merged["tte"]["strategies"] if s["estimable"]]
    assert ok and all(s["ci_low"] <= s["risk_28d"] <= s["ci_high"] for s in ok)


def test_cli_tte_bad_input_is_one_line(tmp_path, capsys):
    from pipeline.cli import main

    cohort, panel = world_frames(50, seed=4)
    cohort.write_parquet(tmp_path / "cohort.parquet")
    panel.drop("ne_rate_mcg_kg_min").write_parquet(tmp_path / "hourly_panel.parquet")
    assert main(["tte", "--cohort", str(tmp_path / "cohort.parquet"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "hourly_panel.parquet" in err[0] and "ne_rate_mcg_kg_min" in err[0]


def test_no_eligible_patient_still_writes_the_section(tmp_path):
    from pipeline.tte import run_tte

    cohort, panel = world_frames(20, seed=1)
    cohort.head(0).write_parquet(tmp_path / "cohort.parquet")
    panel.head(0).write_parquet(tmp_path / "hourly_panel.parquet")
    section = run_tte(tmp_path / "cohort.parquet", tmp_path / "out", load_study_config())
    assert section["n_patients"] == 0 and not section["estimable"] and section["n_bootstrap"] == 0
    assert all(not s["estimable"] and s["reason"] for s in section["strategies"])
    assert not any("not assessable" in w for w in section["diagnostics"]["warnings"])

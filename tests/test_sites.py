"""Per-site results and their meta-analysis (pipeline/sites.py).

The random-effects method is checked where a wrong one fails: on simulated sites with known
between-site variance the DerSimonian-Laird interval covers the true mean about 95% of the time
while the fixed-effect interval does not; tau^2 and I^2 are truncated at 0 (statsmodels 0.15 is
not); the random-effects mean equals a hand computation of DerSimonian-Laird."""

from __future__ import annotations

import json
import math

import numpy as np
import polars as pl
import pytest

from pipeline.cli import main
from pipeline.errors import InputFileError
from pipeline.sites import (SITE_SCHEMA, log_odds_ratio, meta_analysis, pool_site_files, site_summary,
                            suppressed)


def _dl_by_hand(y: np.ndarray, v: np.ndarray) -> tuple[float, float]:
    w = 1 / v
    fe = (w * y).sum() / w.sum()
    q = (w * (y - fe) ** 2).sum()
    tau2 = max(0.0, (q - (len(y) - 1)) / (w.sum() - (w ** 2).sum() / w.sum()))
    wr = 1 / (v + tau2)
    return float((wr * y).sum() / wr.sum()), tau2


def test_random_effects_equal_a_hand_computed_dersimonian_laird():
    rng = np.random.default_rng(1)
    v = rng.uniform(0.02, 0.2, 12)
    y = 0.3 + rng.normal(0, math.sqrt(0.15), 12) + rng.normal(0, np.sqrt(v))
    res = meta_analysis(y, v, "dl")
    mean, tau2 = _dl_by_hand(y, v)
    assert tau2 > 0
    assert res["random_effects"]["value"] == pytest.approx(mean, rel=1e-10)
    assert res["tau2"] == pytest.approx(tau2, rel=1e-10)


def test_tau2_and_i2_are_truncated_at_zero():
    y = np.array([0.0, -0.51, -0.14, -0.24])  # far less spread than their variances: Q < df
    v = np.array([4.2, 4.2, 4.3, 4.2])
    res = meta_analysis(y, v, "dl")
    assert res["tau2"] == 0.0 and res["i2"] == 0.0
    assert res["random_effects"] == res["fixed_effect"]


def test_random_effects_interval_covers_under_heterogeneity_where_fixed_effect_fails():
    rng = np.random.default_rng(7)
    mu, tau2, k, reps = 0.4, 0.2, 15, 300
    cover = {"random_effects": 0, "fixed_effect": 0}
    tau2_hat = []
    for _ in range(reps):
        v = rng.uniform(0.01, 0.05, k)
        y = mu + rng.normal(0, math.sqrt(tau2), k) + rng.normal(0, np.sqrt(v))
        res = meta_analysis(y, v, "dl")
        tau2_hat.append(res["tau2"])
        for key in cover:
            cover[key] += res[key]["ci_low"] <= mu <= res[key]["ci_high"]
    assert 0.88 <= cover["random_effects"] / reps <= 0.99
    assert cover["fixed_effect"] / reps < 0.6
    assert np.mean(tau2_hat) == pytest.approx(tau2, rel=0.2)


def test_log_odds_ratio_and_its_correction():
    value, se, corrected = log_odds_ratio(20, 80, 10, 90)
    assert value == pytest.approx(math.log(20 * 90 / (80 * 10)))
    assert se == pytest.approx(math.sqrt(1 / 20 + 1 / 80 + 1 / 10 + 1 / 90))
    assert not corrected
    value, _, corrected = log_odds_ratio(0, 10, 5, 5)
    assert corrected and value == pytest.approx(math.log(0.5 * 5.5 / (10.5 * 5.5)))


def test_small_counts_and_their_complement_are_hidden():
    out = suppressed({"a": 3, "b": 40, "c": 25}, 11)
    assert out["a"] == "<11" and out["c"] == "<11" and out["b"] == 40  # the smallest other part too
    assert suppressed({"a": 0, "b": 40}, 11) == {"a": 0, "b": 40}
    assert suppressed({"a": 2, "b": 5, "c": 30}, 11) == {"a": "<11", "b": "<11", "c": 30}


def _cohort(rng, n_vp, n_ne, p_vp, p_ne):
    rows = [{"stay_id": i, "exposure": "vp_added", "death_28d": bool(rng.random() < p_vp)} for i in range(n_vp)]
    rows += [{"stay_id": 10_000 + i, "exposure": "ne_only", "death_28d": bool(rng.random() < p_ne)}
             for i in range(n_ne)]
    return pl.DataFrame(rows)


def test_site_files_hold_aggregates_only_and_pool(tmp_path, study_config):
    rng = np.random.default_rng(3)
    paths = []
    for site in range(4):
        summary = site_summary(f"h{site}", _cohort(rng, 60, 80, 0.45, 0.35), study_config, "note")
        text = json.dumps(summary)
        assert "stay_id" not in text and "time" not in text  # nothing patient-level
        assert summary["schema"] == SITE_SCHEMA and summary["estimate"]["value"] is not None
        path = tmp_path / f"site-h{site}.json"
        path.write_text(text)
        paths.append(path)
    small = site_summary("tiny", _cohort(rng, 3, 4, 0.5, 0.5), study_config, None)
    assert small["cohort_stays"] == "<11" and small["estimate"]["value"] is None
    (tmp_path / "site-tiny.json").write_text(json.dumps(small))
    pooled = pool_site_files(paths + [tmp_path / "site-tiny.json"], study_config)
    assert pooled.payload["k"] == 4 and pooled.payload["n_files"] == 5
    assert 0 <= pooled.payload["i2"] < 1 and pooled.payload["tau2"] >= 0
    with pytest.raises(InputFileError, match="appears in two files"):
        pool_site_files([paths[0], paths[0]], study_config)


def test_pool_command_refuses_a_foreign_file_in_one_line(tmp_path, capsys):
    bad = tmp_path / "results.json"
    bad.write_text(json.dumps({"schema_version": "1.0.0"}))
    assert main(["pool", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a vasoflow site results file" in err[0]


def test_mimic_sites_come_from_the_configured_column(demo_db, tmp_path):
    import duckdb

    from cohort_fixture import study_config_with
    from pipeline.sites import stay_sites

    con = duckdb.connect(str(demo_db.db_path), read_only=True)
    try:
        one = stay_sites(con, study_config_with(tmp_path, ""))
        units = stay_sites(con, study_config_with(tmp_path, '[sites]\nmimic_site_column = "first_careunit"\n'))
        expected = {r[0] for r in con.execute("SELECT DISTINCT first_careunit FROM valid_icustays").fetchall()}
    finally:
        con.close()
    assert set(one["site_id"]) == {"all"} and one.height == 140
    assert set(units["site_id"]) == expected and len(expected) > 1

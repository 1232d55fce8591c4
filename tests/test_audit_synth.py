"""The audit on synthetic data whose answers are known from the generator's ground truth
(pipeline.synth: ground_truth.parquet, built from the generator's plan, not from the SQL)."""

from __future__ import annotations

import polars as pl
import pytest

from pipeline.audit import AUDIT_RULES, run_audit
from pipeline.cohort import build_cohort
from pipeline.config import load_study_config
from pipeline.ingest import ingest
from pipeline.synth import generate


@pytest.fixture(scope="module")
def synth_audit(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("synth_audit")
    g = generate(tmp / "src", n_stays=200, seed=11)
    cfg = load_study_config()
    ingest(tmp / "src", tmp / "db.duckdb", cfg)
    build_cohort(tmp / "db.duckdb", tmp / "out", cfg)
    result = run_audit(tmp / "db.duckdb", tmp / "out", cfg)
    truth = pl.read_parquet(g.truth_path).filter(pl.col("in_cohort"))
    return result, truth


def test_one_row_per_cohort_stay_and_rule(synth_audit):
    result, truth = synth_audit
    audit = pl.read_parquet(result.audit_path)
    assert set(audit["stay_id"].to_list()) == set(truth["stay_id"].to_list())
    assert audit.height == truth.height * len(AUDIT_RULES)


def test_vp_rules_match_the_true_exposure_and_timing(synth_audit):
    result, truth = synth_audit
    wide = (
        pl.read_parquet(result.audit_path)
        .pivot(on="rule", index="stay_id", values="result")
        .join(truth.select("stay_id", "exposure", "timing_class"), on="stay_id")
    )
    assert wide.height == truth.height
    for row in wide.iter_rows(named=True):
        if row["exposure"] == "vp_added":
            expected = "fail" if row["timing_class"] == "delayed" else "pass"
            assert row["vp_delayed"] == expected, row
        else:
            assert row["vp_delayed"] == "not_applicable", row
        assert (row["vp_max_dose"] == "not_applicable") == (row["exposure"] == "ne_only"), row
    # the generator draws every exposure and timing class: both outcomes are exercised
    assert {"pass", "fail", "not_applicable"} <= set(wide["vp_delayed"].to_list())

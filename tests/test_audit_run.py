"""run_audit end to end: output files and columns, summary per rule/care unit/period, the
period switch, SPC per rule, errors a user can act on, the p-chart PNG, and the MIMIC-IV demo."""

from __future__ import annotations

import shutil

import polars as pl
import pytest

from cohort_fixture import CohortDB, sepsis_icd10, study_config_with, t
from pipeline.audit import AUDIT_RULES, p_chart_png, run_audit
from pipeline.config import load_study_config
from pipeline.errors import ConfigError, VasoflowError

SICU = "Surgical Intensive Care Unit (SICU)"
MICU = "Medical Intensive Care Unit (MICU)"


def _two_unit_db(path):
    """4 stays: 2 MICU in 2008 - 2010 (one VP 0.06 U/min, one 0.03), 1 MICU in 2011 - 2013 with
    NE only, 1 SICU in 2008 - 2010 with VP 0.03 U/min. Cohort relations built."""
    db = CohortDB(path)
    spec = [  # stay, care unit, anchor_year_group, VP U/min (None: no VP), NE start minute
        (1, MICU, "2008 - 2010", 0.06, 0),
        (2, MICU, "2008 - 2010", 0.03, 0),
        (3, MICU, "2011 - 2013", None, 60 * 24 * 40),  # index 40 days later: another month
        (4, SICU, "2008 - 2010", 0.03, 0),
    ]
    for stay, unit, group, vp, start in spec:
        subject, hadm = stay + 1_000_000, stay + 2_000_000
        db.patient(subject, anchor_year_group=group)
        db.admission(subject, hadm, t(start - 180), t(start + 60 * 24 * 6))
        db.stay(subject, hadm, stay, t(start - 120), t(start + 60 * 24 * 5), first_careunit=unit)
        db.diagnosis(subject, hadm, sepsis_icd10())
        db.infusion(stay, "norepinephrine", start, start + 300, 0.2)
        if vp is not None:
            db.infusion(stay, "vasopressin", start + 60, start + 300, vp, "units/min")
    db.build()
    db.con.close()


@pytest.fixture()
def audited(tmp_path):
    db_path = tmp_path / "fx.duckdb"
    _two_unit_db(db_path)
    return run_audit(db_path, tmp_path / "out", load_study_config()), tmp_path


def test_outputs_and_summary(audited):
    result, _ = audited
    audit = pl.read_parquet(result.audit_path)
    assert audit.columns == ["stay_id", "rule", "result", "detail"]
    assert audit.height == 4 * len(AUDIT_RULES)
    summary = pl.read_parquet(result.summary_path)
    assert summary.columns == ["rule", "care_unit", "period", "n_pass", "n_fail", "n_not_applicable",
                               "n_not_assessable", "adherence"]
    vp = summary.filter(pl.col("rule") == "vp_max_dose")
    micu_0810 = vp.filter((pl.col("care_unit") == MICU) & (pl.col("period") == "2008 - 2010")).row(0, named=True)
    assert (micu_0810["n_pass"], micu_0810["n_fail"], micu_0810["adherence"]) == (1, 1, 0.5)
    micu_1113 = vp.filter((pl.col("care_unit") == MICU) & (pl.col("period") == "2011 - 2013")).row(0, named=True)
    assert micu_1113["n_not_applicable"] == 1 and micu_1113["adherence"] is None
    # every stay is counted once per rule
    per_rule = summary.group_by("rule").agg(
        pl.sum_horizontal("n_pass", "n_fail", "n_not_applicable", "n_not_assessable").sum().alias("n")
    )
    assert set(per_rule["n"].to_list()) == {4}


def test_spc_per_rule_and_period(audited):
    result, _ = audited
    spc = pl.read_parquet(result.spc_path)
    vp = spc.filter(pl.col("rule") == "vp_max_dose").sort("period")
    # care units pooled: 2008 - 2010 has 2 passes of 3 assessed; 2011 - 2013 none assessed
    assert vp["period"].to_list() == ["2008 - 2010", "2011 - 2013"]
    assert vp["n"].to_list() == [3, 0]
    assert vp["p"].to_list()[0] == pytest.approx(2 / 3)
    assert vp["centre_line"].to_list()[0] == pytest.approx(2 / 3)
    assert set(spc["rule"].unique().to_list()) == set(AUDIT_RULES)
    png = p_chart_png(spc, "vp_max_dose")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert p_chart_png(spc, "map_below_65")[:4] == b"\x89PNG"  # nothing assessed: still a PNG
    assert "vp_max_dose" in result.describe()


def test_calendar_month_period(tmp_path):
    db_path = tmp_path / "fx.duckdb"
    _two_unit_db(db_path)
    cfg = study_config_with(tmp_path, '[study]\nperiod = "calendar_month"\n')
    result = run_audit(db_path, tmp_path / "out", cfg)
    # T0 is 2150-01-01 08:00; stay 3 starts NE 40 days later (2150-02-10)
    assert sorted(result.summary["period"].unique().to_list()) == ["2150-01", "2150-02"]


def test_calendar_quarter_period_and_its_minimum_points(tmp_path):
    db_path = tmp_path / "fx.duckdb"
    _two_unit_db(db_path)
    cfg = study_config_with(tmp_path, '[study]\nperiod = "calendar_quarter"\n[audit]\nspc_min_points = 8\n')
    result = run_audit(db_path, tmp_path / "out", cfg)
    # 2150-01-01 and 2150-02-10 are both in the first quarter of 2150
    assert result.summary["period"].unique().to_list() == ["2150-Q1"]
    assert "calendar quarter" in result.spc_note and "minimum 8 points" in result.spc_note
    assert "trial limits" in result.spc_note  # 1 point < 8
    assert result.spc_note in result.describe()


def test_mimic_periods_say_why_the_chart_is_not_a_time_series(audited):
    result, _ = audited
    note = result.spc_note
    assert "anchor_year_group" in note and "not a time series" in note and "shifts" in note
    assert "calendar_month" in note  # and what to use on unshifted data
    assert note in result.describe()


def test_a_changed_threshold_takes_effect_without_reingest(audited, tmp_path):
    result, base = audited
    cfg = study_config_with(tmp_path, "[audit]\nvp_max_dose_units_min = 0.1\n")
    again = run_audit(base / "fx.duckdb", base / "out2", cfg)
    audit = pl.read_parquet(again.audit_path).filter(pl.col("rule") == "vp_max_dose")
    assert audit.filter(pl.col("stay_id") == 1)["result"].item() == "pass"


def test_user_errors(tmp_path):
    with pytest.raises(VasoflowError, match="not found"):
        run_audit(tmp_path / "missing.duckdb", tmp_path / "out", load_study_config())
    bare = CohortDB(tmp_path / "bare.duckdb")  # ingested tables, no cohort built
    bare.con.close()
    with pytest.raises(VasoflowError, match="mart_cohort"):
        run_audit(tmp_path / "bare.duckdb", tmp_path / "out", load_study_config())
    _two_unit_db(tmp_path / "fx.duckdb")
    with pytest.raises(ConfigError, match="study.period"):
        run_audit(tmp_path / "fx.duckdb", tmp_path / "out",
                  study_config_with(tmp_path, '[study]\nperiod = "weekly"\n'))


def test_demo_end_to_end(demo_db, tmp_path):
    """MIMIC-IV demo (no chartevents): map_below_65 is not assessable for every stay; the VP
    rules agree with the cohort helper's exposure and timing class."""
    from pipeline.cohort import build_cohort

    db_copy = tmp_path / "demo.duckdb"
    shutil.copy(demo_db.db_path, db_copy)  # the shared ingest stays read-only
    cfg = study_config_with(tmp_path, "[cohort]\nrequire_sepsis_diagnosis = false\nfirst_stay_only = false\n")
    cohort = pl.read_parquet(build_cohort(db_copy, tmp_path / "out", cfg).cohort_path)
    result = run_audit(db_copy, tmp_path / "out", cfg)
    audit = pl.read_parquet(result.audit_path)
    assert audit.height == cohort.height * len(AUDIT_RULES)
    map_rule = audit.filter(pl.col("rule") == "map_below_65")
    assert set(map_rule["result"].to_list()) == {"not_assessable"}
    wide = audit.pivot(on="rule", index="stay_id", values="result").join(cohort, on="stay_id")
    for row in wide.iter_rows(named=True):
        # vp_delayed is judged only where VP was added to NE, and fails exactly for 'delayed'
        if row["exposure"] != "vp_added":
            assert row["vp_delayed"] == "not_applicable"
        else:
            assert (row["vp_delayed"] == "fail") == (row["timing_class"] == "delayed"), row["stay_id"]
        # VP rules apply exactly when VP ran in the index episode
        has_vp = row["exposure"] in ("vp_added", "vp_before_ne")
        assert (row["vp_max_dose"] != "not_applicable") == has_vp, row["stay_id"]
        # every demo VP start has NE infusing (test_cohort_demo checks the covering NE rows)
        if row["exposure"] == "vp_added":
            assert row["vp_monotherapy"] == "pass", row["stay_id"]
    # the demo has procedureevents: the arterial-line rule is assessable for every stay
    assert "not_assessable" not in audit.filter(pl.col("rule") == "arterial_line")["result"].to_list()

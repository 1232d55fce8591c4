"""The eICU path against known truth: the synthetic world of pipeline.synth written as eICU
tables (pipeline/synth/eicu.py) must give the MIMIC path's cohort on the same patients: the
same stays, exposures, VASST strata and NE dose at VP start, quarantine exactly the injected
ml/hr-without-concentration and unitless rows, convert the bag (ml/hr with drugamount and
volumeoffluid) rows, and lose exactly the deaths after hospital discharge."""

from __future__ import annotations

import json

import duckdb
import polars as pl
import pytest

from pipeline.cohort import build_cohort
from pipeline.ingest import ingest
from pipeline.synth import generate
from pipeline.synth.eicu import write_eicu


@pytest.fixture(scope="module")
def worlds(tmp_path_factory, study_config):
    tmp = tmp_path_factory.mktemp("eicu_synth")
    generate(tmp / "mimic", n_stays=300, seed=11)
    truth = write_eicu(tmp / "mimic", tmp / "eicu", n_sites=5, seed=11, config=study_config)
    out = {}
    for name in ("mimic", "eicu"):
        db = ingest(tmp / name, tmp / f"{name}.duckdb", study_config).db_path
        res = build_cohort(db, tmp / f"{name}_out", study_config)
        out[name] = (db, pl.read_parquet(res.cohort_path))
    return truth, out, tmp


def test_synth_writes_an_eicu_layout(worlds):
    truth, _, tmp = worlds
    assert json.loads((tmp / "eicu" / "eicu_truth.json").read_text()) == truth
    assert (tmp / "eicu" / "infusionDrug.csv.gz").exists()  # the release's spelling, read case-insensitively
    assert truth["expected_quarantine"]["conformance.rate_unit_no_concentration"] > 0
    assert truth["ne_bag_rows"] > 0 and truth["carrier_rows"] > 0


def test_eicu_path_reproduces_the_mimic_cohort(worlds):
    _, out, _ = worlds
    m, e = out["mimic"][1], out["eicu"][1]
    assert m.height > 100
    assert sorted(m["stay_id"]) == sorted(e["stay_id"])
    j = m.join(e, on="stay_id", suffix="_e")
    assert (j["exposure"] == j["exposure_e"]).all()
    assert j.filter(pl.col("vasst_stratum").is_not_null()).height > 20
    assert (j["vasst_stratum"].fill_null("-") == j["vasst_stratum_e"].fill_null("-")).all()
    vp = j.filter(pl.col("ne_rate_at_vp_mcg_kg_min").is_not_null())
    # rates written to 4-6 significant decimals in the eICU files
    assert ((vp["ne_rate_at_vp_mcg_kg_min"] - vp["ne_rate_at_vp_mcg_kg_min_e"]).abs() < 1e-3).all()


def test_quarantine_is_exactly_the_injected_traps(worlds):
    truth, out, _ = worlds
    con = duckdb.connect(str(out["eicu"][0]), read_only=True)
    rules = dict(con.execute("SELECT rule, count(*) FROM quarantine GROUP BY 1").fetchall())
    bag = con.execute("SELECT count(*) FROM valid_inputevents v JOIN raw_eicu_infusiondrug r USING (source_row) "
                      "WHERE r.drugname = 'Norepinephrine (ml/hr)' AND r.drugamount > 0").fetchone()[0]
    con.close()
    assert rules == truth["expected_quarantine"]
    assert bag > 0  # ml/hr rows WITH a concentration are converted, not quarantined


def test_deaths_after_discharge_are_lost_as_in_eicu(worlds):
    _, out, _ = worlds
    m, e = out["mimic"][1], out["eicu"][1]
    j = m.join(e, on="stay_id", suffix="_e")
    con = duckdb.connect(str(out["mimic"][0]), read_only=True)
    adm = con.execute("SELECT subject_id, max(dischtime) AS last_disch FROM valid_admissions GROUP BY 1").pl()
    con.close()
    j = j.join(adm, on="subject_id")
    in_hospital = j["death_time"].is_not_null() & (j["death_time"] <= j["last_disch"])
    # deaths in hospital are the same deaths; every other death is unknown to the eICU path
    assert (j.filter(in_hospital)["death_28d"] == j.filter(in_hospital)["death_28d_e"]).all()
    after = j.filter(j["death_time"].is_not_null() & ~in_hospital)
    assert after.height > 0 and after["death_time_e"].is_null().all()

"""[units] norepinephrine_salt: tartrate-charted NE rates become base before any threshold
(VASST strata, timing classes, audit, plausibility bounds)."""

from __future__ import annotations

import shutil

import polars as pl
import pytest

from cohort_fixture import CONCEPTS, CohortDB, study_config_with
from pipeline.cohort import build_cohort
from pipeline.concepts import drug_units_for
from pipeline.errors import ConfigError
from schemas.validation import build_raw_schema

FACTOR = CONCEPTS.raw["drugs"]["norepinephrine"]["tartrate_to_base"]
TARTRATE = "[units]\nnorepinephrine_salt = \"tartrate\"\n"


def test_factor_applies_to_norepinephrine_only(tmp_path):
    assert FACTOR == pytest.approx(0.5)
    du = drug_units_for(CONCEPTS, study_config_with(tmp_path, TARTRATE))
    by_drug = dict(zip(du["drug"].to_list(), du["salt_to_base"].to_list()))
    assert by_drug["norepinephrine"] == FACTOR
    assert {v for d, v in by_drug.items() if d != "norepinephrine"} == {1.0}
    base = drug_units_for(CONCEPTS, study_config_with(tmp_path, "[units]\nnorepinephrine_salt = \"base\"\n"))
    assert set(base["salt_to_base"].to_list()) == {1.0}
    with pytest.raises(ConfigError, match="norepinephrine_salt"):
        drug_units_for(CONCEPTS, study_config_with(tmp_path, "[units]\nnorepinephrine_salt = \"bitartrate\"\n"))


def _vp_stay(db: CohortDB, stay: int, ne_rate: float, weight: float) -> None:
    db.septic_stay(stay)
    db.infusion(stay, "norepinephrine", 0, 600, ne_rate, weight=weight)
    db.infusion(stay, "vasopressin", 120, 600, 2.4, "units/hour", weight=weight)


def test_tartrate_thresholds_compare_base_doses(tmp_path):
    def build(cfg):
        db = CohortDB()
        _vp_stay(db, 1, 0.6, 80.0)  # 0.6 tartrate = 0.3 base mcg/kg/min; 24 mcg/min base
        _vp_stay(db, 2, 0.24, 50.0)  # 0.12 base; 6 mcg/min base
        return db.build(cfg)

    base = build(None)
    tart = build(study_config_with(tmp_path, TARTRATE))
    b1, t1 = base.row(1), tart.row(1)
    assert (b1["ne_rate_at_vp_mcg_kg_min"], b1["timing_class"]) == (pytest.approx(0.6), "delayed")
    assert (t1["ne_rate_at_vp_mcg_kg_min"], t1["ne_rate_at_vp_mcg_min"]) == (pytest.approx(0.3), pytest.approx(24.0))
    assert (t1["timing_class"], t1["vasst_stratum"]) == ("ssc_window", "more_severe")
    assert t1["ne_max_rate_mcg_kg_min"] == pytest.approx(0.3)
    b2, t2 = base.row(2), tart.row(2)
    assert (b2["vasst_stratum"], b2["timing_class"]) == ("less_severe", "recommended")  # 12 mcg/min
    assert (t2["vasst_stratum"], t2["timing_class"]) == ("less_severe", "recommended")  # 6 mcg/min
    assert t2["ne_rate_at_vp_mcg_min"] == pytest.approx(6.0)
    # the audit reads the same staged rates: 'vp_delayed' sees 0.6 in base, 0.3 in tartrate
    assert base.frame("select max(rate_mcg_kg_min) m from stg_inputevents_vasoactive where drug = 'norepinephrine'")["m"][0] == pytest.approx(0.6)
    assert tart.frame("select max(rate_mcg_kg_min) m from stg_inputevents_vasoactive where drug = 'norepinephrine'")["m"][0] == pytest.approx(0.3)


def test_plausibility_bound_is_in_base(tmp_path):
    ne = CONCEPTS.raw["drugs"]["norepinephrine"]
    bound = ne["plausible_max_canonical"]
    row = {"source_row": [1], "subject_id": [1], "hadm_id": [1], "stay_id": [1], "itemid": [ne["itemids"][0]],
           "rate": [bound * 1.5], "rateuom": ["mcg/kg/min"], "patientweight": [80.0], "amount": [1.0],
           "statusdescription": ["FinishedRunning"]}
    from datetime import datetime

    frame = pl.DataFrame(row).with_columns(
        starttime=pl.lit(datetime(2150, 1, 1, 8)), endtime=pl.lit(datetime(2150, 1, 1, 9)),
        _stay_intime=pl.lit(datetime(2150, 1, 1)), _stay_outtime=pl.lit(datetime(2150, 1, 3)))

    def failed(cfg) -> set[str]:
        import pandera.polars as pa

        schema = build_raw_schema("inputevents", CONCEPTS, cfg)
        sub = frame.select([c for c in frame.columns if c in schema.columns])
        for c, col in schema.columns.items():
            if c not in sub.columns:
                sub = sub.with_columns(pl.lit(None, dtype=col.dtype.type).alias(c))
        try:
            schema.validate(sub, lazy=True)
            return set()
        except pa.errors.SchemaErrors as exc:
            return set(exc.failure_cases["check"].to_list())

    from pipeline.config import load_study_config

    assert "plausibility.rate_range" in failed(load_study_config())  # 7.5 base: implausible
    assert "plausibility.rate_range" not in failed(study_config_with(tmp_path, TARTRATE))  # 3.75 base


def test_demo_stays_under_tartrate(demo_db, tmp_path):
    db = tmp_path / "demo.duckdb"
    shutil.copy(demo_db.db_path, db)
    cfg = study_config_with(tmp_path, TARTRATE + "[cohort]\nrequire_sepsis_diagnosis = false\nfirst_stay_only = false\n")
    cohort = pl.read_parquet(build_cohort(db, tmp_path / "out", cfg).cohort_path)
    by_stay = {r["stay_id"]: r for r in cohort.iter_rows(named=True)}
    # 39061571: 0.400 mcg/kg/min x 88.4 kg = 35.4 mcg/min, delayed when charted as base; as
    # tartrate it is 0.200 base, 17.7 mcg/min: recommended, VASST more severe (>= 15)
    r = by_stay[39061571]
    assert r["ne_rate_at_vp_mcg_kg_min"] == pytest.approx(0.2, abs=1e-3)
    assert r["ne_rate_at_vp_mcg_min"] == pytest.approx(17.7, abs=0.05)
    assert (r["timing_class"], r["vasst_stratum"]) == ("recommended", "more_severe")
    # 33281088: 0.300 x 49.8 = 14.9 mcg/min as base; 0.150 and 7.5 mcg/min as tartrate
    r = by_stay[33281088]
    assert (r["timing_class"], r["vasst_stratum"]) == ("recommended", "less_severe")

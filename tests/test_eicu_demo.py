"""End to end on the real eICU-CRD demo 2.0.1 (../shared/data): detection, ingest, conversion,
quarantine and cohort, with the facts measured on the demo (issue 14) checked against the
database the pipeline builds. Counts are read off the raw file independently where they can be."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import duckdb
import polars as pl
import pytest

from pipeline.cohort import build_cohort
from pipeline.errors import InputFileError
from pipeline.ingest import ingest
from pipeline.sources import FORMAT_ENV, detect_source_format

EICU_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "eicu-crd-demo-2.0.1"


@pytest.fixture(scope="module")
def eicu_dir():
    if not (EICU_DIR / "patient.csv.gz").exists():
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"eICU-CRD demo not found at {EICU_DIR}")
        pytest.skip(f"eICU-CRD demo not found at {EICU_DIR}")
    return EICU_DIR


@pytest.fixture(scope="module")
def eicu_db(eicu_dir, tmp_path_factory, study_config):
    out = tmp_path_factory.mktemp("eicu")
    result = ingest(eicu_dir, out / "eicu.duckdb", study_config)
    con = duckdb.connect(str(result.db_path), read_only=True)
    yield result, con
    con.close()


@pytest.fixture(scope="module")
def eicu_cohort(eicu_db, tmp_path_factory, study_config):
    tmp = tmp_path_factory.mktemp("eicu_cohort")
    shutil.copy(eicu_db[0].db_path, tmp / "e.duckdb")
    return build_cohort(tmp / "e.duckdb", tmp / "out", study_config), tmp / "e.duckdb"


def test_layout_is_detected(eicu_dir, demo_dir, tmp_path, monkeypatch):
    monkeypatch.delenv(FORMAT_ENV, raising=False)
    assert detect_source_format(eicu_dir) == "eicu"
    assert detect_source_format(demo_dir) == "mimic"
    both = tmp_path / "both"
    (both / "icu").mkdir(parents=True)
    for name in ("patient.csv.gz", "infusiondrug.csv"):
        (both / name).write_bytes(b"")
    with pytest.raises(InputFileError, match="--source-format"):
        detect_source_format(both)
    monkeypatch.setenv(FORMAT_ENV, "mimic")
    assert detect_source_format(both) == "mimic"


def test_a_missing_required_eicu_table_is_one_line(eicu_dir, tmp_path, study_config, monkeypatch):
    monkeypatch.delenv(FORMAT_ENV, raising=False)
    src = tmp_path / "e"
    src.mkdir()
    for name in ("patient.csv.gz", "infusiondrug.csv.gz"):
        shutil.copy(eicu_dir / name, src / name)
    with pytest.raises(InputFileError, match="required eICU table 'diagnosis' not found"):
        ingest(src, tmp_path / "x.duckdb", study_config)


def test_ledger_counts_every_row(eicu_db):
    result, _ = eicu_db
    t = {x.table: x for x in result.tables}
    assert t["eicu_patient"].rows_read == 2520
    assert t["eicu_infusiondrug"].rows_read == 38256
    for x in result.tables:
        assert x.rows_read == x.rows_loaded + x.rows_quarantined


def test_drug_and_unit_are_parsed_from_the_name(eicu_db):
    _, con = eicu_db
    counts = {(d, u): (n, s) for d, u, n, s in con.execute(
        "SELECT drug, unit, count(*), count(DISTINCT patientunitstayid) FROM stg_eicu__infusiondrug GROUP BY 1, 2"
    ).fetchall()}
    # issue 14: NE (mcg/min) 2,360 rows / 84 stays (three drugnames end in '(mcg/min)'), NE
    # (ml/hr) 2,053/80, NE () 456/22, NE (mcg/kg/min) 190/8, VP (units/min) 261/19, VP (ml/hr) 342/12
    assert counts[("norepinephrine", "mcg/min")] == (2360, 84)
    assert counts[("norepinephrine", "ml/hr")] == (2053, 80)
    assert counts[("norepinephrine", "mcg/kg/min")] == (190, 8)
    assert counts[("vasopressin", "units/min")] == (261, 19)
    assert counts[("vasopressin", "ml/hr")] == (342, 12)
    # 'Norepinephrine ()' 456 rows and 'Norepinephrine' (no parentheses) 17: both unitless
    assert counts[("norepinephrine", "")][0] == 456 + 17
    # 'norepinephrine' is tested before 'epinephrine'; carrier volumes are no drug
    assert con.execute("SELECT count(*) FROM stg_eicu__infusiondrug WHERE drug = 'epinephrine' "
                       "AND lower(drugname) LIKE '%norepinephrine%'").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM stg_eicu__infusiondrug "
                       "WHERE lower(drugname) LIKE 'volume (ml)%'").fetchone()[0] == 0
    raw_carriers = con.execute("SELECT count(*) FROM raw_eicu_infusiondrug WHERE lower(drugname) LIKE 'volume (ml)%' "
                               "AND lower(drugname) LIKE '%phenylephrine%'").fetchone()[0]
    assert raw_carriers >= 1  # 'Volume (ml) Phenylephrine' exists and was not read as phenylephrine


def test_unconvertible_doses_are_quarantined_with_their_rule(eicu_db):
    _, con = eicu_db
    rules = dict(con.execute(
        "SELECT q.rule, count(*) FROM quarantine q JOIN raw_eicu_infusiondrug r USING (source_row) "
        "WHERE q.table_name = 'eicu_infusiondrug' AND r.drugname = 'Norepinephrine (ml/hr)' GROUP BY 1").fetchall())
    assert rules == {"conformance.rate_unit_no_concentration": 2053}  # no ml/hr row has a concentration
    unitless = con.execute(
        "SELECT count(*) FROM quarantine q JOIN raw_eicu_infusiondrug r USING (source_row) "
        "WHERE q.table_name = 'eicu_infusiondrug' AND q.rule = 'conformance.rate_unit_missing' "
        "AND r.drugname = 'Norepinephrine ()'").fetchone()[0]
    assert unitless == 456
    # none of them reaches the conformed infusions
    assert con.execute("SELECT count(*) FROM valid_inputevents v JOIN quarantine q ON q.source_row = v.source_row "
                       "AND q.table_name = 'eicu_infusiondrug'").fetchone()[0] == 0
    # the implausible doses of the issue: NE 2,666.67 mcg/min and VP 0.4 units/min
    values = {v for (v,) in con.execute("SELECT r.drugrate FROM quarantine q JOIN raw_eicu_infusiondrug r "
                                        "USING (source_row) WHERE q.table_name = 'eicu_infusiondrug' "
                                        "AND q.rule = 'plausibility.rate_range'").fetchall()}
    assert 2666.67 in values and 0.4 in values


def test_the_concentration_formula_reproduces_charted_doses(eicu_db):
    """The formula the staging applies to ml/hr rows with a bag (config/eicu.toml
    [infusion.concentration]) gives drugrate on 1,769 of the 1,772 NE mcg/min rows that carry
    drugamount / volumeoffluid (issue 14)."""
    _, con = eicu_db
    n, agree = con.execute("""
        SELECT count(*), count(*) FILTER (WHERE abs(r.infusionrate * r.drugamount / r.volumeoffluid
                   * k.amount_to_dose / 60.0 - r.drugrate) <= 0.01 * r.drugrate + 0.05)
        FROM raw_eicu_infusiondrug r JOIN stg_eicu__infusiondrug s USING (source_row)
        JOIN concept_eicu_concentration k ON k.drug = s.drug
        WHERE s.drug = 'norepinephrine' AND s.unit = 'mcg/min' AND r.drugamount IS NOT NULL""").fetchone()
    assert (n, agree) == (1772, 1769)


def test_mcg_per_minute_is_divided_by_the_weight(eicu_db):
    _, con = eicu_db
    rows = con.execute("""
        SELECT s.drugrate, s.weight_kg, v.rate, v.rateuom FROM stg_eicu__infusiondrug s
        JOIN valid_inputevents v USING (source_row) WHERE s.drug = 'norepinephrine' AND s.unit = 'mcg/min'
        AND s.drugrate > 0""").pl()
    assert rows.height > 1000 and set(rows["rateuom"]) == {"mcg/kg/min"}
    assert ((rows["rate"] - rows["drugrate"] / rows["weight_kg"]).abs() < 1e-9).all()
    # without a weight it is quarantined, never guessed: 47 NE mcg/min rows of 3 stays
    assert con.execute("SELECT count(*), count(DISTINCT r.patientunitstayid) FROM quarantine q "
                       "JOIN raw_eicu_infusiondrug r USING (source_row) WHERE q.rule = 'completeness.weight_for_rate' "
                       "AND r.drugname LIKE 'Norepinephrine%(mcg/min)'").fetchone() == (47, 3)


def test_point_rows_hold_until_the_next_row_capped(eicu_db):
    _, con = eicu_db
    cap = con.execute("SELECT carry_forward_cap_minutes FROM concept_eicu_param").fetchone()[0]
    longest = con.execute("SELECT max(date_diff('minute', starttime, endtime)) FROM valid_inputevents").fetchone()[0]
    assert longest == cap
    # an NE mcg/min row ends at the next charted NE offset, not at the ml/hr row of the same offset
    bad = con.execute("""
        SELECT count(*) FROM stg_eicu__infusiondrug a
        WHERE a.end_offset <= a.infusionoffset AND a.convert_rule IS NULL""").fetchone()[0]
    assert bad == 0


def test_ages_sites_and_death(eicu_db):
    _, con = eicu_db
    assert con.execute("SELECT count(*) FROM stg_eicu__patient WHERE age_years = 90").fetchone()[0] == 98
    assert con.execute("SELECT count(DISTINCT site_id) FROM source_site").fetchone()[0] == 186
    expired = con.execute("SELECT count(DISTINCT patienthealthsystemstayid) FROM raw_eicu_patient "
                          "WHERE hospitaldischargestatus = 'Expired'").fetchone()[0]
    assert con.execute("SELECT count(*) FROM valid_admissions WHERE deathtime IS NOT NULL").fetchone()[0] == expired
    available = dict(con.execute("SELECT table_name, is_available FROM source_table").fetchall())
    assert available["labevents"] is False and available["chartevents"] is True
    assert con.execute("SELECT count(*) FROM valid_patients WHERE dod IS NOT NULL").fetchone()[0] == 0


def test_cohort_follow_up_ends_at_hospital_discharge(eicu_cohort, eicu_db):
    result, db = eicu_cohort
    cohort = pl.read_parquet(result.cohort_path)
    assert cohort.height > 20
    assert not cohort["has_lactate_source"].any() and cohort["has_map_source"].all()
    con = duckdb.connect(str(db), read_only=True)
    disch = con.execute("SELECT subject_id, max(dischtime) AS last FROM valid_admissions GROUP BY 1").pl()
    con.close()
    alive = cohort.filter(pl.col("death_time").is_null()).join(disch, on="subject_id")
    assert alive.height > 0
    # the study's post-discharge coverage days are NOT added: eICU knows no death after discharge
    assert (alive["followup_end_time"] == alive["last"]).all()
    note = [w for w in result_notes(eicu_db) if "death is known only until hospital discharge" in w]
    assert note and not any(ch.isdigit() for ch in note[0])  # the report shows digit-free warnings


def result_notes(eicu_db):
    return list(eicu_db[0].warnings)


@pytest.mark.slow  # ~20-50 s (every step); the fast checks above cover ingest and cohort
def test_run_by_site_on_the_demo(eicu_dir, tmp_path, capsys, monkeypatch):
    """The whole study on eICU through the CLI: cohort, models, audit and report are the shared
    ones; --by-site writes one aggregate file per hospital of the cohort and their pooling."""
    import json

    from pipeline.cli import main

    monkeypatch.delenv(FORMAT_ENV, raising=False)
    assert main(["run", "--source", str(eicu_dir), "--out", str(tmp_path / "out"), "--no-prefect", "--by-site"]) == 0
    out = capsys.readouterr().out
    latest = tmp_path / "out" / "latest"
    cohort = pl.read_parquet(latest / "cohort.parquet")
    con = duckdb.connect(str(latest / "vasoflow.duckdb"), read_only=True)
    sites = con.execute("SELECT stay_id, site_id FROM source_site").pl()
    con.close()
    expected = cohort.join(sites, on="stay_id")["site_id"].n_unique()
    files = sorted((latest / "sites").glob("site-*.json"))
    assert len(files) == expected and "by site:" in out
    for f in files:
        data = json.loads(f.read_text())
        assert isinstance(data["cohort_stays"], str) or data["cohort_stays"] >= 11  # the demo is tiny
    pooled = json.loads((latest / "sites" / "sites_pooled.json").read_text())
    assert "pooled_data" in pooled
    report = (latest / "report.html").read_text()
    assert "death is known only until hospital discharge" in report


def test_audit_rules_eicu_cannot_assess_say_so(eicu_cohort, tmp_path, study_config):
    """Fluids (intakeOutput) and arterial lines are not in the tables read: those rules are
    "not assessable" on eICU, not "fail"; MAP (vitalAperiodic) is assessed."""
    from pipeline.audit import run_audit

    _, db = eicu_cohort
    run_audit(db, tmp_path / "audit", study_config)
    audit = pl.read_parquet(tmp_path / "audit" / "audit.parquet")
    results = {r: set(g["result"]) for (r,), g in audit.group_by(["rule"])}
    assert results["fluids_30ml_kg"] == {"not_assessable"}
    assert results["arterial_line"] == {"not_assessable"}
    assert results["map_below_65"] - {"not_assessable", "not_applicable"}

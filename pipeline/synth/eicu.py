"""An eICU-CRD-shaped synthetic dataset: the MIMIC-IV-layout world of ``pipeline.synth``, the
same patients, written as eICU tables, so the eICU path is checked against known truth.

``write_eicu(mimic_dir, out_dir, n_sites, seed, config)`` ingests the generated MIMIC-IV folder
(the validated rows, so the MIMIC traps stay a MIMIC matter), then writes ``patient``,
``infusionDrug``, ``diagnosis``, ``treatment``, ``vitalAperiodic`` and ``hospital`` the way eICU
does:

* times as minutes from unit admission; hospital admission at ``hospitaladmitoffset`` < 0;
  death only as ``hospitaldischargestatus = 'Expired'`` (deaths after discharge are lost, as in
  eICU); ages above 89 as '> 89';
* infusions as point rows charted every ``CHART_MINUTES`` while a MIMIC rate interval runs,
  and a 0 where an interval ends with no next one; NE, epinephrine and phenylephrine in mcg/min
  (x the row's weight), vasopressin in units/min, the others in mcg/kg/min with patientweight;
  1 in ``KG_STAY_EVERY`` stays charts NE in mcg/kg/min; 1 in ``BAG_STAY_EVERY`` stays charts NE
  in ml/hr with the bag's drugamount/volumeoffluid (convertible); angiotensin II is not written
  (eICU names no unit for it in config/eicu.toml);
* the traps of eICU, each counted in ``eicu_truth.json``: a carrier row 'Volume (ml)
  Norepinephrine (ml/hr)' beside every NE row; in 1 in ``DUP_STAY_EVERY`` stays an extra
  'Norepinephrine (ml/hr)' row without concentration and a 'Norepinephrine ()' row at the same
  offsets as the NE rows (quarantined, and they must not cut the mcg/min intervals);
* ``hospitalid``: each patient at one of ``n_sites`` hospitals (seeded).

Known truth: ``eicu_truth.json`` (rows of each trap, the expected quarantine counts) and
``ground_truth.parquet`` copied from the MIMIC world (stay_id = patientunitstayid).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path


from pipeline import duckdb_settings
from pipeline.atomic import write_text_atomic

CHART_MINUTES = 60  # eICU infusion rows are usually hourly (config/eicu.toml [infusion])
KG_STAY_EVERY = 7
BAG_STAY_EVERY = 11
DUP_STAY_EVERY = 5
BAG_MG, BAG_ML = 4.0, 250.0  # NE 4 mg in 250 ml (the demo's usual bag)

_EICU_NAME = {  # concept drug -> (eICU drugname, per-kg?)
    "norepinephrine": ("Norepinephrine (mcg/min)", False),
    "epinephrine": ("Epinephrine (mcg/min)", False),
    "phenylephrine": ("Phenylephrine (mcg/min)", False),
    "vasopressin": ("Vasopressin (units/min)", False),
    "dopamine": ("Dopamine (mcg/kg/min)", True),
    "dobutamine": ("Dobutamine (mcg/kg/min)", True),
    "milrinone": ("Milrinone (mcg/kg/min)", True),
}


def _copy(con, sql: str, path: Path) -> int:
    con.execute(f"COPY ({sql}) TO '{path}' (HEADER, DELIMITER ',', COMPRESSION gzip)")
    return con.execute(f"SELECT count(*) FROM read_csv('{path}', all_varchar = true)").fetchone()[0]


def write_eicu(mimic_dir: Path, out_dir: Path, n_sites: int, seed: int, config) -> dict:
    """Write the eICU tables of the MIMIC-layout world in ``mimic_dir`` into ``out_dir``."""
    from pipeline.ingest import ingest

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="vasoflow-eicu-synth-"))
    try:
        db = work / "mimic.duckdb"
        ingest(Path(mimic_dir), db, config)
        con = duckdb_settings.connect(db)
        truth = _write_tables(con, out_dir, n_sites, seed)
        con.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for name in ("ground_truth.parquet", "true_effects.json", "GENERATIVE_MODEL.md"):
        if (Path(mimic_dir) / name).exists():
            shutil.copy2(Path(mimic_dir) / name, out_dir / name)
    write_text_atomic(out_dir / "eicu_truth.json", json.dumps(truth, indent=2, sort_keys=True))
    return truth


def _write_tables(con, out: Path, n_sites: int, seed: int) -> dict:
    from pipeline.synth import synth_config

    # The hemodialysis procedure item the MIMIC-shaped world writes (concepts.toml [synth],
    # cited there) becomes eICU's intermittent-haemodialysis treatment string; CRRT the other.
    hd_itemid = int(synth_config()["rrt_proc"]["hd"])
    con.execute("SELECT setseed(?)", [((seed % 1000) / 1000.0)])
    con.execute(f"""
        CREATE TEMP TABLE stay AS
        WITH weight AS (
            SELECT stay_id, arg_min(patientweight, starttime) AS weight_kg
            FROM valid_inputevents WHERE patientweight IS NOT NULL GROUP BY stay_id
        ),
        site AS (
            SELECT subject_id, 1 + floor(random() * {int(n_sites)})::BIGINT AS hospitalid
            FROM (SELECT DISTINCT subject_id FROM valid_icustays ORDER BY subject_id)
        )
        SELECT i.stay_id, i.hadm_id, i.subject_id, i.intime, i.outtime, i.first_careunit,
               a.admittime, a.dischtime, a.deathtime, p.gender,
               p.anchor_age + year(a.admittime) - p.anchor_year AS age_years,
               w.weight_kg, s.hospitalid,
               row_number() OVER (PARTITION BY i.hadm_id ORDER BY i.intime) AS unitvisitnumber
        FROM valid_icustays i
        JOIN valid_admissions a USING (hadm_id)
        JOIN valid_patients p ON p.subject_id = i.subject_id
        LEFT JOIN weight w USING (stay_id)
        JOIN site s ON s.subject_id = i.subject_id
    """)
    minutes = "CAST(round(date_diff('second', s.intime, {t}) / 60.0) AS BIGINT)"
    n = {}
    n["patient"] = _copy(con, f"""
        SELECT s.stay_id AS patientunitstayid, s.hadm_id AS patienthealthsystemstayid, s.gender,
               CASE WHEN s.age_years > 89 THEN '> 89' ELSE CAST(s.age_years AS VARCHAR) END AS age,
               'Caucasian' AS ethnicity, s.hospitalid, s.hospitalid * 10 AS wardid,
               '' AS apacheadmissiondx, 170.0 AS admissionheight,
               {minutes.format(t='s.admittime')} AS hospitaladmitoffset,
               year(s.dischtime) AS hospitaldischargeyear,
               {minutes.format(t='s.dischtime')} AS hospitaldischargeoffset,
               CASE WHEN s.deathtime IS NOT NULL THEN 'Expired' ELSE 'Alive' END AS hospitaldischargestatus,
               s.first_careunit AS unittype, s.unitvisitnumber,
               round(s.weight_kg, 1) AS admissionweight,
               {minutes.format(t='s.outtime')} AS unitdischargeoffset,
               CASE WHEN s.deathtime IS NOT NULL AND s.deathtime <= s.outtime THEN 'Expired' ELSE 'Alive' END
                   AS unitdischargestatus,
               '{{}}' || lpad(CAST(s.subject_id AS VARCHAR), 10, '0') AS uniquepid
        FROM stay s ORDER BY s.stay_id
    """.replace("'{}' ||", "'S-' ||"), out / "patient.csv.gz")

    names = ", ".join(f"('{d}', '{nm}', {str(kg).lower()})" for d, (nm, kg) in _EICU_NAME.items())
    con.execute(f"""
        CREATE TEMP TABLE rate_row AS
        WITH name(drug, drugname, per_kg) AS (VALUES {names}),
        r AS (
            SELECT v.stay_id, u.drug, v.starttime, v.endtime, v.patientweight,
                   v.rate * u.to_canonical * (CASE WHEN u.per_weight = 'divide' THEN 1.0 / v.patientweight ELSE 1 END)
                       AS rate_canonical
            FROM valid_inputevents v
            JOIN concept_drug_unit u ON u.itemid = v.itemid AND u.rateuom = v.rateuom
            WHERE v.statusdescription IS DISTINCT FROM 'Rewritten' AND v.rate IS NOT NULL
        )
        SELECT r.*, n.drugname, n.per_kg FROM r JOIN name n USING (drug)
    """)
    # points: every CHART_MINUTES from each interval's start while it runs, and a 0 at its end
    # when no interval of the same drug starts there
    con.execute(f"""
        CREATE TEMP TABLE point AS
        WITH ticks AS (
            SELECT r.*, unnest(range(0, greatest(1, CAST(ceil(date_diff('second', r.starttime, r.endtime) / 60.0 / {CHART_MINUTES}) AS BIGINT)))) AS k
            FROM rate_row r
        ),
        starts AS (
            SELECT t.stay_id, t.drug, t.drugname, t.per_kg, t.patientweight,
                   t.starttime + to_minutes(CAST(t.k * {CHART_MINUTES} AS INTEGER)) AS t, t.rate_canonical
            FROM ticks t
        ),
        ends AS (
            SELECT r.stay_id, r.drug, r.drugname, r.per_kg, r.patientweight, r.endtime AS t, 0.0 AS rate_canonical
            FROM rate_row r
            WHERE NOT EXISTS (SELECT 1 FROM rate_row q WHERE q.stay_id = r.stay_id AND q.drug = r.drug
                              AND q.starttime <= r.endtime AND q.endtime > r.endtime)
        )
        SELECT p.*, {minutes.format(t='p.t')} AS infusionoffset, s.weight_kg AS admission_weight
        FROM (SELECT * FROM starts UNION ALL SELECT * FROM ends) p JOIN stay s USING (stay_id)
    """)
    con.execute(f"""
        CREATE TEMP TABLE infusion AS
        WITH p AS (
            SELECT *, (stay_id % {KG_STAY_EVERY} = 0) AS is_kg_stay, (stay_id % {BAG_STAY_EVERY} = 0) AS is_bag_stay,
                   (stay_id % {DUP_STAY_EVERY} = 0) AS is_dup_stay
            FROM point
        ),
        dose AS (
            SELECT stay_id, infusionoffset, drug,
                CASE
                    WHEN drug = 'norepinephrine' AND is_bag_stay AND NOT is_kg_stay THEN 'Norepinephrine (ml/hr)'
                    WHEN drug = 'norepinephrine' AND is_kg_stay THEN 'Norepinephrine (mcg/kg/min)'
                    ELSE drugname END AS drugname,
                CASE
                    WHEN drug = 'norepinephrine' AND is_bag_stay AND NOT is_kg_stay
                        THEN round(rate_canonical * admission_weight * 60 / ({BAG_MG} * 1000 / {BAG_ML}), 4)
                    WHEN per_kg OR (drug = 'norepinephrine' AND is_kg_stay) THEN round(rate_canonical, 6)
                    WHEN drug = 'vasopressin' THEN round(rate_canonical, 6)
                    ELSE round(rate_canonical * admission_weight, 4) END AS drugrate,
                CASE WHEN drug = 'norepinephrine' AND is_bag_stay AND NOT is_kg_stay THEN {BAG_MG} END AS drugamount,
                CASE WHEN drug = 'norepinephrine' AND is_bag_stay AND NOT is_kg_stay THEN {BAG_ML} END AS volumeoffluid,
                CASE WHEN per_kg OR (drug = 'norepinephrine' AND is_kg_stay) THEN round(admission_weight, 1) END
                    AS patientweight,
                'dose' AS kind
            FROM p
        ),
        carrier AS (
            SELECT stay_id, infusionoffset, drug, 'Volume (ml) Norepinephrine (ml/hr)' AS drugname,
                   10.0 AS drugrate, NULL::DOUBLE AS drugamount, NULL::DOUBLE AS volumeoffluid,
                   NULL::DOUBLE AS patientweight, 'carrier' AS kind
            FROM p WHERE drug = 'norepinephrine'
        ),
        dup AS (
            SELECT stay_id, infusionoffset, drug, x.drugname, x.drugrate, NULL::DOUBLE, NULL::DOUBLE, NULL::DOUBLE, x.kind
            FROM p, (VALUES ('Norepinephrine (ml/hr)', 12.5, 'ml_hr_no_concentration'),
                            ('Norepinephrine ()', 5.0, 'unitless')) x(drugname, drugrate, kind)
            WHERE drug = 'norepinephrine' AND is_dup_stay AND NOT is_bag_stay
        )
        SELECT * FROM dose UNION ALL SELECT * FROM carrier UNION ALL SELECT * FROM dup
    """)
    n["infusionDrug"] = _copy(con, """
        SELECT row_number() OVER (ORDER BY stay_id, infusionoffset, drugname) AS infusiondrugid,
               stay_id AS patientunitstayid, infusionoffset, drugname, drugrate,
               CASE WHEN drugamount IS NOT NULL THEN drugrate END AS infusionrate,
               drugamount, volumeoffluid, patientweight
        FROM infusion ORDER BY infusiondrugid
    """, out / "infusionDrug.csv.gz")
    n["diagnosis"] = _copy(con, f"""
        SELECT row_number() OVER (ORDER BY s.stay_id, d.icd_code) AS diagnosisid, s.stay_id AS patientunitstayid,
               'False' AS activeupondischarge, 60 AS diagnosisoffset,
               'synthetic|icd' || CAST(d.icd_version AS VARCHAR) || '|' || d.icd_code AS diagnosisstring,
               CASE WHEN d.icd_version = 9 AND length(d.icd_code) > 3 AND substr(d.icd_code, 1, 1) <> 'E'
                        THEN substr(d.icd_code, 1, 3) || '.' || substr(d.icd_code, 4)
                    WHEN d.icd_version = 10 AND length(d.icd_code) > 3
                        THEN substr(d.icd_code, 1, 3) || '.' || substr(d.icd_code, 4)
                    ELSE d.icd_code END AS icd9code,
               'Primary' AS diagnosispriority
        FROM valid_diagnoses_icd d JOIN stay s USING (hadm_id)
    """, out / "diagnosis.csv.gz")
    n["treatment"] = _copy(con, f"""
        SELECT row_number() OVER (ORDER BY s.stay_id, p.starttime) AS treatmentid, s.stay_id AS patientunitstayid,
               {minutes.format(t='p.starttime')} AS treatmentoffset,
               CASE WHEN p.itemid = {hd_itemid} THEN 'renal|dialysis|hemodialysis' ELSE 'renal|dialysis|C V V H' END
                   AS treatmentstring,
               'False' AS activeupondischarge
        FROM valid_procedureevents p JOIN stay s USING (stay_id)
        JOIN concept_rrt_item r ON r.itemid = p.itemid AND r.source_table = 'procedureevents'
        WHERE p.statusdescription IS DISTINCT FROM 'Rewritten'
    """, out / "treatment.csv.gz")
    n["vitalAperiodic"] = _copy(con, f"""
        SELECT row_number() OVER (ORDER BY s.stay_id, c.charttime) AS vitalaperiodicid, s.stay_id AS patientunitstayid,
               {minutes.format(t='c.charttime')} AS observationoffset, c.valuenum AS noninvasivemean
        FROM valid_chartevents c JOIN stay s USING (stay_id)
        JOIN concept_measurement m ON m.itemid = c.itemid AND m.concept = 'map'
        WHERE c.valuenum IS NOT NULL
    """, out / "vitalAperiodic.csv.gz")
    n["hospital"] = _copy(con, f"""
        SELECT DISTINCT hospitalid, '100 - 249' AS numbedscategory, 'f' AS teachingstatus, 'Midwest' AS region
        FROM stay ORDER BY hospitalid
    """, out / "hospital.csv.gz")
    kinds = dict(con.execute("SELECT kind, count(*) FROM infusion GROUP BY 1").fetchall())
    return {
        "rows": n,
        "n_sites": n_sites,
        "n_stays": con.execute("SELECT count(*) FROM stay").fetchone()[0],
        "infusion_rows_by_kind": kinds,
        "expected_quarantine": {
            "conformance.rate_unit_no_concentration": kinds.get("ml_hr_no_concentration", 0),
            "conformance.rate_unit_missing": kinds.get("unitless", 0),
        },
        "ne_bag_rows": con.execute("SELECT count(*) FROM infusion WHERE kind = 'dose' AND drugamount IS NOT NULL").fetchone()[0],
        "carrier_rows": kinds.get("carrier", 0),
        "deaths_after_discharge_lost": con.execute(
            "SELECT count(*) FROM stay s JOIN valid_patients p USING (subject_id) "
            "WHERE s.deathtime IS NULL AND p.dod IS NOT NULL").fetchone()[0],
    }

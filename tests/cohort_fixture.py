"""A tiny ingest-shaped DuckDB for cohort/SQL tests: empty ``valid_*`` tables of the raw schema,
``source_table``, the concept tables, plus the few rows a test inserts.

Times are given as minutes after ``T0`` so each test reads like a timeline. Item ids come from
config/concepts.toml, never typed here.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl

from pipeline.concepts import load_concepts, register_concept_tables
from pipeline.cohort import COHORT_RELATIONS
from pipeline.config import load_study_config
from pipeline.sqlbuild import build_relations
from schemas.raw import RAW_TABLES, empty_table_sql

T0 = datetime(2150, 1, 1, 8, 0)
CONCEPTS = load_concepts()


def t(minutes: float) -> datetime:
    """T0 + minutes."""
    return T0 + timedelta(minutes=minutes)


def itemid(drug: str) -> int:
    return int(CONCEPTS.raw["drugs"][drug]["itemids"][0])


def measurement_itemid(concept: str) -> int:
    return int(CONCEPTS.raw["measurements"][concept]["itemids"][0])


def rrt_procedure_itemid() -> int:
    return int(CONCEPTS.raw["rrt"]["procedureevents_itemids"][0])


def sepsis_icd10() -> str:
    return CONCEPTS.raw["sepsis"]["icd10_prefixes"][1] + "9"  # e.g. A419 (sepsis, unspecified)


def study_config_with(tmp_path: Path, toml_text: str):
    """A StudyConfig with ``toml_text`` merged over the shipped defaults."""
    path = tmp_path / f"study_{abs(hash(toml_text))}.toml"
    path.write_text(toml_text)
    return load_study_config(path)


class CohortDB:
    """Builder for a fixture database; ``build()`` registers the concepts and runs the SQL."""

    def __init__(self, path: Path | str = ":memory:", unavailable: tuple[str, ...] = ()):
        self.con = duckdb.connect(str(path))
        for table in RAW_TABLES.values():
            self.con.execute(empty_table_sql(table))
        self.con.execute(
            "CREATE TABLE source_table (table_name VARCHAR, is_available BOOLEAN, rows_loaded BIGINT)"
        )
        for name in RAW_TABLES:
            self.con.execute(
                "INSERT INTO source_table VALUES (?, ?, 0)", [name, name not in unavailable]
            )
        self._row = 0

    def _insert(self, table: str, **values) -> None:
        self._row += 1
        values = {"source_row": self._row, **values}
        cols = ", ".join(f'"{c}"' for c in values)
        marks = ", ".join("?" for _ in values)
        self.con.execute(f'INSERT INTO "valid_{table}" ({cols}) VALUES ({marks})', list(values.values()))

    # -- people and stays ------------------------------------------------------------------
    def patient(self, subject_id, anchor_age=60, anchor_year=2150, gender="F", dod: date | None = None,
                anchor_year_group="2014 - 2016"):
        self._insert("patients", subject_id=subject_id, gender=gender, anchor_age=anchor_age,
                     anchor_year=anchor_year, anchor_year_group=anchor_year_group, dod=dod)

    def admission(self, subject_id, hadm_id, admittime, dischtime, deathtime=None):
        self._insert("admissions", subject_id=subject_id, hadm_id=hadm_id, admittime=admittime,
                     dischtime=dischtime, deathtime=deathtime)

    def stay(self, subject_id, hadm_id, stay_id, intime, outtime, first_careunit="Medical Intensive Care Unit (MICU)"):
        self._insert("icustays", subject_id=subject_id, hadm_id=hadm_id, stay_id=stay_id,
                     first_careunit=first_careunit, last_careunit=first_careunit, intime=intime,
                     outtime=outtime, los=(outtime - intime).total_seconds() / 86400)

    def diagnosis(self, subject_id, hadm_id, icd_code, icd_version=10):
        self._insert("diagnoses_icd", subject_id=subject_id, hadm_id=hadm_id, seq_num=1,
                     icd_code=icd_code, icd_version=icd_version)

    def septic_stay(self, stay_id, subject_id=None, hadm_id=None, anchor_age=60, sepsis=True,
                    intime_min=-120, outtime_min=60 * 24 * 5, dod=None, deathtime=None, new_patient=True):
        """Patient + admission + ICU stay (+ a sepsis code). Ids default to stay_id-derived ones."""
        subject_id = subject_id or stay_id + 1_000_000
        hadm_id = hadm_id or stay_id + 2_000_000
        if new_patient:
            self.patient(subject_id, anchor_age=anchor_age, dod=dod)
        self.admission(subject_id, hadm_id, t(intime_min - 60), t(outtime_min + 60 * 24), deathtime)
        self.stay(subject_id, hadm_id, stay_id, t(intime_min), t(outtime_min))
        if sepsis:
            self.diagnosis(subject_id, hadm_id, sepsis_icd10())
        return subject_id, hadm_id

    # -- events ------------------------------------------------------------------------------
    def infusion(self, stay_id, drug, start_min, end_min, rate, rateuom=None, weight=80.0,
                 status="FinishedRunning", orderid=None, subject_id=None, hadm_id=None):
        unit = rateuom or CONCEPTS.raw["drugs"][drug]["units"][0]["rateuom"]
        self._insert(
            "inputevents", subject_id=subject_id or stay_id + 1_000_000,
            hadm_id=hadm_id or stay_id + 2_000_000, stay_id=stay_id, starttime=t(start_min),
            endtime=t(end_min), itemid=itemid(drug), amount=None, amountuom=None, rate=rate,
            rateuom=unit, orderid=orderid if orderid is not None else self._row + 1,
            linkorderid=orderid if orderid is not None else self._row + 1,
            patientweight=weight, statusdescription=status,
        )

    def lab(self, subject_id, concept, minute, value, hadm_id=None):
        self._insert("labevents", subject_id=subject_id, hadm_id=hadm_id, itemid=measurement_itemid(concept),
                     charttime=t(minute), valuenum=value)

    def chart(self, stay_id, concept_itemid, minute, value, subject_id=None):
        self._insert("chartevents", subject_id=subject_id or stay_id + 1_000_000, hadm_id=stay_id + 2_000_000,
                     stay_id=stay_id, charttime=t(minute), itemid=concept_itemid, valuenum=value,
                     value=str(value))

    def procedure(self, stay_id, proc_itemid, start_min, end_min, status="FinishedRunning"):
        self._insert("procedureevents", subject_id=stay_id + 1_000_000, hadm_id=stay_id + 2_000_000,
                     stay_id=stay_id, starttime=t(start_min), endtime=t(end_min), itemid=proc_itemid,
                     statusdescription=status)

    # -- build -------------------------------------------------------------------------------
    def build(self, config=None, names=None) -> "CohortDB":
        register_concept_tables(self.con, CONCEPTS, config or load_study_config())
        build_relations(self.con, list(names or COHORT_RELATIONS))
        return self

    def frame(self, sql: str) -> pl.DataFrame:
        return self.con.execute(sql).pl()

    def cohort(self) -> pl.DataFrame:
        return self.frame("select * from mart_cohort order by stay_id")

    def row(self, stay_id: int) -> dict:
        rows = self.cohort().filter(pl.col("stay_id") == stay_id).to_dicts()
        assert len(rows) == 1, f"stay {stay_id}: expected one cohort row, got {len(rows)}"
        return rows[0]

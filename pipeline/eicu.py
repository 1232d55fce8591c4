"""eICU-CRD as a source: load its tables, validate them, and map them onto the relations the
MIMIC-IV path produces (``valid_icustays``, ``valid_inputevents``, ...), so that cohort, models,
audit and report run unchanged on them.

``build(con, files, concepts, config)`` is the eICU counterpart of ``pipeline.ingest._build``
(``pipeline.ingest.ingest`` calls it when ``pipeline.sources`` detects an eICU folder):

1. loads each table of ``schemas.eicu.EICU_TABLES`` into ``raw_eicu_<table>`` with the shared
   loader (explicit casts from plain text; ``conformance.type``), then runs its Pandera model;
2. builds ``stg_eicu__infusiondrug`` (sql/sources/eicu/): drug from the name pattern, unit from
   the name, dose in the canonical unit; quarantines the rows whose dose cannot be converted
   (ml/hr without a concentration, unitless, unknown unit, per-minute dose without a weight),
   each with its rule, and the converted doses failing ``schemas.eicu.dose_schema``;
3. builds the rest of sql/sources/eicu/build_order.toml (the conformed ``valid_*`` relations),
   empty ``valid_*`` for what eICU lacks (labevents, prescriptions, emar, d_items), and
   ``source_table`` under the MIMIC-IV table names (labevents unavailable: lactate and creatinine
   are "not assessable"; chartevents available iff vitalAperiodic is, for MAP);
4. writes ``source_site`` (stay_id, site_id = hospitalid) and ``source_info`` (format, outcome
   note, post-discharge follow-up days = 0: death is known only until hospital discharge).

The facts (name patterns, units, concentrations, carry-forward cap, sepsis and RRT strings,
'> 89') are data in config/eicu.toml, loaded into ``concept_eicu_*`` tables.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from pipeline.concepts import Concepts, register_concept_tables
from pipeline.errors import ConfigError, InputFileError
from pipeline.sources import default_eicu_config_path, eicu_sql_root  # noqa: F401  (re-exported)
from pipeline.sqlbuild import build_relations
from schemas.eicu import EICU_LOAD_ORDER, EICU_TABLES, RULE_COLUMN, STAY_KNOWN, build_eicu_schema, dose_schema
from schemas.raw import RAW_TABLES, SOURCE_SUFFIXES, RawTable, empty_table_sql, find_table_file

log = logging.getLogger("vasoflow")

# MIMIC-IV table name -> the eICU table it comes from (None: eICU has no such table here).
CONFORMED_FROM = {
    "patients": "eicu_patient", "admissions": "eicu_patient", "icustays": "eicu_patient",
    "diagnoses_icd": "eicu_diagnosis", "inputevents": "eicu_infusiondrug",
    "procedureevents": "eicu_treatment", "chartevents": "eicu_vitalaperiodic",
    "labevents": None, "d_items": None, "prescriptions": None, "emar": None,
}
EMPTY_CONFORMED = ("labevents", "d_items", "prescriptions", "emar")
# Audit inputs the read eICU tables do not hold (fluids are in intakeOutput, arterial lines in
# lines/physical exam tables vasoflow does not read): source_table says so, and the shared audit
# marts report those rules "not assessable" instead of "fail".
AUDIT_NOT_RECORDED = ("audit_crystalloids", "audit_arterial_line")
FIRST_RELATION = "stg_eicu__infusiondrug"


@dataclass(frozen=True)
class EicuConcepts:
    """config/eicu.toml as lookup tables (concept_eicu_*)."""

    raw: dict[str, Any]
    tables: dict[str, pl.DataFrame]
    discharge_statuses: tuple[str, ...]
    outcome_note: str
    post_discharge_followup_days: int


def _req(d: dict, key: str, where: str) -> Any:
    if key not in d:
        raise ConfigError(f"config/eicu.toml: '{where}' lacks '{key}'")
    return d[key]


def load_eicu_concepts(concepts: Concepts, path: Path | None = None) -> EicuConcepts:
    path = Path(path) if path else default_eicu_config_path()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the eICU concepts ({exc})") from None
    inf = _req(raw, "infusion", "eicu")
    drugs = set(concepts.drug_units["drug"].to_list())
    patterns = []
    for i, p in enumerate(_req(inf, "drug_patterns", "infusion")):
        if p["drug"] not in drugs:
            raise ConfigError(f"{path}: infusion.drug_patterns: drug '{p['drug']}' is not in concepts.toml [drugs]")
        patterns.append({"priority": i, "pattern": str(p["pattern"]).lower(), "drug": p["drug"]})
    # a pattern that contains an earlier one would never win: e.g. 'epinephrine' before
    # 'norepinephrine' would read every norepinephrine row as epinephrine
    for i, a in enumerate(patterns):
        for b in patterns[:i]:
            if b["pattern"] in a["pattern"] and a["drug"] != b["drug"]:
                raise ConfigError(f"{path}: infusion.drug_patterns: '{a['pattern']}' must come before "
                                  f"'{b['pattern']}' (it contains it)")
    units = [{"drug": u["drug"], "unit": str(u["unit"]).lower(), "to_canonical": float(u["to_canonical"]),
              "per_weight": u["per_weight"]} for u in _req(inf, "units", "infusion")]
    if any(u["per_weight"] not in ("none", "divide") for u in units):
        raise ConfigError(f"{path}: infusion.units: per_weight must be 'none' or 'divide'")
    conc = [{"drug": c["drug"], "amount_unit": c["amount_unit"], "amount_to_dose": float(c["amount_to_dose"]),
             "dose_unit": str(c["dose_unit"]).lower()} for c in _req(inf, "concentration", "infusion")]
    cap = float(_req(inf, "carry_forward_cap_minutes", "infusion"))
    if not 0 < cap <= 24 * 60:
        raise ConfigError(f"{path}: infusion.carry_forward_cap_minutes must be in (0, 1440]")
    sepsis = _req(raw, "sepsis", "eicu")
    outcome = _req(raw, "outcome", "eicu")
    pw = concepts.raw["measurements"]["patientweight"]
    params = {
        "carry_forward_cap_minutes": int(cap),
        "pump_rate_unit": "ml/hr",
        "weight_min_kg": float(pw["plausible_min"]),
        "weight_max_kg": float(pw["plausible_max"]),
        "age_above_89_years": int(_req(inf, "age_above_89_years", "infusion")),
        "expired_status": str(_req(outcome, "expired_status", "outcome")),
        "sepsis_equivalent_icd10": str(_req(sepsis, "equivalent_icd10", "sepsis")),
        "map_itemid": int(_req(_req(raw, "map", "eicu"), "itemid", "map")),
    }
    sepsis_rows = [{"kind": "diagnosisstring", "pattern": str(p).lower()} for p in sepsis["diagnosisstring_patterns"]]
    sepsis_rows += [{"kind": "apacheadmissiondx", "pattern": str(p).lower()} for p in sepsis["apacheadmissiondx_prefixes"]]
    rrt = [{"priority": i, "pattern": str(r["pattern"]).lower(), "itemid": int(r["itemid"])}
           for i, r in enumerate(_req(_req(raw, "rrt", "eicu"), "treatment_patterns", "rrt"))]
    tables = {
        "concept_eicu_drug_pattern": pl.DataFrame(patterns),
        "concept_eicu_carrier": pl.DataFrame({"prefix": [str(p).lower() for p in inf["carrier_volume_prefixes"]]}),
        "concept_eicu_unit": pl.DataFrame(units),
        "concept_eicu_concentration": pl.DataFrame(conc),
        "concept_eicu_param": pl.DataFrame([params]),
        "concept_eicu_sepsis_text": pl.DataFrame(sepsis_rows),
        "concept_eicu_rrt": pl.DataFrame(rrt),
    }
    return EicuConcepts(raw, tables, ("Alive", str(outcome["expired_status"])), str(outcome["note"]),
                        int(_req(outcome, "post_discharge_followup_days", "outcome")))


def find_table(source_dir: Path, table: RawTable) -> Path | None:
    """The file of eICU ``table`` (``eicu_<name>``) in ``source_dir``, matched case-insensitively
    (``infusionDrug.csv.gz`` or ``infusiondrug.csv.gz``); two spellings or formats are an error."""
    stem = table.name.removeprefix("eicu_")
    try:
        entries = sorted(p.name for p in Path(source_dir).iterdir())
    except OSError as exc:
        raise InputFileError(f"{source_dir}: cannot list the folder ({exc.strerror})") from None
    stems = sorted({n[: -len(s)] for n in entries for s in SOURCE_SUFFIXES
                    if n.lower() == stem + s})
    if len(stems) > 1:
        raise InputFileError(f"{Path(source_dir) / stems[0]} and {stems[1]}: table '{stem}' is present "
                             "under two spellings; keep exactly one of them")
    if not stems:
        return None
    return find_table_file(source_dir, dataclasses.replace(table, name=stems[0], module=""))


def find_files(source_dir: Path) -> dict[str, Path | None]:
    files = {}
    for name in EICU_LOAD_ORDER:
        table = EICU_TABLES[name]
        path = find_table(source_dir, table)
        stem = name.removeprefix("eicu_")
        if path is None and table.is_required:
            raise InputFileError(f"{Path(source_dir) / (stem + '.csv.gz')}: required eICU table '{stem}' not "
                                 "found (also looked for .csv and .parquet, any letter case)")
        if path is not None and not os.access(path, os.R_OK):
            raise InputFileError(f"{path}: file is not readable (permissions)")
        files[name] = path
    return files


def _rule_column(table: str, rule: str) -> str | None:
    return RULE_COLUMN.get(rule)


def _validate(con, table: RawTable, schema, chunk_rows: int) -> None:
    from pipeline.ingest import _q, validate_in_chunks

    raw = _q("raw_" + table.name)
    cols = ", ".join(f"r.{_q(c)}" for c in ["source_row", *table.columns])
    join = ""
    if table.name != "eicu_patient":
        cols += f", s.patientunitstayid IS NOT NULL AS {STAY_KNOWN}"
        join = ("LEFT JOIN (SELECT DISTINCT patientunitstayid FROM raw_eicu_patient) s "
                "ON s.patientunitstayid = r.patientunitstayid")
    validate_in_chunks(
        con, table.name, schema, f"SELECT {cols} FROM {raw} r {join} WHERE r._type_errors IS NULL",
        None if table.name == "eicu_patient" else chunk_rows,  # duplicate keys are found within one frame
        column_of=_rule_column,
    )


def _quarantine_doses(con, concepts: Concepts) -> None:
    """Quarantine the classified infusion rows whose dose is not converted (with the staging's
    rule), then the converted doses failing ``dose_schema`` (plausibility.rate_range)."""
    from pipeline.ingest import validate_in_chunks

    con.execute(
        "INSERT INTO quarantine (table_name, source_row, rule, column_name, value) "
        "SELECT 'eicu_infusiondrug', source_row, convert_rule, "
        "CASE WHEN convert_rule = 'completeness.weight_for_rate' THEN 'patientweight' "
        "WHEN convert_rule = 'completeness.drugrate' THEN 'drugrate' ELSE 'drugname' END, "
        "CASE WHEN convert_rule = 'completeness.weight_for_rate' THEN NULL ELSE drugname END "
        f"FROM {FIRST_RELATION} WHERE convert_rule IS NOT NULL")
    validate_in_chunks(con, "eicu_infusiondrug", dose_schema(concepts),
                       f"SELECT source_row, drug, rate_canonical, drugrate FROM {FIRST_RELATION} "
                       "WHERE convert_rule IS NULL", None, column_of=_rule_column)


_OFFSET = {"eicu_infusiondrug": "infusionoffset", "eicu_diagnosis": "diagnosisoffset",
           "eicu_treatment": "treatmentoffset", "eicu_vitalaperiodic": "observationoffset"}


def _add_row_keys(con) -> None:
    for name in EICU_LOAD_ORDER:
        offset = f" || ' {_OFFSET[name]}=' || cast(r.{_OFFSET[name]} AS VARCHAR)" if name in _OFFSET else ""
        con.execute(
            f"UPDATE quarantine q SET row_key = 'patientunitstayid=' || cast(r.patientunitstayid AS VARCHAR){offset} "
            f"FROM raw_{name} r WHERE q.table_name = ? AND q.source_row = r.source_row", [name])


def build(con, files: dict[str, Path | None], concepts: Concepts, config):
    """Load, validate and conform an eICU folder into ``con`` (see module docs). Returns the
    ledgers and warnings like ``pipeline.ingest._build``."""
    from pipeline.ingest import TableLedger, _q, load_table

    ec = load_eicu_concepts(concepts)
    register_concept_tables(con, concepts, config)
    register_eicu_tables(con, ec)
    con.execute("CREATE TABLE quarantine (table_name VARCHAR, source_row BIGINT, rule VARCHAR, "
                "column_name VARCHAR, value VARCHAR, row_key VARCHAR)")
    max_fraction = float(config.get("ingest.max_unparseable_fraction"))
    chunk = int(config.get("ingest.validation_chunk_rows"))
    # what eICU cannot say, stated where the report shows data-quality warnings
    notes: list[str] = [ec.outcome_note, *[str(n) for n in ec.raw["outcome"].get("source_notes", [])]]
    meta: dict[str, dict] = {}
    for name in EICU_LOAD_ORDER:
        table, path = EICU_TABLES[name], files[name]
        t0 = time.perf_counter()
        if path is None:
            con.execute(empty_table_sql(table, "raw_" + name).replace("CREATE OR REPLACE TABLE", "CREATE TABLE"))
            msg = f"optional eICU table {name.removeprefix('eicu_')} not found: features that need it are marked unavailable"
            log.warning(msg)
            notes.append(msg)
            meta[name] = {"file": None, "available": False}
            continue
        mapped, rows_read = load_table(con, path, table, name, concepts, max_fraction, notes)
        _validate(con, table, build_eicu_schema(name, concepts, ec), chunk)
        con.execute(f"ALTER TABLE {_q('raw_' + name)} DROP COLUMN _type_errors")
        meta[name] = {"file": str(path), "available": True, "mapped": mapped, "seconds": time.perf_counter() - t0}
    for name in EICU_LOAD_ORDER:
        cols = ", ".join(_q(c) for c in ["source_row", *EICU_TABLES[name].columns])
        con.execute(f"CREATE VIEW {_q('valid_' + name)} AS SELECT {cols} FROM {_q('raw_' + name)} r "
                    f"WHERE NOT EXISTS (SELECT 1 FROM quarantine q WHERE q.table_name = '{name}' "
                    "AND q.source_row = r.source_row)")
    root = eicu_sql_root()
    build_relations(con, [FIRST_RELATION], sql_root=root)
    _quarantine_doses(con, concepts)
    _add_row_keys(con)
    build_relations(con, [r for r in _relation_names(root) if r != FIRST_RELATION], sql_root=root)
    for name in EMPTY_CONFORMED:
        con.execute(empty_table_sql(RAW_TABLES[name]))

    ledgers = []
    for name in EICU_LOAD_ORDER:
        m = meta[name]
        if not m["available"]:
            ledgers.append(TableLedger(name, None, False, 0, 0, 0, False))
            continue
        rows_read = con.execute(f"SELECT count(*) FROM {_q('raw_' + name)}").fetchone()[0]
        by_rule = dict(con.execute("SELECT rule, count(DISTINCT source_row) FROM quarantine WHERE table_name = ? "
                                   "GROUP BY 1 ORDER BY 1", [name]).fetchall())
        n_q = con.execute("SELECT count(DISTINCT source_row) FROM quarantine WHERE table_name = ?", [name]).fetchone()[0]
        mapped = m["mapped"]
        ledgers.append(TableLedger(name, m["file"], True, rows_read, rows_read - n_q, n_q, False,
                                   tuple(mapped.ignored), tuple(mapped.absent_optional), by_rule,
                                   round(m["seconds"], 3)))
    _write_ledger_tables(con, ledgers, meta)
    con.execute("CREATE TABLE source_site AS SELECT stay_id, cast(hospitalid AS VARCHAR) AS site_id "
                "FROM stg_eicu__patient")
    info = pl.DataFrame([{"source_format": "eicu", "outcome_note": ec.outcome_note,
                          "post_discharge_followup_days": ec.post_discharge_followup_days,
                          "site_column": str(ec.raw["site"]["column"])}])
    con.register("_info", info.to_arrow())
    con.execute("CREATE TABLE source_info AS SELECT * FROM _info")
    con.unregister("_info")
    return ledgers, notes


def _relation_names(root: Path) -> list[str]:
    from pipeline.sqlbuild import build_order

    return [r.name for r in build_order(root)]


def register_eicu_tables(con, ec: EicuConcepts) -> None:
    for name, frame in ec.tables.items():
        con.register("_eicu_frame", frame.to_arrow())
        con.execute(f'CREATE OR REPLACE TABLE "{name}" AS SELECT * FROM _eicu_frame')
        con.unregister("_eicu_frame")


def _write_ledger_tables(con, ledgers, meta) -> None:
    ledger = pl.DataFrame(
        [{"table": t.table, "file": t.file, "is_available": t.is_available, "rows_read": t.rows_read,
          "rows_loaded": t.rows_loaded, "rows_quarantined": t.rows_quarantined, "itemid_filter": False}
         for t in ledgers],
        schema={"table": pl.String, "file": pl.String, "is_available": pl.Boolean, "rows_read": pl.Int64,
                "rows_loaded": pl.Int64, "rows_quarantined": pl.Int64, "itemid_filter": pl.Boolean})
    rules = pl.DataFrame([{"table": t.table, "rule": r, "rows": n} for t in ledgers
                          for r, n in t.quarantined_by_rule.items()],
                         schema={"table": pl.String, "rule": pl.String, "rows": pl.Int64})
    # the shared SQL asks source_table by MIMIC-IV table name whether a feature's data exist
    available = {t.table: t.is_available for t in ledgers}
    source = pl.DataFrame(
        [{"table_name": mimic, "is_available": bool(src and available.get(src)),
          "rows_loaded": int(con.execute(f'SELECT count(*) FROM "valid_{mimic}"').fetchone()[0])}
         for mimic, src in CONFORMED_FROM.items()]
        # audit features eICU's tables here do not record (shared marts: not assessable)
        + [{"table_name": name, "is_available": False, "rows_loaded": 0} for name in AUDIT_NOT_RECORDED],
        schema={"table_name": pl.String, "is_available": pl.Boolean, "rows_loaded": pl.Int64})
    for rel, frame in (("ledger", ledger), ("ledger_rule", rules), ("source_table", source)):
        con.register("_frame", frame.to_arrow())
        con.execute(f"CREATE TABLE {rel} AS SELECT * FROM _frame")
        con.unregister("_frame")


def apply_source_overrides(con) -> None:
    """After ``study_param`` is (re)registered from the study config: a source whose follow-up
    ends at hospital discharge (eICU, ``source_info``) gets ``outcomes_dod_coverage_days`` = its
    post-discharge follow-up (0), so alive patients are censored at discharge, never assumed
    alive for the configured days after it. No-op for a MIMIC-IV database."""
    has_info = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'source_info'").fetchone()[0]
    if not has_info:
        return
    days = con.execute("SELECT min(post_discharge_followup_days) FROM source_info").fetchone()[0]
    if days is not None:
        con.execute("UPDATE study_param SET outcomes_dod_coverage_days = ?", [int(days)])

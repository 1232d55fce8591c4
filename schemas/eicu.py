"""The eICU-CRD tables vasoflow reads, and their Pandera (polars) models.

Same shape as ``schemas.raw`` / ``schemas.validation`` for MIMIC-IV: one ``RawTable`` per file
(columns with their polars type; ``required_columns`` must be in the header), loaded into
``raw_eicu_<table>`` by the shared ingest helpers, and one Pandera model per table whose rule
ids the quarantine records. The eICU tables sit in one folder (``module`` is empty); file names
are matched case-insensitively (the release writes ``infusionDrug.csv.gz``, the demo
``infusiondrug.csv.gz``).

Rules (besides ``conformance.type`` from the ingest's casts):

* ``completeness.<column>``: a required id or offset is missing.
* ``integrity.duplicate_key`` (patient: patientunitstayid), ``integrity.unknown_stay`` (a row
  whose patientunitstayid is not in patient).
* ``conformance.age_text``: patient.age is neither a whole number nor '> 89'.
* ``conformance.discharge_status``: hospitaldischargestatus other than 'Alive' / 'Expired'.
* ``plausibility.hospital_discharge_before_admission``: hospitaldischargeoffset <
  hospitaladmitoffset.
* ``plausibility.negative_rate``, ``plausibility.patientweight_range`` (infusiondrug).
* ``plausibility.value_range`` (vitalaperiodic.noninvasivemean, concepts.toml [measurements.map]).

The dose rules need the drug and unit parsed from drugname, so they run on the classified
infusion rows (``sql/sources/eicu/staging/stg_eicu__infusiondrug.sql``): ``dose_schema`` checks
``plausibility.rate_range``; the unconvertible rows are quarantined by the ingest with the rule
the staging names (``conformance.rate_unit_no_concentration``, ``conformance.rate_unit_missing``,
``conformance.rate_unit``, ``completeness.weight_for_rate``).
"""

from __future__ import annotations

import pandera.polars as pa
import polars as pl

from schemas.raw import ID, NUM, TXT, RawTable
from schemas.validation import _row_check, _unique_check

STAY_KNOWN = "_stay_known"

EICU_TABLES: dict[str, RawTable] = {
    t.name: t
    for t in [
        RawTable(
            "eicu_patient", "",
            {"patientunitstayid": ID, "patienthealthsystemstayid": ID, "uniquepid": TXT, "gender": TXT,
             "age": TXT, "hospitalid": ID, "wardid": ID, "apacheadmissiondx": TXT, "unittype": TXT,
             "unitvisitnumber": ID, "hospitaladmitoffset": ID, "hospitaldischargeyear": ID,
             "hospitaldischargeoffset": ID, "hospitaldischargestatus": TXT, "unitdischargeoffset": ID,
             "unitdischargestatus": TXT, "admissionweight": NUM},
            ("patientunitstayid", "patienthealthsystemstayid", "uniquepid", "gender", "age", "hospitalid",
             "unittype", "hospitaladmitoffset", "hospitaldischargeyear", "hospitaldischargeoffset",
             "hospitaldischargestatus", "unitdischargeoffset", "admissionweight"),
        ),
        RawTable(
            "eicu_infusiondrug", "",
            {"infusiondrugid": ID, "patientunitstayid": ID, "infusionoffset": ID, "drugname": TXT,
             "drugrate": NUM, "infusionrate": NUM, "drugamount": NUM, "volumeoffluid": NUM,
             "patientweight": NUM},
            ("infusiondrugid", "patientunitstayid", "infusionoffset", "drugname", "drugrate",
             "infusionrate", "drugamount", "volumeoffluid", "patientweight"),
        ),
        RawTable(
            "eicu_diagnosis", "",
            {"diagnosisid": ID, "patientunitstayid": ID, "diagnosisoffset": ID, "diagnosisstring": TXT,
             "icd9code": TXT, "diagnosispriority": TXT},
            ("patientunitstayid", "diagnosisoffset", "diagnosisstring", "icd9code"),
        ),
        RawTable(
            "eicu_treatment", "",
            {"treatmentid": ID, "patientunitstayid": ID, "treatmentoffset": ID, "treatmentstring": TXT},
            ("patientunitstayid", "treatmentoffset", "treatmentstring"),
            is_required=False,
        ),
        RawTable(
            "eicu_vitalaperiodic", "",
            {"vitalaperiodicid": ID, "patientunitstayid": ID, "observationoffset": ID, "noninvasivemean": NUM},
            ("patientunitstayid", "observationoffset", "noninvasivemean"),
            is_required=False,
        ),
    ]
}

# Order: patient first (the other tables' unknown-stay check joins it).
EICU_LOAD_ORDER = ["eicu_patient", "eicu_infusiondrug", "eicu_diagnosis", "eicu_treatment", "eicu_vitalaperiodic"]
assert sorted(EICU_LOAD_ORDER) == sorted(EICU_TABLES)

_NOT_NULL = {
    "eicu_patient": ("patientunitstayid", "patienthealthsystemstayid", "uniquepid", "hospitalid",
                     "hospitaladmitoffset", "hospitaldischargeyear", "hospitaldischargeoffset",
                     "unitdischargeoffset"),
    "eicu_infusiondrug": ("patientunitstayid", "infusionoffset", "drugname"),
    "eicu_diagnosis": ("patientunitstayid", "diagnosisoffset"),
    "eicu_treatment": ("patientunitstayid", "treatmentoffset", "treatmentstring"),
    "eicu_vitalaperiodic": ("patientunitstayid", "observationoffset"),
}

# The column whose value the quarantine shows for a frame-level rule.
RULE_COLUMN = {
    "integrity.duplicate_key": "patientunitstayid",
    "integrity.unknown_stay": "patientunitstayid",
    "conformance.age_text": "age",
    "conformance.discharge_status": "hospitaldischargestatus",
    "plausibility.hospital_discharge_before_admission": "hospitaldischargeoffset",
    "plausibility.negative_rate": "drugrate",
    "plausibility.patientweight_range": "patientweight",
    "plausibility.value_range": "noninvasivemean",
    "plausibility.rate_range": "drugrate",
}

# patient.age: a whole number of years, or '> 89' (eICU-CRD documentation; config/eicu.toml).
AGE_TEXT = r"^\s*(\d{1,3}|>\s*89)\s*$"


def build_eicu_schema(table: str, concepts, eicu) -> pa.DataFrameSchema:
    """The Pandera model of ``raw_eicu_<table>`` rows (frames carry ``source_row`` and, for the
    tables other than patient, ``_stay_known``: the stay is in patient)."""
    spec = EICU_TABLES[table]
    not_null = set(_NOT_NULL[table])
    columns = {"source_row": pa.Column(pl.Int64, nullable=False)}
    columns |= {name: pa.Column(dtype, nullable=name not in not_null) for name, dtype in spec.columns.items()}
    checks: list[pa.Check] = []
    if table == "eicu_patient":
        checks.append(_unique_check(["patientunitstayid"]))
        checks.append(_row_check(pl.col("age").str.contains(AGE_TEXT), "conformance.age_text"))
        checks.append(_row_check(pl.col("hospitaldischargestatus").is_in(list(eicu.discharge_statuses)),
                                 "conformance.discharge_status"))
        checks.append(_row_check(pl.col("hospitaldischargeoffset") >= pl.col("hospitaladmitoffset"),
                                 "plausibility.hospital_discharge_before_admission"))
    else:
        columns[STAY_KNOWN] = pa.Column(pl.Boolean, nullable=True)
        checks.append(_row_check(pl.col(STAY_KNOWN), "integrity.unknown_stay"))
    if table == "eicu_infusiondrug":
        pw = concepts.raw["measurements"]["patientweight"]
        checks.append(_row_check(pl.col("drugrate") >= 0, "plausibility.negative_rate"))
        checks.append(_row_check(pl.col("patientweight").is_between(float(pw["plausible_min"]), float(pw["plausible_max"])),
                                 "plausibility.patientweight_range"))
    if table == "eicu_vitalaperiodic":
        m = concepts.raw["measurements"]["map"]
        checks.append(_row_check(pl.col("noninvasivemean").is_between(float(m["plausible_min"]), float(m["plausible_max"])),
                                 "plausibility.value_range"))
    return pa.DataFrameSchema(columns, checks=checks, name=f"raw_{table}", strict=False, coerce=False)


def dose_schema(concepts) -> pa.DataFrameSchema:
    """Pandera model of the classified infusion rows (stg_eicu__infusiondrug, convertible rows):
    the dose in the drug's canonical unit is at most concepts.toml plausible_max_canonical."""
    maxima = {r["drug"]: r["plausible_max_canonical"] for r in concepts.drug_units.iter_rows(named=True)}
    max_expr = pl.col("drug").replace_strict(maxima, default=None, return_dtype=pl.Float64)
    return pa.DataFrameSchema(
        {"source_row": pa.Column(pl.Int64, nullable=False), "drug": pa.Column(pl.String, nullable=False),
         "rate_canonical": pa.Column(pl.Float64, nullable=True), "drugrate": pa.Column(pl.Float64, nullable=True)},
        checks=[_row_check(pl.col("rate_canonical") <= max_expr, "plausibility.rate_range")],
        name="stg_eicu__infusiondrug", strict=False, coerce=False,
    )

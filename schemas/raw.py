"""The raw MIMIC-IV tables vasoflow reads: their columns, types and which are required.

One ``RawTable`` per source table. ``columns`` lists every column the pipeline knows, with its
polars type (the ingest casts to the matching DuckDB type explicitly: no type sniffing).
``required`` columns must be in the file's header; the others are filled with nulls when a
release lacks them (MIMIC-IV 2.2 and 3.x differ in a few; header matching ignores case, so
2.2's ``ORIGINALAMOUNT`` is 3.x's ``originalamount``). Columns the file has and this list lacks
are ignored and reported in the ledger.

``itemid_filter``: the table is cut to the item ids in config/concepts.toml while it is read
(full chartevents is ~300M rows and must never be materialised whole).

The Pandera models built from these specs (with bounds from the concept config) are in
``schemas.validation``.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from pipeline.errors import InputFileError

ID = pl.Int64
TS = pl.Datetime("us")
NUM = pl.Float64
TXT = pl.String


@dataclass(frozen=True)
class RawTable:
    name: str
    module: str  # "hosp" or "icu": the PhysioNet folder
    columns: dict[str, pl.DataType]
    required_columns: tuple[str, ...]
    is_required: bool = True  # a missing file is an error (else: one warning, features off)
    itemid_filter: bool = False
    time_columns_in_stay: tuple[str, ...] = ()  # checked against icustays intime/outtime

    @property
    def relpath(self) -> str:
        return f"{self.module}/{self.name}"


RAW_TABLES: dict[str, RawTable] = {
    t.name: t
    for t in [
        RawTable(
            "patients",
            "hosp",
            {"subject_id": ID, "gender": TXT, "anchor_age": ID, "anchor_year": ID,
             "anchor_year_group": TXT, "dod": pl.Date},
            ("subject_id", "gender", "anchor_age", "anchor_year", "anchor_year_group", "dod"),
        ),
        RawTable(
            "admissions",
            "hosp",
            {"subject_id": ID, "hadm_id": ID, "admittime": TS, "dischtime": TS, "deathtime": TS,
             "admission_type": TXT, "admission_location": TXT, "discharge_location": TXT,
             "insurance": TXT, "race": TXT, "hospital_expire_flag": ID},
            ("subject_id", "hadm_id", "admittime", "dischtime", "deathtime"),
        ),
        RawTable(
            "diagnoses_icd",
            "hosp",
            {"subject_id": ID, "hadm_id": ID, "seq_num": ID, "icd_code": TXT, "icd_version": ID},
            ("subject_id", "hadm_id", "icd_code", "icd_version"),
        ),
        RawTable(
            "labevents",
            "hosp",
            {"labevent_id": ID, "subject_id": ID, "hadm_id": ID, "specimen_id": ID, "itemid": ID,
             "charttime": TS, "storetime": TS, "value": TXT, "valuenum": NUM, "valueuom": TXT,
             "flag": TXT},
            ("subject_id", "hadm_id", "itemid", "charttime", "valuenum", "valueuom"),
            itemid_filter=True,
        ),
        RawTable(
            "icustays",
            "icu",
            {"subject_id": ID, "hadm_id": ID, "stay_id": ID, "first_careunit": TXT,
             "last_careunit": TXT, "intime": TS, "outtime": TS, "los": NUM},
            ("subject_id", "hadm_id", "stay_id", "first_careunit", "intime", "outtime"),
        ),
        RawTable(
            "inputevents",
            "icu",
            {"subject_id": ID, "hadm_id": ID, "stay_id": ID, "caregiver_id": ID, "starttime": TS,
             "endtime": TS, "storetime": TS, "itemid": ID, "amount": NUM, "amountuom": TXT,
             "rate": NUM, "rateuom": TXT, "orderid": ID, "linkorderid": ID,
             "ordercategoryname": TXT, "ordercategorydescription": TXT, "patientweight": NUM,
             "totalamount": NUM, "totalamountuom": TXT, "statusdescription": TXT,
             "originalamount": NUM, "originalrate": NUM},
            ("subject_id", "hadm_id", "stay_id", "starttime", "endtime", "itemid", "amount",
             "amountuom", "rate", "rateuom", "orderid", "linkorderid", "patientweight",
             "statusdescription"),
            itemid_filter=True,
            time_columns_in_stay=("starttime",),
        ),
        RawTable(
            "procedureevents",
            "icu",
            {"subject_id": ID, "hadm_id": ID, "stay_id": ID, "caregiver_id": ID, "starttime": TS,
             "endtime": TS, "storetime": TS, "itemid": ID, "value": NUM, "valueuom": TXT,
             "location": TXT, "locationcategory": TXT, "orderid": ID, "linkorderid": ID,
             "ordercategoryname": TXT, "ordercategorydescription": TXT, "patientweight": NUM,
             "statusdescription": TXT},
            ("subject_id", "hadm_id", "stay_id", "starttime", "endtime", "itemid",
             "statusdescription"),
            itemid_filter=True,
            time_columns_in_stay=("starttime",),
        ),
        RawTable(
            "chartevents",
            "icu",
            {"subject_id": ID, "hadm_id": ID, "stay_id": ID, "caregiver_id": ID, "charttime": TS,
             "storetime": TS, "itemid": ID, "value": TXT, "valuenum": NUM, "valueuom": TXT,
             "warning": ID},
            ("subject_id", "hadm_id", "stay_id", "charttime", "itemid", "value", "valuenum"),
            is_required=False,
            itemid_filter=True,
            time_columns_in_stay=("charttime",),
        ),
        RawTable(
            "d_items",
            "icu",
            {"itemid": ID, "label": TXT, "abbreviation": TXT, "linksto": TXT, "category": TXT,
             "unitname": TXT, "param_type": TXT},
            ("itemid", "label", "linksto"),
        ),
        RawTable(
            "prescriptions",
            "hosp",
            {"subject_id": ID, "hadm_id": ID, "pharmacy_id": ID, "starttime": TS, "stoptime": TS,
             "drug_type": TXT, "drug": TXT, "dose_val_rx": TXT, "dose_unit_rx": TXT, "route": TXT},
            ("subject_id", "hadm_id", "starttime", "drug"),
            is_required=False,
        ),
        RawTable(
            "emar",
            "hosp",
            {"subject_id": ID, "hadm_id": ID, "emar_id": TXT, "emar_seq": ID, "charttime": TS,
             "medication": TXT, "event_txt": TXT, "scheduletime": TS, "storetime": TS},
            ("subject_id", "hadm_id", "charttime", "medication", "event_txt"),
            is_required=False,
        ),
    ]
}


# Formats a source table may come in, in the order they are looked for.
SOURCE_SUFFIXES: tuple[str, ...] = (".csv.gz", ".csv", ".parquet")


def find_table_file(source_dir: Path, table: RawTable) -> Path | None:
    """``<source_dir>/<module>/<table>`` with the suffix of SOURCE_SUFFIXES that exists.

    The one lookup shared by the ingest and the source fingerprint, so the cache key always
    covers exactly the files the ingest reads. A table present in two formats is an error
    naming both files (using one and ignoring the other would be a silent choice), and so is
    a path that is not a regular file (a FIFO would hang the reader; a folder cannot be read)."""
    found = []
    for suffix in SOURCE_SUFFIXES:
        path = Path(source_dir) / table.module / f"{table.name}{suffix}"
        if os.path.lexists(path):
            found.append(path)
    if len(found) > 1:
        raise InputFileError(
            f"{found[0]} and {found[1].name}: table '{table.name}' is present in two formats; "
            "keep exactly one of them"
        )
    if not found:
        return None
    path = found[0]
    try:
        mode = path.stat().st_mode  # follows a symlink to the real file
    except OSError as exc:
        raise InputFileError(f"{path}: cannot stat ({exc.strerror})") from None
    if not stat.S_ISREG(mode):
        kind = "a FIFO" if stat.S_ISFIFO(mode) else "a folder" if stat.S_ISDIR(mode) else "a special file"
        raise InputFileError(f"{path}: is {kind}, not a regular file; vasoflow reads tables only from regular files")
    return path


def duckdb_type(dtype: pl.DataType) -> str:
    """The DuckDB type a raw column is cast to."""
    if dtype == pl.Int64:
        return "BIGINT"
    if dtype == pl.Float64:
        return "DOUBLE"
    if dtype == pl.String:
        return "VARCHAR"
    if dtype == pl.Date:
        return "DATE"
    if isinstance(dtype, pl.Datetime):
        return "TIMESTAMP"
    raise TypeError(f"no DuckDB type for {dtype}")


def empty_table_sql(table: RawTable, relation: str | None = None) -> str:
    """``CREATE TABLE`` of an empty table with the raw columns (used for missing optional tables
    and by tests that build small fixtures)."""
    cols = ", ".join(['"source_row" BIGINT'] + [f'"{c}" {duckdb_type(t)}' for c, t in table.columns.items()])
    return f'CREATE OR REPLACE TABLE "{relation or "valid_" + table.name}" ({cols})'

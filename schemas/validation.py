"""Pandera (polars backend) models of the raw tables, with bounds from the concept config.

``build_raw_schema(table, concepts, study_config)`` returns one ``DataFrameSchema`` per raw
table. Every check has a rule id that the quarantine table records:

* ``completeness.<column>``: a required id or time is missing.
* ``conformance.rate_unit``: a vasoactive row in a rate unit the concept config does not list
  for its drug (it would be mixed with other units: quarantined, never guessed).
* ``plausibility.*``: ``endtime_before_starttime``, ``negative_rate``, ``negative_amount``,
  ``patientweight_range``, ``rate_range`` (per drug, in its canonical unit), ``value_range``
  (per measured item), ``outtime_before_intime``, ``dischtime_before_admittime``,
  ``anchor_age_range``, ``time_in_stay`` (event outside its ICU stay +/- the configured
  margin).
* ``integrity.*``: ``unknown_stay`` (stay_id not in icustays), ``duplicate_key``.
* ``plausibility.rate_artifact`` is a context rule (it needs the neighbouring rows of the same
  stay and drug), so it is not a Pandera check: ``RATE_ARTIFACT_SQL`` below, run by the ingest
  as one set-based DuckDB query after the row-wise checks (concepts.toml [rate_artifact]).

Frames validated here carry the raw columns plus ``source_row``; tables with
``time_columns_in_stay`` also carry ``_stay_intime``/``_stay_outtime`` (joined by the ingest
from icustays: null when the stay is unknown). Validate collected frames (``DataFrame``), not
LazyFrames: Pandera skips value checks on LazyFrames by default.
"""

from __future__ import annotations

from datetime import timedelta

import pandera.polars as pa
import polars as pl
from pandera.api.polars.types import PolarsData

from pipeline.concepts import drug_units_for
from schemas.raw import RAW_TABLES

STAY_INTIME = "_stay_intime"
STAY_OUTTIME = "_stay_outtime"


def _row_check(expr: pl.Expr, name: str) -> pa.Check:
    """A frame-level check: ``expr`` is True for a good row; null counts as good (a missing
    value is the business of the completeness rules, not of this one)."""

    def fn(data: PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(expr.fill_null(True).alias(name))

    check = pa.Check(fn, name=name)
    check.columns_read = tuple(expr.meta.root_names())  # see columns_with_rules
    return check


def columns_with_rules(schema: pa.DataFrameSchema) -> list[str]:
    """The columns of ``schema`` that a value rule reads: not-null columns and the columns of
    its frame-level checks, in schema order. The others carry only a type, which the ingest's
    cast fixes; it checks all types once on an empty frame and fetches only these columns for
    the row checks (chartevents: 7 of 12 columns, neither of its two text columns)."""
    read = {c for check in schema.checks for c in getattr(check, "columns_read", ())}
    missing = [check.name for check in schema.checks if not hasattr(check, "columns_read")]
    if missing:  # a check added without _row_check: read every column rather than guess
        return list(schema.columns)
    return [c for c, col in schema.columns.items() if not col.nullable or c in read or col.checks]


def _drug_unit_exprs(concepts, study_config=None) -> tuple[pl.Expr, pl.Expr, pl.Expr]:
    """(is_vasoactive, is_known_unit, rate in the drug's canonical unit) for inputevents rows.
    The canonical rate is in base (study.toml [units] norepinephrine_salt converted first)."""
    du = drug_units_for(concepts, study_config)
    key = pl.concat_str([pl.col("itemid").cast(pl.String), pl.lit("|"), pl.col("rateuom")])
    factors = {f"{r['itemid']}|{r['rateuom']}": r["to_canonical"] * r["salt_to_base"] for r in du.iter_rows(named=True)}
    divide = {f"{r['itemid']}|{r['rateuom']}": r["per_weight"] == "divide" for r in du.iter_rows(named=True)}
    vaso_ids = sorted(set(du["itemid"].to_list()))
    is_vaso = pl.col("itemid").is_in(vaso_ids)
    is_known = key.is_in(list(factors))
    factor = key.replace_strict(factors, default=None, return_dtype=pl.Float64)
    per_weight = key.replace_strict(divide, default=False, return_dtype=pl.Boolean)
    canonical = pl.when(per_weight).then(pl.col("rate") * factor / pl.col("patientweight")).otherwise(
        pl.col("rate") * factor
    )
    return is_vaso, is_known, canonical


def _measurement_range_check(concepts, table: str) -> pa.Check | None:
    m = concepts.measurements.filter(pl.col("source_table") == table)
    if m.is_empty():
        return None
    lows = dict(zip(m["itemid"].to_list(), m["plausible_min"].to_list()))
    highs = dict(zip(m["itemid"].to_list(), m["plausible_max"].to_list()))
    low = pl.col("itemid").replace_strict(lows, default=None, return_dtype=pl.Float64)
    high = pl.col("itemid").replace_strict(highs, default=None, return_dtype=pl.Float64)
    ok = pl.col("valuenum").is_null() | low.is_null() | pl.col("valuenum").is_between(low, high)
    return _row_check(ok, "plausibility.value_range")


def _stay_checks(table: str, margin_hours: float) -> list[pa.Check]:
    spec = RAW_TABLES[table]
    margin = timedelta(hours=margin_hours)
    checks = [_row_check(pl.col(STAY_INTIME).is_not_null(), "integrity.unknown_stay")]
    for col in spec.time_columns_in_stay:
        inside = (pl.col(col) >= pl.col(STAY_INTIME) - margin) & (pl.col(col) <= pl.col(STAY_OUTTIME) + margin)
        checks.append(_row_check(inside, "plausibility.time_in_stay"))
    return checks


def _unique_check(columns: list[str]) -> pa.Check:
    """The first row of a key stays; every later copy is a duplicate. Key tables (patients,
    admissions, icustays, d_items) are validated in one chunk at full MIMIC-IV scale (< 1M rows),
    so "first" is first in the file."""
    return _row_check(pl.struct(columns).is_first_distinct(), "integrity.duplicate_key")


# Identity columns that must be present on every row (completeness rules).
_NOT_NULL: dict[str, tuple[str, ...]] = {
    "patients": ("subject_id", "gender", "anchor_age", "anchor_year", "anchor_year_group"),
    "admissions": ("subject_id", "hadm_id", "admittime", "dischtime"),
    "diagnoses_icd": ("subject_id", "hadm_id", "icd_code", "icd_version"),
    "labevents": ("subject_id", "itemid", "charttime"),
    "icustays": ("subject_id", "hadm_id", "stay_id", "intime", "outtime"),
    "inputevents": ("subject_id", "stay_id", "starttime", "endtime", "itemid", "statusdescription"),
    "procedureevents": ("subject_id", "stay_id", "starttime", "endtime", "itemid"),
    "chartevents": ("subject_id", "stay_id", "charttime", "itemid"),
    "d_items": ("itemid", "label"),
    "prescriptions": ("subject_id", "hadm_id", "drug"),
    # emar.medication is empty on ~4% of real rows (administrations charted without a name):
    # not an error, just unusable for drug matching, so it is not required.
    "emar": ("subject_id", "charttime"),
}

_KEYS: dict[str, list[str]] = {
    "patients": ["subject_id"],
    "admissions": ["hadm_id"],
    "icustays": ["stay_id"],
    "d_items": ["itemid"],
}


def build_raw_schema(table: str, concepts, study_config) -> pa.DataFrameSchema:
    """The Pandera model of raw table ``table`` (see module docstring for the rules)."""
    spec = RAW_TABLES[table]
    not_null = set(_NOT_NULL.get(table, ()))
    columns: dict[str, pa.Column] = {"source_row": pa.Column(pl.Int64, nullable=False)}
    for name, dtype in spec.columns.items():
        columns[name] = pa.Column(dtype, nullable=name not in not_null)

    checks: list[pa.Check] = []
    if table in _KEYS:
        checks.append(_unique_check(_KEYS[table]))
    if table in ("inputevents", "procedureevents"):
        checks.append(_row_check(pl.col("endtime") >= pl.col("starttime"), "plausibility.endtime_before_starttime"))
    if table in ("inputevents", "procedureevents"):
        pw = concepts.raw["measurements"]["patientweight"]
        lo, hi = float(pw["plausible_min"]), float(pw["plausible_max"])
        checks.append(_row_check(pl.col("patientweight").is_between(lo, hi), "plausibility.patientweight_range"))
    if table == "inputevents":
        is_vaso, is_known, canonical = _drug_unit_exprs(concepts, study_config)
        checks.append(_row_check(pl.col("rate") >= 0, "plausibility.negative_rate"))
        checks.append(_row_check(pl.col("amount") >= 0, "plausibility.negative_amount"))
        checks.append(
            _row_check(~(is_vaso & pl.col("rate").is_not_null() & ~is_known), "conformance.rate_unit")
        )
        maxima = {r["itemid"]: r["plausible_max_canonical"] for r in concepts.drug_units.iter_rows(named=True)}
        max_expr = pl.col("itemid").replace_strict(maxima, default=None, return_dtype=pl.Float64)
        checks.append(_row_check(~is_vaso | (canonical <= max_expr), "plausibility.rate_range"))
    if table in ("chartevents", "labevents"):
        check = _measurement_range_check(concepts, table)
        if check is not None:
            checks.append(check)
    if table == "icustays":
        checks.append(_row_check(pl.col("outtime") >= pl.col("intime"), "plausibility.outtime_before_intime"))
    if table == "admissions":
        checks.append(
            _row_check(pl.col("dischtime") >= pl.col("admittime"), "plausibility.dischtime_before_admittime")
        )
    if table == "patients":
        checks.append(_row_check(pl.col("anchor_age").is_between(0, 120), "plausibility.anchor_age_range"))
    if spec.time_columns_in_stay:
        columns[STAY_INTIME] = pa.Column(pl.Datetime("us"), nullable=True)
        columns[STAY_OUTTIME] = pa.Column(pl.Datetime("us"), nullable=True)
        checks.extend(_stay_checks(table, float(study_config.get("ingest.stay_time_margin_hours"))))

    return pa.DataFrameSchema(columns, checks=checks, name=f"raw_{table}", strict=False, coerce=False)


# The column a frame-level rule is about: the quarantine reports that column's value.
RULE_COLUMN: dict[str, str] = {
    "integrity.duplicate_key": "",  # filled per table from _KEYS
    "integrity.unknown_stay": "stay_id",
    "plausibility.endtime_before_starttime": "endtime",
    "plausibility.patientweight_range": "patientweight",
    "plausibility.negative_rate": "rate",
    "plausibility.negative_amount": "amount",
    "plausibility.rate_range": "rate",
    "plausibility.value_range": "valuenum",
    "plausibility.outtime_before_intime": "outtime",
    "plausibility.dischtime_before_admittime": "dischtime",
    "plausibility.anchor_age_range": "anchor_age",
    "plausibility.time_in_stay": "",  # the table's first in-stay time column
    "conformance.rate_unit": "rateuom",
    "plausibility.rate_artifact": "rate",
}

RATE_ARTIFACT_RULE = "plausibility.rate_artifact"

# Vasoactive rows of raw_inputevents whose rate is a bag-finish artifact (concepts.toml
# [rate_artifact]). Set-based: one window over (stay_id, drug) ordered by starttime, so it scales
# with the vasoactive rows of full MIMIC-IV (~9M inputevents rows, item-filtered at read time).
# Context: rows of concept drugs with a rate in a listed unit, not 'Rewritten' (audit copies),
# and, unless the 4th parameter is false, not already quarantined by another rule (a row with a
# bad type, an out-of-range rate or weight is no evidence about its neighbours). The canonical
# rate is the one the staging SQL makes (salt_to_base: NE tartrate -> base). Parameters:
# max_duration_minutes, min_fraction_of_plausible_max, min_jump_factor, exclude_quarantined.
RATE_ARTIFACT_SQL = """
with

drug_unit as (
    select * from concept_drug_unit
),

quarantined as (
    select distinct source_row from quarantine where table_name = 'inputevents'
),

context as (
    select
        r.source_row,
        r.stay_id,
        u.drug,
        r.starttime,
        r.endtime,
        r.rate,
        case
            when u.per_weight = 'divide' then r.rate * u.to_canonical * u.salt_to_base / nullif(r.patientweight, 0)
            else r.rate * u.to_canonical * u.salt_to_base
        end as rate_canonical,
        u.plausible_max_canonical
    from raw_inputevents as r
    inner join drug_unit as u
        on u.itemid = r.itemid
        and u.rateuom = r.rateuom
    left join quarantined as q on q.source_row = r.source_row
    where r.statusdescription is distinct from 'Rewritten'
        and r.rate is not null
        and r.stay_id is not null
        and r.starttime is not null
        and r.endtime is not null
        and (q.source_row is null or not $4)
),

with_neighbours as (
    select
        *,
        lag(rate_canonical) over by_stay_drug as previous_rate_canonical,
        lead(rate_canonical) over by_stay_drug as next_rate_canonical
    from context
    window by_stay_drug as (partition by stay_id, drug order by starttime, endtime, source_row)
)

select
    source_row,
    stay_id,
    drug,
    starttime,
    endtime,
    date_diff('second', starttime, endtime) / 60.0 as duration_minutes,
    rate,
    rate_canonical,
    previous_rate_canonical,
    next_rate_canonical
from with_neighbours
where date_diff('second', starttime, endtime) <= $1 * 60
    and rate_canonical >= $2 * plausible_max_canonical
    and previous_rate_canonical is not null
    and next_rate_canonical is not null
    and rate_canonical > $3 * greatest(previous_rate_canonical, next_rate_canonical)
order by source_row
"""


def rule_column(table: str, rule: str) -> str | None:
    """The column whose value the quarantine shows for a frame-level ``rule`` of ``table``."""
    if rule == "integrity.duplicate_key":
        return _KEYS[table][0]
    if rule == "plausibility.time_in_stay":
        return RAW_TABLES[table].time_columns_in_stay[0]
    return RULE_COLUMN.get(rule)


def failure_rules(failure_cases: pl.DataFrame) -> pl.DataFrame:
    """Normalise Pandera failure cases to (index, rule, column_name, value) rows.

    Column-level failures become ``completeness.<column>`` (null in a required column) or
    ``conformance.<check>``; frame-level failures keep their rule name.
    """
    fc = failure_cases.filter(pl.col("index").is_not_null())
    rule = (
        pl.when(pl.col("check") == "not_nullable")
        .then(pl.concat_str([pl.lit("completeness."), pl.col("column")]))
        .when(pl.col("schema_context") == "DataFrameSchema")
        .then(pl.col("check"))
        .otherwise(pl.concat_str([pl.lit("conformance."), pl.col("check")]))
    )
    return fc.select(
        pl.col("index").cast(pl.Int64),
        rule.alias("rule"),
        # Frame-level checks name the schema here, not a column: the caller picks the column.
        pl.when(pl.col("schema_context") == "DataFrameSchema").then(None).otherwise(pl.col("column"))
        .alias("column_name"),
        pl.col("failure_case").cast(pl.String).alias("value"),
    )

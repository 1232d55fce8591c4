"""One test per Pandera rule of the raw-table models: the bad row fails with its rule id, the
good row beside it passes."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandera.polars as pa
import polars as pl
import pytest

from schemas.raw import RAW_TABLES
from schemas.validation import STAY_INTIME, STAY_OUTTIME, build_raw_schema, failure_rules

T0 = datetime(2150, 1, 1, 8, 0)


def _frame(table: str, rows: list[dict]) -> pl.DataFrame:
    spec = RAW_TABLES[table]
    schema = {"source_row": pl.Int64, **spec.columns}
    if spec.time_columns_in_stay:
        schema |= {STAY_INTIME: pl.Datetime("us"), STAY_OUTTIME: pl.Datetime("us")}
    full = [{"source_row": i + 1, **r} for i, r in enumerate(rows)]
    return pl.DataFrame(full, schema=schema)


def _failures(table, rows, concepts, study_config) -> set[tuple[int, str]]:
    schema = build_raw_schema(table, concepts, study_config)
    try:
        schema.validate(_frame(table, rows), lazy=True)
    except pa.errors.SchemaErrors as exc:
        f = failure_rules(exc.failure_cases)
        return set(zip(f["index"].to_list(), f["rule"].to_list()))
    return set()


def _infusion(**over) -> dict:
    row = dict(subject_id=1, hadm_id=2, stay_id=3, starttime=T0, endtime=T0 + timedelta(hours=1),
               itemid=221906, amount=1.0, amountuom="mg", rate=0.1, rateuom="mcg/kg/min",
               orderid=10, linkorderid=10, patientweight=80.0, statusdescription="FinishedRunning",
               **{STAY_INTIME: T0 - timedelta(hours=2), STAY_OUTTIME: T0 + timedelta(days=2)})
    row.update(over)
    return row


@pytest.mark.parametrize(
    "bad, rule",
    [
        (dict(rate=-0.1), "plausibility.negative_rate"),
        (dict(amount=-5.0), "plausibility.negative_amount"),
        (dict(endtime=T0 - timedelta(minutes=1)), "plausibility.endtime_before_starttime"),
        (dict(patientweight=999.0), "plausibility.patientweight_range"),
        (dict(rate=5.01), "plausibility.rate_range"),  # NE above 5 mcg/kg/min
        # vasopressin 6.1 units/hour = 0.1017 U/min: above the 0.1 U/min bound
        (dict(itemid=222315, rate=6.1, rateuom="units/hour"), "plausibility.rate_range"),
        # vasopressin in units/min above 0.1
        (dict(itemid=222315, rate=0.2, rateuom="units/min"), "plausibility.rate_range"),
        # phenylephrine in mcg/min is divided by weight: 2000 mcg/min / 80 kg = 25 mcg/kg/min > 20
        (dict(itemid=221749, rate=2000.0, rateuom="mcg/min"), "plausibility.rate_range"),
        (dict(rateuom="mg/hour"), "conformance.rate_unit"),
        (dict(starttime=T0 + timedelta(days=3, hours=1), endtime=T0 + timedelta(days=3, hours=2)),
         "plausibility.time_in_stay"),
        ({STAY_INTIME: None, STAY_OUTTIME: None}, "integrity.unknown_stay"),
        (dict(stay_id=None), "completeness.stay_id"),
        (dict(starttime=None), "completeness.starttime"),
    ],
)
def test_inputevents_rule(bad, rule, concepts, study_config):
    good_rows = [
        _infusion(),
        _infusion(rate=4.99),
        _infusion(itemid=222315, rate=2.4, rateuom="units/hour"),  # 0.04 U/min
        _infusion(itemid=222315, rate=0.03, rateuom="units/min"),
        _infusion(itemid=225158, rate=500.0, rateuom="mL/hour"),  # crystalloid: no drug bound
        # inside the 24 h margin after ICU discharge
        _infusion(starttime=T0 + timedelta(days=2, hours=23), endtime=T0 + timedelta(days=3)),
    ]
    assert _failures("inputevents", good_rows, concepts, study_config) == set()
    found = _failures("inputevents", good_rows + [_infusion(**bad)], concepts, study_config)
    assert (len(good_rows), rule) in found
    assert all(index == len(good_rows) for index, _ in found)


def test_time_margin_comes_from_config(concepts, study_config, tmp_path):
    from pipeline.config import load_study_config

    cfg_file = tmp_path / "study.toml"
    cfg_file.write_text("[ingest]\nstay_time_margin_hours = 1\n")
    tight = load_study_config(cfg_file)
    row = _infusion(starttime=T0 + timedelta(days=2, hours=2), endtime=T0 + timedelta(days=2, hours=3))
    assert _failures("inputevents", [row], concepts, study_config) == set()
    assert _failures("inputevents", [row], concepts, tight) == {(0, "plausibility.time_in_stay")}


def test_measurement_value_range(concepts, study_config):
    rows = [
        dict(subject_id=1, hadm_id=2, stay_id=3, charttime=T0, itemid=220052, value="70", valuenum=70.0,
             **{STAY_INTIME: T0, STAY_OUTTIME: T0 + timedelta(days=1)}),
        dict(subject_id=1, hadm_id=2, stay_id=3, charttime=T0, itemid=220052, value="400", valuenum=400.0,
             **{STAY_INTIME: T0, STAY_OUTTIME: T0 + timedelta(days=1)}),
        dict(subject_id=1, hadm_id=2, stay_id=3, charttime=T0, itemid=226512, value="5", valuenum=5.0,
             **{STAY_INTIME: T0, STAY_OUTTIME: T0 + timedelta(days=1)}),
    ]
    assert _failures("chartevents", rows, concepts, study_config) == {
        (1, "plausibility.value_range"), (2, "plausibility.value_range")}
    labs = [dict(subject_id=1, hadm_id=2, itemid=50813, charttime=T0, valuenum=v, valueuom="mmol/L")
            for v in (2.0, 55.0, None)]
    assert _failures("labevents", labs, concepts, study_config) == {(1, "plausibility.value_range")}


def test_key_tables(concepts, study_config):
    stays = [dict(subject_id=1, hadm_id=2, stay_id=s, first_careunit="MICU", intime=T0, outtime=T0 + timedelta(hours=h))
             for s, h in ((10, 5), (11, -1), (10, 5))]
    assert _failures("icustays", stays, concepts, study_config) == {
        (1, "plausibility.outtime_before_intime"), (2, "integrity.duplicate_key")}
    adm = [dict(subject_id=1, hadm_id=h, admittime=T0, dischtime=T0 + timedelta(days=d)) for h, d in ((1, 2), (2, -1))]
    assert _failures("admissions", adm, concepts, study_config) == {(1, "plausibility.dischtime_before_admittime")}
    pats = [dict(subject_id=s, gender="F", anchor_age=a, anchor_year=2150, anchor_year_group="2011 - 2013")
            for s, a in ((1, 50), (2, 150))]
    assert _failures("patients", pats, concepts, study_config) == {(1, "plausibility.anchor_age_range")}


# ---------------------------------------------------------------------------------------------
# The ingest validates rows with only the columns a rule reads (schemas.validation.columns_with_rules)
# ---------------------------------------------------------------------------------------------

def test_columns_with_rules_keep_every_column_a_rule_reads(concepts, study_config):
    """A rule whose column were left out of the fetched frame would fail on a missing column or,
    worse, pass; so every column a check reads and every not-null column must be kept, and
    a column with neither may go (its type is the ingest cast's)."""
    from schemas.validation import columns_with_rules

    for table in RAW_TABLES:
        schema = build_raw_schema(table, concepts, study_config)
        kept = set(columns_with_rules(schema))
        read = {c for check in schema.checks for c in check.columns_read}
        assert read <= kept, table
        assert {c for c, col in schema.columns.items() if not col.nullable} <= kept, table
    chart = set(columns_with_rules(build_raw_schema("chartevents", concepts, study_config)))
    assert {"valuenum", "itemid", "charttime", "stay_id", STAY_INTIME, STAY_OUTTIME} <= chart
    assert not {"value", "valueuom", "caregiver_id"} & chart  # no rule reads them


def test_columns_with_rules_reads_every_column_for_a_check_it_cannot_see_into(concepts, study_config):
    from schemas.validation import columns_with_rules

    schema = build_raw_schema("chartevents", concepts, study_config)
    assert len(columns_with_rules(schema)) < len(schema.columns)
    # a check not built by _row_check: which columns it reads is unknown, so all are fetched
    schema.checks.append(pa.Check(lambda data: data.lazyframe.select(pl.col("value").is_not_null()), name="custom"))
    assert columns_with_rules(schema) == list(schema.columns)


def test_row_failures_in_chunks_are_found_on_the_rule_columns_alone(concepts, study_config):
    """Validating the rule columns alone finds the same failures as the whole frame."""
    from schemas.validation import columns_with_rules

    rows = [_infusion(), _infusion(rate=-0.1), _infusion(patientweight=999.0), _infusion(stay_id=None)]
    frame = _frame("inputevents", rows)
    schema = build_raw_schema("inputevents", concepts, study_config)
    cols = columns_with_rules(schema)
    whole = _failures("inputevents", rows, concepts, study_config)
    try:
        schema.select_columns(cols).validate(frame.select(cols), lazy=True)
        subset = set()
    except pa.errors.SchemaErrors as exc:
        f = failure_rules(exc.failure_cases)
        subset = set(zip(f["index"].to_list(), f["rule"].to_list()))
    assert whole and subset == whole

"""Ingest rule plausibility.rate_artifact: short bag-finish rows whose rate jumps far above both
neighbours of the same drug in the same stay (concepts.toml [rate_artifact])."""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb
import polars as pl
import pytest

from cohort_fixture import CONCEPTS, itemid, study_config_with
from pipeline.concepts import RateArtifactRule, register_concept_tables
from pipeline.config import load_study_config
from pipeline.ingest import rate_artifact_rows
from schemas.raw import RAW_TABLES, empty_table_sql

RULE = RateArtifactRule.from_concepts(CONCEPTS)
T0 = datetime(2150, 1, 1, 8, 0)
# The four bag-finish rows of the MIMIC-IV demo 2.2 (source_row: stay), all norepinephrine.
DEMO_ARTIFACTS = {1235: 33281088, 2032: 30932571, 4147: 34100191, 4306: 30955999}


class Rows:
    """raw_inputevents + quarantine + concept tables, as the ingest has them when the rule runs."""

    def __init__(self, config=None):
        self.con = duckdb.connect()
        self.con.execute(empty_table_sql(RAW_TABLES["inputevents"], "raw_inputevents"))
        self.con.execute("CREATE TABLE quarantine (table_name VARCHAR, source_row BIGINT, rule VARCHAR, "
                         "column_name VARCHAR, value VARCHAR, row_key VARCHAR)")
        register_concept_tables(self.con, CONCEPTS, config or load_study_config())
        self.n = 0

    def add(self, stay, drug, start_min, end_min, rate, rateuom=None, weight=80.0, status="FinishedRunning"):
        self.n += 1
        unit = rateuom or CONCEPTS.raw["drugs"][drug]["units"][0]["rateuom"]
        self.con.execute(
            "INSERT INTO raw_inputevents (source_row, subject_id, stay_id, starttime, endtime, itemid, rate, "
            "rateuom, patientweight, statusdescription) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [self.n, stay, stay, T0 + timedelta(minutes=start_min), T0 + timedelta(minutes=end_min),
             itemid(drug), rate, unit, weight, status])
        return self.n

    def quarantine(self, row, rule="plausibility.rate_range"):
        self.con.execute("INSERT INTO quarantine VALUES ('inputevents', ?, ?, 'rate', NULL, NULL)", [row, rule])

    def caught(self) -> set[int]:
        return set(rate_artifact_rows(self.con, RULE)["source_row"].to_list())


def _bag_finish(r: Rows, stay: int, drug="norepinephrine", low=0.05, high=3.0, minutes=15, **kw) -> int:
    r.add(stay, drug, 0, 120, low, **kw)
    row = r.add(stay, drug, 120, 120 + minutes, high, **kw)
    r.add(stay, drug, 120 + minutes, 300, low, **kw)
    return row


def test_bag_finish_row_is_caught_and_steep_real_titrations_are_not():
    r = Rows()
    artifact = _bag_finish(r, 1)  # 0.05 -> 3.0 for 15 min -> 0.05
    # 2: steep escalation in 20-minute steps, then holding high: each step <= 5x its neighbours
    for k, rate in enumerate([0.1, 0.5, 1.2, 1.5, 1.5]):
        r.add(2, "norepinephrine", 20 * k, 20 * (k + 1), rate)
    # 3: a sharp spike and back within 20 minutes, 4.7x (a crash treated and recovered)
    _bag_finish(r, 3, low=0.3, high=1.4, minutes=20)
    # 4: a long high row (3 h) between low ones is charted titration, not a bag finish
    _bag_finish(r, 4, low=0.1, high=2.0, minutes=180)
    # 5: a 12x jump at a low dose (the demo's 1-minute 0.01 -> 0.12 -> 0.01, stay 38875437)
    _bag_finish(r, 5, low=0.01, high=0.12, minutes=1)
    # 6: an artifact-like first row has one neighbour only: not enough evidence
    r.add(6, "norepinephrine", 0, 10, 3.0)
    r.add(6, "norepinephrine", 10, 200, 0.05)
    assert r.caught() == {artifact}


def test_neighbours_are_the_same_drug_in_the_same_stay():
    r = Rows()
    # 1: epinephrine around a short high NE row: NE has no NE neighbours
    r.add(1, "epinephrine", 0, 120, 0.05)
    r.add(1, "norepinephrine", 120, 135, 3.0)
    r.add(1, "epinephrine", 135, 300, 0.05)
    # 2: the low rows are in another stay
    r.add(2, "norepinephrine", 120, 135, 3.0)
    r.add(3, "norepinephrine", 0, 120, 0.05)
    r.add(3, "norepinephrine", 135, 300, 0.05)
    assert r.caught() == set()


def test_rewritten_and_quarantined_rows_are_no_context():
    r = Rows()
    # a 'Rewritten' audit copy (2.9) would hide the artifact if it counted as the neighbour
    r.add(1, "norepinephrine", 0, 120, 0.05)
    r.add(1, "norepinephrine", 110, 120, 2.9, status="Rewritten")
    artifact = r.add(1, "norepinephrine", 120, 135, 3.0)
    r.add(1, "norepinephrine", 135, 300, 0.05)
    # an out-of-range neighbour already quarantined is no evidence either
    r.add(2, "norepinephrine", 0, 100, 0.05)
    bad = r.add(2, "norepinephrine", 100, 120, 7.5)
    artifact2 = r.add(2, "norepinephrine", 120, 135, 3.0)
    r.add(2, "norepinephrine", 135, 300, 0.05)
    r.quarantine(bad)
    assert r.caught() == {artifact, artifact2}
    # and a row already quarantined is not caught twice (one rule per row in the ledger)
    r.quarantine(artifact)
    assert r.caught() == {artifact2}


def test_units_are_canonical_per_drug():
    r = Rows()
    # vasopressin charted in units/hour: 2.4 U/h (0.04 U/min) -> 30 U/h (0.5 U/min) for 12 min
    vp = _bag_finish(r, 1, drug="vasopressin", low=2.4, high=30.0, minutes=12, rateuom="units/hour")
    # ... and a real VP titration 1.2 -> 2.4 -> 1.2 U/h
    _bag_finish(r, 2, drug="vasopressin", low=1.2, high=2.4, minutes=30, rateuom="units/hour")
    # phenylephrine in mcg/min (divided by weight): 50 -> 800 -> 50 mcg/min at 80 kg = 10 mcg/kg/min
    phe = _bag_finish(r, 3, drug="phenylephrine", low=50.0, high=800.0, minutes=10, rateuom="mcg/min")
    assert r.caught() == {vp, phe}


def test_dose_floor_follows_the_ne_salt(tmp_path):
    # 1.8 mcg/kg/min charted: above the 1.0 base floor as base, 0.9 base (below it) as tartrate
    base, tart = Rows(), Rows(study_config_with(tmp_path, "[units]\nnorepinephrine_salt = \"tartrate\"\n"))
    row = _bag_finish(base, 1, high=1.8)
    _bag_finish(tart, 1, high=1.8)
    assert base.caught() == {row} and tart.caught() == set()


# ---------------------------------------------------------------------------------------------
# The real MIMIC-IV demo
# ---------------------------------------------------------------------------------------------

def test_demo_rule_catches_exactly_the_four_bag_finish_rows(demo_db):
    con = duckdb.connect(str(demo_db.db_path), read_only=True)
    try:
        # On every row (ignoring what other rules quarantined): exactly the four known rows, so
        # no other demo NE or VP row (nor any other vasoactive row) is taken for an artifact.
        rows = rate_artifact_rows(con, RULE, exclude_quarantined=False)
        assert dict(zip(rows["source_row"].to_list(), rows["stay_id"].to_list())) == DEMO_ARTIFACTS
        assert set(rows["drug"].to_list()) == {"norepinephrine"}
        assert rows["duration_minutes"].max() <= 28 and rows["rate_canonical"].min() > 2.4
        # In the ingest all four are quarantined: two above the 5 mcg/kg/min bound (rate_range),
        # two by this rule; none is in valid_inputevents.
        q = con.execute("SELECT source_row, rule FROM quarantine WHERE table_name = 'inputevents' "
                        "ORDER BY source_row").fetchall()
        assert q == [(1235, "plausibility.rate_range"), (2032, "plausibility.rate_artifact"),
                     (4147, "plausibility.rate_artifact"), (4306, "plausibility.rate_range")]
        assert con.execute("SELECT count(*) FROM valid_inputevents WHERE source_row IN (1235, 2032, 4147, 4306)"
                           ).fetchone()[0] == 0
        # The ledger balances per table and per rule.
        led = con.execute("SELECT rows_read, rows_loaded, rows_quarantined FROM ledger WHERE \"table\" = 'inputevents'"
                          ).fetchone()
        assert led[0] == led[1] + led[2] and led[2] == 4
        by_rule = dict(con.execute("SELECT rule, rows FROM ledger_rule WHERE \"table\" = 'inputevents'").fetchall())
        assert by_rule == {"plausibility.rate_artifact": 2, "plausibility.rate_range": 2}
        assert sum(by_rule.values()) == led[2]
    finally:
        con.close()
    on_disk = {t["table"]: t for t in __import__("json").loads(demo_db.ledger_path.read_text())["tables"]}
    assert on_disk["inputevents"]["quarantined_by_rule"]["plausibility.rate_artifact"] == 2


@pytest.mark.parametrize("factor", [4.0, 7.0])
def test_demo_margin_of_the_jump_factor(demo_db, factor):
    # The smallest demo artifact is 6.6x its neighbours and the largest real step of a plausible
    # dose 3.3x: any factor in between gives the same four rows; 7x loses stay 34100191.
    con = duckdb.connect(str(demo_db.db_path), read_only=True)
    try:
        rule = RateArtifactRule(RULE.max_duration_minutes, factor, RULE.min_fraction_of_plausible_max)
        caught = set(rate_artifact_rows(con, rule, exclude_quarantined=False)["source_row"].to_list())
    finally:
        con.close()
    assert caught == (set(DEMO_ARTIFACTS) if factor == 4.0 else set(DEMO_ARTIFACTS) - {4147})

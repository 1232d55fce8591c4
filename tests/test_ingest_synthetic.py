"""Ingest end to end on synthetic MIMIC-IV-layout data that includes chartevents."""

from __future__ import annotations

import gzip

import duckdb
import polars as pl
import pytest

from pipeline.ingest import ingest
from pipeline.synth import generate


@pytest.fixture(scope="module")
def synth_ingested(tmp_path_factory, study_config):
    root = tmp_path_factory.mktemp("synth_ingest")
    synth = generate(root / "src", n_stays=300, seed=11)
    result = ingest(synth.out_dir, root / "db" / "vasoflow.duckdb", study_config)
    return synth, result


def test_chartevents_cut_to_concept_items_while_read(synth_ingested, concepts):
    synth, result = synth_ingested
    con = duckdb.connect(str(result.db_path), read_only=True)
    kept = {r[0] for r in con.execute("SELECT DISTINCT itemid FROM raw_chartevents").fetchall()}
    assert kept and kept <= set(concepts.itemids(table="chartevents"))
    # The file holds items the study does not need; they were never loaded.
    with gzip.open(synth.out_dir / "icu" / "chartevents.csv.gz", "rt") as fh:
        header = fh.readline().rstrip("\n").split(",")
        col = header.index("itemid")
        in_file = {int(line.split(",")[col]) for line in fh}
    assert in_file - kept, "synthetic chartevents should contain items outside the concept list"
    chart = {t.table: t for t in result.tables}["chartevents"]
    assert chart.is_available and chart.itemid_filter
    assert chart.rows_read == con.execute("SELECT count(*) FROM raw_chartevents").fetchone()[0]


def test_every_row_accounted_for(synth_ingested):
    _, result = synth_ingested
    for t in result.tables:
        assert t.rows_read == t.rows_loaded + t.rows_quarantined, t.table
        assert t.rows_quarantined == 0 or sum(t.quarantined_by_rule.values()) >= t.rows_quarantined


EXPECTED_RULE = {
    "patientweight_implausible": "plausibility.patientweight_range",
    "endtime_before_starttime": "plausibility.endtime_before_starttime",
    "rate_above_plausible_max": "plausibility.rate_range",
    "negative_rate": "plausibility.negative_rate",
}


def test_planted_defects_are_quarantined_and_nothing_else(synth_ingested):
    synth, result = synth_ingested
    planted = pl.read_parquet(synth.quarantine_path)
    assert planted.height > 0
    con = duckdb.connect(str(result.db_path), read_only=True)
    for row in planted.iter_rows(named=True):
        module, table = row["table"].split("/")
        with gzip.open(synth.out_dir / module / f"{table}.csv.gz", "rt") as fh:
            header = fh.readline().rstrip("\n").split(",")
            for _ in range(row["row_number"] - 1):
                fh.readline()
            fields = dict(zip(header, fh.readline().rstrip("\n").split(",")))
        rules = {r[0] for r in con.execute(
            f"SELECT q.rule FROM quarantine q JOIN raw_{table} r USING (source_row) "
            f"WHERE q.table_name = ? AND r.stay_id = ? AND r.itemid = ? "
            f"AND r.starttime = CAST(? AS TIMESTAMP) AND r.orderid = ?",
            [table, row["stay_id"], row["itemid"], fields["starttime"], int(fields["orderid"])],
        ).fetchall()}
        assert EXPECTED_RULE[row["defect"]] in rules, (row, rules)
    # ... and no other row anywhere.
    n_quarantined = con.execute("SELECT count(DISTINCT (table_name, source_row)) FROM quarantine").fetchone()[0]
    assert n_quarantined == planted.height

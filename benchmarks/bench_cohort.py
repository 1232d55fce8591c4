"""Benchmark: the cohort step (build_cohort) on N synthetic ICU stays.

    .venv/bin/python benchmarks/bench_cohort.py --stays 100000 [--workdir DIR] [--threads K]

It writes an ingest-shaped DuckDB file directly (the ``valid_*`` tables of the ingest contract,
``source_table``; generated set-based inside DuckDB, so the figure is the cohort step alone,
not synth or ingest), then times ``build_cohort`` end to end (concept registration, every
cohort relation, Pandera validation, three parquet files). Per stay: ~24 NE rows of 30-35 min
(overlapping by 5 min, as MetaVision charts rate changes), vasopressin for 40 % (10 rows,
units/hour), epinephrine for 10 %, 48 MAP values, 10 lactates, 5 creatinines; RRT for 5 %.
Target: under 60 s for 100k stays.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.cohort import build_cohort  # noqa: E402
from pipeline.concepts import load_concepts  # noqa: E402
from pipeline.config import load_study_config  # noqa: E402
from schemas.raw import RAW_TABLES, empty_table_sql  # noqa: E402


def make_db(path: Path, n_stays: int) -> dict[str, int]:
    """Fill ``path`` with ingest-shaped tables for ``n_stays`` stays; returns row counts."""
    c = load_concepts().raw
    ids = {
        "ne": c["drugs"]["norepinephrine"]["itemids"][0],
        "vp": c["drugs"]["vasopressin"]["itemids"][0],
        "epi": c["drugs"]["epinephrine"]["itemids"][0],
        "map": c["measurements"]["map"]["itemids"][0],
        "lac": c["measurements"]["lactate"]["itemids"][0],
        "cre": c["measurements"]["creatinine"]["itemids"][0],
        "rrt": c["rrt"]["procedureevents_itemids"][0],
        "sepsis": c["sepsis"]["icd10_prefixes"][1] + "9",
    }
    con = duckdb.connect(str(path))
    for table in RAW_TABLES.values():
        con.execute(empty_table_sql(table))
    con.execute("SELECT setseed(0.42)")
    con.execute(f"CREATE TEMP TABLE s AS SELECT range AS i, 30000000 + range AS stay_id, 10000000 + range AS subject_id, "
                f"20000000 + range AS hadm_id, TIMESTAMP '2150-01-01' + to_minutes((random() * 1e6)::BIGINT) AS intime, "
                f"40 + random() * 120 AS weight, random() AS u1, random() AS u2, random() AS u3 FROM range({n_stays})")
    con.execute("INSERT INTO valid_patients SELECT i, subject_id, CASE WHEN u1 < .5 THEN 'F' ELSE 'M' END, "
                "16 + (u2 * 75)::BIGINT, year(intime), '2017 - 2019', CASE WHEN u3 < .3 THEN CAST(intime + INTERVAL 20 DAY AS DATE) END FROM s")
    con.execute("INSERT INTO valid_admissions (source_row, subject_id, hadm_id, admittime, dischtime, deathtime) "
                "SELECT i, subject_id, hadm_id, intime - INTERVAL 6 HOUR, intime + INTERVAL 9 DAY, "
                "CASE WHEN u3 < .15 THEN intime + INTERVAL 9 DAY END FROM s")
    con.execute("INSERT INTO valid_icustays (source_row, subject_id, hadm_id, stay_id, first_careunit, last_careunit, intime, outtime, los) "
                "SELECT i, subject_id, hadm_id, stay_id, 'MICU', 'MICU', intime, intime + INTERVAL 5 DAY, 5 FROM s")
    con.execute("INSERT INTO valid_diagnoses_icd (source_row, subject_id, hadm_id, seq_num, icd_code, icd_version) "
                "SELECT i, subject_id, hadm_id, 1, ?, 10 FROM s WHERE u1 < .7", [ids["sepsis"]])
    # NE: 24 rows of 35 min starting every 30 min (5 min overlap), 85 % of stays
    con.execute(
        "INSERT INTO valid_inputevents (source_row, subject_id, hadm_id, stay_id, starttime, endtime, itemid, rate, rateuom, "
        "orderid, linkorderid, patientweight, statusdescription) "
        "SELECT row_number() OVER (), subject_id, hadm_id, stay_id, intime + to_minutes(60 + 30 * k), "
        "intime + to_minutes(95 + 30 * k), ?, round(0.02 + random() * 0.6, 3), 'mcg/kg/min', k, 1, weight, "
        "CASE WHEN random() < .02 THEN 'Rewritten' ELSE 'ChangeDose/Rate' END "
        "FROM s, range(24) t(k) WHERE u2 < .85", [ids["ne"]])
    con.execute(
        "INSERT INTO valid_inputevents (source_row, subject_id, hadm_id, stay_id, starttime, endtime, itemid, rate, rateuom, "
        "orderid, linkorderid, patientweight, statusdescription) "
        "SELECT 100000000 + row_number() OVER (), subject_id, hadm_id, stay_id, intime + to_minutes(60 + (u3 * 900)::BIGINT + 60 * k), "
        "intime + to_minutes(120 + (u3 * 900)::BIGINT + 60 * k), ?, 2.4, 'units/hour', k, 2, weight, 'ChangeDose/Rate' "
        "FROM s, range(10) t(k) WHERE u1 < .4", [ids["vp"]])
    con.execute(
        "INSERT INTO valid_inputevents (source_row, subject_id, hadm_id, stay_id, starttime, endtime, itemid, rate, rateuom, "
        "orderid, linkorderid, patientweight, statusdescription) "
        "SELECT 200000000 + row_number() OVER (), subject_id, hadm_id, stay_id, intime + to_minutes(200 + 60 * k), "
        "intime + to_minutes(260 + 60 * k), ?, 0.05, 'mcg/kg/min', k, 3, weight, 'ChangeDose/Rate' "
        "FROM s, range(6) t(k) WHERE u3 > .9", [ids["epi"]])
    con.execute("INSERT INTO valid_chartevents (source_row, subject_id, hadm_id, stay_id, charttime, itemid, value, valuenum) "
                "SELECT row_number() OVER (), subject_id, hadm_id, stay_id, intime + to_minutes(30 * k), ?, '65', "
                "50 + random() * 40 FROM s, range(48) t(k)", [ids["map"]])
    con.execute("INSERT INTO valid_labevents (source_row, subject_id, hadm_id, itemid, charttime, valuenum) "
                "SELECT row_number() OVER (), subject_id, hadm_id, ?, intime + to_minutes(-600 + 240 * k), 0.5 + random() * 8 "
                "FROM s, range(10) t(k)", [ids["lac"]])
    con.execute("INSERT INTO valid_labevents (source_row, subject_id, hadm_id, itemid, charttime, valuenum) "
                "SELECT 100000000 + row_number() OVER (), subject_id, hadm_id, ?, intime + to_minutes(-3000 + 720 * k), "
                "0.4 + random() * 4 FROM s, range(5) t(k)", [ids["cre"]])
    con.execute("INSERT INTO valid_procedureevents (source_row, subject_id, hadm_id, stay_id, starttime, endtime, itemid, statusdescription) "
                "SELECT i, subject_id, hadm_id, stay_id, intime + INTERVAL 1 DAY, intime + INTERVAL 3 DAY, ?, 'FinishedRunning' "
                "FROM s WHERE u2 > .95", [ids["rrt"]])
    con.execute("CREATE TABLE source_table AS SELECT table_name, true AS is_available, 0::BIGINT AS rows_loaded "
                "FROM (SELECT unnest(?::VARCHAR[]) AS table_name)", [list(RAW_TABLES)])
    counts = {t: con.execute(f'SELECT count(*) FROM "valid_{t}"').fetchone()[0] for t in RAW_TABLES}
    con.execute("CHECKPOINT")
    con.close()
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stays", type=int, nargs="+", default=[100_000])
    ap.add_argument("--workdir", type=Path)
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_cohort_"))
    work.mkdir(parents=True, exist_ok=True)
    cfg = load_study_config()
    for n in args.stays:
        db = work / f"cohort_{n}.duckdb"
        db.unlink(missing_ok=True)
        t0 = time.perf_counter()
        counts = make_db(db, n)
        t_make = time.perf_counter() - t0
        t0 = time.perf_counter()
        res = build_cohort(db, work / f"out_{n}", cfg)
        wall = time.perf_counter() - t0
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{n:>9,} stays: database made in {t_make:.1f} s "
              f"(inputevents {counts['inputevents']:,}, chartevents {counts['chartevents']:,}, labevents {counts['labevents']:,})")
        print(f"           build_cohort {wall:.1f} s, peak RSS {peak:.0f} MB, cohort {res.n_rows:,} rows, "
              f"exposure {res.exposure_counts}")


if __name__ == "__main__":
    main()

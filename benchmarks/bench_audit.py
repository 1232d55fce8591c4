"""Benchmark: the QI audit step (run_audit) on N synthetic ICU stays.

    .venv/bin/python benchmarks/bench_audit.py --stays 100000 [--workdir DIR]

Builds the same ingest-shaped DuckDB as benchmarks/bench_cohort.py (``make_db``: ~24
overlapping NE rows per stay, vasopressin for 40 %, 48 MAP values per stay, ...), runs the
cohort step untimed, then times ``run_audit`` end to end (concept registration, the audit
relations, the SPC charts, three parquet files). The audit is set-based SQL, so its time should
grow about linearly with the number of stays.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_cohort import make_db  # noqa: E402

from pipeline.audit import run_audit  # noqa: E402
from pipeline.cohort import build_cohort  # noqa: E402
from pipeline.config import load_study_config  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stays", type=int, nargs="+", default=[100_000])
    ap.add_argument("--workdir", type=Path)
    args = ap.parse_args()
    cfg = load_study_config()
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        for n in args.stays:
            db = Path(tmp) / f"bench_{n}.duckdb"
            make_db(db, n)
            cohort = build_cohort(db, Path(tmp) / f"out_{n}", cfg)
            t0 = time.perf_counter()
            result = run_audit(db, Path(tmp) / f"out_{n}", cfg)
            seconds = time.perf_counter() - t0
            rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"{n} stays ({cohort.n_rows} in cohort): run_audit {seconds:.1f} s, peak RSS {rss_mb:.0f} MB")
            print(result.describe())


if __name__ == "__main__":
    main()

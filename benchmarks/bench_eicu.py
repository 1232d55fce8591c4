"""Benchmark: the eICU path against the MIMIC-IV path on the same synthetic patients.

    .venv/bin/python benchmarks/bench_eicu.py --stays 3000 [--sites 20] [--workdir DIR]

Generates the synthetic world (pipeline.synth), writes it as eICU tables (synth --format eicu),
then times ingest + cohort of each layout in its own process and prints the wall times, the
number of cohort stays of each path, and how many agree on exposure (they should all agree).
Figures are wall-clock times on a shared machine: read them as orders of magnitude.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _timed(args: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pipeline.cli", *args], check=True, cwd=REPO,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stays", type=int, default=3000)
    ap.add_argument("--sites", type=int, default=20)
    ap.add_argument("--workdir")
    a = ap.parse_args()
    work = Path(a.workdir or tempfile.mkdtemp(prefix="vasoflow-bench-eicu-"))
    sys.path.insert(0, str(REPO))
    from pipeline.config import load_study_config
    from pipeline.synth import generate
    from pipeline.synth.eicu import write_eicu

    t0 = time.perf_counter()
    generate(work / "mimic", n_stays=a.stays, seed=5)
    t_synth = time.perf_counter() - t0
    t0 = time.perf_counter()
    write_eicu(work / "mimic", work / "eicu", a.sites, 5, load_study_config(None))
    t_write = time.perf_counter() - t0
    print(f"stays {a.stays}: synth {t_synth:.1f} s, eICU writer {t_write:.1f} s")
    import polars as pl

    cohorts = {}
    for layout in ("mimic", "eicu"):
        t_ing = _timed(["ingest", "--source", str(work / layout), "--db", str(work / f"{layout}.duckdb")])
        t_coh = _timed(["cohort", "--db", str(work / f"{layout}.duckdb"), "--out", str(work / f"{layout}_out")])
        cohorts[layout] = pl.read_parquet(work / f"{layout}_out" / "cohort.parquet")
        print(f"  {layout:<5} ingest {t_ing:5.1f} s  cohort {t_coh:5.1f} s  cohort stays {cohorts[layout].height}")
    j = cohorts["mimic"].join(cohorts["eicu"], on="stay_id", suffix="_e")
    print(f"  common stays {j.height}, same exposure {(j['exposure'] == j['exposure_e']).sum()}")


if __name__ == "__main__":
    main()

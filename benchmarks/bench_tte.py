"""Benchmark of the target-trial emulation (issue 11 goal: a 20,000-patient cohort with 200
bootstrap replicates in <= 10 minutes and <= 4 GB on 2 cores).

The cohort and hourly panel come from the synthetic hour-by-hour world
(pipeline.tte.world_panel: the columns pipeline.tte reads, without writing MIMIC tables), are
written as cohort.parquet + hourly_panel.parquet, and ``run_tte`` runs on them exactly as the
pipeline step does (bootstrap over [tte].bootstrap_workers processes). Prints wall time and
peak memory (this process + its workers, from /proc and resource.getrusage). Figures are noisy
on a shared machine; run it alone for a clean measure.

    .venv/bin/python benchmarks/bench_tte.py [--patients 20000] [--bootstrap 200]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.config import load_study_config  # noqa: E402
from pipeline.tte import run_tte  # noqa: E402
from pipeline.tte.results import describe  # noqa: E402
from pipeline.tte.world_panel import world_frames  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=20_000)
    ap.add_argument("--bootstrap", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    cfg = load_study_config()
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        cohort, panel = world_frames(args.patients, seed=20240601)
        cohort.write_parquet(Path(tmp) / "cohort.parquet")
        panel.write_parquet(Path(tmp) / "hourly_panel.parquet")
        print(f"data: {cohort.height:,} patients, {panel.height:,} person-hours ({time.perf_counter() - t:.1f} s)")
        del cohort, panel
        t = time.perf_counter()
        section = run_tte(Path(tmp) / "cohort.parquet", Path(tmp) / "out", cfg, n_bootstrap=args.bootstrap,
                          workers=args.workers)
        seconds = time.perf_counter() - t
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    own, children = me.ru_maxrss / 2**20, kids.ru_maxrss / 2**20
    cpu_main, cpu_workers = me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime
    print(describe(section))
    print(f"run_tte: {seconds:.1f} s wall for {args.patients:,} patients x {args.bootstrap} replicates "
          f"({args.workers} workers) [goal <= 600 s]")
    print(f"CPU: main {cpu_main:.0f} s, workers {cpu_workers:.0f} s in all: on an idle machine the wall time is about "
          f"{cpu_main + cpu_workers / args.workers:.0f} s (the wall time above includes waiting for other processes)")
    print(f"peak RSS: main {own:.2f} GiB, largest worker {children:.2f} GiB, sum <= {own + args.workers * children:.2f} GiB "
          f"[goal <= 4 GiB]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark: synth and ingest at 10k and 100k stays, against the gzip -dc floor.

    .venv/bin/python benchmarks/bench_ingest.py --stays 10000 100000 [--workdir DIR]

For each size it prints the synth wall time and peak memory, then the ingest wall time, peak
memory, the time of the context rule plausibility.rate_artifact alone, rows/s per table, and how long plain `gzip -dc` takes to decompress the same files
(the floor an ingest that must read every byte cannot beat). Each measured step runs in its
own process so peak RSS is that step's alone.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_CHILD = r"""
import json, resource, sys, time
from pathlib import Path
sys.path.insert(0, {repo!r})
t0 = time.perf_counter()
step = {step!r}
if step == "synth":
    from pipeline.synth import generate
    generate(Path({src!r}), n_stays={n}, seed=1)
    extra = {{}}
else:
    from pipeline.config import load_study_config
    from pipeline.ingest import ingest
    r = ingest(Path({src!r}), Path({db!r}), load_study_config())
    extra = {{"tables": [[t.table, t.rows_read, t.rows_quarantined, t.seconds] for t in r.tables]}}
    # The context rule plausibility.rate_artifact, timed alone on the finished database (the same
    # query the ingest ran inside the inputevents step): best of 3.
    import duckdb
    from pipeline.concepts import RateArtifactRule, load_concepts
    from pipeline.ingest import rate_artifact_rows
    con = duckdb.connect({db!r}, read_only=True)
    rule = RateArtifactRule.from_concepts(load_concepts())
    times = []
    for _ in range(3):
        t1 = time.perf_counter()
        n_art = rate_artifact_rows(con, rule).height
        times.append(time.perf_counter() - t1)
    con.close()
    extra["rate_artifact_s"] = min(times)
    extra["rate_artifact_by_rule"] = sum(t.quarantined_by_rule.get("plausibility.rate_artifact", 0) for t in r.tables)
wall = time.perf_counter() - t0
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"wall_s": wall, "peak_mb": peak_mb, **extra}}))
"""


def _child(step: str, src: Path, db: Path, n: int) -> dict:
    code = _CHILD.format(repo=str(REPO), step=step, src=str(src), db=str(db), n=n)
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _gzip_floor(src: Path) -> tuple[float, int]:
    files = sorted(src.glob("*/*.csv.gz"))
    t0 = time.perf_counter()
    total = 0
    for f in files:
        p = subprocess.run(["gzip", "-dc", str(f)], check=True, capture_output=True)
        total += len(p.stdout)
    return time.perf_counter() - t0, total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stays", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="vasoflow-bench-"))
    print(f"workdir {work}")
    for n in args.stays:
        src, db = work / f"synth-{n}", work / f"db-{n}" / "vasoflow.duckdb"
        s = _child("synth", src, db, n)
        size_mb = sum(f.stat().st_size for f in src.glob("*/*.csv.gz")) / 1e6
        print(f"\n== {n:,} stays")
        print(f"synth : {s['wall_s']:7.1f} s  peak {s['peak_mb']:7.0f} MB  ({size_mb:.0f} MB of csv.gz)")
        i = _child("ingest", src, db, n)
        print(f"ingest: {i['wall_s']:7.1f} s  peak {i['peak_mb']:7.0f} MB")
        floor, raw_bytes = _gzip_floor(src)
        print(f"gzip -dc floor: {floor:.1f} s for {raw_bytes / 1e6:.0f} MB uncompressed "
              f"(ingest = {i['wall_s'] / floor:.1f}x the floor)")
        ne_s = next((secs for table, _, _, secs in i["tables"] if table == "inputevents"), 0.0)
        print(f"rate_artifact rule: {i['rate_artifact_s']:.3f} s (best of 3, on the finished DB) = "
              f"{i['rate_artifact_s'] / max(ne_s, 1e-9):.1%} of the inputevents step, "
              f"{i['rate_artifact_s'] / i['wall_s']:.1%} of the ingest; rows it quarantined: {i['rate_artifact_by_rule']:,}")
        for table, rows, quarantined, secs in i["tables"]:
            if rows:
                print(f"  {table:<16} {rows:>11,} rows in {secs:6.1f} s = {rows / max(secs, 1e-9):>12,.0f} rows/s"
                      f"  (quarantined {quarantined:,})")


if __name__ == "__main__":
    main()

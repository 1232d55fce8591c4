"""Benchmark: synth and ingest at 10k and 100k stays, against the gzip -dc floor and a plain
DuckDB read of the same files with the same item filter (side by side, in one run).

    .venv/bin/python benchmarks/bench_ingest.py --stays 10000 100000 [--workdir DIR] [--pairs 3]
    .venv/bin/python benchmarks/bench_ingest.py --stays 10000 --big-chartevents 300000000 --skip-normal

``--pairs N`` (default 2): the ingest and the plain read run N times, alternating, each pair
printed with its ratio, then the ratio of the best times (a shared VM's speed drifts by 10-20%
within minutes, enough to move one pair's ratio by 0.15).

``--big-chartevents ROWS``: after the normal figures, enlarge chartevents to about ROWS rows by
appending rows of an item the study ignores (written by DuckDB, cheaply), and time the ingest
and the plain filtered read of that source (peak RSS of each, VmHWM); set VASOFLOW_MEMORY_LIMIT
to bound DuckDB's memory as a deployment would. The enlarged source is deleted afterwards
unless ``--keep-big``. Each comparison prints wall and CPU (user + system) ratios: on a shared
machine the CPU ratio is the steadier one.

"Plain read": per table, ``CREATE TABLE t AS SELECT * FROM read_csv(file)`` (DuckDB's type
detection, no validation) with ``WHERE itemid IN (<the concept item ids>)`` for the tables the
ingest filters; the same connection settings (pipeline.duckdb_settings.connect).

For each size it prints the synth wall time and peak memory, then the ingest wall time, peak
memory, the time of the context rule plausibility.rate_artifact alone, rows/s per table, and how long plain `gzip -dc` takes to decompress the same files
(the floor an ingest that must read every byte cannot beat). Each measured step runs in its
own process so peak RSS is that step's alone.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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
step = {step!r}
# Imports first (polars, pandera: ~2-3 s, the same for every step): the figures time the work.
from pipeline.config import load_study_config
from pipeline.concepts import load_concepts
from pipeline.duckdb_settings import connect
from pipeline.ingest import LOAD_ORDER, ingest
import pipeline.synth
t0 = time.perf_counter()
_ru0 = resource.getrusage(resource.RUSAGE_SELF)
cpu0 = _ru0.ru_utime + _ru0.ru_stime
if step == "plain":
    from pipeline.concepts import load_concepts
    from pipeline.duckdb_settings import connect
    from pipeline.ingest import LOAD_ORDER
    from schemas.raw import RAW_TABLES, find_table_file
    concepts = load_concepts()
    con = connect(Path({db!r}))
    for name in LOAD_ORDER:
        table = RAW_TABLES[name]
        path = find_table_file(Path({src!r}), table)
        if path is None:
            continue
        where = ""
        if table.itemid_filter:
            where = "WHERE itemid IN (" + ", ".join(str(int(i)) for i in concepts.itemids(table=name)) + ")"
        con.execute(f"CREATE TABLE {{name}} AS SELECT * FROM read_csv('{{path}}') {{where}}")
    con.close()
    extra = {{}}
elif step == "synth":
    from pipeline.synth import generate
    generate(Path({src!r}), n_stays={n}, seed=1)
    extra = {{}}
else:
    from pipeline.config import load_study_config
    from pipeline.ingest import ingest
    r = ingest(Path({src!r}), Path({db!r}), load_study_config())
    # The ingest's own figures, before the rule is timed again below (that is not ingest work).
    _ru = resource.getrusage(resource.RUSAGE_SELF)
    extra = {{"tables": [[t.table, t.rows_read, t.rows_quarantined, t.seconds] for t in r.tables],
              "wall_s": time.perf_counter() - t0, "cpu_s": _ru.ru_utime + _ru.ru_stime - cpu0}}
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
# Peak RSS: VmHWM of this process (the high-water mark of its resident set, DuckDB included).
status = Path("/proc/self/status").read_text() if Path("/proc/self/status").exists() else ""
hwm = [int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")]
peak_mb = (hwm[0] if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024
# CPU seconds (user + system, all threads): less sensitive to other load on the machine than wall.
ru = resource.getrusage(resource.RUSAGE_SELF)
cpu = ru.ru_utime + ru.ru_stime - cpu0
print(json.dumps({{"wall_s": wall, "cpu_s": cpu, "peak_mb": peak_mb, **extra}}))  # extra's times win
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


def _ingest_vs_plain(src: Path, db_dir: Path, n: int, pairs: int = 2) -> dict:
    """Ingest, then the plain filtered read of the same files, each in its own process; the
    pair ``pairs`` times, alternating, so a drift in the machine's speed (a shared VM's speed
    moves by 10-20% over minutes) hits both sides. Prints every pair and the ratio of the best
    times; returns the first ingest's figures."""
    first, ingests, plains = None, [], []
    for k in range(pairs):
        for name in ("vasoflow.duckdb", "plain.duckdb", "ledger.json"):  # an earlier run's outputs
            (db_dir / name).unlink(missing_ok=True)
        i = _child("ingest", src, db_dir / "vasoflow.duckdb", n)
        p = _child("plain", src, db_dir / "plain.duckdb", n)
        first = first or i
        ingests.append(i)
        plains.append(p)
        print(f"pair {k + 1}: ingest {i['wall_s']:7.1f} s  cpu {i['cpu_s']:7.1f} s  peak (VmHWM) {i['peak_mb']:7.0f} MB"
              f"  |  plain DuckDB read_csv, same item filter {p['wall_s']:7.1f} s  cpu {p['cpu_s']:7.1f} s  "
              f"peak (VmHWM) {p['peak_mb']:7.0f} MB  |  ratio wall {i['wall_s'] / p['wall_s']:.2f}x, "
              f"cpu {i['cpu_s'] / p['cpu_s']:.2f}x")
    best = {key: min(r[key] for r in ingests) / min(r[key] for r in plains) for key in ("wall_s", "cpu_s")}
    print(f"ingest / plain read, best of {pairs} each: wall {best['wall_s']:.2f}x, cpu {best['cpu_s']:.2f}x; "
          f"peak {max(r['peak_mb'] for r in ingests):.0f} MB vs {max(r['peak_mb'] for r in plains):.0f} MB")
    return first


# One block of varied rows (ids, times and values change row by row, so it compresses about
# like real chartevents rather than to nothing) of an item id the study ignores; other columns
# of the file are left empty.
_BLOCK_ROWS = 1_000_000
_EXTRA_COLUMN_SQL = {
    "subject_id": "CAST(10000000 + i // 2000 AS VARCHAR)",
    "hadm_id": "CAST(20000000 + i // 2000 AS VARCHAR)",
    "stay_id": "CAST(30000000 + i // 2000 AS VARCHAR)",
    "caregiver_id": "CAST(10000 + (i * 7) % 90000 AS VARCHAR)",
    "charttime": "CAST(TIMESTAMP '2150-01-01 00:00:00' + to_minutes(i % 600000) AS VARCHAR)",
    "storetime": "CAST(TIMESTAMP '2150-01-01 00:07:00' + to_minutes(i % 600000) AS VARCHAR)",
    "value": "CAST(((i * 7919) % 2000) / 10 AS VARCHAR)",
    "valuenum": "CAST(((i * 7919) % 2000) / 10 AS VARCHAR)",
    "valueuom": "'bpm'",
    "warning": "'0'",
}


def _big_chartevents_source(src: Path, out: Path, rows: int) -> Path:
    """A copy of ``src`` (hard links, or symlinks across file systems) whose chartevents has
    about ``rows`` rows: the original gzip member, then copies of one gzip member of
    ``_BLOCK_ROWS`` rows of an item id the study ignores, written once by DuckDB (a gzip file
    may hold several members; readers decompress them in sequence). Writing every row through
    DuckDB's gzip writer would take most of an hour at 300M rows; copying a member takes
    seconds."""
    import duckdb

    from pipeline.concepts import load_concepts

    if (out / "icu" / "chartevents.csv.gz").exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    original = src / "icu" / "chartevents.csv.gz"
    con = duckdb.connect()
    header = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_csv('{original}', all_varchar = true)").fetchall()]
    have = con.execute(f"SELECT count(*) FROM read_csv('{original}', all_varchar = true)").fetchone()[0]
    ignored = max(load_concepts().itemids(table="chartevents")) + 1_000_000
    block = out.with_name(out.name + "-block.csv.gz")
    copies = -(-max(0, rows - have) // _BLOCK_ROWS)
    t0 = time.perf_counter()
    exprs = {**_EXTRA_COLUMN_SQL, "itemid": f"'{ignored}'"}
    select = ", ".join(f"{exprs.get(h.lower(), 'NULL')} AS \"{h}\"" for h in header)
    con.execute(f"COPY (SELECT {select} FROM range({_BLOCK_ROWS}) r(i)) TO '{block}' "
                "(FORMAT csv, HEADER false, COMPRESSION gzip)")
    con.close()
    for f in src.rglob("*"):
        if f.is_file() and f.name != "chartevents.csv.gz":
            (out / f.relative_to(src)).parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(f, out / f.relative_to(src))
            except OSError:  # another file system (a read-only source elsewhere): link by name
                os.symlink(f.resolve(), out / f.relative_to(src))
    with open(out / "icu" / "chartevents.csv.gz", "wb") as fh:
        for part in (original, *[block] * copies):
            with open(part, "rb") as pf:
                shutil.copyfileobj(pf, fh, 1 << 24)
    block.unlink()
    size = (out / "icu" / "chartevents.csv.gz").stat().st_size
    print(f"chartevents enlarged to {have + copies * _BLOCK_ROWS:,} rows ({size / 1e9:.2f} GB gz; "
          f"{copies} x {_BLOCK_ROWS:,} rows of ignored item {ignored}) in {time.perf_counter() - t0:.0f} s")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stays", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--pairs", type=int, default=2, help="ingest/plain pairs, alternating (default 2)")
    ap.add_argument("--big-chartevents", type=int, default=0, metavar="ROWS")
    ap.add_argument("--skip-normal", action="store_true", help="only the --big-chartevents figures")
    ap.add_argument("--keep-big", action="store_true", help="keep the enlarged source (default: delete it after)")
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="vasoflow-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"workdir {work}; VASOFLOW_MEMORY_LIMIT={os.environ.get('VASOFLOW_MEMORY_LIMIT', '-')}")
    for n in args.stays:
        src = work / f"synth-{n}"
        print(f"\n== {n:,} stays")
        if not (src / "icu" / "icustays.csv.gz").exists():
            s = _child("synth", src, src / "unused", n)
            print(f"synth : {s['wall_s']:7.1f} s  peak {s['peak_mb']:7.0f} MB")
        size_mb = sum(f.stat().st_size for f in src.glob("*/*.csv.gz")) / 1e6
        print(f"source: {size_mb:.0f} MB of csv.gz")
        if not args.skip_normal:
            i = _ingest_vs_plain(src, work / f"db-{n}", n, args.pairs)
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
        if args.big_chartevents:
            big = _big_chartevents_source(src, work / f"synth-{n}-chartevents-{args.big_chartevents}", args.big_chartevents)
            print(f"-- the same source with chartevents enlarged to ~{args.big_chartevents:,} rows")
            _ingest_vs_plain(big, work / f"db-{n}-big", n, args.pairs)
            shutil.rmtree(work / f"db-{n}-big", ignore_errors=True)
            if not args.keep_big:  # gigabytes: made again in minutes when needed
                shutil.rmtree(big, ignore_errors=True)


if __name__ == "__main__":
    main()

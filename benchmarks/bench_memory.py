"""Benchmark: peak memory of ingest + cohort against the VASOFLOW_MEMORY_LIMIT setting.

    .venv/bin/python benchmarks/bench_memory.py --stays 20000 --limits none 3GB 256MB 64MB \
        --chunk-rows 0 100000

Generates a synthetic dataset once, then for each limit runs the ingest and the cohort step in
a child process with ``VASOFLOW_MEMORY_LIMIT`` set (DuckDB ``memory_limit`` plus a spill folder
beside the database, ``pipeline.duckdb_settings``). Prints per limit: outcome (ok, or the one
error line the CLI would print), wall time, the child's peak RSS and the largest size the
spill folder reached (sampled every 50 ms). A limit below the unconstrained peak that still
finishes, with spill bytes > 0, is the run degrading to disk instead of failing.
"""

from __future__ import annotations

import argparse
import json
import os
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
from pipeline.config import load_study_config
from pipeline.errors import VasoflowError, resource_exhausted
t0 = time.perf_counter()
out = Path({out!r})
status = "ok"
peak_ingest_mb = float("nan")
try:
    from pipeline.ingest import ingest
    from pipeline.cohort import build_cohort
    cfg = load_study_config({config!r})
    ingest(Path({src!r}), out / "vasoflow.duckdb", cfg)
    peak_ingest_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    build_cohort(out / "vasoflow.duckdb", out, cfg)
except VasoflowError as exc:
    status = str(exc)
except Exception as exc:
    err = resource_exhausted(exc, "the benchmark run")
    status = str(err) if err else f"{{type(exc).__name__}}: {{str(exc).splitlines()[0]}}"
wall = time.perf_counter() - t0
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"status": status, "wall_s": wall, "peak_mb": peak_mb, "peak_ingest_mb": peak_ingest_mb}}))
"""


def _spill_bytes(out: Path) -> int:
    total = 0
    for folder in out.glob("*.spill"):
        for p in folder.rglob("*"):
            try:
                total += p.stat().st_size if p.is_file() else 0
            except OSError:
                pass
    for folder in out.glob("*.tmp"):  # DuckDB's default spill folder when no limit is set
        for p in folder.rglob("*"):
            try:
                total += p.stat().st_size if p.is_file() else 0
            except OSError:
                pass
    return total


def run_one(src: Path, out: Path, limit: str | None, config: str | None = None) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.pop("VASOFLOW_MEMORY_LIMIT", None)
    if limit:
        env["VASOFLOW_MEMORY_LIMIT"] = limit
    code = _CHILD.format(repo=str(REPO), src=str(src), out=str(out), config=config)
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    spill_peak = 0
    while proc.poll() is None:
        spill_peak = max(spill_peak, _spill_bytes(out))
        time.sleep(0.05)
    stdout, stderr = proc.communicate()
    lines = stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (stderr.strip().splitlines() or ["?"])[-1]
        return {"status": f"child died (exit {proc.returncode}): {tail}", "wall_s": float("nan"),
                "peak_mb": float("nan"), "peak_ingest_mb": float("nan"), "spill_mb": spill_peak / 1e6}
    result = json.loads(lines[-1])
    result["spill_mb"] = spill_peak / 1e6
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stays", type=int, default=20000)
    ap.add_argument("--limits", nargs="+", default=["none", "3GB", "512MB", "256MB", "128MB"])
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--chunk-rows", type=int, nargs="+", default=[0],
                    help="[ingest].validation_chunk_rows values to try (0: the study.toml default); "
                         "the Pandera chunks are Python-side memory that memory_limit does not bound")
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="vasoflow-bench-memory-"))
    src = work / f"synth-{args.stays}"
    if not (src / "icu" / "icustays.csv.gz").exists():
        sys.path.insert(0, str(REPO))
        from pipeline.synth import generate

        t0 = time.perf_counter()
        generate(src, n_stays=args.stays, seed=1)
        print(f"synthetic data: {args.stays:,} stays in {time.perf_counter() - t0:.1f} s ({src})")
    size_mb = sum(p.stat().st_size for p in src.rglob("*.csv.gz")) / 1e6
    print(f"source: {size_mb:.1f} MB of csv.gz; ingest + cohort per limit (threads: "
          f"{os.environ.get('VASOFLOW_THREADS', 'DuckDB default')})")
    print(f"{'limit':>8}  {'chunk rows':>10}  {'wall s':>7}  {'peak RSS MB (ingest / +cohort)':>30}  "
          f"{'spill MB':>8}  outcome")
    for chunk in args.chunk_rows:
        config = None
        if chunk:
            config = str(work / f"chunk-{chunk}.toml")
            Path(config).write_text(f"[ingest]\nvalidation_chunk_rows = {chunk}\n")
        for limit in args.limits:
            value = None if limit.lower() == "none" else limit
            r = run_one(src, work / f"out-{limit}-{chunk}", value, config)
            peaks = f"{r['peak_ingest_mb']:.0f} / {r['peak_mb']:.0f}"
            print(f"{limit:>8}  {chunk or 'default':>10}  {r['wall_s']:7.1f}  {peaks:>30}  {r['spill_mb']:8.1f}  "
                  f"{r['status']}", flush=True)


if __name__ == "__main__":
    main()

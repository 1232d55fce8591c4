"""Cold and cached run times of the study flow, and the cost of fingerprinting large files.

    .venv/bin/python benchmarks/bench_flows.py [--stays 300] [--hash-mb 1024] [--no-prefect]

Runs in a temporary folder with an isolated PREFECT_HOME (a temporary local Prefect server
starts: its start-up time is printed separately). Prints: synthetic data generation, cold run,
cached re-run (every step reused), and sha256 throughput of the source fingerprint on a file
of --hash-mb MiB (first read, and the stat-only re-check that re-runs pay).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stays", type=int, default=300)
    ap.add_argument("--hash-mb", type=int, default=1024)
    ap.add_argument("--no-prefect", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="vasoflow-bench-flows-"))
    os.environ.update(DO_NOT_TRACK="1", PREFECT_SERVER_ANALYTICS_ENABLED="false",
                      PREFECT_HOME=str(tmp / "prefect-home"),
                      PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="180")

    from pipeline.fingerprint import fingerprint_source, hash_file
    from pipeline.synth import generate

    t = time.perf_counter()
    generate(tmp / "src", n_stays=args.stays, seed=11)
    print(f"synth {args.stays} stays: {time.perf_counter() - t:.1f} s")

    if args.no_prefect:
        from pipeline.config import load_study_config
        from pipeline.run import run_all

        def run():
            return run_all(tmp / "src", tmp / "out", load_study_config())
    else:
        from prefect.testing.utilities import prefect_test_harness

        from flows import study_flow

        def run():
            return study_flow(out=tmp / "out", source=tmp / "src")

        t = time.perf_counter()
        harness = prefect_test_harness(server_startup_timeout=180)
        harness.__enter__()
        print(f"temporary Prefect server start: {time.perf_counter() - t:.1f} s")
    for label in ("cold run", "cached run", "cached run (Prefect records present)"):
        t = time.perf_counter()
        result = run()
        reused = ", ".join(result.reused_steps) or "none"
        print(f"{label}: {time.perf_counter() - t:.1f} s (steps reused: {reused})")

    big = tmp / "big.bin"
    with open(big, "wb") as fh:
        block = os.urandom(1 << 20)
        for _ in range(args.hash_mb):
            fh.write(block)
    t = time.perf_counter()
    hash_file(big)
    s = time.perf_counter() - t
    print(f"sha256 of {args.hash_mb} MiB (page cache warm): {s:.2f} s = {args.hash_mb / s:.0f} MiB/s")
    (tmp / "src" / "icu" / "chartevents.csv.gz").unlink()
    os.link(big, tmp / "src" / "icu" / "chartevents.csv.gz")
    memo = tmp / "memo.json"
    for label in ("fingerprint, first (hashes all)", "fingerprint, unchanged (stat only)"):
        t = time.perf_counter()
        fp = fingerprint_source(tmp / "src", memo)
        print(f"{label}: {time.perf_counter() - t:.2f} s, {fp.bytes_hashed / 2**20:.0f} MiB hashed")
    print(f"(outputs in {tmp}; delete when done)")


if __name__ == "__main__":
    main()

"""Wall time of the README's main command, cold and cached, and of the Prefect flow.

    .venv/bin/python benchmarks/bench_flows.py [--prefect] [--stays 300] [--hash-mb 256]

1. The README command exactly (``python3 -m uv run --locked vasoflow run --out OUT`` from the
   repository root) in a fresh process each time, with an empty VASOFLOW_CACHE_DIR and an
   empty PREFECT_HOME (so no Prefect server is configured: the default in-process mode):
   cold = generating the default synthetic data set + every step; cached = nothing changed,
   every step reused. Targets (issue 15): cached <= 5 s, cold <= 60 s on 2 cores.
2. ``--prefect``: the study flow on --stays synthetic stays against a temporary local Prefect
   server (its start-up printed separately): cold, cached, cached again (Prefect's own cache).
3. sha256 throughput of the source fingerprint on a file of --hash-mb MiB (first read, and the
   stat-only re-check that re-runs pay).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def readme_command(tmp: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(VASOFLOW_CACHE_DIR=str(tmp / "cache"), PREFECT_HOME=str(tmp / "prefect-home"), DO_NOT_TRACK="1")
    python = shutil.which("python3") or sys.executable
    cmd = [python, "-m", "uv", "run", "--locked", "vasoflow", "run", "--out", str(tmp / "out")]
    print("command:", " ".join(cmd[:-1]), "OUT", f"(cwd {REPO}, empty cache and PREFECT_HOME)")
    for label in ("cold (synthetic data generated, every step runs)", "cached (nothing changed)"):
        t = time.perf_counter()
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - t
        if proc.returncode != 0:
            sys.exit(f"{label}: failed ({proc.returncode}):\n{proc.stderr}")
        steps = [ln.removeprefix("vasoflow: ") for ln in proc.stderr.splitlines() if ln.endswith(" s")]
        print(f"  {label}: {seconds:.1f} s")
        for ln in steps:
            print(f"      {ln}")


def prefect_flow(tmp: Path, stays: int) -> None:
    os.environ.update(DO_NOT_TRACK="1", PREFECT_SERVER_ANALYTICS_ENABLED="false",
                      PREFECT_HOME=str(tmp / "prefect-home-flow"),
                      PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="180",
                      PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL="CRITICAL")
    from pipeline.synth import generate

    generate(tmp / "src", n_stays=stays, seed=11)
    from prefect.testing.utilities import prefect_test_harness

    from flows import study_flow

    t = time.perf_counter()
    with prefect_test_harness(server_startup_timeout=180):
        print(f"Prefect flow, {stays} stays: temporary server start {time.perf_counter() - t:.1f} s")
        for label in ("cold run", "cached run", "cached run (Prefect records present)"):
            t = time.perf_counter()
            result = study_flow(out=tmp / "out-flow", source=tmp / "src")
            print(f"  {label}: {time.perf_counter() - t:.1f} s (steps reused: {', '.join(result.reused_steps) or 'none'})")


def hashing(tmp: Path, mb: int) -> None:
    from pipeline.fingerprint import fingerprint_source, hash_file
    from pipeline.synth import generate

    src = tmp / "src-hash"
    generate(src, n_stays=50, seed=3)
    big = tmp / "big.bin"
    with open(big, "wb") as fh:
        block = os.urandom(1 << 20)
        for _ in range(mb):
            fh.write(block)
    t = time.perf_counter()
    hash_file(big)
    s = time.perf_counter() - t
    print(f"sha256 of {mb} MiB (page cache warm): {s:.2f} s = {mb / s:.0f} MiB/s")
    (src / "icu" / "chartevents.csv.gz").unlink(missing_ok=True)
    os.link(big, src / "icu" / "chartevents.csv.gz")
    memo = tmp / "memo.json"
    for label in ("fingerprint, first (hashes all)", "fingerprint, unchanged (stat only)"):
        t = time.perf_counter()
        fp = fingerprint_source(src, memo)
        print(f"  {label}: {time.perf_counter() - t:.2f} s, {fp.bytes_hashed / 2**20:.0f} MiB hashed")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prefect", action="store_true", help="also time the flow on a temporary Prefect server")
    ap.add_argument("--stays", type=int, default=300, help="synthetic stays for --prefect")
    ap.add_argument("--hash-mb", type=int, default=256)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="vasoflow-bench-flows-"))
    print(f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f} at start")
    readme_command(tmp)
    if args.prefect:
        prefect_flow(tmp, args.stays)
    hashing(tmp, args.hash_mb)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

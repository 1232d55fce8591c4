"""Benchmark: the whole main job per step (time and peak RSS) at several sizes, through the CLI.

    .venv/bin/python benchmarks/bench_steps.py --stays 10000 30000 [100000] [--workdir DIR]

For each size: ``vasoflow synth --stays N`` (not timed as a step), then ``vasoflow run
--no-prefect`` cold into a fresh output root, then two warm re-runs on the same root: one with a
report-only setting changed (``[report] figure_dpi``: only the report should run) and one with
an audit rule changed (only the audit and the report), and one with ``[tte] n_bootstrap = 0``
(the emulation's point estimate alone, to split the tte step into estimate and bootstrap). It
prints one table per size: each
step's wall time (from the run's own progress lines) and peak RSS, and each re-run's total as a
share of the cold run.

Peak RSS per step: the run is one process; /proc/<pid>/status VmRSS is sampled every 50 ms and
each sample is attributed to the step whose progress line comes next (a step prints its line
when it ends), so a step's figure is the largest resident size seen while it ran. The whole
run's peak is the kernel's VmHWM. Figures are wall-clock: on a shared machine they are noisy.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STEPS = ("source", "ingest", "validate", "cohort", "analyze", "tte", "audit", "report")
_LINE = re.compile(r"^vasoflow: (\w+)\s+(.*?)\s+([0-9.]+) s$")


def _status_kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def run_cli(args: list[str], env: dict[str, str]) -> dict:
    """Run ``vasoflow <args>``; returns per step (seconds, what, peak MB), total seconds, VmHWM."""
    cmd = [sys.executable, "-m", "pipeline.cli", *args]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    current = {"peak_kb": 0, "hwm_kb": 0}
    lock = threading.Lock()
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            rss = _status_kb(proc.pid, "VmRSS")
            hwm = _status_kb(proc.pid, "VmHWM")
            with lock:
                current["peak_kb"] = max(current["peak_kb"], rss)
                current["hwm_kb"] = max(current["hwm_kb"], hwm)
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    steps: dict[str, tuple[float, str, float]] = {}
    other: list[str] = []
    for line in proc.stderr:
        m = _LINE.match(line.strip())
        if m and m.group(1) in STEPS:
            with lock:
                peak, current["peak_kb"] = current["peak_kb"], 0
            steps[m.group(1)] = (float(m.group(3)), m.group(2), peak / 1024)
        else:
            other.append(line.rstrip())
    proc.wait()
    done.set()
    sampler.join()
    total = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"vasoflow {' '.join(args)} failed ({proc.returncode}):\n" + "\n".join(other[-20:]))
    return {"steps": steps, "total_s": total, "hwm_mb": current["hwm_kb"] / 1024}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stays", type=int, nargs="+", default=[10_000, 30_000])
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="vasoflow-bench-steps-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(DO_NOT_TRACK="1", PREFECT_HOME=str(work / "prefect-home"), VASOFLOW_CACHE_DIR=str(work / "cache"))
    (work / "dpi.toml").write_text("[report]\nfigure_dpi = 80\n")
    (work / "rule.toml").write_text("[audit]\nvp_max_dose_units_min = 0.05\n")
    (work / "noboot.toml").write_text("[tte]\nn_bootstrap = 0\n")
    print(f"workdir {work}; {os.cpu_count()} cores; VASOFLOW_MEMORY_LIMIT={os.environ.get('VASOFLOW_MEMORY_LIMIT', '-')}")
    for n in args.stays:
        src, out = work / f"synth-{n}", work / f"out-{n}"
        if not (src / "icu" / "icustays.csv.gz").exists():
            t0 = time.perf_counter()
            run_cli(["synth", "--out", str(src), "--stays", str(n), "--seed", "1"], env)
            print(f"\n== {n:,} stays (synth {time.perf_counter() - t0:.0f} s, not counted)")
        else:
            print(f"\n== {n:,} stays (synthetic data reused from {src})")
        runs = {
            "cold": run_cli(["run", "--no-prefect", "--source", str(src), "--out", str(out)], env),
            "figure_dpi changed": run_cli(["run", "--no-prefect", "--source", str(src), "--out", str(out),
                                           "--config", str(work / "dpi.toml")], env),
            "audit rule changed": run_cli(["run", "--no-prefect", "--source", str(src), "--out", str(out),
                                           "--config", str(work / "rule.toml")], env),
            # The emulation's point estimate alone (n_bootstrap = 0): only the tte step and the
            # report re-run; with the cold run it splits the tte step into estimate + bootstrap.
            "tte without bootstrap": run_cli(["run", "--no-prefect", "--source", str(src), "--out", str(out),
                                              "--config", str(work / "noboot.toml")], env),
        }
        cold = runs["cold"]
        print(f"{'step':<9} {'time s':>8} {'peak RSS MB':>12}")
        for step in STEPS:
            if step in cold["steps"]:
                secs, _, peak = cold["steps"][step]
                print(f"{step:<9} {secs:>8.1f} {peak:>12.0f}" if peak else f"{step:<9} {secs:>8.1f} {'-':>12}")
        print(f"{'run':<9} {cold['total_s']:>8.1f} {cold['hwm_mb']:>12.0f}   (process wall time incl. imports; VmHWM)")
        noboot = runs["tte without bootstrap"]["steps"].get("tte")
        if noboot and "tte" in cold["steps"]:
            boot_s = cold["steps"]["tte"][0] - noboot[0]
            print(f"tte point estimate {noboot[0]:.1f} s, bootstrap (default replicates) {boot_s:.1f} s; "
                  f"run without the bootstrap {cold['total_s'] - boot_s:.1f} s")
        for name in ("figure_dpi changed", "audit rule changed", "tte without bootstrap"):
            r = runs[name]
            ran = [f"{s} {secs:.1f} s" for s, (secs, what, _) in r["steps"].items() if what == "ran"]
            print(f"re-run, {name}: {r['total_s']:.1f} s = {r['total_s'] / cold['total_s']:.0%} of cold; "
                  f"ran {', '.join(ran) or 'nothing'}; peak {r['hwm_mb']:.0f} MB")


if __name__ == "__main__":
    main()

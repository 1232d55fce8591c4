"""Benchmark of ``vasoflow synth``: wall and CPU time, peak RSS, rows per table and MB written.
The time includes the interventional truth (``truth_n_simulated`` patients per strategy).

    .venv/bin/python benchmarks/bench_synth.py --stays 10000 100000 [--out DIR] [--seed S]

Each size runs in a fresh subprocess so that peak RSS is that run's own.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
from pipeline.synth import generate
out, n, seed = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
t0 = time.perf_counter()
r = generate(out, n_stays=n, seed=seed)
wall = time.perf_counter() - t0
mb = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 1e6
ru = resource.getrusage(resource.RUSAGE_SELF)
rss = ru.ru_maxrss / 1024
print(json.dumps({"stays": n, "wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime, "peak_rss_mb": rss,
                  "mb_written": mb, "rows": dict(r.rows)}))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stays", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--seed", type=int, default=20080228)
    ap.add_argument("--out", help="keep outputs here (default: a temporary folder)")
    args = ap.parse_args()
    base = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="bench_synth_"))
    for n in args.stays:
        res = subprocess.run([sys.executable, "-c", CHILD, str(base / f"stays_{n}"), str(n), str(args.seed)],
                             check=True, capture_output=True, text=True)
        r = json.loads(res.stdout.strip().splitlines()[-1])
        print(f"--stays {n}: wall {r['wall_s']:.1f} s (CPU {r['cpu_s']:.1f} s: wall > CPU means a loaded machine), peak RSS {r['peak_rss_mb']:.0f} MB, "
              f"written {r['mb_written']:.1f} MB")
        for table, rows in r["rows"].items():
            print(f"    {table:<22} {rows:>12,}")
    print(f"outputs in {base}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

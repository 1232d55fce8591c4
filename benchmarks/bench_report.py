"""Benchmark: build time of the study report and its rendered page height in headless Chromium.

    .venv/bin/python benchmarks/bench_report.py RUN_DIR [RUN_DIR ...] [--width 1400] [--inject-tte]

RUN_DIR is a finished run folder (e.g. out/latest). The report is rebuilt into a scratch copy of
the folder (the run itself is not touched), timed, and rendered at ``--width`` CSS pixels; the
page height and where the data banner and the bottom line end are printed. ``--inject-tte``
adds a made-up contract-shaped ``results["tte"]`` (tests/tte_fixture.py) when the run has none
(for layout work before the emulation step exists). Figures are noisy on a loaded machine.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from report_layout import measure  # noqa: E402
from tte_fixture import inject_tte  # noqa: E402

from pipeline.config import load_study_config  # noqa: E402
from pipeline.report import build_report  # noqa: E402
from pipeline.report.answer import iter_models  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", type=Path, nargs="+")
    ap.add_argument("--width", type=int, default=1400)
    ap.add_argument("--inject-tte", action="store_true")
    args = ap.parse_args()
    cfg = load_study_config()
    for run in args.runs:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            for src in Path(run).resolve().iterdir():
                if src.suffix in (".parquet", ".json"):
                    shutil.copy(src, work / src.name)
            if args.inject_tte:  # estimable only when the run's own models are (else: too small)
                results = json.loads((work / "results.json").read_text())
                inject_tte(work, cfg, estimable=any(m.get("estimable") for m in iter_models(results)),
                           n_patients=int((results.get("input") or {}).get("n_patients") or 0))
            t0 = time.perf_counter()
            result = build_report(work, cfg)
            seconds = time.perf_counter() - t0
            m = measure(result.html_path, ["data-banner", "size-banner", "bottom-line"], width=args.width)
            el = m["elements"]
            ends = ", ".join(f"{k} ends at {v['bottom']:.0f} px" for k, v in el.items())
            print(f"{run}: build {seconds:.1f} s, {result.html_bytes / 1024:.0f} KiB, page height "
                  f"{m['height']:,} px at {args.width} px wide; {ends}")


if __name__ == "__main__":
    main()

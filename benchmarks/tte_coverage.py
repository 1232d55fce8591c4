"""Bootstrap CI coverage of the target-trial emulation (issue 11 goal: >= 90% at 95% CIs over
>= 50 seeds). Each seed draws a fresh natural-course sample from the synthetic hour-by-hour
world (pipeline.tte.world_panel), estimates every strategy's 28-day risk with its bootstrap CI
(estimate +/- z x bootstrap SE, as run_tte does) and checks whether the CI holds the
interventional truth (pipeline.synth.strategy_truth). Prints coverage per strategy and overall,
with its binomial standard error. Not a unit test: minutes to hours depending on the settings.

    .venv/bin/python benchmarks/tte_coverage.py [--seeds 50] [--patients 3000] [--bootstrap 100]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.config import load_study_config  # noqa: E402
from pipeline.synth.params import SynthParams  # noqa: E402
from pipeline.synth.truth import strategy_truth  # noqa: E402
from pipeline.tte.data import prepare  # noqa: E402
from pipeline.tte.estimate import EstimateSettings, bootstrap, estimate, make_clones  # noqa: E402
from pipeline.tte.strategies import strategies_of  # noqa: E402
from pipeline.tte.world_panel import world_frames  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=50)
    ap.add_argument("--patients", type=int, default=3000)
    ap.add_argument("--bootstrap", type=int, default=100)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--truth-n", type=int, default=100_000)
    ap.add_argument("--null", action="store_true", help="the null world (SynthParams.null())")
    args = ap.parse_args()
    cfg = load_study_config()
    tte = cfg.typed("tte")
    level = float(cfg.get("models.confidence_level"))
    from scipy.stats import norm

    z = float(norm.ppf(0.5 + level / 2))
    prm = SynthParams.null() if args.null else SynthParams()
    t0 = time.perf_counter()
    truth = {s["id"]: s["risk_28d"] for s in strategy_truth(prm, args.truth_n, 7, cfg)["strategies"]}
    print(f"truth ({args.truth_n:,} simulated per strategy, {time.perf_counter() - t0:.0f} s): "
          + ", ".join(f"{k} {v:.3f}" for k, v in truth.items()))
    settings = EstimateSettings(short_days=float(cfg.get("outcomes.short_term_days")),
                                long_days=float(cfg.get("outcomes.long_term_days")),
                                truncation_percentile=tte.weight_truncation_percentile,
                                min_starts=tte.positivity_min_initiators)
    hits: dict[str, list[bool]] = {}
    errors: dict[str, list[float]] = {}
    for k in range(args.seeds):
        t = time.perf_counter()
        cohort, panel = world_frames(args.patients, seed=1000 + k, params=prm)
        data = prepare(cohort, panel, tte.decision_window_hours, list(tte.censoring_baseline_covariates))
        clones = make_clones(data, strategies_of(tte), tte.grace_hours)
        est = estimate(data, clones, settings)
        boots = bootstrap(data, clones, settings, args.bootstrap, seed=k, workers=args.workers,
                          start=est.coefficients)
        for s, sid in enumerate(clones.ids):
            col = boots[:, s, 0]
            col = col[np.isfinite(col)]
            if not math.isfinite(est.values[s, 0]) or len(col) < 2:
                continue
            se = col.std(ddof=1)
            lo, hi = est.values[s, 0] - z * se, est.values[s, 0] + z * se
            hits.setdefault(sid, []).append(lo <= truth[sid] <= hi)
            errors.setdefault(sid, []).append(est.values[s, 0] - truth[sid])
        print(f"seed {k + 1}/{args.seeds}: {time.perf_counter() - t:.0f} s", flush=True)
    print(f"\ncoverage of {level:.0%} bootstrap CIs ({args.seeds} seeds, {args.patients:,} patients, "
          f"{args.bootstrap} replicates{', null world' if args.null else ''}) [goal >= 90%]")
    allhits = []
    for sid, h in hits.items():
        c = float(np.mean(h))
        allhits += h
        e = np.array(errors[sid])
        print(f"  {sid:<8} {c:6.1%} (+/- {math.sqrt(c * (1 - c) / len(h)):.1%}, n={len(h)})  "
              f"bias {e.mean():+.4f}, empirical SD {e.std(ddof=1):.4f}")
    c = float(np.mean(allhits))
    print(f"  overall  {c:6.1%} (n={len(allhits)}); total {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

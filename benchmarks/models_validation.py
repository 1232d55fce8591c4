"""Statistical validation and timing of pipeline.models on the synthetic world (pipeline.synth).

    .venv/bin/python benchmarks/models_validation.py [--seeds 5] [--stays 5000]

The data come from the one generator (``pipeline.synth.generate`` -> ingest -> cohort SQL), the
hour-by-hour world with time-varying confounding: clinicians start vasopressin (VP) when the
current NE dose is high and MAP low, and the current dose drives death. The truth of the
target-trial strategies is ``true_effects.json`` (``tte``). Printed per seed, for the default
world and the null world (VP does nothing):

1. the time-varying Cox HR of VP (adjusted for baseline covariates) and the naive "ever VP" HR,
   beside the true 28-day risk ratio of "VP at NE 0.25" vs "never" - estimators that ignore
   time-varying confounding are expected to be off (that is what the target-trial emulation of
   issue 11 is for);
2. the crude 28-day risk difference by NE dose at VP start (< 0.25 vs >= 0.25) beside the true
   ne_0.10 - ne_0.50 difference;
3. the time of the whole analyze() on the first cohort.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import polars as pl

from pipeline.config import load_study_config
from pipeline.models import analyze
from pipeline.models.data import prepare
from pipeline.models.settings import ModelSettings
from pipeline.models.trial import long_format, naive_models, time_varying_models
from pipeline.synth import SynthParams
from pipeline.synth.cohort_run import synthetic_cohort


def _all(models):
    return next(m for m in models if m.details["stratum"] == "all")


def _truth(te: dict) -> tuple[float, float]:
    by = {s["id"]: s for s in te["tte"]["strategies"]}
    rr = by["ne_0.25"]["risk_28d"] / by["never"]["risk_28d"]
    rd = by["ne_0.10"]["risk_28d"] - by["ne_0.50"]["risk_28d"]
    return rr, rd


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--stays", type=int, default=5000)
    args = ap.parse_args()
    cfg = load_study_config()
    s = ModelSettings.from_config(cfg)
    first = None
    with tempfile.TemporaryDirectory() as tmp:
        for world_name, prm in (("default", SynthParams()), ("null", SynthParams.null())):
            print(f"\n== {world_name} world, {args.stays} stays per seed ==")
            for seed in range(args.seeds):
                t0 = time.perf_counter()
                sim = synthetic_cohort(Path(tmp) / f"{world_name}_{seed}", args.stays, 1000 + seed, prm, cfg)
                first = first or sim
                c = prepare(sim.cohort)
                long = long_format(c, sim.ne_timeline, s, 90.0, s.baseline_covariates)
                tv = _all(time_varying_models(long, s, 90.0, True))
                nv = _all(naive_models(c, s, 90.0, True))
                rr, rd = _truth(sim.true_effects)
                vp = sim.cohort.filter(pl.col("exposure") == "vp_added")
                lo = vp.filter(pl.col("ne_rate_at_vp_mcg_kg_min") < 0.25)["death_28d"].drop_nulls().mean()
                hi = vp.filter(pl.col("ne_rate_at_vp_mcg_kg_min") >= 0.25)["death_28d"].drop_nulls().mean()
                print(f"seed {1000 + seed} ({sim.cohort.height} patients, {time.perf_counter() - t0:.0f} s): "
                      f"time-varying HR {tv.estimate:.2f} ({tv.ci_low:.2f}-{tv.ci_high:.2f}), naive HR "
                      f"{nv.estimate:.2f} | true RR ne_0.25 vs never {rr:.3f} | crude RD by dose at VP "
                      f"{lo - hi:+.3f} vs true ne_0.10-ne_0.50 {rd:+.3f}")

        print("\nanalyze() on the first cohort:")
        d = Path(tmp) / "analyze"
        t0 = time.perf_counter()
        res = analyze(first.cohort_path, d, cfg)
        print(res.describe())
        print(f"  total {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()

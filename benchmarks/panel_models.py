"""Validation and timing of the hourly-panel models (pipeline/models/panel.py, issue 12).

    .venv/bin/python benchmarks/panel_models.py [--seeds 10] [--n 1500] [--scale 1000,4000]
    .venv/bin/python benchmarks/panel_models.py --hard-world [--n 3000] [--seeds 3]

1. Null worlds (no VP effect; the current NE dose drives VP start and death): for each model
   (time-updated, sequential trials overall and per stratum, the stratum x VP interaction) the
   mean log estimate and the share of seeds whose 95% CI covers 1 (target >= 0.9), next to the
   baseline-only time-updated model (what results 1.x reported) to show the confounding.
2. A world with a true hourly VP hazard ratio of 2: coverage of the time-updated model.
3. Seconds per fit against panel rows (linear scaling expected). The machine is shared: the
   figures are noisy; compare rows per second between sizes, not absolute times.

``--hard-world`` (issue 12 item 8; needs issue 10's generator and issue 11's hourly panel):
generate -> ingest -> cohort SQL (hourly_panel.parquet) -> analyze, then for every secondary
estimate print its value next to the truth in true_effects.json, or the file's reason why
there is none. The only secondary estimate with a defined truth is the time-updated model
(``hazard_ratios.vasopressin_direct_while_on_ne``, approximately: the world's latent severity is
seen only through MAP and lactate).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time

import numpy as np

from pipeline.config import load_study_config
from pipeline.models import panel
from pipeline.models.data import prepare
from pipeline.models.settings import ModelSettings
from pipeline.models.panel_world import simulate_panel_world


def _summ(name: str, ests: list[float], covers: list[bool], truth: float) -> None:
    logs = np.log(np.array([e for e in ests if e is not None]))
    print(f"  {name:<42} mean log {logs.mean():+.3f} (truth {math.log(truth):+.3f}), "
          f"SD {logs.std(ddof=1):.3f}, CI covers truth {np.mean(covers):.2f} ({len(logs)} fits)")


def hard_world(n: int, seeds: int) -> None:
    import json
    import tempfile
    from pathlib import Path

    from pipeline.models import analyze
    from pipeline.synth.cohort_run import synthetic_cohort

    cfg = load_study_config()
    covers = []
    for seed in range(seeds):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            sc = synthetic_cohort(Path(tmp), n_stays=n, seed=500 + seed, config=cfg)
            res = analyze(sc.cohort_path, Path(tmp) / "out", cfg)
            data = json.loads(res.results_path.read_text())
            truth = sc.true_effects["hazard_ratios"]["vasopressin_direct_while_on_ne"]
            m = data["trial"]["models"][f"trial.time_updated.all.{cfg.get('tte.decision_window_hours'):g}h.adjusted"]
            ok = m["estimable"] and m["ci_low"] < truth < m["ci_high"]
            covers.append(ok)
            print(f"seed {500 + seed}: {data['input']['n_patients']} patients, time-updated HR "
                  f"{m.get('hr')} ({m.get('ci_low')}-{m.get('ci_high')}) vs true direct HR {truth:.3f}: "
                  f"{'covers' if ok else 'MISSES'}; {m.get('reason') or ''} ({time.perf_counter() - t0:.0f} s)")
            if seed == 0:
                for key, entry in sorted(sc.true_effects.get("estimands", {}).items()):
                    print(f"  true_effects.estimands.{key}: "
                          f"{'truth ' + str(entry['truth']) if entry.get('truth') is not None else 'no truth: ' + entry.get('reason', '')}")
                for name, mm in sorted(data["trial"]["models"].items()):
                    if name.startswith("trial.sequential.all."):
                        print(f"  {name}: OR {mm.get('or')} - {mm['details'].get('synthetic_truth')}")
    print(f"time-updated HR covers the true direct HR in {sum(covers)}/{len(covers)} worlds")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--n", type=int, default=1500)
    ap.add_argument("--scale", default="1000,4000")
    ap.add_argument("--hard-world", action="store_true")
    args = ap.parse_args()
    if args.hard_world:
        hard_world(args.n, args.seeds)
        return
    s = ModelSettings.from_config(load_study_config())
    baseline_only = dataclasses.replace(s, time_updated_covariates=())

    print(f"1. null worlds: {args.seeds} seeds x {args.n} patients")
    res: dict[str, tuple[list, list]] = {}
    for seed in range(args.seeds):
        w = simulate_panel_world(args.n, seed=1000 + seed, vp_log_hr=0.0)
        c = prepare(w.cohort)
        fits = [*panel.time_updated_models(w.panel, c, s, 72)[:1],
                *panel.sequential_trial_models(w.panel, c, s, 3.0)]
        crude = panel.time_updated_models(w.panel, c, baseline_only, 72)[0]
        for m in [*fits, dataclasses.replace(crude, name="baseline-only time-updated (1.x style)")]:
            if m.estimable:
                e, cv = res.setdefault(m.name, ([], []))
                e.append(m.estimate)
                cv.append(m.ci_low < 1.0 < m.ci_high)
    for name, (e, cv) in res.items():
        _summ(name, e, cv, 1.0)

    print(f"2. true hourly VP HR 2: {args.seeds} seeds")
    e, cv = [], []
    for seed in range(args.seeds):
        w = simulate_panel_world(args.n, seed=2000 + seed, vp_log_hr=math.log(2.0))
        m = panel.time_updated_models(w.panel, prepare(w.cohort), s, 72)[0]
        if m.estimable:
            e.append(m.estimate)
            cv.append(m.ci_low < 2.0 < m.ci_high)
    _summ("trial.time_updated.all", e, cv, 2.0)

    print("3. timing (one overall time-updated fit + all sequential-trial fits at one horizon)")
    for n in (int(x) for x in args.scale.split(",")):
        w = simulate_panel_world(n, seed=7)
        c = prepare(w.cohort)
        t0 = time.perf_counter()
        m = panel.time_updated_models(w.panel, c, s, 72)[0]
        t1 = time.perf_counter()
        panel.sequential_trial_models(w.panel, c, s, 3.0)
        t2 = time.perf_counter()
        print(f"  n={n}: panel rows {w.panel.height}, time-updated {t1 - t0:.1f} s "
              f"({w.panel.height / (t1 - t0):,.0f} rows/s, {m.details.get('newton_iterations')} Newton "
              f"iterations), sequential trials {t2 - t1:.1f} s")


if __name__ == "__main__":
    main()

"""Benchmark of the analyze step's Cox fits (issue 16 item 2: analyze scales linearly with rows):
lifelines' CoxPHFitter (old) against LinearCoxPHFitter (new), and the Fine-Gray loop over event
times (old) against the linear fine_gray_fit (new), side by side in one run.

The cohort is sampled from a finished run's cohort.parquet (default: the 30k-stay synthetic run)
at two fractions (default 1/3 and 1: ~10k- and ~30k-stay equivalents, same distribution). On
each sample the analyze step's Cox models are built exactly as ``analyze`` builds them
(prognosis among VP x4 with the PH test, NAIVE ever-VP x12, cause-specific RRT x2), every
``fit_cox`` call is recorded, and each recorded call is then fitted with both fitters (and,
with --batch, with lifelines' ``batch_mode=True`` too); the two RRT Fine-Gray fits are recorded
and refitted the same way. Prints seconds per fit, totals, the
size-ratio of times, and the largest |difference| of coefficients, robust SEs, p-values and PH
test p-values between old and new. Figures are noisy on a shared machine (wall time).

    .venv/bin/python benchmarks/bench_cox.py [--cohort PATH] [--fractions 0.3333 1] [--batch]
    .venv/bin/python benchmarks/bench_cox.py --fractions 1 3   # 30k vs a ~100k-stay-sized cohort
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
from lifelines import CoxPHFitter  # noqa: E402

from pipeline.config import load_study_config  # noqa: E402
from pipeline.models import competing, cox, trial  # noqa: E402
from pipeline.models.coxph_linear import LinearCoxPHFitter  # noqa: E402
from pipeline.models.data import prepare, read_cohort  # noqa: E402
from pipeline.models.fine_gray_reference import fine_gray_fit_loop  # noqa: E402
from pipeline.models.settings import ModelSettings  # noqa: E402


class _BatchCoxPHFitter(CoxPHFitter):
    """lifelines' CoxPHFitter with its vectorised Efron path forced (``batch_mode=True``)."""

    def fit(self, *args, **kwargs):
        kwargs["batch_mode"] = True
        return super().fit(*args, **kwargs)


def record_cox_calls(
    cohort: pl.DataFrame, settings: ModelSettings,
) -> tuple[list[tuple[pl.DataFrame, dict]], list[tuple]]:
    """Every fit_cox call of analyze's Cox models, as (frame, keyword arguments), and every
    fine_gray_fit call, as its arguments."""
    calls: list[tuple[pl.DataFrame, dict]] = []
    fg_calls: list[tuple] = []
    real, real_fg = cox.fit_cox, competing.fine_gray_fit

    def recorder(frame, **kwargs):
        calls.append((frame, kwargs))
        return real(frame, **kwargs)

    def fg_recorder(*args, **kwargs):
        fg_calls.append(args)
        return real_fg(*args, **kwargs)

    saved = (cox.fit_cox, trial.fit_cox, competing.fit_cox)
    cox.fit_cox = trial.fit_cox = competing.fit_cox = recorder
    competing.fine_gray_fit = fg_recorder
    try:
        for h in settings.horizons_days:
            for adj in (False, True):
                cox.prognosis_among_vp(cohort, settings, h, adj)
        for h in settings.horizons_days:
            for adj in (False, True):
                trial.naive_models(cohort, settings, h, adj)
        competing.rrt_analysis(cohort, settings)
    finally:
        cox.fit_cox, trial.fit_cox, competing.fit_cox = saved
        competing.fine_gray_fit = real_fg
    return calls, fg_calls


def sample_cohort(full: pl.DataFrame, fraction: float, seed: int) -> pl.DataFrame:
    """``fraction`` of the patients; above 1, drawn with replacement and given fresh patient ids
    (each copy is its own cluster), e.g. 3 for a ~100k-stay-sized cohort from the 30k run."""
    if fraction == 1:
        return full
    if fraction < 1:
        return full.sample(fraction=fraction, seed=seed)
    return full.sample(fraction=fraction, seed=seed, with_replacement=True).with_columns(
        subject_id=pl.int_range(pl.len(), dtype=full.schema["subject_id"]),
        stay_id=pl.int_range(pl.len(), dtype=full.schema["stay_id"]),
    )


def timed_fit(frame: pl.DataFrame, kwargs: dict, fitter) -> tuple[float, object]:
    t = time.perf_counter()
    res = cox.fit_cox(frame, **kwargs, fitter=fitter)
    return time.perf_counter() - t, res


def max_diff(a, b) -> dict[str, float]:
    """Largest |old - new| over all terms of coef, se, p and the PH-test p-values."""
    out = {"coef": 0.0, "se": 0.0, "p": 0.0, "ph_p": 0.0}
    if a.estimable != b.estimable:
        return {k: float("inf") for k in out}
    if a.summary is not None and b.summary is not None:
        for col in ("coef", "se", "p"):
            out[col] = float(np.max(np.abs(a.summary[col].to_numpy() - b.summary[col].to_numpy())))
    for key in ("ph_test_p", "ph_test_global_min_p"):
        va, vb = a.details.get(key), b.details.get(key)
        if (va is None) != (vb is None):
            out["ph_p"] = float("inf")
        elif va is not None:
            out["ph_p"] = max(out["ph_p"], abs(va - vb))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cohort", type=Path, default=Path("/work/bench/out-30000/latest/cohort.parquet"))
    ap.add_argument("--fractions", type=float, nargs="+", default=[1 / 3, 1.0])
    ap.add_argument("--batch", action="store_true", help="also time lifelines with batch_mode=True")
    ap.add_argument("--seed", type=int, default=16)
    args = ap.parse_args()
    settings = ModelSettings.from_config(load_study_config())
    full = prepare(read_cohort(args.cohort)[0])
    fitters = {"old": CoxPHFitter, "new": LinearCoxPHFitter}
    if args.batch:
        fitters["old_batch"] = _BatchCoxPHFitter
    totals: dict[float, dict[str, float]] = {}
    warm = full.sample(n=min(2000, full.height), seed=args.seed)
    for frame, kwargs in record_cox_calls(warm, settings)[0][:2]:  # imports and caches, untimed
        for fitter in fitters.values():
            timed_fit(frame, kwargs, fitter)
    worst = {"coef": 0.0, "se": 0.0, "p": 0.0, "ph_p": 0.0}
    for frac in args.fractions:
        cohort = sample_cohort(full, frac, args.seed)
        calls, fg_calls = record_cox_calls(cohort, settings)
        print(f"\n== {cohort.height:,} patients ({frac:.3g} of {args.cohort}), {len(calls)} Cox fits, "
              f"{len(fg_calls)} Fine-Gray fits ==")
        print(f"{'model':44s} {'rows':>6s} " + " ".join(f"{k:>9s}" for k in fitters)
              + "   max|d coef|  max|d se|  max|d p|  max|d ph p|")
        totals[frac] = dict.fromkeys(fitters, 0.0)
        for frame, kwargs in calls:
            times, results = {}, {}
            for key, fitter in fitters.items():
                times[key], results[key] = timed_fit(frame, kwargs, fitter)
                totals[frac][key] += times[key]
            d = max_diff(results["old"], results["new"])
            for k in worst:
                worst[k] = max(worst[k], d[k])
            print(f"{kwargs['name']:44s} {frame.height:6d} " + " ".join(f"{times[k]:8.2f}s" for k in fitters)
                  + f"   {d['coef']:.1e}     {d['se']:.1e}    {d['p']:.1e}   {d['ph_p']:.1e}")
        print(f"{'total':44s} {'':6s} " + " ".join(f"{totals[frac][k]:8.2f}s" for k in fitters))
        for fg_args in fg_calls:
            times, fits = {}, {}
            for key, fn in (("old", fine_gray_fit_loop), ("new", competing.fine_gray_fit)):
                t = time.perf_counter()
                fits[key] = fn(*fg_args)
                times[key] = time.perf_counter() - t
                totals[frac][f"fine_gray_{key}"] = totals[frac].get(f"fine_gray_{key}", 0.0) + times[key]
            d_coef = float(np.max(np.abs(fits["old"][0] - fits["new"][0])))
            d_se = float(np.max(np.abs(fits["old"][1] - fits["new"][1])))
            worst["coef"], worst["se"] = max(worst["coef"], d_coef), max(worst["se"], d_se)
            print(f"{'Fine-Gray (fine_gray_fit)':44s} {len(fg_args[1]):6d} {times['old']:8.2f}s {times['new']:8.2f}s"
                  f"   {d_coef:.1e}     {d_se:.1e}")
    if len(args.fractions) >= 2:
        lo, hi = min(args.fractions), max(args.fractions)
        print(f"\ntime ratio {hi:.3g}/{lo:.3g} of the cohort (rows x{hi / lo:.2f}): "
              + ", ".join(f"{k} {totals[hi][k] / totals[lo][k]:.2f}x" for k in totals[hi])
              + "  [goal <= 3.3 for 3x rows]")
    print(f"old vs new, all fits: max |d coef| {worst['coef']:.1e}, max |d se| {worst['se']:.1e}, "
          f"max |d p| {worst['p']:.1e}, max |d PH-test p| {worst['ph_p']:.1e}  [goal <= 1e-6]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

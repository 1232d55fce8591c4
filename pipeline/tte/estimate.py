"""Point estimates and the patient-level bootstrap of the target-trial emulation.

``estimate(data, clones, settings, mult)`` computes, for every strategy, the risk of death by
the short- and long-term horizons (weighted Kaplan-Meier) and of RRT by the short-term horizon
with death competing (weighted Aalen-Johansen), with the censoring model fitted on the sample
described by ``mult`` (patient multiplicities: ones for the point estimate, multinomial counts
for a bootstrap replicate, so each replicate refits the weights without copying data).

``bootstrap(...)`` runs the replicates over ``bootstrap_workers`` processes
(concurrent.futures); replicate b uses its own seed spawned from ``bootstrap_seed``, so the
result does not depend on the number of workers.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

from pipeline.tte.data import TteData
from pipeline.tte.strategies import at_risk, clone, strategy_id
from pipeline.tte.survival import CountPlan, aj_cif_curve, count_plan, counts, events, km_risk_curve
from pipeline.tte.weights import (CensoringModelError, StartRows, constrained_rows, cumulative_weights,
                                  fit_start_probability, log_factors, start_rows)

MEASURES = ("risk_28d", "risk_90d", "rrt_risk_28d")


@dataclass(frozen=True)
class Clones:
    """The clones of every strategy (independent of the sample weights)."""

    ids: tuple[str, ...]
    is_never: tuple[bool, ...]
    kind: tuple[np.ndarray, ...]  # (R,) per strategy
    censor: tuple[np.ndarray, ...]  # (n,) per strategy
    initiated: tuple[np.ndarray, ...]  # (n,) per strategy


@dataclass(frozen=True)
class EstimateSettings:
    short_days: float
    long_days: float
    truncation_percentile: float
    min_starts: int
    weighted: bool = True


def make_clones(data: TteData, strategies: list[tuple], grace_hours: int) -> Clones:
    parts = [clone(data, s, grace_hours) for s in strategies]
    return Clones(ids=tuple(strategy_id(s) for s in strategies),
                  is_never=tuple(s[0] == "never" for s in strategies),
                  kind=tuple(p[0] for p in parts), censor=tuple(p[1] for p in parts),
                  initiated=tuple(p[2] for p in parts))


@dataclass(frozen=True)
class Plan:
    """Everything of the estimation that does not depend on the bootstrap sample: the censoring
    model's person-hours and, per strategy, the rows of its hourly counts. Taken once
    (``make_plan``) and shared by the point estimate and every replicate, so a replicate costs
    one model fit plus a few passes over the person-hours per strategy, and nothing is copied
    per replicate."""

    rows: StartRows
    constrained: tuple[tuple[np.ndarray, np.ndarray], ...]  # per strategy: constrained_rows(kind)
    km: tuple[CountPlan, ...]  # per strategy: death by the long-term horizon
    rrt: tuple[CountPlan, ...]  # per strategy: RRT by the short-term horizon, death competing


def make_plan(data: TteData, clones: Clones, settings: EstimateSettings) -> Plan:
    short_h, long_h = _horizons(settings)
    deaths, rrts = events(data, long_h), events(data, short_h, competing=True)
    return Plan(rows=start_rows(data), constrained=tuple(constrained_rows(k) for k in clones.kind),
                km=tuple(count_plan(data, c, long_h, ev=deaths) for c in clones.censor),
                rrt=tuple(count_plan(data, c, short_h, competing=True, patients=data.is_rrt_eligible, ev=rrts)
                          for c in clones.censor))


def _horizons(settings: EstimateSettings) -> tuple[int, int]:
    return int(round(settings.short_days * 24)), int(round(settings.long_days * 24))


def strategy_weights(data: TteData, clones: Clones, settings: EstimateSettings,
                     mult: np.ndarray, start: np.ndarray | None = None, plan: Plan | None = None):
    """Per strategy (R,) weights (None: not computable), the censoring model's failure reason
    (None = fitted) and its coefficients. ``plan``: ``make_plan(...)`` if already taken."""
    rows = plan.rows if plan is not None else None
    if not settings.weighted:
        return [np.ones(len(data.row_pid)) for _ in clones.ids], None, None
    beta = None
    try:
        p, beta = fit_start_probability(data, mult, settings.min_starts, start, rows)
        reason = None
    except CensoringModelError as exc:
        p, reason = None, str(exc)
    out: list[np.ndarray | None] = []
    factors = log_factors(p) if p is not None else None
    any_start = None
    for s, (kind, never) in enumerate(zip(clones.kind, clones.is_never)):
        if p is not None:
            out.append(cumulative_weights(data, kind, p, factors, plan.constrained[s] if plan is not None else None))
            continue
        if any_start is None:
            any_start = bool((data.is_vp_start * mult[data.row_pid]).any()) if len(data.row_pid) else False
        if never and not any_start:
            out.append(np.ones(len(data.row_pid)))  # nobody starts VP: nobody is censored
        else:
            out.append(None)
    if settings.truncation_percentile < 100:
        pooled = [w[at_risk(data, c) & (mult[data.row_pid] > 0)] for w, c in zip(out, clones.censor) if w is not None]
        if pooled and sum(len(x) for x in pooled):
            cap = float(np.percentile(np.concatenate(pooled), settings.truncation_percentile))
            out = [None if w is None else np.minimum(w, cap) for w in out]
    return out, reason, beta


@dataclass
class Estimate:
    values: np.ndarray  # (S, 3) MEASURES per strategy (nan = not computable)
    reason: str | None  # why the censoring model could not be fitted (None = fitted)
    coefficients: np.ndarray | None  # of the censoring model
    weights: list  # per strategy (R,) weights or None
    risk_curves: list  # per strategy risk of death by the end of each hour, or None


def estimate(data: TteData, clones: Clones, settings: EstimateSettings, mult: np.ndarray | None = None,
             start: np.ndarray | None = None, plan: Plan | None = None) -> Estimate:
    """Every strategy's MEASURES on the sample ``mult`` (see module docs). ``plan``:
    ``make_plan(data, clones, settings)`` if already taken."""
    mult = np.ones(data.n) if mult is None else mult
    plan = make_plan(data, clones, settings) if plan is None else plan
    weights, reason, beta = strategy_weights(data, clones, settings, mult, start, plan)
    short_h, long_h = _horizons(settings)
    out = np.full((len(clones.ids), len(MEASURES)), np.nan)
    curves = []
    for s, w in enumerate(weights):
        if w is None or data.n == 0:
            curves.append(None)
            continue
        n_h, d1, _ = counts(plan.km[s], data, w, mult)
        risk = km_risk_curve(n_h, d1)
        out[s, 0] = risk[short_h - 1]
        out[s, 1] = risk[long_h - 1]
        n_r, r1, r2 = counts(plan.rrt[s], data, w, mult)
        if n_r[0] > 0:
            out[s, 2] = aj_cif_curve(n_r, r1, r2)[short_h - 1]
        curves.append(risk)
    return Estimate(out, reason, beta, weights, curves)


# ------------------------------------------------------------------ bootstrap (process pool)
_STATE: dict = {}


def _init(data: TteData, clones: Clones, settings: EstimateSettings, start: np.ndarray | None, plan: Plan) -> None:
    _STATE.update(data=data, clones=clones, settings=settings, start=start, plan=plan)


def _replicate(seed: np.random.SeedSequence) -> np.ndarray:
    data, clones, settings = _STATE["data"], _STATE["clones"], _STATE["settings"]
    rng = np.random.default_rng(seed)
    mult = np.bincount(rng.integers(0, data.n, data.n), minlength=data.n).astype(float)
    start = _STATE["start"]
    if start is None:  # the point estimate had no censoring model: start from zero
        start = np.zeros(data.design.shape[1])
    return estimate(data, clones, settings, mult, start=start, plan=_STATE["plan"]).values


def bootstrap(data: TteData, clones: Clones, settings: EstimateSettings, n_replicates: int, seed: int,
              workers: int, start: np.ndarray | None = None, plan: Plan | None = None) -> np.ndarray:
    """(B, S, 3) replicate estimates (nan where a replicate could not estimate). ``plan``:
    ``make_plan(data, clones, settings)`` if already taken (it is taken once, before the
    workers start, and inherited by them)."""
    if n_replicates <= 0 or data.n == 0:
        return np.full((0, len(clones.ids), len(MEASURES)), np.nan)
    seeds = np.random.SeedSequence(seed).spawn(n_replicates)
    plan = make_plan(data, clones, settings) if plan is None else plan
    workers = min(workers, n_replicates)
    if workers <= 1:
        _init(data, clones, settings, start, plan)
        try:
            return np.stack([_replicate(s) for s in seeds])
        finally:
            _STATE.clear()
    import multiprocessing

    # fork: the workers inherit the arrays instead of unpickling them (Linux/macOS); the
    # platform default elsewhere.
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else None)
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init,
                             initargs=(data, clones, settings, start, plan)) as pool:
        # one replicate per task: a replicate takes far longer than handing it over, and equal
        # shares keep both workers busy to the end (chunks of B / 8 left one worker with 30 of
        # 50 replicates)
        return np.stack(list(pool.map(_replicate, seeds, chunksize=1)))

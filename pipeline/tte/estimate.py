"""Point estimates and the patient-level bootstrap of the target-trial emulation.

``estimate(data, clones, settings, mult)`` computes, for every strategy, the risk of death by
the short- and long-term horizons (weighted Kaplan-Meier) and of RRT by the short-term horizon
with death competing (weighted Aalen-Johansen), with the censoring model fitted on the sample
described by ``mult`` (patient multiplicities: ones for the point estimate, multinomial counts
for a bootstrap replicate, so each replicate refits the weights without copying data).

``make_plan`` takes once what does not depend on the sample (the censoring model's rows, each
strategy's constrained rows and count rows); a replicate then refits the model and, needing
only the values, computes weights and hourly sums by blocks of patients' rows that stay in the
CPU cache (``_blocked_values``), so its cost grows with the person-hours and nothing else.

``bootstrap(...)`` runs the replicates over ``bootstrap_workers`` processes
(concurrent.futures, one replicate per task); replicate b uses its own seed spawned from
``bootstrap_seed``, so the result does not depend on the number of workers.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

from pipeline.tte.data import TteData
from pipeline.tte.strategies import at_risk, clone, strategy_id
from pipeline.tte.survival import CountPlan, add_tail, aj_cif_curve, count_plan, counts, events, km_risk_curve
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
             start: np.ndarray | None = None, plan: Plan | None = None, keep_weights: bool = True) -> Estimate:
    """Every strategy's MEASURES on the sample ``mult`` (see module docs). ``plan``:
    ``make_plan(data, clones, settings)`` if already taken. ``keep_weights=False`` (bootstrap
    replicates): only the values are needed, computed by row blocks (``_blocked_values``)
    without the per-strategy weight arrays (``weights`` and ``risk_curves`` are then empty)."""
    mult = np.ones(data.n) if mult is None else mult
    plan = make_plan(data, clones, settings) if plan is None else plan
    if (not keep_weights and settings.weighted and settings.truncation_percentile >= 100 and data.n
            and len(data.row_pid)):
        try:
            p, beta = fit_start_probability(data, mult, settings.min_starts, start, plan.rows)
        except CensoringModelError:
            pass  # the general path below gives the reason and the strategies still computable
        else:
            return Estimate(_blocked_values(data, clones, settings, mult, p, plan), None, beta, [], [])
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


# Person-hours per block of _blocked_values: ~20 arrays of a block (256 KB each) stay in the
# cache; measured at 10k/30k stays: 8192 rows pays Python overhead per block, 32768-131072 alike.
VALUE_BLOCK_ROWS = 32768


def _row_blocks(data: TteData, size: int = VALUE_BLOCK_ROWS) -> np.ndarray:
    """Row boundaries of blocks of about ``size`` person-hours that start at a patient's first
    row (a patient's rows are never split)."""
    R = len(data.row_pid)
    after = np.searchsorted(data.row_start, np.arange(size, R, size))  # first patient starting at/after each cut
    first = data.row_start[after[after < data.n]]
    return np.unique(np.concatenate([[0], first, [R]]).astype(np.int64))


def _blocked_values(data: TteData, clones: Clones, settings: EstimateSettings, mult: np.ndarray,
                    p: np.ndarray, plan: Plan) -> np.ndarray:
    """``estimate(...).values`` given the start probabilities ``p``, by blocks of whole patients'
    rows: each block's weights, products and hourly sums stay in the CPU cache for all the
    strategies (the whole-array path makes ~15 passes over the person-hours per strategy,
    which at 30k-100k stays no longer fit in the cache and slowed per-row cost with size).
    Same arithmetic as ``cumulative_weights`` + ``counts``, except the cumulative sums restart
    at each block (rounding differences ~1e-15)."""
    short_h, long_h = _horizons(settings)
    S, n, W = len(clones.ids), data.n, data.window_hours
    no_start, start = log_factors(p)
    bounds = _row_blocks(data)
    pat = np.searchsorted(data.row_start, bounds)  # first patient of each block
    cut = lambda rows: np.searchsorted(rows, bounds)  # noqa: E731 - block slices of sorted row indices
    must = [cut(c[1]) for c in plan.constrained]
    km_cuts = [(cut(k.e1_rows), cut(k.end_rows)) for k in plan.km]
    rrt_cuts = [(cut(r.e1_rows), cut(r.e2_rows), cut(r.end_rows)) for r in plan.rrt]
    n_km = [np.zeros(k.horizon) for k in plan.km]
    d_km = [np.zeros(k.horizon) for k in plan.km]
    n_rr = [np.zeros(r.horizon) for r in plan.rrt]
    d1_rr = [np.zeros(r.horizon) for r in plan.rrt]
    d2_rr = [np.zeros(r.horizon) for r in plan.rrt]
    end_km, end_rr = np.zeros((S, n)), np.zeros((S, n))
    sel_rrt = plan.rrt[0].sel if S else np.ones(n, dtype=bool)

    def hourly(horizon: int, hour: np.ndarray, rows: np.ndarray, wm: np.ndarray) -> np.ndarray:
        """Weighted counts by hour of a block's ``rows`` (a mask or row offsets in the block)."""
        return np.bincount(hour[rows], wm[rows], minlength=horizon)[:horizon]

    for b in range(len(bounds) - 1):
        r0, r1 = int(bounds[b]), int(bounds[b + 1])
        if r1 <= r0:
            continue
        hour = data.row_hour[r0:r1]
        pid = data.row_pid[r0:r1]
        m_all = mult[pid].astype(float)
        m_rrt = m_all * sel_rrt[pid]
        a, z = no_start[r0:r1], start[r0:r1]
        first = data.row_start[pat[b]:pat[b + 1]] - r0
        counts_b = np.diff(np.append(first, r1 - r0))
        later = first > 0
        for s in range(S):
            must_not, must_rows = plan.constrained[s]
            lw = np.where(must_not[r0:r1], a, 0.0)
            mi = must_rows[must[s][b]:must[s][b + 1]] - r0
            lw[mi] = z[mi]
            np.cumsum(lw, out=lw)
            before = np.zeros(len(first))
            before[later] = lw[first[later] - 1]
            lw -= np.repeat(before, counts_b)
            w = np.exp(lw, out=lw)
            # death by the long-term horizon; RRT with death competing, RRT-eligible patients
            k, r = plan.km[s], plan.rrt[s]
            (e1c, endc), (f1c, f2c, gndc) = km_cuts[s], rrt_cuts[s]
            wm = w * m_all
            n_km[s] += hourly(k.horizon, hour, k.rows[r0:r1], wm)
            d_km[s] += hourly(k.horizon, hour, k.e1_rows[e1c[b]:e1c[b + 1]] - r0, wm)
            e = k.end_rows[endc[b]:endc[b + 1]] - r0
            end_km[s, pid[e]] = w[e]
            wm = w * m_rrt
            n_rr[s] += hourly(r.horizon, hour, r.rows[r0:r1], wm)
            d1_rr[s] += hourly(r.horizon, hour, r.e1_rows[f1c[b]:f1c[b + 1]] - r0, wm)
            d2_rr[s] += hourly(r.horizon, hour, r.e2_rows[f2c[b]:f2c[b + 1]] - r0, wm)
            e = r.end_rows[gndc[b]:gndc[b + 1]] - r0
            end_rr[s, pid[e]] = w[e]
    out = np.full((S, len(MEASURES)), np.nan)
    for s in range(S):
        k, r = plan.km[s], plan.rrt[s]
        if k.horizon > W:
            add_tail(k, data, end_km[s], mult.astype(float) * k.sel, n_km[s], d_km[s], np.zeros(k.horizon))
        if r.horizon > W:
            add_tail(r, data, end_rr[s], mult.astype(float) * r.sel, n_rr[s], d1_rr[s], d2_rr[s])
        risk = km_risk_curve(n_km[s], d_km[s])
        out[s, 0] = risk[short_h - 1]
        out[s, 1] = risk[long_h - 1]
        if n_rr[s][0] > 0:
            out[s, 2] = aj_cif_curve(n_rr[s], d1_rr[s], d2_rr[s])[short_h - 1]
    return out


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
    return estimate(data, clones, settings, mult, start=start, plan=_STATE["plan"], keep_weights=False).values


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

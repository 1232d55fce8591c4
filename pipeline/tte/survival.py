"""Weighted Kaplan-Meier and Aalen-Johansen estimates on the hourly grid.

Time is counted in whole hours from time zero; an event in hour h (death_time in
[h, h + 1)) happens "at" h, and a clone censored at hour c (deviation, end of follow-up) is in
the risk set of every hour < c. Inside the decision window each person-hour carries the clone's
own time-varying weight; after it, the weight each clone had in the last hour of the window
stays fixed (no more deviation is possible). The risk set and the events of hour h are sums of
weights x bootstrap multiplicity (vectorised with ``np.bincount``; no per-subject loop).

* ``weighted_km_risk``: 1 - prod_{h < H} (1 - d_h / n_h), the risk of death by hour H;
* ``weighted_aj_risk``: cumulative incidence of the event of interest (RRT) with a competing
  event (death): sum_h S(h-) d1_h / n_h, S the weighted KM of "either event".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipeline.tte.data import TteData


@dataclass(frozen=True)
class CountPlan:
    """The rows and patients entering one strategy's hourly counts, which do not depend on the
    weights or the bootstrap sample: built once per strategy and horizon (``count_plan``) and
    reused by every replicate (``counts``), so a replicate only multiplies and sums."""

    horizon: int
    competing: bool
    sel: np.ndarray  # (n,) bool patient subset (e.g. RRT-eligible)
    rows: np.ndarray  # (R,) bool: at risk before the horizon (one byte a row: 12 plans stay small)
    e1: np.ndarray  # positions (among the ``rows`` rows) of event-1 rows
    e2: np.ndarray  # positions of event-2 rows
    e1_rows: np.ndarray  # the event-1 rows themselves (row indices)
    e2_rows: np.ndarray
    end_rows: np.ndarray  # rows at risk in the last hour of the decision window (used when horizon > window)
    tail_ok: np.ndarray  # (n,) bool: still at risk after the window (before weights and sample)
    exit_h: np.ndarray  # (n,) last hour at risk after the window
    ev_floor: np.ndarray  # (n,) hour of the event ending the clone's time (-1 = none)
    ev_is_1: np.ndarray  # (n,) bool: that event is event 1


def _exit_hour(event_hour: np.ndarray, followup_hours: np.ndarray) -> np.ndarray:
    """Last hour at risk: the event hour, else the last hour starting before follow-up ends."""
    last_fu = np.where(np.isfinite(followup_hours), np.ceil(followup_hours) - 1, np.iinfo(np.int32).max)
    ev = np.where(np.isfinite(event_hour), np.floor(event_hour), np.iinfo(np.int32).max)
    return np.minimum(ev, last_fu).astype(np.int64)


@dataclass(frozen=True)
class _Events:
    """The strategy-independent part of a count plan (one per horizon and event type)."""

    in_horizon: np.ndarray  # (R,) bool: the row can be at risk (before the horizon and the RRT)
    e1: np.ndarray  # (R,) bool
    e2: np.ndarray  # (R,) bool
    is_last_hour: np.ndarray  # (R,) bool: the last hour of the decision window
    tail_ok: np.ndarray  # (n,)
    exit_h: np.ndarray
    ev_floor: np.ndarray
    ev_is_1: np.ndarray


def events(data: TteData, horizon_hours: int, competing: bool = False) -> _Events:
    H = int(horizon_hours)
    W = data.window_hours
    hour = data.row_hour
    in_horizon = hour < H
    if competing:
        rrt_h = np.where(np.isfinite(data.rrt_hour), np.floor(data.rrt_hour), np.inf)
        rrt_r = rrt_h[data.row_pid]
        in_horizon &= hour <= rrt_r
        e1 = hour == rrt_r
        e2 = data.is_death & ~e1
    else:
        e1 = data.is_death
        e2 = np.zeros(len(hour), dtype=bool)
    tail_ok = (data.death_hour >= W) & (data.followup_hours > W)  # alive at the window's end
    if competing:
        tail_ok &= ~(data.rrt_hour < W)
        ev_hour = np.minimum(data.rrt_hour, data.death_hour)
    else:
        ev_hour = data.death_hour
    exit_h = _exit_hour(ev_hour, data.followup_hours)
    finite = np.isfinite(ev_hour)
    ev_floor = np.floor(np.where(finite, ev_hour, -1.0)).astype(np.int64)
    # the event counts when it ends the clone's time at risk, before the horizon
    ev_floor = np.where(finite & (ev_floor == exit_h) & (exit_h < H), ev_floor, -1)
    ev_is_1 = (data.rrt_hour <= data.death_hour) if competing else np.ones(data.n, dtype=bool)
    return _Events(in_horizon=in_horizon, e1=e1, e2=e2, is_last_hour=hour == W - 1, tail_ok=tail_ok,
                   exit_h=exit_h, ev_floor=ev_floor, ev_is_1=ev_is_1)


def count_plan(data: TteData, censor: np.ndarray, horizon_hours: int, competing: bool = False,
               patients: np.ndarray | None = None, ev: _Events | None = None) -> CountPlan:
    """The weight-independent part of ``hourly_counts`` (same arguments). ``ev``:
    ``events(data, horizon_hours, competing)`` if already computed (shared by the strategies)."""
    ev = events(data, horizon_hours, competing) if ev is None else ev
    sel = np.ones(data.n, dtype=bool) if patients is None else np.asarray(patients, dtype=bool)
    risk = (data.row_hour < censor[data.row_pid]) & ev.in_horizon
    return CountPlan(horizon=int(horizon_hours), competing=competing, sel=sel, rows=risk,
                     e1=np.flatnonzero(ev.e1[risk]), e2=np.flatnonzero(ev.e2[risk]),
                     e1_rows=np.flatnonzero(risk & ev.e1), e2_rows=np.flatnonzero(risk & ev.e2),
                     end_rows=np.flatnonzero(risk & ev.is_last_hour),
                     tail_ok=ev.tail_ok & (censor >= data.window_hours), exit_h=ev.exit_h,
                     ev_floor=ev.ev_floor, ev_is_1=ev.ev_is_1)


def counts(plan: CountPlan, data: TteData, row_w: np.ndarray, mult: np.ndarray):
    """(n_h, d1_h, d2_h) of ``hourly_counts`` for the planned strategy, weights ``row_w`` (R,)
    and patient multiplicities ``mult`` (n,)."""
    H = plan.horizon
    W = data.window_hours
    m = mult.astype(float) * plan.sel
    hour = data.row_hour[plan.rows]
    rw = row_w[plan.rows] * m[data.row_pid[plan.rows]]
    n_h = np.bincount(hour, rw, minlength=H)[:H]
    d1 = np.bincount(hour[plan.e1], rw[plan.e1], minlength=H)[:H]
    d2 = np.bincount(hour[plan.e2], rw[plan.e2], minlength=H)[:H]
    if H > W:
        w_end = np.zeros(data.n)
        w_end[data.row_pid[plan.end_rows]] = row_w[plan.end_rows]
        add_tail(plan, data, w_end, m, n_h, d1, d2)
    return n_h, d1, d2


def add_tail(plan: CountPlan, data: TteData, w_end: np.ndarray, m: np.ndarray, n_h: np.ndarray, d1: np.ndarray,
             d2: np.ndarray) -> None:
    """Add to the hourly counts (in place) the clones still at risk after the decision window:
    uncensored through its last hour and alive at its end; weight = their weight in the last
    hour of the window (``w_end``, (n,)), fixed after; ``m`` = multiplicity x patient subset."""
    H, W = plan.horizon, data.window_hours
    ok = plan.tail_ok & (w_end > 0) & (m > 0)
    w = (w_end * m)[ok]
    stop = np.minimum(plan.exit_h[ok], H - 1)
    live = stop >= W
    diff = np.zeros(H + 1)
    diff[W] = w[live].sum()
    np.add.at(diff, stop[live] + 1, -w[live])
    n_h[W:] += np.cumsum(diff)[W:H]
    ev = plan.ev_floor[ok]
    is_ev = ev >= 0
    if plan.competing:
        one = plan.ev_is_1[ok][is_ev]
        d1 += np.bincount(ev[is_ev][one], w[is_ev][one], minlength=H)[:H]
        d2 += np.bincount(ev[is_ev][~one], w[is_ev][~one], minlength=H)[:H]
    else:
        d1 += np.bincount(ev[is_ev], w[is_ev], minlength=H)[:H]


def hourly_counts(data: TteData, censor: np.ndarray, row_w: np.ndarray, mult: np.ndarray, horizon_hours: int,
                  competing: bool = False, patients: np.ndarray | None = None):
    """Weighted numbers at risk and events per hour 0..horizon-1 for the clones of one strategy.
    ``competing``: event 1 = first RRT, event 2 = death (competing); else event 1 = death.
    ``patients``: (n,) bool subset (e.g. RRT-eligible). Returns (n_h, d1_h, d2_h)."""
    return counts(count_plan(data, censor, horizon_hours, competing, patients), data, row_w, mult)


def km_risk_curve(n_h: np.ndarray, d_h: np.ndarray) -> np.ndarray:
    """Risk by the end of each hour: 1 - cumprod(1 - d/n) (hours with n = 0 add nothing)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        haz = np.where(n_h > 0, d_h / np.where(n_h > 0, n_h, 1.0), 0.0)
    return 1.0 - np.cumprod(1.0 - np.clip(haz, 0.0, 1.0))


def aj_cif_curve(n_h: np.ndarray, d1: np.ndarray, d2: np.ndarray) -> np.ndarray:
    """Cumulative incidence of event 1 by the end of each hour, event 2 competing."""
    with np.errstate(invalid="ignore", divide="ignore"):
        h1 = np.where(n_h > 0, d1 / np.where(n_h > 0, n_h, 1.0), 0.0)
        h12 = np.where(n_h > 0, (d1 + d2) / np.where(n_h > 0, n_h, 1.0), 0.0)
    surv = np.cumprod(1.0 - np.clip(h12, 0.0, 1.0))
    before = np.concatenate([[1.0], surv[:-1]])
    return np.cumsum(before * h1)


def weighted_km(durations: np.ndarray, events: np.ndarray, weights: np.ndarray, at: float) -> float:
    """Plain weighted Kaplan-Meier risk 1 - S(at) for fixed weights and continuous times (the
    textbook product-limit; used to check the hourly estimator and against lifelines)."""
    order = np.argsort(durations, kind="stable")
    t, e, w = durations[order], events[order].astype(bool), weights[order]
    times = np.unique(t[e & (t <= at)])
    s = 1.0
    for u in times:
        n = w[t >= u].sum()
        d = w[(t == u) & e].sum()
        s *= 1.0 - d / n
    return 1.0 - s if not math.isnan(s) else math.nan

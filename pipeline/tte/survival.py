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

import numpy as np

from pipeline.tte.data import TteData


def _tail(data: TteData, censor: np.ndarray, row_w: np.ndarray, risk_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(weights, mask) of the clones still at risk after the decision window: uncensored through
    its last hour and alive at its end; weight = their weight in the last hour of the window."""
    w_end = np.zeros(data.n)
    at_end = risk_rows & (data.row_hour == data.window_hours - 1)
    w_end[data.row_pid[at_end]] = row_w[at_end]
    alive_end = (data.death_hour >= data.window_hours) & (data.followup_hours > data.window_hours)
    ok = alive_end & (censor >= data.window_hours) & (w_end > 0)
    return w_end, ok


def _exit_hour(event_hour: np.ndarray, followup_hours: np.ndarray) -> np.ndarray:
    """Last hour at risk: the event hour, else the last hour starting before follow-up ends."""
    last_fu = np.where(np.isfinite(followup_hours), np.ceil(followup_hours) - 1, np.iinfo(np.int32).max)
    ev = np.where(np.isfinite(event_hour), np.floor(event_hour), np.iinfo(np.int32).max)
    return np.minimum(ev, last_fu).astype(np.int64)


def hourly_counts(data: TteData, censor: np.ndarray, row_w: np.ndarray, mult: np.ndarray, horizon_hours: int,
                  competing: bool = False, patients: np.ndarray | None = None):
    """Weighted numbers at risk and events per hour 0..horizon-1 for the clones of one strategy.
    ``competing``: event 1 = first RRT, event 2 = death (competing); else event 1 = death.
    ``patients``: (n,) bool subset (e.g. RRT-eligible). Returns (n_h, d1_h, d2_h)."""
    H = int(horizon_hours)
    W = data.window_hours
    sel = np.ones(data.n, dtype=bool) if patients is None else patients
    m = mult.astype(float) * sel
    rw = row_w * m[data.row_pid]
    risk = data.row_hour < censor[data.row_pid]
    hour = data.row_hour
    if competing:
        rrt_h = np.where(np.isfinite(data.rrt_hour), np.floor(data.rrt_hour), np.inf)
        rrt_r = rrt_h[data.row_pid]
        risk = risk & (hour <= rrt_r)
        e1 = hour == rrt_r
        e2 = data.is_death & ~e1
    else:
        e1 = data.is_death
        e2 = np.zeros(len(hour), dtype=bool)
    inside = risk & (hour < H)
    n_h = np.bincount(hour[inside], rw[inside], minlength=H)[:H]
    d1 = np.bincount(hour[inside & e1], rw[inside & e1], minlength=H)[:H]
    d2 = np.bincount(hour[inside & e2], rw[inside & e2], minlength=H)[:H]
    if H > W:
        w_end, ok = _tail(data, censor, row_w, risk)
        if competing:
            ok &= ~(data.rrt_hour < W)
            ev_hour = np.minimum(data.rrt_hour, data.death_hour)
        else:
            ev_hour = data.death_hour
        ok &= m > 0
        w = (w_end * m)[ok]
        exit_h = _exit_hour(ev_hour[ok], data.followup_hours[ok])
        start = np.full(ok.sum(), W)
        stop = np.minimum(exit_h, H - 1)
        live = stop >= start
        diff = np.zeros(H + 1)
        np.add.at(diff, start[live], w[live])
        np.add.at(diff, stop[live] + 1, -w[live])
        n_h[W:] += np.cumsum(diff)[W:H]
        dh = ev_hour[ok]
        ev_floor = np.floor(np.where(np.isfinite(dh), dh, -1.0)).astype(np.int64)
        # the event counts when it ends the clone's time at risk, before the horizon
        is_ev = np.isfinite(dh) & (ev_floor == exit_h) & (exit_h < H)
        idx = ev_floor[is_ev]
        if competing:
            is_rrt = (data.rrt_hour[ok][is_ev] <= data.death_hour[ok][is_ev])
            d1 += np.bincount(idx[is_rrt], w[is_ev][is_rrt], minlength=H)[:H]
            d2 += np.bincount(idx[~is_rrt], w[is_ev][~is_rrt], minlength=H)[:H]
        else:
            d1 += np.bincount(idx, w[is_ev], minlength=H)[:H]
    return n_h, d1, d2


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

"""Clones and their deviation: each eligible patient is copied into every strategy; a clone is
censored in the hour it first deviates from its strategy.

Strategies (config [tte]): ``("threshold", X)`` = start VP within ``grace_hours`` after the NE
rate first reaches X mcg/kg/min (the G hourly slots starting with the hour in which it does),
never before; ``("never",)`` = no VP start in the decision window. Hours are those of the
panel: hour h = [time zero + h, time zero + h + 1).

For one strategy, each person-hour row gets a *kind*:

* ``MUST_NOT`` (0): the strategy forbids a VP start in this hour (before X is reached, or
  "never"); the clone stays uncensored with probability 1 - p(VP start);
* ``FREE`` (1): both are allowed (an earlier hour of the grace period, or VP already running);
* ``MUST`` (2): the last hour of the grace period without VP yet: only a start keeps the clone
  (probability p).

``censor_hour`` is the first hour at which the clone is no longer at risk (it deviated in that
hour): its rows at risk are those with hour < censor_hour.
"""

from __future__ import annotations

import numpy as np

from pipeline.tte.data import NEVER_HOUR, TteData

MUST_NOT, FREE, MUST = 0, 1, 2


def strategy_id(strategy: tuple) -> str:
    """``"never"`` or ``f"ne_{X:.2f}"`` (contract A/C ids)."""
    return "never" if strategy[0] == "never" else f"ne_{strategy[1]:.2f}"


def strategies_of(tte) -> list[tuple]:
    """The protocol's strategies in report order: thresholds ascending, then "never"."""
    out: list[tuple] = [("threshold", float(x)) for x in tte.strategy_thresholds_ne_mcg_kg_min]
    if tte.include_never_strategy:
        out.append(("never",))
    return out


def clone(data: TteData, strategy: tuple, grace_hours: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row kind (R,), censor_hour (n,), initiated (n,): VP started as the strategy says)."""
    h = data.row_hour
    vp = data.vp_hour
    if strategy[0] == "never":
        kind = np.where(data.has_vp_before, FREE, MUST_NOT)
        censor = vp.copy()  # NEVER_HOUR when no VP start
        return kind, censor, np.zeros(data.n, dtype=bool)
    t = data.reach_hour(strategy[1])
    last = np.where(t < NEVER_HOUR, t + grace_hours - 1, NEVER_HOUR)
    t_r, last_r = t[data.row_pid], last[data.row_pid]
    kind = np.full(len(h), FREE, dtype=np.int64)
    kind[h < t_r] = MUST_NOT
    kind[(h == last_r) & ~data.has_vp_before] = MUST
    kind[data.has_vp_before] = FREE
    initiated = (vp >= t) & (vp <= last) & (t < NEVER_HOUR)
    censor = np.where(vp < t, vp, np.where(initiated | (t >= NEVER_HOUR), NEVER_HOUR, last))
    return kind, censor, initiated


def at_risk(data: TteData, censor: np.ndarray) -> np.ndarray:
    """(R,) bool: the clone is uncensored in this hour."""
    return data.row_hour < censor[data.row_pid]

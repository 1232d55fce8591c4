"""Propensity-score helpers: standardised mean differences and overlap / IPT weights.

The "delayed vs earlier VP" weighted Cox that used them was removed in results.json 2.0
(issue 12): its treatment ("delayed" = VP added at a high NE dose) is defined by the NE dose,
the main confounder, so balance on the other covariates passed by construction while the
comparison stayed confounded (on synthetic data without any timing effect it reported harm).
Weights: "overlap" (treated 1 - ps, control ps; Li, Morgan & Zaslavsky 2018) or "iptw"
(stabilised: P(T)/ps, (1 - P(T))/(1 - ps)). SMD denominator: the unweighted pooled SD (Austin 2009).
"""

from __future__ import annotations

import numpy as np


def smd(x: np.ndarray, treated: np.ndarray, w: np.ndarray | None = None) -> float:
    """Standardised mean difference treated - control; denominator: unweighted pooled SD
    sqrt((var_t + var_c) / 2) so that before/after values are on one scale (Austin 2009)."""
    t, c = treated == 1, treated == 0
    sd = np.sqrt((np.var(x[t], ddof=1) + np.var(x[c], ddof=1)) / 2)
    if w is None:
        w = np.ones_like(x, dtype=float)
    diff = np.average(x[t], weights=w[t]) - np.average(x[c], weights=w[c])
    return float(diff / sd) if sd > 0 else 0.0


def propensity_weights(ps: np.ndarray, treated: np.ndarray, weighting: str) -> np.ndarray:
    if weighting == "overlap":
        return np.where(treated == 1, 1 - ps, ps)
    p_t = treated.mean()
    return np.where(treated == 1, p_t / ps, (1 - p_t) / (1 - ps))

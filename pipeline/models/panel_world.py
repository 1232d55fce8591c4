"""A small hourly world with time-varying confounding, for the hourly-panel models
(pipeline/models/panel.py) and their tests and benchmark. Independent of the synthetic MIMIC
generator (pipeline.synth): it writes the two frames the panel models read directly, in seconds,
with a truth the models must recover (the direct hourly VP hazard ratio, and no VP effect at all
when ``vp_log_hr`` = 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import polars as pl

_BASE_TIME = np.datetime64(datetime(2150, 1, 1), "us")
_US_PER_DAY = 86_400_000_000


def _to_time(days: np.ndarray) -> np.ndarray:
    return _BASE_TIME + np.round(days * _US_PER_DAY).astype("int64").astype("timedelta64[us]")


@dataclass(frozen=True)
class SimulatedPanelWorld:
    """An hourly world with time-varying confounding, for the hourly-panel models.

    ``cohort``: one row per patient (the cohort columns the panel models read: subject_id,
    stay_id, index_time, vp_start_time, death_time, followup_end_time, exposure, gender,
    age_years, lactate_at_index_mmol_l). ``panel``: contract-B rows, hours 0..window-1 while
    alive. ``true_vp_log_hr``: log of the hourly death-hazard ratio while VP runs.
    """

    cohort: pl.DataFrame
    panel: pl.DataFrame
    true_vp_log_hr: float


def simulate_panel_world(
    n: int, seed: int, vp_log_hr: float = 0.0, window_hours: int = 72, followup_hours: int = 120,
    dose_vp_log_odds: float = 1.5, dose_death_log_odds: float = 1.2,
) -> SimulatedPanelWorld:
    """Hour by hour: the NE dose (mcg/kg/min) follows a log random walk; MAP falls and lactate
    rises with it. VP starts (hourly logit ``-4 + dose_vp_log_odds * log(dose / 0.2)``, only while
    NE >= 5 mcg/min and no VP yet) and death (hourly logit ``-6 + dose_death_log_odds *
    log(dose / 0.2) + 0.15 * (lactate - 3) + vp_log_hr * [VP before this hour]``) both follow the
    *current* dose: a baseline-adjusted model is confounded, a model adjusted for the current
    dose is not. VP does not change the dose (no mediation), so the conditional hazard ratio and
    the effect of "start VP now vs not now" share the null when ``vp_log_hr`` = 0."""
    rng = np.random.default_rng(seed)
    weight = rng.normal(80, 15, n).clip(40, 150)
    age = rng.normal(65, 14, n).clip(18, 100)
    female = rng.random(n) < 0.42
    log_dose = rng.normal(np.log(0.12), 0.6, n)
    lactate = np.exp(rng.normal(np.log(2.5), 0.4, n))
    lactate0 = lactate.copy()
    alive = np.ones(n, dtype=bool)
    vp_on = np.zeros(n, dtype=bool)
    vp_hour = np.full(n, np.nan)
    death_hours = np.full(n, np.nan)
    rows = []
    for h in range(followup_hours):
        dose = np.exp(log_dose)
        dose_min = dose * weight
        mapv = 75 - 12 * np.log(dose / 0.05) + rng.normal(0, 4, n)
        start = alive & ~vp_on & (dose_min >= 5.0) & (h < window_hours) & (
            rng.random(n) < 1 / (1 + np.exp(-(-4 + dose_vp_log_odds * np.log(dose / 0.2)))))
        lin = -6 + dose_death_log_odds * np.log(dose / 0.2) + 0.15 * (lactate - 3) + vp_log_hr * vp_on
        die = alive & (rng.random(n) < 1 / (1 + np.exp(-lin)))
        if h < window_hours:
            idx = np.flatnonzero(alive)
            rows.append({"i": idx, "hour": np.full(idx.size, h), "die": die[idx], "ne": dose[idx],
                         "ne_min": dose_min[idx], "map": mapv[idx], "lac": lactate[idx],
                         "vp_start": start[idx], "vp_before": vp_on[idx]})
        vp_hour[start] = h + rng.random(start.sum())
        death_hours[die] = h + rng.random(die.sum())
        vp_on |= start
        alive &= ~die
        log_dose = log_dose + rng.normal(0, 0.2, n)
        lactate = lactate * np.exp(rng.normal(0, 0.08, n))
    # A VP start in the hour of death is kept only if it came first.
    vp_hour = np.where(np.isfinite(death_hours) & (vp_hour > death_hours), np.nan, vp_hour)
    ids = np.arange(n)
    hours_to_time = lambda x: _to_time(np.asarray(x, dtype=float) / 24.0)  # noqa: E731
    cohort = pl.DataFrame({
        "subject_id": 10_000_000 + ids, "stay_id": 30_000_000 + ids,
        "index_time": pl.Series(hours_to_time(np.zeros(n))),
        "vp_start_time": pl.Series(hours_to_time(np.nan_to_num(vp_hour))),
        "death_time": pl.Series(hours_to_time(np.nan_to_num(death_hours))),
        "followup_end_time": pl.Series(hours_to_time(np.full(n, float(followup_hours)))),
        "exposure": np.where(np.isfinite(vp_hour), "vp_added", "ne_only"),
        "gender": np.where(female, "F", "M"), "age_years": np.round(age, 1),
        "lactate_at_index_mmol_l": np.round(lactate0, 2),
    }).with_columns(
        vp_start_time=pl.when(pl.Series(np.isfinite(vp_hour))).then(pl.col("vp_start_time")),
        death_time=pl.when(pl.Series(np.isfinite(death_hours))).then(pl.col("death_time")),
    )
    cat = {k: np.concatenate([r[k] for r in rows]) for k in rows[0]}
    panel = pl.DataFrame({
        "stay_id": 30_000_000 + cat["i"], "subject_id": 10_000_000 + cat["i"],
        "hour": cat["hour"].astype(np.int64),
        "hour_start_time": pl.Series(hours_to_time(cat["hour"])),
        "is_alive_at_start": np.ones(cat["i"].size, dtype=bool), "is_death_in_hour": cat["die"],
        "ne_rate_mcg_kg_min": cat["ne"], "ne_rate_mcg_min": cat["ne_min"],
        "nee_dose_mcg_kg_min": cat["ne"], "map_mmhg": np.round(cat["map"], 0), "map_age_hours": 0.0,
        "lactate_mmol_l": np.round(cat["lac"], 2), "lactate_age_hours": 0.0,
        "has_other_vasopressor": np.zeros(cat["i"].size, dtype=bool),
        "is_vp_start_hour": cat["vp_start"], "has_vp_before": cat["vp_before"],
        "is_map_assessable": np.ones(cat["i"].size, dtype=bool),
        "is_lactate_assessable": np.ones(cat["i"].size, dtype=bool),
    }).sort("stay_id", "hour")
    return SimulatedPanelWorld(cohort, panel, vp_log_hr)

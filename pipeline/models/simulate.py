"""Cohort-shaped synthetic data with a known truth, for the model tests and benchmarks.

Produces the two frames the cohort step writes (``cohort.parquet`` and ``ne_timeline.parquet``
layouts; see pipeline/models/data.py) for ``n`` patients:

* NE starts at index_time and runs in 2-hour intervals whose rate (mcg/kg/min) depends on
  lactate (sicker patients need more NE) and drifts at random; the episode lasts a random time.
* VP starts at a random time while NE runs, sooner for sicker patients (hazard
  ``vp_rate_per_day * exp(vp_lactate_log_rate * (lactate - 3))``): sicker patients get VP, but only
  those who live long enough - the immortal-time trap of an "ever VP" comparison.
* Death hazard per day: ``baseline_hazard_per_day * exp(0.25 * (age - 65) / 10 +
  death_lactate_log_hr * (lactate - 3) + vp_log_hr * [VP running])``, times
  ``early_hazard_multiplier`` in the first ``early_days`` (septic-shock deaths come early). So the
  true VP hazard ratio, conditional on age and lactate at index, is ``exp(vp_log_hr)``.
* RRT (same ICU stay only) with death as a competing risk.

Numbers are plausible, not MIMIC estimates; only the stated truths are guaranteed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import polars as pl

from pipeline.config import StudyConfig, load_study_config

# Length of one simulated NE interval, hours (a typical MetaVision row between rate changes).
_INTERVAL_HOURS = 2.0
_BASE_TIME = np.datetime64(datetime(2150, 1, 1), "us")
_US_PER_DAY = 86_400_000_000


@dataclass(frozen=True)
class SimulatedCohort:
    cohort: pl.DataFrame
    ne_timeline: pl.DataFrame
    true_vp_hr: float


def _to_time(days: np.ndarray) -> np.ndarray:
    return _BASE_TIME + np.round(days * _US_PER_DAY).astype("int64").astype("timedelta64[us]")


def _invert_piecewise(
    e: np.ndarray, k: np.ndarray, mult: float, early_days: float, tv: np.ndarray, log_hr: float
) -> np.ndarray:
    """Time at which the cumulative hazard reaches ``e``; hazard k * (mult before early_days) *
    (exp(log_hr) from tv on). Three constant pieces between the two sorted breakpoints."""
    p1 = np.minimum(early_days, tv)
    p2 = np.maximum(early_days, tv)

    def rate(t: np.ndarray) -> np.ndarray:
        return k * np.where(t < early_days, mult, 1.0) * np.where(t >= tv, np.exp(log_hr), 1.0)

    r0, r1, r2 = rate(p1 * 0), rate((p1 + np.where(np.isfinite(p2), p2, p1 + 2)) / 2), rate(p2 + 1)
    h1 = r0 * p1
    h2 = h1 + r1 * np.where(np.isfinite(p2), p2 - p1, np.inf)
    with np.errstate(invalid="ignore"):  # inf - inf in branches np.where does not pick
        return np.where(e < h1, e / r0, np.where(e < h2, p1 + (e - h1) / r1, p2 + (e - h2) / r2))


def simulate_cohort(
    n: int = 2000,
    seed: int = 1,
    *,
    vp_log_hr: float = 0.0,
    baseline_hazard_per_day: float = 0.006,
    early_hazard_multiplier: float = 10.0,
    early_days: float = 3.0,
    death_lactate_log_hr: float = 0.25,
    vp_rate_per_day: float = 0.5,
    vp_lactate_log_rate: float = 0.3,
    share_vp_before_ne: float = 0.03,
    share_missing_lactate: float = 0.05,
    config: StudyConfig | None = None,
) -> SimulatedCohort:
    """Simulate ``n`` patients (one index episode each). Deterministic for a given ``seed``.

    ``vp_log_hr``: true log hazard ratio of death while VP runs (vs not), given age and lactate.
    Stratum and timing thresholds come from ``config`` [classification] (default: the shipped
    study.toml), so simulated strata follow the same rules as the cohort SQL.
    """
    cls = (config or load_study_config()).section("classification")
    vasst_entry_ne_mcg_min = cls["vasst_entry_ne_mcg_min"]
    vasst_more_severe_ne_mcg_min = cls["vasst_more_severe_ne_mcg_min"]
    timing_cutoffs_mcg_kg_min = (cls["timing_recommended_ne_mcg_kg_min"], cls["timing_ssc_window_ne_mcg_kg_min"],
                                 cls["timing_delayed_above_ne_mcg_kg_min"])
    timing_delayed_above_mcg_min = cls["timing_delayed_above_ne_mcg_min"]
    rng = np.random.default_rng(seed)
    age = np.clip(rng.normal(65, 14, n), 18, 95)
    female = rng.random(n) < 0.42
    weight = np.clip(rng.normal(80, 18, n), 40, 180)
    lactate = np.exp(rng.normal(np.log(2.6), 0.55, n))
    creat = np.exp(rng.normal(np.log(1.3), 0.5, n))
    vp_before = rng.random(n) < share_vp_before_ne

    # Episode (NE) duration, days; dose level per patient (log mcg/kg/min) rises with lactate.
    episode_days = np.exp(rng.normal(np.log(1.5), 0.7, n))
    dose_level = np.log(0.12) + 0.25 * (lactate - 3.0) + rng.normal(0, 0.6, n)

    # VP start: exponential while NE runs; sicker (higher lactate) patients sooner.
    vp_rate = vp_rate_per_day * np.exp(vp_lactate_log_rate * (lactate - 3.0))
    vp_candidate = rng.exponential(1.0 / vp_rate)
    vp_possible = (vp_candidate < episode_days) & ~vp_before

    # Death: piecewise-constant hazard; breakpoints at early_days and VP start (inverse cum. hazard).
    k = baseline_hazard_per_day * np.exp(0.25 * (age - 65) / 10 + death_lactate_log_hr * (lactate - 3.0))
    e = rng.exponential(1.0, n)
    tv = np.where(vp_possible, vp_candidate, np.inf)
    death_days = _invert_piecewise(e, k, early_hazard_multiplier, early_days, tv, vp_log_hr)
    before = death_days < tv
    vp_added = vp_possible & ~before  # VP actually started (patient alive at the candidate time)
    # Administrative end of follow-up: most beyond a year, some ended early (transfer, data cut).
    admin_days = np.where(rng.random(n) < 0.08, rng.uniform(20, 90, n), rng.uniform(120, 500, n))
    dead = death_days <= admin_days
    death_days = np.where(dead, death_days, np.nan)
    end_days = np.where(dead, death_days, admin_days)

    # NE timeline: 2-hour intervals from index to min(episode end, death).
    ne_end = np.minimum(episode_days, np.where(dead, death_days, np.inf))
    n_int = np.maximum(1, np.ceil(ne_end * 24 / _INTERVAL_HOURS).astype(int))
    pid = np.repeat(np.arange(n), n_int)
    k_idx = np.arange(pid.size) - np.repeat(np.cumsum(n_int) - n_int, n_int)
    start_d = k_idx * _INTERVAL_HOURS / 24
    stop_d = np.minimum(start_d + _INTERVAL_HOURS / 24, ne_end[pid])
    stop_d = np.maximum(stop_d, start_d + 1.0 / 1440)
    walk = rng.normal(0, 0.25, pid.size)
    walk_cum = np.cumsum(walk) - np.repeat(np.cumsum(walk)[np.cumsum(n_int) - n_int] - walk[np.cumsum(n_int) - n_int], n_int)
    rate_kg = np.round(np.exp(dose_level[pid] + walk_cum), 4)
    rate_kg = np.clip(rate_kg, 0.01, 3.0)

    # NE rate at VP start: the interval covering vp time.
    vp_days = np.where(vp_added, vp_candidate, np.nan)
    vp_k = np.where(vp_added, np.floor(np.nan_to_num(vp_days) * 24 / _INTERVAL_HOURS), 0).astype(int)
    vp_k = np.minimum(vp_k, n_int - 1)
    first_row = np.cumsum(n_int) - n_int
    ne_at_vp_kg = np.where(vp_added, rate_kg[first_row + vp_k], np.nan)
    ne_at_vp_min = ne_at_vp_kg * weight
    ne_max_kg = np.maximum.reduceat(rate_kg, first_row)

    vp_days = np.where(vp_before, -rng.uniform(0.02, 0.12, n), vp_days)
    exposure = np.where(vp_added, "vp_added", np.where(vp_before, "vp_before_ne", "ne_only"))
    stratum = np.where(
        ~vp_added, None,
        np.where(ne_at_vp_min < vasst_entry_ne_mcg_min, "below_entry",
                 np.where(ne_at_vp_min < vasst_more_severe_ne_mcg_min, "less_severe", "more_severe")),
    )
    c_rec, c_ssc, c_del = timing_cutoffs_mcg_kg_min
    timing = np.where(
        ~vp_added, None,
        np.where((ne_at_vp_min > timing_delayed_above_mcg_min) | (ne_at_vp_kg > c_del), "delayed",
                 np.where(ne_at_vp_kg < c_rec, "early", np.where(ne_at_vp_kg < c_ssc, "recommended", "ssc_window"))),
    )

    # ICU stay and RRT (observed only in the stay), death competing.
    out_days = np.minimum(episode_days + rng.uniform(0.5, 8, n), end_days)
    rrt_before = rng.random(n) < 0.06
    rrt_rate = 0.02 * np.exp(0.5 * np.log(creat / 1.3) + 0.15 * (lactate - 3.0) + 0.4 * (dose_level - np.log(0.12)))
    rrt_t = rng.exponential(1.0 / rrt_rate)
    rrt_after = ~rrt_before & (rrt_t < out_days)
    rrt_days = np.where(rrt_after, rrt_t, np.nan)

    origin = rng.uniform(0, 3650, n)
    lact_missing = rng.random(n) < share_missing_lactate
    lactate_obs = np.where(lact_missing, np.nan, np.round(lactate, 2))
    ids = np.arange(n)

    def horizon_death(h: float) -> list[bool | None]:
        out: list[bool | None] = []
        for d, a in zip(death_days, admin_days):
            if np.isfinite(d) and d <= h:
                out.append(True)
            elif a < h and not np.isfinite(d):
                out.append(None)
            else:
                out.append(False)
        return out

    def t(days: np.ndarray) -> pl.Series:
        return pl.Series(_to_time(origin + np.nan_to_num(days, nan=0.0)))

    def nullable(series: pl.Series, mask: np.ndarray) -> pl.Series:
        return pl.Series(series.name, [v if m else None for v, m in zip(series.to_list(), mask)], dtype=series.dtype)

    cohort = pl.DataFrame(
        {
            "subject_id": 10_000_000 + ids,
            "hadm_id": 20_000_000 + ids,
            "stay_id": 30_000_000 + ids,
            "index_time": t(np.zeros(n)),
            "ne_start_time": t(np.zeros(n)),
            "vp_start_time": nullable(t(vp_days), vp_added | vp_before),
            "death_time": nullable(t(death_days), dead),
            "followup_end_time": t(end_days),
            "rrt_first_time_after_index": nullable(t(rrt_days), rrt_after),
            "intime": t(-rng.uniform(0.05, 1.0, n)),
            "outtime": t(out_days),
            "episode_end_time": t(ne_end),
            "exposure": exposure,
            "ne_rate_at_vp_mcg_kg_min": ne_at_vp_kg,
            "ne_rate_at_vp_mcg_min": ne_at_vp_min,
            "nee_at_vp_mcg_kg_min": ne_at_vp_kg,
            "weight_kg": np.round(weight, 1),
            "hours_ne_to_vp": np.where(vp_added, vp_days * 24, np.nan),
            "days_to_death": death_days,
            "age_years": np.round(age, 1),
            "lactate_before_vp_mmol_l": np.where(vp_added, lactate_obs, np.nan),
            "lactate_at_index_mmol_l": lactate_obs,
            "map_before_vp_mmhg": np.where(vp_added, np.round(rng.normal(62, 6, n), 0), np.nan),
            "creatinine_baseline_mg_dl": np.round(creat, 2),
            "ne_max_rate_mcg_kg_min": ne_max_kg,
            "ne_max_rate_mcg_min": ne_max_kg * weight,
            "vasst_stratum": pl.Series(stratum.tolist(), dtype=pl.String),
            "timing_class": pl.Series(timing.tolist(), dtype=pl.String),
            "gender": np.where(female, "F", "M"),
            "anchor_year_group": np.full(n, "2017 - 2019"),
            "first_careunit": np.full(n, "Medical Intensive Care Unit (MICU)"),
            "death_28d": pl.Series(horizon_death(28.0), dtype=pl.Boolean),
            "death_90d": pl.Series(horizon_death(90.0), dtype=pl.Boolean),
            "rrt_before_index": rrt_before,
            "rrt_after_index": rrt_after,
            "has_lactate_source": ~lact_missing,
            "has_map_source": np.ones(n, dtype=bool),
            "has_chartevents": np.ones(n, dtype=bool),
        },
        nan_to_null=True,
    )
    timeline = pl.DataFrame(
        {
            "stay_id": 30_000_000 + pid,
            "starttime": pl.Series(_to_time(origin[pid] + start_d)),
            "endtime": pl.Series(_to_time(origin[pid] + stop_d)),
            "ne_rate_mcg_kg_min": rate_kg,
            "ne_rate_mcg_min": rate_kg * weight[pid],
        }
    )
    return SimulatedCohort(cohort=cohort, ne_timeline=timeline, true_vp_hr=float(np.exp(vp_log_hr)))

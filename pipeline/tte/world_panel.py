"""Cohort and hourly-panel frames (the columns of cohort.parquet and
hourly_panel.parquet that pipeline.tte reads) straight from the synthetic hour-by-hour world
(pipeline.synth.world, branch issue10), without writing MIMIC tables: large samples in seconds.

The panel follows mart_hourly_panel's definitions: hour h = [time zero + h, + 1 h); NE rate of
the hour; MAP / lactate charted at the hour start, carried forward; VP start hour; the hour of
death is the last row."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import polars as pl

from pipeline.synth import world
from pipeline.synth.params import SynthParams

T0 = datetime(2150, 1, 1)


def frames_from_arrays(rate: np.ndarray, map_mmhg: np.ndarray, lactate: np.ndarray, vp_start_hour: np.ndarray,
                       death_hour: np.ndarray, rrt_hour: np.ndarray, age: np.ndarray, window: int = 72,
                       followup_hours: np.ndarray | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(cohort, panel) from per-patient hourly arrays (n, >= window); nan = not charted."""
    n = rate.shape[0]
    hours = np.arange(window)
    last = np.where(np.isfinite(death_hour), np.minimum(np.floor(death_hour), window - 1), window - 1).astype(int)
    keep = hours[None, :] <= last[:, None]
    pid, hh = np.nonzero(keep)

    def ffill(a: np.ndarray) -> np.ndarray:
        a = a[:, :window].astype(float)
        idx = np.where(np.isfinite(a), np.arange(window)[None, :], 0)
        np.maximum.accumulate(idx, axis=1, out=idx)
        out = a[np.arange(n)[:, None], idx]
        return out

    m, lac = ffill(map_mmhg), ffill(lactate)
    index = [T0 + timedelta(days=int(i)) for i in range(n)]
    panel = pl.DataFrame({
        "stay_id": pid + 1, "hour": hh.astype(np.int32),
        "is_death_in_hour": np.isfinite(death_hour[pid]) & (np.floor(np.where(np.isfinite(death_hour[pid]), death_hour[pid], -1)) == hh),
        "ne_rate_mcg_kg_min": rate[pid, hh].astype(float),
        "map_mmhg": m[pid, hh], "lactate_mmol_l": lac[pid, hh],
        "has_other_vasopressor": np.zeros(len(pid), dtype=bool),
        "is_vp_start_hour": vp_start_hour[pid] == hh,
        "has_vp_before": (vp_start_hour[pid] >= 0) & (hh > vp_start_hour[pid]),
        "is_map_assessable": np.ones(len(pid), dtype=bool),
        "is_lactate_assessable": np.ones(len(pid), dtype=bool),
    }).with_columns(pl.col("map_mmhg").fill_nan(None), pl.col("lactate_mmol_l").fill_nan(None))

    def times(h: np.ndarray) -> list:
        return [None if not np.isfinite(x) else t + timedelta(hours=float(x)) for t, x in zip(index, h)]

    fu = np.full(n, 365 * 24.0) if followup_hours is None else followup_hours
    rng = np.random.default_rng(0)
    cohort = pl.DataFrame({
        "stay_id": np.arange(1, n + 1), "exposure": np.where(vp_start_hour >= 0, "vp_added", "ne_only"),
        "index_time": index, "death_time": times(death_hour), "followup_end_time": times(fu),
        "gender": np.where(rng.random(n) < 0.45, "F", "M"), "age_years": age.astype(float),
        "lactate_at_index_mmol_l": np.asarray(lactate[:, 0], dtype=float),
        "has_chronic_dialysis": np.zeros(n, dtype=bool), "rrt_before_index": np.zeros(n, dtype=bool),
        "rrt_first_time_after_index": times(rrt_hour),
    }, schema_overrides={"death_time": pl.Datetime("us"), "followup_end_time": pl.Datetime("us"),
                         "rrt_first_time_after_index": pl.Datetime("us")})
    cohort = cohort.with_columns(pl.col("lactate_at_index_mmol_l").fill_nan(None))
    return cohort, panel


def world_frames(n: int, seed: int, params: SynthParams | None = None, window: int = 72,
                 grace_hours: int = 1) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``n`` patients of the natural course of the hourly world as (cohort, panel)."""
    prm = params or SynthParams()
    base = world.baseline(np.random.default_rng([seed, 3]), n, prm)
    c = world.simulate(base, prm, seed, None, window_hours=window, grace_hours=grace_hours, keep_hourly=True)
    return frames_from_arrays(c.rate, c.map_mmhg, c.lactate, c.vp_start_hour, c.death_hour, c.rrt_hour,
                              base.age, window)

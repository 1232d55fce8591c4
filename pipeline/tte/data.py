"""The emulation's input: eligible patients and their person-hours as numpy arrays.

``load_inputs(cohort_path)`` reads ``cohort.parquet`` and ``hourly_panel.parquet`` beside it
(the cohort step writes both; panel columns: sql/README.md, ``mart_hourly_panel``).
``prepare(cohort, panel, tte, horizon_days)`` keeps the eligible patients (the analysis cohort
without VP at or before time zero: exposure != 'vp_before_ne' and no VP before hour 0) and
returns a ``TteData``: one entry per eligible patient and one row per patient-hour of the
decision window under follow-up (rows sorted by patient, then hour).

Not assessable covariates (``is_map_assessable`` / ``is_lactate_assessable`` false: the source
has no chartevents / labevents) are left out of the censoring model and named in
``TteData.notes``; they are never imputed. Where a covariate is assessable but not yet charted,
the value is set to the mean of the charted ones and a "not charted" indicator enters the model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from pipeline.errors import InputFileError

PANEL_FILE = "hourly_panel.parquet"
PANEL_COLUMNS = (
    "stay_id", "hour", "is_death_in_hour", "ne_rate_mcg_kg_min", "map_mmhg", "lactate_mmol_l",
    "has_other_vasopressor", "is_vp_start_hour", "has_vp_before", "is_map_assessable", "is_lactate_assessable",
)
COHORT_COLUMNS = (
    "stay_id", "exposure", "index_time", "death_time", "followup_end_time", "gender",
    "has_chronic_dialysis", "rrt_before_index", "rrt_first_time_after_index",
)
NEVER_HOUR = 1 << 30  # "no such hour" (a threshold never reached, no VP start, no censoring)


@dataclass(frozen=True)
class TteData:
    """Eligible patients (index i) and their person-hours in the decision window (row r)."""

    window_hours: int
    stay_id: np.ndarray  # (n,)
    row_pid: np.ndarray  # (R,) patient index of the row
    row_hour: np.ndarray  # (R,) hours since time zero
    row_start: np.ndarray  # (n,) first row of each patient
    ne_rate: np.ndarray  # (R,) mcg/kg/min, highest in the hour
    is_vp_start: np.ndarray  # (R,) bool
    has_vp_before: np.ndarray  # (R,) bool
    is_death: np.ndarray  # (R,) bool
    design: np.ndarray  # (R, k) censoring-model covariates (intercept first)
    design_names: tuple[str, ...]
    vp_hour: np.ndarray  # (n,) first VP start hour in the window (NEVER_HOUR = none)
    last_row_hour: np.ndarray  # (n,) hour of the patient's last row
    death_hour: np.ndarray  # (n,) float hours from time zero (inf = no death observed)
    followup_hours: np.ndarray  # (n,) float hours to the end of follow-up (inf = open)
    rrt_hour: np.ndarray  # (n,) float hours to the first RRT after time zero (inf = none)
    is_rrt_eligible: np.ndarray  # (n,) bool: no chronic dialysis, no RRT before time zero
    notes: tuple[str, ...] = field(default=())

    @property
    def n(self) -> int:
        return len(self.stay_id)

    def reach_hour(self, threshold: float) -> np.ndarray:
        """(n,) first hour whose NE rate is >= ``threshold`` mcg/kg/min (NEVER_HOUR = never)."""
        hit = self.ne_rate >= threshold - 1e-9
        out = np.full(self.n, NEVER_HOUR, dtype=np.int64)
        np.minimum.at(out, self.row_pid[hit], self.row_hour[hit])
        return out


def load_inputs(cohort_path: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """cohort.parquet and hourly_panel.parquet beside it, with the columns checked."""
    cohort_path = Path(cohort_path)
    panel_path = cohort_path.parent / PANEL_FILE
    frames = []
    for path, cols in ((cohort_path, COHORT_COLUMNS), (panel_path, PANEL_COLUMNS)):
        if not path.is_file():
            raise InputFileError(f"{path}: file not found (the cohort step writes it)")
        try:
            frame = pl.read_parquet(path)
        except (OSError, pl.exceptions.PolarsError) as exc:
            raise InputFileError(f"{path}: cannot read parquet ({exc})".splitlines()[0]) from None
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise InputFileError(f"{path}: missing column(s) {', '.join(missing)}")
        frames.append(frame)
    return frames[0], frames[1]


def _hours(col: str) -> pl.Expr:
    return (pl.col(col) - pl.col("index_time")).dt.total_microseconds() / 3.6e9


def _filled(values: np.ndarray, name: str, cols: list, names: list) -> None:
    """Append ``values`` (nan = not charted) as mean-filled value + "not charted" indicator."""
    missing = np.isnan(values)
    mean = float(np.nanmean(values)) if (~missing).any() else 0.0
    cols.append(np.where(missing, mean, values))
    names.append(name)
    if missing.any():
        cols.append(missing.astype(float))
        names.append(f"{name}_not_charted")


def _stack_columns(cols: list[np.ndarray], block: int = 4096) -> np.ndarray:
    """np.column_stack(cols) (C order), filled by blocks of rows that stay in the CPU cache
    (column_stack writes each column with a stride over the whole matrix: ~5x slower on a
    million rows)."""
    out = np.empty((len(cols[0]), len(cols)))
    for a in range(0, len(out), block):
        part = out[a:a + block]
        for j, col in enumerate(cols):
            part[:, j] = col[a:a + block]
    return out


def prepare(cohort: pl.DataFrame, panel: pl.DataFrame, window_hours: float,
            baseline_covariates: list[str]) -> TteData:
    """Eligible patients and their person-hours (see module docs)."""
    window = int(math.ceil(window_hours))
    cohort = cohort.with_columns(is_female=(pl.col("gender") == "F").cast(pl.Float64))
    missing = [c for c in baseline_covariates if c not in cohort.columns]
    if missing:
        raise InputFileError(f"cohort.parquet: missing covariate column(s) {', '.join(missing)}")
    first = panel.filter(pl.col("hour") == 0).select("stay_id", vp0=pl.col("has_vp_before"))
    eligible = (
        cohort.join(first, on="stay_id", how="inner")
        .filter((pl.col("exposure") != "vp_before_ne") & ~pl.col("vp0"))
        .with_columns(
            death_h=_hours("death_time").fill_null(math.inf),
            fu_h=_hours("followup_end_time").fill_null(math.inf),
            rrt_h=_hours("rrt_first_time_after_index").fill_null(math.inf),
        )
        .sort("stay_id")
    )
    n = eligible.height
    rows = panel.select(PANEL_COLUMNS).filter(pl.col("stay_id").is_in(eligible["stay_id"].implode())
                                              & (pl.col("hour") < window))
    # patient index of each row by binary search in the sorted eligible ids, the rows before the
    # end of follow-up (administrative) and patient-then-hour order, in numpy: a hash join of
    # the panel with the cohort and a sort of the result grew faster than the rows
    row_pid = np.searchsorted(eligible["stay_id"].to_numpy(), rows["stay_id"].to_numpy()).astype(np.int64)
    row_hour = rows["hour"].to_numpy().astype(np.int64)
    under = row_hour < eligible["fu_h"].to_numpy()[row_pid]
    dp, dh = np.diff(row_pid[under]), np.diff(row_hour[under])
    if not ((dp > 0) | ((dp == 0) & (dh > 0))).all():
        take = np.flatnonzero(under)
        take = take[np.lexsort((row_hour[take], row_pid[take]))]
        rows, row_pid, row_hour = rows[take], row_pid[take], row_hour[take]
    elif not under.all():
        rows, row_pid, row_hour = rows.filter(pl.Series(under)), row_pid[under], row_hour[under]
    has_rows = np.zeros(n, dtype=bool)
    has_rows[row_pid] = True
    row_start = np.searchsorted(row_pid, np.arange(n))
    last = np.full(n, -1, dtype=np.int64)
    np.maximum.at(last, row_pid, row_hour)
    vp_start = rows["is_vp_start_hour"].to_numpy().astype(bool)
    vp_hour = np.full(n, NEVER_HOUR, dtype=np.int64)
    np.minimum.at(vp_hour, row_pid[vp_start], row_hour[vp_start])
    ne = rows["ne_rate_mcg_kg_min"].fill_null(0.0).to_numpy().astype(float)

    # censoring-model covariates (intercept first)
    notes: list[str] = []
    cols: list[np.ndarray] = [np.ones(rows.height)]
    names: list[str] = ["intercept"]
    on = ne > 0
    cols.append(np.where(on, np.log(np.where(on, ne, 1.0)), 0.0))
    names.append("log_ne_rate_mcg_kg_min")
    cols.append(ne)
    names.append("ne_rate_mcg_kg_min")
    for col, flag, label in (("map_mmhg", "is_map_assessable", "MAP"),
                             ("lactate_mmol_l", "is_lactate_assessable", "lactate")):
        if not rows.height:
            continue  # no person-hours: nothing to model (the positivity reasons say so)
        if rows[flag].all():
            _filled(rows[col].cast(pl.Float64).fill_null(np.nan).to_numpy(), col, cols, names)
        else:
            notes.append(f"{label} not assessable (the source has no "
                         f"{'chartevents' if label == 'MAP' else 'labevents'}): left out of the censoring model")
    cols.append(rows["has_other_vasopressor"].cast(pl.Float64).to_numpy())
    names.append("has_other_vasopressor")
    cols.append(row_hour.astype(float))
    names.append("hours_since_time_zero")
    cols.append(np.log1p(row_hour.astype(float)))
    names.append("log1p_hours_since_time_zero")
    for cov in baseline_covariates:
        values = eligible[cov].cast(pl.Float64).fill_null(np.nan).to_numpy()
        _filled(values[row_pid], cov, cols, names)
    design = _stack_columns(cols) if rows.height else np.zeros((0, len(names)))
    if n and not has_rows.all():
        notes.append(f"{int((~has_rows).sum())} eligible patients have no person-hour under follow-up")
    return TteData(
        window_hours=window,
        stay_id=eligible["stay_id"].to_numpy(),
        row_pid=row_pid, row_hour=row_hour, row_start=row_start,
        ne_rate=ne, is_vp_start=vp_start,
        has_vp_before=rows["has_vp_before"].to_numpy().astype(bool),
        is_death=rows["is_death_in_hour"].to_numpy().astype(bool),
        design=design, design_names=tuple(names),
        vp_hour=vp_hour, last_row_hour=last,
        death_hour=eligible["death_h"].to_numpy().astype(float),
        followup_hours=eligible["fu_h"].to_numpy().astype(float),
        rrt_hour=eligible["rrt_h"].to_numpy().astype(float),
        is_rrt_eligible=~(eligible["has_chronic_dialysis"].fill_null(False).to_numpy().astype(bool)
                          | eligible["rrt_before_index"].fill_null(False).to_numpy().astype(bool)),
        notes=tuple(notes),
    )

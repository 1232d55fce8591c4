"""Statistical process control for audit adherence: p-charts with limits that vary with n.

A p-chart plots, per period, the proportion p_i = x_i / n_i of patients whose care passed a rule
(x_i passes out of n_i assessed patients: pass + fail). The centre line is the pooled proportion
p_bar = sum(x) / sum(n) over all periods; each period gets its own limits,
p_bar +/- k * sqrt(p_bar * (1 - p_bar) / n_i), clipped to [0, 1] (k = 3 by default).
Source: Provost LP, Murray SK. The Health Care Data Guide. Jossey-Bass 2011 (p-chart);
Benneyan JC, Lloyd RC, Plsek PE. Qual Saf Health Care 2003;12:458-464.

Special-cause signals (the Data Guide's Shewhart-chart rules), each flagged on the points
that make it up:

1. ``is_outside_limits``: a point above the UCL or below the LCL.
2. ``is_shift``: ``shift_run_length`` (8) or more successive points on the same side of the
   centre line. A point exactly on the centre line neither adds to nor breaks the run.
3. ``is_trend``: ``trend_run_length`` (6) or more successive points all rising or all falling.
   A point equal to the one before neither adds to nor breaks the run.
4. ``is_two_of_three``: 2 of 3 successive points beyond 2 sigma (the outer third) on the same
   side of the centre line. With varying n, "beyond 2 sigma" uses each point's own sigma.

Periods with n = 0 (no patient assessable) are kept as rows with null p and limits; they are
skipped by the run rules (they neither add to nor break a run).

Pure functions over polars; the thresholds come from study.toml [audit] (spc_*).

>>> counts = pl.DataFrame({"period": ["a", "b"], "n_pass": [50, 20], "n": [100, 25]})
>>> p_chart(counts).select("period", "p", "centre_line", "lcl", "ucl", "is_special_cause")
shape: (2, 6)
┌────────┬─────┬─────────────┬──────────┬──────────┬──────────────────┐
│ period ┆ p   ┆ centre_line ┆ lcl      ┆ ucl      ┆ is_special_cause │
│ ---    ┆ --- ┆ ---         ┆ ---      ┆ ---      ┆ ---              │
│ str    ┆ f64 ┆ f64         ┆ f64      ┆ f64      ┆ bool             │
╞════════╪═════╪═════════════╪══════════╪══════════╪══════════════════╡
│ a      ┆ 0.5 ┆ 0.56        ┆ 0.411084 ┆ 0.708916 ┆ false            │
│ b      ┆ 0.8 ┆ 0.56        ┆ 0.262168 ┆ 0.857832 ┆ false            │
└────────┴─────┴─────────────┴──────────┴──────────┴──────────────────┘
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import polars as pl

SPC_COLUMNS = [
    "n",
    "n_pass",
    "p",
    "centre_line",
    "sigma",
    "lcl",
    "ucl",
    "is_outside_limits",
    "is_shift",
    "is_trend",
    "is_two_of_three",
    "is_special_cause",
]


def _flag_shift(sides: Sequence[int], run_length: int) -> list[bool]:
    """Flag every point of a run of >= run_length same-side points (side 0 = on the line,
    -2 = no data: both skipped)."""
    flags = [False] * len(sides)
    run: list[int] = []  # indices of the current run
    run_side = 0
    for i, side in enumerate(sides):
        if side not in (-1, 1):
            continue
        if side != run_side:
            run, run_side = [], side
        run.append(i)
        if len(run) >= run_length:
            for j in run:
                flags[j] = True
    return flags


def _flag_trend(values: Sequence[float | None], run_length: int) -> list[bool]:
    """Flag every point of >= run_length successive points all rising or all falling; a value
    equal to the previous one is skipped, nulls are skipped."""
    flags = [False] * len(values)
    run: list[int] = []
    direction = 0  # +1 rising, -1 falling, 0 not yet known
    for i, v in enumerate(values):
        if v is None:
            continue
        if not run:
            run = [i]
            continue
        last = values[run[-1]]
        if v == last:
            continue
        step = 1 if v > last else -1
        if direction in (0, step):
            direction = step
            run.append(i)
        else:
            # The turning point starts the new run together with the point before it.
            run, direction = [run[-1], i], step
        if len(run) >= run_length:
            for j in run:
                flags[j] = True
    return flags


def _flag_two_of_three(z: Sequence[float | None], beyond_sigma: float = 2.0) -> list[bool]:
    """Flag the points of any window of 3 successive (non-null) points in which at least 2 lie
    beyond ``beyond_sigma`` on the same side."""
    idx = [i for i, v in enumerate(z) if v is not None]
    flags = [False] * len(z)
    for k in range(len(idx) - 2):
        window = idx[k : k + 3]
        for side in (1, -1):
            hits = [j for j in window if side * z[j] > beyond_sigma]  # type: ignore[operator]
            if len(hits) >= 2:
                for j in hits:
                    flags[j] = True
    return flags


def _one_chart(
    frame: pl.DataFrame, sigma_multiplier: float, shift_run_length: int, trend_run_length: int
) -> pl.DataFrame:
    n = frame["n"].to_list()
    x = frame["n_pass"].to_list()
    total_n = sum(n)
    p_bar = sum(x) / total_n if total_n > 0 else None
    p: list[float | None] = [xi / ni if ni > 0 else None for xi, ni in zip(x, n)]
    sigma: list[float | None] = []
    lcl: list[float | None] = []
    ucl: list[float | None] = []
    z: list[float | None] = []
    sides: list[int] = []
    for pi, ni in zip(p, n):
        if pi is None or p_bar is None:
            sigma.append(None), lcl.append(None), ucl.append(None), z.append(None)
            sides.append(-2)
            continue
        s = math.sqrt(p_bar * (1.0 - p_bar) / ni)
        sigma.append(s)
        lcl.append(max(0.0, p_bar - sigma_multiplier * s))
        ucl.append(min(1.0, p_bar + sigma_multiplier * s))
        z.append((pi - p_bar) / s if s > 0 else 0.0)
        sides.append(0 if pi == p_bar else (1 if pi > p_bar else -1))
    outside = [
        pi is not None and lo is not None and (pi < lo or pi > hi)
        for pi, lo, hi in zip(p, lcl, ucl)
    ]
    shift = _flag_shift(sides, shift_run_length)
    trend = _flag_trend(p, trend_run_length)
    two3 = _flag_two_of_three(z)
    special = [a or b or c or d for a, b, c, d in zip(outside, shift, trend, two3)]
    return frame.with_columns(
        pl.Series("p", p, dtype=pl.Float64),
        pl.lit(p_bar, dtype=pl.Float64).alias("centre_line"),
        pl.Series("sigma", sigma, dtype=pl.Float64),
        pl.Series("lcl", lcl, dtype=pl.Float64),
        pl.Series("ucl", ucl, dtype=pl.Float64),
        pl.Series("is_outside_limits", outside, dtype=pl.Boolean),
        pl.Series("is_shift", shift, dtype=pl.Boolean),
        pl.Series("is_trend", trend, dtype=pl.Boolean),
        pl.Series("is_two_of_three", two3, dtype=pl.Boolean),
        pl.Series("is_special_cause", special, dtype=pl.Boolean),
    )


def p_chart(
    counts: pl.DataFrame,
    *,
    by: str | Sequence[str] | None = None,
    period: str = "period",
    sigma_multiplier: float = 3.0,
    shift_run_length: int = 8,
    trend_run_length: int = 6,
) -> pl.DataFrame:
    """p-chart of ``counts`` (columns ``period``, ``n_pass``, ``n``; one row per period, and per
    ``by`` group if given: one chart per group, e.g. ``by="rule"``).

    Returns the rows sorted by group then period, with p (proportion, 0-1), centre_line, sigma,
    lcl, ucl (proportions) and the boolean signal flags of the module docstring. Periods sort as
    strings ("2008 - 2010" < "2011 - 2013"; "2021-03" < "2021-11").
    """
    if counts.is_empty():
        return counts.with_columns(
            *[pl.lit(None, dtype=pl.Float64).alias(c) for c in ("p", "centre_line", "sigma", "lcl", "ucl")],
            *[pl.lit(None, dtype=pl.Boolean).alias(c) for c in SPC_COLUMNS if c.startswith("is_")],
        )
    keys = [by] if isinstance(by, str) else list(by or [])
    counts = counts.with_columns(pl.col("n").cast(pl.Int64), pl.col("n_pass").cast(pl.Int64))
    bad = counts.filter((pl.col("n_pass") < 0) | (pl.col("n_pass") > pl.col("n")))
    if not bad.is_empty():
        raise ValueError(f"p_chart: n_pass must lie in [0, n]; first bad row: {bad.row(0, named=True)}")
    ordered = counts.sort([*keys, period])
    if not keys:
        return _one_chart(ordered, sigma_multiplier, shift_run_length, trend_run_length)
    parts = [
        _one_chart(part, sigma_multiplier, shift_run_length, trend_run_length)
        for part in ordered.partition_by(keys, maintain_order=True)
    ]
    return pl.concat(parts)

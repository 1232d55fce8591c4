"""VASST side by side: the trial's published mortality next to this cohort's, same strata.

The cohort side is the first landmark (``[models].landmark_hours[0]``, 6 h by default - VASST
enrolled patients after >= 6 h of NE >= 5 mcg/min): patients alive at the landmark, "VP" = VP
started by then, "NE" = not (yet), stratum by the trial-question stratum rule. Mortality from
index_time at 28/90 days among patients whose outcome is known, Wilson CIs. Crude figures.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import polars as pl

from pipeline.models.descriptive import wilson_ci
from pipeline.models.settings import ModelSettings
from pipeline.models.trial import landmark_frame

REFERENCE_PATH = Path(__file__).with_name("vasst_reference.toml")

ESTIMAND = ("Crude mortality at 28 and 90 days from NE start, by VASST stratum, of patients alive "
            "at the first landmark who had or had not started VP by then, printed beside VASST's "
            "randomised arms: a description, not an estimate of VASST's effect.")

CAVEATS = (
    "VASST was a randomised, blinded trial; these cohort figures are observational and crude "
    "(confounding by indication: clinicians add VP to sicker patients).",
    "Different population: VASST was multicentre with its own exclusion criteria (e.g. unstable "
    "coronary syndromes); this cohort is every adult with sepsis codes on NE in one centre.",
    "Different exposure: VASST added blinded study drug (VP or NE) to open-label vasopressors by "
    "protocol; here VP is whatever dose was charted, started at the clinician's discretion.",
    "Strata here come from charted NE rates (stratum rule in RESULTS_SCHEMA.md), VASST used the "
    "NE dose at randomisation; time zero here is the landmark, in VASST randomisation.",
)


def load_reference(path: Path = REFERENCE_PATH) -> dict:
    with open(path, "rb") as fh:
        return tomllib.load(fh)


def side_by_side(
    cohort: pl.DataFrame, ne_timeline: pl.DataFrame, settings: ModelSettings,
) -> tuple[pl.DataFrame, dict]:
    """Table: stratum, horizon_days, source ("VASST" | "cohort"), arm ("vp" | "ne"), n, deaths,
    mortality, ci_low, ci_high. Plus a dict with the citation, the landmark and the caveats."""
    ref = load_reference()
    rows = []
    for f in ref["figure"]:
        for arm in ("vp", "ne"):
            rows.append({"stratum": f["stratum"], "horizon_days": float(f["horizon_days"]),
                         "source": "VASST", "arm": arm, "n": None, "deaths": None,
                         "mortality": float(f[f"mortality_{arm}"]), "ci_low": None, "ci_high": None})
    lm = settings.landmark_hours[0]
    for f in ref["figure"]:
        h = float(f["horizon_days"])
        frame = landmark_frame(cohort, ne_timeline, settings, lm, h)
        if f["stratum"] != "all":
            frame = frame.filter(pl.col("stratum") == f["stratum"])
        else:  # VASST's entry criterion: NE >= 5 mcg/min
            frame = frame.filter(pl.col("stratum") != "below_entry")
        # Outcome known at the horizon: died by then, or followed past it.
        frame = frame.filter((pl.col("event") == 1) | (pl.col("time_days") >= h - lm / 24.0 - 1e-9))
        for arm, vp in (("vp", 1), ("ne", 0)):
            g = frame.filter(pl.col("vp") == vp)
            n, d = g.height, int(g["event"].sum()) if g.height else 0
            lo, hi = wilson_ci(d, n, settings.confidence_level)
            rows.append({"stratum": f["stratum"], "horizon_days": h, "source": "cohort", "arm": arm,
                         "n": n, "deaths": d, "mortality": d / n if n else None, "ci_low": lo, "ci_high": hi})
    table = pl.DataFrame(rows, schema={"stratum": pl.String, "horizon_days": pl.Float64, "source": pl.String,
                                       "arm": pl.String, "n": pl.Int64, "deaths": pl.Int64,
                                       "mortality": pl.Float64, "ci_low": pl.Float64, "ci_high": pl.Float64})
    meta = {"citation": ref["citation"], "n_randomised": ref["n_randomised"],
            "cohort_definition": f"alive at {lm:g} h after NE start; VP = started by then; "
                                 f"stratum rule {settings.trial_stratum_rule}",
            "caveats": list(CAVEATS)}
    return table, meta

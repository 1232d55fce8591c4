"""``analyze``: every model of the study on cohort.parquet -> results.json + parquet tables.

Entry point of ``vasoflow analyze`` and of the ``analyze`` step of ``vasoflow run``. Output
layout and meaning: pipeline/models/RESULTS_SCHEMA.md (``schema_version`` in results.json).
Deterministic: the same input and config give a byte-identical results.json (no timestamps or
timings inside; the AJ jitter is seeded).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import polars as pl

from pipeline import __version__
from pipeline.atomic import atomic_write
from pipeline.config import StudyConfig
from pipeline.models import competing, cox, descriptive, panel, trial, vasst
from pipeline.models.data import prepare, read_cohort
from pipeline.models.evalues import evalue
from pipeline.models.results import ModelResult
from pipeline.models.settings import ModelSettings
from pipeline.parallel import one_blas_thread, run_in_threads

SCHEMA_VERSION = "2.0.0"
RESULTS_FILE = "results.json"


@dataclass(frozen=True)
class AnalysisResult:
    """What ``analyze`` wrote and how long each step took (seconds)."""

    out_dir: Path
    results_path: Path
    tables: Mapping[str, Path]
    n_patients: int
    n_models: int
    n_not_estimable: int
    headline: tuple[str, ...]
    timings_seconds: Mapping[str, float] = field(default_factory=dict)

    def describe(self) -> str:
        lines = [f"analyze: {self.n_patients} patients, {self.n_models} models "
                 f"({self.n_not_estimable} not estimable) -> {self.results_path}"]
        lines += [f"  {h}" for h in self.headline]
        lines.append("  tables: " + ", ".join(sorted(self.tables)))
        lines.append("  time: " + ", ".join(f"{k} {v:.1f}s" for k, v in self.timings_seconds.items()))
        return "\n".join(lines)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _model_rows(models: list[ModelResult]) -> tuple[pl.DataFrame, pl.DataFrame]:
    est = pl.DataFrame(
        [{"name": m.name, "label": m.label, "measure": m.measure, "contrast": m.contrast,
          "analysis": str(m.details.get("analysis", m.name.split(".")[0])),
          "stratum": str(m.details.get("stratum", "all")),
          "horizon_days": float(m.details["horizon_days"]) if "horizon_days" in m.details else None,
          "adjusted": bool(m.details.get("adjusted", bool(m.details.get("covariates_used")))),
          "role": m.role, "estimand": m.estimand,
          "estimable": m.estimable, "reason": m.reason, "estimate": m.estimate,
          "ci_low": m.ci_low, "ci_high": m.ci_high, "p": m.p, "n": m.n, "events": m.events}
         for m in models],
        schema={"name": pl.String, "label": pl.String, "measure": pl.String, "contrast": pl.String,
                "analysis": pl.String, "stratum": pl.String, "horizon_days": pl.Float64,
                "adjusted": pl.Boolean, "role": pl.String, "estimand": pl.String, "estimable": pl.Boolean, "reason": pl.String,
                "estimate": pl.Float64, "ci_low": pl.Float64, "ci_high": pl.Float64, "p": pl.Float64,
                "n": pl.Int64, "events": pl.Int64},
    )
    coefs = [m.summary.with_columns(name=pl.lit(m.name)).select("name", *m.summary.columns)
             for m in models if m.estimable and m.summary.height]
    coef = pl.concat(coefs) if coefs else pl.DataFrame(
        schema={"name": pl.String, "term": pl.String, "estimate": pl.Float64, "ci_low": pl.Float64,
                "ci_high": pl.Float64, "coef": pl.Float64, "se": pl.Float64, "p": pl.Float64})
    return est, coef


def _with_evalue(m: ModelResult, settings: ModelSettings) -> ModelResult:
    """E-value of an adjusted secondary estimate (never of a descriptive one: issue 12)."""
    if not m.estimable or m.n == 0 or m.role == "descriptive":
        return m
    return m.with_details(**evalue(m.estimate, m.ci_low, m.ci_high, m.measure, m.events / m.n,
                                   settings.evalue_rare_outcome_below))


# What each Kaplan-Meier grouping shows and why it is not an effect (issue 12 items 1 and 5).
KM_TEXT = {
    "exposure": (
        "Survival from NE start of patients who ever received VP after NE, never received it, or "
        "received it before NE.",
        "Biased (immortal time): a patient counts as 'VP' only if alive when VP started, so the "
        "VP curve is credited with survival before VP; sicker patients also get VP. Not an effect "
        "of VP; see the target-trial emulation."),
    "vasst_stratum": (
        "Survival from VP start of VP patients by VASST stratum (NE dose at VP start).",
        "Prognosis: both groups received VP and differ by illness severity; not an effect of VP."),
    "timing_class": (
        "Survival from VP start of VP patients by the NE dose at which VP was added.",
        "Confounded by indication: the timing class is the NE dose, which measures how sick the "
        "patient was; not an effect of VP timing (the emulation estimates that)."),
}


def _decision_window_hours(config: StudyConfig) -> float:
    """[tte].decision_window_hours: the hourly panel covers it (contract B)."""
    return float(config.get("tte.decision_window_hours"))


def analyze(cohort_path: Path, out_dir: Path, config: StudyConfig) -> AnalysisResult:
    """Run every model on ``cohort_path`` (+ ne_timeline.parquet beside it); write results.json
    and the parquet tables named in RESULTS_SCHEMA.md into ``out_dir``."""
    timings: dict[str, float] = {}
    t0 = time.perf_counter()

    def tick(step: str) -> None:
        nonlocal t0
        now = time.perf_counter()
        timings[step] = now - t0
        t0 = now

    settings = ModelSettings.from_config(config)
    cohort_path, out_dir = Path(cohort_path), Path(out_dir)
    raw, ne_timeline = read_cohort(cohort_path)
    cohort = prepare(raw)
    panel_rows = panel.read_panel(cohort_path)
    tick("read")

    # The model groups are independent: fitted side by side on the cores, one BLAS thread
    # each (pipeline.parallel); results are assembled in a fixed order whatever the workers.
    # Only the RRT group's Aalen-Johansen seeds numpy's global generator (lifelines jitters tied
    # times); no other group draws from it, so concurrent groups cannot change its draws.
    window = _decision_window_hours(config)

    def descriptive_group():
        mortality = descriptive.mortality_table(cohort, settings.horizons_days, settings.confidence_level)
        vp = cohort.filter(pl.col("exposure") == "vp_added")
        km = [descriptive.kaplan_meier(cohort, "exposure", settings.at_risk_days, settings.long_term_days,
                                       settings.min_patients_per_group, settings.confidence_level,
                                       estimand=KM_TEXT["exposure"][0], caption=KM_TEXT["exposure"][1])]
        for grouping in ("vasst_stratum", "timing_class"):
            km.append(descriptive.kaplan_meier(vp, grouping, settings.at_risk_days, settings.long_term_days,
                                               settings.min_patients_per_group, settings.confidence_level,
                                               time_zero_col="vp_start_time", estimand=KM_TEXT[grouping][0],
                                               caption=KM_TEXT[grouping][1]))
        vasst_table, vasst_meta = vasst.side_by_side(cohort, ne_timeline, settings)
        return mortality, km, descriptive.median_followup_days(cohort), vasst_table, vasst_meta

    def cox_group():
        # Prognosis among VP patients (descriptive) and the NAIVE ever-VP models (descriptive).
        prognosis = {(h, adj): cox.prognosis_among_vp(cohort, settings, h, adj)
                     for h in settings.horizons_days for adj in (False, True)}
        naive = {h: [m for adj in (False, True) for m in trial.naive_models(cohort, settings, h, adj)]
                 for h in settings.horizons_days}
        return prognosis, naive

    tasks = {
        "time_updated": lambda: panel.time_updated_models(panel_rows, cohort, settings, window),
        "cox": cox_group,
        **{f"sequential_{h:g}": (lambda h=h: panel.sequential_trial_models(panel_rows, cohort, settings, h))
           for h in settings.horizons_days},
        "rrt": lambda: competing.rrt_analysis(cohort, settings),
        "descriptive": descriptive_group,
    }

    def timed(name, task):
        def run():
            start = time.perf_counter()
            out = task()
            timings[f"fit_{name}"] = time.perf_counter() - start
            return out
        return run

    with one_blas_thread():
        done = dict(zip(tasks, run_in_threads([timed(n, t) for n, t in tasks.items()])))
    tick("models")
    mortality, km, followup, vasst_table, vasst_meta = done["descriptive"]
    prognosis, naive = done["cox"]
    rrt = done["rrt"]
    # Trial question: secondary analyses, in the order they were listed before issue 16.
    trial_models: list[ModelResult] = list(done["time_updated"])
    for h in settings.horizons_days:
        trial_models += done[f"sequential_{h:g}"]
        trial_models += naive[h]

    # E-values on adjusted secondary estimates (not on the interaction ratio) ------------
    trial_models = [_with_evalue(m, settings)
                    if m.role == "secondary" and m.details.get("adjusted")
                    and m.details.get("analysis") != "sequential_interaction" else m
                    for m in trial_models]

    all_models = [*prognosis.values(), *trial_models, *rrt.models]
    estimates, coefficients = _model_rows(all_models)
    forest_names = [m.name for m in trial_models]
    forest = estimates.filter(pl.col("name").is_in(forest_names))

    long_h = settings.long_term_days
    short_h = settings.short_term_days
    results: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "generator": f"vasoflow {__version__} pipeline.models.analyze",
        "input": {
            "cohort_file": cohort_path.name,
            "cohort_sha256": _sha256(cohort_path),
            "n_patients": cohort.height,
            "exposure_counts": dict(sorted(
                cohort.group_by("exposure").len().iter_rows())),
        },
        "config_fingerprint": config.fingerprint(),
        "settings": {k: list(v) if isinstance(v, tuple) else v for k, v in sorted(settings.__dict__.items())},
        "descriptive": {
            "mortality": mortality.to_dicts(),
            "kaplan_meier": {k.grouping: k.to_dict() for k in km},
            "median_followup": followup,
        },
        "vp_prognosis": {
            "unadjusted": prognosis[(long_h, False)].to_dict(),
            "adjusted": prognosis[(long_h, True)].to_dict(),
            "short_term": {"unadjusted": prognosis[(short_h, False)].to_dict(),
                           "adjusted": prognosis[(short_h, True)].to_dict()},
        },
        "trial": {
            "stratum_rule": settings.trial_stratum_rule,
            "hourly_panel": panel.PANEL_FILE if panel_rows is not None else None,
            "models": {m.name: m.to_dict() for m in trial_models},
        },
        "rrt": rrt.to_dict(),
        "vasst_comparison": {**vasst_meta, "rows": vasst_table.to_dicts(), "role": "descriptive",
                             "estimand": vasst.ESTIMAND},
        "not_estimable": sorted(
            [{"name": m.name, "reason": m.reason} for m in all_models if not m.estimable],
            key=lambda d: d["name"]),
    }

    tables: dict[str, pl.DataFrame] = {
        "mortality": mortality,
        "km_curves": pl.concat([k.curves for k in km]),
        "km_at_risk": pl.concat([k.at_risk for k in km]),
        "model_estimates": estimates,
        "model_coefficients": coefficients,
        "forest": forest,
        "cif_curves": rrt.cif_curves,
        "cif_at_risk": rrt.cif_at_times,
        "vasst_comparison": vasst_table,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name, frame in tables.items():
        path = out_dir / f"{name}.parquet"
        atomic_write(path, lambda p, f=frame: f.write_parquet(p))
        paths[name] = path
    results["tables"] = {name: p.name for name, p in sorted(paths.items())}
    text = json.dumps(results, indent=2, sort_keys=True, allow_nan=False) + "\n"
    results_path = out_dir / RESULTS_FILE
    atomic_write(results_path, lambda p: p.write_text(text))
    tick("write")

    headline = tuple(m.describe() for m in (
        prognosis[(long_h, True)],
        *[m for m in trial_models if m.name in (f"trial.sequential.all.{int(long_h)}d.adjusted",
                                                 f"trial.naive.all.{int(long_h)}d.adjusted")],
    ))
    return AnalysisResult(
        out_dir=out_dir, results_path=results_path, tables=MappingProxyType(paths),
        n_patients=cohort.height, n_models=len(all_models),
        n_not_estimable=sum(not m.estimable for m in all_models), headline=headline,
        timings_seconds=MappingProxyType(timings),
    )

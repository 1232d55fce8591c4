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
from pipeline.models import competing, cox, descriptive, propensity, trial, vasst
from pipeline.models.data import prepare, read_cohort
from pipeline.models.evalues import evalue
from pipeline.models.results import ModelResult
from pipeline.models.settings import ModelSettings

SCHEMA_VERSION = "1.0.0"
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
          "estimable": m.estimable, "reason": m.reason, "estimate": m.estimate,
          "ci_low": m.ci_low, "ci_high": m.ci_high, "p": m.p, "n": m.n, "events": m.events}
         for m in models],
        schema={"name": pl.String, "label": pl.String, "measure": pl.String, "contrast": pl.String,
                "analysis": pl.String, "stratum": pl.String, "horizon_days": pl.Float64,
                "adjusted": pl.Boolean, "estimable": pl.Boolean, "reason": pl.String,
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
    if not m.estimable or m.n == 0:
        return m
    return m.with_details(**evalue(m.estimate, m.ci_low, m.ci_high, m.measure, m.events / m.n,
                                   settings.evalue_rare_outcome_below))


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
    tick("read")

    # Descriptive ------------------------------------------------------------------------
    mortality = descriptive.mortality_table(cohort, settings.horizons_days, settings.confidence_level)
    vp = cohort.filter(pl.col("exposure") == "vp_added")
    km = [descriptive.kaplan_meier(cohort, "exposure", settings.at_risk_days, settings.long_term_days,
                                   settings.min_patients_per_group, settings.confidence_level)]
    for grouping in ("vasst_stratum", "timing_class"):
        km.append(descriptive.kaplan_meier(vp, grouping, settings.at_risk_days, settings.long_term_days,
                                           settings.min_patients_per_group, settings.confidence_level,
                                           time_zero_col="vp_start_time"))
    followup = descriptive.median_followup_days(cohort)
    tick("descriptive")

    # VASST strata echo ------------------------------------------------------------------
    vasst_models = {(h, adj): cox.vasst_strata_hr(cohort, settings, h, adj)
                    for h in settings.horizons_days for adj in (False, True)}
    tick("vasst_hr")

    # Trial question ---------------------------------------------------------------------
    trial_models: list[ModelResult] = []
    for h in settings.horizons_days:
        long = trial.long_format(cohort, ne_timeline, settings, h, settings.baseline_covariates)
        for adj in (False, True):
            trial_models += trial.time_varying_models(long, settings, h, adj)
            trial_models += trial.naive_models(cohort, settings, h, adj)
            for lm in settings.landmark_hours:
                trial_models += trial.landmark_models(cohort, ne_timeline, settings, lm, h, adj)
    tick("trial")

    ps = propensity.delayed_vp_analysis(cohort, settings)
    tick("propensity")
    rrt = competing.rrt_analysis(cohort, settings)
    tick("rrt")
    vasst_table, vasst_meta = vasst.side_by_side(cohort, ne_timeline, settings)
    tick("vasst_comparison")

    # E-values on the main (adjusted / weighted) estimates ------------------------------
    def main_estimate(m: ModelResult) -> bool:
        return bool(m.details.get("adjusted")) or m.name.startswith(("delayed_vp.weighted", "rrt.fine_gray"))

    vasst_models = {k: _with_evalue(m, settings) if k[1] else m for k, m in vasst_models.items()}
    trial_models = [_with_evalue(m, settings) if main_estimate(m) and not m.name.startswith("trial.naive")
                    else m for m in trial_models]
    ps_models = tuple(_with_evalue(m, settings) for m in ps.models)
    ps = propensity.PropensityResult(**{**ps.__dict__, "models": ps_models})
    rrt_models = tuple(_with_evalue(m, settings) if main_estimate(m) else m for m in rrt.models)
    rrt = competing.RrtResult(**{**rrt.__dict__, "models": rrt_models})

    all_models = [*vasst_models.values(), *trial_models, *ps.models, *ps.unweighted, *rrt.models]
    estimates, coefficients = _model_rows(all_models)
    forest_names = [m.name for m in trial_models] + [m.name for m in ps.models]
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
        "vasst_hr": {
            "unadjusted": vasst_models[(long_h, False)].to_dict(),
            "adjusted": vasst_models[(long_h, True)].to_dict(),
            "short_term": {"unadjusted": vasst_models[(short_h, False)].to_dict(),
                           "adjusted": vasst_models[(short_h, True)].to_dict()},
        },
        "trial": {
            "stratum_rule": settings.trial_stratum_rule,
            "models": {m.name: m.to_dict() for m in trial_models},
        },
        "delayed_vp": ps.to_dict(),
        "rrt": rrt.to_dict(),
        "vasst_comparison": {**vasst_meta, "rows": vasst_table.to_dicts()},
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
        "ps_balance": ps.balance,
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
        vasst_models[(long_h, True)],
        *[m for m in trial_models if m.name in (f"trial.time_varying.all.{int(long_h)}d.adjusted",
                                                 f"trial.naive.all.{int(long_h)}d.adjusted")],
        *ps.models[-1:],
    ))
    return AnalysisResult(
        out_dir=out_dir, results_path=results_path, tables=MappingProxyType(paths),
        n_patients=cohort.height, n_models=len(all_models),
        n_not_estimable=sum(not m.estimable for m in all_models), headline=headline,
        timings_seconds=MappingProxyType(timings),
    )

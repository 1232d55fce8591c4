"""What a run's Prefect artifacts show: attrition, key estimates, data quality, audit totals.

Plain functions over a finished run folder returning rows (lists of dicts) and markdown, so the
flows only hand them to Prefect. The counts are NOT small-cell suppressed: they are for the
study team's own orchestration UI, like results.json; the shareable output is report.html.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl

ATTRITION_COLUMNS = ("step", "description", "n_stays", "n_patients", "n_excluded")
AUDIT_COUNT_COLUMNS = ("n_pass", "n_fail", "n_not_applicable", "n_not_assessable")


def attrition_rows(run_dir: Path) -> list[dict[str, Any]]:
    """One row per cohort filter (attrition.parquet), or [] when the run has none."""
    path = Path(run_dir) / "attrition.parquet"
    if not path.exists():
        return []
    frame = pl.read_parquet(path)
    return frame.select([c for c in ATTRITION_COLUMNS if c in frame.columns]).sort("step").to_dicts()


def audit_rows(run_dir: Path) -> list[dict[str, Any]]:
    """One row per audit rule: counts over care units and periods, adherence = pass / (pass +
    fail) as a proportion 0-1 (None when no stay was assessable). [] without audit outputs."""
    path = Path(run_dir) / "audit_summary.parquet"
    if not path.exists():
        return []
    # Rules in the order the audit wrote them (its report order), without importing the audit.
    totals = pl.read_parquet(path).group_by("rule", maintain_order=True).agg(pl.col(AUDIT_COUNT_COLUMNS).sum())
    assessed = pl.col("n_pass") + pl.col("n_fail")
    return totals.with_columns(
        pl.when(assessed > 0).then((pl.col("n_pass") / assessed).round(3)).alias("adherence")
    ).to_dicts()


def key_estimates(run_dir: Path) -> list[dict[str, Any]]:
    """The headline ratios of results.json: prognosis among VP patients (more vs less severe,
    unadjusted and adjusted) and the trial question for all patients (naive beside the
    time-updated model and the sequential trials). [] when the run has no results.json (e.g. an audit run)."""
    path = Path(run_dir) / "results.json"
    if not path.exists():
        return []
    results = json.loads(path.read_text())
    picked: list[dict[str, Any]] = []
    vasst = results.get("vp_prognosis", {})  # results.json 2.x (was vasst_hr)
    for name in ("unadjusted", "adjusted"):
        if isinstance(vasst.get(name), dict):
            picked.append(vasst[name])
    trial = results.get("trial", {}).get("models", {})
    for name in sorted(trial):
        if name.startswith(("trial.naive.all.", "trial.sequential.all.", "trial.time_updated.all.")):
            picked.append(trial[name])
    rows = []
    for m in picked:
        estimate = m.get("hr", m.get("or"))
        rows.append({
            "model": m.get("label") or m.get("name"),
            "estimate": None if estimate is None else round(float(estimate), 3),
            "ci_low": None if m.get("ci_low") is None else round(float(m["ci_low"]), 3),
            "ci_high": None if m.get("ci_high") is None else round(float(m["ci_high"]), 3),
            "n": m.get("n"),
            "events": m.get("events"),
            "note": "" if m.get("estimable", True) else f"not estimable: {m.get('reason')}",
        })
    return rows


def _md_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "_none_"
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = ["" if r[c] is None else str(r[c]).replace("|", "\\|") for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary_markdown(run_dir: Path, latest: Path, steps: dict[str, bool], quality_tables: list[dict],
                     quality_rules: list[dict], warnings: list[str]) -> str:
    """The per-run markdown artifact. ``steps``: step -> was it reused from the store."""
    run_dir = Path(run_dir)
    report = run_dir / "report.html"
    lines = [
        f"# vasoflow run `{run_dir.name}`",
        "",
        f"Run folder: `{run_dir}`  ",
        f"Pointer: `{latest}` (moved to this run on success)  ",
        f"Report: [{report.name}]({report.as_uri()})" if report.exists() else "Report: not produced",
        "",
        "Counts here are not small-cell suppressed (study team only); share `report.html`.",
        "",
        "## Steps",
        _md_table([{"step": s, "outcome": "reused (inputs unchanged)" if c else "ran"} for s, c in steps.items()]),
        "",
        "## Cohort attrition",
        _md_table(attrition_rows(run_dir)),
        "",
        "## Key estimates (hazard ratios, 95% CI)",
        _md_table(key_estimates(run_dir)),
        "",
        "## Data quality (ingest ledger)",
        _md_table(quality_tables),
        "",
        "Quarantined rows by rule:",
        "",
        _md_table(quality_rules),
    ]
    if warnings:
        lines += ["", "Warnings:", ""] + [f"* {w}" for w in warnings]
    audit = audit_rows(run_dir)
    if audit:
        lines += ["", "## QI audit (adherence = pass / (pass + fail))", _md_table(audit)]
    return "\n".join(lines) + "\n"

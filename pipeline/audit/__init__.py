"""QI audit of vasopressor practice: per stay and rule, pass / fail / not applicable / not
assessable, counted per rule, care unit and period, with p-charts of adherence.

The rules are SQL (``sql/intermediate/int_audit_*.sql``, ``sql/marts/mart_audit_*.sql``),
evaluated on the index episode of each cohort stay; their thresholds and citations are in
study.toml ``[audit]`` and their item lists in concepts.toml ``[audit_items]``.
``run_audit`` expects a database in which the cohort has been built (``pipeline.cohort``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl

from pipeline.duckdb_settings import connect as connect_duckdb
from pipeline.atomic import write_parquet_atomic
from pipeline.audit.spc import p_chart
from pipeline.concepts import load_concepts, register_concept_tables
from pipeline.config import StudyConfig
from pipeline.errors import ConfigError, VasoflowError
from pipeline.sqlbuild import build_relations
from schemas.audit_rules import AUDIT_RULE_IDS

# Fixed rule ids (vasoflow issue 5), in report order: defined once, with the output model.
AUDIT_RULES: tuple[str, ...] = tuple(AUDIT_RULE_IDS)
AUDIT_RESULTS: tuple[str, ...] = ("pass", "fail", "not_applicable", "not_assessable")

# The audit's relations, in build order (its two staging relations are listed with the other
# staging files in sql/build_order.toml, the rest last).
AUDIT_RELATIONS: tuple[str, ...] = (
    "stg_procedureevents_arterial_line",
    "stg_inputevents_crystalloid",
    "int_audit_episode_segments",
    "int_audit_high_dose_runs",
    *(f"mart_audit_{rule}" for rule in AUDIT_RULES),
    "mart_audit",
    "mart_audit_summary",
)

PERIODS = ("anchor_year_group", "calendar_month", "calendar_quarter")


def spc_note(config: StudyConfig, spc: pl.DataFrame) -> str:
    """How to read the p-charts, in words: the period chosen, the minimum points per chart
    (study.toml [audit] spc_min_points) and, for MIMIC's shifted dates, why the chart is not a
    time series. Printed by the audit and shown under the charts in the report."""
    period = str(config.get("study.period"))
    min_points = int(config.get("audit.spc_min_points"))
    shown = spc.filter(pl.col("p").is_not_null()).group_by("rule").len()
    most = int(shown["len"].max()) if shown.height else 0
    if period == "anchor_year_group":
        return (
            f"Periods are anchor_year_group, the 3-year groups of MIMIC-IV ({most} on the fullest chart). MIMIC-IV "
            "shifts each patient's dates by a different random offset (into 2100-2200), so calendar months "
            "do not exist in this data and stays in one group are not neighbours in time: the points compare "
            "year groups, they are not a time series, and the run rules (8 points on one side, 6 rising or "
            f"falling) cannot fire with so few points (minimum for a chart: {min_points}). On a hospital's own "
            "unshifted data set study.period = \"calendar_month\" or \"calendar_quarter\"."
        )
    unit = "month" if period == "calendar_month" else "quarter"
    note = (f"One point per calendar {unit} (study.period = \"{period}\"); minimum {min_points} points per "
            f"chart (study.toml [audit] spc_min_points).")
    if most < min_points:
        note += (f" The fullest chart has {most}: its limits are trial limits and the run rules may not fire; "
                 "read it as a first look, not a verdict.")
    return note

def spc_from_summary(summary: pl.DataFrame, config: StudyConfig) -> pl.DataFrame:
    """p-chart per rule over periods (care units pooled): n = pass + fail, n_pass = pass.

    Columns: rule, period, n, n_pass, p, centre_line, sigma, lcl, ucl (proportions 0-1) and the
    signal flags of ``pipeline.audit.spc``.
    """
    counts = (
        summary.filter(pl.col("period").is_not_null())
        .group_by("rule", "period")
        .agg(pl.col("n_pass").sum(), (pl.col("n_pass") + pl.col("n_fail")).sum().alias("n"))
    )
    chart = p_chart(
        counts.select("rule", "period", "n", "n_pass"),
        by="rule",
        sigma_multiplier=float(config.get("audit.spc_sigma_multiplier")),
        shift_run_length=int(config.get("audit.spc_shift_run_length")),
        trend_run_length=int(config.get("audit.spc_trend_run_length")),
    )
    order = {rule: i for i, rule in enumerate(AUDIT_RULES)}
    return chart.with_columns(pl.col("rule").replace_strict(order, default=len(order)).alias("_o")).sort(
        "_o", "period"
    ).drop("_o")


@dataclass(frozen=True)
class AuditResult:
    """Paths of the audit outputs and the per-rule summary."""

    audit_path: Path
    summary_path: Path
    spc_path: Path
    n_stays: int
    summary: pl.DataFrame = field(repr=False)
    spc: pl.DataFrame = field(repr=False)
    spc_note: str = ""  # how to read the p-charts (spc_note)

    def rule_totals(self) -> pl.DataFrame:
        """One row per rule: counts over all care units and periods, adherence (0-1) and the
        number of periods with a special-cause signal."""
        totals = self.summary.group_by("rule").agg(
            pl.col("n_pass", "n_fail", "n_not_applicable", "n_not_assessable").sum()
        )
        signals = self.spc.group_by("rule").agg(
            pl.col("is_special_cause").fill_null(False).sum().alias("n_signal_periods")
        )
        order = pl.DataFrame({"rule": list(AUDIT_RULES), "_o": list(range(len(AUDIT_RULES)))})
        return (
            order.join(totals, on="rule", how="left")
            .join(signals, on="rule", how="left")
            .with_columns(
                pl.col("n_pass", "n_fail", "n_not_applicable", "n_not_assessable", "n_signal_periods").fill_null(0),
            )
            .with_columns(
                pl.when(pl.col("n_pass") + pl.col("n_fail") > 0)
                .then(pl.col("n_pass") / (pl.col("n_pass") + pl.col("n_fail")))
                .alias("adherence")
            )
            .sort("_o")
            .drop("_o")
        )

    def describe(self) -> str:
        lines = [f"audit: {self.n_stays} stays x {len(AUDIT_RULES)} rules -> {self.audit_path}"]
        lines.append(f"{'rule':<20} {'pass':>6} {'fail':>6} {'n/a':>6} {'n/ass':>6} {'adher.':>7} {'signals':>7}")
        for r in self.rule_totals().iter_rows(named=True):
            adherence = "-" if r["adherence"] is None else f"{r['adherence']:.2f}"
            lines.append(
                f"{r['rule']:<20} {r['n_pass']:>6} {r['n_fail']:>6} {r['n_not_applicable']:>6} "
                f"{r['n_not_assessable']:>6} {adherence:>7} {r['n_signal_periods']:>7}"
            )
        lines.append(f"summary per rule, care unit and period: {self.summary_path}")
        lines.append(f"p-charts per rule and period: {self.spc_path}")
        if self.spc_note:
            lines.append(f"p-charts: {self.spc_note}")
        return "\n".join(lines)


def _require_cohort(con, db_path: Path) -> None:
    found = con.execute(
        "select count(*) from information_schema.tables where table_name = 'mart_cohort'"
    ).fetchone()[0]
    if not found:
        raise VasoflowError(f"{db_path}: no mart_cohort table; run the cohort step first (vasoflow cohort)")


def run_audit(db_path: Path, out_dir: Path, config: StudyConfig,
              attach: Mapping[str, Path] | None = None) -> AuditResult:
    """Evaluate the audit rules on the cohort in ``db_path`` and write, into ``out_dir``:
    ``audit.parquet`` (stay_id, rule, result, detail), ``audit_summary.parquet`` (rule,
    care_unit, period, n_pass, n_fail, n_not_applicable, n_not_assessable, adherence 0-1) and
    ``audit_spc.parquet`` (per rule and period: n, n_pass, p, centre_line, sigma, lcl, ucl,
    special-cause flags).

    The audit relations are (re)built in one transaction: a failure leaves the database as it
    was. The concept tables and ``study_param`` are re-registered from ``config`` first, so a
    changed audit threshold takes effect without re-ingesting.

    ``attach``: alias -> database read in place, read-only (the ingest's and the cohort's);
    ``db_path`` is then a scratch database for the audit's own relations only.
    """
    period = config.get("study.period")
    if period not in PERIODS:
        raise ConfigError(f"{config.source}: study.period must be one of {', '.join(PERIODS)}, got {period!r}")
    db_path, out_dir = Path(db_path), Path(out_dir)
    for path in (*(attach or {}).values(), *(() if attach else (db_path,))):
        if not Path(path).is_file():
            raise VasoflowError(f"{path}: database not found; run ingest and cohort first")
    out_dir.mkdir(parents=True, exist_ok=True)
    concepts = load_concepts()
    con = connect_duckdb(db_path, attach=attach)  # memory limit, spill folder
    try:
        _require_cohort(con, db_path)
        con.execute("BEGIN TRANSACTION")
        try:
            register_concept_tables(con, concepts, config)
            build_relations(con, list(AUDIT_RELATIONS))
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        audit = con.execute("select stay_id, rule, result, detail from mart_audit order by stay_id, rule").pl()
        summary = con.execute("select * from mart_audit_summary order by rule, care_unit, period").pl()
        n_stays = con.execute("select count(*) from mart_cohort").fetchone()[0]
    finally:
        con.close()
    _check_audit(audit, n_stays)
    spc = spc_from_summary(summary, config)
    paths = {name: out_dir / f"{name}.parquet" for name in ("audit", "audit_summary", "audit_spc")}
    write_parquet_atomic(audit, paths["audit"])
    write_parquet_atomic(summary, paths["audit_summary"])
    write_parquet_atomic(spc, paths["audit_spc"])
    return AuditResult(
        audit_path=paths["audit"],
        summary_path=paths["audit_summary"],
        spc_path=paths["audit_spc"],
        n_stays=int(n_stays),
        summary=summary,
        spc=spc,
        spc_note=spc_note(config, spc),
    )


def _check_audit(audit: pl.DataFrame, n_stays: int) -> None:
    """The audit must have one row per stay and rule with a known result (a bug otherwise)."""
    from schemas.audit import AuditSchema

    AuditSchema.validate(audit, lazy=True)
    if audit.height != n_stays * len(AUDIT_RULES) or audit.select("stay_id", "rule").is_duplicated().any():
        raise VasoflowError(
            f"mart_audit: expected one row per stay and rule ({n_stays} x {len(AUDIT_RULES)}), got {audit.height}"
        )


def rule_citations(config: StudyConfig) -> Mapping[str, str]:
    """Rule id -> citation text from study.toml [audit] (for the report)."""
    keys = {
        "vp_max_dose": "vp_max_dose_citation",
        "vp_monotherapy": "vp_monotherapy_citation",
        "vp_delayed": None,
        "vp_missed": "vp_missed_citation",
        "wean_order": "wean_order_citation",
        "dopamine_use": "dopamine_citation",
        "phenylephrine_first": "phenylephrine_first_citation",
        "hydrocortisone": "hydrocortisone_citation",
        "arterial_line": "arterial_line_citation",
        "fluids_30ml_kg": "fluids_citation",
        "map_below_65": "map_citation",
    }
    out = {}
    for rule, key in keys.items():
        out[rule] = config.get("classification.timing_citation") if key is None else config.get(f"audit.{key}")
    return out


from pipeline.audit.plot import p_chart_png  # noqa: E402  (re-export for the report helper)

__all__ = [
    "AUDIT_RESULTS",
    "AUDIT_RULES",
    "AuditResult",
    "p_chart_png",
    "rule_citations",
    "run_audit",
    "spc_from_summary",
]

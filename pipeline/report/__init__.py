"""The study report: one self-contained HTML file a clinician can read and a QI lead can share,
and a short markdown summary.

``build_report(out_dir, config)`` reads what the earlier steps wrote into ``out_dir``
(cohort, attrition, model tables and results.json, audit outputs, ledger.json) and writes
``report.html`` and ``report.md`` there (temp file + rename). A missing piece is stated in its
section; the report never fails because an optional step did not run.

It answers first (issue 15): a banner naming the data (synthetic, with the generator's truth
from ``true_effects.json`` beside each estimate, or the real source), a second banner when the
cohort is too small for any estimate (empty sections then collapse), the answer of the primary
analysis (``results["tte"]``: risk of death by the NE dose at which VP is added) in plain
sentences with one figure, its protocol (TARGET), and only then the details
(:mod:`pipeline.report.answer`). Every label is derived from the config
(:mod:`pipeline.report.labels`); every estimate shows its role and estimand.

Shareable by construction: small-cell suppression on every displayed count, decided across
the whole report so that no two shown figures differ by a small count
(:mod:`pipeline.report.suppress`), no row-level identifiers, every data string escaped by the
templates' autoescape, figures embedded as data URIs (no external fonts, scripts or styles).
Deterministic: the same inputs give byte-identical files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import polars as pl

from pipeline.atomic import write_text_atomic
from pipeline.config import StudyConfig
from pipeline.errors import ConfigError
from pipeline.parallel import worker_count
from pipeline.report import answer, figures, sections
from pipeline.report.suppress import CellPolicy, ReportCounts
from pipeline.resources import resource_dir

_MAX_PASSES = 5
HTML_FILE = "report.html"
MD_FILE = "report.md"


@dataclass(frozen=True)
class ReportResult:
    """Where the report went and which sections could not be filled."""

    html_path: Path
    md_path: Path
    html_bytes: int
    missing_sections: tuple[str, ...] = field(default_factory=tuple)

    def describe(self) -> str:
        lines = [f"report: {self.html_path} ({self.html_bytes / 1024:.0f} KiB), summary {self.md_path}"]
        if self.missing_sections:
            lines.append("  sections without data: " + ", ".join(self.missing_sections))
        return "\n".join(lines)


def policy_from_config(config: StudyConfig) -> CellPolicy:
    n = int(config.get("report.min_cell_count"))
    if n < 1:
        raise ConfigError(f"{config.source}: report.min_cell_count must be >= 1, got {n}")
    return CellPolicy(n)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(resource_dir("reports"))),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2"), default_for_string=True),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env


def assemble(out_dir: Path, config: StudyConfig, truth_path: Path | None = None) -> dict:
    """Every section's data (suppressed, formatted) as one dict for the templates.
    ``truth_path``: the generator's true_effects.json (default: beside the source data named in
    ledger.json, when that is a synthetic data set)."""
    out_dir = Path(out_dir)
    # Every count goes through one registry: which counts may be shown is decided across the
    # whole report once all sections are built (pipeline.report.suppress.ReportCounts). Counts
    # it withholds are hidden as cells in a second pass, so their tables hide complements.
    min_count = policy_from_config(config).min_count
    withheld: frozenset[int] = frozenset()
    with figures.deferred_figures():  # figures are drawn once, from the final pass's data
        for _ in range(_MAX_PASSES):  # usually two: hiding cells only ever shows fewer counts
            registry = ReportCounts(min_count)
            data = _sections(out_dir, config, CellPolicy(min_count, registry, withheld), truth_path)
            more = registry.withheld_values()
            if not more:
                break
            withheld |= more
        # the pairwise rule holds whatever the number of passes
        return figures.draw_deferred(registry.resolve(data), workers=worker_count())


def _guarded(build, *args) -> dict:
    """A model-output section, or its "not shown" message when the analyze step's outputs lack
    a key or column this report reads (results.json and the model tables change shape as
    analyses are added or retired: the report says so rather than failing)."""
    try:
        return build(*args)
    except (KeyError, pl.exceptions.ColumnNotFoundError) as exc:
        message = f"Not shown: the analysis outputs lack {exc}; re-run the analyze step."
        return {**sections.unavailable(message),
                "sentences": [message], "protocol": [], "img": None, "strategies": [], "contrasts": [], "rrt": [],
                "warnings": [], "short": "", "long": "", "has_truth": False, "estimable": False}


def _sections(out_dir: Path, config: StudyConfig, policy: CellPolicy, truth_path: Path | None = None) -> dict:
    """Every section built with ``policy`` (one pass of ``assemble``; placeholders unresolved).
    Counts register in display order of importance: the cohort flow first (see suppress)."""
    dpi = int(config.get("report.figure_dpi"))
    cohort = sections.read_parquet(out_dir, "cohort")
    attrition = sections.read_parquet(out_dir, "attrition")
    results = sections.read_json(out_dir / "results.json")
    ledger = sections.read_json(out_dir / "ledger.json")
    n_total = cohort.height if cohort is not None else None
    n_vp = cohort.filter(cohort["exposure"] == "vp_added").height if cohort is not None else None
    truth, found = answer.find_truth(ledger, truth_path)
    flow = sections.flow_section(attrition, policy)
    data = {
        "title": str(config.get("study.name")),
        "policy": {"min_count": policy.min_count, "small": policy.small_label,
                   "citation": str(config.get("report.suppression_citation"))},
        "has_results": results is not None,
        "banner": answer.data_banner(ledger, truth, found, config),
        "size": answer.size_banner(results, policy, n_total),
        "flow": flow,
        "tte": _guarded(answer.tte_section, results, truth, config, policy, dpi),
        "source": sections.source_section(out_dir, config, ledger),
        "table1": sections.table1_section(cohort, config, policy),
        "ne_dose": sections.ne_dose_section(cohort, config, policy, dpi),
        "km": _guarded(sections.km_section, out_dir, results, config, policy, dpi, n_total, n_vp),
        "forest": _guarded(sections.forest_section, out_dir, results, config, policy, dpi, truth),
        "cif": _guarded(sections.cif_section, out_dir, results, config, policy, dpi, truth),
        "vasst": _guarded(sections.vasst_section, out_dir, results, config, policy),
        "audit": sections.audit_section(out_dir, config, policy, dpi),
        "quality": sections.quality_section(ledger, cohort, policy),
        "methods": sections.methods_section(config),
    }
    return data


def build_report(out_dir: Path, config: StudyConfig, truth_path: Path | None = None) -> ReportResult:
    """Write ``report.html`` and ``report.md`` into ``out_dir`` from the outputs found there.
    ``truth_path``: see :func:`assemble`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = assemble(out_dir, config, truth_path)
    env = _environment()
    html = env.get_template("report.html.j2").render(**data)
    md = env.get_template("report.md.j2").render(**data)
    html_path, md_path = out_dir / HTML_FILE, out_dir / MD_FILE
    write_text_atomic(html_path, html)
    write_text_atomic(md_path, md)
    missing = tuple(k for k, v in data.items() if isinstance(v, dict) and v.get("available") is False)
    return ReportResult(html_path=html_path, md_path=md_path, html_bytes=len(html.encode()),
                        missing_sections=missing)


__all__ = ["ReportResult", "assemble", "build_report", "policy_from_config"]

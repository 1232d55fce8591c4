"""Data assembly of the study report: one plain function per section, each returning a dict
the Jinja template renders (already suppressed and formatted; strings are escaped by the
template's autoescape, figures are data URIs or escaped SVG).

Every section works from the files earlier steps wrote into ``out_dir``; a missing file gives
``{"available": False, "message": ...}`` and the template says so in that section.
Counts pass through :mod:`pipeline.report.suppress`; row-level identifiers (subject_id,
hadm_id, stay_id) are never read into a displayed value.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import polars as pl

from pipeline import __version__
from pipeline.audit import spc_note
from pipeline.config import StudyConfig
from pipeline.report import figures, labels
from pipeline.report.answer import iter_models, model_truth
from pipeline.report.suppress import CellPolicy, chain_visible, suppress_cells

EXPOSURE_LABELS = {
    "vp_added": "VP added to NE",
    "vp_before_ne": "VP before NE",
    "ne_only": "NE alone",
}
STRATA = ("below_entry", "less_severe", "more_severe")
TIMING = ("early", "recommended", "ssc_window", "delayed")
# Which optional source tables feed which features (pipeline/ingest marks a missing optional
# table unavailable; the cohort SQL and audit rules then leave these empty / not assessable).
FEATURES_BY_TABLE = {
    "chartevents": "MAP before VP start; the MAP audit rule (map_below_65); RRT charted in chartevents",
    "labevents": "lactate and baseline creatinine",
    "procedureevents": "RRT procedures; the arterial-line audit rule",
    "prescriptions": "hydrocortisone audit rule (prescriptions)",
    "emar": "hydrocortisone audit rule (eMAR administrations)",
}
SOFTWARE = ("polars", "duckdb", "pandera", "lifelines", "statsmodels", "numpy", "pandas", "scipy",
            "matplotlib", "jinja2")


def unavailable(message: str) -> dict[str, Any]:
    return {"available": False, "message": message}


def read_parquet(out_dir: Path, name: str) -> pl.DataFrame | None:
    path = Path(out_dir) / f"{name}.parquet"
    if not path.is_file():
        return None
    return pl.read_parquet(path)


def read_json(path: Path) -> dict | None:
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def stratum_labels(config: StudyConfig) -> dict[str, str]:
    return labels.stratum_labels(config)


def timing_labels(config: StudyConfig) -> dict[str, str]:
    rec = float(config.get("classification.timing_recommended_ne_mcg_kg_min"))
    ssc = float(config.get("classification.timing_ssc_window_ne_mcg_kg_min"))
    late = float(config.get("classification.timing_delayed_above_ne_mcg_kg_min"))
    late_abs = float(config.get("classification.timing_delayed_above_ne_mcg_min"))
    return {
        "early": f"early (NE < {rec:g} mcg/kg/min)",
        "recommended": f"recommended ({rec:g} to < {ssc:g})",
        "ssc_window": f"SSC window ({ssc:g} to {late:g})",
        "delayed": f"delayed (> {late:g} mcg/kg/min or > {late_abs:g} mcg/min)",
    }


def group_label(grouping: str, group: str, config: StudyConfig) -> str:
    if grouping == "exposure":
        return EXPOSURE_LABELS.get(group, group)
    if grouping == "vasst_stratum":
        return stratum_labels(config).get(group, group)
    if grouping == "timing_class":
        return timing_labels(config).get(group, group)
    return group


def fmt_num(x: float | None, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return f"{x:.{digits}f}"


def fmt_p(p: float | None) -> str:
    if p is None or not math.isfinite(p):
        return "-"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def fmt_ratio(est: float | None, lo: float | None, hi: float | None) -> str:
    if est is None:
        return "-"
    return f"{est:.2f} ({fmt_num(lo)} to {fmt_num(hi)})"


def not_estimable_text(config: StudyConfig) -> str:
    """Why a model gives no number, in words. The model's own reason names exact counts, which
    may be small: it stays in results.json; the minimums are stated in the methods."""
    return "not estimable: too few patients or events for a reliable estimate"


# ---------------------------------------------------------------------------------------------
# Data source, version, fingerprints, run parameters
# ---------------------------------------------------------------------------------------------

def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def software_versions() -> list[dict[str, str]]:
    rows = [{"name": "vasoflow", "version": __version__},
            {"name": "Python", "version": platform.python_version()}]
    for name in SOFTWARE:
        try:
            rows.append({"name": name, "version": metadata.version(name)})
        except metadata.PackageNotFoundError:
            rows.append({"name": name, "version": "not installed"})
    return rows


def source_section(out_dir: Path, config: StudyConfig, ledger: dict | None) -> dict[str, Any]:
    """Where the data came from and the fingerprints that identify this run's inputs."""
    out_dir = Path(out_dir)
    rows: list[dict[str, str]] = []
    if ledger is None:
        rows.append({"name": "Data source", "value": "not recorded (no ledger.json beside the database)"})
    else:
        src = Path(str(ledger.get("source_dir", "")))
        rows.append({"name": "Data source folder", "value": str(src)})
        sums = src / "SHA256SUMS.txt"
        release = "MIMIC-IV-style files"
        readme = src / "README.txt"
        if readme.is_file():
            first = [ln.strip() for ln in readme.read_text(errors="replace").splitlines() if ln.strip()]
            release = next((ln for ln in first if "MIMIC" in ln), release)
        rows.append({"name": "Data release", "value": f"{release} ({src.name})"})
        if sums.is_file():
            rows.append({"name": "Release checksum file (SHA256SUMS.txt) sha256", "value": _sha256_file(sums)})
        # Fingerprint of what was loaded: table, rows read/loaded/quarantined per rule (not the
        # load times, which vary run to run).
        stable = [{k: t.get(k) for k in ("table", "is_available", "rows_read", "rows_loaded",
                                         "rows_quarantined", "quarantined_by_rule")}
                  for t in ledger.get("tables", [])]
        digest = hashlib.sha256(json.dumps(stable, sort_keys=True).encode()).hexdigest()
        rows.append({"name": "Loaded-data fingerprint (ledger sha256)", "value": digest})
    cohort_path = out_dir / "cohort.parquet"
    if cohort_path.is_file():
        rows.append({"name": "Analysis cohort file sha256", "value": _sha256_file(cohort_path)})
    results = read_json(out_dir / "results.json")
    if results is not None:
        rows.append({"name": "results.json schema version", "value": str(results.get("schema_version", "-"))})
    rows.append({"name": "Study settings fingerprint (sha256)", "value": config.fingerprint()})
    rows.append({"name": "Study settings file", "value": Path(config.source).name})
    rows.append({"name": "vasoflow version", "value": __version__})
    params = []
    for section in ("cohort", "episodes", "classification", "outcomes", "models"):
        for key, value in sorted(config.section(section).items()):
            if key.endswith("citation"):
                continue
            shown = ", ".join(str(v) for v in value) if isinstance(value, (list, tuple)) else str(value)
            params.append({"name": f"{section}.{key}", "value": shown})
    return {"available": True, "rows": rows, "params": params}


# ---------------------------------------------------------------------------------------------
# Cohort flow
# ---------------------------------------------------------------------------------------------

def flow_section(attrition: pl.DataFrame | None, policy: CellPolicy) -> dict[str, Any]:
    """Attrition as a CONSORT-style diagram. Stays and patients are two nested chains (see
    ``chain_visible``); an exclusion count is shown only when both its ends are shown."""
    if attrition is None or attrition.is_empty():
        return unavailable("No attrition table (attrition.parquet): the cohort step has not run.")
    a = attrition.sort("step")
    stays = [int(v) for v in a["n_stays"]]
    patients = [int(v) for v in a["n_patients"]]
    show_s = chain_visible(stays, policy, keep="last")
    show_p = chain_visible(patients, policy, keep="last")
    # A step's stays minus patients is a count (repeat stays): hide patients when it is small.
    show_p = [sp and ss and not policy.is_small(s - p)
              for sp, ss, s, p in zip(show_p, show_s, stays, patients)]
    boxes, rows = [], []
    for i, r in enumerate(a.iter_rows(named=True)):
        st = policy.count(stays[i], hidden=not show_s[i])
        pt = policy.count(patients[i], hidden=not show_p[i])
        if i == 0:
            excl = None
        else:
            d = stays[i - 1] - stays[i]
            both = show_s[i - 1] and show_s[i]
            excl = policy.count(d, hidden=not both)
        count_text = f"{st} ICU stays, {pt} patients"
        boxes.append(figures.FlowBox(str(r["description"]), count_text,
                                     None if excl is None else f"excluded: {excl} ICU stays"))
        rows.append({"step": str(r["step"]), "description": str(r["description"]),
                     "applied": bool(r["is_applied"]), "stays": st, "patients": pt,
                     "excluded": excl if excl is not None else ""})
    # The analysis cohort is the last step that applies to all analyses (later steps, e.g. the
    # chronic-dialysis exclusion, apply to the RRT analyses only).
    main = [i for i, v in enumerate(a["analysis"].to_list()) if v == "all"] if "analysis" in a.columns else []
    last = main[-1] if main else len(patients) - 1
    return {"available": True, "svg": figures.flow_svg(boxes), "rows": rows,
            "final": policy.count(patients[last], hidden=not show_p[last])}


# ---------------------------------------------------------------------------------------------
# Table 1
# ---------------------------------------------------------------------------------------------

_CONTINUOUS = (
    # column, label, mean_sd (else median [IQR]), only among VP-added
    ("age_years", "Age, years", True, False),
    ("weight_kg", "Weight, kg (on the NE row at VP start)", False, True),
    ("lactate_at_index_mmol_l", "Lactate at NE start, mmol/L", False, False),
    ("creatinine_baseline_mg_dl", "Baseline creatinine, mg/dL", False, False),
    ("map_before_vp_mmhg", "MAP before VP start, mmHg", False, True),
    ("ne_rate_at_vp_mcg_kg_min", "NE at VP start, mcg/kg/min", False, True),
    ("ne_rate_at_vp_mcg_min", "NE at VP start, mcg/min", False, True),
    ("nee_at_vp_mcg_kg_min", "NE-equivalent at VP start, mcg/kg/min", False, True),
    ("hours_ne_to_vp", "Time from NE start to VP start, hours", False, True),
    ("ne_max_rate_mcg_kg_min", "Highest NE rate in the episode, mcg/kg/min", False, False),
)
_BINARY = (
    ("is_female", "Female sex"),
    ("rrt_before_index", "RRT before NE start"),
    ("death_28d", "Died within {short} days"),  # columns keep their names; days from [outcomes]
    ("death_90d", "Died within {long} days"),
    ("rrt_after_index", "RRT after NE start"),
)


def _smd_cont(a: pl.Series, b: pl.Series) -> float | None:
    a, b = a.drop_nulls().cast(pl.Float64), b.drop_nulls().cast(pl.Float64)
    if a.len() < 2 or b.len() < 2:
        return None
    pooled = math.sqrt((a.var() + b.var()) / 2)
    return None if pooled == 0 else (a.mean() - b.mean()) / pooled


def _smd_bin(p1: float, p2: float) -> float | None:
    pooled = math.sqrt((p1 * (1 - p1) + p2 * (1 - p2)) / 2)
    return None if pooled == 0 else (p1 - p2) / pooled


def table1_section(cohort: pl.DataFrame | None, config: StudyConfig, policy: CellPolicy) -> dict[str, Any]:
    """Baseline characteristics and outcomes by exposure, and among VP-added by VASST stratum,
    with standardised mean differences (SMD: difference in means or proportions divided by the
    pooled SD; |SMD| < the balance threshold counts as similar)."""
    if cohort is None:
        return unavailable("No analysis cohort (cohort.parquet): the cohort step has not run.")
    df = cohort.with_columns(is_female=pl.col("gender") == "F")
    slabels = stratum_labels(config)
    groups: list[tuple[str, str, pl.Expr]] = [("all", "All patients", pl.lit(True))]
    groups += [(e, EXPOSURE_LABELS[e], pl.col("exposure") == e) for e in EXPOSURE_LABELS]
    groups += [(s, slabels[s], (pl.col("exposure") == "vp_added") & (pl.col("vasst_stratum") == s))
               for s in STRATA]
    frames = {g: df.filter(expr) for g, _, expr in groups}
    gkeys = [g for g, _, _ in groups]
    # The implied cell "VP added, no stratum" keeps the strata relation exact.
    frames["vp_unclassified"] = df.filter((pl.col("exposure") == "vp_added") & pl.col("vasst_stratum").is_null())

    cells: dict[tuple[str, str], int] = {}
    relations: list[tuple[Any, list[Any]]] = []
    col_groups = [*gkeys, "vp_unclassified"]
    exposure_keys = list(EXPOSURE_LABELS)
    strata_keys = [*STRATA, "vp_unclassified"]

    implied: set[Any] = {("N", "vp_unclassified")}

    def add_categorical(row_prefix: str, levels: dict[str, pl.Expr], shown_levels: set[str]) -> None:
        """Cells (row_prefix:level, group); relations across levels and across groups."""
        for g in col_groups:
            f = frames[g]
            for lv, expr in levels.items():
                cells[(f"{row_prefix}:{lv}", g)] = int(f.select(expr.fill_null(False).sum()).item())
                if lv not in shown_levels or g == "vp_unclassified":
                    implied.add((f"{row_prefix}:{lv}", g))
            relations.append((("N", g), [(f"{row_prefix}:{lv}", g) for lv in levels]))
        for lv in levels:
            key = f"{row_prefix}:{lv}"
            relations.append(((key, "all"), [(key, e) for e in exposure_keys]))
            relations.append(((key, "vp_added"), [(key, s) for s in strata_keys]))

    for g in col_groups:
        cells[("N", g)] = frames[g].height
    relations.append((("N", "all"), [("N", e) for e in exposure_keys]))
    relations.append((("N", "vp_added"), [("N", s) for s in strata_keys]))

    for col, _ in _BINARY:
        if col in df.columns:
            add_categorical(col, {"yes": pl.col(col) == True,  # noqa: E712
                                  "no": pl.col(col) == False,  # noqa: E712
                                  "unknown": pl.col(col).is_null()}, {"yes"})
    units = sorted(v for v in df["first_careunit"].drop_nulls().unique().to_list()) if "first_careunit" in df.columns else []
    if units:
        levels = {f"u{i}": pl.col("first_careunit") == u for i, u in enumerate(units)}
        levels["unknown"] = pl.col("first_careunit").is_null()
        add_categorical("unit", levels, {f"u{i}" for i in range(len(units))})
    hidden = suppress_cells(cells, relations, policy, implied)

    def count_pct(key: str, g: str) -> str:
        n, tot = cells[(key, g)], cells[("N", g)]
        shown = (key, g) not in hidden and ("N", g) not in hidden
        text = policy.count(n, hidden=(key, g) in hidden)
        pct = policy.percent(n, tot, hidden=not shown)
        return text if pct == "-" else f"{text} ({pct})"

    def big_enough(g: str) -> bool:
        return cells[("N", g)] >= policy.min_count and ("N", g) not in hidden

    threshold = float(config.get("models.smd_balance_threshold"))
    comparisons = [("vp_added", "ne_only", "SMD VP added vs NE alone"),
                   ("more_severe", "less_severe", "SMD more vs less severe")]
    header = [label for _, label, _ in groups]
    rows: list[dict[str, Any]] = []
    rows.append({"label": "Patients, n", "cells": [policy.count(cells[("N", g)], hidden=("N", g) in hidden) for g in gkeys],
                 "smd": ["", ""], "kind": "n", "indent": False})
    for col, label, mean_sd, vp_only in _CONTINUOUS:
        if col not in df.columns:
            continue
        out, stats = [], {}
        for g in gkeys:
            s = frames[g][col].drop_nulls().cast(pl.Float64)
            if vp_only and g in ("all", "vp_before_ne", "ne_only"):
                out.append("")
                continue
            if not big_enough(g) or s.len() < policy.min_count:
                out.append("-")
                continue
            stats[g] = s
            if mean_sd:
                out.append(f"{s.mean():.1f} ({s.std():.1f})")
            else:
                q1, q2, q3 = (s.quantile(q, "linear") for q in (0.25, 0.5, 0.75))
                out.append(f"{q2:.2f} [{q1:.2f}-{q3:.2f}]")
        smd = []
        for a_, b_, _ in comparisons:
            v = _smd_cont(stats[a_], stats[b_]) if a_ in stats and b_ in stats else None
            smd.append(fmt_num(v))
        rows.append({"label": label + (": mean (SD)" if mean_sd else ": median [IQR]"), "cells": out,
                     "smd": smd, "kind": "cont", "indent": False})

    def cat_row(label: str, key: str, indent: bool = False) -> dict[str, Any]:
        out = [count_pct(key, g) for g in gkeys]
        smd = []
        for a_, b_, _ in comparisons:
            ok = all(big_enough(g) and (key, g) not in hidden for g in (a_, b_))
            v = _smd_bin(cells[(key, a_)] / cells[("N", a_)], cells[(key, b_)] / cells[("N", b_)]) if ok else None
            smd.append(fmt_num(v))
        return {"label": label, "cells": out, "smd": smd, "kind": "cat", "indent": indent}

    short, long_ = labels.horizons(config)
    for col, label in _BINARY:
        if col in df.columns:
            rows.append(cat_row(label.format(short=short, long=long_) + ", n (%)", f"{col}:yes"))
    if units:
        rows.append({"label": "First ICU care unit, n (%)", "cells": [""] * len(gkeys), "smd": ["", ""], "indent": False,
                     "kind": "head"})
        for i, u in enumerate(units):
            rows.append(cat_row(u, f"unit:u{i}", indent=True))
    return {"available": True, "header": header, "smd_header": [c for _, _, c in comparisons],
            "rows": rows, "smd_threshold": f"{threshold:g}"}


# ---------------------------------------------------------------------------------------------
# NE dose at VP start
# ---------------------------------------------------------------------------------------------

def _bins(values: list[float], width: float, top: float) -> tuple[list[float], list[int]]:
    n_bins = int(round(top / width))
    edges = [round(i * width, 10) for i in range(n_bins + 1)] + [round(top + width, 10)]
    counts = [0] * (n_bins + 1)
    for v in values:
        i = n_bins if v >= top else max(0, int(math.floor(v / width + 1e-9)))
        counts[min(i, n_bins)] += 1
    return edges, counts


def ne_dose_section(cohort: pl.DataFrame | None, config: StudyConfig, policy: CellPolicy, dpi: int) -> dict[str, Any]:
    """Histograms of the NE rate at VP start (VP-added patients) in mcg/kg/min with the timing
    thresholds and in mcg/min with the VASST thresholds. Bins with 1-10 patients are drawn
    hatched at a fixed height, and further bins are hatched when needed so that no small bin
    can be worked out from the total."""
    if cohort is None:
        return unavailable("No analysis cohort (cohort.parquet).")
    vp = cohort.filter(pl.col("exposure") == "vp_added")
    c = lambda k: float(config.get(f"classification.{k}"))  # noqa: E731
    panels = []
    specs = [
        ("ne_rate_at_vp_mcg_kg_min", "NE rate at VP start (mcg/kg/min)", "ne_dose_bin_mcg_kg_min",
         "ne_dose_axis_max_mcg_kg_min", "mcg/kg/min",
         [(c("timing_recommended_ne_mcg_kg_min"), "early | recommended"),
          (c("timing_ssc_window_ne_mcg_kg_min"), "SSC window from here"),
          (c("timing_delayed_above_ne_mcg_kg_min"), "delayed above")]),
        ("ne_rate_at_vp_mcg_min", "NE rate at VP start (mcg/min)", "ne_dose_bin_mcg_min",
         "ne_dose_axis_max_mcg_min", "mcg/min",
         [(c("vasst_entry_ne_mcg_min"), "VASST entry"),
          (c("vasst_more_severe_ne_mcg_min"), "VASST more severe"),
          (c("timing_delayed_above_ne_mcg_min"), "delayed above (absolute)")]),
    ]
    for col, xlabel, bin_key, max_key, unit, thresholds in specs:
        values = vp[col].drop_nulls().to_list() if col in vp.columns else []
        width, top = float(config.get(f"report.{bin_key}")), float(config.get(f"report.{max_key}"))
        edges, counts = _bins(values, width, top)
        cells = {("bin", i): n for i, n in enumerate(counts)}
        cells["total"] = len(values)
        hidden = suppress_cells(cells, [("total", [("bin", i) for i in range(len(counts))])], policy)
        heights = [None if ("bin", i) in hidden else n for i, n in enumerate(counts)]
        summary = "-"
        if len(values) >= policy.min_count:
            s = pl.Series(values, dtype=pl.Float64)
            summary = (f"median {s.quantile(0.5, 'linear'):.2f} {unit} "
                       f"(IQR {s.quantile(0.25, 'linear'):.2f}-{s.quantile(0.75, 'linear'):.2f})")
        img = None
        if values and "total" not in hidden:
            img = figures.histogram_png(
                edges, heights, xlabel=xlabel,
                thresholds=[(x, f"{lab} ({x:g})") for x, lab in thresholds],
                small_label=policy.small_label, small_height=policy.min_count / 2,
                overflow_label=f">= {top:g}", dpi=dpi)
        panels.append({"title": xlabel, "img": img, "n": policy.count(len(values), hidden="total" in hidden),
                       "summary": summary,
                       "thresholds": [f"{lab}: {x:g} {unit}" for x, lab in thresholds]})
    return {"available": True, "panels": panels}


# ---------------------------------------------------------------------------------------------
# Curves with numbers at risk (Kaplan-Meier, cumulative incidence)
# ---------------------------------------------------------------------------------------------

def _curves_with_risk(curves: pl.DataFrame, at_risk: pl.DataFrame, value_col: str, grouping: str,
                      config: StudyConfig, policy: CellPolicy, n_total: int | None) -> dict[str, Any]:
    """Suppressed numbers at risk per group and the curves that may be drawn.

    Rule for curves (each step of a curve is one patient): a group's curve is drawn only when
    its size is at least min_count, and it stops at the last at-risk time with at least
    min_count patients at risk."""
    risk = at_risk.filter(pl.col("grouping") == grouping).sort("group", "time_days")
    groups = sorted(risk["group"].unique().to_list())
    times = sorted(set(risk["time_days"].to_list()))
    size = {g: int(risk.filter((pl.col("group") == g) & (pl.col("time_days") == min(times)))["n_at_risk"].sum())
            for g in groups} if times else {}
    cells: dict[Any, int] = {("size", g): n for g, n in size.items()}
    relations = []
    if n_total is not None and size:
        cells["others"] = max(0, n_total - sum(size.values()))
        cells["total"] = n_total
        relations.append(("total", [*[("size", g) for g in groups], "others"]))
    hidden = suppress_cells(cells, relations, policy, {"others"})
    table, draw = [], []
    for g in groups:
        rg = risk.filter(pl.col("group") == g)
        values = [int(v) for v in rg["n_at_risk"]]
        vis = chain_visible(values, policy, keep="first")
        if ("size", g) in hidden:
            vis = [False] * len(vis)
        table.append({"group": group_label(grouping, g, config),
                      "cells": [policy.count(v, hidden=not ok) for v, ok in zip(values, vis)]})
        if size.get(g, 0) >= policy.min_count and ("size", g) not in hidden:
            ok_times = [t for t, v in zip(rg["time_days"].to_list(), values) if v >= policy.min_count]
            stop = max(ok_times) if ok_times else 0.0
            cg = curves.filter((pl.col("group") == g) & (pl.col("time_days") <= stop)).sort("time_days")
            if cg.height:
                draw.append(figures.Curve(group_label(grouping, g, config), cg["time_days"].to_list(),
                                          cg[value_col].to_list(), cg["ci_low"].fill_null(float("nan")).to_list(),
                                          cg["ci_high"].fill_null(float("nan")).to_list()))
    n_not_drawn = len(groups) - len(draw)
    return {"times": [f"{t:g}" for t in times], "table": table, "curves": draw, "n_not_drawn": n_not_drawn}


def km_section(out_dir: Path, results: dict | None, config: StudyConfig, policy: CellPolicy, dpi: int,
               n_total: int | None, n_vp: int | None) -> dict[str, Any]:
    curves, at_risk = read_parquet(out_dir, "km_curves"), read_parquet(out_dir, "km_at_risk")
    if curves is None or at_risk is None:
        return unavailable("No Kaplan-Meier tables (km_curves.parquet, km_at_risk.parquet): the analyze step has not run.")
    short, long_ = labels.horizons(config)
    horizon = float(long_)
    panels = []
    titles = {"exposure": ("Ever given VP vs never, from NE start (biased: see caption)", n_total),
              "vasst_stratum": ("VP patients by VASST stratum, from VP start", n_vp),
              "timing_class": ("VP patients by timing of VP, from VP start", n_vp)}
    notes = {"exposure": ("Naive and biased in favour of VP: a patient counts as 'VP added' from NE start,"
                          " although VP came later, so the days alive before VP (immortal time) are credited"
                          " to VP, and patients who died early never had the chance to receive it. No test is"
                          " shown; the primary analysis above avoids this bias."),
             "vasst_stratum": "Describes prognosis by severity at VP start; not a comparison of treatments.",
             "timing_class": ("Describes outcomes by the NE dose at VP start; sicker patients reach high doses,"
                              " so the curves mix timing with severity.")}
    for grouping, (title, total) in titles.items():
        if at_risk.filter(pl.col("grouping") == grouping).is_empty():
            continue
        d = _curves_with_risk(curves, at_risk, "survival", grouping, config, policy, total)
        img = figures.step_curves_png(d["curves"], ylabel="alive (%)", xlabel="days", xmax=horizon, dpi=dpi) if d["curves"] else None
        panels.append({"title": title, "img": img, **{k: d[k] for k in ("times", "table", "n_not_drawn")},
                       "note": notes[grouping]})
    return {"available": True, "panels": panels, "horizon": f"{horizon:g}"}


def cif_section(out_dir: Path, results: dict | None, config: StudyConfig, policy: CellPolicy, dpi: int,
                truth: Mapping | None = None) -> dict[str, Any]:
    curves, at_risk = read_parquet(out_dir, "cif_curves"), read_parquet(out_dir, "cif_at_risk")
    if curves is None or at_risk is None:
        return unavailable("No cumulative-incidence tables (cif_curves.parquet, cif_at_risk.parquet): the analyze step has not run.")
    rrt = (results or {}).get("rrt", {})
    horizon = float(rrt.get("horizon_days") or config.get("outcomes.short_term_days"))
    panels = []
    for grouping, title in (("vasst_stratum", "Cumulative incidence of RRT by VASST stratum"),
                            ("timing_class", "Cumulative incidence of RRT by timing of VP")):
        c = curves.filter((pl.col("grouping") == grouping) & (pl.col("cause") == "rrt"))
        r = at_risk.filter((pl.col("grouping") == grouping) & (pl.col("cause") == "rrt"))
        if r.is_empty():
            continue
        d = _curves_with_risk(c, r, "cumulative_incidence", grouping, config, policy, None)
        finite = [v for cv in d["curves"] for v in (*cv.values, *(cv.ci_high or ())) if v is not None and math.isfinite(v)]
        top = max([0.1, *finite])
        img = figures.step_curves_png(d["curves"], ylabel="had RRT (%)", xlabel="days from VP start",
                                      xmax=horizon, ylim=(0.0, min(1.0, top * 1.1)), dpi=dpi) if d["curves"] else None
        panels.append({"title": title, "img": img, **{k: d[k] for k in ("times", "table", "n_not_drawn")}})
    models = []
    for name, m in sorted((rrt.get("models") or {}).items()):
        models.append(_model_row(m, config, policy, truth))
    if not panels and not models:
        return unavailable("No patient was eligible for the RRT analysis (no RRT before NE start and VP added).")
    return {"available": True, "panels": panels, "models": models, "horizon": f"{horizon:g}",
            "estimands": _estimand_notes(models)}


# ---------------------------------------------------------------------------------------------
# Model estimates: forest plot, VASST-strata HR
# ---------------------------------------------------------------------------------------------

def infer_role(name: str) -> str:
    """The role of a model when results.json does not state it (before issue 12's keys):
    the naive ever-VP comparison and the delayed-vs-earlier comparison are descriptive."""
    if name.startswith(("trial.naive", "delayed_vp")):
        return "descriptive"
    if name.startswith("tte"):
        return "primary"
    return "secondary"


def default_estimand(name: str, config: StudyConfig) -> str:
    """One plain sentence when results.json does not state the estimand."""
    short, long_ = labels.horizons(config)
    if name.startswith("trial.naive"):
        return ("Hazard ratio of death, patients ever given VP vs never, counted from NE start; biased"
                " in favour of VP (immortal time) and shown only to show that bias.")
    if name.startswith("trial.time_varying"):
        return ("Hazard ratio of death while on VP vs not (yet) on VP, from NE start: a conditional"
                " hazard ratio, not the effect of a timing strategy.")
    if name.startswith("trial.landmark"):
        return ("Among patients alive at the landmark, hazard ratio of death for VP started by then vs"
                " not yet started.")
    if name.startswith("delayed_vp"):
        return ("Hazard ratio of death, delayed vs earlier VP start among VP patients; the NE dose"
                " defines both groups, so this describes, it does not estimate an effect.")
    if name.startswith("vasst_hr"):
        return ("Prognosis among VP patients: hazard ratio of death, more vs less severe stratum at VP"
                " start (not the VASST trial's VP-vs-NE contrast).")
    if name.startswith("rrt."):
        return f"Renal replacement therapy by day {short} among VP patients without RRT before NE start."
    return ""


def _evalue_text(details: Mapping[str, Any]) -> str:
    est, ci = details.get("evalue_estimate"), details.get("evalue_ci")
    if est is None or not math.isfinite(float(est)):
        return "-"
    return f"{float(est):.2f} (CI {fmt_num(ci)})" if ci is not None else f"{float(est):.2f}"


def _is_prognosis(name: str) -> bool:
    return name.startswith("vasst_hr") or "prognosis" in name


def _model_row(m: Mapping[str, Any], config: StudyConfig, policy: CellPolicy,
               truth: Mapping | None = None) -> dict[str, str]:
    """One estimate as displayed: plain label, role and estimand, p-value and E-value only for
    non-descriptive estimates, and the generator's true value for synthetic data."""
    name = str(m.get("name", ""))
    est = m.get("hr", m.get("or", m.get("estimate")))
    ok = bool(m.get("estimable"))
    role = str(m.get("role") or infer_role(name))
    descriptive = role == "descriptive"
    details = m.get("details") or {}
    true_value, true_note = model_truth(truth, name) if truth is not None else (None, "")
    return {
        "label": labels.plain(str(m.get("label", name)), config),
        "contrast": labels.plain(str(m.get("contrast", "")), config),
        "estimate": fmt_ratio(est, m.get("ci_low"), m.get("ci_high")) if ok else not_estimable_text(config),
        "measure": str(m.get("measure", "")),
        "p": fmt_p(m.get("p")) if ok and not descriptive else "-",
        "n": policy.count(m.get("n")),
        "events": policy.count(m.get("events")),
        # E-values measure robustness of a causal estimate: none for descriptive results nor for
        # the prognosis comparison of VASST strata (severity is not an exposure; issue 12)
        "evalue": _evalue_text(details) if ok and not descriptive and not _is_prognosis(name) else "-",
        "role": labels.role_label(role),
        "is_descriptive": descriptive,
        # results.json estimands may name strata or columns by their machine names: words here
        "estimand": labels.plain(str(m.get("estimand") or default_estimand(name, config) or "not stated"), config),
        "truth": fmt_num(true_value) if true_value is not None else ("-" if not true_note else "none"),
        "truth_note": true_note,
        "covariates": labels.columns(str(details.get("covariates_used", ""))) or "none",
    }


_ANALYSIS_TEXT = {
    "naive": "naive: ever VP vs never (biased)",
    "sequential": "sequential trials: VP now vs not now",
}

# results.json keys whose model objects other sections show (or that hold no model)
_SHOWN_ELSEWHERE = {"trial", "rrt", "tte", "descriptive", "tables", "settings", "input", "vasst_comparison",
                    "not_estimable", "schema_version", "config_fingerprint", "generator"}


def _estimand_notes(rows: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Number each distinct estimand once (rows then carry ``note``: "[2]"), so a table of many
    estimates of a few kinds states each estimand once instead of on every row."""
    notes: list[dict[str, str]] = []
    seen: dict[str, str] = {}
    for r in rows:
        text = r.get("estimand", "")
        if text not in seen:
            seen[text] = str(len(seen) + 1)
            notes.append({"mark": seen[text], "text": text})
        r["note"] = seen[text]
    return notes


def forest_section(out_dir: Path, results: dict | None, config: StudyConfig, policy: CellPolicy, dpi: int,
                   truth: Mapping | None = None) -> dict[str, Any]:
    forest = read_parquet(out_dir, "forest")
    if forest is None:
        return unavailable("No model estimates (forest.parquet): the analyze step has not run.")
    short, long_ = labels.horizons(config)
    horizon = float(long_)
    slabels = stratum_labels(config)
    by_name = {str(m.get("name")): m for m in iter_models(results or {}) if m.get("name")}
    f = forest.filter(pl.col("horizon_days") == horizon)
    trial_rows = f.filter(pl.col("name").str.starts_with("trial.") & pl.col("adjusted"))
    # results.json 2.x: time_varying/landmark_* were replaced by the sequential trials (issue 12).
    order = ["naive", "sequential"]
    fig_rows, table = [], []
    for stratum in ("all", "less_severe", "more_severe"):
        for analysis in order:
            sel = trial_rows.filter((pl.col("stratum") == stratum) & (pl.col("analysis") == analysis))
            for r in sel.iter_rows(named=True):
                kind = _ANALYSIS_TEXT.get(analysis, analysis.replace("landmark_", "landmark at ").replace("h", " h"))
                label = f"{slabels.get(stratum, stratum).split(' (')[0]}: {kind}"
                full = {**r, "hr": r["estimate"], **by_name.get(str(r["name"]), {})}
                fig_rows.append(figures.ForestRow(label, r["estimate"] if r["estimable"] else None,
                                                  r["ci_low"], r["ci_high"], kind))
                table.append({**_model_row(full, config, policy, truth), "label": label})
    img = figures.forest_png(fig_rows, dpi=dpi) if any(r.estimate is not None for r in fig_rows) else None
    # Every other model object in results.json (VASST-strata prognosis, the VP-by-stratum
    # interaction, the delayed-vs-earlier comparison...) whatever its key: one table.
    others = []
    for key, value in (results or {}).items():
        if key in _SHOWN_ELSEWHERE:
            continue
        for m in iter_models(value):
            if m.get("name") or m.get("label"):
                others.append(_model_row(m, config, policy, truth))
    balance = read_parquet(out_dir, "ps_balance")
    bal_rows = []
    if balance is not None:
        for r in balance.iter_rows(named=True):
            bal_rows.append({"covariate": labels.columns([str(r["covariate"])]), "before": fmt_num(r["smd_unweighted"]),
                             "after": fmt_num(r["smd_weighted"]), "balanced": "yes" if r["is_balanced"] else "no"})
    notes = _estimand_notes([*table, *others])
    return {"available": True, "img": img, "table": table, "others": others, "balance": bal_rows,
            "estimands": notes,
            "has_truth": truth is not None, "n_estimable": sum(r.estimate is not None for r in fig_rows),
            "horizon": f"{horizon:g}", "stratum_rule": labels.stratum_rule_text(str(config.get("models.trial_stratum_rule"))),
            "covariates": labels.columns(config.get("models.baseline_covariates"))}


def vasst_section(out_dir: Path, results: dict | None, config: StudyConfig, policy: CellPolicy) -> dict[str, Any]:
    table = read_parquet(out_dir, "vasst_comparison")
    meta = (results or {}).get("vasst_comparison") or {}
    if table is None:
        return unavailable("No VASST comparison table (vasst_comparison.parquet): the analyze step has not run.")
    slabels = stratum_labels(config)
    rows = []
    keys = table.select("stratum", "horizon_days").unique(maintain_order=True).rows()
    for stratum, horizon in keys:
        row = {"stratum": slabels.get(stratum, stratum), "horizon": f"{horizon:g}"}
        for source in ("VASST", "cohort"):
            for arm in ("vp", "ne"):
                sel = table.filter((pl.col("stratum") == stratum) & (pl.col("horizon_days") == horizon)
                                   & (pl.col("source") == source) & (pl.col("arm") == arm))
                key = f"{source.lower()}_{arm}"
                if sel.is_empty():
                    row[key] = "-"
                    continue
                r = sel.row(0, named=True)
                if source == "VASST":
                    row[key] = f"{100 * r['mortality']:.1f}%" if r["mortality"] is not None else "-"
                else:
                    n, d = r["n"], r["deaths"]
                    pct = policy.percent(d, n)
                    ci = (f" ({100 * r['ci_low']:.1f}-{100 * r['ci_high']:.1f})"
                          if pct != "-" and r["ci_low"] is not None else "")
                    row[key] = f"{pct}{ci}, n = {policy.count(n)}" if pct != "-" else f"-, n = {policy.count(n)}"
        rows.append(row)
    return {"available": True, "rows": rows, "citation": str(meta.get("citation", "")),
            "n_randomised": str(meta.get("n_randomised", "")),
            "caveats": [labels.plain(str(c), config) for c in meta.get("caveats", [])],
            "definition": labels.plain(str(meta.get("cohort_definition", "")), config)}


# ---------------------------------------------------------------------------------------------
# QI audit
# ---------------------------------------------------------------------------------------------

def audit_section(out_dir: Path, config: StudyConfig, policy: CellPolicy, dpi: int) -> dict[str, Any]:
    summary, spc = read_parquet(out_dir, "audit_summary"), read_parquet(out_dir, "audit_spc")
    if summary is None or spc is None:
        return unavailable("No audit outputs (audit_summary.parquet, audit_spc.parquet): the audit step has not run.")
    from pipeline.audit import AUDIT_RULES, rule_citations

    citations = rule_citations(config)
    criteria, names = labels.audit_criteria(config), labels.audit_rule_names()
    results_ = ("pass", "fail", "not_applicable", "not_assessable")
    cells: dict[Any, int] = {}
    relations: list[tuple[Any, list[Any]]] = []
    units = sorted(u for u in summary["care_unit"].drop_nulls().unique().to_list())
    periods = sorted(p for p in spc["period"].drop_nulls().unique().to_list())
    for rule in AUDIT_RULES:
        s = summary.filter(pl.col("rule") == rule)
        for res in results_:
            cells[(rule, res)] = int(s[f"n_{res}"].sum())
        cells[(rule, "N")] = sum(cells[(rule, res)] for res in results_)
        cells[(rule, "assessed")] = cells[(rule, "pass")] + cells[(rule, "fail")]
        relations.append(((rule, "N"), [(rule, r) for r in results_]))
        relations.append(((rule, "assessed"), [(rule, "pass"), (rule, "fail")]))
        parts_a, parts_p = [], []
        for u in units + [None]:
            su = s.filter(pl.col("care_unit").is_null() if u is None else pl.col("care_unit") == u)
            key = (rule, "unit", u)
            cells[key + ("pass",)] = int(su["n_pass"].sum())
            cells[key + ("fail",)] = int(su["n_fail"].sum())
            cells[key + ("assessed",)] = cells[key + ("pass",)] + cells[key + ("fail",)]
            relations.append((key + ("assessed",), [key + ("pass",), key + ("fail",)]))
            parts_a.append(key + ("assessed",))
            parts_p.append(key + ("pass",))
        relations.append(((rule, "assessed"), parts_a))
        relations.append(((rule, "pass"), parts_p))
        sp = spc.filter(pl.col("rule") == rule)
        pa, pp = [], []
        for per in periods:
            r = sp.filter(pl.col("period") == per)
            key = (rule, "period", per)
            n = int(r["n"].sum()) if r.height else 0
            k = int(r["n_pass"].sum()) if r.height else 0
            cells[key + ("n",)], cells[key + ("pass",)], cells[key + ("fail",)] = n, k, n - k
            relations.append((key + ("n",), [key + ("pass",), key + ("fail",)]))
            pa.append(key + ("n",))
            pp.append(key + ("pass",))
        relations.append(((rule, "assessed"), pa))
        relations.append(((rule, "pass"), pp))
    # Only the per-rule result counts are displayed; per-unit and per-period counts and the
    # assessed totals are implied (they show up only as percentages and chart points).
    implied = {k for k in cells if k[1] in ("unit", "period", "assessed")}
    hidden = suppress_cells(cells, relations, policy, implied)

    def shown_share(num_key, den_key) -> str:
        if num_key in hidden or den_key in hidden:
            return "-"
        return policy.percent(cells[num_key], cells[den_key])

    rules, charts, unit_rows = [], [], []
    for rule in AUDIT_RULES:
        rules.append({
            "rule": names.get(rule, rule), "criterion": criteria.get(rule, ""),
            "counts": [policy.count(cells[(rule, r)], hidden=(rule, r) in hidden) for r in results_],
            "adherence": shown_share((rule, "pass"), (rule, "assessed")),
            "citation": str(citations.get(rule, "")),
        })
        points = []
        sp = spc.filter(pl.col("rule") == rule)
        for per in periods:
            key = (rule, "period", per)
            r = sp.filter(pl.col("period") == per)
            ok = (r.height == 1 and key + ("n",) not in hidden and key + ("pass",) not in hidden
                  and policy.share_ok(cells[key + ("pass",)], cells[key + ("n",)]))
            row = r.row(0, named=True) if r.height else {}
            points.append(figures.ChartPoint(str(per), row.get("p") if ok else None,
                                             row.get("lcl") if ok else None, row.get("ucl") if ok else None,
                                             bool(row.get("is_special_cause")) and ok))
        centre_ok = shown_share((rule, "pass"), (rule, "assessed")) != "-"
        centre = None
        if centre_ok and sp.height:
            centre = sp["centre_line"].drop_nulls().first() if sp["centre_line"].drop_nulls().len() else None
        n_signals = sum(pt.is_signal for pt in points)
        drawable = any(pt.p is not None for pt in points)
        charts.append({"rule": names.get(rule, rule),
                       "img": figures.p_chart_png(points, centre, dpi=dpi) if drawable else None,
                       "n_hidden": sum(pt.p is None for pt in points), "n_signals": n_signals})
        unit_rows.append({"rule": names.get(rule, rule), "cells": [
            shown_share((rule, "unit", u, "pass"), (rule, "unit", u, "assessed")) for u in units]})
    return {"available": True, "rules": rules, "charts": [c for c in charts if c["img"]],
            "not_drawn": [c["rule"] for c in charts if not c["img"]],
            "n_signal_charts": sum(1 for c in charts if c["img"] and c["n_signals"]), "units": units, "unit_rows": unit_rows,
            "n_periods": len(periods), "period_kind": str(config.get("study.period")),
            "spc_note": spc_note(config, spc), "spc_citation": str(config.get("audit.spc_citation"))}


# ---------------------------------------------------------------------------------------------
# Data quality
# ---------------------------------------------------------------------------------------------

def quality_section(ledger: dict | None, cohort: pl.DataFrame | None, policy: CellPolicy) -> dict[str, Any]:
    if ledger is None:
        return unavailable("No ingest ledger (ledger.json beside the database): data quality cannot be shown.")
    tables = sorted(ledger.get("tables", []), key=lambda t: str(t.get("table")))
    cells: dict[Any, int] = {}
    relations = []
    for t in tables:
        name = str(t["table"])
        for k in ("rows_read", "rows_loaded", "rows_quarantined"):
            cells[(name, k)] = int(t.get(k) or 0)
        relations.append(((name, "rows_read"), [(name, "rows_loaded"), (name, "rows_quarantined")]))
        by_rule = t.get("quarantined_by_rule") or {}
        for rule, n in by_rule.items():
            cells[(name, "rule", rule)] = int(n)
        if len(by_rule) == 1:
            (rule,) = by_rule
            relations.append(((name, "rows_quarantined"), [(name, "rule", rule)]))
    hidden = suppress_cells(cells, relations, policy)
    rows, rule_rows, missing = [], [], []
    for t in tables:
        name = str(t["table"])
        if not t.get("is_available"):
            missing.append({"table": name, "features": FEATURES_BY_TABLE.get(name, "none of the study's features")})
            continue
        rows.append({"table": name, **{k: policy.count(cells[(name, k)], hidden=(name, k) in hidden)
                                       for k in ("rows_read", "rows_loaded", "rows_quarantined")},
                     "filtered": "yes" if t.get("itemid_filter") else "no"})
        for rule in sorted(t.get("quarantined_by_rule") or {}):
            key = (name, "rule", rule)
            rule_rows.append({"table": name, "rule": str(rule), "rows": policy.count(cells[key], hidden=key in hidden)})
    flags = []
    if cohort is not None:
        for col, text in (("has_chartevents", "chartevents"), ("has_lactate_source", "a lactate source"),
                          ("has_map_source", "a MAP source")):
            if col in cohort.columns and cohort.height and not bool(cohort[col].any()):
                flags.append(f"No patient has {text}: the features that need it are empty.")
    return {"available": True, "rows": rows, "rule_rows": rule_rows, "missing": missing,
            "flags": flags, "warnings": [str(w) for w in ledger.get("warnings", [])
                                         if not any(ch.isdigit() for ch in str(w))]}


# ---------------------------------------------------------------------------------------------
# Methods and limitations
# ---------------------------------------------------------------------------------------------

def methods_section(config: StudyConfig) -> dict[str, Any]:
    g = config.get
    covs = labels.columns(g("models.baseline_covariates"))
    adj = labels.columns(g("models.vasst_adjust_covariates"))
    pscov = labels.columns(g("models.propensity_covariates"))
    landmarks = ", ".join(f"{float(h):g} h" for h in g("models.landmark_hours"))
    level = f"{100 * float(g('models.confidence_level')):g}%"
    paragraphs = [
        (f"Cohort. Adults (age at admission >= {g('cohort.min_age_years')} years)"
         + (" with a sepsis diagnosis code on the admission" if g("cohort.require_sepsis_diagnosis") else "")
         + " who received norepinephrine (NE) in the ICU"
         + ("; the first qualifying ICU stay of each patient." if g("cohort.first_stay_only") else "; every qualifying ICU stay.")
         + f" Infusion rows of one drug less than {g('episodes.drug_gap_minutes')} minutes apart form one infusion;"
         f" vasopressor infusions less than {g('episodes.shock_episode_gap_hours')} hours apart form one shock episode."
         " Time zero is the first NE start of the index episode."),
        ("Exposure. VP added: vasopressin (VP) started at or after NE start in the same episode; VP before NE;"
         " NE alone: no VP in the episode. The NE dose at VP start is the rate of the NE infusion running at"
         " that minute. VASST strata by NE at VP start: below "
         f"{g('classification.vasst_entry_ne_mcg_min'):g} mcg/min, {g('classification.vasst_entry_ne_mcg_min'):g}"
         f" to < {g('classification.vasst_more_severe_ne_mcg_min'):g} mcg/min (less severe), and >= "
         f"{g('classification.vasst_more_severe_ne_mcg_min'):g} mcg/min (more severe) ({g('classification.vasst_citation')})."
         f" Timing: delayed when NE > {g('classification.timing_delayed_above_ne_mcg_kg_min'):g} mcg/kg/min or > "
         f"{g('classification.timing_delayed_above_ne_mcg_min'):g} mcg/min ({g('classification.timing_citation')})."),
        (f"Outcomes. Death within {g('outcomes.short_term_days')} and {g('outcomes.long_term_days')} days of time"
         " zero (hospital death time, else the registry date of death, which covers"
         f" {g('outcomes.dod_coverage_days')} days after the last discharge); renal replacement therapy (RRT)"
         " after time zero among patients without RRT before it."),
        ("Primary analysis. A target-trial emulation of the question 'at which NE dose should VP be added?':"
         " each patient is copied into every strategy 'add VP within "
         f"{g('tte.grace_hours')} h once NE first reaches X mcg/kg/min' (X = "
         + ", ".join(f"{float(x):g}" for x in g("tte.strategy_thresholds_ne_mcg_kg_min"))
         + (f") and 'never add VP in the first {float(g('tte.decision_window_hours')):g} h'" if g("tte.include_never_strategy") else ")")
         + ", each copy is censored when its care departs from the strategy, and the censoring is"
         " weighted away with the hourly NE dose, blood pressure and lactate; the result is the risk of"
         f" death by day {g('outcomes.short_term_days')} and {g('outcomes.long_term_days')} under each strategy"
         f" ({g('tte.protocol_citation')})."),
        ("Secondary and descriptive analyses. Mortality with Wilson intervals; Kaplan-Meier curves"
         " (descriptive, without tests); median follow-up by"
         " reverse Kaplan-Meier. VASST-strata Cox model among VP-added patients from VP start (more vs less"
         f" severe), unadjusted and adjusted for {adj}, with robust standard errors and a proportional-hazards"
         " check. The trial question (VP added vs NE alone) avoids immortal-time bias with a Cox model in which"
         f" VP is a time-varying exposure from NE start and with landmark analyses at {landmarks}, adjusted for"
         f" {covs}; the naive ever-VP comparison is shown only to show its bias. The stratum of patients never"
         f" given VP follows {labels.stratum_rule_text(str(g('models.trial_stratum_rule')))}. Confounding by indication (delayed vs"
         f" earlier VP) is addressed with a propensity model ({pscov}) and {g('models.weighting')} weights, with"
         f" standardised mean differences before and after weighting (balanced below {g('models.smd_balance_threshold'):g})."
         " RRT: logistic regression, cumulative incidence with death as a competing risk (Aalen-Johansen),"
         " cause-specific Cox and Fine-Gray subdistribution hazards. E-values (VanderWeele and Ding 2017) for the"
         f" main estimates. All intervals are {level} confidence intervals. A model with fewer than"
         f" {g('models.min_patients_per_group')} patients in a group or {g('models.min_events_total')} events"
         " reports 'not estimable'."),
        ("Audit. Each quality rule is evaluated on the index episode (pass, fail, not applicable, not"
         " assessable); adherence is pass / (pass + fail). p-charts plot adherence per period with limits that"
         f" widen when fewer patients are assessed ({g('audit.spc_citation')})."),
        (f"Disclosure control. Every count from 1 to {int(g('report.min_cell_count')) - 1} is shown as"
         f" '<{int(g('report.min_cell_count'))}'; cells marked '*' are hidden so that a small count cannot be"
         " worked out from totals or differences; percentages are hidden when their numerator, denominator or"
         " complement is small; curves are drawn only for groups of at least the threshold and stop when fewer"
         f" remain at risk ({g('report.suppression_citation')})."),
    ]
    limitations = [
        "Observational single-centre data: VP was given at the clinicians' discretion, so sicker patients"
        " receive it more often and later (confounding by indication); adjustment and weighting reduce but"
        " cannot remove this.",
        "Doses come from charted infusion rates; charting delays and missing weights shift the NE dose at VP"
        " start and therefore the strata and timing classes.",
        "Diagnosis codes identify sepsis only approximately, and shock is defined by vasopressor use, not by"
        " lactate or blood pressure criteria.",
        "Deaths after discharge rely on registry dates that are only recorded up to one year after the last"
        " discharge.",
        "Small groups give wide intervals or no estimate at all; suppressed cells hide small counts.",
    ]
    return {"paragraphs": paragraphs, "limitations": limitations, "software": software_versions()}

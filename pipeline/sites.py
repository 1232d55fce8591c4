"""Results per site, and their random-effects meta-analysis.

A multi-centre study or a QI network shares aggregates, never rows (the OHDSI network-study
model). ``write_site_files`` splits an analysed cohort by site (eICU-CRD: ``hospitalid`` from
the ingest's ``source_site`` table; MIMIC-IV: study.toml ``sites.mimic_site_column`` or one
site) and writes one JSON file per site holding only:

* counts of cohort stays, per exposure group, with their 28-day deaths; every count from 1 to
  ``report.min_cell_count`` - 1 is written as "<11" (and one more count of the same total when
  only one would be hidden, so the total cannot reveal it);
* one estimate with its standard error: the log odds ratio of 28-day death, vasopressin added vs
  norepinephrine only, crude (Woolf's standard error; 0.5 added to every cell of a table with a
  zero cell, Haldane-Anscombe). It is confounded by severity like every descriptive contrast of
  the report: it is what the sites' practice looks like side by side and the quantity the
  pooling machinery combines, not an effect of vasopressin.

``pool_site_files`` reads such files (from any number of sites) and combines the estimates with
statsmodels' ``combine_effects`` (random effects, DerSimonian-Laird or Paule-Mandel tau^2;
I^2, tau^2, Cochran's Q), beside the fixed-effect estimate. ``write_site_files`` also writes
``sites_pooled.json``: that meta-analysis beside the pooled-data estimate (the same log odds
ratio computed on all sites' stays together), which only a holder of every site's rows can make.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import polars as pl

from pipeline import duckdb_settings
from pipeline.atomic import write_text_atomic
from pipeline.config import StudyConfig
from pipeline.errors import InputFileError

SITE_SCHEMA = "vasoflow-site-results/1"
POOL_SCHEMA = "vasoflow-site-pool/1"
EXPOSED, UNEXPOSED = "vp_added", "ne_only"
OUTCOME = "death_28d"
ESTIMATE_LABEL = ("crude log odds ratio of death observed by the short-term horizon (death_28d; in-hospital "
                  "death where follow-up ends at discharge), vasopressin added vs norepinephrine only; confounded "
                  "by severity: describes practice, not an effect of vasopressin")


def stay_sites(con: duckdb.DuckDBPyConnection, config: StudyConfig) -> pl.DataFrame:
    """stay_id -> site_id (text) of every ICU stay of an ingested database."""
    tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    if "source_site" in tables:
        return con.execute("SELECT stay_id, site_id FROM source_site").pl()
    column = config.get("sites.mimic_site_column")
    if not column:
        return con.execute("SELECT stay_id, 'all' AS site_id FROM valid_icustays").pl()
    return con.execute(f'SELECT stay_id, coalesce(cast("{column}" AS VARCHAR), \'unknown\') AS site_id '
                       "FROM valid_icustays").pl()


def log_odds_ratio(a: int, b: int, c: int, d: int) -> tuple[float, float, bool]:
    """log OR and Woolf SE of the 2x2 table (a exposed events, b exposed non-events, c unexposed
    events, d unexposed non-events); 0.5 is added to every cell when one is zero
    (Haldane-Anscombe). Returns (log_or, se, corrected)."""
    corrected = min(a, b, c, d) == 0
    if corrected:
        a, b, c, d = (x + 0.5 for x in (a, b, c, d))
    return math.log(a * d / (b * c)), math.sqrt(1 / a + 1 / b + 1 / c + 1 / d), corrected


def _table(cohort: pl.DataFrame) -> dict[str, dict[str, int]]:
    # Death observed by the horizon vs not: a stay censored before it (eICU: every patient
    # discharged alive, since death is known only in hospital) counts as not observed to die,
    # so the eICU estimate is about in-hospital death (the site file's source_note says so).
    out = {}
    for group in (EXPOSED, UNEXPOSED):
        g = cohort.filter(pl.col("exposure") == group)
        out[group] = {"stays": g.height, "outcome_known": g.height,
                      "deaths": int(g[OUTCOME].fill_null(False).sum() or 0)}
    return out


def estimate(cohort: pl.DataFrame, min_group_stays: int) -> dict[str, Any]:
    """The site estimate of ``cohort`` (see module docs); ``value`` null when a group has fewer
    than ``min_group_stays`` stays with a known outcome."""
    t = _table(cohort)
    e, u = t[EXPOSED], t[UNEXPOSED]
    base = {"measure": "log_odds_ratio", "outcome": OUTCOME, "exposed": EXPOSED, "unexposed": UNEXPOSED,
            "label": ESTIMATE_LABEL}
    if min(e["outcome_known"], u["outcome_known"]) < min_group_stays:
        return {**base, "value": None, "se": None, "corrected": None,
                "not_estimable": f"a compared group has fewer than {min_group_stays} stays"}
    value, se, corrected = log_odds_ratio(e["deaths"], e["outcome_known"] - e["deaths"],
                                          u["deaths"], u["outcome_known"] - u["deaths"])
    return {**base, "value": value, "se": se, "corrected": corrected}


def suppressed(parts: dict[str, int], min_count: int) -> dict[str, int | str]:
    """Counts that add up to a shown total, with 1..min_count-1 written as '<min_count'; when
    exactly one part is hidden, the smallest other non-zero part is hidden too (else the total
    minus the shown parts would reveal it)."""
    small = f"<{min_count}"
    hidden = {k for k, n in parts.items() if 0 < n < min_count}
    if len(hidden) == 1:
        others = sorted((n, k) for k, n in parts.items() if k not in hidden and n > 0)
        if others:
            hidden.add(others[0][1])
    return {k: (small if k in hidden else n) for k, n in parts.items()}


def site_summary(site_id: str, cohort: pl.DataFrame, config: StudyConfig, source_note: str | None) -> dict:
    """The shareable aggregate of one site (module docs): no ids, no times, no rows."""
    min_count = int(config.get("report.min_cell_count"))
    n = cohort.height
    groups = dict(cohort.group_by("exposure").len().iter_rows()) if n else {}
    t = _table(cohort)
    return {
        "schema": SITE_SCHEMA,
        "site_id": site_id,
        "source_note": source_note,
        "min_cell_count": min_count,
        "cohort_stays": n if n == 0 or n >= min_count else f"<{min_count}",
        "stays_by_exposure": suppressed({str(k): int(v) for k, v in sorted(groups.items())}, min_count),
        "deaths_by_exposure": {g: suppressed({"died": t[g]["deaths"],
                                              "survived": t[g]["outcome_known"] - t[g]["deaths"]}, min_count)
                               for g in (EXPOSED, UNEXPOSED)},
        "estimate": estimate(cohort, int(config.get("sites.min_group_stays"))),
    }


@dataclass(frozen=True)
class PoolResult:
    payload: dict[str, Any]

    def describe(self) -> str:
        p = self.payload
        lines = [f"pool: {p['n_files']} site files, {p['k']} with an estimate ({p['measure']}, {p['outcome']})"]
        if p.get("random_effects"):
            re_, fe = p["random_effects"], p["fixed_effect"]
            lines.append(f"  random effects ({p['method_re']}): OR {math.exp(re_['value']):.2f} "
                         f"(95% CI {math.exp(re_['ci_low']):.2f}-{math.exp(re_['ci_high']):.2f}); "
                         f"I^2 {100 * p['i2']:.0f}%, tau^2 {p['tau2']:.3f}, Q {p['q']:.2f} on {p['k'] - 1} df")
            lines.append(f"  fixed effect: OR {math.exp(fe['value']):.2f} "
                         f"(95% CI {math.exp(fe['ci_low']):.2f}-{math.exp(fe['ci_high']):.2f})")
        else:
            lines.append(f"  not estimable: {p['not_estimable']}")
        if p.get("pooled_data"):
            pdat = p["pooled_data"]
            if pdat.get("value") is not None:
                lines.append(f"  pooled data (all rows together): OR {math.exp(pdat['value']):.2f} "
                             f"(95% CI {math.exp(pdat['value'] - 1.959964 * pdat['se']):.2f}-"
                             f"{math.exp(pdat['value'] + 1.959964 * pdat['se']):.2f})")
        return "\n".join(lines)


def meta_analysis(effects: np.ndarray, variances: np.ndarray, method_re: str) -> dict[str, Any]:
    """Random- and fixed-effect combination (statsmodels combine_effects), I^2, tau^2, Q."""
    from statsmodels.stats.meta_analysis import combine_effects

    import warnings

    with warnings.catch_warnings():  # HKSJ variants (not used) take sqrt of a negative variance
        warnings.simplefilter("ignore", RuntimeWarning)
        res = combine_effects(effects, variances, method_re=method_re)
        frame = res.summary_frame()
    row = {name: frame.loc[name] for name in ("fixed effect", "random effect")}

    def _est(r) -> dict[str, float]:
        return {"value": float(r["eff"]), "se": float(r["sd_eff"]), "ci_low": float(r["ci_low"]),
                "ci_high": float(r["ci_upp"])}

    fixed = _est(row["fixed effect"])
    # statsmodels 0.15 leaves the DerSimonian-Laird moment estimate untruncated: with Q below its
    # degrees of freedom it returns tau^2 < 0 and I^2 < 0 (measured: tau^2 -4.2, I^2 -8930% on
    # four sites), and weights 1/(v + tau^2) that are wrong. DerSimonian & Laird (1986) and
    # Higgins & Thompson (Stat Med 2002;21:1539-1558) truncate both at 0; then the random-effects
    # estimate is the fixed-effect one.
    tau2 = max(0.0, float(res.tau2))
    random = fixed if float(res.tau2) <= 0 else _est(row["random effect"])
    weights = res.weights_rel_fe if float(res.tau2) <= 0 else res.weights_rel_re
    return {"random_effects": random, "fixed_effect": fixed, "tau2": tau2, "i2": max(0.0, float(res.i2)),
            "q": float(res.q), "weights_re": [float(w) for w in weights]}


def _read_site_file(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise InputFileError(f"{path}: cannot read a site results file ({exc})".splitlines()[0]) from None
    if not isinstance(data, dict) or data.get("schema") != SITE_SCHEMA:
        raise InputFileError(f"{path}: not a vasoflow site results file (schema '{SITE_SCHEMA}' expected)")
    return data


def pool_site_files(paths: list[Path], config: StudyConfig) -> PoolResult:
    """Meta-analyse the estimates of site files written by ``write_site_files`` (any site)."""
    sites = [_read_site_file(p) for p in paths]
    keys = {(s["estimate"]["measure"], s["estimate"]["outcome"], s["estimate"]["exposed"],
             s["estimate"]["unexposed"]) for s in sites}
    if len(keys) > 1:
        raise InputFileError(f"{paths[0]}: the site files estimate different things ({sorted(keys)}); "
                             "pool only files of one study")
    ids = [s["site_id"] for s in sites]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise InputFileError(f"site '{dup}' appears in two files: each site must be pooled once")
    usable = [s for s in sites if s["estimate"].get("value") is not None]
    measure, outcome = next(iter(keys))[:2] if keys else ("log_odds_ratio", OUTCOME)
    payload: dict[str, Any] = {
        "schema": POOL_SCHEMA, "measure": measure, "outcome": outcome, "label": ESTIMATE_LABEL,
        "n_files": len(sites), "k": len(usable), "method_re": config.get("sites.meta_method_re"),
        "sites": [{"site_id": s["site_id"], "value": s["estimate"]["value"], "se": s["estimate"]["se"]}
                  for s in sites],
        "source_notes": sorted({s["source_note"] for s in sites if s.get("source_note")}),
    }
    if len(usable) < 2:
        payload["not_estimable"] = f"{len(usable)} site(s) with an estimate; a meta-analysis needs at least 2"
        return PoolResult(payload)
    eff = np.array([s["estimate"]["value"] for s in usable], dtype=float)
    var = np.array([s["estimate"]["se"] ** 2 for s in usable], dtype=float)
    payload |= meta_analysis(eff, var, payload["method_re"])
    return PoolResult(payload)


def write_site_files(db_path: Path, cohort_path: Path, out_dir: Path, config: StudyConfig) -> tuple[list[Path], PoolResult]:
    """One ``site-<id>.json`` per site in ``out_dir`` and ``sites_pooled.json`` (module docs)."""
    cohort = pl.read_parquet(cohort_path)
    con = duckdb_settings.connect(db_path, read_only=True)
    try:
        sites = stay_sites(con, config)
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        note = (con.execute("SELECT min(outcome_note) FROM source_info").fetchone()[0]
                if "source_info" in tables else None)
    finally:
        con.close()
    cohort = cohort.join(sites.with_columns(pl.col("stay_id").cast(cohort["stay_id"].dtype)), on="stay_id", how="left")
    cohort = cohort.with_columns(pl.col("site_id").fill_null("unknown"))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for site_id in sorted(cohort["site_id"].unique().to_list()):
        summary = site_summary(str(site_id), cohort.filter(pl.col("site_id") == site_id), config, note)
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in str(site_id))
        path = out_dir / f"site-{safe}.json"
        write_text_atomic(path, json.dumps(summary, indent=2, sort_keys=True))
        paths.append(path)
    pooled = pool_site_files(paths, config)
    pooled.payload["pooled_data"] = estimate(cohort, int(config.get("sites.min_group_stays")))
    write_text_atomic(out_dir / "sites_pooled.json", json.dumps(pooled.payload, indent=2, sort_keys=True))
    return paths, pooled

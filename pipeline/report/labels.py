"""Plain words for the report: column names, strata, strategies, roles, horizons and audit rules.

Every label that carries a number takes it from the study config (``[outcomes]``,
``[classification]``, ``[tte]``, ``[audit]``), never from a literal, so a changed setting
changes the words too. ``plain()`` rewrites the machine names that model results carry in free
text (``contrast``, ``label``: ``more_severe vs less_severe``, ``is_delayed``...) into words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pipeline.config import StudyConfig

# Cohort columns used as covariates or table rows -> words (units follow in the table labels).
COLUMNS = {
    "age_years": "age",
    "is_female": "female sex",
    "gender": "sex",
    "weight_kg": "weight",
    "lactate_at_index_mmol_l": "lactate at NE start",
    "lactate_before_vp_mmol_l": "lactate before VP start",
    "lactate_mmol_l": "lactate",
    "map_before_vp_mmhg": "MAP before VP start",
    "map_mmhg": "mean arterial pressure (MAP)",
    "creatinine_baseline_mg_dl": "baseline creatinine",
    "nee_at_vp_mcg_kg_min": "NE-equivalent dose at VP start",
    "nee_dose_mcg_kg_min": "NE-equivalent dose",
    "ne_rate_at_vp_mcg_kg_min": "NE dose at VP start (mcg/kg/min)",
    "ne_rate_at_vp_mcg_min": "NE dose at VP start (mcg/min)",
    "ne_rate_mcg_kg_min": "NE dose",
    "hours_ne_to_vp": "time from NE start to VP start",
    "rrt_before_index": "RRT before NE start",
    "is_more_severe": "more severe VASST stratum",
    "is_delayed": "delayed VP (timing class)",
    "is_recommended": "recommended timing class",
    "is_ssc_window": "Surviving Sepsis window timing class",
    "vp_added": "VP added to NE",
    "vp_before_ne": "VP before NE",
    "ne_only": "NE alone",
    "vp_start_time": "VP start",
    "index_time": "NE start",
}

ROLES = {
    "primary": "primary analysis",
    "secondary": "secondary analysis",
    "descriptive": "descriptive (no test, no causal claim)",
}


def horizons(config: StudyConfig) -> tuple[int, int]:
    """(short, long) follow-up in days from [outcomes]."""
    return int(config.get("outcomes.short_term_days")), int(config.get("outcomes.long_term_days"))


def columns(names: Iterable[str] | str) -> str:
    """A covariate list in words: ``"age_years,is_female"`` -> ``"age, female sex"``."""
    if isinstance(names, str):
        names = [n for n in names.split(",") if n.strip()]
    return ", ".join(COLUMNS.get(n.strip(), n.strip().replace("_", " ")) for n in names)


def stratum_labels(config: StudyConfig) -> dict[str, str]:
    entry = float(config.get("classification.vasst_entry_ne_mcg_min"))
    severe = float(config.get("classification.vasst_more_severe_ne_mcg_min"))
    return {
        "below_entry": f"NE < {entry:g} mcg/min (below VASST entry)",
        "less_severe": f"less severe (NE {entry:g} mcg/min to < {severe:g} mcg/min)",
        "more_severe": f"more severe (NE >= {severe:g} mcg/min)",
        "all": "all patients",
    }


def stratum_rule_text(rule: str) -> str:
    return {
        "max_before_vp": "the highest NE dose reached before VP start (patients never given VP: before the landmark)",
        "current": "the NE dose running at VP start (patients never given VP: at the landmark)",
    }.get(rule, rule.replace("_", " "))


def strategy_label(sid: str, threshold: float | None, config: StudyConfig, short: bool = False) -> str:
    """``ne_0.25`` -> "add VP when NE reaches 0.25 mcg/kg/min"; ``never`` -> "never add VP"."""
    if sid == "never" or threshold is None:
        hours = config.get("tte.decision_window_hours")
        return "never" if short else f"never add VP (within the first {float(hours):g} h)"
    if short:
        return f"{float(threshold):.2f}"
    return f"add VP when NE reaches {float(threshold):g} mcg/kg/min"


def strategy_threshold(sid: str) -> float | None:
    m = re.fullmatch(r"ne_(\d+(?:\.\d+)?)", sid)
    return float(m.group(1)) if m else None


def role_label(role: str | None) -> str:
    return ROLES.get(str(role), str(role)) if role else "role not stated"


_TOKEN = re.compile(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b")


def plain(text: str, config: StudyConfig) -> str:
    """Machine names inside a free-text label replaced by words (strata from the config)."""
    strata = stratum_labels(config)

    def repl(m: re.Match) -> str:
        tok = m.group(0)
        if tok in ("more_severe", "less_severe", "below_entry"):
            return strata[tok].split(" (")[0]
        if tok in COLUMNS:
            return COLUMNS[tok]
        if tok in ("max_before_vp", "current"):
            return stratum_rule_text(tok)
        return tok.replace("_", " ")

    return _TOKEN.sub(repl, str(text))


def audit_criteria(config: StudyConfig) -> dict[str, str]:
    """Each audit rule's pass criterion in words, numbers from [audit] and [classification]
    (the rules themselves: pipeline/audit/RULES.md and sql/marts/mart_audit_*.sql)."""
    a = lambda k: float(config.get(f"audit.{k}"))  # noqa: E731
    c = lambda k: float(config.get(f"classification.{k}"))  # noqa: E731
    late_kg, late_abs = c("timing_delayed_above_ne_mcg_kg_min"), c("timing_delayed_above_ne_mcg_min")
    return {
        "vp_max_dose": f"Vasopressin dose never above {a('vp_max_dose_units_min'):g} U/min.",
        "vp_monotherapy": "Vasopressin started while a catecholamine (NE or another) was already running, not alone.",
        "vp_delayed": f"Vasopressin added before NE exceeded {late_kg:g} mcg/kg/min or {late_abs:g} mcg/min.",
        "vp_missed": (f"NE never stayed above {late_kg:g} mcg/kg/min or {late_abs:g} mcg/min for more than"
                      f" {a('vp_missed_after_hours'):g} h without vasopressin."),
        "wean_order": (f"Vasopressin not stopped while NE was still above {a('wean_order_ne_above_mcg_kg_min'):g}"
                       " mcg/kg/min (NE weaned first)."),
        "dopamine_use": "No dopamine infusion in the shock episode.",
        "phenylephrine_first": "Phenylephrine not started before NE.",
        "hydrocortisone": (f"IV hydrocortisone started within {a('hydrocortisone_grace_hours'):g} h once the"
                           f" NE-equivalent dose had been >= {a('hydrocortisone_nee_mcg_kg_min'):g} mcg/kg/min"
                           f" for {a('hydrocortisone_after_hours'):g} h."),
        "arterial_line": "An arterial line was in place while vasopressors ran.",
        "fluids_30ml_kg": (f"At least {a('fluids_ml_kg'):g} mL/kg of crystalloid from {a('fluids_window_before_hours'):g} h"
                           f" before to {a('fluids_window_after_hours'):g} h after NE start."),
        "map_below_65": (f"MAP below {a('map_target_mmhg'):g} mmHg for at most"
                         f" {100 * a('map_below_max_fraction'):g}% of the vasopressor time."),
    }


def audit_rule_names() -> dict[str, str]:
    """Short plain names of the audit rules."""
    return {
        "vp_max_dose": "Vasopressin dose within limit",
        "vp_monotherapy": "Vasopressin added to NE, not alone",
        "vp_delayed": "Vasopressin not delayed",
        "vp_missed": "Vasopressin not missed at high NE",
        "wean_order": "NE weaned before vasopressin",
        "dopamine_use": "No dopamine",
        "phenylephrine_first": "No phenylephrine before NE",
        "hydrocortisone": "Hydrocortisone when needed",
        "arterial_line": "Arterial line",
        "fluids_30ml_kg": "Initial fluids",
        "map_below_65": "Blood pressure on target",
    }

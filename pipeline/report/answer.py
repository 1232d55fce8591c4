"""The top of the report: which data this is, whether the cohort is large enough, the answer of
the primary analysis (the target-trial emulation, ``results["tte"]``) and its protocol.

Inputs are read defensively: ``results["tte"]`` (contract C in the lead's CONTRACTS.md) may be
absent (the step did not run: the answer says so) or present with ``estimable: false`` (too few
patients: the size banner says so and the empty sections collapse). The generator's known truth
(``true_effects.json``, contract A) is found beside the synthetic source data, whose folder the
ingest ledger records (``ledger.json``: ``source_dir``), or at an explicit path.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pipeline.config import StudyConfig
from pipeline.report import figures, labels
from pipeline.report.suppress import CellPolicy

TRUTH_FILE = "true_effects.json"


# ---------------------------------------------------------------------------------------------
# Known truth of a synthetic source
# ---------------------------------------------------------------------------------------------

def find_truth(ledger: Mapping | None, truth_path: Path | None = None) -> tuple[dict | None, Path | None]:
    """The generator's ``true_effects.json``: at ``truth_path`` when given, else beside the
    source data named in the ingest ledger. (None, None) for real data."""
    candidates = []
    if truth_path is not None:
        candidates.append(Path(truth_path))
    if ledger and ledger.get("source_dir"):
        candidates.append(Path(str(ledger["source_dir"])) / TRUTH_FILE)
    for path in candidates:
        if path.is_file():
            try:
                return json.loads(path.read_text()), path
            except (OSError, ValueError):
                continue
    return None, None


def model_truth(truth: Mapping | None, name: str) -> tuple[float | None, str]:
    """(true value, note) of one reported estimate, by its results.json name. Explicit entries
    of the generator (``estimates``/``secondary``/``truths`` keyed by name: a number, or
    ``{"truth": x | null, "reason": ...}``) win; else the time-varying Cox's conditional hazard
    ratio is the generator's direct VP hazard ratio; else no defined truth."""
    if not truth:
        return None, ""
    for key in ("estimates", "secondary", "truths"):
        table = truth.get(key)
        if isinstance(table, Mapping) and name in table:
            entry = table[name]
            if isinstance(entry, Mapping):
                value = entry.get("truth", entry.get("value"))
                return (float(value) if _finite(value) else None), str(entry.get("reason") or "")
            return (float(entry) if _finite(entry) else None), ""
    if name in truth and _finite(truth[name]):
        return float(truth[name]), ""
    if name.startswith("trial.time_varying.") and name.endswith(".adjusted"):
        hr = (truth.get("hazard_ratios") or {}).get("vasopressin_time_varying")
        if _finite(hr):
            return float(hr), "the generator's direct (conditional) VP hazard ratio"
    return None, "no single true value defined for this estimate"


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


# ---------------------------------------------------------------------------------------------
# Banners
# ---------------------------------------------------------------------------------------------

def data_banner(ledger: Mapping | None, truth: Mapping | None, truth_path: Path | None,
                config: StudyConfig) -> dict[str, Any]:
    """Which data the report describes, in one or two sentences."""
    if truth is not None:
        seed, n = truth.get("seed"), truth.get("n_stays")
        made = f" ({n:,} generated ICU stays, seed {seed})" if isinstance(n, int) else ""
        return {"kind": "synthetic", "title": "Synthetic data",
                "text": (f"These results come from made-up patients{made} drawn from vasoflow's written"
                         " generative model, not from any hospital. They show what each analysis recovers"
                         " when the truth is known: the generator's true value is shown beside each"
                         " estimate. Point --source at real data for real answers."),
                "detail": f"True values: {truth_path.name if truth_path else TRUTH_FILE} beside the data."}
    if ledger is None:
        return {"kind": "unknown", "title": "Data source not recorded",
                "text": "No ingest ledger beside these outputs: the data source cannot be named.", "detail": ""}
    src = Path(str(ledger.get("source_dir", "")))
    release = "MIMIC-IV-style files"
    readme = src / "README.txt"
    if readme.is_file():
        lines = [ln.strip() for ln in readme.read_text(errors="replace").splitlines() if ln.strip()]
        release = next((ln for ln in lines if "MIMIC" in ln), release)
    if release == "MIMIC-IV-style files" and "mimic" in src.name.lower():
        release = f"MIMIC-IV ({src.name})"
    return {"kind": "real", "title": "Real data",
            "text": f"Source: {release}, folder {src.name}. Results describe these patients only.",
            "detail": ""}


def iter_models(obj: Any) -> Iterator[Mapping]:
    """Every model object (a dict with ``estimable``) in a results.json subtree."""
    if isinstance(obj, Mapping):
        if "estimable" in obj and ("name" in obj or "label" in obj or "id" in obj):
            yield obj
        for v in obj.values():
            yield from iter_models(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from iter_models(v)


def size_banner(results: Mapping | None, policy: CellPolicy, n_patients: int | None) -> dict[str, Any]:
    """``too_small`` when the analyses ran but gave no estimate at all (the primary one, or,
    without it, any model): the report then says so at the top and collapses empty sections."""
    if results is None:
        return {"too_small": False, "text": ""}
    tte = results.get("tte")
    if isinstance(tte, Mapping):
        any_ok = any(bool(s.get("estimable")) for s in tte.get("strategies") or [])
    else:
        any_ok = any(bool(m.get("estimable")) for k, m in results.items() if k != "tte"
                     for m in iter_models(m))
    if any_ok:
        return {"too_small": False, "text": ""}
    size = policy.count(n_patients) if n_patients is not None else "too few"
    return {"too_small": True,
            "text": (f"The cohort is too small for estimates: {size} patients, and no analysis reached its"
                     " minimum number of patients and deaths. Percentages, curves and model rows are"
                     " withheld; the sections below are collapsed. Use a larger data set for answers.")}


# ---------------------------------------------------------------------------------------------
# The primary analysis: answer, figure, protocol, details
# ---------------------------------------------------------------------------------------------

def _prop(x: Any) -> float | None:
    """A risk as a proportion (results hold proportions; a value above 1 is read as percent)."""
    if not _finite(x):
        return None
    return float(x) / 100.0 if float(x) > 1.0 else float(x)


def _pct(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{100 * x:.{digits}f}%"


def _pct_ci(est: Any, lo: Any, hi: Any) -> str:
    e, a, b = _prop(est), _prop(lo), _prop(hi)
    if e is None:
        return "-"
    ci = f" ({100 * a:.1f} to {100 * b:.1f})" if a is not None and b is not None else ""
    return f"{100 * e:.1f}%{ci}"


def _pct_ci_text(est: Any, lo: Any, hi: Any) -> str:
    """A risk in running text: "30.0%, 95% CI 26.0% to 34.0%"."""
    e, a, b = _prop(est), _prop(lo), _prop(hi)
    if e is None:
        return "-"
    return f"{100 * e:.1f}%" + (f", 95% CI {100 * a:.1f}% to {100 * b:.1f}%" if a is not None and b is not None else "")


def _pp_ci(est: Any, lo: Any, hi: Any) -> str:
    """A risk difference in percentage points with its interval."""
    if not _finite(est):
        return "-"
    ci = f" ({100 * lo:+.1f} to {100 * hi:+.1f})" if _finite(lo) and _finite(hi) else ""
    return f"{100 * est:+.1f} points{ci}"


def _ratio_ci(est: Any, lo: Any, hi: Any) -> str:
    if not _finite(est):
        return "-"
    ci = f" ({lo:.2f} to {hi:.2f})" if _finite(lo) and _finite(hi) else ""
    return f"{est:.2f}{ci}"


def _sid(s: Mapping) -> str:
    return str(s.get("id", ""))


def _threshold(s: Mapping) -> float | None:
    t = s.get("threshold_ne_mcg_kg_min")
    return float(t) if _finite(t) else labels.strategy_threshold(_sid(s))


def tte_section(results: Mapping | None, truth: Mapping | None, config: StudyConfig, policy: CellPolicy,
                dpi: int) -> dict[str, Any]:
    """Everything the report shows of the primary analysis."""
    short, long_ = labels.horizons(config)
    window = float(config.get("tte.decision_window_hours"))
    base = {"short": short, "long": long_, "window": f"{window:g}", "has_truth": truth is not None,
            "strategies": [], "contrasts": [], "rrt": [], "warnings": [], "role": labels.role_label("primary"),
            "estimand": "", "n": "-", "n_bootstrap": "-"}
    tte = (results or {}).get("tte") if results else None
    if not isinstance(tte, Mapping):
        why = ("the analyze step has not run" if results is None else
               "this results.json has no target-trial emulation (the primary analysis did not run)")
        return {**base, "available": False, "estimable": False,
                "message": f"Primary analysis not run: {why}.",
                "sentences": [f"No answer yet: {why}."], "protocol": [], "img": None}
    t_truth = (truth or {}).get("tte") if truth else None
    true_s = {str(s.get("id")): s for s in (t_truth or {}).get("strategies") or []}
    true_c = {(str(c.get("strategy")), str(c.get("reference"))): c for c in (t_truth or {}).get("contrasts") or []}

    strategies = [s for s in tte.get("strategies") or [] if isinstance(s, Mapping)]
    rows, points = [], []
    for s in strategies:
        sid, ok = _sid(s), bool(s.get("estimable"))
        ts = true_s.get(sid, {})
        rows.append({
            "label": labels.strategy_label(sid, _threshold(s), config),
            "risk": _pct_ci(s.get("risk_28d"), s.get("ci_low"), s.get("ci_high")) if ok else "not estimable",
            "truth": _pct(_prop(ts.get("risk_28d"))),
            "risk_long": (_pct_ci(s.get("risk_90d"), s.get("risk_90d_ci_low"), s.get("risk_90d_ci_high"))
                          if ok else "-"),
            "truth_long": _pct(_prop(ts.get("risk_90d"))),
            "n": policy.count(s.get("n_following")) if _finite(s.get("n_following")) else "-",
            "ess": (policy.count(int(round(s["effective_sample_size"])))
                    if ok and _finite(s.get("effective_sample_size")) else "-"),
        })
        points.append(figures.StrategyPoint(
            labels.strategy_label(sid, _threshold(s), config, short=True),
            _prop(s.get("risk_28d")) if ok else None, _prop(s.get("ci_low")) if ok else None,
            _prop(s.get("ci_high")) if ok else None, _prop(ts.get("risk_28d"))))
    contrasts = []
    for c in tte.get("contrasts") or []:
        key = (str(c.get("strategy")), str(c.get("reference")))
        tc = true_c.get(key, {})
        contrasts.append({
            "strategy": labels.strategy_label(key[0], labels.strategy_threshold(key[0]), config),
            "reference": labels.strategy_label(key[1], labels.strategy_threshold(key[1]), config),
            "rd": _pp_ci(c.get("risk_difference_28d"), c.get("ci_low"), c.get("ci_high")),
            "rd_truth": _pp_ci(tc.get("risk_difference_28d"), None, None),
            "rr": _ratio_ci(c.get("risk_ratio_28d"), c.get("rr_ci_low"), c.get("rr_ci_high")),
            "rr_truth": _ratio_ci(tc.get("risk_ratio_28d"), None, None),
        })
    rrt = []
    for r in tte.get("rrt") or []:
        sid = str(r.get("id", ""))
        rrt.append({"label": labels.strategy_label(sid, labels.strategy_threshold(sid), config),
                    "risk": (_pct_ci(r.get("rrt_risk_28d"), r.get("ci_low"), r.get("ci_high"))
                             if r.get("estimable") else "not estimable"),
                    "truth": _pct(_prop(true_s.get(sid, {}).get("rrt_risk_28d")))})
    protocol = [{"item": str(p.get("item", "")), "value": str(p.get("value", "")),
                 "citation": str(p.get("citation", "") or "")}
                for p in tte.get("protocol") or [] if isinstance(p, Mapping)]
    estimable = any(p.estimate is not None for p in points)
    img = None
    if estimable:
        img = figures.strategy_risk_png(
            points, ylabel=f"death by day {short} (%)",
            xlabel="NE dose (mcg/kg/min) at which VP is added", dpi=dpi)
    n_total = tte.get("n_patients")
    sentences = _answer_sentences(tte, strategies, true_s, config, policy, short, window, truth is not None)
    diag = tte.get("diagnostics") if isinstance(tte.get("diagnostics"), Mapping) else {}
    warnings = [str(w) for w in (diag.get("warnings") or []) if not any(ch.isdigit() for ch in str(w))]
    return {**base, "available": True, "estimable": estimable, "img": img, "strategies": rows,
            "contrasts": contrasts, "rrt": rrt, "protocol": protocol, "sentences": sentences,
            "role": labels.role_label(tte.get("role", "primary")),
            "estimand": str(tte.get("estimand") or ""),
            "n": policy.count(n_total) if _finite(n_total) else "-",
            "n_bootstrap": str(tte.get("n_bootstrap", "-")),
            "warnings": warnings, "message": ""}


def _answer_sentences(tte: Mapping, strategies: list[Mapping], true_s: Mapping, config: StudyConfig,
                      policy: CellPolicy, short: int, window: float, synthetic: bool) -> list[str]:
    ok = [s for s in strategies if s.get("estimable") and _prop(s.get("risk_28d")) is not None]
    if not ok:
        return [f"No answer from these data: too few patients for the primary analysis (the {short}-day risk"
                " of death under each VP strategy could not be estimated)."]
    n = tte.get("n_patients")
    who = f"Among {policy.count(n)} patients started on NE" if _finite(n) else "Among the patients started on NE"
    best = min(ok, key=lambda s: _prop(s["risk_28d"]))
    worst = max(ok, key=lambda s: _prop(s["risk_28d"]))

    def lab(s: Mapping) -> str:
        return labels.strategy_label(_sid(s), _threshold(s), config)

    out = [f"{who}, the estimated {short}-day risk of death was lowest with the strategy \"{lab(best)}\""
           f" ({_pct_ci_text(best['risk_28d'], best.get('ci_low'), best.get('ci_high'))}) and highest with"
           f" \"{lab(worst)}\" ({_pct_ci_text(worst['risk_28d'], worst.get('ci_low'), worst.get('ci_high'))})."]
    refs = [str(r) for r in config.get("tte.reference_strategies")]
    for ref in refs:
        c = next((c for c in tte.get("contrasts") or [] if str(c.get("reference")) == ref
                  and str(c.get("strategy")) == _sid(best)), None)
        if c is None or not _finite(c.get("risk_difference_28d")):
            continue
        lo, hi = c.get("ci_low"), c.get("ci_high")
        verdict = ("the interval includes no difference, so these data cannot tell the two apart"
                   if _finite(lo) and _finite(hi) and lo <= 0 <= hi else
                   "the 95% interval does not include zero")
        diff = (f"{100 * c['risk_difference_28d']:+.1f} percentage points"
                + (f" (95% CI {100 * lo:+.1f} to {100 * hi:+.1f})" if _finite(lo) and _finite(hi) else ""))
        out.append(f"Compared with \"{labels.strategy_label(ref, labels.strategy_threshold(ref), config)}\", the"
                   f" difference is {diff}: {verdict}.")
        break
    out.append("Read each risk as the share who would have died if every patient had followed that strategy."
               " It holds only if the hourly NE dose, blood pressure and lactate explain why clinicians started"
               " VP (no unmeasured confounding); it says nothing about VP doses, about decisions after the first"
               f" {window:g} h, or about patients unlike these.")
    if synthetic:
        out.append("Synthetic data: the diamonds in the figure and the \"true\" columns are the generator's"
                   " true values.")
    return out

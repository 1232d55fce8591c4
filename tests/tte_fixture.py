"""A ``results["tte"]`` section in the shape of contract C (issue 11), for rendering tests of the
report before (and independently of) the emulation step: the report must show whatever the step
writes, estimable or not. The numbers are made up and only shaped like the real thing."""

from __future__ import annotations

import json
from pathlib import Path


def fake_tte(config, *, estimable: bool = True, n_patients: int = 1450) -> dict:
    xs = [float(x) for x in config.get("tte.strategy_thresholds_ne_mcg_kg_min")]
    ids = [f"ne_{x:.2f}" for x in xs] + ["never"]
    strategies = []
    for i, sid in enumerate(ids):
        risk = 0.30 + 0.02 * i
        strategies.append({
            "id": sid, "threshold_ne_mcg_kg_min": None if sid == "never" else xs[i],
            "grace_hours": int(config.get("tte.grace_hours")),
            "risk_28d": risk if estimable else None, "ci_low": risk - 0.04 if estimable else None,
            "ci_high": risk + 0.04 if estimable else None,
            "risk_90d": risk + 0.08 if estimable else None,
            "risk_90d_ci_low": risk + 0.03 if estimable else None,
            "risk_90d_ci_high": risk + 0.13 if estimable else None,
            "n_following": 400 + 37 * i if estimable else 3, "effective_sample_size": 250.4 + 11 * i if estimable else None,
            "estimable": estimable, "reason": "" if estimable else "too few patients",
        })
    contrasts = []
    for ref in config.get("tte.reference_strategies"):
        r = next(s for s in strategies if s["id"] == ref)
        for s in strategies:
            if s["id"] == ref:
                continue
            rd = (s["risk_28d"] - r["risk_28d"]) if estimable else None
            contrasts.append({"strategy": s["id"], "reference": ref, "risk_difference_28d": rd,
                              "ci_low": rd - 0.05 if estimable else None, "ci_high": rd + 0.05 if estimable else None,
                              "risk_ratio_28d": s["risk_28d"] / r["risk_28d"] if estimable else None,
                              "rr_ci_low": 0.8 if estimable else None, "rr_ci_high": 1.3 if estimable else None})
    protocol = [{"item": item, "value": value, "citation": "Hernan & Robins 2016"} for item, value in (
        ("Eligibility", "adults with septic shock started on NE, no VP before NE"),
        ("Time zero", "NE start"),
        ("Strategies", "add VP within 1 h once NE reaches X mcg/kg/min; never add VP"),
        ("Grace period", "1 h"), ("Follow-up", "from NE start to death or day 90"),
        ("Outcomes", "death by day 28 and 90; RRT by day 28"),
        ("Contrasts", "risk differences and ratios vs NE 0.25 and never"),
        ("Analysis", "clone-censor-weight, pooled logistic hazards, bootstrap CIs"))]
    return {
        "role": "primary",
        "estimand": (f"The {config.get('outcomes.short_term_days')}-day risk of death if every patient"
                     " had VP added when NE first reached X."),
        "strategies": strategies, "contrasts": contrasts, "protocol": protocol,
        "rrt": [{"id": s["id"], "rrt_risk_28d": 0.1 if estimable else None, "ci_low": 0.07 if estimable else None,
                 "ci_high": 0.13 if estimable else None, "estimable": estimable} for s in strategies],
        "diagnostics": {"weights": {"min": 0.5, "max": 9.0}, "warnings": []},
        "n_patients": n_patients, "n_bootstrap": 200,
    }


def inject_tte(out_dir: Path, config, **kw) -> None:
    """Add the fake ``tte`` section to ``out_dir/results.json`` (unless the run already has one)."""
    path = Path(out_dir) / "results.json"
    results = json.loads(path.read_text())
    if "tte" not in results:
        results["tte"] = fake_tte(config, **kw)
    path.write_text(json.dumps(results))

"""``run_tte``: the target-trial emulation from cohort.parquet + hourly_panel.parquet to the
``tte`` section of results.json (layout: pipeline/models/RESULTS_SCHEMA.md, section "tte").

Confidence intervals: estimate +/- z x bootstrap standard error (risk ratios on the log scale),
z for [models].confidence_level; risks clipped to [0, 1]. A strategy is "not estimable" (with
the reason) when the censoring model cannot be fitted or positivity fails (fewer clones than
[tte].positivity_min_following follow it through the decision window, or fewer patients than
positivity_min_initiators start VP as it says); its numbers are then null.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from pipeline.atomic import write_text_atomic
from pipeline.config import StudyConfig
from pipeline.parallel import one_blas_thread
from pipeline.tte.data import TteData, load_inputs, prepare
from pipeline.tte.estimate import EstimateSettings, bootstrap, estimate, make_clones, make_plan
from pipeline.tte.strategies import at_risk, strategies_of

TTE_FILE = "tte.json"
WEIGHT_QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
ESTIMAND = ("The risk of death by day {short} (and day {long}) after norepinephrine start if vasopressin "
            "were started within {grace} h after the norepinephrine rate first reaches X mcg/kg/min (never "
            "before), for each X, or never started in the first {window:g} h, among the cohort's patients "
            "without vasopressin at norepinephrine start.")


def _num(x) -> float | None:
    return None if x is None or not math.isfinite(float(x)) else float(x)


def protocol_rows(config: StudyConfig) -> list[dict]:
    """The TARGET table (contract C ``tte.protocol``): the protocol as data, from [tte]."""
    tte = config.typed("tte")
    out = config.get("outcomes")
    cite = tte.protocol_citation
    xs = ", ".join(f"{x:g}" for x in tte.strategy_thresholds_ne_mcg_kg_min)
    never = f"; plus never start VP within the {tte.decision_window_hours:g} h decision window" if tte.include_never_strategy else ""
    return [
        {"item": "eligibility", "value": "the analysis cohort (adult, sepsis, first qualifying stay; see attrition) "
                                         "without vasopressin at or before time zero", "citation": cite},
        {"item": "time zero", "value": "index_time: norepinephrine start of the index shock episode", "citation": cite},
        {"item": "strategies", "value": f"for X in [{xs}] mcg/kg/min: start vasopressin within {tte.grace_hours} h "
                                        f"after the norepinephrine rate first reaches X, never before{never}",
         "citation": "Cain LE et al. Int J Biostat 2010;6:18 (dynamic strategies); Evans L et al. Crit Care Med "
                     "2021;49:e1063 (Surviving Sepsis 2021: 0.25-0.5 mcg/kg/min)"},
        {"item": "grace period", "value": f"{tte.grace_hours} h (hourly slots starting with the hour the threshold is reached)",
         "citation": "Ewings FM et al. (grace periods in dynamic-strategy emulation); study choice"},
        {"item": "follow-up", "value": f"time zero to death or day {out['long_term_days']} (administrative end where "
                                       f"the death record ends); strategies restrict vasopressin in the first "
                                       f"{tte.decision_window_hours:g} h", "citation": cite},
        {"item": "outcomes", "value": f"death by day {out['short_term_days']} (primary) and day {out['long_term_days']}; "
                                      f"RRT by day {out['short_term_days']} with death as a competing event (patients "
                                      f"without chronic dialysis or RRT before time zero)", "citation": cite},
        {"item": "contrasts", "value": "risk under each strategy; risk differences and ratios vs "
                                       + " and vs ".join(tte.reference_strategies),
         "citation": "Evans L et al. Crit Care Med 2021;49:e1063 (reference X = 0.25)"},
        {"item": "analysis", "value": "clone each eligible patient into every strategy; censor a clone when it deviates; "
                                      "inverse probability of censoring weights from a pooled logistic model of VP "
                                      "initiation (time-updated NE dose, MAP, lactate when assessable, other "
                                      "vasopressors, hours since time zero, baseline covariates: "
                                      + ", ".join(tte.censoring_baseline_covariates) + "); weighted Kaplan-Meier "
                                      "(Aalen-Johansen for RRT) per strategy; patient-level bootstrap "
                                      f"({tte.n_bootstrap} replicates, weights refitted in each) for CIs"
                                      + (f"; weights truncated at percentile {tte.weight_truncation_percentile:g}"
                                         if tte.weight_truncation_percentile < 100 else ""),
         "citation": "Maringe C et al. Int J Epidemiol 2020;49:1719 (clone-censor-weight); Cole SR, Hernan MA. "
                     "Am J Epidemiol 2008;168:656 (weights)"},
    ]


def _diagnostics(data: TteData, clones, est, min_following: int, min_initiators: int) -> tuple[dict, list, list]:
    """Weight distribution, ESS, clones uncensored per hour; per strategy (n_following, ess, reason)."""
    per: list[dict] = []
    pooled = []
    warnings: list[str] = list(data.notes)
    for s, sid in enumerate(clones.ids):
        censor = clones.censor[s]
        risk = at_risk(data, censor)
        uncens = np.bincount(data.row_hour[risk], minlength=data.window_hours)[: data.window_hours]
        following = (censor > data.last_row_hour) & (data.last_row_hour >= 0)
        n_following = int(following.sum())
        w = est.weights[s]
        ess = None
        wdist = None
        if w is not None and risk.any():
            last_rows = risk & (data.row_hour == data.last_row_hour[data.row_pid])
            wf = w[last_rows]
            ess = float(wf.sum() ** 2 / (wf ** 2).sum()) if len(wf) and (wf ** 2).sum() > 0 else 0.0
            pooled.append(w[risk])
            wdist = {"mean_uncensored_weight_end_of_window": _num(
                w[risk & (data.row_hour == data.window_hours - 1)].sum()
                / max(1, int((data.row_hour == data.window_hours - 1).sum())))}
        reason = None
        n_init = int(clones.initiated[s].sum())
        if w is None:
            reason = f"censoring model not estimable: {est.reason}"
        elif n_following < min_following:
            reason = (f"positivity: {n_following} patients follow the strategy through the decision window "
                      f"(< {min_following}, [tte].positivity_min_following)")
        elif not clones.is_never[s] and n_init < min_initiators:
            reason = (f"positivity: {n_init} patients start vasopressin as the strategy says "
                      f"(< {min_initiators}, [tte].positivity_min_initiators)")
        if reason:
            warnings.append(f"{sid}: not estimable ({reason})")
        per.append({"id": sid, "n_following": n_following, "n_initiating": n_init,
                    "effective_sample_size": _num(ess), "clones_uncensored_per_hour": [int(x) for x in uncens],
                    "weights": wdist, "reason": reason})
    allw = np.concatenate(pooled) if pooled else np.zeros(0)
    dist = None
    if len(allw):
        qs = np.quantile(allw, WEIGHT_QUANTILES)
        dist = {"min": float(allw.min()), "max": float(allw.max()), "mean": float(allw.mean()),
                "quantiles": {f"p{int(round(q * 100)):02d}": float(v) for q, v in zip(WEIGHT_QUANTILES, qs)},
                "n_clone_hours": int(len(allw))}
    return {"weights": dist, "strategies": per}, per, warnings


def run_tte(cohort_path: Path, out_dir: Path, config: StudyConfig, n_bootstrap: int | None = None,
            workers: int | None = None) -> dict:
    """Estimate every strategy of [tte]; write ``tte.json`` in ``out_dir``; return the section."""
    from scipy.stats import norm

    tte = config.typed("tte")
    outcomes = config.get("outcomes")
    level = float(config.get("models.confidence_level"))
    z = float(norm.ppf(0.5 + level / 2))
    n_boot = tte.n_bootstrap if n_bootstrap is None else int(n_bootstrap)
    workers = tte.bootstrap_workers if workers is None else int(workers)
    cohort, panel = load_inputs(cohort_path)
    data = prepare(cohort, panel, tte.decision_window_hours, list(tte.censoring_baseline_covariates))
    del cohort, panel  # numpy arrays from here on (the frames would stay in memory, and in every worker)
    clones = make_clones(data, strategies_of(tte), tte.grace_hours)
    settings = EstimateSettings(short_days=float(outcomes["short_term_days"]), long_days=float(outcomes["long_term_days"]),
                                truncation_percentile=tte.weight_truncation_percentile,
                                min_starts=tte.positivity_min_initiators)
    # One BLAS thread in this process and in the forked bootstrap workers (pipeline.parallel):
    # the two workers are what use the two cores.
    with one_blas_thread():
        plan = make_plan(data, clones, settings)
        est = estimate(data, clones, settings, plan=plan)
        diag, per, warnings = _diagnostics(data, clones, est, tte.positivity_min_following,
                                           tte.positivity_min_initiators)
        estimable = [p["reason"] is None and np.all(np.isfinite(est.values[s, :2])) for s, p in enumerate(per)]
        boots = np.full((0, len(clones.ids), 3), np.nan)
        if any(estimable) and n_boot > 0:
            boots = bootstrap(data, clones, settings, n_boot, tte.bootstrap_seed, workers, est.coefficients, plan)
    n_failed = int(np.isnan(boots[:, :, 0]).all(axis=1).sum()) if len(boots) else 0
    if n_failed:
        warnings.append(f"{n_failed} of {len(boots)} bootstrap replicates could not fit the censoring model")

    def ci(s: int, m: int) -> tuple[float | None, float | None]:
        col = boots[:, s, m] if len(boots) else np.zeros(0)
        col = col[np.isfinite(col)]
        if len(col) < 2 or not math.isfinite(est.values[s, m]):
            return None, None
        se = float(col.std(ddof=1))
        return max(0.0, est.values[s, m] - z * se), min(1.0, est.values[s, m] + z * se)

    strategies, rrt = [], []
    for s, (sid, p) in enumerate(zip(clones.ids, per)):
        ok = estimable[s]
        lo, hi = ci(s, 0) if ok else (None, None)
        lo90, hi90 = ci(s, 1) if ok else (None, None)
        thr = None if clones.is_never[s] else float(sid[3:])
        strategies.append({
            "id": sid, "threshold_ne_mcg_kg_min": thr, "grace_hours": int(tte.grace_hours),
            "risk_28d": _num(est.values[s, 0]) if ok else None, "ci_low": lo, "ci_high": hi,
            "risk_90d": _num(est.values[s, 1]) if ok else None, "risk_90d_ci_low": lo90, "risk_90d_ci_high": hi90,
            "n_following": p["n_following"], "n_initiating": p["n_initiating"],
            "effective_sample_size": p["effective_sample_size"], "estimable": bool(ok),
            "reason": p["reason"] if not ok else None,
        })
        r_ok = ok and math.isfinite(est.values[s, 2])
        rlo, rhi = ci(s, 2) if r_ok else (None, None)
        rrt.append({"id": sid, "rrt_risk_28d": _num(est.values[s, 2]) if r_ok else None, "ci_low": rlo,
                    "ci_high": rhi, "estimable": bool(r_ok),
                    "reason": None if r_ok else (p["reason"] or "no RRT-eligible patient at risk")})
    contrasts = []
    index = {sid: s for s, sid in enumerate(clones.ids)}
    for ref in tte.reference_strategies:
        rid = ref if ref == "never" else f"ne_{float(ref[3:]):.2f}"
        r = index[rid]
        for s, sid in enumerate(clones.ids):
            if s == r:
                continue
            row = {"strategy": sid, "reference": rid, "risk_difference_28d": None, "ci_low": None, "ci_high": None,
                   "risk_ratio_28d": None, "rr_ci_low": None, "rr_ci_high": None, "estimable": False, "reason": None}
            if not (estimable[s] and estimable[r]):
                row["reason"] = "; ".join(f"{clones.ids[k]} not estimable" for k in (s, r) if not estimable[k])
                contrasts.append(row)
                continue
            a, b = est.values[s, 0], est.values[r, 0]
            row.update(risk_difference_28d=float(a - b), estimable=True)
            if len(boots) >= 2:
                d = boots[:, s, 0] - boots[:, r, 0]
                d = d[np.isfinite(d)]
                if len(d) >= 2:
                    se = float(d.std(ddof=1))
                    row.update(ci_low=float(a - b - z * se), ci_high=float(a - b + z * se))
            if b > 0 and a > 0:
                row["risk_ratio_28d"] = float(a / b)
                if len(boots) >= 2:
                    with np.errstate(divide="ignore", invalid="ignore"):
                        lr = np.log(boots[:, s, 0] / boots[:, r, 0])
                    lr = lr[np.isfinite(lr)]
                    if len(lr) >= 2:
                        se = float(lr.std(ddof=1))
                        row.update(rr_ci_low=float(a / b * math.exp(-z * se)), rr_ci_high=float(a / b * math.exp(z * se)))
            contrasts.append(row)
    if not any(estimable):
        warnings.append("no strategy is estimable on this data (reasons per strategy)")
    diag["warnings"] = warnings
    diag["n_bootstrap_failed"] = n_failed
    diag["censoring_model"] = {"covariates": list(data.design_names),
                               "fitted": est.reason is None and est.coefficients is not None,
                               "reason": est.reason}
    section = {
        "role": "primary",
        "estimand": ESTIMAND.format(short=outcomes["short_term_days"], long=outcomes["long_term_days"],
                                    grace=tte.grace_hours, window=tte.decision_window_hours),
        "n_patients": int(data.n),
        "n_bootstrap": int(len(boots)),
        "confidence_level": level,
        "ci_method": "estimate +/- z x bootstrap SE (risk ratio on the log scale)",
        "estimable": bool(any(estimable)),
        "strategies": strategies,
        "contrasts": contrasts,
        "rrt": rrt,
        "protocol": protocol_rows(config),
        "diagnostics": diag,
    }
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out_dir / TTE_FILE, json.dumps(section, indent=2, allow_nan=False) + "\n")
    return section


def describe(section: dict) -> str:
    """A few lines for the CLI: 28-day risk per strategy with its CI, or why not estimable."""
    lines = [f"target-trial emulation: {section['n_patients']} eligible patients, "
             f"{section['n_bootstrap']} bootstrap replicates"]
    for s in section["strategies"]:
        if s["estimable"]:
            ci = "" if s["ci_low"] is None else f" ({s['ci_low']:.3f}-{s['ci_high']:.3f})"
            lines.append(f"  {s['id']:<8} 28-day risk {s['risk_28d']:.3f}{ci}, {s['n_following']} following, "
                         f"ESS {s['effective_sample_size']:.0f}")
        else:
            lines.append(f"  {s['id']:<8} not estimable: {s['reason']}")
    return "\n".join(lines)


def merge_into_results(results_path: Path, section: dict, out_path: Path) -> Path:
    """results.json of the analyze step with the ``tte`` key added (written to ``out_path``)."""
    results = json.loads(Path(results_path).read_text())
    results["tte"] = section
    return write_text_atomic(Path(out_path), json.dumps(results, indent=2, allow_nan=False) + "\n")

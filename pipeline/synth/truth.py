"""Ground truth of a synthetic dataset: one row per ICU stay, from the generator's own
construction (never by querying the written files), plus the documentation of the model.

Column semantics follow /work/briefs/cohort_spec.md (the contract with the cohort SQL):
index_time is the first infusing NE start of the stay; exposure, vp_start_time and the NE rate
at VP start are those of the index shock episode; vasst_stratum / timing_class use the
thresholds of config/study.toml [classification]; death_time is what the cohort derives from
admissions.deathtime / patients.dod.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import polars as pl

from pipeline.synth import world
from pipeline.synth.params import MEANINGS, SynthParams


def vasst_stratum(ne_mcg_min: pl.Expr, cfg: dict) -> pl.Expr:
    """below_entry < entry <= less_severe < more_severe_threshold <= more_severe (NE mcg/min)."""
    return (
        pl.when(ne_mcg_min.is_null()).then(None)
        .when(ne_mcg_min < cfg["vasst_entry"]).then(pl.lit("below_entry"))
        .when(ne_mcg_min < cfg["vasst_more_severe"]).then(pl.lit("less_severe"))
        .otherwise(pl.lit("more_severe"))
    )


def timing_class(ne_mcg_kg_min: pl.Expr, ne_mcg_min: pl.Expr, cfg: dict) -> pl.Expr:
    """delayed if > absolute mcg/min or > delayed mcg/kg/min; else early < recommended <
    ssc_window (upper edge inclusive)."""
    return (
        pl.when(ne_mcg_kg_min.is_null()).then(None)
        .when((ne_mcg_min > cfg["timing_delayed_mcg_min"]) | (ne_mcg_kg_min > cfg["timing_delayed"]))
        .then(pl.lit("delayed"))
        .when(ne_mcg_kg_min < cfg["timing_recommended"]).then(pl.lit("early"))
        .when(ne_mcg_kg_min < cfg["timing_ssc"]).then(pl.lit("recommended"))
        .otherwise(pl.lit("ssc_window"))
    )


_TRUTH_CACHE: dict[tuple, dict] = {}


def _tte_key(tte) -> tuple:
    return (tuple(float(x) for x in tte.strategy_thresholds_ne_mcg_kg_min), bool(tte.include_never_strategy),
            int(tte.grace_hours), float(tte.decision_window_hours), tuple(tte.reference_strategies))


def strategy_truth_full(prm: SynthParams, n: int, seed: int, tte) -> dict:
    """The ``tte`` section of true_effects.json (contract A) plus natural-course population
    values (key ``_natural``), from ``n`` patients re-simulated under every strategy with common
    random numbers. Memoised in-process (same parameters, n, seed and protocol)."""
    key = (prm.key(), n, seed, _tte_key(tte))
    if key in _TRUTH_CACHE:
        return _TRUTH_CACHE[key]
    runs = world.run_strategies(prm, n, seed, tte)
    nat = runs.pop("natural")
    runs.pop("_base")
    d28 = {k: c.risk(28) for k, c in runs.items()}
    d90 = {k: c.risk(90) for k, c in runs.items()}
    strategies = []
    for st in world.strategies_of(tte):
        sid = world.strategy_id(st)
        c = runs[sid]
        r28, r90 = float(d28[sid].mean()), float(d90[sid].mean())
        strategies.append({
            "id": sid, "threshold_ne_mcg_kg_min": None if st[0] == "never" else float(st[1]),
            "grace_hours": int(tte.grace_hours), "risk_28d": r28, "risk_90d": r90,
            "mc_se_28d": math.sqrt(r28 * (1 - r28) / n), "mc_se_90d": math.sqrt(r90 * (1 - r90) / n),
            "rrt_risk_28d": float((c.rrt_hour <= 28 * 24.0).mean()),
        })
    ids = [x["id"] for x in strategies]
    refs = [r if r == "never" else f"ne_{float(r[3:]):.2f}" for r in tte.reference_strategies]
    contrasts = []
    for ref in refs:
        for sid in ids:
            if sid == ref:
                continue
            diff28 = d28[sid].astype(float) - d28[ref]
            r_ref = float(d28[ref].mean())
            contrasts.append({
                "strategy": sid, "reference": ref,
                "risk_difference_28d": float(diff28.mean()),
                "risk_ratio_28d": float(d28[sid].mean()) / r_ref if r_ref > 0 else None,
                "risk_difference_90d": float((d90[sid].astype(float) - d90[ref]).mean()),
                "mc_se_rd_28d": float(diff28.std() / math.sqrt(n)),
            })
    w = float(tte.decision_window_hours)
    out = {"decision_window_hours": int(w) if w.is_integer() else w, "grace_hours": int(tte.grace_hours),
           "n_simulated": int(n), "seed": int(seed), "strategies": strategies, "contrasts": contrasts,
           "population": "patients starting NE for septic shock without VP before NE (the hourly world's "
                         "shock population; ages as the adult cohort)",
           "_natural": _natural_values(nat)}
    _TRUTH_CACHE[key] = out
    return out


def _natural_values(nat: world.Course) -> dict:
    """Population values of the descriptive quantities in the natural course (no intervention)."""
    import numpy as np

    d28 = nat.risk(28)
    vp = nat.vp_start_hour >= 0
    rate = nat.rate_at_vp
    out = {"risk_28d": float(d28.mean()), "risk_90d": float(nat.risk(90).mean()),
           "share_vp": float(vp.mean()),
           "risk_28d_ever_vp": float(d28[vp].mean()) if vp.any() else None,
           "risk_28d_never_vp": float(d28[~vp].mean()) if (~vp).any() else None,
           "risk_28d_by_ne_at_vp_start": {}}
    for lo, hi in ((0.0, 0.10), (0.10, 0.25), (0.25, 0.50), (0.50, np.inf)):
        g = vp & (rate >= lo - 1e-9) & (rate < hi - 1e-9)
        out["risk_28d_by_ne_at_vp_start"][f"[{lo:g}, {hi:g})"] = float(d28[g].mean()) if g.any() else None
    return out


def strategy_truth(params: SynthParams | None, n: int, seed: int, config) -> dict:
    """Contract A: the ``tte`` dict of true_effects.json, without writing files."""
    full = strategy_truth_full(params or SynthParams(), n, seed, config.typed("tte"))
    return {k: v for k, v in full.items() if not k.startswith("_")}


def true_effects(prm: SynthParams, seed: int, n_stays: int, truth: pl.DataFrame, tte_full: dict) -> dict:
    cohort = truth.filter(pl.col("in_cohort"))
    vpa = cohort.filter(pl.col("exposure") == "vp_added")
    nat = tte_full["_natural"]
    by_id = {s["id"]: s for s in tte_full["strategies"]}

    def counts(df: pl.DataFrame, col: str) -> dict:
        return {str(k): int(v) for k, v in df.group_by(col).len().sort(col).iter_rows()}

    def none(reason: str, **extra) -> dict:
        return {"truth": None, "reason": reason, **extra}

    closest = None
    if "ne_0.50" in by_id and "ne_0.25" in by_id:
        closest = {"contrast": "ne_0.50 vs ne_0.25, 28-day risk ratio",
                   "value": by_id["ne_0.50"]["risk_28d"] / by_id["ne_0.25"]["risk_28d"]}
    tte_out = {k: v for k, v in tte_full.items() if not k.startswith("_")}
    return {
        "seed": seed,
        "n_stays": n_stays,
        "outcome_model": "hour-by-hour septic-shock world (pipeline.synth.world); death hazard depends on "
                         "the current NE dose, latent severity, age and a direct VP effect",
        "log_hazard_ratios": {
            "age_per_10y_above_65": prm.b_age_per_10y,
            "severity_per_sd_on_ne": prm.b_severity,
            "ne_dose_per_log_unit": prm.b_dose_per_log,
            "vasopressin_direct_while_on_ne": prm.b_vp,
            "no_vasopressor_anchor_stay": prm.b_no_pressor,
        },
        "hazard_ratios": {"vasopressin_direct_while_on_ne": math.exp(prm.b_vp)},
        "vp_ne_sparing_log": prm.vp_ne_sparing_log,
        "rrt_model": {
            "hazard_per_day_on_ne": prm.rrt_hazard_per_day,
            "log_hr_creatinine_per_mg_dl_above_1_5": prm.c_rrt_creatinine_per_mg_dl,
            "log_hr_severity_per_sd": prm.c_rrt_severity,
            "log_hr_ne_dose_per_log_unit": prm.c_rrt_per_log_dose,
            "observed": "only while on NE (so inside the ICU stay); death competes",
        },
        "tte": tte_out,
        "natural_course": nat,
        "estimands": {
            "tte": {"truth": "tte.strategies / tte.contrasts",
                    "reason": "interventional risks of the protocol's strategies, re-simulated with common random numbers"},
            "descriptive.mortality": {"truth": {"risk_28d": nat["risk_28d"], "risk_90d": nat["risk_90d"]},
                                      "reason": "population value in the natural course (shock population; the "
                                                "cohort also holds vp_before_ne stays)"},
            "descriptive.kaplan_meier": none("descriptive survival by exposure / stratum / timing class: groups "
                                             "defined after treatment, no causal truth; natural-course 28-day "
                                             "risks by NE at VP start are in natural_course"),
            "vasst_hr": none("hazard ratio between VASST strata at VP start compares patients (prognosis), not "
                             "treatments: no causal truth"),
            "vasst_comparison": none("side-by-side description of the cohort against VASST: no causal truth"),
            "trial.time_varying": none(
                "hazard ratio of VP given baseline covariates mixes the direct effect and the effect through "
                "the (lowered) NE dose and is not collapsible: no single true value; the conditional direct "
                "HR given current dose and severity is hazard_ratios.vasopressin_direct_while_on_ne"),
            "trial.naive": none("ever-VP comparison: immortal time and confounding by the current dose; "
                                "natural-course crude values in natural_course"),
            "trial.landmark": none("landmark comparison conditions on survival and VP status at the landmark; "
                                   "no interventional counterpart in this world"),
            "delayed_vp": none("'delayed vs earlier' compares groups defined by the NE dose at VP start among "
                               "patients who got VP (post-treatment selection)", closest_interventional=closest),
            "rrt": none("RRT models compare exposure groups defined after treatment; the interventional 28-day "
                        "RRT risks per strategy are tte.strategies[].rrt_risk_28d"),
        },
        "cohort": {
            "n_rows": cohort.height,
            "exposure": counts(cohort, "exposure"),
            "vasst_stratum_vp_added": counts(vpa, "vasst_stratum"),
            "timing_class_vp_added": counts(vpa, "timing_class"),
            "death_28d_share": float(cohort["death_28d"].mean()) if cohort.height else None,
            "deaths_before_planned_vp_start": int(cohort["is_vp_prevented_by_death"].sum()),
        },
    }


def _f(v) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def generative_model_md(prm: SynthParams, seed: int, n_stays: int, effects: dict) -> str:
    params = "\n".join(f"| `{k}` | `{v}` | {MEANINGS.get(k, '')} |" for k, v in prm.as_dict().items() if k != "extra")
    c = effects["cohort"]
    t = effects["tte"]
    rows = "\n".join(f"| {s['id']} | {s['risk_28d']:.4f} (MC SE {s['mc_se_28d']:.4f}) | {s['risk_90d']:.4f} | "
                     f"{s['rrt_risk_28d']:.4f} |" for s in t["strategies"])
    nat = effects["natural_course"]
    by_dose = ", ".join(f"{k} {_f(v)}" for k, v in nat["risk_28d_by_ne_at_vp_start"].items())
    return f"""# Generative model of this synthetic dataset

Written by `pipeline.synth.generate` (vasoflow). seed = {seed}, n_stays = {n_stays}.
Same seed and n give byte-identical files.

## In plain words
Each patient in septic shock starts norepinephrine (NE) at time zero. Every hour after that,
the patient's NE requirement moves: it depends on a hidden severity, on a personal trend (some
patients get better, some get worse, and everybody improves with time) and on chance. Nurses
chart a new NE rate (a new MetaVision row) whenever the requirement has moved far enough from
the rate running. Sicker patients and higher doses mean a lower mean arterial pressure (MAP)
and a higher lactate. Each hour, the clinician may add vasopressin (VP): the higher the current
NE dose and the lower the MAP, the likelier. So some patients get VP at low doses, some at high
doses, and some never. Once VP runs, the NE requirement is lower (VP spares NE) and the risk of
dying is directly lower too. The risk of dying in an hour rises with the current NE dose, the
hidden severity and age. Because the dose drives both the decision to add VP and death, and VP
lowers later doses, the dose is a time-varying confounder affected by earlier treatment:
comparing patients by the dose at which they got VP, or VP against no VP, is biased. When the
requirement falls low enough, NE is stopped for good and a lower post-shock risk applies until
the end of follow-up. RRT has the same construction (its hazard rises with the current dose).

The hourly world is `pipeline.synth.world` (one numpy step per hour for all patients).

## The truth of the target trial
For each strategy "start VP within {t['grace_hours']} h after the NE rate first reaches X
mcg/kg/min, never before" (during the first {t['decision_window_hours']:g} h; usual care after)
and for "never start VP in the window", {t['n_simulated']:,} patients (seed {t['seed']}, not written
to files) were re-simulated with the strategy forced and the same random numbers (common random
numbers). Population: {t['population']}.

| strategy | 28-day risk | 90-day risk | 28-day RRT risk |
| --- | --- | --- | --- |
{rows}

Natural course (same population, no intervention): 28-day risk {nat['risk_28d']:.4f}; share
with VP {nat['share_vp']:.3f}; crude 28-day risk with VP {_f(nat['risk_28d_ever_vp'])} vs without
{_f(nat['risk_28d_never_vp'])}; by NE rate at VP start (mcg/kg/min) {by_dose}. These crude numbers
are what a comparison ignoring time-varying confounding targets; compare them with the table.
Risk differences: `true_effects.json` tte.contrasts.
Every other estimate of the study: `true_effects.json` estimands (true value, or null with the reason).

## Patients, admissions, stays
Each patient has 0-2 *prior* admissions (one ICU stay each, never a sepsis code; some with a
short NE infusion), then an *anchor* admission (the last one) with the *anchor* ICU stay and
sometimes a *readmission* ICU stay later in the same admission (sometimes with NE). Age is
`anchor_age + year(admittime) - anchor_year`. Sepsis codes are on septic anchor admissions
only; non-septic ones sometimes carry near-miss SIRS codes (99593, R6510).

## Files
NE 221906 rows in mcg/kg/min, one per constant charted rate (one linkorderid per infusion, new
orderid per row; at a rate change the old row sometimes runs on 1-5 min or stops 5-25 min early
(Paused)); Rewritten audit copies with a wrong rate. VP 222315 in units/hour (or units/min) from
the start minute in the decision hour until NE stops; exposure vp_before_ne when VP runs before NE.
Traps (ground_truth column `trap`): VP at the NE start minute, VP at the minute of an NE rate
change, VP during an NE pause (rate 0 at VP start), NE rates exactly on the thresholds. MAP
(chartevents) is charted at every hour of the shock clock (index_time + k h): the world's value
while on NE. Lactate (labevents): baseline 10-180 min before NE start, then every 6 h on NE in
the decision window. Death in the ICU sets outtime; in hospital admissions.deathtime; after
discharge patients.dod (within the coverage period).

## Cohort-level truth (default switches)
Cohort rows: {c['n_rows']}; exposure {c['exposure']}; VASST strata (vp_added)
{c['vasst_stratum_vp_added']}; timing classes {c['timing_class_vp_added']}; 28-day mortality
{c['death_28d_share']}; deaths before the planned VP start {c['deaths_before_planned_vp_start']}.
Per stay: `ground_truth.parquet`. Rows corrupted on purpose: `ground_truth_quarantine.parquet`.

## Every parameter
| parameter | value | meaning |
| --- | --- | --- |
{params}
"""


def write_docs(out_dir: Path, prm: SynthParams, seed: int, n_stays: int, truth: pl.DataFrame, tte_full: dict) -> None:
    effects = true_effects(prm, seed, n_stays, truth, tte_full)
    (out_dir / "true_effects.json").write_text(json.dumps(effects, indent=2, sort_keys=True) + "\n")
    (out_dir / "GENERATIVE_MODEL.md").write_text(generative_model_md(prm, seed, n_stays, effects))

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

from pipeline.synth.params import SynthParams


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


def true_effects(prm: SynthParams, seed: int, n_stays: int, truth: pl.DataFrame) -> dict:
    cohort = truth.filter(pl.col("in_cohort"))
    vpa = cohort.filter(pl.col("exposure") == "vp_added")

    def counts(df: pl.DataFrame, col: str) -> dict:
        return {str(k): int(v) for k, v in df.group_by(col).len().sort(col).iter_rows()}

    return {
        "seed": seed,
        "n_stays": n_stays,
        "outcome_model": "piecewise-exponential hazard of death from index_time (NE start)",
        "log_hazard_ratios": {
            "age_per_10y_above_65": prm.b_age_per_10y,
            "lactate_per_mmol_l_above_2": prm.b_lactate_per_mmol_l,
            "is_more_severe": prm.b_severe,
            "vasopressin_time_varying": prm.b_vp,
            "no_vasopressor_anchor_stay": prm.b_no_pressor,
        },
        "hazard_ratios": {
            "is_more_severe": math.exp(prm.b_severe),
            "vasopressin_time_varying": math.exp(prm.b_vp),
        },
        "baseline_hazard_per_day": list(prm.baseline_hazard_per_day),
        "baseline_breaks_days": list(prm.baseline_breaks_days),
        "rrt_model": {
            "cause_specific_hazard_per_day": prm.rrt_hazard_per_day,
            "log_hr_creatinine_per_mg_dl_above_1_5": prm.c_rrt_creatinine_per_mg_dl,
            "log_hr_is_more_severe": prm.c_rrt_severe,
            "observed": "only while in the ICU stay; death competes (outtime <= death)",
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


def generative_model_md(prm: SynthParams, seed: int, n_stays: int, effects: dict) -> str:
    params = "\n".join(f"| `{k}` | `{v}` |" for k, v in prm.as_dict().items() if k != "extra")
    c = effects["cohort"]
    return f"""# Generative model of this synthetic dataset

Written by `pipeline.synth.generate` (vasoflow). seed = {seed}, n_stays = {n_stays}.
Same seed and n give byte-identical files.

## Patients, admissions, stays
Each patient has 0-2 *prior* admissions (one ICU stay each, never a sepsis code; some with a
short NE infusion), then an *anchor* admission (the last one) with the *anchor* ICU stay and
sometimes a *readmission* ICU stay later in the same admission (sometimes with NE). Age is
`anchor_age + year(admittime) - anchor_year`; a few patients have anchor_age 15-17 (some still
minors at admission). Sepsis codes (ICD-9 0389/99592/78552, ICD-10 A419/R6521/R6520) are on
septic anchor admissions only; non-septic ones sometimes carry near-miss SIRS codes (99593,
R6510). Stays of a patient: `ground_truth.parquet` column `stay_role`.

## Infusions (icu/inputevents, MetaVision mechanics)
Anchor-stay vasopressor pattern drawn as none / ne_only / vp_added / vp_before_ne with
probabilities {list(prm.p_exposure)}. NE 221906 in mcg/kg/min: {prm.ne_rows_min}-{prm.ne_rows_max}
rows of {prm.ne_row_minutes_min}-{prm.ne_row_minutes_max} min, one linkorderid, new orderid per row,
next row contiguous, overlapping (1-5 min, p={prm.p_row_overlap}) or after a gap (5-45 min,
Paused, p={prm.p_row_gap}); rates climb to the rate at VP start then wean. VP 222315 in
units/hour (2.4, 1.8, 1.2, 0.6) or, for p={prm.p_vp_units_min} of stays, units/min. NE rate at VP
start spread over the timing classes (20 % early, 30 % recommended, 30 % ssc_window, 20 %
delayed) with weight N(82, 20) kg. Traps (column `trap`): NE rate change at the VP minute, NE and
VP starting the same minute, NE paused at VP start (rate 0), and exact threshold rates
(0.1 x 50 kg = 5 mcg/min, 0.2 x 75 = 15, 0.5 x 70 = 35, 0.4 x 100 = 40, 0.25 x 80). Some stays get
epinephrine / phenylephrine (mcg/kg/min or mcg/min) / dopamine (counted in NEE when running at
VP start); some ne_only stays get VP in a later episode > 6 h after NE stops. Rewritten audit
copies (wrong rate, orderid one larger than the original) on ~{prm.p_rewritten:.0%} of NE rows
and on the NE row covering VP start in ~30 % of vp_added stays.

## Outcome model (known truth)
Hazard of death from index_time (NE start; ICU intime for stays without vasopressor):

    lambda(t) = base(t) * exp(b_age*(age-65)/10 + b_lac*(lactate-2) + b_severe*is_more_severe
                              + b_vp*VP(t) [+ b_no_pressor])

base(t) = {list(prm.baseline_hazard_per_day)} per day on [0, 2), [2, 28), [28, 365), >= 365 days.
b_age = {prm.b_age_per_10y:.6f} (HR {math.exp(prm.b_age_per_10y):.3f} per 10 y),
b_lac = {prm.b_lactate_per_mmol_l:.6f} (HR {math.exp(prm.b_lactate_per_mmol_l):.3f} per mmol/L),
b_severe = {prm.b_severe:.6f} (HR {math.exp(prm.b_severe):.3f}),
b_vp = {prm.b_vp:.6f} (HR {math.exp(prm.b_vp):.3f}), b_no_pressor = {prm.b_no_pressor:.6f}.
VP(t) = 1 from vp_start_time of the index episode (from t = 0 for vp_before_ne); a VP infusion in
a later episode does not enter the hazard. is_more_severe = VASST stratum at VP start
(vp_added) or peak NE mcg/min >= the more-severe threshold (ne_only, vp_before_ne). lactate =
the first lactate of the admission (labevents 50813, 10-180 min before NE start), age at the
anchor admission. A death before the planned VP start removes the VP rows (the stay becomes
ne_only): the naive ever-VP comparison carries immortal-time bias. Every row after death is cut;
death in the ICU sets outtime; death in hospital sets admissions.deathtime = dischtime and
hospital_expire_flag = 1; death after discharge within 365 days sets patients.dod only.

RRT: cause-specific hazard {prm.rrt_hazard_per_day}/day from index_time,
log HR {prm.c_rrt_creatinine_per_mg_dl:.6f} per mg/dL creatinine above 1.5 and {prm.c_rrt_severe:.6f}
for is_more_severe; observed (procedureevents 225802 / 225441 plus chart rows) only while in the ICU
stay, death competing. {prm.p_rrt_before_index:.0%} of shock stays have a hemodialysis session before index.

## Cohort-level truth (default switches)
Cohort rows: {c['n_rows']}; exposure {c['exposure']}; VASST strata (vp_added)
{c['vasst_stratum_vp_added']}; timing classes {c['timing_class_vp_added']}; 28-day mortality
{c['death_28d_share']}; deaths before the planned VP start {c['deaths_before_planned_vp_start']}.
Machine-readable: `true_effects.json`. Per stay: `ground_truth.parquet`. Rows corrupted on
purpose (to be quarantined): `ground_truth_quarantine.parquet`.

## Every parameter
| parameter | value |
| --- | --- |
{params}
"""


def write_docs(out_dir: Path, prm: SynthParams, seed: int, n_stays: int, truth: pl.DataFrame) -> None:
    effects = true_effects(prm, seed, n_stays, truth)
    (out_dir / "true_effects.json").write_text(json.dumps(effects, indent=2, sort_keys=True) + "\n")
    (out_dir / "GENERATIVE_MODEL.md").write_text(generative_model_md(prm, seed, n_stays, effects))

"""Parameters of the synthetic generative model (all of them, in one frozen object).

These are properties of the *simulation*, not clinical constants: they are study choices made
so that the synthetic cohort resembles published septic-shock cohorts (VASST: 28-day mortality
~35-40 %; MIMIC-IV: most vasopressin charted in units/hour). Clinical constants the generator
needs (item ids, unit factors, VASST/timing thresholds, the target-trial strategies) come from
config/concepts.toml and config/study.toml, never from here. Every field has its meaning in
``MEANINGS``; ``GENERATIVE_MODEL.md`` lists every value used in a run with its meaning.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace


@dataclass(frozen=True)
class SynthParams:
    # --- population -----------------------------------------------------------------------
    p_young: float = 0.02
    adult_age_mean_years: float = 64.0
    adult_age_sd_years: float = 16.0
    p_prior_admissions: tuple[float, float, float] = (0.78, 0.16, 0.06)  # 0, 1, 2
    p_prior_stay_gets_ne: float = 0.25
    p_readmission_stay: float = 0.10
    p_readmission_gets_ne: float = 0.5
    p_no_pressor: float = 0.12
    p_vp_before_ne: float = 0.04
    p_septic_if_pressor: float = 0.88
    p_septic_if_no_pressor: float = 0.45
    p_ne_only_later_vp: float = 0.15
    # --- hourly shock world: NE requirement ---------------------------------------------------
    ne_start_median_mcg_kg_min: float = 0.08
    ne_start_per_severity: float = 0.30
    ne_start_sd_log: float = 0.45
    drift_mean_per_h: float = 0.030
    drift_per_severity_per_h: float = 0.020
    drift_sd_per_h: float = 0.030
    recovery_per_h2: float = 0.0022
    noise_sd_per_h: float = 0.08
    vp_ne_sparing_log: float = 0.45
    ne_stop_below_mcg_kg_min: float = 0.02
    titration_hysteresis_log: float = 0.15
    titration_levels_mcg_kg_min: tuple[float, ...] = (
        0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.10, 0.12, 0.15, 0.18, 0.20, 0.25, 0.30, 0.35, 0.40,
        0.45, 0.50, 0.60, 0.70, 0.80, 1.00, 1.20, 1.50, 2.00)
    max_shock_hours: int = 168
    # --- MAP and lactate ------------------------------------------------------------------
    map_base_mmhg: float = 70.0
    map_per_severity_mmhg: float = 3.0
    map_per_log_dose_mmhg: float = 3.0
    map_vp_mmhg: float = 2.0
    map_noise_sd_mmhg: float = 5.0
    lactate_median_mmol_l: float = 2.4
    lactate_per_severity: float = 0.25
    lactate_per_log_dose: float = 0.20
    lactate_noise_sd: float = 0.3
    # --- clinician policy (natural course) ------------------------------------------------
    vp_logit_intercept: float = -4.3
    vp_logit_per_log_dose: float = 1.4
    vp_logit_per_10mmhg_below_65: float = 0.5
    # --- death ----------------------------------------------------------------------------
    shock_hazard_per_hour: float = 0.003
    b_age_per_10y: float = math.log(1.3)
    b_severity: float = 0.30
    b_dose_per_log: float = 0.55
    b_vp: float = math.log(0.7)
    b_severity_post: float = 0.30
    post_hazard_per_day: tuple[float, float, float, float] = (0.030, 0.006, 0.0015, 0.0004)
    post_breaks_days: tuple[float, float, float] = (7.0, 28.0, 365.0)
    b_no_pressor: float = math.log(0.3)
    baseline_hazard_per_day: tuple[float, float, float, float] = (0.10, 0.012, 0.002, 0.0004)
    baseline_breaks_days: tuple[float, float, float] = (2.0, 28.0, 365.0)
    # --- RRT ------------------------------------------------------------------------------
    rrt_hazard_per_day: float = 0.05
    c_rrt_creatinine_per_mg_dl: float = math.log(1.4)
    c_rrt_severity: float = 0.3
    c_rrt_per_log_dose: float = 0.4
    p_rrt_before_index: float = 0.04
    # --- infusion mechanics (MetaVision) --------------------------------------------------
    p_row_overlap: float = 0.08
    p_row_gap: float = 0.08
    p_vp_units_min: float = 0.04
    p_rewritten: float = 0.05
    p_other_pressor: float = 0.18
    p_vp_same_minute: float = 0.10
    p_vp_same_minute_hour0: float = 0.5
    p_trap_ne_paused_at_vp: float = 0.03
    p_boundary_weight: float = 0.06
    # --- truth ----------------------------------------------------------------------------
    truth_n_simulated: int = 100_000
    truth_seed: int = 20240501
    # --- other ----------------------------------------------------------------------------
    p_arterial_line: float = 0.7
    p_hydrocortisone: float = 0.3
    corrupt_rows_per_kind_per_10k_stays: int = 5
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def null(cls, **changes) -> "SynthParams":
        """The null world: vasopressin has no effect at all (no direct effect on death, does not
        lower the NE requirement, does not raise MAP); everything else as the default."""
        return replace(cls(), b_vp=0.0, vp_ne_sparing_log=0.0, map_vp_mmhg=0.0, **changes)

    def key(self) -> tuple:
        return tuple((f.name, repr(getattr(self, f.name))) for f in fields(self))


MEANINGS: dict[str, str] = {
    "p_young": "share of patients whose anchor_age is 15-17 (some still minors at admission)",
    "adult_age_mean_years": "mean age of the other patients (normal, clipped 18-91)",
    "adult_age_sd_years": "SD of that age",
    "p_prior_admissions": "probabilities of 0, 1, 2 prior admissions (one ICU stay each, never septic)",
    "p_prior_stay_gets_ne": "share of prior stays with a short NE infusion",
    "p_readmission_stay": "share of anchor admissions with a second ICU stay after the anchor one",
    "p_readmission_gets_ne": "share of those readmission stays with NE",
    "p_no_pressor": "share of anchor stays without any vasopressor (no shock episode)",
    "p_vp_before_ne": "share of shock stays where VP runs before NE starts (exposure vp_before_ne)",
    "p_septic_if_pressor": "probability of a sepsis code when the anchor stay has a vasopressor",
    "p_septic_if_no_pressor": "probability of a sepsis code otherwise",
    "p_ne_only_later_vp": "share of ne_only stays that get VP in a later shock episode (>= 7 h after NE stops)",
    "ne_start_median_mcg_kg_min": "median NE requirement at hour 0 (severity 0)",
    "ne_start_per_severity": "log NE requirement at hour 0 per SD of latent severity",
    "ne_start_sd_log": "SD of the log NE requirement at hour 0 beyond severity",
    "drift_mean_per_h": "mean per-hour drift of the log NE requirement at hour 0 (patient-specific)",
    "drift_per_severity_per_h": "extra drift per SD of severity (sicker patients worsen)",
    "drift_sd_per_h": "SD across patients of the drift (some recover, some worsen)",
    "recovery_per_h2": "the drift falls by this much each hour (shock resolves with time)",
    "noise_sd_per_h": "SD of the hourly random walk of the log requirement",
    "vp_ne_sparing_log": "VP, from the hour after its start, lowers the log NE requirement by this",
    "ne_stop_below_mcg_kg_min": "NE is weaned off for good when the requirement falls below this",
    "titration_hysteresis_log": "the charted NE rate changes (a new inputevents row) when the requirement is this far (log) from it",
    "titration_levels_mcg_kg_min": "the NE rates nurses chart (nearest level to the requirement)",
    "max_shock_hours": "hours simulated hour by hour (NE still running then stops at this hour)",
    "map_base_mmhg": "MAP at NE 0.1 mcg/kg/min, severity 0",
    "map_per_severity_mmhg": "MAP lower by this per SD of severity",
    "map_per_log_dose_mmhg": "MAP lower by this per log unit of the charted NE rate / 0.1",
    "map_vp_mmhg": "MAP higher by this while VP runs",
    "map_noise_sd_mmhg": "hourly MAP noise SD",
    "lactate_median_mmol_l": "median lactate at NE 0.1 mcg/kg/min, severity 0",
    "lactate_per_severity": "log lactate per SD of severity",
    "lactate_per_log_dose": "log lactate per log unit of the charted NE rate / 0.1",
    "lactate_noise_sd": "SD of the log lactate noise (half patient-level, half per measurement)",
    "vp_logit_intercept": "clinician policy: log-odds of starting VP in an hour at NE 0.1 and MAP 65",
    "vp_logit_per_log_dose": "log-odds per log unit of the current charted NE rate / 0.1",
    "vp_logit_per_10mmhg_below_65": "log-odds per 10 mmHg of MAP below 65",
    "shock_hazard_per_hour": "death hazard per hour on NE at 0.1 mcg/kg/min, severity 0, age 65, no VP",
    "b_age_per_10y": "log hazard ratio of death per 10 years of age above 65 (all phases)",
    "b_severity": "log HR of death per SD of latent severity while on NE",
    "b_dose_per_log": "log HR of death per log unit of the current charted NE rate / 0.1 (time-varying confounder)",
    "b_vp": "direct log HR of death while VP runs (from the hour after start, while on NE)",
    "b_severity_post": "log HR of death per SD of severity after NE stops",
    "post_hazard_per_day": "death hazard per day after NE stops on [0, 7), [7, 28), [28, 365), >= 365 days from time zero",
    "post_breaks_days": "breaks of that piecewise hazard (days from time zero)",
    "b_no_pressor": "log HR for anchor stays without vasopressor (hazard of baseline_hazard_per_day from intime)",
    "baseline_hazard_per_day": "death hazard per day of stays without vasopressor on [0, 2), [2, 28), [28, 365), >= 365",
    "baseline_breaks_days": "breaks of that hazard (days)",
    "rrt_hazard_per_day": "RRT hazard per day while on NE at 0.1 mcg/kg/min, creatinine 1.5, severity 0",
    "c_rrt_creatinine_per_mg_dl": "log HR of RRT per mg/dL of baseline creatinine above 1.5",
    "c_rrt_severity": "log HR of RRT per SD of severity",
    "c_rrt_per_log_dose": "log HR of RRT per log unit of the current NE rate / 0.1 (VP acts on RRT only through the dose)",
    "p_rrt_before_index": "share of shock stays with a hemodialysis session before NE start",
    "p_row_overlap": "at a rate change, the old row runs on 1-5 min after the new one starts",
    "p_row_gap": "at a rate change, the old row stops 5-25 min before the new one (Paused)",
    "p_vp_units_min": "share of VP infusions charted in units/min instead of units/hour",
    "p_rewritten": "share of NE rows with a Rewritten audit copy (wrong rate)",
    "p_other_pressor": "share of shock stays with epinephrine / phenylephrine / dopamine",
    "p_vp_same_minute": "share of VP starts at the hour's first minute (same minute as NE start or an NE rate change)",
    "p_vp_same_minute_hour0": "the same for VP started in hour 0 (VP and NE starting in the same minute)",
    "p_trap_ne_paused_at_vp": "share of VP starts during a pause of NE at a rate change (NE rate 0 at VP start)",
    "p_boundary_weight": "share of patients weighing exactly 50, 70, 75, 80 or 100 kg (threshold rates in mcg/min)",
    "truth_n_simulated": "patients re-simulated per strategy for the interventional truth (not written)",
    "truth_seed": "seed of that truth population (a property of the world, not of the dataset)",
    "p_arterial_line": "share of shock stays with an arterial line",
    "p_hydrocortisone": "share of shock stays with IV hydrocortisone",
    "corrupt_rows_per_kind_per_10k_stays": "rows corrupted on purpose per kind and 10,000 stays (at least 1)",
    "extra": "free-form notes (unused by the model)",
}

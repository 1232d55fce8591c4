"""Parameters of the synthetic generative model (all of them, in one frozen object).

These are properties of the *simulation*, not clinical constants: they are study choices made
so that the synthetic cohort resembles published septic-shock cohorts (VASST: 28-day mortality
~35-40 %; MIMIC-IV: most vasopressin charted in units/hour). Clinical constants the generator
needs (item ids, unit factors, VASST/timing thresholds) come from config/concepts.toml and
config/study.toml, never from here. ``GENERATIVE_MODEL.md`` lists every value used in a run.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class SynthParams:
    # --- population -----------------------------------------------------------------------
    # Share of patients whose anchor_age is 15-17 (some still minors at admission).
    p_young: float = 0.02
    adult_age_mean_years: float = 64.0
    adult_age_sd_years: float = 16.0
    # Prior hospital admissions (each with one ICU stay, never septic) before the anchor one.
    p_prior_admissions: tuple[float, float, float] = (0.78, 0.16, 0.06)  # 0, 1, 2
    p_prior_stay_gets_ne: float = 0.25
    # A second ICU stay (readmission) inside the anchor admission, after the anchor stay.
    p_readmission_stay: float = 0.10
    p_readmission_gets_ne: float = 0.5
    # Anchor-stay vasopressor pattern: none, ne_only, vp_added, vp_before_ne.
    p_exposure: tuple[float, float, float, float] = (0.12, 0.38, 0.46, 0.04)
    p_septic_if_pressor: float = 0.88
    p_septic_if_no_pressor: float = 0.45
    # ne_only stays that receive vasopressin in a later shock episode (> 6 h after NE stops).
    p_ne_only_later_vp: float = 0.15
    # --- infusion mechanics (MetaVision) --------------------------------------------------
    ne_rows_min: int = 3
    ne_rows_max: int = 8
    ne_row_minutes_min: int = 20
    ne_row_minutes_max: int = 240
    p_row_overlap: float = 0.08  # next row starts 1-5 min before this one ends
    p_row_gap: float = 0.08  # next row starts 5-45 min after (Paused), < drug_gap_minutes
    p_vp_units_min: float = 0.04  # vasopressin charted in units/min instead of units/hour
    p_rewritten: float = 0.05  # share of NE rows with a Rewritten audit copy (wrong rate)
    p_other_pressor: float = 0.18  # epinephrine / phenylephrine / dopamine in the episode
    # Traps among vp_added stays.
    p_trap_rate_change_at_vp: float = 0.06
    p_trap_same_minute: float = 0.04
    p_trap_ne_paused_at_vp: float = 0.02
    p_trap_boundary_rate: float = 0.06
    # --- outcome model: piecewise-exponential hazard of death from index_time -------------
    # baseline hazard per day on [0, 2 d), [2, 28 d), [28, 365 d), [365 d, inf)
    baseline_hazard_per_day: tuple[float, float, float, float] = (0.10, 0.012, 0.002, 0.0004)
    baseline_breaks_days: tuple[float, float, float] = (2.0, 28.0, 365.0)
    b_age_per_10y: float = math.log(1.3)  # per 10 years above 65
    b_lactate_per_mmol_l: float = math.log(1.15)  # per mmol/L above 2
    b_severe: float = math.log(1.5)  # VASST stratum more_severe (latent for ne_only)
    b_vp: float = math.log(0.8)  # time-varying: after vp_start_time of the index episode
    b_no_pressor: float = math.log(0.3)  # anchor stays without any vasopressor (from intime)
    # --- RRT: cause-specific hazard from index_time, death competing, seen only in the ICU --
    rrt_hazard_per_day: float = 0.03
    c_rrt_creatinine_per_mg_dl: float = math.log(1.4)  # per mg/dL above 1.5
    c_rrt_severe: float = math.log(1.5)
    p_rrt_before_index: float = 0.04
    # --- other ----------------------------------------------------------------------------
    p_arterial_line: float = 0.7
    p_hydrocortisone: float = 0.3
    corrupt_rows_per_kind_per_10k_stays: int = 5  # at least 1 of each kind
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)

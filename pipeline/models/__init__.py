"""Survival and RRT models of the study (issue 4). Plain functions over the analysis cohort that
return small frozen result objects; ``analyze`` runs them all and writes results.json (schema:
RESULTS_SCHEMA.md beside this file).

Public entry points:

* ``analyze(cohort_path, out_dir, config) -> AnalysisResult``
* ``descriptive``: ``wilson_ci``, ``mortality_table``, ``kaplan_meier``, ``median_followup_days``
* ``cox``: ``fit_cox``, ``fit_cox_time_varying``, ``prognosis_among_vp``; ``coxph_linear``:
  ``LinearCoxPHFitter`` (lifelines' CoxPHFitter with linear-time sandwich, Schoenfeld and Efron
  sums; fit_cox's default); ``fine_gray_reference``: the pre-issue-16 Fine-Gray loop, kept as
  the reference the linear ``competing.fine_gray_fit`` is checked against
* ``panel``: ``time_updated_models``, ``sequential_trial_models`` (hourly panel, contract B)
* ``trial``: ``long_format``, ``time_varying_models``, ``landmark_frame``, ``landmark_models``,
  ``naive_models`` (only the naive one is reported, as descriptive)
* ``propensity``: ``smd``, ``propensity_weights``; ``competing``: ``rrt_analysis``, ``fine_gray``,
  ``cumulative_incidence``; ``evalues``: ``evalue``; ``vasst``: ``side_by_side``
* ``panel_world``: ``simulate_panel_world`` (hourly world with time-varying confounding, for
  the panel models' tests); the study's synthetic data is ``pipeline.synth`` (one generator)
"""

from pipeline.models.analyze import SCHEMA_VERSION, AnalysisResult, analyze
from pipeline.models.results import ModelResult

__all__ = ["SCHEMA_VERSION", "AnalysisResult", "ModelResult", "analyze"]

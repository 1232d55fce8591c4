"""Survival and RRT models of the study (issue 4). Plain functions over the analysis cohort that
return small frozen result objects; ``analyze`` runs them all and writes results.json (schema:
RESULTS_SCHEMA.md beside this file).

Public entry points:

* ``analyze(cohort_path, out_dir, config) -> AnalysisResult``
* ``descriptive``: ``wilson_ci``, ``mortality_table``, ``kaplan_meier``, ``median_followup_days``
* ``cox``: ``fit_cox``, ``fit_cox_time_varying``, ``vasst_strata_hr``
* ``trial``: ``long_format``, ``time_varying_models``, ``landmark_frame``, ``landmark_models``,
  ``naive_models``
* ``propensity``: ``delayed_vp_analysis``; ``competing``: ``rrt_analysis``, ``fine_gray``,
  ``cumulative_incidence``; ``evalues``: ``evalue``; ``vasst``: ``side_by_side``
"""

from pipeline.models.analyze import SCHEMA_VERSION, AnalysisResult, analyze
from pipeline.models.results import ModelResult

__all__ = ["SCHEMA_VERSION", "AnalysisResult", "ModelResult", "analyze"]

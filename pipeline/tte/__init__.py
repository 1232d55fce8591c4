"""Target-trial emulation of "when to add vasopressin" (the study's primary analysis).

Plain functions, no Prefect: ``run_tte(cohort_path, out_dir, config)`` reads cohort.parquet and
hourly_panel.parquet (``mart_hourly_panel``), clones every eligible patient into each strategy of
config [tte], censors clones at deviation, weights them by inverse probability of censoring
(pooled logistic model of VP initiation), estimates weighted Kaplan-Meier risks of death and the
Aalen-Johansen risk of RRT, bootstraps patients for CIs and writes ``tte.json`` (the ``tte``
section of results.json; RESULTS_SCHEMA.md). Modules: data (inputs), strategies (clones),
weights, survival, estimate (point + bootstrap), results (assembly).
"""

from pipeline.tte.results import TTE_FILE, merge_into_results, run_tte

__all__ = ["TTE_FILE", "merge_into_results", "run_tte"]

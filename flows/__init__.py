"""Prefect flows: thin wrappers over pipeline functions (no logic here).

``study_flow`` (weekly) and ``audit_flow`` (monthly) are deployed by prefect.yaml and scheduled by
`vasoflow serve`; `vasoflow run` runs ``study_flow`` when a Prefect server is configured (else the
same steps in-process, pipeline.run.run_all). ``flows.alerts``: failure notification
(docs/scheduling.md).
"""

from flows.study import audit_flow, study_flow

__all__ = ["audit_flow", "study_flow"]

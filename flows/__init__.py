"""Prefect flows: thin wrappers over pipeline functions (no logic here).

``study_flow`` (weekly) and ``audit_flow`` (monthly) are deployed by prefect.yaml; `vasoflow run`
runs ``study_flow`` and `vasoflow serve` schedules both (docs/scheduling.md).
"""

from flows.study import audit_flow, study_flow

__all__ = ["audit_flow", "study_flow"]

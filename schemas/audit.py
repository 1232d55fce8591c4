"""Pandera model of the QI audit output (audit.parquet): one row per cohort stay and rule."""

from __future__ import annotations

import pandera.polars as pa

from schemas.audit_rules import AUDIT_RULE_IDS  # re-exported: the model and its allowed values


class AuditSchema(pa.DataFrameModel):
    """audit.parquet: stay_id, rule (fixed ids), result, detail (short human-readable text)."""

    stay_id: int = pa.Field(nullable=False)
    rule: str = pa.Field(isin=AUDIT_RULE_IDS, nullable=False)
    result: str = pa.Field(isin=["pass", "fail", "not_applicable", "not_assessable"], nullable=False)
    detail: str = pa.Field(nullable=False)

    class Config:
        strict = True
        unique = ["stay_id", "rule"]

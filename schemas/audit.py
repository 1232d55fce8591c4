"""Pandera model of the QI audit output (audit.parquet): one row per cohort stay and rule."""

from __future__ import annotations

import pandera.polars as pa

AUDIT_RULE_IDS = [
    "vp_max_dose",
    "vp_monotherapy",
    "vp_delayed",
    "vp_missed",
    "wean_order",
    "dopamine_use",
    "phenylephrine_first",
    "hydrocortisone",
    "arterial_line",
    "fluids_30ml_kg",
    "map_below_65",
]


class AuditSchema(pa.DataFrameModel):
    """audit.parquet: stay_id, rule (fixed ids), result, detail (short human-readable text)."""

    stay_id: int = pa.Field(nullable=False)
    rule: str = pa.Field(isin=AUDIT_RULE_IDS, nullable=False)
    result: str = pa.Field(isin=["pass", "fail", "not_applicable", "not_assessable"], nullable=False)
    detail: str = pa.Field(nullable=False)

    class Config:
        strict = True
        unique = ["stay_id", "rule"]

"""The QI audit's fixed rule ids (vasoflow issue 5), in report order: the values allowed in
audit.parquet's ``rule`` column (schemas.audit). A module of its own, without pandera, so that
code needing only the ids (the report, the audit's relation list) imports no validation code."""

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

"""Clinical concepts (config/concepts.toml) as tables.

``load_concepts`` turns the TOML into small polars frames; ``register_concept_tables`` writes
them into DuckDB as ``concept_*`` lookup tables (and the study settings as the one-row
``study_param`` table), so SQL joins against data instead of carrying literals.

>>> c = load_concepts()
>>> c.drug_units.filter(pl.col("drug") == "vasopressin").select("rateuom", "to_canonical").sort("rateuom")
shape: (2, 2)
┌────────────┬──────────────┐
│ rateuom    ┆ to_canonical │
│ ---        ┆ ---          │
│ str        ┆ f64          │
╞════════════╪══════════════╡
│ units/hour ┆ 0.016667     │
│ units/min  ┆ 1.0          │
└────────────┴──────────────┘
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from pipeline.errors import ConfigError
from pipeline.resources import default_concepts_path


@dataclass(frozen=True)
class Concepts:
    """Concept tables. Each frame is small (tens of rows)."""

    raw: dict[str, Any]
    drug_units: pl.DataFrame  # one row per (drug, itemid, rateuom)
    measurements: pl.DataFrame  # one row per (concept, itemid)
    rrt_items: pl.DataFrame  # one row per (source_table, itemid), with is_active, active_value
    sepsis_icd: pl.DataFrame  # one row per (icd_version, prefix)
    chronic_dialysis_icd: pl.DataFrame  # one row per (icd_version, prefix)
    audit_items: pl.DataFrame  # one row per (kind, itemid)

    def itemids(self, *, table: str) -> list[int]:
        """Every item id the study reads from ``table`` (for filtering while reading)."""
        ids: set[int] = set()
        if table == "inputevents":
            ids |= set(self.drug_units["itemid"].to_list())
            ids |= set(
                self.audit_items.filter(pl.col("source_table") == "inputevents")["itemid"].to_list()
            )
        ids |= set(self.measurements.filter(pl.col("source_table") == table)["itemid"].to_list())
        ids |= set(self.rrt_items.filter(pl.col("source_table") == table)["itemid"].to_list())
        if table == "procedureevents":
            ids |= set(
                self.audit_items.filter(pl.col("source_table") == "procedureevents")["itemid"].to_list()
            )
        return sorted(ids)

    def tables(self, study_config=None) -> dict[str, pl.DataFrame]:
        return {
            "concept_drug_unit": drug_units_for(self, study_config),
            "concept_measurement": self.measurements,
            "concept_rrt_item": self.rrt_items,
            "concept_sepsis_icd": self.sepsis_icd,
            "concept_chronic_dialysis_icd": self.chronic_dialysis_icd,
            "concept_audit_item": self.audit_items,
        }


@dataclass(frozen=True)
class RateArtifactRule:
    """Settings of the ingest rule ``plausibility.rate_artifact`` (concepts.toml [rate_artifact]):
    a row of at most ``max_duration_minutes`` whose canonical rate is more than
    ``min_jump_factor`` x the higher of its two neighbours (same stay and drug) and at least
    ``min_fraction_of_plausible_max`` x the drug's plausible maximum."""

    max_duration_minutes: float
    min_jump_factor: float
    min_fraction_of_plausible_max: float

    @classmethod
    def from_concepts(cls, concepts: "Concepts") -> "RateArtifactRule":
        spec = _require(concepts.raw, "rate_artifact", "concepts")
        _require(spec, "citation", "rate_artifact")
        rule = cls(*(float(_require(spec, k, "rate_artifact")) for k in
                     ("max_duration_minutes", "min_jump_factor", "min_fraction_of_plausible_max")))
        if rule.max_duration_minutes <= 0 or rule.min_jump_factor <= 1 or not 0 <= rule.min_fraction_of_plausible_max <= 1:
            raise ConfigError(
                "concepts: rate_artifact needs max_duration_minutes > 0, min_jump_factor > 1 and "
                "0 <= min_fraction_of_plausible_max <= 1"
            )
        return rule


def _require(d: dict, key: str, where: str) -> Any:
    if key not in d:
        raise ConfigError(f"concepts: '{where}' lacks '{key}'")
    return d[key]


def load_concepts(path: str | Path | None = None) -> Concepts:
    path = Path(path) if path else default_concepts_path()
    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read concepts ({exc})") from None

    drug_rows = []
    for drug, spec in _require(raw, "drugs", "concepts").items():
        for key in ("itemids", "canonical_unit", "nee_factor", "nee_citation", "plausible_max_canonical",
                    "plausible_citation", "units", "role", "is_catecholamine"):
            _require(spec, key, f"drugs.{drug}")
        for itemid in spec["itemids"]:
            for unit in spec["units"]:
                if unit["per_weight"] not in ("none", "divide"):
                    raise ConfigError(f"concepts: drugs.{drug}: per_weight must be 'none' or 'divide'")
                drug_rows.append(
                    {
                        "drug": drug,
                        "label": spec["label"],
                        "itemid": int(itemid),
                        "rateuom": unit["rateuom"],
                        "canonical_unit": spec["canonical_unit"],
                        "to_canonical": float(unit["to_canonical"]),
                        "per_weight": unit["per_weight"],
                        "plausible_max_canonical": float(spec["plausible_max_canonical"]),
                        "nee_factor": float(spec["nee_factor"]),
                        "role": spec["role"],
                        "is_catecholamine": bool(spec["is_catecholamine"]),
                    }
                )
    measurement_rows = []
    for concept, spec in _require(raw, "measurements", "concepts").items():
        for itemid in spec["itemids"]:
            measurement_rows.append(
                {
                    "concept": concept,
                    "source_table": spec["table"],
                    "itemid": int(itemid),
                    "unit": spec["unit"],
                    "plausible_min": float(spec["plausible_min"]),
                    "plausible_max": float(spec["plausible_max"]),
                }
            )
    rrt = _require(raw, "rrt", "concepts")
    # is_active: the item means a running session; active_value: active only with this value
    # (mimic-code treatment/rrt.sql dialysis_active vs dialysis_present).
    active_chart = {int(i) for i in _require(rrt, "chartevents_active_itemids", "rrt")}
    active_values = {int(r["itemid"]): str(r["value"]) for r in rrt.get("chartevents_active_values", [])}
    chart_ids = [int(i) for i in rrt["chartevents_itemids"]]
    unknown = sorted((active_chart | set(active_values)) - set(chart_ids))
    if unknown:
        raise ConfigError(f"concepts: rrt: active item(s) {unknown} are not in rrt.chartevents_itemids")
    rrt_rows = [{"source_table": "procedureevents", "itemid": int(i), "is_active": True, "active_value": None}
                for i in rrt["procedureevents_itemids"]]
    rrt_rows += [{"source_table": "chartevents", "itemid": i, "is_active": i in active_chart,
                  "active_value": active_values.get(i)} for i in chart_ids]
    sepsis = _require(raw, "sepsis", "concepts")
    sepsis_rows = [{"icd_version": 9, "prefix": p} for p in sepsis["icd9_prefixes"]]
    sepsis_rows += [{"icd_version": 10, "prefix": p} for p in sepsis["icd10_prefixes"]]
    dialysis = _require(raw, "chronic_dialysis", "concepts")
    dialysis_rows = [{"icd_version": 9, "prefix": str(p)} for p in _require(dialysis, "icd9_prefixes", "chronic_dialysis")]
    dialysis_rows += [{"icd_version": 10, "prefix": str(p)} for p in _require(dialysis, "icd10_prefixes", "chronic_dialysis")]
    _require(dialysis, "citation", "chronic_dialysis")
    audit = _require(raw, "audit_items", "concepts")
    audit_rows = [
        {"kind": "arterial_line", "source_table": "procedureevents", "itemid": int(i)}
        for i in audit["arterial_line_itemids"]
    ] + [
        {"kind": "crystalloid", "source_table": "inputevents", "itemid": int(i)}
        for i in audit["crystalloid_itemids"]
    ]
    return Concepts(
        raw=raw,
        drug_units=pl.DataFrame(drug_rows),
        measurements=pl.DataFrame(measurement_rows),
        rrt_items=pl.DataFrame(rrt_rows, schema={"source_table": pl.String, "itemid": pl.Int64,
                                                  "is_active": pl.Boolean, "active_value": pl.String}),
        sepsis_icd=pl.DataFrame(sepsis_rows),
        chronic_dialysis_icd=pl.DataFrame(dialysis_rows, schema={"icd_version": pl.Int64, "prefix": pl.String}),
        audit_items=pl.DataFrame(audit_rows),
    )


NE_SALTS = ("base", "tartrate")


def salt_to_base(concepts: Concepts, study_config=None) -> dict[str, float]:
    """Per drug, the factor from the source's charted salt to the canonical base dose (drugs not
    listed: 1.0). Only norepinephrine has one: study.toml ``[units] norepinephrine_salt`` says
    whether the source charts base or tartrate; concepts.toml ``tartrate_to_base`` converts."""
    if study_config is None:
        return {}
    salt = study_config.get("units.norepinephrine_salt")
    if salt not in NE_SALTS:
        raise ConfigError(
            f"{study_config.source}: setting 'units.norepinephrine_salt' must be one of "
            f"{', '.join(NE_SALTS)}, got {salt!r}"
        )
    if salt == "base":
        return {}
    ne = concepts.raw["drugs"]["norepinephrine"]
    factor = float(_require(ne, "tartrate_to_base", "drugs.norepinephrine"))
    _require(ne, "salt_citation", "drugs.norepinephrine")
    if not 0 < factor <= 1:
        raise ConfigError("concepts: drugs.norepinephrine.tartrate_to_base must be in (0, 1]")
    return {"norepinephrine": factor}


def drug_units_for(concepts: Concepts, study_config=None) -> pl.DataFrame:
    """``concepts.drug_units`` plus ``salt_to_base``: canonical rate = rate x to_canonical x
    salt_to_base (/ patientweight when per_weight = 'divide'), applied before any threshold."""
    factors = salt_to_base(concepts, study_config)
    return concepts.drug_units.with_columns(
        pl.col("drug").replace_strict(factors, default=1.0, return_dtype=pl.Float64).alias("salt_to_base")
    )


def register_concept_tables(con, concepts: Concepts, study_config=None) -> None:
    """(Re)create the ``concept_*`` tables, and ``study_param`` if a StudyConfig is given."""
    for name, frame in concepts.tables(study_config).items():
        con.register("_concept_frame", frame.to_arrow())
        con.execute(f'CREATE OR REPLACE TABLE "{name}" AS SELECT * FROM _concept_frame')
        con.unregister("_concept_frame")
    if study_config is not None:
        params = pl.DataFrame([study_config.flat_scalars()])
        con.register("_param_frame", params.to_arrow())
        con.execute("CREATE OR REPLACE TABLE study_param AS SELECT * FROM _param_frame")
        con.unregister("_param_frame")

"""Typed settings per study-config section (pydantic models built from the merged TOML).

``pipeline.config.load_study_config`` validates the merged settings here before anything runs:
each section with a model below is checked field by field (ranges, order of thresholds, known
choices, covariate names), and every integer anywhere must fit in 64 bits (DuckDB's BIGINT,
the ``study_param`` table). A failure is one line naming the key and the rule, e.g.::

    my.toml: setting 'classification.vasst_entry_ne_mcg_min': must be < vasst_more_severe_ne_mcg_min (got 20.0 >= 15.0)

A section without a model (a new one added to study.toml) is still type-checked against the
shipped defaults by ``pipeline.config`` (every value must have its default's type), so adding
a section never breaks loading; write its model here to give it ranges. Models allow keys they
do not declare for the same reason (a new key is type-checked against its default).

Steps can read their section as an object: ``config.typed("tte").grace_hours``. The
``config.get("a.b")`` access keeps working; both read the same merged values.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.errors import ConfigError

INT64_MAX = 2**63 - 1
SEED_MAX = 2**32 - 1  # numpy's legacy seeds and lifelines' jitter take 32-bit seeds
COUNT_MAX = 10**12  # row/stay counts: far above full MIMIC-IV (~300M chartevents rows)


class _Section(BaseModel):
    """Common behaviour: strict types (TOML already gives the right ones), read-only, and keys
    the model does not declare allowed (type-checked against the defaults in pipeline.config)."""

    model_config = ConfigDict(strict=True, frozen=True, extra="allow")


def _increasing(values: Sequence[float], name: str, strictly: bool = True) -> None:
    for a, b in zip(values, values[1:]):
        if (b <= a) if strictly else (b < a):
            raise ValueError(f"{name} must be {'strictly ' if strictly else ''}increasing (got {a} then {b})")


class StudySettings(_Section):
    name: str = Field(min_length=1)
    period: Literal["anchor_year_group", "calendar_month", "calendar_quarter"]


class IngestSettings(_Section):
    stay_time_margin_hours: float = Field(ge=0, le=24 * 365)
    max_unparseable_fraction: float = Field(ge=0, le=1)
    # 0 would loop forever; above ~2 billion rows one chunk no longer bounds memory anyway.
    validation_chunk_rows: int = Field(ge=1, le=2**31 - 1)


class CohortSettings(_Section):
    min_age_years: int = Field(ge=0, le=130)
    require_sepsis_diagnosis: bool
    first_stay_only: bool
    lactate_lookback_hours: float = Field(gt=0, le=24 * 365)
    lactate_index_grace_hours: float = Field(ge=0, le=24 * 365)
    map_lookback_hours: float = Field(gt=0, le=24 * 365)
    creatinine_baseline_lookback_days: float = Field(gt=0, le=3650)


class EpisodesSettings(_Section):
    drug_gap_minutes: float = Field(ge=0, le=60 * 24 * 30)
    shock_episode_gap_hours: float = Field(ge=0, le=24 * 365)


class ClassificationSettings(_Section):
    vasst_citation: str
    vasst_entry_ne_mcg_min: float = Field(gt=0)
    vasst_more_severe_ne_mcg_min: float = Field(gt=0)
    timing_citation: str
    timing_recommended_ne_mcg_kg_min: float = Field(gt=0)
    timing_ssc_window_ne_mcg_kg_min: float = Field(gt=0)
    timing_delayed_above_ne_mcg_kg_min: float = Field(gt=0)
    timing_delayed_above_ne_mcg_min: float = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> "ClassificationSettings":
        if not self.vasst_entry_ne_mcg_min < self.vasst_more_severe_ne_mcg_min:
            raise _OrderError("vasst_entry_ne_mcg_min", "vasst_more_severe_ne_mcg_min",
                              self.vasst_entry_ne_mcg_min, self.vasst_more_severe_ne_mcg_min)
        timing = ["timing_recommended_ne_mcg_kg_min", "timing_ssc_window_ne_mcg_kg_min",
                  "timing_delayed_above_ne_mcg_kg_min"]
        for lo, hi in zip(timing, timing[1:]):
            if not getattr(self, lo) < getattr(self, hi):
                raise _OrderError(lo, hi, getattr(self, lo), getattr(self, hi))
        return self


class OutcomesSettings(_Section):
    dod_coverage_days: float = Field(gt=0, le=36500)
    short_term_days: float = Field(gt=0)
    long_term_days: float = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> "OutcomesSettings":
        if not self.short_term_days < self.long_term_days:
            raise _OrderError("short_term_days", "long_term_days", self.short_term_days, self.long_term_days)
        if self.long_term_days > self.dod_coverage_days:
            raise _KeyError("long_term_days", f"must be <= dod_coverage_days (deaths after it are not "
                            f"recorded; got {self.long_term_days} > {self.dod_coverage_days})")
        return self


# Covariates the models derive from cohort columns (pipeline.models.data.prepare).
DERIVED_COVARIATES = ("is_female",)


@functools.cache
def cohort_columns() -> frozenset[str]:
    """Column names of ``schemas.cohort.CohortModel``, read from the source with ast (importing
    pandera to check a config costs ~2 s that a fully cached re-run should not pay)."""
    import schemas

    path = Path(schemas.__file__).parent / "cohort.py"
    tree = ast.parse(path.read_text(), str(path))
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == "CohortModel":
            return frozenset(n.target.id for n in node.body
                             if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name))
    raise ConfigError(f"{path}: no CohortModel (cannot check covariate names)")


def _covariates(values: list[str]) -> list[str]:
    known = cohort_columns() | set(DERIVED_COVARIATES)
    unknown = [v for v in values if v not in known]
    if unknown:
        raise ValueError(f"unknown covariate {unknown[0]!r} (not a cohort column; cohort columns are "
                         f"listed in schemas/cohort.py, plus {', '.join(DERIVED_COVARIATES)})")
    if len(set(values)) != len(values):
        raise ValueError("a covariate is listed twice")
    return values


# Cohort columns that define the VASST stratum (NE at VP start): never a covariate of the
# stratum contrast (issue 12); kept in step with pipeline.models.cox.STRATUM_DEFINING_COLUMNS.
STRATUM_DEFINING_COLUMNS = ("ne_rate_at_vp_mcg_min", "nee_at_vp_mcg_kg_min")
# Time-updated columns of the hourly panel (contract B) a model may adjust for.
PANEL_COVARIATES = ("ne_rate_mcg_kg_min", "ne_rate_mcg_min", "nee_dose_mcg_kg_min", "map_mmhg",
                    "lactate_mmol_l")


class ModelsSettings(_Section):
    vasst_adjust_covariates: list[str]
    baseline_covariates: list[str]
    rrt_covariates: list[str]
    time_updated_covariates: list[str]
    sequential_trial_hours: list[float] = Field(min_length=1)
    landmark_hours: list[float] = Field(min_length=1)
    trial_stratum_rule: Literal["max_before_vp", "current"]
    min_patients_per_group: int = Field(ge=1, le=COUNT_MAX)
    min_events_total: int = Field(ge=1, le=COUNT_MAX)
    min_events_per_covariate: int = Field(ge=1, le=COUNT_MAX)
    weighting: Literal["overlap", "iptw"]
    propensity_covariates: list[str] = Field(min_length=1)
    smd_balance_threshold: float = Field(gt=0, le=1)
    aalen_johansen_seed: int = Field(ge=0, le=SEED_MAX)
    at_risk_days: list[float] = Field(min_length=1)
    evalue_rare_outcome_below: float = Field(gt=0, lt=1)
    confidence_level: float = Field(gt=0.5, lt=1)

    _check_covariates = field_validator(
        "vasst_adjust_covariates", "baseline_covariates", "propensity_covariates",
        "rrt_covariates")(_covariates)

    @field_validator("vasst_adjust_covariates")
    @classmethod
    def _not_stratum_defining(cls, v: list[str]) -> list[str]:
        bad = [c for c in v if c in STRATUM_DEFINING_COLUMNS]
        if bad:
            raise ValueError(f"{bad[0]!r} defines the VASST stratum being compared; it cannot "
                             "adjust that comparison")
        return v

    @field_validator("time_updated_covariates")
    @classmethod
    def _panel_covariates(cls, v: list[str]) -> list[str]:
        unknown = [c for c in v if c not in PANEL_COVARIATES]
        if unknown:
            raise ValueError(f"unknown time-updated covariate {unknown[0]!r} (hourly panel columns: "
                             f"{', '.join(PANEL_COVARIATES)})")
        if len(set(v)) != len(v):
            raise ValueError("a covariate is listed twice")
        return v

    @field_validator("sequential_trial_hours")
    @classmethod
    def _trial_hours(cls, v: list[float]) -> list[float]:
        if any(h < 0 for h in v):
            raise ValueError(f"every trial hour must be >= 0 (got {v})")
        _increasing(v, "sequential_trial_hours")
        return v

    @field_validator("landmark_hours")
    @classmethod
    def _landmarks(cls, v: list[float]) -> list[float]:
        if any(h <= 0 for h in v):
            raise ValueError(f"every landmark must be > 0 hours (got {v})")
        _increasing(v, "landmark_hours")
        return v

    @field_validator("at_risk_days")
    @classmethod
    def _at_risk(cls, v: list[float]) -> list[float]:
        if any(d < 0 for d in v):
            raise ValueError(f"every time must be >= 0 days (got {v})")
        _increasing(v, "at_risk_days")
        return v


class AuditSettings(_Section):
    vp_max_dose_units_min: float = Field(gt=0)
    vp_max_dose_tolerance_units_min: float = Field(ge=0)
    vp_missed_after_hours: float = Field(ge=0)
    wean_order_ne_above_mcg_kg_min: float = Field(ge=0)
    hydrocortisone_nee_mcg_kg_min: float = Field(gt=0)
    hydrocortisone_after_hours: float = Field(ge=0)
    hydrocortisone_grace_hours: float = Field(ge=0)
    hydrocortisone_name_substrings: str = Field(min_length=1)
    fluids_ml_kg: float = Field(gt=0)
    fluids_window_before_hours: float = Field(ge=0)
    fluids_window_after_hours: float = Field(ge=0)
    crystalloid_amountuom: str = Field(min_length=1)
    # Fewer points than this per p-chart: trial limits only (pipeline.audit.spc_note).
    spc_min_points: int = Field(ge=1, le=10_000)
    map_target_mmhg: float = Field(gt=0, le=200)
    map_carry_forward_hours: float = Field(gt=0)
    map_below_max_fraction: float = Field(ge=0, le=1)
    spc_sigma_multiplier: float = Field(gt=0)
    spc_shift_run_length: int = Field(ge=2, le=1000)
    spc_trend_run_length: int = Field(ge=2, le=1000)


class TteSettings(_Section):
    """The target-trial protocol ([tte]): strategies "start VP within grace_hours after the NE
    rate first reaches X mcg/kg/min", one per X, plus "never" (see study.toml)."""

    protocol_citation: str
    strategy_thresholds_ne_mcg_kg_min: list[float] = Field(min_length=1)
    include_never_strategy: bool
    grace_hours: int = Field(ge=1, le=24 * 30)
    decision_window_hours: float = Field(gt=0, le=24 * 365)
    reference_strategies: list[str] = Field(min_length=1)
    censoring_baseline_covariates: list[str] = []
    positivity_min_following: int = Field(default=20, ge=1, le=COUNT_MAX)
    positivity_min_initiators: int = Field(default=10, ge=1, le=COUNT_MAX)
    weight_truncation_percentile: float = Field(default=100.0, gt=50, le=100)
    n_bootstrap: int = Field(default=50, ge=0, le=100_000)
    bootstrap_seed: int = Field(default=20100101, ge=0, le=SEED_MAX)
    bootstrap_workers: int = Field(default=2, ge=1, le=256)

    _check_covariates = field_validator("censoring_baseline_covariates")(_covariates)

    @field_validator("strategy_thresholds_ne_mcg_kg_min")
    @classmethod
    def _thresholds(cls, v: list[float]) -> list[float]:
        if any(x <= 0 for x in v):
            raise ValueError(f"every threshold must be > 0 mcg/kg/min (got {v})")
        _increasing(v, "strategy_thresholds_ne_mcg_kg_min")
        return v

    @model_validator(mode="after")
    def _references(self) -> "TteSettings":
        for ref in self.reference_strategies:
            if not self.is_strategy(ref):
                known = [f"ne_{x:g}" for x in self.strategy_thresholds_ne_mcg_kg_min]
                known += ["never"] if self.include_never_strategy else []
                raise _KeyError("reference_strategies", f"{ref!r} is not a strategy of the protocol "
                                f"(strategies: {', '.join(known)})")
        return self

    def is_strategy(self, strategy_id: str) -> bool:
        """``"never"`` (when included) or ``"ne_<X>"`` with X one of the thresholds (compared as
        numbers, so "ne_0.1" and "ne_0.10" are the same strategy)."""
        if strategy_id == "never":
            return self.include_never_strategy
        if not strategy_id.startswith("ne_"):
            return False
        try:
            x = float(strategy_id[3:])
        except ValueError:
            return False
        return any(abs(x - t) < 1e-12 for t in self.strategy_thresholds_ne_mcg_kg_min)


class DefaultDataSettings(_Section):
    stays: int = Field(ge=1, le=10_000_000)
    seed: int = Field(ge=0, le=SEED_MAX)


class ReportSettings(_Section):
    min_cell_count: int = Field(ge=1, le=1000)
    suppression_citation: str
    ne_dose_bin_mcg_kg_min: float = Field(gt=0)
    ne_dose_axis_max_mcg_kg_min: float = Field(gt=0)
    ne_dose_bin_mcg_min: float = Field(gt=0)
    ne_dose_axis_max_mcg_min: float = Field(gt=0)
    figure_dpi: int = Field(ge=10, le=1200)

    @model_validator(mode="after")
    def _bins(self) -> "ReportSettings":
        for unit in ("mcg_kg_min", "mcg_min"):
            b, m = getattr(self, f"ne_dose_bin_{unit}"), getattr(self, f"ne_dose_axis_max_{unit}")
            if b >= m:
                raise _OrderError(f"ne_dose_bin_{unit}", f"ne_dose_axis_max_{unit}", b, m)
            if m / b > 10_000:
                raise _KeyError(f"ne_dose_bin_{unit}", f"gives more than 10,000 bins ({m} / {b})")
        return self


class UnitsSettings(_Section):
    # How the site charts norepinephrine; tartrate rates are converted to base before any
    # threshold (factor and citation: concepts.toml).
    norepinephrine_salt: Literal["base", "tartrate"]


class SitesSettings(_Section):
    # Per-site results and their meta-analysis (pipeline/sites.py). MIMIC-IV: an icustays column
    # naming the site, or "" for one site (eICU-CRD: patient.hospitalid, config/eicu.toml).
    mimic_site_column: Literal["", "first_careunit", "last_careunit"]
    meta_method_re: Literal["dl", "iterated"]
    min_group_stays: int = Field(ge=1, le=1000)


SECTION_MODELS: dict[str, type[_Section]] = {
    "study": StudySettings,
    "ingest": IngestSettings,
    "cohort": CohortSettings,
    "episodes": EpisodesSettings,
    "classification": ClassificationSettings,
    "outcomes": OutcomesSettings,
    "models": ModelsSettings,
    "audit": AuditSettings,
    "tte": TteSettings,
    "units": UnitsSettings,
    "default_data": DefaultDataSettings,
    "report": ReportSettings,
    "sites": SitesSettings,
}


# --------------------------------------------------------------------------------------------
# Which settings each step reads
# --------------------------------------------------------------------------------------------

# Step -> the settings it reads: a whole section ("audit") or one key ("study.period"); "*" is
# every setting. ``StudyConfig.for_step(step)`` (pipeline.config) is the step's view: it holds
# only these settings, raises on any other key (``get``/``section``/``typed``), fills the
# ``study_param`` table with only these (so SQL that reads an undeclared ``study_param`` column
# fails to bind) and its ``fingerprint()`` is what the step's cache key hashes
# (pipeline.fingerprint). So a changed setting re-runs exactly the steps that read it (and
# those downstream of them, through their upstream keys): ``figure_dpi`` re-runs the report
# only, an audit rule the audit and the report.
#
# Adding a step (e.g. a target-trial ``tte`` step reading [tte] and the horizons): add
#     "tte": ("tte", "outcomes", "models.confidence_level"),
# here, give the step function ``config.for_step("tte")`` and key it with
# ``downstream_key("tte", ...)`` in pipeline/run.py. Too few entries fail loudly (the view
# raises, naming the step and key; tests/test_step_settings.py runs every step through its
# view); too many only re-run the step more often than needed.
STEP_SETTINGS: dict[str, tuple[str, ...]] = {
    # "units": the NE salt converts rates before the plausibility bounds (concepts.salt_to_base).
    "ingest": ("ingest", "units"),
    # SQL thresholds via study_param, the cohort schema's checks, and the concept tables (units).
    # tte.decision_window_hours: mart_hourly_panel ends at the emulation's decision window.
    "cohort": ("cohort", "episodes", "classification", "outcomes", "units", "tte.decision_window_hours"),
    # The panel models stop at the emulation's decision window (tte.decision_window_hours).
    "analyze": ("models", "outcomes", "classification", "tte.decision_window_hours"),
    # The target-trial emulation: its protocol ([tte]), the horizons and the CI level.
    "tte": ("tte", "outcomes", "models.confidence_level"),
    # The audit SQL re-registers the concept tables (units) and reads the timing thresholds
    # ([classification]) and the infusion gap ([episodes]); study.period sets the p-chart periods.
    "audit": ("audit", "classification", "episodes", "units", "study.period"),
    # The report prints the whole settings fingerprint and most sections.
    "report": ("*",),
    # The Spark engine check builds the cohort and the audit SQL again.
    "spark": ("cohort", "episodes", "classification", "outcomes", "units", "audit", "study.period",
              "tte.decision_window_hours"),
}


class _KeyError(ValueError):
    """A cross-field rule about one key (the message names the rule)."""

    def __init__(self, key: str, rule: str) -> None:
        super().__init__(f"{key}\x00{rule}")


class _OrderError(_KeyError):
    def __init__(self, lo: str, hi: str, a: float, b: float) -> None:
        super().__init__(lo, f"must be < {hi} (got {a} >= {b})")


def _huge_integer(node: Any, where: str) -> str | None:
    if isinstance(node, Mapping):
        for k, v in node.items():
            found = _huge_integer(v, f"{where}.{k}" if where else str(k))
            if found:
                return found
    elif isinstance(node, (list, tuple)):
        for v in node:
            found = _huge_integer(v, where)
            if found:
                return found
    elif isinstance(node, int) and not isinstance(node, bool) and abs(node) > INT64_MAX:
        return where
    return None


def _one_line(source: str, section: str, exc: ValidationError) -> str:
    err = exc.errors(include_url=False)[0]
    loc = [str(p) for p in err["loc"] if not isinstance(p, int)]
    msg = str(err["msg"]).removeprefix("Value error, ")
    if "\x00" in msg:  # a cross-field rule names its own key
        key, msg = msg.split("\x00", 1)
        loc = [key]
    elif err["type"] not in ("value_error",) and "input" in err:
        shown = repr(err["input"])
        msg = f"{msg} (got {shown if len(shown) <= 60 else shown[:57] + '...'})"
    dotted = ".".join([section, *loc]) if loc else section
    return f"{source}: setting '{dotted}': {msg}"


def validate_settings(settings: Mapping[str, Any], source: str) -> dict[str, _Section]:
    """Check the merged settings; return the typed section objects. Raises ConfigError (one line)."""
    where = _huge_integer(settings, "")
    if where:
        raise ConfigError(f"{source}: setting '{where}': integer out of range (must fit in 64 bits)")
    typed: dict[str, _Section] = {}
    for section, model in SECTION_MODELS.items():
        if section not in settings:
            continue  # the shipped defaults decide which sections exist
        values = settings[section]
        if not isinstance(values, Mapping):
            raise ConfigError(f"{source}: setting '{section}' must be a table")
        try:
            typed[section] = model.model_validate(_plain(values))
        except ValidationError as exc:
            raise ConfigError(_one_line(source, section, exc)) from None
    return typed


def _plain(node: Any) -> Any:
    """Frozen mappings/tuples of pipeline.config back to dicts/lists for pydantic."""
    if isinstance(node, Mapping):
        return {k: _plain(v) for k, v in node.items()}
    if isinstance(node, tuple):
        return [_plain(v) for v in node]
    return node

"""Model settings: the ``[models]`` section of study.toml (plus the horizons of ``[outcomes]``)
read once into a frozen object, checked, with the units in the attribute names."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.config import StudyConfig
from pipeline.errors import ConfigError

_WEIGHTINGS = ("overlap", "iptw")
_STRATUM_RULES = ("max_before_vp", "current")


@dataclass(frozen=True)
class ModelSettings:
    """Everything the models read from the study config (see config/study.toml [models])."""

    short_term_days: float
    long_term_days: float
    vasst_entry_ne_mcg_min: float
    vasst_more_severe_ne_mcg_min: float
    vasst_adjust_covariates: tuple[str, ...]
    baseline_covariates: tuple[str, ...]
    rrt_covariates: tuple[str, ...]
    time_updated_covariates: tuple[str, ...]
    sequential_trial_hours: tuple[float, ...]
    landmark_hours: tuple[float, ...]
    trial_stratum_rule: str
    min_patients_per_group: int
    min_events_total: int
    min_events_per_covariate: int
    weighting: str
    propensity_covariates: tuple[str, ...]
    smd_balance_threshold: float
    aalen_johansen_seed: int
    at_risk_days: tuple[float, ...]
    evalue_rare_outcome_below: float
    confidence_level: float

    @property
    def alpha(self) -> float:
        return 1.0 - self.confidence_level

    @property
    def horizons_days(self) -> tuple[float, float]:
        return (self.short_term_days, self.long_term_days)

    @classmethod
    def from_config(cls, config: StudyConfig) -> "ModelSettings":
        m = config.section("models")
        settings = cls(
            short_term_days=float(config.get("outcomes.short_term_days")),
            long_term_days=float(config.get("outcomes.long_term_days")),
            vasst_entry_ne_mcg_min=float(config.get("classification.vasst_entry_ne_mcg_min")),
            vasst_more_severe_ne_mcg_min=float(
                config.get("classification.vasst_more_severe_ne_mcg_min")
            ),
            vasst_adjust_covariates=tuple(str(c) for c in m["vasst_adjust_covariates"]),
            baseline_covariates=tuple(str(c) for c in m["baseline_covariates"]),
            rrt_covariates=tuple(str(c) for c in m["rrt_covariates"]),
            time_updated_covariates=tuple(str(c) for c in m["time_updated_covariates"]),
            sequential_trial_hours=tuple(float(h) for h in m["sequential_trial_hours"]),
            landmark_hours=tuple(float(h) for h in m["landmark_hours"]),
            trial_stratum_rule=str(m["trial_stratum_rule"]),
            min_patients_per_group=int(m["min_patients_per_group"]),
            min_events_total=int(m["min_events_total"]),
            min_events_per_covariate=int(m["min_events_per_covariate"]),
            weighting=str(m["weighting"]),
            propensity_covariates=tuple(str(c) for c in m["propensity_covariates"]),
            smd_balance_threshold=float(m["smd_balance_threshold"]),
            aalen_johansen_seed=int(m["aalen_johansen_seed"]),
            at_risk_days=tuple(float(d) for d in m["at_risk_days"]),
            evalue_rare_outcome_below=float(m["evalue_rare_outcome_below"]),
            confidence_level=float(m["confidence_level"]),
        )
        settings.check(config.source)
        return settings

    def check(self, source: str = "study config") -> None:
        if self.weighting not in _WEIGHTINGS:
            raise ConfigError(f"{source}: models.weighting must be one of {_WEIGHTINGS}, got {self.weighting!r}")
        if self.trial_stratum_rule not in _STRATUM_RULES:
            raise ConfigError(
                f"{source}: models.trial_stratum_rule must be one of {_STRATUM_RULES}, "
                f"got {self.trial_stratum_rule!r}"
            )
        if not 0.5 < self.confidence_level < 1.0:
            raise ConfigError(f"{source}: models.confidence_level must be in (0.5, 1), got {self.confidence_level}")
        if any(h <= 0 for h in self.landmark_hours):
            raise ConfigError(f"{source}: models.landmark_hours must be > 0, got {self.landmark_hours}")
        if min(self.min_patients_per_group, self.min_events_total, self.min_events_per_covariate) < 1:
            raise ConfigError(f"{source}: models.min_* settings must be >= 1")

"""Result objects of the models: small, frozen, one shape for every model (lifelines' style).

Every model returns a :class:`ModelResult`: the effect estimate of its one contrast (HR, sHR or
OR) with its confidence interval, counts, ``estimable``/``reason`` (a model below the minimum
patients or events is *not estimable*, never a crash or a number from three patients), and a
``summary`` table with every coefficient.

Every result also says what it estimates (issue 12): ``role`` is "primary" (the target-trial
emulation only), "secondary" (an estimate of a stated effect, with its limits in ``estimand``)
or "descriptive" (an association or prognosis: no p-value and no E-value, because neither
means anything for a contrast that is not an effect); ``estimand`` is one plain sentence.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import polars as pl

SUMMARY_SCHEMA = {
    "term": pl.String,
    "estimate": pl.Float64,
    "ci_low": pl.Float64,
    "ci_high": pl.Float64,
    "coef": pl.Float64,
    "se": pl.Float64,
    "p": pl.Float64,
}


ROLES = ("primary", "secondary", "descriptive")
# details keys written by pipeline.models.evalues.evalue; a descriptive result never has them.
EVALUE_KEYS = ("evalue_estimate", "evalue_ci", "evalue_rr_scale", "evalue_conversion",
               "evalue_outcome_proportion")


def empty_summary() -> pl.DataFrame:
    return pl.DataFrame(schema=SUMMARY_SCHEMA)


def _clean(x: Any) -> Any:
    """JSON-safe scalar: NaN/inf -> None, numpy scalars -> Python."""
    if x is None:
        return None
    if isinstance(x, bool):
        return x
    if isinstance(x, int):
        return int(x)
    try:
        f = float(x)
    except (TypeError, ValueError):
        return x
    if isinstance(x, (float,)) or hasattr(x, "dtype"):
        return f if math.isfinite(f) else None
    return x


@dataclass(frozen=True)
class ModelResult:
    """One model's answer for one contrast.

    ``measure``: "HR" (Cox), "sHR" (Fine-Gray subdistribution HR) or "OR" (logistic).
    ``estimate``/``ci_low``/``ci_high`` are on the ratio scale, ``p`` two-sided (Wald, robust SE
    where ``se_type`` says so). ``n`` patients, ``events`` outcome events in the fitted data.
    ``details`` holds model-specific scalars (PH test p, dropped rows, horizon, E-value ...).
    """

    name: str
    label: str
    measure: str
    contrast: str
    estimable: bool
    reason: str = ""
    estimate: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p: float | None = None
    n: int = 0
    events: int = 0
    se_type: str = ""
    role: str = "secondary"
    estimand: str = ""
    bias_note: str = ""
    details: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    summary: pl.DataFrame = field(default_factory=empty_summary, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"{self.name}: role must be one of {ROLES}, got {self.role!r}")
        details = dict(self.details)
        if self.role == "descriptive":
            # No p-value and no E-value for a contrast that is not an effect (issue 12).
            object.__setattr__(self, "p", None)
            for k in EVALUE_KEYS:
                details.pop(k, None)
        object.__setattr__(self, "details", MappingProxyType(details))

    @classmethod
    def not_estimable(
        cls, name: str, label: str, measure: str, contrast: str, reason: str,
        n: int = 0, events: int = 0, details: Mapping[str, Any] | None = None,
    ) -> "ModelResult":
        return cls(
            name=name, label=label, measure=measure, contrast=contrast, estimable=False,
            reason=reason, n=int(n), events=int(events), details=details or {},
        )

    def with_role(self, role: str, estimand: str, bias_note: str = "") -> "ModelResult":
        """The same result with its role and estimand sentence (descriptive drops p/E-values);
        ``bias_note`` says why a descriptive comparison is not an effect."""
        return ModelResult(**{**self.__dict__, "role": role, "estimand": estimand,
                              "bias_note": bias_note})

    def with_details(self, **extra: Any) -> "ModelResult":
        merged = dict(self.details)
        merged.update(extra)
        return ModelResult(**{**self.__dict__, "details": merged})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (no summary table; that goes to parquet)."""
        return {
            "name": self.name,
            "label": self.label,
            "measure": self.measure,
            "contrast": self.contrast,
            "estimable": self.estimable,
            "reason": self.reason,
            "hr" if self.measure in ("HR", "sHR") else "or": _clean(self.estimate),
            "ci_low": _clean(self.ci_low),
            "ci_high": _clean(self.ci_high),
            "p": _clean(self.p),
            "n": int(self.n),
            "events": int(self.events),
            "se_type": self.se_type,
            "role": self.role,
            "estimand": self.estimand,
            "bias_note": self.bias_note,
            "details": {k: _clean(v) for k, v in sorted(self.details.items())},
        }

    def describe(self) -> str:
        if not self.estimable:
            return f"{self.label}: not estimable ({self.reason}); n={self.n}, events={self.events}"
        p = f", p={self.p:.3g}" if self.p is not None else f" ({self.role})"
        return (
            f"{self.label}: {self.measure} {self.estimate:.2f} "
            f"({self.ci_low:.2f}-{self.ci_high:.2f}){p}; n={self.n}, events={self.events}"
        )

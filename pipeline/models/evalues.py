"""E-values (VanderWeele TJ, Ding P. Sensitivity analysis in observational research: introducing
the E-value. Ann Intern Med 2017;167:268-274).

The E-value is the minimum strength of association (risk-ratio scale) an unmeasured confounder
would need with both exposure and outcome to explain away an estimate. Ratio measures other
than RR are first put on the RR scale (their Table 2):

* HR, outcome rare at the end of follow-up (< ``rare_below``, 15%): RR ~ HR.
* HR, outcome common: RR ~ (1 - 0.5**sqrt(HR)) / (1 - 0.5**sqrt(1/HR)).
* OR, rare outcome: RR ~ OR; common: RR ~ sqrt(OR).
"""

from __future__ import annotations

import math


def evalue_rr(rr: float) -> float:
    """E-value of a risk ratio (protective ratios are inverted first)."""
    if rr <= 0 or not math.isfinite(rr):
        raise ValueError(f"risk ratio must be positive and finite, got {rr}")
    rr = 1.0 / rr if rr < 1 else rr
    return rr + math.sqrt(rr * (rr - 1.0))


def hr_to_rr(hr: float, outcome_is_rare: bool) -> float:
    if outcome_is_rare:
        return hr
    return (1 - 0.5 ** math.sqrt(hr)) / (1 - 0.5 ** math.sqrt(1 / hr))


def or_to_rr(odds_ratio: float, outcome_is_rare: bool) -> float:
    return odds_ratio if outcome_is_rare else math.sqrt(odds_ratio)


def evalue(
    estimate: float, ci_low: float, ci_high: float, measure: str, outcome_proportion: float,
    rare_below: float = 0.15,
) -> dict:
    """E-value for the point estimate and for the confidence limit closest to 1 (1.0 if the
    interval contains 1). ``measure``: "HR", "sHR" (treated as HR), "OR" or "RR".
    ``outcome_proportion``: cumulative incidence of the outcome at the end of follow-up."""
    rare = outcome_proportion < rare_below
    if measure in ("HR", "sHR"):
        conv = lambda x: hr_to_rr(x, rare)  # noqa: E731
        how = "HR ~ RR (rare outcome)" if rare else "HR -> RR by sqrt transformation (common outcome)"
    elif measure == "OR":
        conv = lambda x: or_to_rr(x, rare)  # noqa: E731
        how = "OR ~ RR (rare outcome)" if rare else "OR -> RR by sqrt(OR) (common outcome)"
    else:
        conv = lambda x: x  # noqa: E731
        how = "RR"
    rr, lo, hi = conv(estimate), conv(ci_low), conv(ci_high)
    if lo <= 1.0 <= hi:
        e_ci = 1.0
    else:
        e_ci = evalue_rr(lo if lo > 1 else hi)
    return {"evalue_estimate": evalue_rr(rr), "evalue_ci": e_ci, "evalue_rr_scale": rr,
            "evalue_conversion": how, "evalue_outcome_proportion": outcome_proportion}

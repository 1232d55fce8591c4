"""The hour-by-hour septic-shock world: one shock episode per patient, from the norepinephrine
(NE) start (hour 0 = time zero) until NE is weaned off or the patient dies, then follow-up.

Everything is vectorised across patients (one numpy step per hour). The same function runs
the *natural course* (clinicians start vasopressin (VP) by the policy below; used to write
the dataset) and *forced strategies* (used for the interventional truth):

* ``("threshold", X)``: during the decision window, VP starts in the first hour whose charted
  NE rate is >= X mcg/kg/min (with a grace of G hours: by the natural policy in the first G-1
  hours of the grace, surely in its last one), never before; after the window, natural policy.
* ``("never",)``: no VP during the decision window; natural policy after it.

Common random numbers: the baseline draws (``baseline``) and the draws of hour h (one
generator per hour, seeded by ``[seed, h]``) do not depend on the strategy, so a patient's
course under two strategies differs only through the treatment.

Hour h (state at its start):
1. latent log NE requirement ``m`` drifts: ``m += drift_i - recovery * h + noise``; VP started
   in an earlier hour lowers the requirement by ``vp_ne_sparing_log``;
2. NE is weaned off for good when the requirement falls below ``ne_stop_below_mcg_kg_min``;
   otherwise the charted rate moves to the nearest titration level when the requirement has
   moved more than ``titration_hysteresis_log`` away from it (a new inputevents row);
3. MAP (charted at the hour start) falls with severity and with the charted dose;
4. the clinician starts VP with probability ``sigmoid(a0 + a_dose*log(rate/0.1) +
   a_map*(65 - MAP)/10)`` (natural course);
5. death hazard in the hour ``h0 * exp(b_age + b_sev*s + b_dose*log(rate/0.1) + b_vp*VP)``
   with VP = 1 from the hour after VP start; after NE stops, a post-shock piecewise hazard.
   Death happens when the cumulative hazard reaches the patient's Exp(1) draw.
RRT has the same construction (cause-specific hazard while on NE, death competing).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.synth.params import SynthParams

NEVER = ("never",)


def strategy_id(strategy: tuple) -> str:
    return "never" if strategy[0] == "never" else f"ne_{strategy[1]:.2f}"


@dataclass
class Baseline:
    """Per-patient draws that do not depend on treatment."""

    severity: np.ndarray
    age: np.ndarray
    creatinine: np.ndarray
    m0: np.ndarray  # log NE requirement at hour 0 (mcg/kg/min)
    drift: np.ndarray  # per-hour drift of the log requirement
    e_death: np.ndarray  # Exp(1): death when the cumulative hazard reaches it
    e_rrt: np.ndarray  # Exp(1): RRT when its cumulative hazard reaches it
    lactate_noise: np.ndarray
    vp_before: np.ndarray  # VP already running at NE start (exposure vp_before_ne)

    @property
    def n(self) -> int:
        return len(self.severity)


def baseline(rng: np.random.Generator, n: int, prm: SynthParams, age: np.ndarray | None = None,
             vp_before: np.ndarray | None = None) -> Baseline:
    sev = rng.normal(0.0, 1.0, n)
    if age is None:
        age = np.clip(np.round(rng.normal(prm.adult_age_mean_years, prm.adult_age_sd_years, n)), 18, 91)
    creat = np.round(np.clip(np.exp(rng.normal(np.log(1.4), 0.5, n)), 0.3, 12.0), 1)
    m0 = np.log(prm.ne_start_median_mcg_kg_min) + prm.ne_start_per_severity * sev + rng.normal(0, prm.ne_start_sd_log, n)
    drift = prm.drift_mean_per_h + prm.drift_per_severity_per_h * sev + rng.normal(0, prm.drift_sd_per_h, n)
    return Baseline(
        severity=sev, age=np.asarray(age, dtype=float), creatinine=creat, m0=m0, drift=drift,
        e_death=rng.exponential(1.0, n), e_rrt=rng.exponential(1.0, n), lactate_noise=rng.normal(0, 1, n),
        vp_before=np.zeros(n, dtype=bool) if vp_before is None else np.asarray(vp_before, dtype=bool),
    )


def _ladder_round(need: np.ndarray, ladder: np.ndarray) -> np.ndarray:
    """Nearest titration level (in log scale)."""
    lg = np.log(ladder)
    mids = (lg[1:] + lg[:-1]) / 2
    return ladder[np.searchsorted(mids, np.log(need))]


def _post_shock_invert(t0_h: np.ndarray, need: np.ndarray, scale: np.ndarray, prm: SynthParams) -> np.ndarray:
    """Hour at which the post-shock cumulative hazard from t0 reaches ``need`` (inf if never)."""
    brk = np.concatenate([[0.0], np.array(prm.post_breaks_days) * 24.0, [np.inf]])
    rate = np.array(prm.post_hazard_per_day) / 24.0
    t = np.full(len(t0_h), np.inf)
    left = need.copy()
    done = np.zeros(len(t0_h), dtype=bool)
    for k in range(len(rate)):
        lo = np.maximum(t0_h, brk[k])
        hi = brk[k + 1]
        r = rate[k] * scale
        with np.errstate(invalid="ignore"):
            cap = np.where(hi > lo, (hi - lo) * r, 0.0)
        hit = ~done & (left <= cap) & (hi > lo) & (r > 0)
        t = np.where(hit, lo + left / np.where(r > 0, r, 1.0), t)
        done |= hit
        left = np.where(done, left, left - cap)
    return t


@dataclass
class Course:
    """One simulated course per patient. Hours are float hours after time zero."""

    rate: np.ndarray | None  # (n, H) charted NE rate mcg/kg/min in each hour (0 = off / dead)
    map_mmhg: np.ndarray | None  # (n, H) MAP charted at each hour start (nan = not charted)
    lactate: np.ndarray | None  # (n, H) lactate of each hour
    vp_start_hour: np.ndarray  # int, -1 = no VP (vp_before: 0)
    ne_stop_hour: np.ndarray  # int hour at whose start NE was off (H if still on)
    death_hour: np.ndarray  # float, inf = alive for ever
    rrt_hour: np.ndarray  # float, inf = no RRT before death
    rate_at_vp: np.ndarray  # charted NE rate in the VP start hour (nan = no VP)

    def risk(self, days: float) -> np.ndarray:
        return self.death_hour <= days * 24.0


def simulate(base: Baseline, prm: SynthParams, seed: int, strategy: tuple | None = None, *,
             window_hours: float = 72.0, grace_hours: int = 1, keep_hourly: bool = False) -> Course:
    """Run the hourly world for ``base``'s patients under ``strategy`` (None = natural course)."""
    return simulate_many(base, prm, seed, [strategy], window_hours=window_hours, grace_hours=grace_hours,
                         keep_hourly=keep_hourly)[0]


def simulate_many(base: Baseline, prm: SynthParams, seed: int, strategies: list, *,
                  window_hours: float = 72.0, grace_hours: int = 1, keep_hourly: bool = False) -> list[Course]:
    """The same patients under each of ``strategies`` (None = natural course), with common
    random numbers: the draws of hour h are made once and shared by every strategy. Only the
    patients still alive on NE are stepped; after NE stops, the post-shock death time is drawn
    by inverting its cumulative hazard."""
    n1 = base.n
    S = len(strategies)
    n = n1 * S
    H = prm.max_shock_hours
    pid = np.tile(np.arange(n1), S)  # element -> patient
    kind = np.repeat([0 if st is None else 1 if st[0] == "never" else 2 for st in strategies], n1)
    thr = np.repeat([st[1] if (st is not None and st[0] == "threshold") else np.inf for st in strategies], n1)
    ladder = np.array(prm.titration_levels_mcg_kg_min)
    sev = base.severity[pid]
    lp_age = prm.b_age_per_10y * (base.age[pid] - 65.0) / 10.0
    lp_shock = np.log(prm.shock_hazard_per_hour) + lp_age + prm.b_severity * sev
    lp_rrt = (np.log(prm.rrt_hazard_per_day / 24.0) + prm.c_rrt_creatinine_per_mg_dl * (base.creatinine[pid] - 1.5)
              + prm.c_rrt_severity * sev)
    e_death = base.e_death[pid]
    e_rrt = base.e_rrt[pid]
    drift = base.drift[pid]
    m = base.m0[pid].copy()
    vp_on = base.vp_before[pid].copy()
    vp_h = np.where(vp_on, 0, -1)
    rate_vp = np.full(n, np.nan)
    reached_h = np.full(n, -1)
    charted = np.zeros(n)
    cum = np.zeros(n)
    cum_r = np.zeros(n)
    death = np.full(n, np.inf)
    rrt = np.full(n, np.inf)
    stop = np.full(n, H)
    rate_m = np.zeros((n, H), dtype=np.float32) if keep_hourly else None
    map_m = np.full((n, H), np.nan, dtype=np.float32) if keep_hourly else None
    lac_m = np.full((n, H), np.nan, dtype=np.float32) if keep_hourly else None
    act = np.arange(n)  # elements alive and on NE at the start of the hour
    for h in range(H):
        if not len(act):
            break
        g = np.random.default_rng([seed, 7, h])
        p = pid[act]
        z = g.normal(0.0, 1.0, n1)[p]
        u = g.random(n1)[p]
        zm = g.normal(0.0, 1.0, n1)[p]
        if h > 0:
            m[act] += drift[act] - prm.recovery_per_h2 * h + prm.noise_sd_per_h * z
        need = np.exp(m[act] - prm.vp_ne_sparing_log * vp_on[act])
        stops = (need < prm.ne_stop_below_mcg_kg_min) & (h > 0)
        if stops.any():
            stop[act[stops]] = h
            vp_on[act[stops]] = False
            charted[act[stops]] = 0.0
            keep = ~stops
            act, p, need, z, u, zm = act[keep], p[keep], need[keep], z[keep], u[keep], zm[keep]
        ch = charted[act]
        need_c = np.maximum(need, ladder[0])
        move = (ch == 0) | (np.abs(np.log(need_c) - np.log(np.where(ch > 0, ch, 1.0))) > prm.titration_hysteresis_log)
        ch = np.where(move, _ladder_round(need_c, ladder), ch)
        charted[act] = ch
        ldose = np.log(ch / 0.1)
        s_a = sev[act]
        von = vp_on[act]
        mp = (prm.map_base_mmhg - prm.map_per_severity_mmhg * s_a - prm.map_per_log_dose_mmhg * ldose
              + prm.map_vp_mmhg * von + prm.map_noise_sd_mmhg * zm)
        mp = np.round(np.clip(mp, 35, 140))
        # VP decision in this hour
        cand = vp_h[act] < 0
        logit = (prm.vp_logit_intercept + prm.vp_logit_per_log_dose * ldose
                 + prm.vp_logit_per_10mmhg_below_65 * (65.0 - mp) / 10.0)
        natural = u < 1.0 / (1.0 + np.exp(-logit))
        k = kind[act]
        if h < window_hours:
            rh = reached_h[act]
            newly = (k == 2) & (rh < 0) & (ch >= thr[act] - 1e-9)
            rh = np.where(newly, h, rh)
            reached_h[act] = rh
            in_grace = (rh >= 0) & (h < rh + grace_hours)
            last = (rh >= 0) & (h == rh + grace_hours - 1)
            start = cand & np.where(k == 0, natural, np.where(k == 1, False, in_grace & (natural | last)))
        else:
            start = cand & natural
        sa = act[start]
        vp_h[sa] = h
        rate_vp[sa] = ch[start]
        # hazards of this hour (VP from the hour after its start)
        lam = np.exp(lp_shock[act] + prm.b_dose_per_log * ldose + prm.b_vp * von)
        lam_r = np.where(np.isinf(rrt[act]), np.exp(lp_rrt[act] + prm.c_rrt_per_log_dose * ldose), 0.0)
        c0 = cum[act]
        dies = c0 + lam >= e_death[act]
        frac = np.where(dies, (e_death[act] - c0) / lam, 0.0)
        cr = cum_r[act]
        gets = (lam_r > 0) & (cr + lam_r >= e_rrt[act])
        frac_r = np.where(gets, (e_rrt[act] - cr) / np.where(lam_r > 0, lam_r, 1.0), 0.0)
        gets &= ~dies | (frac_r < frac)
        rrt[act[gets]] = h + frac_r[gets]
        cum_r[act] = cr + lam_r
        death[act[dies]] = h + frac[dies]
        cum[act] = c0 + lam
        if keep_hourly:
            zl = g.normal(0.0, 1.0, n1)[p]
            rate_m[act, h] = ch
            map_m[act, h] = mp
            lac = np.exp(np.log(prm.lactate_median_mmol_l) + prm.lactate_per_severity * s_a
                         + prm.lactate_per_log_dose * ldose
                         + prm.lactate_noise_sd * (0.7 * base.lactate_noise[p] + 0.7 * zl))
            lac_m[act, h] = np.round(np.clip(lac, 0.4, 20.0), 1)
        vp_on[sa] = True
        act = act[~dies]
    # NE still running after the last simulated hour: stopped there
    stop[act] = np.minimum(stop[act], H)
    # post-shock: from the stop hour, for everyone alive then
    post = np.flatnonzero(np.isinf(death))
    if len(post):
        scale = np.exp(lp_age[post] + prm.b_severity_post * sev[post])
        death[post] = _post_shock_invert(stop[post].astype(float), e_death[post] - cum[post], scale, prm)
    out = []
    for i in range(S):
        sl = slice(i * n1, (i + 1) * n1)
        out.append(Course(
            rate=rate_m[sl] if keep_hourly else None, map_mmhg=map_m[sl] if keep_hourly else None,
            lactate=lac_m[sl] if keep_hourly else None, vp_start_hour=vp_h[sl], ne_stop_hour=stop[sl],
            death_hour=death[sl], rrt_hour=rrt[sl], rate_at_vp=rate_vp[sl]))
    return out


def strategies_of(tte) -> list[tuple]:
    out: list[tuple] = [("threshold", float(x)) for x in tte.strategy_thresholds_ne_mcg_kg_min]
    if tte.include_never_strategy:
        out.append(NEVER)
    return out


def run_strategies(prm: SynthParams, n: int, seed: int, tte) -> dict:
    """Natural course and every strategy of the protocol for the same ``n`` patients."""
    rng = np.random.default_rng([seed, 3])
    # ages as in the written data: the anchor age plus the 0-2 years to the anchor admission
    age = np.clip(np.round(rng.normal(prm.adult_age_mean_years, prm.adult_age_sd_years, n)), 18, 91)
    base = baseline(rng, n, prm, age=age + rng.integers(0, 3, n))
    sts = strategies_of(tte)
    courses = simulate_many(base, prm, seed, [None, *sts], window_hours=tte.decision_window_hours,
                            grace_hours=tte.grace_hours)
    runs: dict = {"natural": courses[0]}
    for st, c in zip(sts, courses[1:]):
        runs[strategy_id(st)] = c
    runs["_base"] = base
    return runs

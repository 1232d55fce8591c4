"""Who the synthetic patients are, what vasoactive infusions they get, and when they die.

Everything here is vectorised numpy over whole arrays (no per-stay Python loop). Times are
int64 seconds since 1970-01-01 (MIMIC's shifted years 2100-2200 fit); infusion rows are built
in minutes relative to the stay's NE start (``index``) and turned into absolute seconds.

Structure of one patient (stays are numbered in this order):
* 0-2 *prior* admissions, each with one ICU stay, never with a sepsis code; some get a short
  NE infusion (a received-NE stay that the sepsis filter must drop);
* one *anchor* admission with the *anchor* ICU stay, whose vasopressor pattern (none, ne_only,
  vp_added, vp_before_ne) drives the outcome model; it is the patient's last admission;
* sometimes a *readmission* ICU stay later in the anchor admission (sometimes with NE: a
  qualifying stay that ``first_stay_only`` must drop), kept only if the patient is alive.

Death is drawn from the piecewise-exponential hazard of ``SynthParams`` starting at the anchor
stay's NE start (intime when it has no vasopressor), with vasopressin as a time-varying
covariate; a death before the planned VP start removes the VP rows (immortal-time bias on
purpose), and every row after death is cut.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.synth.params import SynthParams

MIN = 60
HOUR = 3600
DAY = 86400

EXPOSURE_CODES = ("none", "ne_only", "vp_added", "vp_before_ne")
ROLE_PRIOR, ROLE_ANCHOR, ROLE_READMISSION = "prior", "anchor", "readmission"


def year_start_s(years: np.ndarray) -> np.ndarray:
    """Seconds since 1970 of 1 January of each year."""
    return (np.asarray(years, dtype=np.int64) - 1970).astype("datetime64[Y]").astype(
        "datetime64[s]"
    ).astype(np.int64)


def year_of(seconds: np.ndarray) -> np.ndarray:
    """Calendar year of each timestamp (seconds since 1970)."""
    return np.asarray(seconds, dtype=np.int64).astype("datetime64[s]").astype(
        "datetime64[Y]"
    ).astype(np.int64) + 1970


def ceil_minute(seconds: np.ndarray) -> np.ndarray:
    return -(-np.asarray(seconds, dtype=np.int64) // MIN) * MIN


def groups(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For ``counts`` rows per owner: owner of each row, position in its owner, first row."""
    counts = np.asarray(counts, dtype=np.int64)
    owner = np.repeat(np.arange(len(counts)), counts)
    first = np.cumsum(counts) - counts
    pos = np.arange(int(counts.sum())) - first[owner]
    return owner, pos, first


def grouped_exclusive_cumsum(x: np.ndarray, owner: np.ndarray, first: np.ndarray) -> np.ndarray:
    excl = np.cumsum(x) - x
    return excl - excl[first[owner]]


@dataclass
class Rows:
    """Vasoactive / fluid rows before they become inputevents (all numpy, one entry per row)."""

    stay: np.ndarray  # pool stay key
    itemid: np.ndarray
    start_s: np.ndarray
    end_s: np.ndarray
    rate: np.ndarray  # NaN = no rate (bolus)
    rateuom: np.ndarray  # object array of str ("" = none)
    weight: np.ndarray
    order: np.ndarray  # infusion key: rows of one infusion share linkorderid
    kind: np.ndarray  # "ne", "vp", "other", "fluid_bolus", "fluid_drip"
    is_last: np.ndarray  # last row of its infusion
    next_gap_min: np.ndarray  # minutes to the next row of the infusion (neg = overlap)

    @staticmethod
    def concat(parts: list["Rows"]) -> "Rows":
        return Rows(*[np.concatenate([getattr(p, f) for p in parts]) for f in Rows.__dataclass_fields__])

    def take(self, mask: np.ndarray) -> "Rows":
        return Rows(*[getattr(self, f)[mask] for f in Rows.__dataclass_fields__])


def _choice(rng, options, p, size):
    return np.asarray(options, dtype=object)[rng.choice(len(options), size=size, p=p)]


def _titration_rows(
    rng: np.random.Generator,
    n: int,
    prm: SynthParams,
    peak_rate: np.ndarray,
    peak_row: np.ndarray | None,
    n_rows: np.ndarray,
):
    """NE rows (minutes relative to NE start) climbing to ``peak_rate`` at ``peak_row`` and
    weaning after. Returns owner, pos, first, start_min, dur_min, delta_min, rate."""
    owner, pos, first = groups(n_rows)
    total = len(owner)
    dur = rng.integers(prm.ne_row_minutes_min, prm.ne_row_minutes_max + 1, total)
    u = rng.random(total)
    delta = np.zeros(total, dtype=np.int64)
    ov = u < prm.p_row_overlap
    gp = (u >= prm.p_row_overlap) & (u < prm.p_row_overlap + prm.p_row_gap)
    delta[ov] = -rng.integers(1, 6, int(ov.sum()))
    delta[gp] = rng.integers(5, 46, int(gp.sum()))
    if peak_row is None:
        peak_row = rng.integers(0, n_rows)
    f = rng.uniform(0.55, 0.85, n)
    dist = np.abs(pos - peak_row[owner])
    rate = np.maximum(np.round(peak_rate[owner] * f[owner] ** dist, 3), 0.01)
    is_peak = pos == peak_row[owner]
    rate[is_peak] = peak_rate[owner][is_peak]
    return owner, pos, first, dur, delta, rate


def plan(rng: np.random.Generator, n_patients: int, prm: SynthParams, cfg: dict) -> dict:
    """Draw a pool of ``n_patients`` patients with their stays, rows and outcomes.

    ``cfg`` holds item ids and thresholds from the project config (see ``generate``).
    Returns a dict of polars frames / Rows: patients, admissions, stays, rows, and per-stay
    planning facts used to write the other tables and the ground truth.
    """
    P = n_patients
    # ------------------------------------------------------------------ patients
    gender = _choice(rng, ["F", "M"], [0.44, 0.56], P)
    anchor_year = rng.integers(2110, 2186, P)
    groups_ = ["2008 - 2010", "2011 - 2013", "2014 - 2016", "2017 - 2019", "2020 - 2022"]
    anchor_year_group = _choice(rng, groups_, [0.25, 0.25, 0.25, 0.15, 0.10], P)
    is_young = rng.random(P) < prm.p_young
    age = np.clip(np.round(rng.normal(prm.adult_age_mean_years, prm.adult_age_sd_years, P)), 18, 91)
    anchor_age = np.where(is_young, rng.integers(15, 18, P), age).astype(np.int64)
    n_prior = rng.choice(3, size=P, p=prm.p_prior_admissions)
    exposure = rng.choice(4, size=P, p=prm.p_exposure)  # EXPOSURE_CODES
    has_pressor = exposure > 0
    septic = rng.random(P) < np.where(has_pressor, prm.p_septic_if_pressor, prm.p_septic_if_no_pressor)
    has_readm = rng.random(P) < prm.p_readmission_stay
    readm_ne = has_readm & (rng.random(P) < prm.p_readmission_gets_ne)

    # Anchor admission: within 2 years of anchor_year for young ones (some turn 18 on the way),
    # within 3 years otherwise.
    span_days = np.where(is_young, 2 * 365, 3 * 365)
    admit = year_start_s(anchor_year) + (rng.random(P) * span_days * DAY).astype(np.int64)
    admit = admit // MIN * MIN
    intime = admit + rng.integers(0, 36 * HOUR, P)
    index = ceil_minute(intime) + rng.integers(10, 721, P) * MIN  # NE start (pressor stays)

    # ------------------------------------------------------------------ anchor NE rows
    ids = cfg["itemids"]
    p_idx = np.flatnonzero(has_pressor)
    n = len(p_idx)
    exp_p = exposure[p_idx]
    is_vpa = exp_p == 2
    weight = np.round(np.clip(rng.normal(82, 20, n), 40, 180), 1)
    K = rng.integers(prm.ne_rows_min, prm.ne_rows_max + 1, n)
    # Target NE rate at VP start (vp_added) spread over every timing class; peak rate otherwise.
    cls = rng.choice(4, size=n, p=[0.2, 0.3, 0.3, 0.2])
    lo = np.array([0.03, 0.1, 0.25, 0.501])[cls]
    hi = np.array([0.099, 0.249, 0.5, 1.2])[cls]
    target = np.round(rng.uniform(lo, hi), 3)
    peak = np.round(np.clip(np.exp(rng.normal(np.log(0.15), 0.7, n)), 0.02, 1.5), 3)
    trap = np.full(n, "", dtype=object)
    u = rng.random(n)
    c1 = prm.p_trap_rate_change_at_vp
    c2 = c1 + prm.p_trap_same_minute
    c3 = c2 + prm.p_trap_ne_paused_at_vp
    c4 = c3 + prm.p_trap_boundary_rate
    trap[is_vpa & (u < c1)] = "ne_rate_change_at_vp_minute"
    trap[is_vpa & (u >= c1) & (u < c2)] = "ne_and_vp_same_minute"
    trap[is_vpa & (u >= c2) & (u < c3)] = "ne_paused_at_vp"
    bnd = is_vpa & (u >= c3) & (u < c4)
    trap[bnd] = "boundary_rate"
    # (rate mcg/kg/min, weight kg) pairs landing exactly on the thresholds: 0.1 x 50 = 5 mcg/min
    # (less_severe entry), 0.2 x 75 = 15 (more_severe), 0.5 x 70 = 35 (ssc_window, not delayed),
    # 0.4 x 100 = 40 (delayed by the absolute rule only), 0.25 x 80 (ssc_window lower edge).
    pairs = np.array([[0.1, 50.0], [0.2, 75.0], [0.5, 70.0], [0.4, 100.0], [0.25, 80.0]])
    pick = rng.integers(0, len(pairs), n)
    target = np.where(bnd, pairs[pick, 0], target)
    weight = np.where(bnd, pairs[pick, 1], weight)
    peak_rate = np.where(is_vpa, target, peak)
    j = rng.integers(0, K - 1)  # row covering VP start; never the last row
    j = np.where(trap == "ne_and_vp_same_minute", 0, j)
    j = np.where(trap == "ne_rate_change_at_vp_minute", np.maximum(j, 1), j)
    owner, pos, first, dur, delta, rate = _titration_rows(
        rng, n, prm, peak_rate, np.where(is_vpa, j, rng.integers(0, K)), K
    )
    at_j = pos == j[owner]
    paused = (trap == "ne_paused_at_vp")[owner] & at_j
    delta[paused] = rng.integers(15, 46, int(paused.sum()))
    start = grouped_exclusive_cumsum(dur + delta, owner, first)
    end = start + dur
    ne_end_rel = end[first + K - 1]
    # VP start (minutes after NE start) for vp_added.
    dj = dur[first + j]
    sj = start[first + j]
    offset = (rng.random(n) * (dj - 6)).astype(np.int64) + 1  # 1 .. dj-6
    vp_rel = sj + offset
    zero_off = np.isin(trap, ["ne_rate_change_at_vp_minute", "ne_and_vp_same_minute"])
    vp_rel = np.where(zero_off, sj, vp_rel)
    gap_j = delta[first + j]
    vp_rel = np.where(trap == "ne_paused_at_vp", end[first + j] + 1 + (rng.random(n) * (gap_j - 2)).astype(np.int64), vp_rel)
    # Weight drifts on later rows for some stays (re-weighed); never on the row covering VP.
    drift = rng.random(n) < 0.1
    w_row = weight[owner].copy()
    after = np.where(is_vpa[owner], start > vp_rel[owner], pos >= 1)
    dmask = drift[owner] & after
    w_row[dmask] = np.round(w_row[dmask] + rng.uniform(-3, 3, int(dmask.sum())), 1)
    rel_index = index[p_idx]
    ne_rows = Rows(
        stay=p_idx[owner],  # pool key of the anchor stay = patient index (see stays below)
        itemid=np.full(len(owner), ids["ne"]),
        start_s=rel_index[owner] + start * MIN,
        end_s=rel_index[owner] + end * MIN,
        rate=rate.astype(float),
        rateuom=np.full(len(owner), "mcg/kg/min", dtype=object),
        weight=w_row,
        order=p_idx[owner] * 10 + 0,
        kind=np.full(len(owner), "ne", dtype=object),
        is_last=pos == K[owner] - 1,
        next_gap_min=delta,
    )
    ne_rate_at_vp = np.where(trap == "ne_paused_at_vp", 0.0, rate[first + j])
    ne_w_at_vp = w_row[first + j]

    # ------------------------------------------------------------------ VP rows
    vp_units_min = rng.random(n) < prm.p_vp_units_min
    M = rng.integers(1, 5, n)
    has_vp_planned = is_vpa | (exp_p == 3)
    later_vp = (exp_p == 1) & (rng.random(n) < prm.p_ne_only_later_vp)
    vp_start_rel = np.where(
        is_vpa, vp_rel, np.where(exp_p == 3, -rng.integers(30, 241, n), ne_end_rel + rng.integers(7 * 60, 24 * 60 + 1, n))
    )
    vsel = has_vp_planned | later_vp
    vo, vpos, vfirst = groups(np.where(vsel, M, 0))
    vdur = rng.integers(120, 901, len(vo))
    vstart = vp_start_rel[vo] + grouped_exclusive_cumsum(vdur, vo, vfirst)
    uh = np.array([2.4, 1.8, 1.2, 0.6])
    um = np.array([0.04, 0.03, 0.02, 0.01])
    pr = rng.choice(4, size=len(vo), p=[0.6, 0.25, 0.1, 0.05])
    vrate = np.where(vp_units_min[vo], um[pr], uh[pr])
    vp_rows = Rows(
        stay=p_idx[vo],
        itemid=np.full(len(vo), ids["vp"]),
        start_s=rel_index[vo] + vstart * MIN,
        end_s=rel_index[vo] + (vstart + vdur) * MIN,
        rate=vrate,
        rateuom=np.where(vp_units_min[vo], "units/min", "units/hour").astype(object),
        weight=weight[vo],
        order=p_idx[vo] * 10 + 1,
        kind=np.full(len(vo), "vp", dtype=object),
        is_last=vpos == np.where(vsel, M, 0)[vo] - 1,
        next_gap_min=np.zeros(len(vo), dtype=np.int64),
    )

    # ------------------------------------------------------------------ other vasopressors
    oth = rng.random(n) < prm.p_other_pressor
    drug = rng.choice(4, size=n, p=[0.4, 0.3, 0.1, 0.2])  # epi, phe kg, phe mcg/min, dopamine
    o_item = np.array([ids["epi"], ids["phe"], ids["phe_mcg_min"], ids["dopa"]])[drug]
    o_uom = np.array(["mcg/kg/min", "mcg/kg/min", "mcg/min", "mcg/kg/min"], dtype=object)[drug]
    o_rate = np.round(
        np.select(
            [drug == 0, drug == 1, drug == 2],
            [rng.uniform(0.02, 0.3, n), rng.uniform(0.3, 3.0, n), rng.uniform(20, 200, n)],
            rng.uniform(2, 15, n),
        ),
        3,
    )
    o_start = -120 + (rng.random(n) * (ne_end_rel - 30 + 120)).astype(np.int64)
    o_end = np.minimum(o_start + rng.integers(30, 601, n), ne_end_rel)
    cover = oth & is_vpa & (rng.random(n) < 0.5)
    c_start = vp_rel - rng.integers(0, 121, n)
    c_start = np.where(rng.random(n) < 0.2, vp_rel, c_start)  # starts the same minute as VP
    o_start = np.where(cover, c_start, o_start)
    o_end = np.where(cover, np.minimum(vp_rel + rng.integers(1, 601, n), ne_end_rel), o_end)
    oi = np.flatnonzero(oth)
    oth_rows = Rows(
        stay=p_idx[oi],
        itemid=o_item[oi],
        start_s=rel_index[oi] + o_start[oi] * MIN,
        end_s=rel_index[oi] + o_end[oi] * MIN,
        rate=o_rate[oi],
        rateuom=o_uom[oi],
        weight=weight[oi],
        order=p_idx[oi] * 10 + 2,
        kind=np.full(len(oi), "other", dtype=object),
        is_last=np.ones(len(oi), dtype=bool),
        next_gap_min=np.zeros(len(oi), dtype=np.int64),
    )
    # NEE at VP start (Goradia 2021): NE + other vasopressors covering vp_start, VP excluded.
    o_canon = np.where(o_uom == "mcg/min", o_rate * cfg["to_canonical"]["phe_mcg_min"] / weight, o_rate)
    o_factor = np.array([cfg["nee"]["epi"], cfg["nee"]["phe"], cfg["nee"]["phe"], cfg["nee"]["dopa"]])[drug]
    o_covers = oth & (o_start <= vp_rel) & (vp_rel < o_end) & (o_rate > 0)
    nee_planned = ne_rate_at_vp * cfg["nee"]["ne"] + np.where(o_covers, o_canon * o_factor, 0.0)

    # ------------------------------------------------------------------ fluids
    nb = np.where(has_pressor, rng.integers(1, 3, P), (rng.random(P) < 0.5).astype(np.int64))
    bo, bpos, _ = groups(nb)
    b_anchor = np.where(has_pressor[bo], index[bo], ceil_minute(intime[bo]) + 60 * MIN)
    b_start = b_anchor - rng.integers(5, 361, len(bo)) * MIN
    b_start = np.maximum(b_start, ceil_minute(intime[bo]))
    bolus_rows = Rows(
        stay=bo,
        itemid=_choice(rng, cfg["crystalloids"][:2], [0.6, 0.4], len(bo)).astype(np.int64),
        start_s=b_start,
        end_s=b_start + MIN,
        rate=np.full(len(bo), np.nan),
        rateuom=np.full(len(bo), "", dtype=object),
        weight=np.round(np.clip(rng.normal(82, 20, len(bo)), 40, 180), 1),
        order=bo * 10 + 3 + bpos,
        kind=np.full(len(bo), "fluid_bolus", dtype=object),
        is_last=np.ones(len(bo), dtype=bool),
        next_gap_min=np.zeros(len(bo), dtype=np.int64),
    )
    # bolus weight: the stay's weight where known
    wmap = np.full(P, np.nan)
    wmap[p_idx] = weight
    bolus_rows.weight = np.where(np.isnan(wmap[bo]), bolus_rows.weight, wmap[bo])
    no_p_weight = np.round(np.clip(rng.normal(82, 20, P), 40, 180), 1)
    stay_weight = np.where(np.isnan(wmap), no_p_weight, wmap)
    bolus_rows.weight = stay_weight[bo]

    anchor_rows = Rows.concat([ne_rows, vp_rows, oth_rows, bolus_rows])

    # ------------------------------------------------------------------ severity, lactate
    severe = np.zeros(P, dtype=bool)
    ne_mcg_min_at_vp = ne_rate_at_vp * ne_w_at_vp
    peak_mcg_min = np.zeros(n)
    np.maximum.at(peak_mcg_min, owner, rate * w_row)
    sev_p = np.where(is_vpa, ne_mcg_min_at_vp >= cfg["vasst_more_severe"], peak_mcg_min >= cfg["vasst_more_severe"])
    severe[p_idx] = sev_p
    lactate = np.round(np.clip(np.exp(rng.normal(np.log(2.2) + 0.35 * severe, 0.5)), 0.5, 15.0), 1)
    creat = np.round(np.clip(np.exp(rng.normal(np.log(1.4), 0.5, P)), 0.3, 12.0), 1)
    age_anchor = anchor_age + year_of(admit) - anchor_year

    # ------------------------------------------------------------------ death
    origin = np.where(has_pressor, index, intime)
    v_h = np.full(P, np.inf)
    vp_planned_abs = np.full(P, -1, dtype=np.int64)
    v_h[p_idx[is_vpa]] = vp_rel[is_vpa] / 60.0
    v_h[p_idx[exp_p == 3]] = 0.0
    vp_planned_abs[p_idx[is_vpa]] = (rel_index + vp_rel * MIN)[is_vpa]
    lp = (
        prm.b_age_per_10y * (age_anchor - 65) / 10.0
        + prm.b_lactate_per_mmol_l * (lactate - 2.0)
        + prm.b_severe * severe
        + np.where(has_pressor, 0.0, prm.b_no_pressor)
    )
    t_h = sample_death_hours(rng, v_h, lp, prm)
    death = origin + np.ceil(t_h * 60.0).astype(np.int64) * MIN  # true death, minute resolution

    # ------------------------------------------------------------------ RRT (anchor stays)
    lin_r = prm.c_rrt_creatinine_per_mg_dl * (creat - 1.5) + prm.c_rrt_severe * severe
    r_days = rng.exponential(1.0, P) / (prm.rrt_hazard_per_day * np.exp(lin_r))
    rrt_true = index + np.ceil(r_days * 24 * 60).astype(np.int64) * MIN
    rrt_pre = has_pressor & (rng.random(P) < prm.p_rrt_before_index)
    span = (index - ceil_minute(intime)) // MIN
    rrt_pre_time = ceil_minute(intime) + (rng.random(P) * span).astype(np.int64) * MIN

    # ------------------------------------------------------------------ stay / admission times
    los_draw = np.exp(rng.normal(np.log(2.5 * DAY), 0.7, P)).astype(np.int64)
    infusion_end = np.full(P, 0, dtype=np.int64)
    np.maximum.at(infusion_end, anchor_rows.stay, anchor_rows.end_s)
    planned_out = np.maximum(intime + los_draw, infusion_end + rng.integers(4 * HOUR, 48 * HOUR, P))
    planned_out = np.maximum(planned_out, intime + 6 * HOUR)
    r_in = planned_out + rng.integers(12 * HOUR, 72 * HOUR, P)
    r_ne_start = ceil_minute(r_in) + rng.integers(10, 241, P) * MIN
    r_ne_n = rng.integers(1, 3, P)
    r_out = r_in + np.exp(rng.normal(np.log(1.5 * DAY), 0.6, P)).astype(np.int64)
    r_out = np.maximum(r_out, r_ne_start + 2 * 600 * MIN + 2 * HOUR)
    last_out = np.where(has_readm, r_out, planned_out)
    planned_disch = ceil_minute(last_out + rng.integers(1 * DAY, 10 * DAY, P))

    out = planned_out.copy()
    disch = planned_disch.copy()
    deathtime = np.full(P, -1, dtype=np.int64)  # admissions.deathtime (-1 = null)
    dod_day = np.full(P, -1, dtype=np.int64)  # patients.dod as seconds of that midnight
    readm_kept = has_readm.copy()
    r_out_f = r_out.copy()
    icu_death = death < planned_out
    out[icu_death] = death[icu_death]
    # A death within an hour of the planned readmission is a ward death (no readmission stay).
    readm_kept &= ~(death < r_in + HOUR)
    in_readm = readm_kept & (death < r_out)
    r_out_f[in_readm] = death[in_readm]
    in_hosp = death < planned_disch
    disch[in_hosp] = death[in_hosp]
    deathtime[in_hosp] = death[in_hosp]
    after = ~in_hosp & (death <= planned_disch + cfg["dod_coverage_days"] * DAY)
    dod_day[after] = death[after] // DAY * DAY
    dod_day[in_hosp] = death[in_hosp] // DAY * DAY

    # Rows of the readmission NE infusion (simple: 1-2 rows, ne_only).
    rsel = readm_ne
    ro, rpos, rfirst = groups(np.where(rsel, r_ne_n, 0))
    rdur = rng.integers(60, 601, len(ro))
    rstart = r_ne_start[ro] + grouped_exclusive_cumsum(rdur, ro, rfirst) * MIN
    readm_rows = Rows(
        stay=ro + P,  # pool key of readmission stay = P + patient index
        itemid=np.full(len(ro), ids["ne"]),
        start_s=rstart,
        end_s=rstart + rdur * MIN,
        rate=np.round(rng.uniform(0.03, 0.2, len(ro)), 3),
        rateuom=np.full(len(ro), "mcg/kg/min", dtype=object),
        weight=stay_weight[ro],
        order=(ro + P) * 10,
        kind=np.full(len(ro), "ne", dtype=object),
        is_last=rpos == r_ne_n[ro] - 1,
        next_gap_min=np.zeros(len(ro), dtype=np.int64),
    )

    # ------------------------------------------------------------------ prior admissions
    po, ppos, pfirst = groups(n_prior)
    gap = rng.integers(40 * DAY, 400 * DAY, len(po))
    back = grouped_exclusive_cumsum(gap, po, pfirst) + gap
    p_admit = (admit[po] - back) // MIN * MIN
    p_in = p_admit + rng.integers(0, 24 * HOUR, len(po))
    p_ne = rng.random(len(po)) < prm.p_prior_stay_gets_ne
    p_ne_start = ceil_minute(p_in) + rng.integers(10, 601, len(po)) * MIN
    p_ne_dur = rng.integers(60, 721, len(po))
    p_out = p_in + rng.integers(12 * HOUR, 5 * DAY, len(po))
    p_out = np.where(p_ne, np.maximum(p_out, p_ne_start + p_ne_dur * MIN + 2 * HOUR), p_out)
    p_disch = ceil_minute(p_out + rng.integers(1 * DAY, 6 * DAY, len(po)))
    pk = 2 * P + np.arange(len(po))  # pool keys of prior stays
    pi = np.flatnonzero(p_ne)
    prior_rows = Rows(
        stay=pk[pi],
        itemid=np.full(len(pi), ids["ne"]),
        start_s=p_ne_start[pi],
        end_s=p_ne_start[pi] + p_ne_dur[pi] * MIN,
        rate=np.round(rng.uniform(0.02, 0.3, len(pi)), 3),
        rateuom=np.full(len(pi), "mcg/kg/min", dtype=object),
        weight=stay_weight[po[pi]],
        order=pk[pi] * 10,
        kind=np.full(len(pi), "ne", dtype=object),
        is_last=np.ones(len(pi), dtype=bool),
        next_gap_min=np.zeros(len(pi), dtype=np.int64),
    )

    rows = Rows.concat([anchor_rows, readm_rows, prior_rows])
    # Cut every row at the patient's death (no infusion runs after death).
    pat_of_key = np.concatenate([np.arange(P), np.arange(P), po])
    d_row = death[pat_of_key[rows.stay]]
    keep = rows.start_s < d_row
    rows = rows.take(keep)
    d_row = d_row[keep]
    cut = rows.end_s > d_row
    rows.end_s = np.where(cut, d_row, rows.end_s)
    rows.is_last = rows.is_last | cut

    # ------------------------------------------------------------------ stays table
    vp_kept = (is_vpa & (vp_planned_abs[p_idx] < death[p_idx])) | (exp_p == 3)
    stays = {
        "key": np.concatenate([np.arange(P), P + np.flatnonzero(readm_kept), pk]),
        "patient": np.concatenate([np.arange(P), np.flatnonzero(readm_kept), po]),
        "role": np.concatenate([
            np.full(P, ROLE_ANCHOR), np.full(int(readm_kept.sum()), ROLE_READMISSION), np.full(len(po), ROLE_PRIOR)
        ]).astype(object),
        "adm": np.concatenate([np.arange(P), np.flatnonzero(readm_kept), P + np.arange(len(po))]),
        "intime": np.concatenate([intime, r_in[readm_kept], p_in]),
        "outtime": np.concatenate([out, r_out_f[readm_kept], p_out]),
    }
    adms = {
        "adm": np.concatenate([np.arange(P), P + np.arange(len(po))]),
        "patient": np.concatenate([np.arange(P), po]),
        "admittime": np.concatenate([admit, p_admit]),
        "dischtime": np.concatenate([disch, p_disch]),
        "deathtime": np.concatenate([deathtime, np.full(len(po), -1)]),
        "is_septic": np.concatenate([septic, np.zeros(len(po), dtype=bool)]),
        "is_anchor": np.concatenate([np.ones(P, dtype=bool), np.zeros(len(po), dtype=bool)]),
    }
    # Per-anchor planning facts (index by patient).
    anchor = {
        "exposure_planned": np.array(EXPOSURE_CODES, dtype=object)[exposure],
        "has_pressor": has_pressor,
        "index": np.where(has_pressor, index, -1),
        "weight": stay_weight,
        "severe": severe,
        "lactate": lactate,
        "creatinine": creat,
        "age": age_anchor,
        "lp": lp,
        "death_true": death,
        "vp_planned": vp_planned_abs,
        "rrt_true": rrt_true,
        "rrt_pre": rrt_pre,
        "rrt_pre_time": rrt_pre_time,
        "trap": np.full(P, "", dtype=object),
        "ne_rate_at_vp": np.full(P, np.nan),
        "ne_w_at_vp": np.full(P, np.nan),
        "nee_at_vp": np.full(P, np.nan),
        "vp_kept": np.zeros(P, dtype=bool),
        "later_vp_planned": np.zeros(P, dtype=bool),
        "later_vp_start": np.full(P, -1, dtype=np.int64),
    }
    anchor["trap"][p_idx] = trap
    anchor["ne_rate_at_vp"][p_idx] = np.where(is_vpa, ne_rate_at_vp, np.nan)
    anchor["ne_w_at_vp"][p_idx] = np.where(is_vpa, ne_w_at_vp, np.nan)
    anchor["nee_at_vp"][p_idx] = np.where(is_vpa, nee_planned, np.nan)
    anchor["vp_kept"][p_idx] = vp_kept
    anchor["later_vp_planned"][p_idx] = later_vp
    anchor["later_vp_start"][p_idx] = np.where(later_vp, rel_index + vp_start_rel * MIN, -1)
    patients = {
        "patient": np.arange(P),
        "gender": gender,
        "anchor_age": anchor_age,
        "anchor_year": anchor_year,
        "anchor_year_group": anchor_year_group,
        "dod": dod_day,
        "n_stays": 1 + n_prior + readm_kept,
    }
    return {"patients": patients, "adms": adms, "stays": stays, "anchor": anchor, "rows": rows}


def sample_death_hours(rng: np.random.Generator, v_h: np.ndarray, lp: np.ndarray, prm: SynthParams) -> np.ndarray:
    """Death times (hours after the origin) under the piecewise-exponential hazard
    lambda(t) = base(t) * exp(lp + b_vp * [t >= v_h]), by inverting the cumulative hazard."""
    n = len(lp)
    breaks_h = np.array(prm.baseline_breaks_days) * 24.0
    base_h = np.array(prm.baseline_hazard_per_day) / 24.0
    edges = np.column_stack([np.zeros(n), np.tile(breaks_h, (n, 1)), np.where(np.isinf(v_h), 1e12, v_h)])
    edges = np.sort(edges, axis=1)
    right = np.column_stack([edges[:, 1:], np.full(n, np.inf)])
    seg = np.searchsorted(breaks_h, edges, side="right")  # baseline piece at the left edge
    rate = base_h[seg] * np.exp(lp[:, None] + prm.b_vp * (edges >= v_h[:, None]))
    with np.errstate(invalid="ignore"):
        inc = rate * (right - edges)
    inc = np.where(right == edges, 0.0, inc)
    cum = np.cumsum(inc, axis=1)
    cum_left = np.column_stack([np.zeros(n), cum[:, :-1]])
    e = rng.exponential(1.0, n)
    k = np.argmax(cum >= e[:, None], axis=1)
    rows = np.arange(n)
    return edges[rows, k] + (e - cum_left[rows, k]) / rate[rows, k]

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

The anchor stay's shock episode comes from the hour-by-hour world (``pipeline.synth.world``):
its charted NE rates become MetaVision rows (one per constant rate; overlaps and pauses at rate
changes), the clinician's VP decision hour becomes a VP start minute inside that hour, MAP and
lactate are the world's values, and death / RRT times are the world's. A death in the VP hour
before the VP start minute leaves the stay ne_only (immortal time on purpose). Stays without a
vasopressor die by a piecewise-exponential hazard from intime. Every row after death is cut.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.synth import world
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
    has_pressor = rng.random(P) >= prm.p_no_pressor
    # EXPOSURE_CODES; ne_only becomes vp_added when the hourly world starts VP (below)
    exposure = np.where(has_pressor, np.where(rng.random(P) < prm.p_vp_before_ne, 3, 1), 0)
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

    # ------------------------------------------------------------------ hourly shock world
    ids = cfg["itemids"]
    p_idx = np.flatnonzero(has_pressor)
    n = len(p_idx)
    age_anchor = anchor_age + year_of(admit) - anchor_year
    vp_before = (exposure == 3)[p_idx]
    base = world.baseline(rng, n, prm, age=age_anchor[p_idx].astype(float), vp_before=vp_before)
    course = world.simulate(base, prm, int(rng.integers(0, 2**31 - 1)), None,
                            window_hours=cfg["tte_window_hours"], grace_hours=cfg["tte_grace_hours"],
                            keep_hourly=True)
    H = prm.max_shock_hours
    R = np.round(course.rate.astype(np.float64), 3)
    weight = np.round(np.clip(rng.normal(82, 20, n), 40, 180), 1)
    bw = rng.random(n) < prm.p_boundary_weight
    weight = np.where(bw, np.array([50.0, 70.0, 75.0, 80.0, 100.0])[rng.integers(0, 5, n)], weight)
    rel_index = index[p_idx]
    death_h = course.death_hour
    death_rel_min = np.where(np.isfinite(death_h), np.ceil(np.minimum(death_h, 1e7) * 60.0), 1e9).astype(np.int64)

    # NE segments: constant charted rate between hourly change points
    Rp = np.zeros((n, H + 2))
    Rp[:, 1:-1] = R
    bi, bh = np.nonzero(Rp[:, 1:] != Rp[:, :-1])  # boundary hours (row-major: by patient, hour)
    same = bi[1:] == bi[:-1]
    s_owner = bi[:-1][same]
    s_h0 = bh[:-1][same]
    s_h1 = bh[1:][same]
    s_rate = R[s_owner, np.minimum(s_h0, H - 1)]
    keep = s_rate > 0
    s_owner, s_h0, s_h1, s_rate = s_owner[keep], s_h0[keep], s_h1[keep], s_rate[keep]
    n_seg = np.bincount(s_owner, minlength=n)
    _, s_pos, s_first = groups(n_seg)
    s_last = s_pos == n_seg[s_owner] - 1
    m_rows = len(s_owner)
    start = s_h0 * 60
    end = s_h1 * 60
    u = rng.random(m_rows)
    delta = np.zeros(m_rows, dtype=np.int64)
    ov = ~s_last & (u < prm.p_row_overlap)
    gp = ~s_last & (u >= prm.p_row_overlap) & (u < prm.p_row_overlap + prm.p_row_gap)
    delta[ov] = -rng.integers(1, 6, int(ov.sum()))
    delta[gp] = rng.integers(5, 26, int(gp.sum()))
    end = end - delta  # overlap: runs on past the boundary; gap: stops before it (Paused)

    # VP start (natural course): in the decision hour, at minute 0 (same minute as the NE start
    # or an NE rate change) or 1-30 min into it; sometimes during an NE pause at a rate change.
    vh = course.vp_start_hour
    has_vp = (vh >= 0) & ~vp_before
    vh_c = np.where(has_vp, vh, 0)
    seg_at = np.zeros((n, H + 1), dtype=bool)
    seg_at[s_owner, s_h0] = True
    boundary_at_vp = has_vp & (vh_c >= 1) & seg_at[np.arange(n), vh_c]
    off = rng.integers(1, 31, n)
    same_min = rng.random(n) < np.where(vh_c == 0, prm.p_vp_same_minute_hour0, prm.p_vp_same_minute)
    off = np.where(same_min, 0, off)
    paused = boundary_at_vp & (rng.random(n) < prm.p_trap_ne_paused_at_vp)
    g_min = rng.integers(15, 46, n)
    off = np.where(paused, 1 + (rng.random(n) * (g_min - 2)).astype(np.int64), off)
    # the NE segment starting at the VP hour starts g_min later; the one before ends at the hour
    seg_p = paused[s_owner] & (s_h0 == vh_c[s_owner])
    start = np.where(seg_p, start + g_min[s_owner], start)
    prev = np.flatnonzero(seg_p) - 1
    end[prev] = s_h0[prev + 1] * 60
    delta[prev] = g_min[s_owner[prev]]
    vp_rel = vh_c * 60 + off  # minutes after NE start
    # weight drifts on later rows for some stays (re-weighed); never on the row covering VP
    drift = rng.random(n) < 0.1
    w_row = weight[s_owner].copy()
    after = np.where(has_vp[s_owner], start > vp_rel[s_owner], s_pos >= 1)
    dmask = drift[s_owner] & after
    w_row[dmask] = np.round(w_row[dmask] + rng.uniform(-3, 3, int(dmask.sum())), 1)
    ne_rows = Rows(
        stay=p_idx[s_owner], itemid=np.full(m_rows, ids["ne"]),
        start_s=rel_index[s_owner] + start * MIN, end_s=rel_index[s_owner] + end * MIN,
        rate=s_rate.astype(float), rateuom=np.full(m_rows, "mcg/kg/min", dtype=object), weight=w_row,
        order=p_idx[s_owner] * 10 + 0, kind=np.full(m_rows, "ne", dtype=object), is_last=s_last,
        next_gap_min=delta,
    )
    ne_end_rel = np.minimum(end[s_first + n_seg - 1], death_rel_min)
    ne_rate_at_vp = np.where(has_vp, np.where(paused, 0.0, R[np.arange(n), vh_c]), np.nan)
    ne_w_at_vp = weight
    trap = np.full(n, "", dtype=object)
    thresholds_min = np.array([cfg["vasst_entry"], cfg["vasst_more_severe"], cfg["timing_delayed_mcg_min"]])
    thresholds_kg = np.array([cfg["timing_recommended"], cfg["timing_ssc"], cfg["timing_delayed"]])
    on_edge = (np.abs(ne_rate_at_vp[:, None] * weight[:, None] - thresholds_min[None, :]) < 1e-9).any(1) | (
        np.abs(ne_rate_at_vp[:, None] - thresholds_kg[None, :]) < 1e-9).any(1)
    trap[has_vp & on_edge] = "boundary_rate"
    trap[has_vp & same_min & boundary_at_vp] = "ne_rate_change_at_vp_minute"
    trap[has_vp & same_min & (vh_c == 0)] = "ne_and_vp_same_minute"
    trap[paused] = "ne_paused_at_vp"

    # ------------------------------------------------------------------ VP rows
    vp_units_min = rng.random(n) < prm.p_vp_units_min
    later_vp = ~has_vp & ~vp_before & (rng.random(n) < prm.p_ne_only_later_vp)
    vp_start_rel = np.where(
        has_vp, vp_rel, np.where(vp_before, -rng.integers(30, 241, n), ne_end_rel + rng.integers(7 * 60, 24 * 60 + 1, n))
    )
    vp_end_rel = np.where(later_vp, vp_start_rel + rng.integers(120, 1801, n), ne_end_rel + rng.integers(0, 121, n))
    vp_end_rel = np.maximum(vp_end_rel, vp_start_rel + 30)
    vsel = has_vp | vp_before | later_vp
    M = np.where(vsel, np.maximum(1, -(-(vp_end_rel - vp_start_rel) // 480)), 0)
    vo, vpos, vfirst = groups(M)
    vlen = (vp_end_rel - vp_start_rel)[vo]
    vstart = vp_start_rel[vo] + vlen * vpos // M[vo]
    vend = vp_start_rel[vo] + vlen * (vpos + 1) // M[vo]
    uh = np.array([2.4, 1.8, 1.2, 0.6])
    um = np.array([0.04, 0.03, 0.02, 0.01])
    pr = rng.choice(4, size=len(vo), p=[0.6, 0.25, 0.1, 0.05])
    vrate = np.where(vp_units_min[vo], um[pr], uh[pr])
    vp_rows = Rows(
        stay=p_idx[vo], itemid=np.full(len(vo), ids["vp"]),
        start_s=rel_index[vo] + vstart * MIN, end_s=rel_index[vo] + vend * MIN, rate=vrate,
        rateuom=np.where(vp_units_min[vo], "units/min", "units/hour").astype(object), weight=weight[vo],
        order=p_idx[vo] * 10 + 1, kind=np.full(len(vo), "vp", dtype=object), is_last=vpos == M[vo] - 1,
        next_gap_min=np.zeros(len(vo), dtype=np.int64),
    )

    # ------------------------------------------------------------------ other vasopressors
    oth = (rng.random(n) < prm.p_other_pressor) & (ne_end_rel > 60)
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
    cover = oth & has_vp & (rng.random(n) < 0.5)
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

    # ------------------------------------------------------------------ severity, lactate, death, RRT
    severe = np.zeros(P, dtype=bool)
    peak_mcg_min = np.zeros(n)
    np.maximum.at(peak_mcg_min, s_owner, s_rate * w_row)
    sev_p = np.where(has_vp, ne_rate_at_vp * ne_w_at_vp >= cfg["vasst_more_severe"], peak_mcg_min >= cfg["vasst_more_severe"])
    severe[p_idx] = sev_p
    lactate = np.round(np.clip(np.exp(rng.normal(np.log(1.6), 0.5, P)), 0.5, 15.0), 1)
    lactate[p_idx] = np.where(np.isnan(course.lactate[:, 0]), lactate[p_idx], course.lactate[:, 0])
    creat = np.round(np.clip(np.exp(rng.normal(np.log(1.4), 0.5, P)), 0.3, 12.0), 1)
    creat[p_idx] = base.creatinine
    # follow-up lactates every 6 h while on NE (decision window), 5-55 min into the hour
    lac = course.lactate
    li, lh = np.nonzero(~np.isnan(lac[:, 6:73:6]))
    lh = (lh + 1) * 6
    lab_fu = {"patient": p_idx[li], "time": rel_index[li] + lh * HOUR + rng.integers(5, 56, len(li)) * MIN,
              "value": lac[li, lh].astype(float)}
    lp = np.full(P, prm.b_age_per_10y) * (age_anchor - 65) / 10.0 + np.where(has_pressor, 0.0, prm.b_no_pressor)
    lp[p_idx] += prm.b_severity * base.severity

    origin = np.where(has_pressor, index, intime)
    t_h = sample_death_hours(rng, np.full(P, np.inf), lp, prm)  # stays without vasopressor
    death = origin + np.ceil(t_h * 60.0).astype(np.int64) * MIN
    death[p_idx] = rel_index + np.minimum(death_rel_min, 100 * 365 * 24 * 60) * MIN
    vp_planned_abs = np.full(P, -1, dtype=np.int64)
    vp_planned_abs[p_idx[has_vp]] = (rel_index + vp_rel * MIN)[has_vp]

    rrt_true = np.full(P, -1, dtype=np.int64)
    rrt_true[p_idx] = np.where(np.isfinite(course.rrt_hour),
                               rel_index + np.ceil(np.minimum(course.rrt_hour, 1e7) * 60).astype(np.int64) * MIN, -1)
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
    exposure[p_idx[has_vp]] = 2
    vp_kept = (has_vp & (vp_planned_abs[p_idx] < death[p_idx])) | vp_before
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
    anchor["pressor_row"] = np.full(P, -1, dtype=np.int64)
    anchor["pressor_row"][p_idx] = np.arange(n)
    anchor["map_hourly"] = course.map_mmhg  # (pressor patients, hour) MAP charted at index + hour
    anchor["lab_fu"] = lab_fu
    anchor["severity"] = np.full(P, np.nan)
    anchor["severity"][p_idx] = base.severity
    anchor["vp_start_hour"] = np.full(P, -1, dtype=np.int64)
    anchor["vp_start_hour"][p_idx] = np.where(has_vp, vh, -1)
    anchor["ne_rate_at_vp"][p_idx] = np.where(has_vp, ne_rate_at_vp, np.nan)
    anchor["ne_w_at_vp"][p_idx] = np.where(has_vp, ne_w_at_vp, np.nan)
    anchor["nee_at_vp"][p_idx] = np.where(has_vp, nee_planned, np.nan)
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

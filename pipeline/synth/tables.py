"""From the plan (pipeline.synth.plan) to the MIMIC-IV tables, as polars frames.

Each builder returns frames with the real columns of its file (pipeline.synth.layout.HEADERS);
times are int64 seconds turned into Datetime at the end. Chartevents, the big table, is built
in chunks of stays (a generator of frames).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import polars as pl

from pipeline.synth.plan import DAY, HOUR, MIN, ROLE_ANCHOR, Rows, ceil_minute, groups
from pipeline.synth.writer import seconds_to_datetime

CHART_CHUNK_STAYS = 10_000


def _dt(df: pl.DataFrame, *cols: str) -> pl.DataFrame:
    return df.with_columns([seconds_to_datetime(c) for c in cols])


def _nulls(n: int, dtype=pl.String) -> pl.Series:
    return pl.Series([None] * n, dtype=dtype)


def _pick(rng, options, size, p=None):
    return np.asarray(options, dtype=object)[rng.choice(len(options), size=size, p=p)]


def _ids(rng, lo: int, n: int, span: int = 9_000_000) -> np.ndarray:
    return lo + np.sort(rng.choice(span, size=n, replace=False))


# ------------------------------------------------------------------------------------------
def patients_frame(ctx) -> pl.DataFrame:
    pt = ctx.patients
    dod = pt["dod"]
    return _dt(
        pl.DataFrame({
            "subject_id": pt["subject_id"],
            "gender": pt["gender"].astype(str),
            "anchor_age": pt["anchor_age"],
            "anchor_year": pt["anchor_year"],
            "anchor_year_group": pt["anchor_year_group"].astype(str),
            "dod": dod,
        }),
        "dod",
    ).with_columns(pl.col("dod").dt.date())


def admissions_frame(ctx, rng) -> pl.DataFrame:
    a = ctx.adms
    n = len(a["hadm_id"])
    dead = a["deathtime"] >= 0
    typ = _pick(rng, ["EW EMER.", "URGENT", "DIRECT EMER.", "OBSERVATION ADMIT", "ELECTIVE"], n,
                [0.55, 0.2, 0.1, 0.1, 0.05])
    ed = typ == "EW EMER."
    edreg = np.where(ed, a["admittime"] - rng.integers(1 * HOUR, 8 * HOUR, n) // MIN * MIN, -1)
    edout = np.where(ed, a["admittime"] + rng.integers(0, 1 * HOUR, n) // MIN * MIN, -1)
    letters = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"))
    prov = np.array(["P" + "".join(x) for x in letters[rng.integers(0, 36, (n, 5))]], dtype=object)
    disc = np.where(dead, "DIED", _pick(rng, ["HOME", "HOME HEALTH CARE", "SKILLED NURSING FACILITY", "REHAB"], n))
    return _dt(
        pl.DataFrame({
            "subject_id": a["subject_id"],
            "hadm_id": a["hadm_id"],
            "admittime": a["admittime"],
            "dischtime": a["dischtime"],
            "deathtime": a["deathtime"],
            "admission_type": typ.astype(str),
            "admit_provider_id": prov.astype(str),
            "admission_location": _pick(rng, ["EMERGENCY ROOM", "TRANSFER FROM HOSPITAL", "PHYSICIAN REFERRAL",
                                              "WALK-IN/SELF REFERRAL"], n, [0.55, 0.25, 0.15, 0.05]).astype(str),
            "discharge_location": disc.astype(str),
            "insurance": _pick(rng, ["Medicare", "Medicaid", "Other"], n, [0.45, 0.15, 0.4]).astype(str),
            "language": _pick(rng, ["ENGLISH", "?"], n, [0.9, 0.1]).astype(str),
            "marital_status": pl.Series(_pick(rng, ["MARRIED", "SINGLE", "WIDOWED", "DIVORCED", None], n)
                                        .tolist(), dtype=pl.String),
            "race": _pick(rng, ["WHITE", "BLACK/AFRICAN AMERICAN", "HISPANIC/LATINO - PUERTO RICAN", "ASIAN",
                                "OTHER", "UNKNOWN"], n, [0.62, 0.14, 0.05, 0.04, 0.07, 0.08]).astype(str),
            "edregtime": edreg,
            "edouttime": edout,
            "hospital_expire_flag": dead.astype(np.int64),
        }),
        "admittime", "dischtime", "deathtime", "edregtime", "edouttime",
    )


CAREUNITS = [
    "Medical Intensive Care Unit (MICU)", "Medical/Surgical Intensive Care Unit (MICU/SICU)",
    "Surgical Intensive Care Unit (SICU)", "Cardiac Vascular Intensive Care Unit (CVICU)",
    "Coronary Care Unit (CCU)", "Trauma SICU (TSICU)", "Neuro Surgical Intensive Care Unit (Neuro SICU)",
]


def icustays_frame(ctx, rng) -> pl.DataFrame:
    s = ctx.stays
    n = len(s["stay_id"])
    first = _pick(rng, CAREUNITS, n, [0.35, 0.2, 0.15, 0.12, 0.08, 0.08, 0.02])
    last = np.where(rng.random(n) < 0.1, _pick(rng, CAREUNITS, n), first)
    return _dt(
        pl.DataFrame({
            "subject_id": s["subject_id"], "hadm_id": s["hadm_id"], "stay_id": s["stay_id"],
            "first_careunit": first.astype(str), "last_careunit": last.astype(str),
            "intime": s["intime"], "outtime": s["outtime"],
            "los": (s["outtime"] - s["intime"]) / DAY,
        }),
        "intime", "outtime",
    )


def diagnoses_frame(ctx, rng, cfg) -> pl.DataFrame:
    a = ctx.adms
    n = len(a["hadm_id"])
    is_icd10 = rng.random(n) < 0.5
    n_sep = np.where(a["is_septic"], rng.integers(1, 4, n), 0)
    n_other = rng.integers(2, 8, n)
    owner, pos, _ = groups(n_sep + n_other)
    sep9 = np.array(cfg["sepsis_codes"][9], dtype=object)
    sep10 = np.array(cfg["sepsis_codes"][10], dtype=object)
    oth9 = np.array(cfg["other_codes"][9], dtype=object)
    oth10 = np.array(cfg["other_codes"][10], dtype=object)
    v10 = is_icd10[owner]
    sep_code = np.where(v10, sep10[np.minimum(pos, len(sep10) - 1)], sep9[np.minimum(pos, len(sep9) - 1)])
    k = rng.integers(0, len(oth9), len(owner))
    oth_code = np.where(v10, oth10[k % len(oth10)], oth9[k])
    code = np.where(pos < n_sep[owner], sep_code, oth_code)
    # Near-miss codes (SIRS of non-infectious origin: ICD-9 99593, ICD-10 R6510) on some
    # non-septic admissions: prefixes the sepsis filter must NOT match.
    near = (~a["is_septic"])[owner] & (pos == 0) & (rng.random(len(owner)) < 0.1)
    code = np.where(near, np.where(v10, "R6510", "99593"), code)
    return pl.DataFrame({
        "subject_id": a["subject_id"][owner], "hadm_id": a["hadm_id"][owner],
        "seq_num": pos + 1, "icd_code": code.astype(str), "icd_version": np.where(v10, 10, 9),
    })


# ------------------------------------------------------------------------------------------
def inputevents_frame(ctx, rng, cfg, n_stays: int, prm) -> tuple[pl.DataFrame, pl.DataFrame]:
    """inputevents with Rewritten copies and a few corrupted rows; returns (frame, quarantine
    truth)."""
    r: Rows = ctx.rows
    ids = cfg["itemids"]
    n = len(r.stay)
    key_stay = ctx.key_to_stay_id
    stay_id = key_stay[r.stay]
    dur_min = (r.end_s - r.start_s) / MIN
    # orderids: even numbers, random; a Rewritten copy gets its original's id + 1 (larger).
    orderid = 2 * (500_000 + rng.permutation(n).astype(np.int64))
    frame = pl.DataFrame({
        "stay_id": stay_id, "key": r.stay, "itemid": r.itemid, "start_s": r.start_s, "end_s": r.end_s,
        "rate": r.rate, "rateuom": r.rateuom.astype(str), "patientweight": r.weight, "order": r.order,
        "kind": r.kind.astype(str), "is_last": r.is_last, "next_gap_min": r.next_gap_min,
        "orderid": orderid, "dur_min": dur_min,
    }).with_columns(pl.col("rate").fill_nan(None))
    frame = frame.with_columns(
        pl.col("orderid").sort_by("start_s").first().over("order").alias("linkorderid"),
    )
    last_status = _pick(rng, ["Stopped", "FinishedRunning"], n)
    status = np.where(~r.is_last, np.where(r.next_gap_min > 0, "Paused", "ChangeDose/Rate"), last_status)
    status = np.where(np.isin(r.kind, ["fluid_bolus"]), "FinishedRunning", status)
    frame = frame.with_columns(pl.Series("statusdescription", status.astype(str)))

    # Rewritten audit copies: a wrong rate on a copy of an NE row (random ones, plus the row
    # covering VP start in some vp_added stays so that a cohort keeping them gets it wrong).
    vp_at = ctx.key_vp_start[r.stay]
    covers = (r.kind == "ne") & (vp_at >= 0) & (r.start_s <= vp_at) & (vp_at < r.end_s)
    pick = (r.kind == "ne") & ((rng.random(n) < prm.p_rewritten) | (covers & (rng.random(n) < 0.3)))
    copies = frame.filter(pl.Series(pick)).with_columns(
        (pl.col("orderid") + 1).alias("orderid"),
        pl.lit("Rewritten").alias("statusdescription"),
        (pl.col("rate") * pl.lit(rng.uniform(1.5, 3.0, int(pick.sum())))).clip(upper_bound=4.9).round(3).alias("rate"),
    )
    frame = pl.concat([frame, copies])

    # Amounts and the other order columns, like MetaVision writes them.
    kind = pl.col("kind")
    uom = pl.col("rateuom")
    amount = (
        pl.when(kind == "fluid_bolus").then(pl.col("bolus_ml"))
        .when(uom == "mcg/kg/min").then(pl.col("rate") * pl.col("patientweight") * pl.col("dur_min") / 1000.0)
        .when(uom == "mcg/min").then(pl.col("rate") * pl.col("dur_min") / 1000.0)
        .when(uom == "units/hour").then(pl.col("rate") * pl.col("dur_min") / 60.0)
        .when(uom == "units/min").then(pl.col("rate") * pl.col("dur_min"))
        .otherwise(None)
    )
    is_drug = kind.is_in(["ne", "vp", "other"])
    frame = frame.with_columns(
        pl.Series("bolus_ml", rng.choice([500.0, 1000.0], frame.height)),
        pl.Series("caregiver_id", rng.integers(1000, 99999, frame.height)),
        (pl.col("start_s") + pl.Series(rng.integers(0, 31, frame.height)) * MIN).alias("store_s"),
    ).with_columns(
        amount.alias("amount"),
        pl.when(kind == "vp").then(pl.lit("units")).when(is_drug).then(pl.lit("mg")).otherwise(pl.lit("ml")).alias("amountuom"),
        pl.when(kind == "fluid_bolus").then(pl.lit("03-IV Fluid Bolus")).otherwise(pl.lit("01-Drips")).alias("ordercategoryname"),
        pl.when(kind == "fluid_bolus").then(None).otherwise(pl.lit("02-Fluids (Crystalloids)")).alias("secondaryordercategoryname"),
        pl.lit("Main order parameter").alias("ordercomponenttypedescription"),
        pl.when(kind == "fluid_bolus").then(pl.lit("Bolus")).otherwise(pl.lit("Continuous Med")).alias("ordercategorydescription"),
        pl.when(kind == "vp").then(pl.lit(100.0)).when(kind == "fluid_bolus").then(pl.col("bolus_ml")).otherwise(pl.lit(250.0)).alias("totalamount"),
        pl.lit("ml").alias("totalamountuom"),
        pl.lit(0).alias("isopenbag"),
        pl.lit(0).alias("continueinnextdept"),
        pl.when(kind == "vp").then(pl.lit(40.0)).when(kind == "fluid_bolus").then(pl.col("bolus_ml")).otherwise(pl.lit(8.0)).alias("originalamount"),
        pl.when(kind == "fluid_bolus").then(pl.col("bolus_ml")).otherwise(pl.col("rate")).alias("originalrate"),
        pl.when(pl.col("rateuom") == "").then(None).otherwise(pl.col("rateuom")).alias("rateuom"),
    )
    frame = frame.sort(["stay_id", "start_s", "itemid", "orderid"])

    # Corrupted rows (validator must quarantine them): only rows of vp_added stays that start
    # after VP start, so the truth (fixed at VP start) holds whether or not they are dropped.
    frame = frame.with_row_index("row_number", offset=1)
    vp_start_by_stay = pl.DataFrame({"stay_id": ctx.stays["stay_id"], "vp_s": ctx.key_vp_start[ctx.stays["key"]]})
    elig = frame.join(vp_start_by_stay, on="stay_id", how="left").filter(
        (pl.col("vp_s") >= 0) & (pl.col("start_s") > pl.col("vp_s")) & (pl.col("statusdescription") != "Rewritten")
    )
    per_kind = max(1, n_stays * prm.corrupt_rows_per_kind_per_10k_stays // 10_000)
    ne_rows = elig.filter(pl.col("itemid") == ids["ne"])["row_number"].to_numpy()
    vp_rows = elig.filter(pl.col("itemid") == ids["vp"])["row_number"].to_numpy()
    ne_pick = rng.permutation(ne_rows)[: 3 * per_kind]
    vp_pick = rng.permutation(vp_rows)[:per_kind]
    kinds = {
        "rate_above_plausible_max": ne_pick[:per_kind],
        "endtime_before_starttime": ne_pick[per_kind: 2 * per_kind],
        "patientweight_implausible": ne_pick[2 * per_kind: 3 * per_kind],
        "negative_rate": vp_pick,
    }
    q_rows, q_kind = [], []
    for k, rows_ in kinds.items():
        q_rows.extend(rows_.tolist())
        q_kind.extend([k] * len(rows_))
    q = pl.DataFrame({"row_number": pl.Series(q_rows, dtype=pl.UInt32), "defect": pl.Series(q_kind, dtype=pl.String)})
    rn = pl.col("row_number")
    frame = frame.with_columns(
        pl.when(rn.is_in(kinds["rate_above_plausible_max"].tolist())).then(pl.lit(7.5)).when(
            rn.is_in(kinds["negative_rate"].tolist())).then(-pl.col("rate")).otherwise(pl.col("rate")).alias("rate"),
        pl.when(rn.is_in(kinds["endtime_before_starttime"].tolist())).then(pl.col("start_s") - 30 * MIN)
        .otherwise(pl.col("end_s")).alias("end_s"),
        pl.when(rn.is_in(kinds["patientweight_implausible"].tolist())).then(pl.lit(999.0))
        .otherwise(pl.col("patientweight")).alias("patientweight"),
    )
    quarantine = q.join(frame.select("row_number", "stay_id", "itemid"), on="row_number").with_columns(
        pl.lit("icu/inputevents").alias("table"),
        pl.col("row_number").cast(pl.Int64),
    ).select("table", "row_number", "stay_id", "itemid", "defect").sort("row_number")
    ctx.inputevents_clean = frame  # rows with source row numbers, for the truth
    out = frame.join(ctx.stay_ids_frame, on="stay_id", how="left").rename(
        {"start_s": "starttime", "end_s": "endtime", "store_s": "storetime"}
    )
    out = _dt(out, "starttime", "endtime", "storetime")
    return out, quarantine


# ------------------------------------------------------------------------------------------
def procedures(ctx, rng, cfg) -> tuple[pl.DataFrame, dict]:
    """procedureevents (arterial lines, RRT) and the RRT chart rows; returns the frame and the
    per-stay RRT event times (for the truth)."""
    s = ctx.stays
    an = ctx.anchor_of_stay  # dict of per-stay arrays for anchor facts (nan/-1 elsewhere)
    n = len(s["stay_id"])
    is_anchor = s["role"] == ROLE_ANCHOR
    pressor = an["index"] >= 0
    # arterial line
    art = np.where(pressor & is_anchor, rng.random(n) < 0.7, rng.random(n) < 0.2)
    a_start = np.where(pressor, an["index"] - rng.integers(-60, 240, n) * MIN, s["intime"] + rng.integers(0, 6 * HOUR, n))
    a_start = np.maximum(ceil_minute(a_start), ceil_minute(s["intime"]))
    a_end = np.maximum(s["outtime"] // MIN * MIN - rng.integers(0, 4 * HOUR, n) // MIN * MIN, a_start + 10 * MIN)
    ai = np.flatnonzero(art & (a_start < s["outtime"]))
    # RRT before index (hemodialysis session) and after index (first session, cause-specific
    # hazard, observed only while in the ICU; death competes because outtime <= death).
    pre = an["rrt_pre"] & is_anchor & pressor
    post_t = an["rrt_true"]
    post = is_anchor & pressor & (post_t >= 0) & (post_t < s["outtime"] - 10 * MIN)
    pre_start = an["rrt_pre_time"]
    pre_end = np.minimum(pre_start + rng.integers(180, 241, n) * MIN, s["outtime"] // MIN * MIN)
    post_end = np.minimum(post_t + rng.integers(1 * DAY, 3 * DAY, n) // MIN * MIN, s["outtime"] // MIN * MIN)
    post_item = np.where(rng.random(n) < 0.8, cfg["rrt_proc"]["crrt"], cfg["rrt_proc"]["hd"])
    pi_ = np.flatnonzero(pre)
    qi = np.flatnonzero(post)
    stay_idx = np.concatenate([ai, pi_, qi])
    start = np.concatenate([a_start[ai], pre_start[pi_], post_t[qi]])
    end = np.concatenate([a_end[ai], pre_end[pi_], post_end[qi]])
    item = np.concatenate([np.full(len(ai), cfg["art_line"]), np.full(len(pi_), cfg["rrt_proc"]["hd"]), post_item[qi]])
    m = len(stay_idx)
    is_art = item == cfg["art_line"]
    frame = _dt(pl.DataFrame({
        "subject_id": s["subject_id"][stay_idx], "hadm_id": s["hadm_id"][stay_idx], "stay_id": s["stay_id"][stay_idx],
        "caregiver_id": rng.integers(1000, 99999, m),
        "starttime": start, "endtime": end, "storetime": end + rng.integers(0, 30, m) * MIN,
        "itemid": item, "value": ((end - start) / MIN).astype(float), "valueuom": np.full(m, "min"),
        "location": pl.Series(np.where(is_art, _pick(rng, ["Left Radial", "Right Radial", "Left Femoral"], m), None).tolist(), dtype=pl.String),
        "locationcategory": pl.Series(np.where(is_art, "Invasive Arterial", None).tolist(), dtype=pl.String),
        "orderid": 2 * (600_000 + rng.permutation(m)), "linkorderid": None,
        "ordercategoryname": np.where(is_art, "Invasive Lines", np.where(item == cfg["rrt_proc"]["hd"], "Continuous Procedures", "Dialysis")),
        "ordercategorydescription": np.full(m, "ContinuousProcess"),
        "patientweight": an["weight"][stay_idx],
        "isopenbag": np.ones(m, dtype=np.int64), "continueinnextdept": np.zeros(m, dtype=np.int64),
        "statusdescription": np.full(m, "FinishedRunning"),
        "ORIGINALAMOUNT": ((end - start) / MIN).astype(float), "ORIGINALRATE": np.ones(m, dtype=np.int64),
    }).with_columns(pl.col("orderid").alias("linkorderid")), "starttime", "endtime", "storetime")
    # RRT chart rows (blood flow, access pressure): hourly from the session start; before
    # index only while still before index_time.
    rrt_idx = np.concatenate([pi_, qi])
    r_start = np.concatenate([pre_start[pi_], post_t[qi]])
    r_end = np.concatenate([np.minimum(pre_end[pi_], an["index"][pi_]), post_end[qi]])
    k = rng.integers(1, 5, len(rrt_idx))
    o, pos, _ = groups(k)
    ct = r_start[o] + pos * HOUR
    ok = ct < r_end[o]
    o, ct = o[ok], ct[ok]
    chart = {"stay": rrt_idx[o], "charttime": ct, "itemid": np.where(rng.random(len(o)) < 0.6, cfg["rrt_chart"][0], cfg["rrt_chart"][1]),
             "valuenum": np.round(rng.uniform(150, 250, len(o)))}
    # Truth: RRT times per stay (procedure starts and chart times).
    ev_stay = np.concatenate([rrt_idx, chart["stay"]])
    ev_time = np.concatenate([r_start, ct])
    rrt = {"stay": ev_stay, "time": ev_time}
    return frame, {"chart": chart, "rrt_events": rrt, "art_line": art}


def chartevents_frames(ctx, rng, cfg, rrt_chart: dict) -> Iterator[pl.DataFrame]:
    """Vitals hourly over each stay (MAP, plus heart and respiratory rate the study does not
    read), weights, and the RRT chart rows; in chunks of stays."""
    s = ctx.stays
    an = ctx.anchor_of_stay
    n = len(s["stay_id"])
    art = ctx.art_line
    is_anchor = s["role"] == ROLE_ANCHOR
    hourly = ctx.anchor["map_hourly"]
    map_item = np.where(art, np.where(rng.random(n) < 0.1, cfg["map"][2], cfg["map"][0]), cfg["map"][1])
    for lo in range(0, n, CHART_CHUNK_STAYS):
        idx = np.arange(lo, min(n, lo + CHART_CHUNK_STAYS))
        t0 = -(-s["intime"][idx] // HOUR) * HOUR
        ix = an["index"][idx]
        t0 = np.where(ix >= 0, ix - ((ix - s["intime"][idx]) // HOUR) * HOUR, t0)  # shock clock
        nh = np.maximum((s["outtime"][idx] - t0) // HOUR + 1, 0)
        nh = np.where(t0 + (nh - 1) * HOUR >= s["outtime"][idx], nh - 1, nh)
        o, pos, _ = groups(nh)
        st = idx[o]
        ct = t0[o] + pos * HOUR
        m = len(o)
        # shock stays: MAP on the hours of the shock clock (index + k h), the hourly world's value
        # while on NE, else noise around a recovered value
        idx_t = an["index"][st]
        has_i = idx_t >= 0
        k_h = np.where(has_i, (ct - idx_t) // HOUR, -1)
        mapv = np.round(np.clip(rng.normal(np.where(has_i & (k_h < 0), 66, 74), 7), 35, 140))
        prow = np.where(has_i & is_anchor[st], ctx.anchor["pressor_row"][s["patient"][st]], -1)
        ok = (prow >= 0) & (k_h >= 0) & (k_h < hourly.shape[1])
        hv = np.full(m, np.nan)
        hv[ok] = hourly[prow[ok], k_h[ok]]
        mapv = np.where(np.isnan(hv), mapv, hv)
        hr = np.round(np.clip(rng.normal(95, 15, m), 40, 180))
        rr = np.round(np.clip(rng.normal(20, 4, m), 6, 45))
        # weights: admission weight 30 min after intime, daily weight every 24 h
        w_st = idx
        w_t = s["intime"][idx] // MIN * MIN + 30 * MIN
        nd = np.maximum((s["outtime"][idx] - s["intime"][idx]) // DAY, 0)
        do, dpos, _ = groups(nd)
        d_st = idx[do]
        d_t = s["intime"][d_st] // MIN * MIN + (dpos + 1) * DAY
        rs = np.isin(rrt_chart["stay"], idx)
        stay_all = np.concatenate([st, st, st, w_st, d_st, rrt_chart["stay"][rs]])
        time_all = np.concatenate([ct, ct + 2 * MIN, ct + 3 * MIN, w_t, d_t, rrt_chart["charttime"][rs]])
        item_all = np.concatenate([map_item[st], np.full(m, cfg["noise_chart"][0]), np.full(m, cfg["noise_chart"][1]),
                                   np.full(len(w_st), cfg["weight"][0]), np.full(len(d_st), cfg["weight"][1]),
                                   rrt_chart["itemid"][rs]])
        wv = an["weight"]
        val_all = np.concatenate([mapv, hr, rr, wv[w_st], np.round(wv[d_st] + rng.normal(0, 1.5, len(d_st)), 1),
                                  rrt_chart["valuenum"][rs]])
        uom = np.concatenate([np.full(m, "mmHg"), np.full(m, "bpm"), np.full(m, "insp/min"), np.full(len(w_st), "kg"),
                              np.full(len(d_st), "kg"), np.where(rrt_chart["itemid"][rs] == cfg["rrt_chart"][0], "ml/min", "mmHg")])
        keep = time_all < s["outtime"][stay_all]
        k = len(stay_all)
        df = pl.DataFrame({
            "subject_id": s["subject_id"][stay_all], "hadm_id": s["hadm_id"][stay_all], "stay_id": s["stay_id"][stay_all],
            "caregiver_id": rng.integers(1000, 99999, k), "charttime": time_all,
            "storetime": time_all + rng.integers(0, 41, k) * MIN, "itemid": item_all,
            "valuenum": val_all, "valueuom": uom, "warning": np.zeros(k, dtype=np.int64),
        }).filter(pl.Series(keep)).sort(["stay_id", "charttime", "itemid"])
        df = df.with_columns(
            pl.when(pl.col("valuenum") == pl.col("valuenum").round(0)).then(pl.col("valuenum").cast(pl.Int64).cast(pl.String))
            .otherwise(pl.col("valuenum").cast(pl.String)).alias("value")
        )
        yield _dt(df, "charttime", "storetime")


# ------------------------------------------------------------------------------------------
LAB_SPECS = {  # itemid -> (uom, ref lower, ref upper); values as MIMIC's d_labitems/labevents
    "lactate": ("mmol/L", 0.5, 2.0),
    "creatinine": ("mg/dL", 0.5, 1.2),
    "glucose": ("mg/dL", 70.0, 100.0),
    "hemoglobin": ("g/dL", 13.7, 17.5),
}


def labevents_frame(ctx, rng, cfg) -> pl.DataFrame:
    """Baseline lactate (the hazard's covariate; the first lactate of the admission) before the
    NE start, follow-up lactates, baseline creatinine, and daily chemistry / haematology."""
    s = ctx.stays
    an = ctx.anchor_of_stay
    n = len(s["stay_id"])
    adm_t = s["admittime"]
    pressor = an["index"] >= 0
    is_anchor = s["role"] == ROLE_ANCHOR
    base_t = np.where(pressor, an["index"] - rng.integers(10, 181, n) * MIN, s["intime"] // MIN * MIN + 30 * MIN)
    base_t = np.maximum(base_t, adm_t)
    lac = np.where(is_anchor, an["lactate"], np.round(np.clip(np.exp(rng.normal(np.log(1.6), 0.5, n)), 0.5, 15), 1))
    cre = np.where(is_anchor, an["creatinine"], np.round(np.clip(np.exp(rng.normal(np.log(1.1), 0.4, n)), 0.3, 12), 1))
    cre_t = np.where(pressor, an["index"] - rng.integers(0, 361, n) * MIN, base_t + 10 * MIN)
    cre_t = np.maximum(cre_t, adm_t)
    # follow-up lactates of the hourly world (every 6 h on NE in the decision window), anchor stays
    fu = ctx.anchor["lab_fu"]
    stay_of_patient = np.full(len(ctx.anchor["index"]), -1, dtype=np.int64)
    stay_of_patient[s["patient"][is_anchor]] = np.flatnonzero(is_anchor)
    fo = stay_of_patient[fu["patient"]]
    f_t, f_v = fu["time"][fo >= 0], fu["value"][fo >= 0]
    fo = fo[fo >= 0]
    # daily labs at 04:00 over the ICU stay
    day0 = s["intime"] // DAY * DAY + DAY + 4 * HOUR
    nd = np.maximum((s["outtime"] - day0) // DAY + 1, 0)
    do, dpos, _ = groups(nd)
    d_t = day0[do] + dpos * DAY
    stay = np.concatenate([np.arange(n), np.arange(n), fo, do, do, do])
    t = np.concatenate([base_t, cre_t, f_t, d_t, d_t, d_t])
    kinds = np.concatenate([np.full(n, 0), np.full(n, 1), np.full(len(fo), 0), np.full(len(do), 1),
                            np.full(len(do), 2), np.full(len(do), 3)])
    v = np.concatenate([lac, cre, f_v, np.round(np.clip(cre[do] * rng.uniform(0.8, 1.3, len(do)), 0.3, 15), 1),
                        np.round(rng.normal(130, 35, len(do))), np.round(rng.normal(10, 1.8, len(do)), 1)])
    ok = t < s["dischtime"][stay]
    stay, t, kinds, v = stay[ok], t[ok], kinds[ok], v[ok]
    items = np.array([cfg["lactate"], cfg["creatinine"], cfg["noise_lab"][0], cfg["noise_lab"][1]])[kinds]
    names = ["lactate", "creatinine", "glucose", "hemoglobin"]
    uom = np.array([LAB_SPECS[k][0] for k in names], dtype=object)[kinds]
    lo = np.array([LAB_SPECS[k][1] for k in names])[kinds]
    hi = np.array([LAB_SPECS[k][2] for k in names])[kinds]
    m = len(stay)
    df = pl.DataFrame({
        "subject_id": s["subject_id"][stay], "hadm_id": s["hadm_id"][stay],
        "specimen_id": 10_000_000 + rng.permutation(m) * 7 % 90_000_000, "itemid": items,
        "order_provider_id": _nulls(m), "charttime": t, "storetime": t + rng.integers(5, 91, m) * MIN,
        "valuenum": v, "valueuom": uom.astype(str), "ref_range_lower": lo, "ref_range_upper": hi,
        "flag": pl.Series(np.where((v < lo) | (v > hi), "abnormal", None).tolist(), dtype=pl.String),
        "priority": _pick(rng, ["STAT", "ROUTINE"], m, [0.6, 0.4]).astype(str), "comments": _nulls(m),
    }).sort(["subject_id", "charttime", "itemid"])
    df = df.with_columns(
        pl.int_range(1, pl.len() + 1).alias("labevent_id"),
        pl.when(pl.col("valuenum") == pl.col("valuenum").round(0)).then(pl.col("valuenum").cast(pl.Int64).cast(pl.String))
        .otherwise(pl.col("valuenum").cast(pl.String)).alias("value"),
    )
    return _dt(df, "charttime", "storetime")


def medications_frames(ctx, rng, cfg) -> tuple[pl.DataFrame, pl.DataFrame]:
    """prescriptions and emar: IV hydrocortisone 50 mg q6h for some shock patients (after NE
    start), plus unrelated drugs."""
    s = ctx.stays
    an = ctx.anchor_of_stay
    n = len(s["stay_id"])
    pressor = (an["index"] >= 0) & (s["role"] == ROLE_ANCHOR)
    start = (an["index"] + rng.integers(2 * HOUR, 24 * HOUR, n)) // HOUR * HOUR
    hc = pressor & (rng.random(n) < cfg["p_hydrocortisone"]) & (start < s["dischtime"])
    stop = np.minimum(start + rng.integers(2, 8, n) * DAY, s["dischtime"])
    hi = np.flatnonzero(hc)
    # unrelated drugs: one per stay
    oi = np.arange(n)
    o_drug = _pick(rng, ["Pantoprazole", "Heparin", "Acetaminophen"], n)
    o_start = s["intime"] // HOUR * HOUR + HOUR
    idx = np.concatenate([hi, oi])
    drug = np.concatenate([np.full(len(hi), "Hydrocortisone Na Succ.", dtype=object), o_drug])
    st = np.concatenate([start[hi], o_start])
    sp = np.concatenate([stop[hi], np.minimum(o_start + 3 * DAY, s["dischtime"])])
    m = len(idx)
    is_hc = drug == "Hydrocortisone Na Succ."
    pharmacy_id = 10_000_000 + rng.permutation(m).astype(np.int64) * 13 % 89_000_000
    seq = rng.integers(10, 900, m)
    poe = np.array([f"{a}-{b}" for a, b in zip(s["subject_id"][idx], seq)], dtype=object)
    cd = {"Hydrocortisone Na Succ.": "HC100I", "Pantoprazole": "PANT40I", "Heparin": "HEPA5I", "Acetaminophen": "ACET325"}
    presc = _dt(pl.DataFrame({
        "subject_id": s["subject_id"][idx], "hadm_id": s["hadm_id"][idx], "pharmacy_id": pharmacy_id,
        "poe_id": poe.astype(str), "poe_seq": seq, "order_provider_id": _nulls(m), "starttime": st, "stoptime": sp,
        "drug_type": np.full(m, "MAIN"), "drug": drug.astype(str),
        "formulary_drug_cd": np.array([cd[d] for d in drug]), "gsn": _nulls(m), "ndc": _nulls(m),
        "prod_strength": np.where(is_hc, "100mg/2mL Vial", ""), "form_rx": _nulls(m),
        "dose_val_rx": np.where(is_hc, "50", "1"), "dose_unit_rx": np.where(is_hc, "mg", "dose"),
        "form_val_disp": np.where(is_hc, "0.5", "1"), "form_unit_disp": np.where(is_hc, "VIAL", "TAB"),
        "doses_per_24_hrs": np.where(is_hc, 4, 1), "route": np.where(is_hc, "IV", "PO"),
    }), "starttime", "stoptime").with_columns(
        pl.when(pl.col("prod_strength") == "").then(None).otherwise(pl.col("prod_strength")).alias("prod_strength")
    )
    # emar: hydrocortisone every 6 h while prescribed (cut at discharge), others once.
    k = np.where(is_hc, np.maximum((sp - st) // (6 * HOUR), 1), 1)
    o, pos, _ = groups(k)
    ct = st[o] + pos * 6 * HOUR
    em = pl.DataFrame({
        "subject_id": s["subject_id"][idx][o], "hadm_id": s["hadm_id"][idx][o], "poe_id": poe[o].astype(str),
        "pharmacy_id": pharmacy_id[o], "enter_provider_id": _nulls(len(o)), "charttime": ct,
        "medication": drug[o].astype(str), "event_txt": np.full(len(o), "Administered"), "scheduletime": ct,
        "storetime": ct + rng.integers(0, 40, len(o)) * MIN,
    }).sort(["subject_id", "charttime"]).with_columns(
        pl.int_range(1, pl.len() + 1).over("subject_id").alias("emar_seq"),
    ).with_columns(
        (pl.col("subject_id").cast(pl.String) + "-" + pl.col("emar_seq").cast(pl.String)).alias("emar_id")
    )
    return presc, _dt(em, "charttime", "scheduletime", "storetime")

"""``vasoflow synth``: synthetic data in PhysioNet's MIMIC-IV 2.2 layout with known truth.

>>> from pathlib import Path; import tempfile
>>> r = generate(Path(tempfile.mkdtemp()), n_stays=60, seed=1)
>>> r.n_stays, r.truth_path.name
(60, 'ground_truth.parquet')

Writes ``out_dir/hosp/*.csv.gz`` and ``out_dir/icu/*.csv.gz`` (real headers, real value
formats), and beside them ``ground_truth.parquet`` (one row per ICU stay),
``ground_truth_quarantine.parquet`` (rows corrupted on purpose), ``true_effects.json`` and
``GENERATIVE_MODEL.md``. The model is described in ``GENERATIVE_MODEL.md`` and in
``pipeline.synth.plan`` / ``pipeline.synth.params``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import polars as pl

from pipeline.concepts import load_concepts
from pipeline.config import load_study_config
from pipeline.errors import ConfigError, VasoflowError
from pipeline.synth import tables
from pipeline.synth.layout import D_ITEMS_ROWS, HEADERS
from pipeline.synth.params import SynthParams
from pipeline.synth.plan import DAY, EXPOSURE_CODES, ROLE_ANCHOR, plan, year_of
from pipeline.synth.truth import strategy_truth, strategy_truth_full, timing_class, vasst_stratum, write_docs
from pipeline.synth.writer import seconds_to_datetime, write_table

__all__ = ["SynthParams", "SynthResult", "generate", "strategy_truth", "synth_config"]


@dataclass(frozen=True)
class SynthResult:
    """Where a synthetic dataset is and what is in it."""

    out_dir: Path
    n_stays: int
    seed: int
    truth_path: Path
    quarantine_path: Path
    effects_path: Path
    model_path: Path
    seconds: float
    n_patients: int
    n_cohort: int
    rows: Mapping[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        lines = [
            f"synthetic MIMIC-IV data: {self.n_stays} ICU stays of {self.n_patients} patients "
            f"(seed {self.seed}) in {self.seconds:.1f} s",
            f"  data:         {self.out_dir}/hosp, {self.out_dir}/icu",
            f"  truth:        {self.truth_path} ({self.n_cohort} cohort rows with default switches)",
            f"  quarantine:   {self.quarantine_path}",
            f"  true effects: {self.effects_path}",
            f"  model:        {self.model_path}",
            "  rows: " + ", ".join(f"{k.split('/')[-1]} {v:,}" for k, v in self.rows.items()),
        ]
        return "\n".join(lines)


def synth_config() -> dict:
    """Item ids, codes, factors and thresholds the generator takes from config/*.toml."""
    c = load_concepts().raw
    study = load_study_config()
    d = c["drugs"]
    units = {u["rateuom"]: u for u in d["phenylephrine"]["units"]}
    cfg = {
        "itemids": {
            "ne": d["norepinephrine"]["itemids"][0],
            "vp": d["vasopressin"]["itemids"][0],
            "epi": d["epinephrine"]["itemids"][0],
            "phe": d["phenylephrine"]["itemids"][0],
            "phe_mcg_min": d["phenylephrine"]["itemids"][1],
            "dopa": d["dopamine"]["itemids"][0],
        },
        "to_canonical": {"phe_mcg_min": units["mcg/min"]["to_canonical"]},
        "nee": {k: d[v]["nee_factor"] for k, v in
                {"ne": "norepinephrine", "epi": "epinephrine", "phe": "phenylephrine", "dopa": "dopamine"}.items()},
        "crystalloids": c["synth"]["crystalloid_itemids"],
        "art_line": c["audit_items"]["arterial_line_itemids"][0],
        "rrt_proc": {"crrt": c["synth"]["rrt_crrt_itemid"], "hd": c["synth"]["rrt_hemodialysis_itemid"]},
        "rrt_chart": c["synth"]["rrt_chartevents_itemids"],
        "map": c["measurements"]["map"]["itemids"],
        "weight": c["measurements"]["weight"]["itemids"],
        "lactate": c["measurements"]["lactate"]["itemids"][0],
        "creatinine": c["measurements"]["creatinine"]["itemids"][0],
        "noise_chart": c["synth"]["unused_chartevents_itemids"],
        "noise_lab": c["synth"]["unused_labevents_itemids"],
        "sepsis_codes": {9: c["synth"]["sepsis_icd9_codes"], 10: c["synth"]["sepsis_icd10_codes"]},
        "other_codes": {9: c["synth"]["other_icd9_codes"], 10: c["synth"]["other_icd10_codes"]},
        "vasst_entry": study.get("classification.vasst_entry_ne_mcg_min"),
        "vasst_more_severe": study.get("classification.vasst_more_severe_ne_mcg_min"),
        "timing_recommended": study.get("classification.timing_recommended_ne_mcg_kg_min"),
        "timing_ssc": study.get("classification.timing_ssc_window_ne_mcg_kg_min"),
        "timing_delayed": study.get("classification.timing_delayed_above_ne_mcg_kg_min"),
        "timing_delayed_mcg_min": study.get("classification.timing_delayed_above_ne_mcg_min"),
        "dod_coverage_days": study.get("outcomes.dod_coverage_days"),
        "min_age": study.get("cohort.min_age_years"),
        "p_hydrocortisone": SynthParams().p_hydrocortisone,
        "tte_window_hours": float(study.typed("tte").decision_window_hours),
        "tte_grace_hours": int(study.typed("tte").grace_hours),
        "tte": dict(study.section("tte")),  # the strategies of the interventional truth
    }
    # Items written must be items the study reads, else the truth would not be what the SQL sees.
    for key, ids, allowed in (
        ("crystalloid_itemids", cfg["crystalloids"], c["audit_items"]["crystalloid_itemids"]),
        ("rrt_crrt_itemid / rrt_hemodialysis_itemid", cfg["rrt_proc"].values(), c["rrt"]["procedureevents_itemids"]),
        ("rrt_chartevents_itemids", cfg["rrt_chart"], c["rrt"]["chartevents_itemids"]),
    ):
        stray = sorted(set(ids) - set(allowed))
        if stray:
            raise ConfigError(f"concepts.toml [synth].{key}: {stray} not in the study's item lists")
    return cfg


def _select(n_stays_per_patient: np.ndarray, n_stays: int) -> np.ndarray | None:
    """Patients (pool indices) whose stays add up to exactly ``n_stays``: a prefix of the pool,
    topped up with single-stay patients after it."""
    cum = np.cumsum(n_stays_per_patient)
    cut = int(np.searchsorted(cum, n_stays, side="right"))
    got = int(cum[cut - 1]) if cut else 0
    rest = np.flatnonzero(n_stays_per_patient[cut:] == 1)[: n_stays - got] + cut
    if got + len(rest) != n_stays:
        return None
    return np.concatenate([np.arange(cut), rest])


def _context(p: dict, sel: np.ndarray, rng: np.random.Generator, cfg: dict) -> SimpleNamespace:
    pt, adms, st, an = p["patients"], p["adms"], p["stays"], p["anchor"]
    P = len(pt["patient"])
    pmask = np.zeros(P, dtype=bool)
    pmask[sel] = True
    sid = np.full(P, -1, dtype=np.int64)
    sid[sel] = 10_000_000 + np.sort(rng.choice(9_000_000, len(sel), replace=False))
    patients = {k: v[sel] for k, v in pt.items()}
    patients["subject_id"] = sid[sel]

    amask = pmask[adms["patient"]]
    hadm = np.full(len(amask), -1, dtype=np.int64)
    hadm[amask] = 20_000_000 + rng.choice(9_000_000, int(amask.sum()), replace=False)
    a_sel = {k: v[amask] for k, v in adms.items()}
    a_sel["hadm_id"] = hadm[amask]
    a_sel["subject_id"] = sid[a_sel["patient"]]
    order = np.lexsort((a_sel["admittime"], a_sel["subject_id"]))
    a_sel = {k: v[order] for k, v in a_sel.items()}

    smask = pmask[st["patient"]]
    s_sel = {k: v[smask] for k, v in st.items()}
    n = int(smask.sum())
    s_sel["stay_id"] = 30_000_000 + rng.choice(9_000_000, n, replace=False)
    s_sel["subject_id"] = sid[s_sel["patient"]]
    s_sel["hadm_id"] = hadm[s_sel["adm"]]
    s_sel["admittime"] = adms["admittime"][s_sel["adm"]]
    s_sel["dischtime"] = adms["dischtime"][s_sel["adm"]]
    order = np.lexsort((s_sel["intime"], s_sel["subject_id"]))
    s_sel = {k: v[order] for k, v in s_sel.items()}

    n_keys = int(max(st["key"].max(), p["rows"].stay.max(initial=0))) + 1
    key_to_stay = np.full(n_keys, -1, dtype=np.int64)
    key_to_stay[s_sel["key"]] = s_sel["stay_id"]
    rows = p["rows"].take(key_to_stay[p["rows"].stay] >= 0)

    # vp_start_time of kept vp_added anchor stays, by pool key (anchor key = patient index)
    key_vp = np.full(n_keys, -1, dtype=np.int64)
    is_vpa = (an["exposure_planned"] == "vp_added") & an["vp_kept"]
    key_vp[:P] = np.where(is_vpa, an["vp_planned"], -1)

    # NE start per stay (first infusing NE row), from the rows actually written
    ne = (rows.itemid == cfg["itemids"]["ne"]) & (rows.rate > 0)
    big = np.iinfo(np.int64).max
    first_ne = np.full(n_keys, big, dtype=np.int64)
    np.minimum.at(first_ne, rows.stay[ne], rows.start_s[ne])
    k = s_sel["key"]
    pat = s_sel["patient"]
    is_anchor = s_sel["role"] == ROLE_ANCHOR
    index = np.where(first_ne[k] == big, -1, first_ne[k])
    anchor_of_stay = {
        "index": index,
        "weight": an["weight"][pat],
        "lactate": np.where(is_anchor, an["lactate"][pat], np.nan),
        "creatinine": np.where(is_anchor, an["creatinine"][pat], np.nan),
        "rrt_pre": is_anchor & an["rrt_pre"][pat] & (index >= 0),
        "rrt_pre_time": np.where(is_anchor, an["rrt_pre_time"][pat], -1),
        "rrt_true": np.where(is_anchor & (index >= 0), an["rrt_true"][pat], -1),
    }
    return SimpleNamespace(
        patients=patients, adms=a_sel, stays=s_sel, anchor=an, rows=rows, key_to_stay_id=key_to_stay,
        key_vp_start=key_vp, anchor_of_stay=anchor_of_stay,
        stay_ids_frame=pl.DataFrame({"stay_id": s_sel["stay_id"], "subject_id": s_sel["subject_id"],
                                     "hadm_id": s_sel["hadm_id"]}),
        art_line=None,
    )


def _truth(ctx: SimpleNamespace, cfg: dict, rrt_events: dict) -> pl.DataFrame:
    s, an, pt, a = ctx.stays, ctx.anchor, ctx.patients, ctx.adms
    pat = s["patient"]
    k = s["key"]
    is_anchor = s["role"] == ROLE_ANCHOR
    index = ctx.anchor_of_stay["index"]
    sub_row = {int(p): i for i, p in enumerate(pt["patient"])}
    prow = np.array([sub_row[int(p)] for p in pat], dtype=np.int64) if len(pat) else np.zeros(0, np.int64)
    age = pt["anchor_age"][prow] + year_of(s["admittime"]) - pt["anchor_year"][prow]
    septic_by_hadm = dict(zip(a["hadm_id"].tolist(), a["is_septic"].tolist()))
    is_septic = np.array([septic_by_hadm[h] for h in s["hadm_id"].tolist()], dtype=bool)
    planned = an["exposure_planned"][pat]
    vp_kept = an["vp_kept"][pat]
    exposure = np.where(
        index < 0, None,
        np.where(~is_anchor, "ne_only",
                 np.where(planned == "vp_added", np.where(vp_kept, "vp_added", "ne_only"), planned)),
    )
    is_vpa = exposure == "vp_added"
    vp_start = np.where(is_vpa, ctx.key_vp_start[k], -1)
    rate = np.where(is_vpa, an["ne_rate_at_vp"][pat], np.nan)
    w_at = np.where(is_vpa, an["ne_w_at_vp"][pat], np.nan)
    later = is_anchor & an["later_vp_planned"][pat] & (an["later_vp_start"][pat] < an["death_true"][pat])

    # RRT relative to index (procedure starts and chart times of the stay)
    ev_stay = rrt_events["stay"]
    ev_t = rrt_events["time"]
    n = len(k)
    big = np.iinfo(np.int64).max
    first_after = np.full(n, big, dtype=np.int64)
    any_before = np.zeros(n, dtype=bool)
    has_idx = index[ev_stay] >= 0
    aft = has_idx & (ev_t >= index[ev_stay])
    bef = has_idx & (ev_t < index[ev_stay])
    np.minimum.at(first_after, ev_stay[aft], ev_t[aft])
    any_before[ev_stay[bef]] = True

    df = pl.DataFrame({
        "subject_id": s["subject_id"], "hadm_id": s["hadm_id"], "stay_id": s["stay_id"],
        "stay_role": s["role"].astype(str), "intime": s["intime"],
        "age_years": age, "is_adult": age >= cfg["min_age"], "is_septic": is_septic,
        "received_ne": index >= 0,
        "exposure": pl.Series(exposure.tolist(), dtype=pl.String),
        "index_time": index, "vp_start_time": vp_start,
        "ne_rate_at_vp_mcg_kg_min": rate, "ne_rate_at_vp_mcg_min": rate * w_at,
        # weight of the NE row covering VP start (spec: defined for vp_added only)
        "weight_kg": np.where(is_vpa, ctx.anchor_of_stay["weight"], np.nan),
        "weight_stay_kg": ctx.anchor_of_stay["weight"],
        "nee_at_vp_mcg_kg_min": np.where(is_vpa, an["nee_at_vp"][pat], np.nan),
        "hours_ne_to_vp": np.where(is_vpa, (vp_start - index) / 3600.0, np.nan),
        "rrt_before_index": pl.Series(np.where(index >= 0, any_before, None).tolist(), dtype=pl.Boolean),
        "rrt_after_index": pl.Series(np.where(index >= 0, first_after < big, None).tolist(), dtype=pl.Boolean),
        "rrt_first_time_after_index": np.where(first_after < big, first_after, -1),
        # latent / planning facts
        "is_more_severe_latent": pl.Series(np.where(is_anchor & (an["index"][pat] >= 0), an["severe"][pat], None).tolist(), dtype=pl.Boolean),
        "lactate_baseline_mmol_l": np.where(is_anchor, an["lactate"][pat], np.nan),
        "creatinine_baseline_mg_dl": np.where(is_anchor, an["creatinine"][pat], np.nan),
        "linear_predictor": np.where(is_anchor, an["lp"][pat], np.nan),
        "exposure_planned": np.where(is_anchor, planned, "").astype(str),
        "planned_vp_start_time": np.where(is_anchor, an["vp_planned"][pat], -1),
        "is_vp_prevented_by_death": is_anchor & (planned == "vp_added") & ~vp_kept,
        "has_later_vp_episode": later,
        "trap": np.where(is_anchor & is_vpa, an["trap"][pat], "").astype(str),
        "true_death_time": an["death_true"][pat],
        "true_rrt_time": np.where(is_anchor & (index >= 0), an["rrt_true"][pat], -1),
    }).with_columns(
        pl.col(c).fill_nan(None) for c in ("weight_kg", "ne_rate_at_vp_mcg_kg_min", "ne_rate_at_vp_mcg_min", "nee_at_vp_mcg_kg_min",
                                           "hours_ne_to_vp", "lactate_baseline_mmol_l", "creatinine_baseline_mg_dl",
                                           "linear_predictor")
    ).with_columns(
        pl.when(pl.col("exposure_planned") == "").then(None).otherwise(pl.col("exposure_planned")).alias("exposure_planned"),
        pl.when(pl.col("trap") == "").then(None).otherwise(pl.col("trap")).alias("trap"),
    )
    df = df.with_columns(
        vasst_stratum(pl.col("ne_rate_at_vp_mcg_min"), cfg).alias("vasst_stratum"),
        timing_class(pl.col("ne_rate_at_vp_mcg_kg_min"), pl.col("ne_rate_at_vp_mcg_min"), cfg).alias("timing_class"),
    )

    # death_time as the cohort derives it: admissions.deathtime, else patients.dod at 00:00
    # but not before the dischtime of the last admission starting before it.
    adm = pl.DataFrame({"subject_id": a["subject_id"], "admittime": a["admittime"], "dischtime": a["dischtime"],
                        "deathtime": a["deathtime"]})
    pts = pl.DataFrame({"subject_id": pt["subject_id"], "dod_s": pt["dod"]})
    in_hosp = adm.filter(pl.col("deathtime") >= 0).group_by("subject_id").agg(pl.col("deathtime").min().alias("dt_hosp"))
    dod_clamp = (
        adm.join(pts, on="subject_id").filter((pl.col("dod_s") >= 0) & (pl.col("admittime") < pl.col("dod_s")))
        .sort("admittime").group_by("subject_id").agg(pl.col("dischtime").last().alias("last_disch"), pl.col("dod_s").first())
        .with_columns(pl.max_horizontal("dod_s", "last_disch").alias("dt_dod"))
    )
    last_disch = adm.group_by("subject_id").agg(pl.col("dischtime").max().alias("last_dischtime"))
    death = (
        pts.select("subject_id").join(in_hosp, on="subject_id", how="left")
        .join(dod_clamp.select("subject_id", "dt_dod"), on="subject_id", how="left")
        .join(last_disch, on="subject_id", how="left")
        .with_columns(pl.coalesce("dt_hosp", "dt_dod").alias("death_time_s"))
        .with_columns(
            pl.coalesce("death_time_s", pl.col("last_dischtime") + cfg["dod_coverage_days"] * DAY).alias("followup_end_s")
        )
        .select("subject_id", "death_time_s", "followup_end_s")
    )
    df = df.join(death, on="subject_id", how="left")
    has_index = pl.col("index_time") >= 0

    def within(days: int) -> pl.Expr:
        horizon = pl.col("index_time") + days * DAY
        return (
            pl.when(~has_index).then(None)
            .when(pl.col("death_time_s").is_not_null() & (pl.col("death_time_s") <= horizon)).then(True)
            .when(pl.col("followup_end_s") < horizon).then(None)
            .otherwise(False)
        )

    df = df.with_columns(death_28d=within(28), death_90d=within(90))
    # in_cohort with the default switches: first stay by intime among adult, septic, NE stays
    qual = pl.col("is_adult") & pl.col("is_septic") & pl.col("received_ne")
    df = df.with_columns(
        (qual & (pl.col("intime") == pl.col("intime").filter(qual).min().over("subject_id"))).fill_null(False).alias("in_cohort")
    )
    ts = ["intime", "index_time", "vp_start_time", "rrt_first_time_after_index", "planned_vp_start_time",
          "true_death_time", "true_rrt_time"]
    df = df.with_columns(pl.col(c).cast(pl.Int64) for c in ts).with_columns(
        [seconds_to_datetime(c) for c in ts]
        + [seconds_to_datetime("death_time_s").alias("death_time"), seconds_to_datetime("followup_end_s").alias("followup_end_time")]
    )
    front = ["subject_id", "hadm_id", "stay_id", "is_adult", "is_septic", "received_ne", "exposure", "index_time",
             "vp_start_time", "ne_rate_at_vp_mcg_kg_min", "ne_rate_at_vp_mcg_min", "weight_kg", "nee_at_vp_mcg_kg_min",
             "hours_ne_to_vp", "vasst_stratum", "timing_class", "death_time", "death_28d", "death_90d",
             "rrt_before_index", "rrt_after_index", "rrt_first_time_after_index", "in_cohort", "followup_end_time"]
    rest = [c for c in df.columns if c not in front and c not in ("death_time_s", "followup_end_s")]
    return df.select(front + rest)


def generate(out_dir: Path, n_stays: int, seed: int, params: SynthParams | None = None) -> SynthResult:
    """Write a synthetic MIMIC-IV-layout dataset of exactly ``n_stays`` ICU stays to
    ``out_dir`` (created), deterministic in ``seed``. See the module docstring for outputs."""
    t0 = time.perf_counter()
    if n_stays < 1:
        raise VasoflowError(f"synth: --stays must be at least 1 (got {n_stays})")
    prm = params or SynthParams()
    cfg = synth_config()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pool = int(n_stays / 1.15) + 20
    while True:
        p = plan(np.random.default_rng([seed, 1, pool]), pool, prm, cfg)
        sel = _select(p["patients"]["n_stays"], n_stays)
        if sel is not None:
            break
        pool *= 2
    rng = np.random.default_rng([seed, 2])
    ctx = _context(p, sel, rng, cfg)
    rows: dict[str, int] = {}
    rows["hosp/patients"] = write_table(out_dir, "hosp/patients", [tables.patients_frame(ctx)])
    rows["hosp/admissions"] = write_table(out_dir, "hosp/admissions", [tables.admissions_frame(ctx, rng)])
    rows["hosp/diagnoses_icd"] = write_table(out_dir, "hosp/diagnoses_icd", [tables.diagnoses_frame(ctx, rng, cfg)])
    rows["icu/icustays"] = write_table(out_dir, "icu/icustays", [tables.icustays_frame(ctx, rng)])
    inputs, quarantine = tables.inputevents_frame(ctx, rng, cfg, n_stays, prm)
    rows["icu/inputevents"] = write_table(out_dir, "icu/inputevents", [inputs])
    del inputs
    proc, extra = tables.procedures(ctx, rng, cfg)
    ctx.art_line = extra["art_line"]
    rows["icu/procedureevents"] = write_table(out_dir, "icu/procedureevents", [proc])
    rows["icu/chartevents"] = write_table(out_dir, "icu/chartevents", tables.chartevents_frames(ctx, rng, cfg, extra["chart"]))
    rows["hosp/labevents"] = write_table(out_dir, "hosp/labevents", [tables.labevents_frame(ctx, rng, cfg)])
    presc, emar = tables.medications_frames(ctx, rng, cfg)
    rows["hosp/prescriptions"] = write_table(out_dir, "hosp/prescriptions", [presc])
    rows["hosp/emar"] = write_table(out_dir, "hosp/emar", [emar])
    rows["icu/d_items"] = write_table(out_dir, "icu/d_items", [_d_items()])

    truth = _truth(ctx, cfg, extra["rrt_events"])
    truth_path = out_dir / "ground_truth.parquet"
    truth.write_parquet(truth_path, statistics=False)
    q_path = out_dir / "ground_truth_quarantine.parquet"
    quarantine.write_parquet(q_path, statistics=False)
    tte_full = strategy_truth_full(prm, prm.truth_n_simulated, prm.truth_seed, load_study_config().typed("tte"))
    write_docs(out_dir, prm, seed, n_stays, truth, tte_full)
    return SynthResult(
        out_dir=out_dir, n_stays=n_stays, seed=seed, truth_path=truth_path, quarantine_path=q_path,
        effects_path=out_dir / "true_effects.json", model_path=out_dir / "GENERATIVE_MODEL.md",
        seconds=time.perf_counter() - t0, n_patients=len(sel), n_cohort=int(truth["in_cohort"].sum()),
        rows=rows,
    )


def _d_items() -> pl.DataFrame:
    cols = HEADERS["icu/d_items"]
    recs = [(i, *v) for i, v in sorted(D_ITEMS_ROWS.items())]
    df = pl.DataFrame(recs, schema=list(cols), orient="row")
    return df.with_columns(pl.when(pl.col(c) == "").then(None).otherwise(pl.col(c)).alias(c) for c in cols[1:])


_ = EXPOSURE_CODES  # exposure vocabulary documented in pipeline.synth.plan

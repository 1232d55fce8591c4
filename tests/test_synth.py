"""Tests of the synthetic generator: layout equals the real demo's, determinism, and a truth
that agrees with the rows written (re-derived here from the CSV files, independently of the
generator's own bookkeeping)."""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

import polars as pl
import pytest

from pipeline.concepts import load_concepts
from pipeline.config import load_study_config
from pipeline.synth import generate
from pipeline.synth.layout import D_ITEMS_ROWS, HEADERS

DEMO = Path(__file__).resolve().parents[2] / "shared" / "data" / "mimic-iv-demo-2.2"
N = 400


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    return generate(out, n_stays=N, seed=11)


def _read(out: Path, table: str) -> pl.DataFrame:
    return pl.read_csv(out / f"{table}.csv.gz", infer_schema_length=0)


def _demo_or_skip():
    if not DEMO.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"MIMIC-IV demo missing at {DEMO}")
        pytest.skip("MIMIC-IV demo not available")


def _header(path: Path) -> list[str]:
    with gzip.open(path, "rt") as fh:
        return fh.readline().rstrip("\n").split(",")


@pytest.mark.parametrize("table", [t for t in HEADERS if t != "icu/chartevents"])
def test_headers_equal_demo(synth, table):
    _demo_or_skip()
    assert _header(synth.out_dir / f"{table}.csv.gz") == _header(DEMO / f"{table}.csv.gz")


def test_chartevents_header_is_the_documented_one(synth):
    # The demo we hold lacks chartevents; its 2.2 columns are what schemas/raw.py expects.
    assert _header(synth.out_dir / "icu/chartevents.csv.gz") == [
        "subject_id", "hadm_id", "stay_id", "caregiver_id", "charttime", "storetime", "itemid",
        "value", "valuenum", "valueuom", "warning"]


def test_d_items_rows_copy_the_demo(synth):
    _demo_or_skip()
    demo = pl.read_csv(DEMO / "icu/d_items.csv.gz", infer_schema_length=0).filter(
        pl.col("itemid").cast(pl.Int64).is_in(list(D_ITEMS_ROWS)))
    ours = _read(synth.out_dir, "icu/d_items")
    assert ours.sort("itemid").equals(demo.sort("itemid"))
    # every item id written in the event tables has a d_items row
    used = set()
    for t in ("icu/inputevents", "icu/procedureevents", "icu/chartevents"):
        used |= set(_read(synth.out_dir, t)["itemid"].cast(pl.Int64).to_list())
    assert used <= set(ours["itemid"].cast(pl.Int64).to_list())


def test_value_formats_like_mimic(synth):
    ie = _read(synth.out_dir, "icu/inputevents")
    assert ie["starttime"].str.contains(r"^21\d\d-\d\d-\d\d \d\d:\d\d:00$").all()
    pts = _read(synth.out_dir, "hosp/patients")
    assert pts["dod"].drop_nulls().str.contains(r"^2\d\d\d-\d\d-\d\d$").all()
    assert pts["anchor_year_group"].str.contains(r"^\d{4} - \d{4}$").all()
    # whole-number floats without ".0", like PhysioNet's export
    assert not ie["totalamount"].str.ends_with(".0").any()


def test_deterministic_bytes(tmp_path):
    def digest(d: Path) -> dict:
        return {p.relative_to(d).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(d.rglob("*")) if p.is_file()}

    a = generate(tmp_path / "a", n_stays=120, seed=5)
    b = generate(tmp_path / "b", n_stays=120, seed=5)
    c = generate(tmp_path / "c", n_stays=120, seed=6)
    assert digest(a.out_dir) == digest(b.out_dir)
    da, dc = digest(a.out_dir), digest(c.out_dir)
    assert da["icu/inputevents.csv.gz"] != dc["icu/inputevents.csv.gz"]


def test_exact_number_of_stays_and_one_truth_row_each(synth):
    stays = _read(synth.out_dir, "icu/icustays")
    truth = pl.read_parquet(synth.truth_path)
    assert stays.height == N == truth.height
    assert set(truth["stay_id"].to_list()) == set(stays["stay_id"].cast(pl.Int64).to_list())
    assert truth.filter(pl.col("in_cohort")).select(pl.col("subject_id").is_unique().all()).item()


def test_vasopressor_mechanics(synth):
    ie = _read(synth.out_dir, "icu/inputevents").with_columns(pl.col("itemid", "orderid", "linkorderid").cast(pl.Int64))
    vp = ie.filter(pl.col("itemid") == 222315)
    assert (vp["rateuom"] == "units/hour").mean() > 0.8 and (vp["rateuom"] == "units/min").any()
    assert (ie["statusdescription"] == "Rewritten").any()
    assert set(ie["statusdescription"].unique()) >= {"FinishedRunning", "ChangeDose/Rate", "Paused", "Stopped"}
    assert ie["orderid"].is_unique().all()
    assert ie["patientweight"].null_count() == 0
    ne = ie.filter((pl.col("itemid") == 221906) & (pl.col("statusdescription") != "Rewritten"))
    # one linkorderid per infusion, several rows for most
    assert ne.group_by("linkorderid").len()["len"].max() >= 3


def _rate_at(rows: pl.DataFrame, at: pl.DataFrame) -> pl.DataFrame:
    """Rate of the covering row with the latest start (ties: larger orderid) at each stay's
    time ``t`` (the cohort spec's overlap rule), re-derived from the CSV rows."""
    return (
        rows.join(at, on="stay_id")
        .filter((pl.col("starttime") <= pl.col("t")) & (pl.col("t") < pl.col("endtime")))
        .sort(["starttime", "orderid"]).group_by("stay_id").agg(pl.col("rate").last(), pl.col("patientweight").last())
    )


def test_truth_matches_rows_written(synth):
    """index_time, exposure and NE rate at VP start re-derived from inputevents.csv.gz."""
    q = pl.read_parquet(synth.quarantine_path)
    ie = (
        _read(synth.out_dir, "icu/inputevents").with_row_index("row_number", offset=1)
        .filter(~pl.col("row_number").cast(pl.Int64).is_in(q["row_number"].to_list()))
        .filter(pl.col("statusdescription") != "Rewritten")
        .with_columns(pl.col("stay_id", "itemid", "orderid").cast(pl.Int64), pl.col("rate", "patientweight").cast(pl.Float64),
                      pl.col("starttime", "endtime").str.to_datetime("%Y-%m-%d %H:%M:%S"))
        .filter(pl.col("rate") > 0)
    )
    truth = pl.read_parquet(synth.truth_path)
    ne = ie.filter(pl.col("itemid") == 221906)
    first = ne.group_by("stay_id").agg(pl.col("starttime").min().alias("ne_start"))
    t = truth.join(first, on="stay_id", how="left")
    assert (t["received_ne"] == t["ne_start"].is_not_null()).all()
    assert t.filter(pl.col("received_ne")).select((pl.col("index_time") == pl.col("ne_start")).all()).item()
    vpa = truth.filter(pl.col("exposure") == "vp_added").select("stay_id", pl.col("vp_start_time").alias("t"))
    got = _rate_at(ne, vpa)
    chk = truth.filter(pl.col("exposure") == "vp_added").join(got, on="stay_id", how="left").with_columns(
        pl.col("rate").fill_null(0.0))
    assert (chk["ne_rate_at_vp_mcg_kg_min"] == chk["rate"]).all()
    covered = chk.filter(pl.col("patientweight").is_not_null())
    assert (covered["ne_rate_at_vp_mcg_min"] == covered["rate"] * covered["patientweight"]).all()
    # VP first start at or after NE start for vp_added, and equal to vp_start_time
    vp_first = ie.filter(pl.col("itemid") == 222315).join(first, on="stay_id").filter(
        pl.col("starttime") >= pl.col("ne_start")).group_by("stay_id").agg(pl.col("starttime").min().alias("vp0"))
    chk = truth.filter(pl.col("exposure") == "vp_added").join(vp_first, on="stay_id", how="left")
    assert (chk["vp0"] == chk["vp_start_time"]).all()


def test_truth_is_internally_consistent(synth):
    cfg = load_study_config()
    entry = cfg.get("classification.vasst_entry_ne_mcg_min")
    severe = cfg.get("classification.vasst_more_severe_ne_mcg_min")
    truth = pl.read_parquet(synth.truth_path)
    vpa = truth.filter(pl.col("exposure") == "vp_added")
    assert vpa["vasst_stratum"].null_count() == 0 and vpa["timing_class"].null_count() == 0
    r = vpa["ne_rate_at_vp_mcg_min"]
    assert ((vpa["vasst_stratum"] == "below_entry") == (r < entry)).all()
    assert ((vpa["vasst_stratum"] == "more_severe") == (r >= severe)).all()
    assert ((vpa["timing_class"] == "delayed") == ((r > 35) | (vpa["ne_rate_at_vp_mcg_kg_min"] > 0.5))).all()
    assert truth.filter(pl.col("exposure") != "vp_added")["vasst_stratum"].null_count() == truth.filter(
        pl.col("exposure") != "vp_added").height
    assert (vpa["hours_ne_to_vp"] >= 0).all()
    assert truth["weight_stay_kg"].null_count() == 0 and vpa["weight_kg"].null_count() == 0
    assert truth.filter(pl.col("trap") == "ne_and_vp_same_minute").select((pl.col("hours_ne_to_vp") == 0).all()).item()
    # every stratum and timing class is represented; the traps are there
    assert set(vpa["vasst_stratum"]) == {"below_entry", "less_severe", "more_severe"}
    assert set(vpa["timing_class"]) == {"early", "recommended", "ssc_window", "delayed"}
    assert {"ne_rate_change_at_vp_minute", "ne_and_vp_same_minute", "boundary_rate"} <= set(truth["trap"].drop_nulls())
    # cohort filters bite: minors, non-septic, no-NE stays exist
    assert (~truth["is_adult"]).any() and (~truth["is_septic"]).any() and (~truth["received_ne"]).any()
    # death_28d implies death_90d; the outcome clock starts at the anchor stay's NE start
    d = truth.filter(pl.col("received_ne") & (pl.col("stay_role") == "anchor"))
    assert (d["true_death_time"] > d["index_time"]).all()
    assert truth.filter(pl.col("death_28d") == True)["death_90d"].all()  # noqa: E712


def test_deaths_recorded_like_mimic(synth):
    adm = _read(synth.out_dir, "hosp/admissions")
    pts = _read(synth.out_dir, "hosp/patients")
    died = adm.filter(pl.col("deathtime").is_not_null())
    assert died.height > 0
    assert (died["dischtime"] == died["deathtime"]).all() and (died["hospital_expire_flag"] == "1").all()
    # in-hospital death -> dod is that date
    j = died.join(pts, on="subject_id")
    assert (j["dod"] == j["deathtime"].str.slice(0, 10)).all()
    # dod without a hospital death: within a year of the last discharge
    last = adm.group_by("subject_id").agg(pl.col("dischtime").str.to_datetime().max())
    out = pts.filter(pl.col("dod").is_not_null() & ~pl.col("subject_id").is_in(died["subject_id"].implode())).join(last, on="subject_id")
    gap = out["dod"].str.to_date().cast(pl.Datetime("us")) - out["dischtime"]
    assert out.height > 0 and (gap.dt.total_days() <= 365).all() and (gap.dt.total_days() >= -1).all()


def test_sepsis_codes_match_concept_prefixes(synth):
    raw = load_concepts().raw
    truth = pl.read_parquet(synth.truth_path)
    dx = _read(synth.out_dir, "hosp/diagnoses_icd")
    pref = {"9": raw["sepsis"]["icd9_prefixes"], "10": raw["sepsis"]["icd10_prefixes"]}
    is_sep = pl.lit(False)
    for v, ps in pref.items():
        for p in ps:
            is_sep = is_sep | ((pl.col("icd_version") == v) & pl.col("icd_code").str.starts_with(p))
    septic_hadm = set(dx.filter(is_sep)["hadm_id"].cast(pl.Int64).to_list())
    assert (truth["is_septic"] == truth["hadm_id"].is_in(list(septic_hadm))).all()


def test_quarantine_rows_are_really_defective(synth):
    q = pl.read_parquet(synth.quarantine_path)
    ie = _read(synth.out_dir, "icu/inputevents").with_row_index("row_number", offset=1)
    assert set(q["defect"]) == {"rate_above_plausible_max", "negative_rate", "endtime_before_starttime",
                                "patientweight_implausible"}
    rows = q.join(ie.with_columns(pl.col("row_number").cast(pl.Int64)), on="row_number")
    for defect, ok in [
        ("rate_above_plausible_max", pl.col("rate").cast(pl.Float64) > 5),
        ("negative_rate", pl.col("rate").cast(pl.Float64) < 0),
        ("endtime_before_starttime", pl.col("endtime") < pl.col("starttime")),
        ("patientweight_implausible", pl.col("patientweight").cast(pl.Float64) > 350),
    ]:
        assert rows.filter(pl.col("defect") == defect).select(ok.all()).item(), defect
    # No other row is defective in those ways.
    others = ie.filter(~pl.col("row_number").cast(pl.Int64).is_in(q["row_number"].to_list()))
    assert not others.filter(pl.col("endtime") < pl.col("starttime")).height
    assert not others.filter(pl.col("rate").cast(pl.Float64) < 0).height


def test_true_effects_has_tte_truth_and_every_estimate(synth):
    """true_effects.json: contract A's tte section, and a truth (or null with a reason) for every
    estimate analyze() reports (its results.json top-level analyses)."""
    import json

    eff = json.loads(synth.effects_path.read_text())
    tte = load_study_config().typed("tte")
    assert eff["tte"]["n_simulated"] >= 100_000
    assert [s["id"] for s in eff["tte"]["strategies"]] == (
        [f"ne_{x:.2f}" for x in tte.strategy_thresholds_ne_mcg_kg_min] + ["never"])
    est = eff["estimands"]
    for name in ("descriptive.mortality", "descriptive.kaplan_meier", "vasst_hr", "vasst_comparison",
                 "trial.time_varying", "trial.naive", "trial.landmark", "delayed_vp", "rrt", "tte"):
        assert name in est, name
        assert est[name]["truth"] is not None or est[name]["reason"], name
    md = (synth.out_dir / "GENERATIVE_MODEL.md").read_text()
    assert "In plain words" in md and "| ne_0.10 |" in md

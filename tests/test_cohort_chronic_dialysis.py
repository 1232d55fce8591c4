"""Chronic dialysis / ESRD (concepts.toml [chronic_dialysis]): the cohort flag, the RRT-analysis
attrition row and the RRT population of the models."""

from __future__ import annotations

import polars as pl

from cohort_fixture import CONCEPTS, CohortDB, rrt_procedure_itemid, t
from pipeline.models.competing import rrt_population


def _code(version: int, prefix_index: int = 0) -> str:
    """A full code under a configured prefix (never typed here): e.g. N186, 5856."""
    return CONCEPTS.raw["chronic_dialysis"][f"icd{version}_prefixes"][prefix_index]


def _population() -> CohortDB:
    db = CohortDB()
    # 1: ESRD (N18.6) coded on the index admission itself
    s1, h1 = db.septic_stay(1)
    db.diagnosis(s1, h1, _code(10))
    # 2: dialysis dependence (Z99.2) on an earlier admission only
    s2, _ = db.septic_stay(2)
    db.admission(s2, 77_002, t(-60 * 24 * 200), t(-60 * 24 * 190))
    db.diagnosis(s2, 77_002, _code(10, 1))
    # 3: the code appears only on a later admission: unknown at the index stay (no future info)
    s3, _ = db.septic_stay(3)
    db.admission(s3, 77_003, t(60 * 24 * 100), t(60 * 24 * 110))
    db.diagnosis(s3, 77_003, _code(10))
    # 4: ICD-9 585.6 stored with icd_version 10 does not match (versions must agree)
    s4, h4 = db.septic_stay(4)
    db.diagnosis(s4, h4, _code(9), icd_version=10)
    # 5: ICD-9 ESRD, dotted as some extracts write it (585.6)
    s5, h5 = db.septic_stay(5)
    db.diagnosis(s5, h5, "585.6", icd_version=9)
    # 6: acute kidney injury (N17.9) is not chronic dialysis
    s6, h6 = db.septic_stay(6)
    db.diagnosis(s6, h6, "N179")
    for stay in range(1, 7):
        db.infusion(stay, "norepinephrine", 0, 600, 0.3)
        db.infusion(stay, "vasopressin", 60, 600, 2.4, "units/hour")
        db.procedure(stay, rrt_procedure_itemid(), 300, 900)  # RRT after VP start in every stay
    return db.build()


def test_chronic_dialysis_flag_uses_admissions_up_to_the_index_one():
    cohort = _population().cohort()
    flags = dict(zip(cohort["stay_id"].to_list(), cohort["has_chronic_dialysis"].to_list()))
    assert flags == {1: True, 2: True, 3: False, 4: False, 5: True, 6: False}


def test_attrition_row_and_rrt_population_exclude_chronic_dialysis():
    db = _population()
    att = db.frame("select * from mart_attrition order by step")
    main = att.filter(pl.col("analysis") == "all")
    rrt = att.filter(pl.col("step_name") == "rrt_no_chronic_dialysis").to_dicts()[0]
    assert main["n_stays"].to_list()[-1] == 6  # the analysis cohort itself is unchanged
    assert (rrt["analysis"], rrt["n_stays"], rrt["n_excluded"]) == ("rrt", 3, 3)
    cohort = db.cohort().with_columns(has_died=pl.lit(False))
    pop = rrt_population(cohort, 28.0)
    assert sorted(pop["stay_id"].to_list()) == [3, 4, 6]
    # without the column (an older cohort file) nobody is dropped for it
    assert rrt_population(cohort.drop("has_chronic_dialysis"), 28.0).height == 6

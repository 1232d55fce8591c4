"""RRT items split into active vs present (mimic-code treatment/rrt.sql): only an active
session is the RRT outcome; a catheter's lumen volumes or circuit pressures are not."""

from __future__ import annotations

from cohort_fixture import CONCEPTS, CohortDB, t

RRT = CONCEPTS.raw["rrt"]
ACTIVE = set(RRT["chartevents_active_itemids"])
PRESENT_ONLY = [i for i in RRT["chartevents_itemids"] if i not in ACTIVE
                and i not in {r["itemid"] for r in RRT["chartevents_active_values"]}]
STATUS_ITEM = RRT["chartevents_active_values"][0]


def test_the_lists_follow_mimic_code():
    # lumen volumes (224404 ART, 224406 VEN) and access pressure (224149) are "present" only;
    # blood flow (224144) and hemodialysis output (226499) are an active session
    assert {224404, 224406, 224149} <= set(PRESENT_ONLY)
    assert {224144, 226499} <= ACTIVE
    assert CONCEPTS.rrt_items.filter(CONCEPTS.rrt_items["source_table"] == "procedureevents")["is_active"].all()


def _text_chart(db: CohortDB, stay_id: int, itemid: int, minute: float, value: str) -> None:
    db._insert("chartevents", subject_id=stay_id + 1_000_000, hadm_id=stay_id + 2_000_000, stay_id=stay_id,
               charttime=t(minute), itemid=itemid, value=value, valuenum=None)


def test_only_active_dialysis_rows_are_rrt():
    db = CohortDB()
    for stay in range(1, 6):
        db.septic_stay(stay)
        db.infusion(stay, "norepinephrine", 0, 600, 0.2)
    # 1: catheter lumen volumes charted every shift, before and after index: no RRT
    for minute in (-60, 200, 900):
        db.chart(1, 224404, minute, 1.6)
        db.chart(1, 224406, minute, 1.7)
    # 2: lumen volumes from index, then a running circuit (blood flow) at 500 min
    db.chart(2, 224404, 100, 1.6)
    db.chart(2, 224144, 500, 200)
    # 3: every present-only item, nothing active
    for k, item in enumerate(PRESENT_ONLY):
        db.chart(3, item, 60 + k, 10)
    # 4/5: peritoneal catheter status: active only when 'In use'
    _text_chart(db, 4, STATUS_ITEM["itemid"], 300, STATUS_ITEM["value"])
    _text_chart(db, 5, STATUS_ITEM["itemid"], 300, "Capped")
    db.build()
    rows = {s: db.row(s) for s in range(1, 6)}
    assert (rows[1]["rrt_before_index"], rows[1]["rrt_after_index"]) == (False, False)
    assert (rows[2]["rrt_after_index"], rows[2]["rrt_first_time_after_index"]) == (True, t(500))
    assert rows[3]["rrt_after_index"] is False
    assert (rows[4]["rrt_after_index"], rows[4]["rrt_first_time_after_index"]) == (True, t(300))
    assert rows[5]["rrt_after_index"] is False
    staged = db.frame("select stay_id, bool_or(is_active) as any_active, count(*) as n from stg_rrt_events "
                      "group by stay_id order by stay_id").to_dicts()
    assert [(r["stay_id"], r["any_active"]) for r in staged] == [(1, False), (2, True), (3, False), (4, True), (5, False)]
    assert staged[0]["n"] == 6  # present rows stay visible in staging, marked not active

"""int_drug_rate_intervals against a brute-force reading of the overlap rule on random,
heavily overlapping rows (ties in starttime and orderid included): at every minute, the rate
in force must be that of the covering row with the latest start (then larger orderid, then
larger rate)."""

from __future__ import annotations

import random

import pytest

from cohort_fixture import CohortDB, t


def _expected_rate(rows, minute):
    covering = [r for r in rows if r["start"] <= minute < r["end"]]
    if not covering:
        return None
    best = max(covering, key=lambda r: (r["start"], r["orderid"], r["rate"]))
    return best["rate"]


@pytest.mark.parametrize("seed", range(3))
def test_rate_in_force_matches_brute_force(seed):
    rng = random.Random(seed)
    db = CohortDB()
    db.septic_stay(1)
    rows = []
    for _ in range(40):
        start = rng.randrange(0, 600, 5)
        rows.append({"start": start, "end": start + rng.choice([5, 10, 30, 60, 240]),
                     "orderid": rng.randrange(1, 6), "rate": rng.choice([0.0, 0.05, 0.1, 0.2, 0.3, 0.5])})
    for r in rows:
        db.infusion(1, "norepinephrine", r["start"], r["end"], r["rate"], orderid=r["orderid"])
    iv = db.build().frame(
        "select starttime, endtime, rate_mcg_kg_min from int_drug_rate_intervals "
        "where stay_id = 1 and drug = 'norepinephrine' order by starttime"
    ).to_dicts()
    # non-overlapping
    for a, b in zip(iv, iv[1:]):
        assert a["endtime"] <= b["starttime"]
    for minute in range(0, 900):
        found = [i["rate_mcg_kg_min"] for i in iv if i["starttime"] <= t(minute) < i["endtime"]]
        expected = _expected_rate(rows, minute)
        assert found == ([] if expected is None else [expected]), f"minute {minute}"

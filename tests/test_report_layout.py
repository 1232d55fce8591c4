"""Issue 15 item 1/8 and issue 12 items 1/5 on the report side: the report answers first.

Rendered in headless Chromium at 1400 px wide: the data banner and the bottom line of the
primary analysis are on the first screen (900 px), on a synthetic run (whose banner says so and
whose estimates stand beside the generator's truth) and on the MIMIC-IV demo (too small: a
second banner, empty sections collapsed, a short page). The emulation step (issue 11) writes
``results["tte"]``; until then, and independently of it, these tests inject a section of the
contract's shape (tests/tte_fixture.py): the report must render whatever the step writes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pipeline.report import build_report
from report_layout import find_chromium, measure
from test_report import visible_text
from tte_fixture import fake_tte, inject_tte

FIRST_SCREEN_PX = 900
WIDTH_PX = 1400
TOP_IDS = ["data-banner", "size-banner", "answer", "bottom-line", "answer-figure"]


def _browser() -> str:
    from test_report import _chromium

    return find_chromium() or _chromium()


def _analyse(src_db: Path, ledger: Path, out: Path, config) -> Path:
    from pipeline.audit import run_audit
    from pipeline.cohort import build_cohort
    from pipeline.models import analyze

    shutil.copy(src_db, out / "vasoflow.duckdb")
    shutil.copy(ledger, out / "ledger.json")
    build_cohort(out / "vasoflow.duckdb", out, config)
    analyze(out / "cohort.parquet", out, config)
    run_audit(out / "vasoflow.duckdb", out, config)
    return out


@pytest.fixture(scope="module")
def synth_run(tmp_path_factory, study_config) -> Path:
    """A small synthetic data set through every step, with a contract-shaped tte section and
    the generator's truth (true_effects.json, found through the ledger's source folder)."""
    from pipeline.ingest import ingest
    from pipeline.synth import generate

    tmp = tmp_path_factory.mktemp("layout_synth")
    generate(tmp / "src", n_stays=800, seed=20080228)
    db = ingest(tmp / "src", tmp / "db" / "vasoflow.duckdb", study_config)
    (tmp / "out").mkdir()
    out = _analyse(db.db_path, db.ledger_path, tmp / "out", study_config)
    inject_tte(out, study_config)
    build_report(out, study_config)
    return out


@pytest.fixture(scope="module")
def demo_run(demo_db, study_config, tmp_path_factory) -> Path:
    out = _analyse(demo_db.db_path, demo_db.ledger_path, tmp_path_factory.mktemp("layout_demo"), study_config)
    inject_tte(out, study_config, estimable=False, n_patients=12)
    build_report(out, study_config)
    return out


def _top(run: Path) -> dict:
    return measure(run / "report.html", TOP_IDS, width=WIDTH_PX, height=FIRST_SCREEN_PX, browser=_browser())


def test_synthetic_report_answers_on_the_first_screen(synth_run):
    m = _top(synth_run)
    el = m["elements"]
    assert el["data-banner"]["bottom"] <= FIRST_SCREEN_PX
    assert el["bottom-line"]["bottom"] <= FIRST_SCREEN_PX, el["bottom-line"]
    assert el["answer-figure"]["bottom"] <= FIRST_SCREEN_PX, el["answer-figure"]
    assert "size-banner" not in el  # estimable: no "too small" banner
    assert m["overflowing_images"] == 0  # every chart fits the 1400 px page...
    assert m["shrunk_images"] == 0  # ...at its designed size (legible lettering)
    html = (synth_run / "report.html").read_text()
    banner = html[html.index('id="data-banner"'):html.index('id="answer"')]
    assert "Synthetic data" in banner and "not from any hospital" in banner
    # the answer comes before every detail section
    assert html.index('id="answer"') < html.index('id="protocol"') < html.index('id="flow"') < html.index('id="forest"')
    assert m["height"] < 14000, f"page {m['height']} px (the old report was ~16,600)"


def test_demo_report_says_too_small_at_the_top_and_stays_short(demo_run):
    m = _top(demo_run)
    el = m["elements"]
    for key in ("data-banner", "size-banner", "bottom-line"):
        assert el[key]["bottom"] <= FIRST_SCREEN_PX, (key, el[key])
    assert "answer-figure" not in el  # nothing estimable: no empty chart frame
    html = (demo_run / "report.html").read_text()
    banner = html[html.index('id="data-banner"'):html.index('id="answer"')]
    assert "Real data" in banner and "MIMIC-IV" in banner and "Synthetic" not in banner
    assert "Too few patients for estimates" in banner
    # empty sections collapsed: the page was ~13,300 px of "not estimable" and empty frames
    assert m["height"] < 6000, f"demo page {m['height']} px"


def test_truth_stands_beside_each_primary_estimate(synth_run, study_config, tmp_path):
    """With a generator truth for the emulation (contract A), the strategy table shows it."""
    source = Path(json.loads((synth_run / "ledger.json").read_text())["source_dir"])
    truth = json.loads((source / "true_effects.json").read_text())
    tte = fake_tte(study_config)
    truth["tte"] = {"strategies": [{"id": s["id"], "risk_28d": 0.2345 + 0.01 * i, "risk_90d": 0.4321,
                                    "rrt_risk_28d": 0.0876} for i, s in enumerate(tte["strategies"])],
                    "contrasts": []}
    path = tmp_path / "true_effects.json"
    path.write_text(json.dumps(truth))
    for src in synth_run.iterdir():
        if src.suffix in (".parquet", ".json"):
            shutil.copy(src, tmp_path / src.name)
    build_report(tmp_path, study_config, truth_path=path)
    text = visible_text((tmp_path / "report.html").read_text())
    for i in range(len(tte["strategies"])):
        assert f"{100 * (0.2345 + 0.01 * i):.1f}%" in text  # each strategy's true risk
    assert "43.2%" in text and "8.8%" in text  # 90-day and RRT truths
    assert "open diamonds: the generator's true risk" in (tmp_path / "report.html").read_text()


def test_report_without_the_emulation_says_not_run(demo_run, study_config, tmp_path):
    for src in demo_run.iterdir():
        if src.suffix in (".parquet", ".json"):
            shutil.copy(src, tmp_path / src.name)
    results = json.loads((tmp_path / "results.json").read_text())
    results.pop("tte")
    (tmp_path / "results.json").write_text(json.dumps(results))
    result = build_report(tmp_path, study_config)
    html = result.html_path.read_text()
    assert "Primary analysis not run" in html and 'id="answer"' in html
    assert "tte" in result.missing_sections


def test_plain_labels_roles_evalues_and_no_naive_p_values(synth_run):
    html = (synth_run / "report.html").read_text()
    body = html.split('class="settings-dump"')[0] + html.split('class="settings-dump"')[1].split("</details>", 1)[1]
    text = visible_text(body)
    for raw in ("age_years", "is_female", "lactate_before_vp_mmol_l", "lactate_at_index_mmol_l", "more_severe",
                "less_severe", "max_before_vp", "vp_added", "nee_at_vp_mcg_kg_min"):
        assert raw not in body, raw
    assert "log-rank" not in text  # descriptive curves carry no test
    assert "immortal time" in text  # ...and say why the naive one is biased
    # role per estimate; descriptive rows (the naive comparison) without p-value or E-value
    rows = [r for r in body.split("<tr>") if "naive: ever VP vs never" in r and "<td" in r]
    assert rows and all("descriptive" in r for r in rows)
    for r in rows:
        cells = [c.split("</td>")[0] for c in r.split("<td")[1:]]
        assert cells[3].endswith(">-") and cells[6].endswith(">-"), cells  # p and E-value columns
    # results.json 2.x: the secondary VP-vs-not estimates are the sequential trials (issue 12)
    secondary = [r for r in body.split("<tr>") if "sequential trials: VP now vs not now" in r and "<td" in r]
    assert secondary and all("secondary" in r for r in secondary)
    assert any("(CI " in r for r in secondary), "E-values of secondary estimates are shown"
    assert "Passes when" in body and "never above 0.04 U/min" in body  # audit rules by their pass criterion


def test_horizon_labels_follow_the_config(synth_run, tmp_path):
    from pipeline.config import load_study_config

    cfg = tmp_path / "study.toml"
    cfg.write_text("[outcomes]\nshort_term_days = 30\n")
    config = load_study_config(cfg)
    for src in synth_run.iterdir():
        if src.suffix in (".parquet", ".json"):
            shutil.copy(src, tmp_path / src.name)
    results = json.loads((tmp_path / "results.json").read_text())
    results["tte"] = fake_tte(config)  # the step's own sentence follows the config too
    (tmp_path / "results.json").write_text(json.dumps(results))
    build_report(tmp_path, config)
    html = (tmp_path / "report.html").read_text()
    answer = html[html.index('id="answer"'):html.index('id="protocol"')]
    assert "30-day risk of death" in answer and "28-day" not in answer
    assert "Died within 30 days" in html and "Died within 28 days" not in html


def test_a_changed_model_table_gives_a_message_not_a_crash(demo_run, study_config, tmp_path):
    """results.json and the model tables change shape as analyses are added or retired
    (issues 11, 12): a section whose input lacks a column says so; the rest still renders."""
    import polars as pl

    for src in demo_run.iterdir():
        if src.suffix in (".parquet", ".json"):
            shutil.copy(src, tmp_path / src.name)
    pl.read_parquet(tmp_path / "forest.parquet").drop("adjusted").write_parquet(tmp_path / "forest.parquet")
    result = build_report(tmp_path, study_config)
    html = result.html_path.read_text()
    forest = html[html.index('id="forest"'):html.index('id="rrt"')]
    assert "Not shown: the analysis outputs lack" in forest and "adjusted" in forest
    assert "forest" in result.missing_sections and 'id="answer"' in html

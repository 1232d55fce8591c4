"""Each step reads only the settings pipeline.settings.STEP_SETTINGS declares for it, and its
cache key hashes exactly those (issue 16): a report setting re-runs only the report, an audit
rule only the audit and the report. Store entries hold only what their step builds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from pipeline.config import UndeclaredSettingError, load_study_config
from pipeline.errors import ConfigError
from pipeline.settings import STEP_SETTINGS


def _config(tmp_path: Path, text: str):
    path = tmp_path / f"study-{abs(hash(text))}.toml"
    path.write_text(text)
    return load_study_config(path)


def test_a_step_view_holds_only_its_declared_settings():
    config = load_study_config()
    audit = config.for_step("audit")
    assert audit.get("audit.vp_max_dose_units_min") == config.get("audit.vp_max_dose_units_min")
    assert audit.get("study.period") == config.get("study.period")
    with pytest.raises(UndeclaredSettingError, match=r"step 'audit' read setting 'report.figure_dpi'.*STEP_SETTINGS"):
        audit.get("report.figure_dpi")
    with pytest.raises(UndeclaredSettingError, match="declares only some of its keys"):
        audit.typed("study")  # only study.period is declared
    with pytest.raises(ConfigError, match="has no setting 'report.no_such_key'") as info:
        audit.get("report.no_such_key")  # a key that does not exist at all is the usual error
    assert not isinstance(info.value, UndeclaredSettingError)
    # study_param (what the SQL joins against) holds the view's settings only.
    flat = audit.flat_scalars()
    assert "audit_vp_max_dose_units_min" in flat and "study_period" in flat
    assert "report_figure_dpi" not in flat and "study_name" not in flat
    assert config.for_step("report").fingerprint() == config.fingerprint()  # "*": every setting


def test_every_step_of_the_run_declares_entries_that_exist():
    from pipeline import run

    assert set(run._STEP_KEYS) <= set(STEP_SETTINGS)
    config = load_study_config()
    for step in STEP_SETTINGS:
        config.for_step(step)  # raises on an entry naming no setting
    with pytest.raises(ConfigError, match="has no entry in STEP_SETTINGS"):
        config.for_step("no_such_step")


def test_keys_change_only_for_the_steps_that_read_the_setting(tmp_path):
    """The keys of pipeline.run without running anything (the run test below runs them)."""
    from pipeline import run
    from pipeline.runs import StepEntry

    def keys(config) -> dict[str, str]:
        ingest = StepEntry("ingest", "i" * 64, tmp_path, (), False)
        cohort = StepEntry("cohort", run.cohort_step_key(ingest, config), tmp_path, (), False)
        analyze = StepEntry("analyze", run.analyze_step_key(cohort, config), tmp_path, (), False)
        audit = StepEntry("audit", run.audit_step_key(cohort, config), tmp_path, (), False)
        return {"cohort": cohort.key, "analyze": analyze.key, "audit": audit.key,
                "report": run.report_step_key([ingest, cohort, analyze, audit], config)}

    base = keys(load_study_config())

    def changed(text: str) -> set[str]:
        new = keys(_config(tmp_path, text))
        return {step for step in base if new[step] != base[step]}

    assert changed("[report]\nfigure_dpi = 80\n") == {"report"}
    assert changed("[audit]\nvp_max_dose_units_min = 0.05\n") == {"audit", "report"}
    assert changed("[models]\nconfidence_level = 0.9\n") == {"analyze", "report"}
    assert changed("[cohort]\nmin_age_years = 21\n") == {"cohort", "analyze", "audit", "report"}


def test_sql_reading_an_undeclared_setting_fails(tmp_path, monkeypatch, demo_db):
    """The views are enforced for SQL too: study_param lacks undeclared settings, so a cohort
    whose declaration forgot [outcomes] (read by mart_cohort) cannot be built."""
    from pipeline import settings
    from pipeline.cohort import build_cohort
    from pipeline.errors import VasoflowError

    monkeypatch.setitem(settings.STEP_SETTINGS, "cohort",
                        tuple(s for s in settings.STEP_SETTINGS["cohort"] if s != "outcomes"))
    view = load_study_config().for_step("cohort")
    with pytest.raises(VasoflowError, match="outcomes_"):
        build_cohort(tmp_path / "cohort.duckdb", tmp_path, view, source_db=demo_db.db_path)


def _vasoflow_run(tmp_path: Path, source: Path, config: Path | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"), DO_NOT_TRACK="1",
               VASOFLOW_CACHE_DIR=str(tmp_path / "cache"))
    args = ["run", "--no-prefect", "--source", str(source), "--out", "out"]
    args += ["--config", str(config)] if config else []
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((tmp_path / "out" / "latest" / "manifest.json").read_text())
    return manifest["steps"]


def test_a_report_setting_reruns_the_report_and_an_audit_rule_the_audit(tmp_path):
    """Through the real `vasoflow run --no-prefect`: which steps ran after each change, and
    what the store entries hold."""
    from pipeline.synth import generate

    source = tmp_path / "src"
    generate(source, n_stays=120, seed=11)
    cold = _vasoflow_run(tmp_path, source)
    assert not any(s["reused"] for s in cold.values())

    ingest_db = Path(cold["ingest"]["store"]) / "vasoflow.duckdb"
    before = (ingest_db.stat().st_size, ingest_db.stat().st_mtime_ns)

    (tmp_path / "dpi.toml").write_text("[report]\nfigure_dpi = 80\n")
    steps = _vasoflow_run(tmp_path, source, tmp_path / "dpi.toml")
    assert sorted(s for s, e in steps.items() if not e["reused"]) == ["report"]

    (tmp_path / "rule.toml").write_text("[audit]\nvp_max_dose_units_min = 0.05\n")
    steps = _vasoflow_run(tmp_path, source, tmp_path / "rule.toml")
    assert sorted(s for s, e in steps.items() if not e["reused"]) == ["audit", "report"]
    assert steps["cohort"]["key"] == cold["cohort"]["key"]

    # The ingest's database is stored once: read in place (never written by a later step),
    # not copied into the cohort's or the audit's entries.
    assert (ingest_db.stat().st_size, ingest_db.stat().st_mtime_ns) == before
    for step in ("cohort", "audit"):
        files = {p.name for p in Path(cold[step]["store"]).iterdir()}
        assert "vasoflow.duckdb" not in files, (step, files)
    assert not any(p.suffix == ".duckdb" for p in Path(cold["audit"]["store"]).iterdir())
    con = duckdb.connect(str(Path(cold["cohort"]["store"]) / "cohort.duckdb"), read_only=True)
    try:
        tables = {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}
    finally:
        con.close()
    assert "mart_cohort" in tables and not any(t.startswith("valid_") for t in tables)

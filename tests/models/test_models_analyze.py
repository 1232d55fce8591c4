"""analyze() end to end: files, schema keys, determinism, tiny cohorts, the MIMIC-IV demo."""

import json
import shutil
from pathlib import Path

import polars as pl
import pytest

from pipeline.errors import InputFileError
from pipeline.models import SCHEMA_VERSION, analyze
from pipeline.synth import SynthParams
from pipeline.synth.cohort_run import synthetic_cohort

_FAST = SynthParams(truth_n_simulated=2000)


def _write(sim, folder):
    folder.mkdir(parents=True, exist_ok=True)
    sim.cohort.write_parquet(folder / "cohort.parquet")
    sim.ne_timeline.write_parquet(folder / "ne_timeline.parquet")
    return folder / "cohort.parquet"


@pytest.fixture(scope="module")
def small_run(tmp_path_factory, study_config):
    tmp = tmp_path_factory.mktemp("analyze")
    path = _write(synthetic_cohort(tmp / "sim", 750, 3, _FAST), tmp / "in")
    return path, analyze(path, tmp / "out1", study_config), tmp


def test_results_json_has_documented_keys(small_run):
    _, res, _ = small_run
    data = json.loads(res.results_path.read_text())
    assert data["schema_version"] == SCHEMA_VERSION
    for kind in ("unadjusted", "adjusted"):
        block = data["vp_prognosis"][kind]
        assert {"hr", "ci_low", "ci_high", "p", "n", "events", "estimable", "reason", "role",
                "estimand"} <= set(block)
    assert data["trial"]["models"]
    assert "delayed_vp" not in data and "vasst_hr" not in data
    assert data["vasst_comparison"]["citation"].startswith("Russell JA")
    for name, file in data["tables"].items():
        assert (res.out_dir / file).is_file(), name
    forest = pl.read_parquet(res.out_dir / "forest.parquet")
    assert {"naive", "time_updated", "sequential"} <= set(forest["analysis"])
    # The schema document names every table analyze writes.
    import pipeline.models

    schema_md = (Path(pipeline.models.__file__).with_name("RESULTS_SCHEMA.md")).read_text()
    for file in data["tables"].values():
        assert f"`{file}`" in schema_md


def _model_objects(data):
    """Every model object in results.json (a dict with a ``measure``), wherever it sits."""
    found = []

    def walk(x):
        if isinstance(x, dict):
            if "measure" in x and "estimable" in x:
                found.append(x)
            else:
                for v in x.values():
                    walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(data)
    return found


def test_every_model_states_role_and_estimand(small_run):
    """Issue 12 item 1: role + one-sentence estimand on every model object; descriptive ones
    carry no p-value and no E-value; naive curves and models say why they are biased."""
    _, res, _ = small_run
    data = json.loads(res.results_path.read_text())
    models = _model_objects(data)
    assert len(models) == res.n_models
    for m in models:
        assert m["role"] in ("primary", "secondary", "descriptive"), m["name"]
        assert m["estimand"].endswith(".") and len(m["estimand"]) > 40, m["name"]
        if m["role"] == "descriptive":
            assert m["p"] is None, m["name"]
            assert not any(k.startswith("evalue") for k in m["details"]), m["name"]
    naive = [m for m in models if m["name"].startswith("trial.naive.")]
    assert naive and all(m["role"] == "descriptive" and "immortal" in m["bias_note"] for m in naive)
    assert all(m["role"] == "descriptive" for m in models if m["name"].startswith(("vp_prognosis", "rrt.")))
    km = data["descriptive"]["kaplan_meier"]["exposure"]
    assert km["role"] == "descriptive" and "immortal" in km["caption"] and "logrank_p" not in km
    est = pl.read_parquet(res.out_dir / "model_estimates.parquet")
    assert est.filter((pl.col("role") == "descriptive") & pl.col("p").is_not_null()).height == 0


def test_deterministic(small_run, study_config, monkeypatch):
    """Byte-identical results again, and whatever the number of workers fitting the model
    groups side by side (issue 16: one worker here, the machine's cores in small_run)."""
    path, res, tmp = small_run
    monkeypatch.setenv("VASOFLOW_THREADS", "1")
    again = analyze(path, tmp / "out2", study_config)
    assert again.results_path.read_bytes() == res.results_path.read_bytes()
    assert {"fit_cox", "fit_rrt", "fit_time_updated"} <= set(again.timings_seconds)


def test_tiny_cohort_is_not_estimable_not_a_crash(tmp_path, study_config):
    sim = synthetic_cohort(tmp_path / "sim", 14, 4, _FAST)
    path = _write(sim, tmp_path / "in")
    res = analyze(path, tmp_path / "out", study_config)
    data = json.loads(res.results_path.read_text())
    assert data["vp_prognosis"]["adjusted"]["estimable"] is False
    assert data["vp_prognosis"]["adjusted"]["reason"]
    assert res.n_not_estimable == res.n_models


def test_missing_timeline_is_a_user_error(tmp_path, study_config):
    sim = synthetic_cohort(tmp_path / "sim", 30, 4, _FAST)
    sim.cohort.write_parquet(tmp_path / "cohort.parquet")
    with pytest.raises(InputFileError, match="ne_timeline.parquet"):
        analyze(tmp_path / "cohort.parquet", tmp_path / "out", study_config)


def test_mimic_demo_end_to_end(demo_db, tmp_path, study_config):
    """The real cohort step on the MIMIC-IV demo, then analyze: few patients, so most models
    must say "not estimable" with a reason - and nothing may crash."""
    from pipeline.cohort import build_cohort

    db = tmp_path / "demo.duckdb"
    shutil.copy(demo_db.db_path, db)
    cohort = build_cohort(db, tmp_path / "cohort", study_config)
    res = analyze(cohort.cohort_path, tmp_path / "out", study_config)
    data = json.loads(res.results_path.read_text())
    assert data["input"]["n_patients"] == pl.read_parquet(cohort.cohort_path).height
    for item in data["not_estimable"]:
        assert item["reason"]
    assert data["vp_prognosis"]["adjusted"]["estimable"] is False

"""The Prefect flows end to end on small synthetic data, against one temporary Prefect server
per session (prefect_test_harness costs ~10-20 s here): a cold run, a cached re-run, a changed
threshold, a run that fails midway, and the schedules. Unit tests elsewhere avoid the engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

N_STAYS = 200  # small: every step runs, models may say "not estimable" for some strata


@pytest.fixture(scope="session")
def prefect_server():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture(scope="module")
def synth_source(tmp_path_factory) -> Path:
    from pipeline.synth import generate

    out = tmp_path_factory.mktemp("synth")
    generate(out, n_stays=N_STAYS, seed=7)
    return out


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("vasoflow-out")


def _manifest(run_dir: Path) -> dict:
    return json.loads((run_dir / "manifest.json").read_text())


def _task_states(flow_run_id) -> dict[str, str]:
    from prefect import get_client

    with get_client(sync_client=True) as client:
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return {r.name.rsplit("-", 1)[0]: r.state.name for r in runs}


@pytest.fixture(scope="module")
def first_run(prefect_server, synth_source, root):
    from flows import study_flow

    state = study_flow(out=root, source=synth_source, return_state=True)
    return state, state.result()


def test_cold_run_writes_a_run_folder_latest_and_artifacts(first_run, root):
    state, result = first_run
    assert state.is_completed()
    assert (root / "latest").resolve() == result.run_dir.resolve()
    for name in ("vasoflow.duckdb", "ledger.json", "cohort.parquet", "attrition.parquet", "results.json",
                 "audit.parquet", "audit_summary.parquet", "report.html", "report.md", "manifest.json"):
        assert (root / "latest" / name).is_file(), name
    steps = _manifest(result.run_dir)["steps"]
    assert set(steps) == {"ingest", "cohort", "analyze", "audit", "report"}
    assert not any(s["reused"] for s in steps.values())  # a fresh root: everything ran

    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])))
    by_key = {a.key: a for a in arts}
    assert {"vasoflow-study-summary", "vasoflow-study-attrition", "vasoflow-study-audit"} <= set(by_key)
    summary = by_key["vasoflow-study-summary"].data
    assert "## Cohort attrition" in summary and "## Data quality" in summary
    assert "## Key estimates" in summary and result.run_dir.name in summary
    assert "report.html" in summary
    # The attrition table artifact carries the cohort's own counts.
    import polars as pl

    attrition = pl.read_parquet(root / "latest" / "attrition.parquet")
    table = by_key["vasoflow-study-attrition"].data
    table = json.loads(table) if isinstance(table, str) else table
    assert [r["n_stays"] for r in table] == attrition.sort("step")["n_stays"].to_list()


def test_rerun_with_nothing_changed_recomputes_nothing(first_run, root, synth_source):
    from flows import study_flow

    _, first = first_run
    state = study_flow(out=root, source=synth_source, return_state=True)
    second = state.result()
    assert second.run_dir != first.run_dir
    steps = _manifest(second.run_dir)["steps"]
    assert all(s["reused"] for s in steps.values()), steps
    assert {s: e.key for s, e in second.steps.items()} == {s: e.key for s, e in first.steps.items()}
    # The re-run's files are the very same stored files (hard links), not recomputed copies.
    assert (second.run_dir / "results.json").stat().st_ino == (first.run_dir / "results.json").stat().st_ino
    assert (root / "latest").resolve() == second.run_dir.resolve()
    # Prefect's own record is written the first time a run finds the entry complete (the
    # policy gives no key while an entry is absent), so this run's tasks ran, but only to find
    # their stored outputs; from the next run on Prefect skips them ("Cached").
    states = _task_states(state.state_details.flow_run_id)
    assert all(states[t] in ("Cached", "Completed") for t in ("ingest", "cohort", "analyze", "audit", "report"))


def test_changed_threshold_reruns_from_the_cohort_only(first_run, root, synth_source, tmp_path):
    from flows import study_flow

    _, first = first_run
    config = tmp_path / "study.toml"
    config.write_text("[classification]\nvasst_more_severe_ne_mcg_min = 20.0\n")
    state = study_flow(out=root, source=synth_source, config=config, return_state=True)
    result = state.result()
    steps = _manifest(result.run_dir)["steps"]
    assert steps["ingest"]["reused"] and steps["ingest"]["key"] == first.steps["ingest"].key
    assert _task_states(state.state_details.flow_run_id)["ingest"] == "Cached"  # Prefect skipped the call
    for step in ("cohort", "analyze", "audit", "report"):
        assert not steps[step]["reused"], step


def test_a_run_failing_midway_leaves_latest_intact(first_run, root, synth_source, tmp_path, monkeypatch):
    import pipeline.models
    from flows import study_flow

    before = (root / "latest").resolve()
    report_bytes = (before / "report.html").read_bytes()

    def broken(*args, **kwargs):
        raise RuntimeError("model crashed")

    monkeypatch.setattr(pipeline.models, "analyze", broken)
    config = tmp_path / "study.toml"  # a new threshold, so the cohort and the models must run
    config.write_text("[classification]\nvasst_more_severe_ne_mcg_min = 25.0\n")
    state = study_flow(out=root, source=synth_source, config=config, return_state=True)
    assert state.is_failed()
    assert (root / "latest").resolve() == before
    assert (before / "report.html").read_bytes() == report_bytes
    store = root / ".vasoflow" / "store" / "analyze"
    assert not [p for p in store.iterdir() if p.name.startswith(".")]  # no half entry left


def test_audit_flow_moves_its_own_pointer(first_run, root, synth_source):
    from flows import audit_flow

    study_latest = (root / "latest").resolve()
    result = audit_flow(out=root, source=synth_source)
    assert (root / "latest-audit").resolve() == result.run_dir.resolve()
    assert (root / "latest").resolve() == study_latest
    steps = _manifest(result.run_dir)["steps"]
    assert "analyze" not in steps and steps["ingest"]["reused"] and steps["audit"]["reused"]
    assert (result.run_dir / "audit_summary.parquet").is_file()


def test_cli_run_without_prefect_reuses_the_store(first_run, root, synth_source, capsys):
    from pipeline.cli import main

    assert main(["run", "--no-prefect", "--source", str(synth_source), "--out", str(root)]) == 0
    out = capsys.readouterr().out
    assert "run folder:" in out and str(root / "latest") in out
    assert "ran " not in out  # every step reused


def test_bad_input_fails_the_flow_with_the_users_error(prefect_server, tmp_path):
    from flows import study_flow
    from pipeline.errors import VasoflowError

    with pytest.raises(VasoflowError, match="source folder not found"):
        study_flow(out=tmp_path / "out", source=tmp_path / "nowhere")
    assert not (tmp_path / "out" / "latest").exists()


def test_a_full_disk_is_one_line_and_latest_stays(first_run, root, synth_source, tmp_path, monkeypatch, capsys):
    """Issue 18: ENOSPC while a step writes gives one line saying the disk is full, exit 2,
    and the last good run stays 'latest'."""
    import errno

    import pipeline.cohort
    from pipeline.cli import main

    before = (root / "latest").resolve()

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", "cohort.parquet")

    monkeypatch.setattr(pipeline.cohort, "build_cohort", full_disk)
    config = tmp_path / "study.toml"  # a new threshold, so the cohort step must run
    config.write_text("[classification]\nvasst_more_severe_ne_mcg_min = 26.0\n")
    code = main(["run", "--no-prefect", "--source", str(synth_source), "--out", str(root), "--config", str(config)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "no space left on device" in err and "Traceback" not in err
    assert (root / "latest").resolve() == before


def test_no_small_count_by_subtracting_two_figures_of_a_synthetic_report(first_run, study_config):
    """Issue 18 on synthetic data (200 stays): between landmark rows, totals and parts, the
    cohort flow and the data-quality table, no two displayed counts differ by 1-10."""
    from report_counts import displayed_counts, small_differences

    _, result = first_run
    html = (result.run_dir / "report.html").read_text()
    counts = displayed_counts(html)
    assert len(set(counts)) >= 10
    assert small_differences(counts, int(study_config.get("report.min_cell_count"))) == []

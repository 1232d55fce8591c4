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


STEP_TASKS = ("ingest", "cohort", "analyze", "tte", "audit", "report")


def _task_states(flow_run_id, expected=STEP_TASKS, timeout_s: float = 60.0) -> dict[str, str]:
    """Final state name per task of a finished flow run, waiting for the server to record them.

    Prefect 3 records task-run states from events, asynchronously: the client emits them and
    the server's TaskRunRecorder writes them in batches (about every few seconds). Read right
    after the flow returns, a task run may not be there yet, or be there with no state
    (``state is None``: the cause of the old flaky AttributeError) or a non-final one. So poll
    until every expected task has a final state."""
    import time

    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    deadline = time.monotonic() + timeout_s
    while True:
        with get_client(sync_client=True) as client:
            runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
        states = {r.name.rsplit("-", 1)[0]: r.state for r in runs}
        if all(states.get(t) is not None and states[t].is_final() for t in expected):
            return {name: state.name for name, state in states.items() if state is not None}
        if time.monotonic() > deadline:
            raise AssertionError(f"task states not recorded within {timeout_s} s: "
                                 f"{ {n: (s.name if s else None) for n, s in states.items()} }")
        time.sleep(0.5)


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
                 "audit.parquet", "audit_summary.parquet", "report.html", "report.md", "manifest.json",
                 "hourly_panel.parquet", "tte.json"):
        assert (root / "latest" / name).is_file(), name
    steps = _manifest(result.run_dir)["steps"]
    assert set(steps) == {"ingest", "cohort", "analyze", "tte", "audit", "report"}
    # the primary analysis is in the run's results.json, beside the analyze step's keys
    results = json.loads((root / "latest" / "results.json").read_text())
    assert results["tte"] == json.loads((root / "latest" / "tte.json").read_text())
    assert results["tte"]["role"] == "primary" and len(results) > 1
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
    assert all(states[t] in ("Cached", "Completed") for t in STEP_TASKS)


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
    for step in ("cohort", "analyze", "tte", "audit", "report"):
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
    assert "steps:      reused ingest, cohort, analyze, tte, audit, report" in out  # every step reused
    assert "synthetic default" not in out  # a source folder was given


def test_bad_input_fails_the_flow_with_the_users_error(prefect_server, tmp_path):
    from flows import study_flow
    from pipeline.errors import VasoflowError

    with pytest.raises(VasoflowError, match="source folder not found"):
        study_flow(out=tmp_path / "out", source=tmp_path / "nowhere")
    assert not (tmp_path / "out" / "latest").exists()


def test_cli_default_mode_runs_in_process_with_progress_lines(first_run, root, synth_source, capsys, monkeypatch):
    """No Prefect server configured (the harness's is a settings context, not configuration
    a user has): `vasoflow run` runs the steps in-process and prints one line per step."""
    from pipeline.cli import main

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    assert main(["run", "--source", str(synth_source), "--out", str(root)]) == 0
    captured = capsys.readouterr()
    assert "running in-process" in captured.err
    progress = [ln for ln in captured.err.splitlines() if ln.startswith("vasoflow: ") and ln.endswith(" s")]
    assert [ln.split()[1] for ln in progress] == ["source", "ingest", "validate", "cohort", "analyze", "tte",
                                                  "audit", "report"]
    assert all("reused" in ln for ln in progress if ln.split()[1] in STEP_TASKS)
    assert "INFO" not in captured.err and "Flow run" not in captured.err


def test_flow_run_is_named_after_what_ran_and_logs_the_pipeline(first_run, root, synth_source):
    import time

    from prefect import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler

    state, _ = first_run
    flow_run_id = state.state_details.flow_run_id
    APILogHandler().flush()
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(flow_run_id)
        assert flow_run.name == f"study: {synth_source.name} -> {root}"
        deadline = time.monotonic() + 30
        while True:  # logs are sent in batches: wait for ours
            logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
            pipeline_lines = [lg.message for lg in logs if lg.name == "vasoflow"]
            if any(m.startswith("ingest") for m in pipeline_lines) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    assert any(m.startswith("ingest") and "ran" in m for m in pipeline_lines), pipeline_lines


def test_one_run_at_a_time_per_output_root(first_run, root):
    from prefect import get_client

    from flows.study import concurrency_limit_name

    with get_client(sync_client=True) as client:
        limit = client.read_global_concurrency_limit_by_name(concurrency_limit_name(root))
    assert limit.limit == 1 and limit.active
    assert limit.active_slots == 0  # released when the run ended


def test_failure_alert_notifies_when_a_run_fails(prefect_server, tmp_path):
    """End to end on the local server: `vasoflow alert`'s automation, a failing run, and the
    notification arriving at a webhook (a tiny HTTP server in this test)."""
    import http.server
    import threading
    import time

    from prefect.automations import Automation
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    from flows import study_flow
    from flows.alerts import AUTOMATION_NAME, ensure_failure_alert
    from pipeline.errors import VasoflowError

    received: list[bytes] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            received.append(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        block_id = CustomWebhookNotificationBlock(
            name="vasoflow-test", url=f"http://127.0.0.1:{server.server_address[1]}/hook",
            json_data={"text": "{{subject}}\n{{body}}"}, allow_private_urls=True,
        ).save("vasoflow-test-alerts", overwrite=True)
        ensure_failure_alert("custom-webhook/vasoflow-test-alerts")
        ensure_failure_alert("custom-webhook/vasoflow-test-alerts")  # idempotent: updated, not duplicated
        saved = Automation.read(name=AUTOMATION_NAME)
        assert saved.enabled and saved.actions[0].block_document_id == block_id
        with pytest.raises(VasoflowError, match="no such block"):
            ensure_failure_alert("custom-webhook/nobody")

        time.sleep(2)  # the triggers service picks up automation changes asynchronously
        state = study_flow(out=tmp_path / "out", source=tmp_path / "nowhere", return_state=True)
        assert state.is_failed()
        deadline = time.monotonic() + 60
        while not received and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        server.shutdown()
    assert received, "no notification within 60 s of the failed run"
    text = received[0].decode()
    assert "vasoflow-study" in text and "Failed" in text and "source folder not found" in text


def _cli_against_the_test_server(args: list[str], tmp_path: Path):
    """`vasoflow ...` in a fresh process configured (by environment) for the test server, as a
    user with PREFECT_API_URL set would run it."""
    import os
    import subprocess
    import sys

    from prefect.settings import PREFECT_API_URL

    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_API_URL=PREFECT_API_URL.value(), PREFECT_HOME=str(tmp_path / "prefect-home"))
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], env=env, capture_output=True,
                          text=True, timeout=300)


def test_cli_with_a_server_prints_progress_not_prefects_stream(first_run, root, synth_source, tmp_path):
    proc = _cli_against_the_test_server(["run", "--source", str(synth_source), "--out", str(root)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert lines and all(ln.startswith("vasoflow: ") for ln in lines), proc.stderr  # nothing from Prefect
    assert "running the Prefect flow on http://127.0.0.1" in lines[0]
    steps = {ln.split()[1]: ln for ln in lines[1:]}
    assert set(STEP_TASKS) <= set(steps) and all("reused" in steps[s] for s in STEP_TASKS)


def test_cli_with_a_server_reports_bad_input_in_one_line(prefect_server, synth_source, tmp_path):
    import shutil

    src = tmp_path / "src"
    shutil.copytree(synth_source, src)
    gz = src / "icu" / "icustays.csv.gz"
    gz.write_bytes(gz.read_bytes()[: gz.stat().st_size // 2])  # a truncated download
    proc = _cli_against_the_test_server(["run", "--source", str(src), "--out", str(tmp_path / "out")], tmp_path)
    assert proc.returncode == 2, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("vasoflow: error: ")]
    assert len(errors) == 1 and "icustays.csv.gz" in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr and "Task run" not in proc.stderr and "| INFO" not in proc.stderr
    assert all(ln.startswith("vasoflow: ") for ln in proc.stderr.splitlines()), proc.stderr


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
    errors = [ln for ln in err.splitlines() if ln.startswith("vasoflow: error: ")]
    assert len(errors) == 1 and "no space left on device" in errors[0] and "Traceback" not in err
    # the rest is the per-step progress lines only
    assert all(ln.startswith("vasoflow: ") for ln in err.splitlines()), err
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

"""Flow wiring without a Prefect server: task functions via ``.fn``, schedules, parameters."""

from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def test_prefect_yaml_schedules_match_serve_under_other_names():
    from flows import serve

    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    by_entry = {d["entrypoint"]: d for d in spec["deployments"]}
    assert by_entry["flows/study.py:study_flow"]["schedules"][0]["cron"] == serve.STUDY_CRON
    assert by_entry["flows/study.py:audit_flow"]["schedules"][0]["cron"] == serve.AUDIT_CRON
    # serve and the workers register different deployments: neither overwrites the other's
    # schedule, time zone or paused state on a shared server.
    assert not {d["name"] for d in spec["deployments"]} & {serve.STUDY_DEPLOYMENT, serve.AUDIT_DEPLOYMENT}
    for d in spec["deployments"]:
        assert d["work_pool"]["name"] == spec["deployments"][0]["work_pool"]["name"]
        assert d["schedules"][0]["timezone"]


def test_retries_only_on_io_tasks():
    from flows import study

    io = {"fingerprint_source", "ingest", "finish", "publish_artifacts"}
    for name in ("load_config", "start_run", "resolve_source", "fingerprint_source", "ingest", "validate",
                 "cohort", "analyze", "tte", "audit", "report", "finish", "publish_artifacts"):
        task = getattr(study, name)
        assert (task.retries > 0) == (name in io), name


def test_user_errors_are_not_retried():
    from prefect.states import Failed

    from flows.study import _retry_unless_user_error
    from pipeline.errors import InputFileError

    assert not _retry_unless_user_error(None, None, Failed(data=InputFileError("x.csv: missing column")))
    assert _retry_unless_user_error(None, None, Failed(data=OSError("NFS hiccup")))


def test_cache_policy_keys_only_complete_entries(tmp_path):
    from flows.study import StoredStep
    from pipeline.runs import StepEntry, run_cached
    from pipeline.config import load_study_config

    config = load_study_config()
    ingest_entry = StepEntry("ingest", "abc", tmp_path, ("vasoflow.duckdb",), False)
    inputs = {"root": tmp_path, "ingest_entry": ingest_entry, "config": config}
    policy = StoredStep(step="cohort")
    assert policy.compute_key(None, inputs, {}) is None  # nothing stored: Prefect must run it
    from pipeline.run import cohort_step_key
    from pipeline.runs import Layout

    run_cached(Layout(tmp_path).store_dir, "cohort", cohort_step_key(ingest_entry, config),
               lambda w: (w / "cohort.parquet").write_text(""))
    key = policy.compute_key(None, inputs, {})
    assert key and key == StoredStep(step="cohort").compute_key(None, dict(inputs), {})
    other_root = dict(inputs, root=tmp_path / "elsewhere")
    assert policy.compute_key(None, other_root, {}) is None  # keys never cross output roots


def test_validate_task_checks_the_ledger_balance(tmp_path):
    import json

    import pytest

    from flows.study import validate
    from pipeline.errors import VasoflowError
    from pipeline.runs import StepEntry

    ledger = {"tables": [{"table": "icustays", "is_available": True, "rows_read": 10, "rows_loaded": 8,
                          "rows_quarantined": 2, "quarantined_by_rule": {"plausibility.range": 2}}],
              "warnings": []}
    (tmp_path / "ledger.json").write_text(json.dumps(ledger))
    entry = StepEntry("ingest", "k", tmp_path, ("ledger.json",), True)
    quality = validate.fn(entry)
    assert quality.rows_quarantined == 2 and quality.rules == ({"table": "icustays", "rule": "plausibility.range", "rows": 2},)
    ledger["tables"][0]["rows_loaded"] = 7  # a lost row
    (tmp_path / "ledger.json").write_text(json.dumps(ledger))
    with pytest.raises(VasoflowError, match="icustays"):
        validate.fn(entry)


def test_flow_parameters_are_typed():
    from flows import audit_flow, study_flow

    for f in (study_flow, audit_flow):
        schema = f.parameters.model_dump()
        assert set(schema["properties"]) == {"out", "source", "config", "engine"}
        assert schema["required"] == ["out"]
        assert schema["properties"]["engine"]["enum"] == ["duckdb", "spark"]


def test_serve_keeps_schedules_active_when_it_stops(monkeypatch, tmp_path):
    from flows import serve

    seen = {}
    monkeypatch.setattr(serve, "prefect_serve", lambda *deps, **kw: seen.update(deps=deps, kw=kw))
    serve.serve(out=tmp_path, timezone="Europe/London")
    assert seen["kw"].get("pause_on_shutdown") is False
    assert [d.name for d in seen["deps"]] == [serve.STUDY_DEPLOYMENT, serve.AUDIT_DEPLOYMENT]
    assert all(d.schedules[0].schedule.timezone == "Europe/London" for d in seen["deps"])
    assert all(d.parameters["out"] == str(tmp_path.resolve()) for d in seen["deps"])


def test_concurrency_limit_names_are_per_output_root(tmp_path):
    import re

    from flows.study import concurrency_limit_name

    a, b = concurrency_limit_name(tmp_path / "out"), concurrency_limit_name(tmp_path / "other" / "out")
    assert a != b  # same folder name, different roots
    assert a == concurrency_limit_name(tmp_path / "x" / ".." / "out")  # one root, one name
    assert re.fullmatch(r"[A-Za-z0-9_-]+", a) and "out" in a


def test_failure_automation_watches_both_flows_for_failed_runs():
    from uuid import uuid4

    from flows.alerts import failure_automation
    from flows.study import audit_flow, study_flow

    block_id = uuid4()
    auto = failure_automation(block_id)
    trigger = auto.trigger
    assert {"prefect.flow-run.Failed", "prefect.flow-run.Crashed"} <= trigger.expect
    assert "prefect.flow-run.Completed" not in trigger.expect
    related = trigger.match_related
    related = related[0] if isinstance(related, list) else related
    assert set(related.root["prefect.resource.name"]) == {study_flow.name, audit_flow.name}
    assert trigger.posture == "Reactive" and trigger.threshold == 1
    assert auto.actions[0].block_document_id == block_id

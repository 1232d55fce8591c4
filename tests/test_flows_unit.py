"""Flow wiring without a Prefect server: task functions via ``.fn``, schedules, parameters."""

from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def test_prefect_yaml_schedules_match_serve():
    from flows import serve

    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    by_name = {d["name"]: d for d in spec["deployments"]}
    assert by_name[serve.STUDY_DEPLOYMENT]["schedules"][0]["cron"] == serve.STUDY_CRON
    assert by_name[serve.AUDIT_DEPLOYMENT]["schedules"][0]["cron"] == serve.AUDIT_CRON
    assert by_name[serve.STUDY_DEPLOYMENT]["entrypoint"] == "flows/study.py:study_flow"
    assert by_name[serve.AUDIT_DEPLOYMENT]["entrypoint"] == "flows/study.py:audit_flow"
    for d in spec["deployments"]:
        assert d["work_pool"]["name"] == spec["deployments"][0]["work_pool"]["name"]
        assert d["schedules"][0]["timezone"]


def test_retries_only_on_io_tasks():
    from flows import study

    io = {"fingerprint_source", "ingest", "finish", "publish_artifacts"}
    for name in ("load_config", "start_run", "resolve_source", "fingerprint_source", "ingest", "validate",
                 "cohort", "analyze", "audit", "report", "finish", "publish_artifacts"):
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

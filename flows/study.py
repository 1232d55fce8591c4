"""Prefect flows of vasoflow: ``study_flow`` and ``audit_flow``.

Each task is a one-line wrapper over a ``pipeline`` function (the logic, keys and file layout
live there; see pipeline/run.py). Prefect adds: per-step task runs in the UI, retries on the
I/O tasks only (never on a ``VasoflowError``: bad input does not get better by retrying),
"Cached" task runs when a step's stored outputs are reused, and per-run artifacts.
"""

from __future__ import annotations

import hashlib
import logging
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from prefect import flow, get_client, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE, CachePolicy
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists

from pipeline import run as steps
from pipeline import run_summary
from pipeline.config import StudyConfig, load_study_config
from pipeline.errors import VasoflowError
from pipeline.fingerprint import SourceFingerprint
from pipeline.runs import StepEntry, new_run_dir, run_lock


class _InsideRuns(logging.Filter):
    """Only records logged inside a flow or task run (outside one there is nothing to attach
    them to, and Prefect would warn on every line)."""

    def filter(self, record: logging.LogRecord) -> bool:
        from prefect.context import FlowRunContext, TaskRunContext

        return FlowRunContext.get() is not None or TaskRunContext.get() is not None


def _pipeline_logs_to_prefect() -> None:
    """The pipeline's own log lines (logger ``vasoflow``: progress, warnings such as a missing
    optional table) go to the run's logs in Prefect, however the flow was started (CLI,
    `vasoflow serve`, a worker), as PREFECT_LOGGING_EXTRA_LOGGERS=vasoflow would do."""
    from prefect.logging.handlers import APILogHandler

    pipeline_log = logging.getLogger("vasoflow")
    if not any(isinstance(h, APILogHandler) for h in pipeline_log.handlers):
        handler = APILogHandler()
        handler.addFilter(_InsideRuns())
        pipeline_log.addHandler(handler)
    if pipeline_log.level == logging.NOTSET or pipeline_log.level > logging.INFO:
        pipeline_log.setLevel(logging.INFO)


_pipeline_logs_to_prefect()


def _retry_unless_user_error(task, task_run, state) -> bool:
    """Retry transient I/O failures, not errors in the user's input or config."""
    try:
        state.result()
    except VasoflowError:
        return False
    except Exception as exc:  # a full disk or exhausted memory does not heal in 10 s
        from pipeline.errors import resource_exhausted

        return resource_exhausted(exc, "") is None
    return False


@dataclass
class StoredStep(CachePolicy):
    """Cache key = the step's store key, only while its store entry is complete
    (pipeline.run.stored_step_key); Prefect then hands back the stored StepEntry."""

    step: str = ""

    def compute_key(self, task_ctx, inputs: dict[str, Any], flow_parameters: dict[str, Any], **kwargs) -> str | None:
        return steps.stored_step_key(self.step, inputs)


# The SQL engines of `vasoflow run --engine` (pipeline.run.ENGINES).
Engine = Literal["duckdb", "spark"]

IO = dict(retries=2, retry_delay_seconds=[2, 10], retry_condition_fn=_retry_unless_user_error)


def _announce_cached(task, task_run, state) -> None:
    """Progress line for a step Prefect skipped (its cache hit): the step function, which
    prints the line otherwise, was not called."""
    if state.name == "Cached":
        logging.getLogger("vasoflow").info("%-9s %-30s %6.1f s", task.name, "reused (Prefect cache)", 0.0)


def _stored(step: str) -> dict[str, Any]:
    return dict(cache_policy=StoredStep(step=step), persist_result=True, on_completion=[_announce_cached])


def _run_name() -> str:
    """Flow-run names say what ran: ``study: <source folder or synthetic default> -> <out>``."""
    from prefect.runtime import flow_run

    params = flow_run.parameters
    source = Path(params["source"]).name if params.get("source") else "synthetic default"
    return f"{flow_run.flow_name.removeprefix('vasoflow-')}: {source} -> {params['out']}"


def concurrency_limit_name(out: Path) -> str:
    """The Prefect global concurrency limit of one output root (names allow letters, digits,
    ``-`` and ``_``): its folder name plus a hash of its absolute path."""
    root = str(Path(out).resolve())
    readable = re.sub(r"[^A-Za-z0-9_-]+", "-", Path(root).name)[:40] or "root"
    return f"vasoflow-out-{readable}-{hashlib.sha256(root.encode()).hexdigest()[:10]}"


@contextmanager
def one_run_per_output_root(out: Path):
    """Hold the slot of ``out``'s concurrency limit (limit 1, created on first use) for the
    whole run: a second run on the same output root, scheduled or manual, waits for the first
    (its flow run shows as Running, waiting for the slot) instead of racing it."""
    name = concurrency_limit_name(out)
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

    with get_client(sync_client=True) as client:
        try:
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
        except ObjectAlreadyExists:
            pass
    # The slot is leased (300 s, renewed while the run lives): a killed run frees it within
    # minutes. A failed renewal (a busy server) must not kill a long run: it only warns.
    with concurrency(name, occupy=1, strict=True, raise_on_lease_renewal_failure=False):
        yield


@task(cache_policy=NO_CACHE)
def load_config(config_path: Path | None) -> StudyConfig:
    return load_study_config(config_path)


@task(cache_policy=NO_CACHE)
def start_run(root: Path, kind: str) -> Path:
    return new_run_dir(root, kind)


@task(cache_policy=NO_CACHE)
def resolve_source(source: Path | None, config: StudyConfig) -> Path:
    return steps.resolve_source(source, config)


@task(cache_policy=NO_CACHE, **IO)
def fingerprint_source(root: Path, source: Path) -> SourceFingerprint:
    return steps.fingerprint_step(root, source)


@task(**_stored("ingest"), **IO)
def ingest(root: Path, source: Path, fingerprint: SourceFingerprint, config: StudyConfig) -> StepEntry:
    return steps.ingest_step(root, source, fingerprint, config)


@task(cache_policy=NO_CACHE)
def validate(ingest_entry: StepEntry) -> steps.DataQuality:
    return steps.validate_step(ingest_entry)


@task(**_stored("cohort"))
def cohort(root: Path, ingest_entry: StepEntry, config: StudyConfig) -> StepEntry:
    return steps.cohort_step(root, ingest_entry, config)


@task(**_stored("analyze"))
def analyze(root: Path, cohort_entry: StepEntry, config: StudyConfig) -> StepEntry:
    return steps.analyze_step(root, cohort_entry, config)


@task(**_stored("tte"))
def tte(root: Path, cohort_entry: StepEntry, analyze_entry: StepEntry, config: StudyConfig) -> StepEntry:
    return steps.tte_step(root, cohort_entry, analyze_entry, config)


@task(**_stored("audit"))
def audit(root: Path, ingest_entry: StepEntry, cohort_entry: StepEntry, config: StudyConfig) -> StepEntry:
    return steps.audit_step(root, ingest_entry, cohort_entry, config)


@task(**_stored("spark"))
def spark_check(root: Path, ingest_entry: StepEntry, cohort_entry: StepEntry, audit_entry: StepEntry,
                config: StudyConfig) -> StepEntry:
    return steps.spark_step(root, ingest_entry, cohort_entry, audit_entry, config)


@task(**_stored("report"))
def report(root: Path, upstream: list[StepEntry], config: StudyConfig) -> StepEntry:
    return steps.report_step(root, upstream, config)


@task(cache_policy=NO_CACHE, **IO)
def finish(root: Path, run_dir: Path, kind: str, source: Path, fingerprint: SourceFingerprint,
           entries: list[StepEntry], config: StudyConfig) -> steps.RunResult:
    return steps.finish_run(root, run_dir, kind, source, fingerprint, entries, config)


@task(cache_policy=NO_CACHE, **IO)
def publish_artifacts(result: steps.RunResult, quality: steps.DataQuality) -> None:
    create_markdown_artifact(
        run_summary.summary_markdown(result.run_dir, result.latest,
                                     {s: e.reused_by(result.run_dir) for s, e in result.steps.items()},
                                     list(quality.tables), list(quality.rules), list(quality.warnings)),
        key=f"vasoflow-{result.kind}-summary", description=f"vasoflow {result.kind} run {result.run_dir.name}")
    create_table_artifact(run_summary.attrition_rows(result.run_dir) or [{"note": "no attrition table"}],
                          key=f"vasoflow-{result.kind}-attrition", description="cohort attrition")
    create_table_artifact(run_summary.audit_rows(result.run_dir) or [{"note": "no audit outputs"}],
                          key=f"vasoflow-{result.kind}-audit", description="QI audit per rule")


def _run(kind: str, out: Path, source: Path | None, config_path: Path | None,
         engine: str = "duckdb") -> steps.RunResult:
    steps.check_engine(engine)
    # The output root's run lock: leftovers of killed runs are removed here, never a live run's.
    with run_lock(Path(out).resolve()):
        return _run_steps(kind, out, source, config_path, engine)


def _run_steps(kind: str, out: Path, source: Path | None, config_path: Path | None,
               engine: str = "duckdb") -> steps.RunResult:
    root = Path(out).resolve()
    config = load_config(config_path)
    run_dir = start_run(root, kind)
    src = resolve_source(source, config)
    fp = fingerprint_source(root, src)
    ingested = ingest(root, src, fp, config)
    quality = validate(ingested)
    cohort_entry = cohort(root, ingested, config)
    entries = [ingested, cohort_entry]
    if kind == "study":
        analyze_entry = analyze(root, cohort_entry, config)
        entries.append(analyze_entry)
        entries.append(tte(root, cohort_entry, analyze_entry, config))
    audit_entry = audit(root, ingested, cohort_entry, config)
    entries.append(audit_entry)
    entries.append(report(root, entries, config))
    if engine == "spark":
        entries.append(spark_check(root, ingested, cohort_entry, audit_entry, config))
    result = finish(root, run_dir, kind, src, fp, entries, config)
    publish_artifacts(result, quality)
    return result


@flow(name="vasoflow-study", flow_run_name=_run_name, log_prints=True)
def study_flow(out: Path, source: Path | None = None, config: Path | None = None,
               engine: Engine = "duckdb") -> steps.RunResult:
    """ingest -> validate -> cohort -> analyze -> tte -> audit -> report into a new run folder under
    ``out``; ``out/latest`` moves to it on success. ``source``: MIMIC-IV-layout folder
    (default: the embedded synthetic dataset); ``config``: study TOML (default: shipped);
    ``engine='spark'``: also run the cohort and audit SQL on local Spark and compare."""
    with one_run_per_output_root(out):
        return _run("study", out, source, config, engine)


@flow(name="vasoflow-audit", flow_run_name=_run_name, log_prints=True)
def audit_flow(out: Path, source: Path | None = None, config: Path | None = None,
               engine: Engine = "duckdb") -> steps.RunResult:
    """ingest -> validate -> cohort -> audit -> report (no survival models) into a new run
    folder under ``out``; ``out/latest-audit`` moves to it on success; ``engine='spark'`` as in
    ``study_flow``."""
    with one_run_per_output_root(out):
        return _run("audit", out, source, config, engine)

"""The main job: every step from raw files to outputs, as plain function calls.

Each ``*_step`` function runs one pipeline step through the step store (``pipeline.runs``):
it computes the step's cache key (``pipeline.fingerprint``), reuses the stored outputs when
the key is known, and otherwise runs the step in a scratch folder. ``flows/`` wraps each
step function in one Prefect task; ``run_all`` chains them without Prefect (same order):

    fingerprint -> ingest -> validate -> cohort -> analyze -> tte -> audit -> report -> finish

The tte step (target-trial emulation, the primary analysis) writes ``tte.json`` and a
``results.json`` that is the analyze step's with the ``tte`` key added; being the later entry,
its results.json is the one the report reads and the run folder holds.

``finish_run`` links the outputs into a new run folder, writes its manifest and only then
moves the ``latest`` pointer. Without a source folder the embedded default dataset is used:
synthetic MIMIC-IV-layout files generated once with a fixed seed and cached.

Each step reads only its own settings, ``config.for_step(step)`` (``pipeline.settings.
STEP_SETTINGS``), and its key hashes only those. The ingest's database is stored once: the
cohort step attaches it read-only and stores only the relations it builds (``cohort.duckdb``);
the audit attaches both and keeps only its parquet outputs.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.config import StudyConfig, load_study_config
from pipeline.errors import InputFileError, VasoflowError
from pipeline.fingerprint import (SourceFingerprint, downstream_key, fingerprint_source, ingest_key,
                                  verify_source_unchanged)
from pipeline.runs import (Layout, StepEntry, materialise, new_run_dir, promote_latest, remove_dead_builds,
                           run_cached, run_lock, write_manifest)

log = logging.getLogger("vasoflow")

DB_NAME = "vasoflow.duckdb"  # the ingest's database (every validated source row)
COHORT_DB_NAME = "cohort.duckdb"  # the cohort step's relations only (reads DB_NAME in place)
AUDIT_DB_NAME = "audit.duckdb"  # the audit's scratch relations (not stored)
# Aliases of the databases a step attaches read-only (pipeline.duckdb_settings.connect).
INGEST_ALIAS, COHORT_ALIAS = "vf_ingest", "vf_cohort"
LEDGER_NAME = "ledger.json"


def cache_dir() -> Path:
    return Path(os.environ.get("VASOFLOW_CACHE_DIR") or Path.home() / ".cache" / "vasoflow")


def default_source(config: StudyConfig) -> Path:
    """The cached default synthetic dataset, generated on first use (atomically)."""
    import pipeline.synth
    from pipeline.synth import generate

    n = int(config.get("default_data.stays"))
    seed = int(config.get("default_data.seed"))
    # Keyed on the generator's own source: a changed generator never reuses a stale cache.
    code = hashlib.sha256()
    for path in sorted(Path(pipeline.synth.__file__).parent.glob("*.py")):
        code.update(path.read_bytes())
    # ... and on the config it reads (item ids, thresholds, the [tte] strategies of the truth)
    code.update(json.dumps(pipeline.synth.synth_config(), sort_keys=True, default=str).encode())
    target = cache_dir() / f"synth-n{n}-seed{seed}-{code.hexdigest()[:12]}"
    if (target / "icu" / "icustays.csv.gz").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_builds(target.parent, target.name)  # a killed earlier generation
    tmp = target.with_name(f".{target.name}.building-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    log.info("generating the default synthetic dataset (%d stays, seed %d) in %s", n, seed, target)
    t0 = time.perf_counter()
    try:
        generate(tmp, n_stays=n, seed=seed)
        os.replace(tmp, target)
        log.info("%-9s %-30s %6.1f s", "data", f"{n:,} synthetic stays generated", time.perf_counter() - t0)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


# --------------------------------------------------------------------------------------------
# Cache keys of the steps (pipeline.fingerprint says what goes into them)
# --------------------------------------------------------------------------------------------

def ingest_step_key(fingerprint: SourceFingerprint, config: StudyConfig) -> str:
    return ingest_key(fingerprint, config)


def cohort_step_key(ingest_entry: StepEntry, config: StudyConfig) -> str:
    return downstream_key("cohort", {"ingest": ingest_entry.key}, config, "pipeline.cohort", ("sql",))


def analyze_step_key(cohort_entry: StepEntry, config: StudyConfig) -> str:
    return downstream_key("analyze", {"cohort": cohort_entry.key}, config, "pipeline.models")


def tte_step_key(cohort_entry: StepEntry, analyze_entry: StepEntry, config: StudyConfig) -> str:
    return downstream_key("tte", {"cohort": cohort_entry.key, "analyze": analyze_entry.key}, config, "pipeline.tte")


def audit_step_key(cohort_entry: StepEntry, config: StudyConfig) -> str:
    return downstream_key("audit", {"cohort": cohort_entry.key}, config, "pipeline.audit", ("sql",))


def spark_step_key(cohort_entry: StepEntry, audit_entry: StepEntry, config: StudyConfig) -> str:
    return downstream_key("spark", {"cohort": cohort_entry.key, "audit": audit_entry.key}, config,
                          "pipeline.spark", ("sql",))


def report_step_key(upstream: list[StepEntry], config: StudyConfig) -> str:
    return downstream_key("report", {e.step: e.key for e in upstream}, config, "pipeline.report", ("reports",))


_STEP_KEYS = {
    "ingest": lambda a: ingest_step_key(a["fingerprint"], a["config"]),
    "cohort": lambda a: cohort_step_key(a["ingest_entry"], a["config"]),
    "analyze": lambda a: analyze_step_key(a["cohort_entry"], a["config"]),
    "audit": lambda a: audit_step_key(a["cohort_entry"], a["config"]),
    "tte": lambda a: tte_step_key(a["cohort_entry"], a["analyze_entry"], a["config"]),
    "report": lambda a: report_step_key(a["upstream"], a["config"]),
    "spark": lambda a: spark_step_key(a["cohort_entry"], a["audit_entry"], a["config"]),
}


def stored_step_key(step: str, arguments: dict) -> str | None:
    """For an orchestrator's own cache (Prefect's): a key naming ``step``'s entry in the
    store of ``arguments['root']`` when that entry is complete, else None (so a cache record
    can never outlive the files it points to). ``arguments`` are the step function's."""
    from pipeline.fingerprint import digest_json
    from pipeline.runs import is_complete

    root = Path(arguments["root"]).resolve()
    key = _STEP_KEYS[step](arguments)
    if not is_complete(Layout(root).store_dir, step, key):
        return None
    return f"vasoflow-{step}-{digest_json({'root': str(root), 'key': key})}"


# --------------------------------------------------------------------------------------------
# Steps (each one Prefect task in flows/). The step modules are imported inside ``produce``:
# the model and validation stacks take seconds to import, and a re-run that reuses every
# step should not pay for that.
# --------------------------------------------------------------------------------------------

def check_source(source: Path) -> None:
    """Fail fast on a source folder the ingest would reject: the folder exists and every
    required table is there and readable (the ingest applies the same checks, with the same
    messages, when it runs). Costs a few ``stat`` calls: run it before any engine starts."""
    from pipeline.sources import detect_source_format
    from schemas.raw import RAW_TABLES, find_table_file

    source = Path(source)
    if not source.is_dir():
        raise InputFileError(f"{source}: source folder not found (expected hosp/ and icu/ inside)")
    if detect_source_format(source) == "eicu":  # eICU-CRD: its tables, same checks as its ingest
        from pipeline.eicu import find_files

        find_files(source)
        return
    for name, table in RAW_TABLES.items():
        path = find_table_file(source, table)
        if path is None and table.is_required:
            raise InputFileError(
                f"{source / table.module / (name + '.csv.gz')}: required table '{name}' not found "
                f"(also looked for .csv and .parquet)"
            )
        if path is not None and not os.access(path, os.R_OK):
            raise InputFileError(f"{path}: file is not readable (permissions)")


def preflight(source: Path | None, config_path: Path | None) -> StudyConfig:
    """Everything a run can check in about a second, before Prefect or any step starts: the
    study config (and its validation) and the source folder. Returns the loaded config."""
    config = load_study_config(config_path)
    if source is not None:
        check_source(Path(source))
    return config


def _announced(step: str, note=None):
    """Log one progress line when ``step`` finishes: what happened and how long it took
    (the CLI prints these; under Prefect they also reach the run's logs)."""

    def wrap(fn):
        @functools.wraps(fn)
        def announced(*args, **kwargs):
            t0 = time.perf_counter()
            result = fn(*args, **kwargs)
            seconds = time.perf_counter() - t0
            if isinstance(result, StepEntry):
                what = "reused (unchanged inputs)" if result.was_cached else "ran"
            else:
                what = note(result) if note else "done"
            log.info("%-9s %-30s %6.1f s", step, what, seconds)
            return result

        return announced

    return wrap


def resolve_source(source: Path | None, config: StudyConfig) -> Path:
    """``source`` as an absolute path, or the embedded default dataset when None."""
    return Path(source).resolve() if source else default_source(config)


@_announced("source", lambda fp: f"{len(fp.files)} files, {fp.bytes_hashed / 2**20:.0f} MiB hashed")
def fingerprint_step(root: Path, source: Path) -> SourceFingerprint:
    """Fingerprint the source files, remembering hashes under ``root`` (see pipeline.fingerprint)."""
    return fingerprint_source(Path(source), Layout(Path(root)).source_memo)


@_announced("ingest")
def ingest_step(root: Path, source: Path, fingerprint: SourceFingerprint, config: StudyConfig) -> StepEntry:
    """Ingest into the store (``vasoflow.duckdb``, ``ledger.json``); skipped when the source
    files, the [ingest] settings, the concepts and the code are unchanged."""

    def produce(work: Path) -> None:
        from pipeline.ingest import ingest  # imported only when the step really runs

        ingest(Path(source), work / DB_NAME, config.for_step("ingest"))
        # The key below was made from the bytes hashed before the ingest: store the outputs
        # under it only if the ingest read those same bytes (no file replaced meanwhile).
        verify_source_unchanged(fingerprint)

    key = ingest_step_key(fingerprint, config)
    return run_cached(Layout(Path(root)).store_dir, "ingest", key, produce)


@dataclass(frozen=True)
class DataQuality:
    """Row accounting of the ingest (from ledger.json): per table and per quarantine rule."""

    tables: tuple[dict, ...]  # table, is_available, rows_read, rows_loaded, rows_quarantined
    rules: tuple[dict, ...]  # table, rule, rows
    warnings: tuple[str, ...]

    @property
    def rows_quarantined(self) -> int:
        return sum(int(t["rows_quarantined"]) for t in self.tables)

    @property
    def rows_read(self) -> int:
        return sum(int(t["rows_read"]) for t in self.tables)


@_announced("validate", lambda q: f"{q.rows_read:,} rows, {q.rows_quarantined:,} quarantined")
def validate_step(ingest_entry: StepEntry) -> DataQuality:
    """Read the ingest ledger and check its accounting (rows read = loaded + quarantined for
    every table); the Pandera validation itself ran inside the ingest (quarantine)."""
    path = ingest_entry.file(LEDGER_NAME)
    try:
        ledger = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise VasoflowError(f"{path}: cannot read the ingest ledger ({exc})") from None
    tables, rules = [], []
    for t in ledger.get("tables", []):
        read, loaded, quarantined = int(t["rows_read"]), int(t["rows_loaded"]), int(t["rows_quarantined"])
        if read != loaded + quarantined:
            raise VasoflowError(
                f"{path}: table '{t['table']}': rows_read {read} != rows_loaded {loaded} + "
                f"rows_quarantined {quarantined}; the ingest lost rows"
            )
        tables.append({k: t[k] for k in ("table", "is_available", "rows_read", "rows_loaded", "rows_quarantined")})
        rules += [{"table": t["table"], "rule": r, "rows": int(n)}
                  for r, n in sorted(t.get("quarantined_by_rule", {}).items())]
    return DataQuality(tuple(tables), tuple(rules), tuple(ledger.get("warnings", [])))


@_announced("cohort")
def cohort_step(root: Path, ingest_entry: StepEntry, config: StudyConfig) -> StepEntry:
    """Build the cohort into its own database (``cohort.duckdb``: the relations it builds),
    reading the ingested database in place, attached read-only."""

    def produce(work: Path) -> None:
        from pipeline.cohort import build_cohort  # imported only when the step really runs

        build_cohort(work / COHORT_DB_NAME, work, config.for_step("cohort"),
                     source_db=ingest_entry.file(DB_NAME))

    key = cohort_step_key(ingest_entry, config)
    return run_cached(Layout(Path(root)).store_dir, "cohort", key, produce)


@_announced("analyze")
def analyze_step(root: Path, cohort_entry: StepEntry, config: StudyConfig) -> StepEntry:
    """Survival and RRT models (results.json and its tables) from the cohort entry."""

    def produce(work: Path) -> None:
        from pipeline.models import analyze  # imported only when the step really runs

        analyze(work / "cohort.parquet", work, config.for_step("analyze"))

    key = analyze_step_key(cohort_entry, config)
    inputs = {name: cohort_entry.file(name)
              for name in ("cohort.parquet", "ne_timeline.parquet", "hourly_panel.parquet")}
    return run_cached(
        Layout(Path(root)).store_dir, "analyze", key, produce,
        link_inputs=inputs,
    )


@_announced("tte")
def tte_step(root: Path, cohort_entry: StepEntry, analyze_entry: StepEntry, config: StudyConfig) -> StepEntry:
    """Target-trial emulation (pipeline.tte): ``tte.json`` from cohort.parquet and
    hourly_panel.parquet, and results.json = the analyze step's plus the ``tte`` key."""

    def produce(work: Path) -> None:
        from pipeline.tte import merge_into_results, run_tte  # imported only when the step really runs

        section = run_tte(work / "cohort.parquet", work, config.for_step("tte"))
        merge_into_results(work / "analyze_results.json", section, work / "results.json")

    key = tte_step_key(cohort_entry, analyze_entry, config)
    inputs = {"cohort.parquet": cohort_entry.file("cohort.parquet"),
              "hourly_panel.parquet": cohort_entry.file("hourly_panel.parquet"),
              "analyze_results.json": analyze_entry.file("results.json")}
    return run_cached(Layout(Path(root)).store_dir, "tte", key, produce, link_inputs=inputs)


@_announced("audit")
def audit_step(root: Path, ingest_entry: StepEntry, cohort_entry: StepEntry, config: StudyConfig) -> StepEntry:
    """QI audit over the ingest and cohort databases (attached read-only) in a scratch database;
    keeps only the audit's parquet outputs."""

    def produce(work: Path) -> None:
        from pipeline.audit import run_audit  # imported only when the step really runs

        run_audit(work / AUDIT_DB_NAME, work, config.for_step("audit"),
                  attach={INGEST_ALIAS: ingest_entry.file(DB_NAME), COHORT_ALIAS: cohort_entry.file(COHORT_DB_NAME)})

    key = audit_step_key(cohort_entry, config)
    return run_cached(
        Layout(Path(root)).store_dir, "audit", key, produce,
        discard=(AUDIT_DB_NAME, AUDIT_DB_NAME + ".wal"),
    )


@_announced("spark")
def spark_step(root: Path, ingest_entry: StepEntry, cohort_entry: StepEntry, audit_entry: StepEntry,
               config: StudyConfig) -> StepEntry:
    """``--engine spark``: the cohort and audit SQL again on a local Spark session, over parquet
    copies of the source tables (the ingest's database, attached read-only, with the concept
    tables and ``study_param`` of the spark step's settings); writes ``spark_<output>.parquet`` and
    ``engine_check.json`` and fails when any output differs from DuckDB's (pipeline.spark)."""

    def produce(work: Path) -> None:
        from pipeline.audit import AUDIT_RELATIONS  # imported only when the step really runs
        from pipeline.cohort import COHORT_RELATIONS
        from pipeline.concepts import load_concepts, register_concept_tables
        from pipeline.duckdb_settings import connect
        from pipeline.spark import SPARK_OUTPUTS, spark_engine_check

        duckdb_outputs = {}
        for stem in SPARK_OUTPUTS:
            entry = cohort_entry if f"{stem}.parquet" in cohort_entry.files else audit_entry
            duckdb_outputs[stem] = entry.file(f"{stem}.parquet")
        params = work / "spark_params.duckdb"  # concept tables and study_param of these settings
        con = connect(params)
        try:
            register_concept_tables(con, load_concepts(), config.for_step("spark"))
        finally:
            con.close()
        spark_engine_check(params, duckdb_outputs, work, [*COHORT_RELATIONS, *AUDIT_RELATIONS],
                           attach={INGEST_ALIAS: ingest_entry.file(DB_NAME)})
        for name in (params.name, params.name + ".wal"):
            (work / name).unlink(missing_ok=True)

    key = spark_step_key(cohort_entry, audit_entry, config)
    return run_cached(Layout(Path(root)).store_dir, "spark", key, produce)



@_announced("report")
def report_step(root: Path, upstream: list[StepEntry], config: StudyConfig) -> StepEntry:
    """The HTML and markdown report from the outputs of ``upstream`` (linked, read-only)."""

    def produce(work: Path) -> None:
        from pipeline.report import build_report  # imported only when the step really runs

        build_report(work, config)

    key = report_step_key(upstream, config)
    inputs: dict[str, Path] = {}
    for entry in upstream:  # a later step's file of the same name wins, as in the run folder
        inputs.update({name: entry.path / name for name in entry.files})
    return run_cached(
        Layout(Path(root)).store_dir, "report", key, produce,
        link_inputs=inputs,
    )


@dataclass(frozen=True)
class RunResult:
    """A finished run: its folder, the pointer that now names it, and each step's entry."""

    run_dir: Path
    latest: Path
    kind: str
    source: Path
    steps: dict[str, StepEntry] = field(default_factory=dict)
    outputs: dict[str, Path] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def reused_steps(self) -> tuple[str, ...]:
        """Steps whose outputs came from the store, built by an earlier run."""
        return tuple(s for s, e in self.steps.items() if e.reused_by(self.run_dir))

    def describe(self) -> str:
        synthetic = cache_dir().resolve() in Path(self.source).resolve().parents
        source = f"the synthetic default data ({self.source})" if synthetic else str(self.source)
        ran = [s for s, e in self.steps.items() if not e.reused_by(self.run_dir)]
        reused = [s for s in self.steps if s not in ran]
        steps = "; ".join(part for part in (f"ran {', '.join(ran)}" if ran else "",
                                            f"reused {', '.join(reused)}" if reused else "") if part)
        # The per-step times were printed as progress lines while the run went.
        lines = [f"vasoflow {self.kind} run: source {source}",
                 f"run folder: {self.run_dir}",
                 f"latest:     {self.latest} -> {self.run_dir.name}",
                 f"steps:      {steps}"]
        for name in ("report.html", "report.md", "results.json", "cohort.parquet", "audit.parquet",
                     "engine_check.json"):
            if name in self.outputs:
                lines.append(f"  {name:<15} {self.latest / name}")
        lines.append(f"time: {self.seconds:.1f} s")
        return "\n".join(lines)


def finish_run(root: Path, run_dir: Path, kind: str, source: Path, fingerprint: SourceFingerprint,
               entries: list[StepEntry], config: StudyConfig, seconds: float = 0.0) -> RunResult:
    """Link the step outputs into ``run_dir``, write its manifest, then move the pointer.
    ``seconds``: the run's wall time (default: since the start stamp in the folder name)."""
    from datetime import UTC, datetime

    from pipeline.runs import run_started_at

    if not seconds:
        started = datetime.strptime(run_started_at(run_dir), "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC)
        seconds = (datetime.now(UTC) - started).total_seconds()
    outputs = materialise(entries, run_dir)
    write_manifest(run_dir, {
        "kind": kind,
        "source": str(source),
        "source_key": fingerprint.key,
        "config_source": config.source,
        "config_fingerprint": config.fingerprint(),
        "steps": {e.step: {"key": e.key, "reused": e.reused_by(run_dir), "store": str(e.path),
                           "seconds": e.seconds, "built_at": e.built_at} for e in entries},
        "files": sorted(outputs),
    })
    pointer = promote_latest(root, run_dir, kind)
    return RunResult(run_dir=Path(run_dir), latest=pointer, kind=kind, source=Path(source),
                     steps={e.step: e for e in entries}, outputs=outputs, seconds=seconds)


ENGINES = ("duckdb", "spark")


def check_engine(engine: str) -> str:
    """``engine`` if known and usable; for 'spark' pyspark and Java 17+ are checked now, so that
    a missing one stops the run before its other steps, in one line."""
    if engine not in ENGINES:
        raise VasoflowError(f"unknown engine {engine!r} (one of: {', '.join(ENGINES)})")
    if engine == "spark":
        from pipeline.spark import check_spark_available

        check_spark_available()
    return engine


def run_all(source: Path | None, out_root: Path, config: StudyConfig, kind: str = "study",
            engine: str = "duckdb") -> RunResult:
    """Every step without Prefect (the same chain as ``flows.study_flow`` / ``audit_flow``):
    outputs in a new folder under ``out_root/runs``, ``out_root/latest`` moved on success.
    ``engine='spark'`` adds the Spark engine check (``spark_step``) after the report.
    Holds the output root's run lock (leftovers of killed runs are removed at the start)."""
    check_engine(engine)
    with run_lock(Path(out_root).resolve()):
        return _run_all_steps(source, out_root, config, kind, engine)


def _run_all_steps(source: Path | None, out_root: Path, config: StudyConfig, kind: str = "study",
                   engine: str = "duckdb") -> RunResult:
    """The chain of ``run_all``, called under the run lock."""
    t0 = time.perf_counter()
    root = Path(out_root).resolve()
    run_dir = new_run_dir(root, kind)
    src = resolve_source(source, config)
    fp = fingerprint_step(root, src)
    ingested = ingest_step(root, src, fp, config)
    validate_step(ingested)
    cohort = cohort_step(root, ingested, config)
    entries = [ingested, cohort]
    if kind == "study":
        analyzed = analyze_step(root, cohort, config)
        entries.append(analyzed)
        entries.append(tte_step(root, cohort, analyzed, config))
    audited = audit_step(root, ingested, cohort, config)
    entries.append(audited)
    entries.append(report_step(root, entries, config))
    if engine == "spark":
        entries.append(spark_step(root, ingested, cohort, audited, config))
    return finish_run(root, run_dir, kind, src, fp, entries, config, time.perf_counter() - t0)

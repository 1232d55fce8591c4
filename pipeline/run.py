"""The main job: every step from raw files to outputs, as plain function calls.

Each ``*_step`` function runs one pipeline step through the step store (``pipeline.runs``):
it computes the step's cache key (``pipeline.fingerprint``), reuses the stored outputs when
the key is known, and otherwise runs the step in a scratch folder. ``flows/`` wraps each
step function in one Prefect task; ``run_all`` chains them without Prefect (same order):

    fingerprint -> ingest -> validate -> cohort -> analyze -> audit -> report -> finish

``finish_run`` links the outputs into a new run folder, writes its manifest and only then
moves the ``latest`` pointer. Without a source folder the embedded default dataset is used:
synthetic MIMIC-IV-layout files generated once with a fixed seed and cached.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.config import StudyConfig
from pipeline.errors import VasoflowError
from pipeline.fingerprint import (SourceFingerprint, downstream_key, fingerprint_source, ingest_key,
                                  verify_source_unchanged)
from pipeline.runs import (Layout, StepEntry, materialise, new_run_dir, promote_latest, remove_dead_builds,
                           run_cached, run_lock, write_manifest)

log = logging.getLogger("vasoflow")

DB_NAME = "vasoflow.duckdb"
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
    target = cache_dir() / f"synth-n{n}-seed{seed}-{code.hexdigest()[:12]}"
    if (target / "icu" / "icustays.csv.gz").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_builds(target.parent, target.name)  # a killed earlier generation
    tmp = target.with_name(f".{target.name}.building-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    log.info("generating the default synthetic dataset (%d stays, seed %d) in %s", n, seed, target)
    try:
        generate(tmp, n_stays=n, seed=seed)
        os.replace(tmp, target)
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


def audit_step_key(cohort_entry: StepEntry, config: StudyConfig) -> str:
    return downstream_key("audit", {"cohort": cohort_entry.key}, config, "pipeline.audit", ("sql",))


def report_step_key(upstream: list[StepEntry], config: StudyConfig) -> str:
    return downstream_key("report", {e.step: e.key for e in upstream}, config, "pipeline.report", ("reports",))


_STEP_KEYS = {
    "ingest": lambda a: ingest_step_key(a["fingerprint"], a["config"]),
    "cohort": lambda a: cohort_step_key(a["ingest_entry"], a["config"]),
    "analyze": lambda a: analyze_step_key(a["cohort_entry"], a["config"]),
    "audit": lambda a: audit_step_key(a["cohort_entry"], a["config"]),
    "report": lambda a: report_step_key(a["upstream"], a["config"]),
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

def resolve_source(source: Path | None, config: StudyConfig) -> Path:
    """``source`` as an absolute path, or the embedded default dataset when None."""
    return Path(source).resolve() if source else default_source(config)


def fingerprint_step(root: Path, source: Path) -> SourceFingerprint:
    """Fingerprint the source files, remembering hashes under ``root`` (see pipeline.fingerprint)."""
    return fingerprint_source(Path(source), Layout(Path(root)).source_memo)


def ingest_step(root: Path, source: Path, fingerprint: SourceFingerprint, config: StudyConfig) -> StepEntry:
    """Ingest into the store (``vasoflow.duckdb``, ``ledger.json``); skipped when the source
    files, the [ingest] settings, the concepts and the code are unchanged."""

    def produce(work: Path) -> None:
        from pipeline.ingest import ingest  # imported only when the step really runs

        ingest(Path(source), work / DB_NAME, config)
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


def cohort_step(root: Path, ingest_entry: StepEntry, config: StudyConfig) -> StepEntry:
    """Build the cohort on a copy of the ingested database (the ingest entry stays as it was)."""

    def produce(work: Path) -> None:
        from pipeline.cohort import build_cohort  # imported only when the step really runs

        build_cohort(work / DB_NAME, work, config)

    key = cohort_step_key(ingest_entry, config)
    return run_cached(
        Layout(Path(root)).store_dir, "cohort", key, produce,
        copy_inputs={DB_NAME: ingest_entry.file(DB_NAME)},
    )


def analyze_step(root: Path, cohort_entry: StepEntry, config: StudyConfig) -> StepEntry:
    """Survival and RRT models (results.json and its tables) from the cohort entry."""

    def produce(work: Path) -> None:
        from pipeline.models import analyze  # imported only when the step really runs

        analyze(work / "cohort.parquet", work, config)

    key = analyze_step_key(cohort_entry, config)
    inputs = {name: cohort_entry.file(name) for name in ("cohort.parquet", "ne_timeline.parquet")}
    return run_cached(
        Layout(Path(root)).store_dir, "analyze", key, produce,
        link_inputs=inputs,
    )


def audit_step(root: Path, cohort_entry: StepEntry, config: StudyConfig) -> StepEntry:
    """QI audit on a scratch copy of the cohort database; keeps only the audit tables."""

    def produce(work: Path) -> None:
        from pipeline.audit import run_audit  # imported only when the step really runs

        run_audit(work / DB_NAME, work, config)

    key = audit_step_key(cohort_entry, config)
    return run_cached(
        Layout(Path(root)).store_dir, "audit", key, produce,
        copy_inputs={DB_NAME: cohort_entry.file(DB_NAME)},
        discard=(DB_NAME, DB_NAME + ".wal"),
    )


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
        lines = [f"vasoflow {self.kind} run: source {self.source}",
                 f"run folder: {self.run_dir}",
                 f"latest:     {self.latest} -> {self.run_dir.name}"]
        for step, e in self.steps.items():
            lines.append(f"  {step:<8} {'reused (unchanged inputs)' if e.reused_by(self.run_dir) else f'ran {e.seconds:.1f} s'}")
        for name in ("report.html", "report.md", "results.json", "cohort.parquet", "audit.parquet"):
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


def run_all(source: Path | None, out_root: Path, config: StudyConfig, kind: str = "study") -> RunResult:
    """Every step without Prefect (the same chain as ``flows.study_flow`` / ``audit_flow``):
    outputs in a new folder under ``out_root/runs``, ``out_root/latest`` moved on success.
    Holds the output root's run lock (leftovers of killed runs are removed at the start)."""
    with run_lock(Path(out_root).resolve()):
        return _run_all_steps(source, out_root, config, kind)


def _run_all_steps(source: Path | None, out_root: Path, config: StudyConfig, kind: str = "study") -> RunResult:
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
        entries.append(analyze_step(root, cohort, config))
    entries.append(audit_step(root, cohort, config))
    entries.append(report_step(root, entries, config))
    return finish_run(root, run_dir, kind, src, fp, entries, config, time.perf_counter() - t0)

"""The main job: every step from raw files to outputs, as plain function calls.

``run_all`` is what ``vasoflow run`` calls (through the Prefect study flow, which wraps the same
steps). Without a source folder it uses the embedded default dataset: synthetic MIMIC-IV-layout
files generated once with a fixed seed and cached.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.config import StudyConfig

log = logging.getLogger("vasoflow")


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


@dataclass(frozen=True)
class RunResult:
    out_dir: Path
    source: Path
    outputs: dict[str, Path] = field(default_factory=dict)
    step_seconds: dict[str, float] = field(default_factory=dict)

    def describe(self) -> str:
        lines = [f"vasoflow run: source {self.source}", f"outputs in {self.out_dir}:"]
        lines += [f"  {name:<14} {path}" for name, path in self.outputs.items()]
        total = sum(self.step_seconds.values())
        lines.append("time: " + ", ".join(f"{k} {v:.1f} s" for k, v in self.step_seconds.items()) + f" (total {total:.1f} s)")
        return "\n".join(lines)


def run_all(source: Path | None, out_dir: Path, config: StudyConfig) -> RunResult:
    """ingest -> cohort -> analyze -> audit -> report into ``out_dir``."""
    from pipeline.audit import run_audit
    from pipeline.cohort import build_cohort
    from pipeline.ingest import ingest
    from pipeline.models import analyze
    from pipeline.report import build_report

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    source = Path(source) if source else default_source(config)
    db_path = out_dir / "vasoflow.duckdb"
    outputs: dict[str, Path] = {}
    seconds: dict[str, float] = {}

    def timed(name, fn, *args):
        t0 = time.perf_counter()
        result = fn(*args)
        seconds[name] = time.perf_counter() - t0
        return result

    ingested = timed("ingest", ingest, source, db_path, config)
    outputs["database"] = ingested.db_path
    outputs["ledger"] = ingested.ledger_path
    timed("cohort", build_cohort, db_path, out_dir, config)
    outputs["cohort"] = out_dir / "cohort.parquet"
    outputs["attrition"] = out_dir / "attrition.parquet"
    timed("analyze", analyze, out_dir / "cohort.parquet", out_dir, config)
    outputs["results"] = out_dir / "results.json"
    timed("audit", run_audit, db_path, out_dir, config)
    outputs["audit"] = out_dir / "audit.parquet"
    timed("report", build_report, out_dir, config)
    outputs["report"] = out_dir / "report.html"
    outputs["summary"] = out_dir / "report.md"
    return RunResult(out_dir=out_dir, source=source, outputs=outputs, step_seconds=seconds)

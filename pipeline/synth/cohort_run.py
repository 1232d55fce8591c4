"""A synthetic analysis cohort from the one generator: ``generate`` -> ``ingest`` ->
``build_cohort``, for model tests and benchmarks that need cohort.parquet-shaped data with a
known truth (``true_effects.json``). The cohort comes out of the real cohort SQL, so what the
models see is what a study on these files would see.

>>> import tempfile; from pathlib import Path
>>> c = synthetic_cohort(Path(tempfile.mkdtemp()), n_stays=60, seed=1)
>>> sorted(c.cohort.columns)[:2], "tte" in c.true_effects
(['age_years', 'anchor_year_group'], True)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from pipeline.config import StudyConfig, load_study_config
from pipeline.synth import SynthParams, generate


@dataclass(frozen=True)
class SyntheticCohort:
    cohort: pl.DataFrame  # cohort.parquet
    ne_timeline: pl.DataFrame  # ne_timeline.parquet
    ground_truth: pl.DataFrame  # ground_truth.parquet (every stay)
    true_effects: dict  # true_effects.json
    cohort_path: Path


def synthetic_cohort(work_dir: Path, n_stays: int, seed: int, params: SynthParams | None = None,
                     config: StudyConfig | None = None) -> SyntheticCohort:
    """Generate ``n_stays`` synthetic ICU stays under ``params`` in ``work_dir/src`` and build the
    study cohort from them in ``work_dir/cohort``."""
    from pipeline.cohort import build_cohort
    from pipeline.ingest import ingest

    work_dir = Path(work_dir)
    cfg = config or load_study_config()
    res = generate(work_dir / "src", n_stays=n_stays, seed=seed, params=params)
    ingest(work_dir / "src", work_dir / "db.duckdb", cfg)
    c = build_cohort(work_dir / "db.duckdb", work_dir / "cohort", cfg)
    return SyntheticCohort(
        cohort=pl.read_parquet(c.cohort_path), ne_timeline=pl.read_parquet(c.ne_timeline_path),
        ground_truth=pl.read_parquet(res.truth_path), true_effects=json.loads(res.effects_path.read_text()),
        cohort_path=c.cohort_path,
    )

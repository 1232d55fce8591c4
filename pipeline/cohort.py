"""Build the analysis cohort from an ingested DuckDB database.

``build_cohort(db_path, out_dir, config)`` re-registers the concept tables and ``study_param``
from the given config (in ``db_path``; with ``source_db`` the ingest's database is read in place,
attached read-only, and ``db_path`` is a new database that holds only what this step builds) (so a changed threshold takes effect without re-ingesting), runs the SQL
relations of ``sql/`` in build order inside one transaction (a failure leaves the database as
it was; only ``COHORT_RELATIONS``), validates the cohort with ``schemas.cohort`` and writes, each via a temp file renamed
into place:

* ``cohort.parquet``: one row per cohort ICU stay (``mart_cohort``; columns in sql/README.md);
* ``attrition.parquet``: one row per cohort filter (step, description, n_stays, n_patients,
  n_excluded, ...);
* ``ne_timeline.parquet``: one row per resolved NE rate interval of each cohort stay's index
  episode (stay_id, starttime, endtime, ne_rate_mcg_kg_min, ne_rate_mcg_min);
* ``hourly_panel.parquet``: one row per cohort stay and hour from time zero to the end of the
  [tte] decision window or death (``mart_hourly_panel``; the person-time of pipeline/tte).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from pipeline.duckdb_settings import connect as connect_duckdb
from pipeline.atomic import write_parquet_atomic
from pipeline.concepts import Concepts, load_concepts, register_concept_tables
from pipeline.config import StudyConfig
from pipeline.eicu import apply_source_overrides
from pipeline.errors import InputFileError
from pipeline.sqlbuild import build_relations
from schemas.cohort import validate_cohort

# The relations of sql/build_order.toml this step builds (other steps, e.g. the QI audit, build
# theirs on top with ``build_relations(con, names)``; a failure there must not block the cohort).
COHORT_RELATIONS = (
    "stg_inputevents_vasoactive",
    "stg_chartevents_map",
    "stg_labevents_lactate",
    "stg_labevents_creatinine",
    "stg_rrt_events",
    "int_drug_rate_intervals",
    "int_drug_infusions",
    "int_shock_episodes",
    "int_index_episodes",
    "int_index_exposure",
    "int_vp_timing",
    "int_cohort_eligibility",
    "int_patient_outcomes",
    "mart_attrition",
    "mart_cohort",
    "mart_ne_timeline",
    "mart_hourly_panel",
)

REQUIRED_RELATIONS = ("source_table", "valid_icustays", "valid_inputevents", "valid_patients", "valid_admissions")


@dataclass(frozen=True)
class CohortResult:
    """Where the cohort outputs are and what they hold."""

    cohort_path: Path
    attrition_path: Path
    ne_timeline_path: Path
    hourly_panel_path: Path
    n_rows: int
    n_timeline_rows: int
    attrition: pl.DataFrame
    exposure_counts: dict[str, int]
    seconds: float

    def describe(self) -> str:
        lines = [f"cohort: {self.n_rows} ICU stays -> {self.cohort_path} ({self.seconds:.1f} s)"]
        for row in self.attrition.iter_rows(named=True):
            lines.append(
                f"  {row['step']}. {row['description']}: {row['n_stays']} stays, "
                f"{row['n_patients']} patients (excluded {row['n_excluded']})"
            )
        exposures = ", ".join(f"{k} {v}" for k, v in sorted(self.exposure_counts.items()))
        lines.append(f"  exposure: {exposures or 'none'}")
        lines.append(f"  NE timeline: {self.n_timeline_rows} intervals -> {self.ne_timeline_path}")
        return "\n".join(lines)


# The alias of the ingest's database when attached read-only (``source_db``).
SOURCE_ALIAS = "vf_ingest"


def _check_database(con, db_path: Path) -> None:
    present = {r[0] for r in con.execute(  # every attached database's tables (source_db)
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
    ).fetchall()}
    missing = [r for r in REQUIRED_RELATIONS if r not in present]
    if missing:
        raise InputFileError(
            f"{db_path}: not an ingested vasoflow database (missing {', '.join(missing)}; run `vasoflow ingest`)"
        )


def build_cohort(
    db_path: Path,
    out_dir: Path,
    config: StudyConfig,
    concepts: Concepts | None = None,
    source_db: Path | None = None,
) -> CohortResult:
    """Build cohort, attrition and NE timeline parquet files in ``out_dir`` (see module docs).
    ``source_db``: the ingested database, read-only; ``db_path`` is then created (or reused)
    for the cohort's own relations. Without it, ``db_path`` is the ingested database itself."""
    t0 = time.perf_counter()
    db_path, out_dir = Path(db_path), Path(out_dir)
    source = Path(source_db) if source_db is not None else db_path
    if not source.is_file():
        raise InputFileError(f"{source}: database not found (run `vasoflow ingest` first)")
    concepts = concepts or load_concepts()
    attach = {SOURCE_ALIAS: source} if source_db is not None else None
    try:
        con = connect_duckdb(db_path, attach=attach)  # memory limit, spill folder
    except duckdb.Error as exc:
        raise InputFileError(f"{source}: cannot open DuckDB database ({exc})".splitlines()[0]) from None
    try:
        _check_database(con, source)
        con.execute("BEGIN TRANSACTION")
        try:
            register_concept_tables(con, concepts, config)
            apply_source_overrides(con)  # eICU: follow-up ends at hospital discharge
            build_relations(con, list(COHORT_RELATIONS))
            cohort = con.execute("SELECT * FROM mart_cohort ORDER BY stay_id").pl()
            attrition = con.execute("SELECT * FROM mart_attrition ORDER BY step").pl()
            timeline = con.execute("SELECT * FROM mart_ne_timeline ORDER BY stay_id, starttime").pl()
            panel = con.execute("SELECT * FROM mart_hourly_panel ORDER BY stay_id, hour").pl()
            cohort = validate_cohort(cohort, config)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    finally:
        con.close()

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: out_dir / f"{name}.parquet" for name in ("cohort", "attrition", "ne_timeline", "hourly_panel")}
    write_parquet_atomic(cohort, paths["cohort"])
    write_parquet_atomic(attrition, paths["attrition"])
    write_parquet_atomic(timeline, paths["ne_timeline"])
    write_parquet_atomic(panel, paths["hourly_panel"])
    counts = dict(cohort.group_by("exposure").len().iter_rows()) if cohort.height else {}
    return CohortResult(
        cohort_path=paths["cohort"],
        attrition_path=paths["attrition"],
        ne_timeline_path=paths["ne_timeline"],
        hourly_panel_path=paths["hourly_panel"],
        n_rows=cohort.height,
        n_timeline_rows=timeline.height,
        attrition=attrition,
        exposure_counts={str(k): int(v) for k, v in counts.items()},
        seconds=time.perf_counter() - t0,
    )


"""Shared fixtures. The MIMIC-IV demo lives in ../shared beside the checkout; CI must have it
(the tests that need it fail, not skip, when CI=true and it is missing)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Nothing in the tests may reach for the internet or share state with a user's Prefect or
# vasoflow caches: set before anything imports prefect.
os.environ["DO_NOT_TRACK"] = "1"
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="vasoflow-test-prefect-")
os.environ["VASOFLOW_CACHE_DIR"] = tempfile.mkdtemp(prefix="vasoflow-test-cache-")

REPO = Path(__file__).resolve().parents[1]
DEMO_DIR = REPO.parent / "shared" / "data" / "mimic-iv-demo-2.2"


@pytest.fixture(scope="session")
def demo_dir() -> Path:
    if not (DEMO_DIR / "icu" / "icustays.csv.gz").exists():
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"MIMIC-IV demo not found at {DEMO_DIR} (CI must provide ../shared)")
        pytest.skip(f"MIMIC-IV demo not found at {DEMO_DIR}")
    return DEMO_DIR


@pytest.fixture(scope="session")
def study_config():
    from pipeline.config import load_study_config

    return load_study_config()


@pytest.fixture(scope="session")
def concepts():
    from pipeline.concepts import load_concepts

    return load_concepts()


@pytest.fixture(scope="session")
def demo_db(tmp_path_factory, demo_dir, study_config):
    """The MIMIC-IV demo ingested once per test session (read-only use, please)."""
    from pipeline.ingest import ingest

    out = tmp_path_factory.mktemp("demo_db")
    return ingest(demo_dir, out / "demo.duckdb", study_config)

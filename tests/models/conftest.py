from __future__ import annotations

import pytest

from pipeline.config import load_study_config
from pipeline.models.data import prepare
from pipeline.models.settings import ModelSettings
from pipeline.models.simulate import simulate_cohort


@pytest.fixture(scope="session")
def study_config():
    return load_study_config()


@pytest.fixture(scope="session")
def settings(study_config) -> ModelSettings:
    return ModelSettings.from_config(study_config)


@pytest.fixture(scope="session")
def sim_null():
    """1500 patients, VP has no effect (true HR 1), sicker patients get VP later."""
    return simulate_cohort(1500, seed=11, vp_log_hr=0.0)


@pytest.fixture(scope="session")
def cohort_null(sim_null):
    return prepare(sim_null.cohort)

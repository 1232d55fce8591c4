from __future__ import annotations

import pytest

from pipeline.config import load_study_config
from pipeline.models.data import prepare
from pipeline.models.settings import ModelSettings
from pipeline.synth import SynthParams
from pipeline.synth.cohort_run import synthetic_cohort


@pytest.fixture(scope="session")
def study_config():
    return load_study_config()


@pytest.fixture(scope="session")
def settings(study_config) -> ModelSettings:
    return ModelSettings.from_config(study_config)


@pytest.fixture(scope="session")
def sim_null(tmp_path_factory):
    """~1500 cohort patients (2800 ICU stays) of the synthetic world with the null switch: VP has
    no effect at all, while clinicians start it when the current NE dose is high and MAP low
    (time-varying confounding). Built by the one generator through ingest and the cohort SQL."""
    return synthetic_cohort(tmp_path_factory.mktemp("sim_null"), 2800, 11, SynthParams.null(truth_n_simulated=2000))


@pytest.fixture(scope="session")
def cohort_null(sim_null):
    return prepare(sim_null.cohort)

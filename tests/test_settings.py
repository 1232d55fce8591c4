"""Study config validated before anything runs (issue 18, item 2): every bad value gives one
line naming the key and the rule; sections without a model keep the default type check."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pipeline.config import load_study_config
from pipeline.errors import ConfigError

# (TOML text, key named in the message, words of the rule)
BAD = [
    ("[ingest]\nvalidation_chunk_rows = 0", "ingest.validation_chunk_rows", "greater than or equal to 1"),
    ("[ingest]\nmax_unparseable_fraction = 1.5", "ingest.max_unparseable_fraction", "less than or equal to 1"),
    ("[ingest]\nstay_time_margin_hours = -1", "ingest.stay_time_margin_hours", "greater than or equal to 0"),
    ("[classification]\nvasst_entry_ne_mcg_min = 20.0", "classification.vasst_entry_ne_mcg_min",
     "must be < vasst_more_severe_ne_mcg_min"),
    ("[classification]\ntiming_ssc_window_ne_mcg_kg_min = 0.6", "classification.timing_ssc_window_ne_mcg_kg_min",
     "must be < timing_delayed_above_ne_mcg_kg_min"),
    ("[classification]\ntiming_recommended_ne_mcg_kg_min = 0.0", "classification.timing_recommended_ne_mcg_kg_min",
     "greater than 0"),
    ("[outcomes]\nshort_term_days = 0", "outcomes.short_term_days", "greater than 0"),
    ("[outcomes]\nshort_term_days = 120", "outcomes.short_term_days", "must be < long_term_days"),
    ("[outcomes]\nlong_term_days = 400", "outcomes.long_term_days", "dod_coverage_days"),
    ("[models]\nweighting = \"ipw\"", "models.weighting", "'overlap' or 'iptw'"),
    ("[models]\ntrial_stratum_rule = \"max\"", "models.trial_stratum_rule", "'max_before_vp' or 'current'"),
    ("[models]\nbaseline_covariates = [\"age_years\", \"sofa_score\"]", "models.baseline_covariates",
     "unknown covariate 'sofa_score'"),
    ("[models]\nvasst_adjust_covariates = [\"age_years\", \"nee_at_vp_mcg_kg_min\"]",
     "models.vasst_adjust_covariates", "defines the VASST stratum"),
    ("[models]\nsequential_trial_hours = [2.0, 1.0]", "models.sequential_trial_hours", "strictly increasing"),
    ("[models]\ntime_updated_covariates = [\"sofa\"]", "models.time_updated_covariates",
     "unknown time-updated covariate"),
    ("[models]\nlandmark_hours = [24.0, 6.0]", "models.landmark_hours", "strictly increasing"),
    ("[models]\nlandmark_hours = [0.0]", "models.landmark_hours", "> 0 hours"),
    ("[models]\nconfidence_level = 95.0", "models.confidence_level", "less than 1"),
    ("[models]\naalen_johansen_seed = 99999999999", "models.aalen_johansen_seed", "less than or equal to"),
    ("[models]\nmin_events_total = 0", "models.min_events_total", "greater than or equal to 1"),
    ("[cohort]\nmin_age_years = 99999999999999999999999", "cohort.min_age_years", "64 bits"),
    ("[default_data]\nstays = 0", "default_data.stays", "greater than or equal to 1"),
    ("[study]\nperiod = \"weekly\"", "study.period", "'calendar_month' or 'calendar_quarter'"),
    ("[tte]\nstrategy_thresholds_ne_mcg_kg_min = [0.25, 0.1]", "tte.strategy_thresholds_ne_mcg_kg_min",
     "strictly increasing"),
    ("[tte]\nstrategy_thresholds_ne_mcg_kg_min = [0.0, 0.25]", "tte.strategy_thresholds_ne_mcg_kg_min", "> 0"),
    ("[tte]\ngrace_hours = 0", "tte.grace_hours", "greater than or equal to 1"),
    ("[tte]\ndecision_window_hours = 0", "tte.decision_window_hours", "greater than 0"),
    ("[tte]\nreference_strategies = [\"ne_0.3\"]", "tte.reference_strategies", "'ne_0.3' is not a strategy"),
    ("[tte]\ninclude_never_strategy = false", "tte.reference_strategies", "'never' is not a strategy"),
    ("[report]\nmin_cell_count = 0", "report.min_cell_count", "greater than or equal to 1"),
    ("[report]\nne_dose_bin_mcg_min = 100.0", "report.ne_dose_bin_mcg_min", "must be < ne_dose_axis_max_mcg_min"),
    ("[audit]\nmap_below_max_fraction = 2.0", "audit.map_below_max_fraction", "less than or equal to 1"),
    ("[audit]\nspc_shift_run_length = 1", "audit.spc_shift_run_length", "greater than or equal to 2"),
]


@pytest.mark.parametrize("text,key,rule", BAD, ids=[b[1] + ":" + b[0].split("=")[-1].strip()[:12] for b in BAD])
def test_a_bad_setting_is_one_line_naming_the_key_and_the_rule(tmp_path, text, key, rule):
    path = tmp_path / "bad.toml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError) as err:
        load_study_config(path)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: setting '{key}'"), message
    assert rule in message, message


def test_the_shipped_defaults_and_good_overrides_pass(tmp_path):
    path = tmp_path / "ok.toml"
    path.write_text("[tte]\nstrategy_thresholds_ne_mcg_kg_min = [0.1, 0.2]\nreference_strategies = [\"ne_0.20\"]\n"
                    "[models]\nbaseline_covariates = [\"age_years\", \"is_female\"]\n")
    config = load_study_config(path)
    assert config.typed("tte").reference_strategies == ["ne_0.20"]
    assert config.get("tte.grace_hours") == config.typed("tte").grace_hours == 1
    assert config.typed("classification").vasst_entry_ne_mcg_min == 5.0


def test_a_section_without_a_model_is_still_type_checked(tmp_path, monkeypatch):
    """A section another change adds to study.toml loads without a model, with the old rules:
    unknown keys and wrong types are errors."""
    import pipeline.config as config_module

    defaults = tmp_path / "study.toml"
    shipped = config_module.default_study_config_path().read_text()
    defaults.write_text(shipped + "\n[future_section]\nmode = \"base\"\nfactor = 1.0\n")
    monkeypatch.setattr(config_module, "default_study_config_path", lambda: defaults)
    assert load_study_config().get("future_section.mode") == "base"
    bad = tmp_path / "bad.toml"
    bad.write_text("[future_section]\nfactor = \"one\"\n")
    with pytest.raises(ConfigError, match=r"setting 'future_section.factor' must be float"):
        load_study_config(bad)
    bad.write_text("[future_section]\nfactr = 1.0\n")
    with pytest.raises(ConfigError, match=r"unknown setting 'future_section.factr'"):
        load_study_config(bad)


def test_binary_bytes_in_a_config_are_one_line_exit_2(tmp_path):
    path = tmp_path / "binary.toml"
    path.write_bytes(b"[ingest]\nvalidation_chunk_rows = 1\n\xff\xfe\x00\x01garbage")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_study_config(path)
    bad = tmp_path / "zero.toml"
    bad.write_text("[ingest]\nvalidation_chunk_rows = 0\n")
    for cfg in (path, bad):
        proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "report", "--out", str(tmp_path / "o"),
                               "--config", str(cfg)], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
        assert str(cfg) in proc.stderr


"""`vasoflow run` before any engine starts: bad input and an unreachable Prefect server give
one line and exit code 2 in every mode (subprocesses, so Prefect's settings and logging start
fresh, as for a user). No Prefect server is started here."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest


def _vasoflow(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    home = tmp_path / "prefect-home"
    home.mkdir(exist_ok=True)
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    full_env.update(PREFECT_HOME=str(home), DO_NOT_TRACK="1", **env)
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], cwd=tmp_path, env=full_env,
                          capture_output=True, text=True, timeout=120)


def _one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("vasoflow: error: "), proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    return lines[0]


@pytest.mark.parametrize("mode", [[], ["--prefect"], ["--no-prefect"]])
def test_missing_source_is_one_line_in_every_mode(tmp_path, mode):
    line = _one_error_line(_vasoflow(["run", "--out", "out", "--source", "nowhere", *mode], tmp_path))
    assert "nowhere: source folder not found" in line
    assert not (tmp_path / "out").exists()  # nothing was started


def test_missing_required_table_is_found_before_the_run(tmp_path):
    (tmp_path / "src" / "hosp").mkdir(parents=True)
    (tmp_path / "src" / "icu").mkdir()
    line = _one_error_line(_vasoflow(["run", "--out", "out", "--source", "src", "--prefect"], tmp_path))
    assert "required table" in line and ".csv.gz" in line
    assert not (tmp_path / "out").exists()


def test_config_typo_is_one_line_with_prefect(tmp_path):
    (tmp_path / "study.toml").write_text("[cohort]\nmin_age_yaers = 18\n")
    line = _one_error_line(_vasoflow(["run", "--out", "out", "--config", "study.toml", "--prefect"], tmp_path))
    assert "min_age_yaers" in line and "study.toml" in line


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_from_the_environment_names_the_fix(tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}/api"
    line = _one_error_line(_vasoflow(["run", "--out", "out"], tmp_path, PREFECT_API_URL=url))
    assert url in line and "not reachable" in line and "unset PREFECT_API_URL" in line
    assert "--no-prefect" in line


def test_unreachable_server_from_a_profile_names_the_fix(tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}/api"
    home = tmp_path / "prefect-home"
    home.mkdir()
    (home / "profiles.toml").write_text(f'active = "hospital"\n\n[profiles.hospital]\nPREFECT_API_URL = "{url}"\n')
    line = _one_error_line(_vasoflow(["run", "--out", "out"], tmp_path))
    assert "profile 'hospital'" in line and "prefect config unset PREFECT_API_URL" in line


def test_serve_without_a_server_says_how_to_start_one(tmp_path):
    line = _one_error_line(_vasoflow(["serve", "--out", "out"], tmp_path))
    assert "prefect server start" in line and "PREFECT_API_URL" in line


def test_no_configured_server_means_no_prefect_import(tmp_path, monkeypatch):
    """The default mode decides without importing Prefect (2 s) when nothing configures it."""
    from pipeline import cli

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.delenv("PREFECT_PROFILE", raising=False)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    assert not cli._prefect_may_be_configured()
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "profiles.toml").write_text('[profiles.x]\nPREFECT_API_URL = "http://h/api"\n')
    assert cli._prefect_may_be_configured()

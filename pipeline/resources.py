"""Where the SQL, config and report templates are, in a checkout and once installed.

A wheel carries them under ``pipeline/_resources/`` (see pyproject's force-include); an
editable install or a checkout reads them from the repository root. Either way the CLI works
from any working directory.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    """Return the directory of resource ``name`` ('sql', 'config' or 'reports')."""
    for candidate in (_PACKAGE_DIR / "_resources" / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"vasoflow resource folder '{name}' not found next to {_PACKAGE_DIR}")


def default_study_config_path() -> Path:
    return resource_dir("config") / "study.toml"


def default_concepts_path() -> Path:
    return resource_dir("config") / "concepts.toml"

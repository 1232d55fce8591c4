"""Study configuration: the documented TOML file, merged over the shipped defaults.

A user's ``--config FILE`` needs only the keys it changes; an unknown key is an error (a typo
must not silently keep the default), a value of another type than its default is an error, and
the merged settings are validated by the typed section models of ``pipeline.settings`` (ranges,
order of thresholds, known choices) before anything runs. The merged settings are a read-only mapping with
dotted access (``cfg.get("cohort.min_age_years")``) and flatten to ``section_key`` names for
the one-row ``study_param`` table the SQL joins against.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pipeline.errors import ConfigError
from pipeline.resources import default_study_config_path


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML (not UTF-8 text: byte {exc.start}; a binary file?)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.strerror})") from None


def _merge(defaults: Mapping[str, Any], override: Mapping[str, Any], where: str, path: Path) -> dict:
    merged = dict(defaults)
    for key, value in override.items():
        dotted = f"{where}{key}"
        if key not in defaults:
            raise ConfigError(f"{path}: unknown setting '{dotted}' (see the shipped study.toml)")
        if isinstance(defaults[key], Mapping):
            if not isinstance(value, Mapping):
                raise ConfigError(f"{path}: setting '{dotted}' must be a table")
            merged[key] = _merge(defaults[key], value, dotted + ".", path)
        else:
            default = defaults[key]
            ok = isinstance(value, type(default)) or (
                isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool)
            )
            if not ok:
                raise ConfigError(
                    f"{path}: setting '{dotted}' must be {type(default).__name__}, got {value!r}"
                )
            merged[key] = float(value) if isinstance(default, float) else value
    return merged


def _freeze(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return MappingProxyType({k: _freeze(v) for k, v in obj.items()})
    if isinstance(obj, list):
        return tuple(_freeze(v) for v in obj)
    return obj


def _thaw(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {k: _thaw(v) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return [_thaw(v) for v in obj]
    return obj


@dataclass(frozen=True)
class StudyConfig:
    """Merged study settings (read-only) and where they came from."""

    settings: Mapping[str, Any]
    source: str = "defaults"
    _flat: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def get(self, dotted: str) -> Any:
        node: Any = self.settings
        for part in dotted.split("."):
            if not isinstance(node, Mapping) or part not in node:
                raise ConfigError(f"study config has no setting '{dotted}'")
            node = node[part]
        return node

    def section(self, name: str) -> Mapping[str, Any]:
        return self.get(name)

    def typed(self, name: str) -> Any:
        """Section ``name`` as its validated pydantic model (``pipeline.settings``), e.g.
        ``config.typed("tte").grace_hours``."""
        from pipeline.settings import SECTION_MODELS, validate_settings

        if name not in SECTION_MODELS:
            raise ConfigError(f"study config section '{name}' has no typed model (pipeline/settings.py)")
        return validate_settings({name: self.get(name)}, self.source)[name]

    def to_dict(self) -> dict[str, Any]:
        return _thaw(self.settings)

    def for_step(self, step: str) -> "StepConfig":
        """The view of step ``step``: only the settings ``pipeline.settings.STEP_SETTINGS``
        declares for it (reading any other raises UndeclaredSettingError); its ``fingerprint()``
        is what the step's cache key hashes."""
        from pipeline.settings import STEP_SETTINGS

        if step not in STEP_SETTINGS:
            raise ConfigError(f"step '{step}' has no entry in STEP_SETTINGS (pipeline/settings.py): "
                              f"declare the settings it reads there")
        return StepConfig(settings=_restrict(self.settings, STEP_SETTINGS[step], step), source=self.source,
                          step=step, parent=self)

    def fingerprint(self) -> str:
        """sha256 of the merged settings: what caches and reports key on."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def flat_scalars(self) -> dict[str, Any]:
        """``section_key`` -> value for every scalar setting (for the study_param table)."""
        out: dict[str, Any] = {}

        def walk(prefix: str, node: Mapping[str, Any]) -> None:
            for key, value in node.items():
                name = f"{prefix}_{key}" if prefix else key
                if isinstance(value, Mapping):
                    walk(name, value)
                elif isinstance(value, (bool, int, float, str)):
                    out[name] = value

        walk("", self.settings)
        return out


class UndeclaredSettingError(ConfigError):
    """A step read a setting its STEP_SETTINGS entry does not declare (a bug in the code: the
    step's cache key would not change with that setting)."""


def _restrict(settings: Mapping[str, Any], entries: tuple[str, ...], step: str) -> Mapping[str, Any]:
    if "*" in entries:
        return settings
    out: dict[str, Any] = {}
    for entry in entries:
        section, _, key = entry.partition(".")
        if not isinstance(settings.get(section), Mapping) or (key and key not in settings[section]):
            raise ConfigError(f"STEP_SETTINGS['{step}'] (pipeline/settings.py): '{entry}' is not a setting "
                              f"of the study config")
        if not key:
            out[section] = dict(settings[section])
        elif not (section in out and len(out[section]) == len(settings[section])):
            out.setdefault(section, {})[key] = settings[section][key]
    return MappingProxyType({k: MappingProxyType(v) for k, v in out.items()})


@dataclass(frozen=True)
class StepConfig(StudyConfig):
    """One step's view of the study config (``StudyConfig.for_step``): the declared settings only."""

    step: str = ""
    parent: StudyConfig | None = field(default=None, repr=False, compare=False)

    def get(self, dotted: str) -> Any:
        try:
            return super().get(dotted)
        except ConfigError:
            if self.parent is None:
                raise
            self.parent.get(dotted)  # a setting that does not exist at all: the usual error
            raise UndeclaredSettingError(
                f"step '{self.step}' read setting '{dotted}', which STEP_SETTINGS['{self.step}'] in "
                f"pipeline/settings.py does not declare (its cache key would not cover it)") from None

    def typed(self, name: str) -> Any:
        if self.parent is not None and len(self.get(name)) != len(self.parent.get(name)):
            raise UndeclaredSettingError(
                f"step '{self.step}' read section '{name}' as a whole, but STEP_SETTINGS['{self.step}'] "
                f"in pipeline/settings.py declares only some of its keys")
        return super().typed(name)

    def for_step(self, step: str) -> "StepConfig":
        if step != self.step:
            raise UndeclaredSettingError(f"step '{self.step}' asked for the settings of step '{step}'")
        return self


def load_study_config(path: str | Path | None = None) -> StudyConfig:
    """Load the shipped defaults, then merge ``path`` (if given) over them."""
    from pipeline.settings import validate_settings

    defaults_path = default_study_config_path()
    defaults = _read_toml(defaults_path)
    if path is None:
        validate_settings(defaults, str(defaults_path))
        return StudyConfig(settings=_freeze(defaults), source=str(defaults_path))
    user_path = Path(path)
    merged = _merge(defaults, _read_toml(user_path), "", user_path)
    # Ranges, order of thresholds, known choices: checked before anything runs.
    validate_settings(merged, str(user_path))
    return StudyConfig(settings=_freeze(merged), source=str(user_path))

"""sql/sources/eicu/: its build order lists every file once, each file is one SELECT with its
header, reads only relations built before it or eICU sources, and stays in the portable SQL
subset (the same rules as sql/build_order.toml: tests/test_sql_build_order.py,
tests/test_sql_portable.py)."""

from __future__ import annotations

import re

import pytest
import sqlglot
from sqlglot import exp

from pipeline.eicu import eicu_sql_root
from pipeline.sqlbuild import SOURCE_RELATION_PATTERN, build_order
from pipeline.sqldialect import TARGET_DIALECTS, transpile_relation

ROOT = eicu_sql_root()
RELATIONS = build_order(ROOT)
_REF = re.compile(r"\b(?:from|join)\s+([a-z_][a-z0-9_]*)", re.IGNORECASE)
_CTE = re.compile(r"(?:\bwith\s+|,\s*)([a-z_][a-z0-9_]*)\s+as\s*\(", re.IGNORECASE)
# eICU sources: its validated tables and its concept tables (concept_eicu_* match concept_*)
_EICU_SOURCE = re.compile(r"^valid_eicu_[a-z]+$")


def _strip(sql: str) -> str:
    return "\n".join(line.split("--", 1)[0] for line in sql.splitlines())


def test_every_eicu_file_is_listed_once():
    files = sorted(str(p.relative_to(ROOT).with_suffix("")) for p in ROOT.rglob("*.sql"))
    listed = [str(r.path.relative_to(ROOT).with_suffix("")) for r in RELATIONS]
    assert sorted(listed) == files and len(listed) == len(set(listed))


def test_eicu_files_read_only_earlier_relations_or_sources():
    built: set[str] = set()
    for rel in RELATIONS:
        sql = _strip(rel.select_sql)
        ctes = {m.lower() for m in _CTE.findall(sql)}
        for ref in {m.lower() for m in _REF.findall(sql)}:
            ok = ref in ctes or ref in built or _EICU_SOURCE.match(ref) or (
                SOURCE_RELATION_PATTERN.match(ref) and ref.startswith("concept_"))
            assert ok, f"{rel.path}: reads '{ref}'"
        built.add(rel.name)


def test_conformed_relations_are_what_the_shared_sql_reads():
    conformed = {r.name for r in RELATIONS if r.path.parent.name == "conformed"}
    assert all(SOURCE_RELATION_PATTERN.match(n) for n in conformed)
    assert {"valid_icustays", "valid_patients", "valid_admissions", "valid_inputevents"} <= conformed


def test_eicu_files_are_pure_selects_with_a_header():
    for rel in RELATIONS:
        lines = rel.path.read_text().splitlines()
        assert lines[0].startswith(f"-- {rel.name}:"), rel.path
        header = "\n".join(line for line in lines if line.startswith("--"))
        assert "Grain:" in header and "Source:" in header, rel.path
        assert re.search(r"select \* from final\b", _strip(rel.path.read_text()).lower()), rel.path


@pytest.mark.parametrize("dialect", TARGET_DIALECTS)
@pytest.mark.parametrize("relation", RELATIONS, ids=[r.name for r in RELATIONS])
def test_every_eicu_file_is_portable(relation, dialect):
    text = transpile_relation(relation, dialect)
    assert isinstance(sqlglot.parse_one(text, read=dialect), exp.Query)


def test_the_ingest_cache_key_covers_the_eicu_sql_and_config(tmp_path, monkeypatch):
    import shutil

    import pipeline.sources as eicu_module  # where the paths are defined (pipeline.eicu re-exports them)
    from pipeline.fingerprint import eicu_fingerprint

    copy = tmp_path / "eicu"
    shutil.copytree(ROOT, copy)
    monkeypatch.setattr(eicu_module, "eicu_sql_root", lambda: copy)
    before = eicu_fingerprint()
    path = copy / "staging" / "stg_eicu__infusiondrug.sql"
    path.write_text(path.read_text().replace("60.0", "61.0"))
    assert eicu_fingerprint() != before
    config = tmp_path / "eicu.toml"
    config.write_text(eicu_module.default_eicu_config_path().read_text().replace(
        "carry_forward_cap_minutes = 120", "carry_forward_cap_minutes = 90"))
    changed = eicu_fingerprint()
    monkeypatch.setattr(eicu_module, "default_eicu_config_path", lambda: config)
    assert eicu_fingerprint() != changed

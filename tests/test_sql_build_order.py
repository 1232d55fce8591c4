"""sql/build_order.toml lists every SQL file exactly once, each file is one pure SELECT with its
header comment, and reads only relations built before it or source tables."""

from __future__ import annotations

import re
import tomllib

from pipeline.sqlbuild import SOURCE_RELATION_PATTERN, build_order, sql_dir

_REF = re.compile(r"\b(?:from|join)\s+([a-z_][a-z0-9_]*)", re.IGNORECASE)
_CTE = re.compile(r"(?:\bwith\s+|,\s*)([a-z_][a-z0-9_]*)\s+as\s*\(", re.IGNORECASE)


def _strip_comments(sql: str) -> str:
    return "\n".join(line.split("--", 1)[0] for line in sql.splitlines())


def test_every_sql_file_is_in_the_build_order_exactly_once():
    root = sql_dir()
    with open(root / "build_order.toml", "rb") as fh:
        entries = tomllib.load(fh)["relations"]
    # sql/sources/<database>/ has its own build order (tests/test_eicu_sql.py)
    files = sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.sql")
                   if p.relative_to(root).parts[0] != "sources")
    assert sorted(entries) == files
    assert len(entries) == len(set(entries))
    names = [e.rsplit("/", 1)[-1] for e in entries]
    assert len(names) == len(set(names)), "two files would build the same relation"


def test_layers_are_named_by_prefix():
    for rel in build_order():
        layer = rel.path.parent.name
        assert rel.name.startswith({"staging": "stg_", "intermediate": "int_", "marts": "mart_"}[layer]), rel.path


def test_files_only_read_earlier_relations_or_sources():
    built: set[str] = set()
    for rel in build_order():
        sql = _strip_comments(rel.select_sql)
        ctes = {m.lower() for m in _CTE.findall(sql)}
        for ref in {m.lower() for m in _REF.findall(sql)}:
            if ref in ctes or ref in built or SOURCE_RELATION_PATTERN.match(ref):
                continue
            raise AssertionError(f"{rel.path}: reads '{ref}', which is neither a CTE, built earlier, nor a source")
        built.add(rel.name)


def test_files_are_pure_selects_with_a_header():
    for rel in build_order():
        text = rel.path.read_text()
        lines = text.splitlines()
        assert lines[0].startswith(f"-- {rel.name}:"), f"{rel.path}: first line must name the relation"
        header = "\n".join(line for line in lines if line.startswith("--"))
        assert "Grain:" in header and "Source:" in header, f"{rel.path}: header lacks Grain/Source"
        body = _strip_comments(text).lower()
        assert ";" not in body.strip().rstrip(";"), f"{rel.path}: one statement per file"
        for word in ("create ", "insert ", "update ", "delete ", "drop ", "alter "):
            assert word not in body, f"{rel.path}: SQL files are SELECTs only ({word.strip()})"
        assert re.search(r"select \* from final\b", body), f"{rel.path}: must end with select * from final"

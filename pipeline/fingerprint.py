"""Fingerprints and cache keys: when may a step's earlier output be reused?

A step's key is a sha256 over everything that decides its output, so equal keys mean equal
outputs (the steps are deterministic for a given input):

* ingest: the source files (relative path, size and content hash of each file the ingest would
  read, and which optional tables are absent), the ``[ingest]`` settings, the concept
  definitions and the code the ingest runs (``module_closure``);
* every later step: the keys of the steps it reads from, the study settings it reads (its view,
  ``StudyConfig.for_step``: ``pipeline.settings.STEP_SETTINGS`` lists them), the concept
  definitions, its code, and the SQL (cohort, audit) or report templates (report).

So a re-run with nothing changed reuses everything; a changed cohort threshold leaves the
ingest key alone and changes every key from the cohort onward; a changed report setting
changes the report's key only.

Content hashes are what the keys use: touching or copying a source file does not re-ingest.
Hashing gigabytes costs seconds, so ``fingerprint_source`` remembers each file's hash with
its size, mtime and inode (like git's index) and re-hashes only files whose stat changed.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.atomic import write_text_atomic
from pipeline.config import StudyConfig
from pipeline.errors import InputFileError
from pipeline.settings import STEP_SETTINGS
from schemas.raw import find_table_file

# The study-config sections the ingest reads (``tests/test_fingerprint.py`` runs the ingest
# with a recording config and fails if it reads any other key, so this cannot go stale).
INGEST_CONFIG_SECTIONS: tuple[str, ...] = STEP_SETTINGS["ingest"]

HASH_NAME = "sha256"


@dataclass(frozen=True)
class FileFingerprint:
    """One source file: path relative to the source folder, size in bytes, mtime in ns, hash."""

    relpath: str
    size_bytes: int
    mtime_ns: int
    sha256: str
    inode: int = 0
    ctime_ns: int = 0  # changes on every write or rename onto the path (``touch -d`` cannot set it)


@dataclass(frozen=True)
class SourceFingerprint:
    """The files an ingest of ``source_dir`` would read, and the optional tables it lacks."""

    source_dir: Path
    files: tuple[FileFingerprint, ...]
    absent_tables: tuple[str, ...]
    bytes_hashed: int  # bytes read to compute this fingerprint (0 when every stat matched)
    seconds: float

    @property
    def key(self) -> str:
        """Content identity of the source: relative paths, sizes and hashes (not mtimes or
        the folder's location, so a copy or a ``touch`` does not change it)."""
        payload = {
            "files": [[f.relpath, f.size_bytes, f.sha256] for f in self.files],
            "absent": list(self.absent_tables),
        }
        return digest_json(payload)

    @property
    def total_bytes(self) -> int:
        return sum(f.size_bytes for f in self.files)


def digest_json(payload: Any) -> str:
    """sha256 (hex) of ``payload`` as canonical JSON (sorted keys)."""
    text = json.dumps(payload, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def hash_file(path: Path) -> str:
    """sha256 (hex) of a file's bytes (hashlib.file_digest: chunked, GIL released)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, HASH_NAME).hexdigest()


def _source_files(source_dir: Path) -> tuple[list[tuple[str, Path]], list[str]]:
    """The files the ingest would read, and the tables it would find absent."""
    from pipeline.sources import source_tables

    found, absent = [], []
    tables = source_tables(source_dir)  # MIMIC-IV or eICU layout (pipeline.sources)
    for name in sorted(tables):
        if name.startswith("eicu_"):  # imported only for eICU: it loads the validation schemas
            from pipeline.eicu import find_table as find
        else:
            find = find_table_file
        path = find(source_dir, tables[name])
        if path is None:
            absent.append(tables[name].relpath)
        else:
            found.append((path.relative_to(source_dir).as_posix(), path))
    return found, absent


def _stat_id(path: Path) -> list[int]:
    """What identifies one version of a file without reading it: size, mtime, inode, ctime.
    Any write to the file or any file renamed onto its path changes at least one of them."""
    try:
        st = path.stat()
    except OSError as exc:
        raise InputFileError(f"{path}: cannot stat ({exc.strerror})") from None
    return [st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns]


def fingerprint_source(source_dir: Path, memo_path: Path | None = None) -> SourceFingerprint:
    """Fingerprint the MIMIC-IV-layout folder ``source_dir``.

    ``memo_path`` (JSON) remembers hashes by absolute path, size, mtime and inode; a file whose
    stat is unchanged is not read again. A missing required table is not an error here (the
    ingest reports it, with its own message); an unreadable folder is.
    """
    import time

    t0 = time.perf_counter()
    source_dir = Path(source_dir)
    if not source_dir.is_dir():
        raise InputFileError(f"{source_dir}: source folder not found (expected hosp/ and icu/ inside)")
    memo = _read_memo(memo_path)
    files, absent = _source_files(source_dir)
    out: list[FileFingerprint] = []
    bytes_hashed = 0
    for relpath, path in files:
        stat_id = _stat_id(path)
        known = memo.get(str(path.resolve()))
        if known and known.get("stat") == stat_id:
            sha = known["sha256"]
        else:
            try:
                sha = hash_file(path)
            except OSError as exc:
                raise InputFileError(f"{path}: cannot read ({exc.strerror})") from None
            if _stat_id(path) != stat_id:
                raise InputFileError(f"{path}: the file changed while it was being fingerprinted; "
                                     "run again once the source folder is no longer being written")
            bytes_hashed += stat_id[0]
            memo[str(path.resolve())] = {"stat": stat_id, "sha256": sha}
        out.append(FileFingerprint(relpath, stat_id[0], stat_id[1], sha, stat_id[2], stat_id[3]))
    if memo_path is not None and bytes_hashed:
        _write_memo(memo_path, memo)
    return SourceFingerprint(source_dir, tuple(out), tuple(absent), bytes_hashed, time.perf_counter() - t0)


def verify_source_unchanged(fingerprint: SourceFingerprint) -> None:
    """Raise when a file of ``fingerprint`` is no longer the version that was hashed.

    Called after a step has read the source and before its outputs are stored: together with
    the stat check around hashing, an unchanged stat means the step read exactly the hashed
    bytes, so its outputs may be stored under a key made from them (a file replaced while the
    step read it would otherwise poison the cache for the next run with the original file)."""
    files, absent = _source_files(fingerprint.source_dir)
    now = {relpath: path for relpath, path in files}
    for f in fingerprint.files:
        path = fingerprint.source_dir / f.relpath
        if f.relpath not in now:
            raise InputFileError(f"{path}: the file disappeared while the run read the source; "
                                 "nothing was stored; run again on a stable source folder")
        if _stat_id(path) != [f.size_bytes, f.mtime_ns, f.inode, f.ctime_ns]:
            raise InputFileError(f"{path}: the file changed while the run read it (size, time or inode "
                                 "differ from its fingerprint); nothing was stored; run again on a "
                                 "stable source folder")
    appeared = sorted(set(now) - {f.relpath for f in fingerprint.files})
    if appeared:
        raise InputFileError(f"{fingerprint.source_dir / appeared[0]}: the file appeared while the run "
                             "read the source; nothing was stored; run again on a stable source folder")


def _read_memo(path: Path | None) -> dict[str, Any]:
    if path is None or not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # a damaged memo only costs a re-hash
    return data if isinstance(data, dict) else {}


def _write_memo(path: Path, memo: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(memo, sort_keys=True))


def tree_fingerprint(roots: Iterable[Path], suffixes: tuple[str, ...]) -> str:
    """sha256 over the relative paths and bytes of every file under ``roots`` ending in one of
    ``suffixes`` (``__pycache__`` skipped): the code, SQL or templates a step runs."""
    h = hashlib.sha256()
    for root in roots:
        root = Path(root)
        if not root.exists():
            h.update(f"missing:{root.name}\n".encode())
            continue
        for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name.endswith(suffixes)):
            if "__pycache__" in path.parts:
                continue
            h.update(f"{root.name}/{path.relative_to(root).as_posix()}\n".encode())
            h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


_LOCAL_PACKAGES = ("pipeline", "schemas")


def _module_file(name: str) -> Path | None:
    """Source file of a ``pipeline``/``schemas`` module, found on disk without importing it
    (``importlib.util.find_spec`` would import the parent packages, e.g. statsmodels for
    ``pipeline.models.*``: seconds that a fully cached re-run should not pay)."""
    import pipeline
    import schemas

    roots = {"pipeline": Path(pipeline.__file__).parent, "schemas": Path(schemas.__file__).parent}
    parts = name.split(".")
    base = roots[parts[0]].joinpath(*parts[1:])
    for path in (base / "__init__.py", base.with_suffix(".py")):
        if path.is_file():
            return path
    return None


def module_closure(modules: Iterable[str]) -> list[Path]:
    """The source files of ``modules`` and of every ``pipeline``/``schemas`` module they import
    (also imports inside functions), with their packages' ``__init__`` files. Found by reading
    the files (ast), without importing them."""
    seen: dict[str, Path] = {}
    todo = list(modules)
    while todo:
        name = todo.pop()
        parts = name.split(".")
        if parts[0] not in _LOCAL_PACKAGES or name in seen:
            continue
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # parent packages run first
        path = _module_file(name)
        if path is None:
            continue
        seen[name] = path
        todo += _imported_names(name, path)
    return sorted(set(seen.values()))


@functools.cache
def _imported_names(name: str, path: Path) -> tuple[str, ...]:
    """Module names imported anywhere in ``path`` (module ``name``), parsed once per process:
    every step's key walks an overlapping closure, and parsing each file again for each step
    took ~2.5 s of a run that reused every step (issue 16)."""
    import ast

    parts = name.split(".")
    is_package = path.name == "__init__.py"
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                anchor = parts if is_package else parts[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.append(base)
            found += [f"{base}.{a.name}" for a in node.names]  # "from pkg import module"
    return tuple(found)


@functools.cache
def code_fingerprint(module: str) -> str:
    """sha256 of the code ``module`` runs (``module_closure``). Computed once per process:
    the code a process has loaded is what its outputs come from."""
    h = hashlib.sha256()
    for path in module_closure([module]):
        h.update(f"{path.parent.name}/{path.name}\n".encode())
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def resource_fingerprint(name: str) -> str:
    """The files of resource folder ``name`` ('sql', 'reports')."""
    from pipeline.resources import resource_dir

    try:
        root = resource_dir(name)
    except FileNotFoundError:
        return digest_json({"missing": name})
    return tree_fingerprint([root], (".sql", ".toml", ".j2", ".html", ".jinja", ".css", ".md"))


def concepts_fingerprint() -> str:
    """The concept definitions as parsed (comments in concepts.toml do not count)."""
    from pipeline.concepts import load_concepts

    return digest_json(load_concepts().raw)


def config_fingerprint(config: StudyConfig, sections: Iterable[str] | None = None) -> str:
    """The merged study settings, or only ``sections`` of them, as parsed."""
    settings = config.to_dict()
    if sections is not None:
        settings = {s: settings.get(s) for s in sections}
    return digest_json(settings)


def step_key(step: str, **parts: str) -> str:
    """The cache key of ``step``: sha256 over its name and the named fingerprints in ``parts``
    (upstream keys, config, code ...). Order of ``parts`` does not matter."""
    return digest_json({"step": step, **parts})


def ingest_key(source: SourceFingerprint, config: StudyConfig) -> str:
    return step_key(
        "ingest",
        source=source.key,
        config=config_fingerprint(config, INGEST_CONFIG_SECTIONS),
        concepts=concepts_fingerprint(),
        code=code_fingerprint("pipeline.ingest"),
        eicu=eicu_fingerprint(),
    )


def eicu_fingerprint() -> str:
    """What the eICU ingest reads besides its code: config/eicu.toml (as parsed) and the SQL of
    sql/sources/eicu/ (run inside the ingest, so not covered by the downstream 'sql' resource)."""
    import tomllib

    from pipeline import sources  # not pipeline.eicu: that imports the validation schemas

    raw = tomllib.loads(sources.default_eicu_config_path().read_text(encoding="utf-8"))
    return digest_json({"config": raw, "sql": tree_fingerprint([sources.eicu_sql_root()], (".sql", ".toml"))})


def downstream_key(step: str, upstream: Mapping[str, str], config: StudyConfig, module: str,
                   resources: Iterable[str] = ()) -> str:
    """Key of a step after the ingest: upstream step keys, the settings ``step`` reads (its view,
    ``config.for_step(step)``), concepts, the code of ``module`` (the step's entry point) and
    the named resource folders (e.g. ``("sql",)``)."""
    parts = {f"upstream_{name}": key for name, key in upstream.items()}
    parts.update({f"resource_{name}": resource_fingerprint(name) for name in resources})
    return step_key(
        step,
        config=config_fingerprint(config.for_step(step)),
        concepts=concepts_fingerprint(),
        code=code_fingerprint(module),
        **parts,
    )

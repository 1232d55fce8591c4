"""Run folders, the step store and the ``latest`` pointer (no Prefect here).

Layout under an output root (``vasoflow run --out ROOT``)::

    ROOT/runs/<kind>-<UTC time>-<random>/   one folder per run: every output of that run
    ROOT/latest -> runs/study-...           the last study run that succeeded (symlink)
    ROOT/latest-audit -> runs/audit-...     the last audit run that succeeded
    ROOT/.vasoflow/store/<step>/<key>/      each step's outputs, immutable, by cache key
    ROOT/.vasoflow/source-hashes.json       remembered source-file hashes (pipeline.fingerprint)
    ROOT/.vasoflow/lock                     held (shared) by every run in progress (``run_lock``)

A step runs in a scratch folder beside its store entry and is renamed into place only when it
succeeded, so a failed or killed step never leaves a half entry that a later run would reuse.
The files of a run folder are hard links to store entries (read-only: a result file is never
edited in place; every writer in vasoflow replaces files by rename). The pointer is swapped
atomically (rename of a new symlink over the old) only after a run succeeded: a failed or
killed run leaves ``latest`` and the folder it points to untouched.

A killed run can leave scratch folders (a partial DuckDB file of the ingest can be large) and a
run folder without a manifest. ``run_lock`` removes them when the next run starts, but only
when no other run under the same root is in progress: every run holds a shared ``flock`` on
``ROOT/.vasoflow/lock``; the cleanup needs the exclusive lock, so it never touches a scratch
folder of a live run. (The kernel drops a killed process's locks, so a kill -9 cannot leave
the root locked.)
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
import shutil
import stat
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pipeline.atomic import write_text_atomic
from pipeline.errors import VasoflowError

log = logging.getLogger("vasoflow")

COMPLETE_MARKER = "_step.json"
MANIFEST = "manifest.json"
RUN_KINDS = ("study", "audit")


@dataclass(frozen=True)
class Layout:
    """Where things live under an output root."""

    root: Path

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def store_dir(self) -> Path:
        return self.root / ".vasoflow" / "store"

    @property
    def source_memo(self) -> Path:
        return self.root / ".vasoflow" / "source-hashes.json"

    @property
    def lock_path(self) -> Path:
        return self.root / ".vasoflow" / "lock"

    def latest(self, kind: str = "study") -> Path:
        return self.root / ("latest" if kind == "study" else f"latest-{kind}")


@dataclass(frozen=True)
class StepEntry:
    """A step's outputs in the store: ``files`` are names inside ``path``."""

    step: str
    key: str
    path: Path
    files: tuple[str, ...]
    was_cached: bool  # this call found the entry already built
    seconds: float = 0.0  # time the step took when it was built
    built_at: str = ""  # UTC ISO time the entry was completed

    def reused_by(self, run_dir: Path) -> bool:
        """True when the entry existed before the run of ``run_dir`` started (also when an
        orchestrator's cache handed this entry back without calling the step)."""
        return self.built_at < run_started_at(run_dir)

    def file(self, name: str) -> Path:
        if name not in self.files:
            raise VasoflowError(f"{self.path}: step '{self.step}' produced no '{name}'")
        return self.path / name


def entry_path(store_dir: Path, step: str, key: str) -> Path:
    return Path(store_dir) / step / key


def is_complete(store_dir: Path, step: str, key: str) -> bool:
    """True when the store holds a finished entry for ``step`` under ``key``."""
    return (entry_path(store_dir, step, key) / COMPLETE_MARKER).is_file()


def _read_entry(path: Path, step: str, key: str, was_cached: bool) -> StepEntry:
    meta = json.loads((path / COMPLETE_MARKER).read_text())
    return StepEntry(step, key, path, tuple(meta["files"]), was_cached, float(meta.get("seconds", 0.0)),
                     str(meta.get("built_at", "")))


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another file system, or links not allowed: a copy is equivalent
        shutil.copyfile(src, dst)


def run_cached(
    store_dir: Path,
    step: str,
    key: str,
    produce: Callable[[Path], object],
    *,
    link_inputs: Mapping[str, Path] | None = None,
    copy_inputs: Mapping[str, Path] | None = None,
    discard: Iterable[str] = (),
) -> StepEntry:
    """Return the store entry of ``step`` under ``key``, building it with ``produce`` if absent.

    ``produce(work_dir)`` gets a scratch folder holding ``link_inputs`` (hard links, read-only:
    for files the step only reads) and ``copy_inputs`` (writable copies: for a DuckDB file the
    step adds relations to). Afterwards the entry keeps every file the step created or
    replaced, and the copied inputs unless named in ``discard``; untouched links are dropped.
    On failure the scratch folder is removed and nothing is stored.
    """
    target = entry_path(store_dir, step, key)
    if (target / COMPLETE_MARKER).is_file():
        return _read_entry(target, step, key, was_cached=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    work = target.with_name(f".{key}.building-{os.getpid()}-{secrets.token_hex(3)}")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    t0 = time.perf_counter()
    try:
        linked: dict[str, int] = {}
        for name, src in (link_inputs or {}).items():
            _link_or_copy(Path(src), work / name)
            linked[name] = (work / name).stat().st_ino
        for name, src in (copy_inputs or {}).items():
            shutil.copyfile(src, work / name)
        produce(work)
        for name in discard:
            (work / name).unlink(missing_ok=True)
        for name, inode in linked.items():
            path = work / name
            if path.exists() and path.stat().st_ino == inode:  # read, not replaced: not an output
                path.unlink()
        files = sorted(p.name for p in work.iterdir() if p.is_file() and not p.name.startswith("."))
        for p in work.iterdir():
            if p.name.startswith(".") or not p.is_file():  # stray temp files of the step
                shutil.rmtree(p) if p.is_dir() else p.unlink()
        for name in files:
            (work / name).chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        seconds = time.perf_counter() - t0
        built_at = _utc_stamp()
        (work / COMPLETE_MARKER).write_text(json.dumps(
            {"step": step, "key": key, "files": files, "seconds": round(seconds, 3), "built_at": built_at},
            indent=2))
        try:
            os.rename(work, target)
        except OSError:
            # Another run finished the same entry first: equal keys mean equal outputs.
            if not (target / COMPLETE_MARKER).is_file():
                raise
            _remove_tree(work)
            return _read_entry(target, step, key, was_cached=True)
    except BaseException:
        _remove_tree(work)
        raise
    return StepEntry(step, key, target, tuple(files), was_cached=False, seconds=seconds, built_at=built_at)


def _remove_tree(path: Path) -> None:
    """Remove a scratch folder. Its files may be read-only or hard links into other entries:
    never chmod them (a link shares its mode with the stored file); unlinking needs only the
    folder's write permission."""
    shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Run folders and the latest pointer
# --------------------------------------------------------------------------------------------

def _utc_stamp() -> str:
    """UTC time, microseconds, in a form that sorts as text and is safe in file names."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def run_started_at(run_dir: Path) -> str:
    """The start stamp in a run folder's name (``<kind>-<stamp>-<random>``)."""
    parts = Path(run_dir).name.split("-")
    if len(parts) != 3 or parts[0] not in RUN_KINDS:
        raise VasoflowError(f"{run_dir}: not a vasoflow run folder (expected <kind>-<time>-<id>)")
    return parts[1]


def new_run_dir(root: Path, kind: str = "study") -> Path:
    """Create ``root/runs/<kind>-<UTC time>-<random>`` (sortable by start time)."""
    if kind not in RUN_KINDS:
        raise VasoflowError(f"run kind must be one of {', '.join(RUN_KINDS)}, got {kind!r}")
    layout = Layout(Path(root))
    layout.runs_dir.mkdir(parents=True, exist_ok=True)
    stamp = _utc_stamp()
    run_dir = layout.runs_dir / f"{kind}-{stamp}-{secrets.token_hex(2)}"
    run_dir.mkdir()
    return run_dir


def materialise(entries: Iterable[StepEntry], run_dir: Path) -> dict[str, Path]:
    """Hard-link the files of ``entries`` into ``run_dir``; a later entry's file of the same
    name wins (e.g. the cohort step's database, which holds the ingest's tables and its own).
    Returns file name -> path in ``run_dir``."""
    chosen: dict[str, Path] = {}
    for entry in entries:
        for name in entry.files:
            chosen[name] = entry.path / name
    out: dict[str, Path] = {}
    for name, src in sorted(chosen.items()):
        dst = Path(run_dir) / name
        dst.unlink(missing_ok=True)
        _link_or_copy(src, dst)
        out[name] = dst
    return out


def write_manifest(run_dir: Path, payload: Mapping[str, object]) -> Path:
    """``run_dir/manifest.json``: what ran, with which keys, from what (written last)."""
    path = Path(run_dir) / MANIFEST
    return write_text_atomic(path, json.dumps(payload, indent=2, sort_keys=True, default=str))


def promote_latest(root: Path, run_dir: Path, kind: str = "study") -> Path:
    """Point ``root/latest`` (or ``latest-<kind>``) at ``run_dir``, atomically.

    A relative symlink is built beside the pointer and renamed over it, so readers see the old
    run or the new one, never a missing or half-written pointer.
    """
    layout = Layout(Path(root))
    pointer = layout.latest(kind)
    run_dir = Path(run_dir)
    if not (run_dir / MANIFEST).is_file():
        raise VasoflowError(f"{run_dir}: no {MANIFEST}; only a finished run can become '{pointer.name}'")
    if pointer.exists() and not pointer.is_symlink():
        raise VasoflowError(f"{pointer}: exists and is not a symlink; move it away so vasoflow can manage it")
    tmp = pointer.with_name(f".{pointer.name}.new-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    os.symlink(os.path.relpath(run_dir, pointer.parent), tmp)
    os.replace(tmp, pointer)
    return pointer


def read_latest(root: Path, kind: str = "study") -> Path | None:
    """The run folder ``latest`` points to, or None when there is none yet."""
    pointer = Layout(Path(root)).latest(kind)
    if not pointer.is_symlink():
        return None
    return pointer.resolve()


# --------------------------------------------------------------------------------------------
# One lock per output root; leftovers of killed runs
# --------------------------------------------------------------------------------------------

def find_leftovers(root: Path) -> list[Path]:
    """What killed runs leave under ``root``: scratch folders of steps (``.<key>.building-*``),
    run folders without a manifest, temporary pointer links and atomic-write temp files."""
    layout = Layout(Path(root))
    found: list[Path] = []
    if layout.store_dir.is_dir():
        found += sorted(p for p in layout.store_dir.glob("*/.*.building-*"))
    if layout.runs_dir.is_dir():
        found += sorted(p for p in layout.runs_dir.iterdir() if p.is_dir() and not (p / MANIFEST).is_file())
    found += sorted(layout.root.glob(".latest*.new-*"))
    found += sorted(layout.root.glob(".vasoflow/.*.tmp"))
    return found


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def remove_dead_builds(folder: Path, name: str) -> list[Path]:
    """Remove ``folder/.<name>.building-<pid>*`` left by processes that no longer run (a killed
    ``vasoflow ingest --db`` or default-data generation; these live outside any output root's
    lock, so the builder's process id tells whether one is still in progress)."""
    removed = []
    for path in Path(folder).glob(f".{name}.building-*"):
        pid = path.name.split(".building-", 1)[1].split("-", 1)[0].split(".", 1)[0]
        if not pid.isdigit() or _pid_alive(int(pid)):
            continue
        if path.is_dir() and not path.is_symlink():
            _remove_tree(path)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def _size_bytes(path: Path) -> int:
    if path.is_symlink() or path.is_file():
        return path.lstat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if not p.is_dir())


@contextlib.contextmanager
def run_lock(root: Path) -> Iterator[list[Path]]:
    """Hold the shared run lock of ``root`` for the body (a run). On entry, when no other run
    holds it, remove the leftovers of killed runs (``find_leftovers``); yields what was removed."""
    layout = Layout(Path(root))
    layout.lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(layout.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    removed: list[Path] = []
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # another run is in progress: its scratch folders are not leftovers
        else:
            leftovers = find_leftovers(layout.root)
            n_bytes = 0
            for path in leftovers:
                n_bytes += _size_bytes(path)
                if path.is_dir() and not path.is_symlink():
                    _remove_tree(path)
                else:
                    path.unlink(missing_ok=True)
            removed = leftovers
            if leftovers:
                log.info("removed %d leftover(s) of killed runs under %s (%.1f MB)",
                         len(leftovers), layout.root, n_bytes / 1e6)
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield removed
    finally:
        os.close(fd)

"""Errors a user can act on: the CLI prints them as one line, without a traceback."""

from __future__ import annotations

import os


class VasoflowError(Exception):
    """A problem with the user's input or environment, stated in one line.

    The message names what is wrong and where (file, column, rule), e.g.
    ``icu/inputevents.csv.gz: column 'rate': 412 values are not DOUBLE (e.g. 'abc' on line 7)``.
    """


class InputFileError(VasoflowError):
    """A source file is missing, unreadable, truncated or malformed."""


class ConfigError(VasoflowError):
    """The study or concept configuration is invalid."""


class ResourceError(VasoflowError):
    """Memory or disk space ran out: the message says which, and what was being done."""


def resource_exhausted(exc: BaseException, doing: str) -> ResourceError | None:
    """A ResourceError for ``exc`` when it means memory or disk space ran out, else None.

    Recognised: Python's MemoryError, DuckDB's OutOfMemoryException, and ENOSPC however it
    arrives (OSError errno 28, or the "No space left on device" text of DuckDB and polars)."""
    import errno

    text = str(exc)
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryException" \
            or "Out of Memory" in text:
        limit = os.environ.get("VASOFLOW_MEMORY_LIMIT")
        hint = (f"VASOFLOW_MEMORY_LIMIT is {limit}" if limit else "set VASOFLOW_MEMORY_LIMIT (e.g. 3GB) so "
                "DuckDB spills to disk, or free memory")
        return ResourceError(f"out of memory while {doing} ({hint}); earlier outputs (and 'latest') are unchanged")
    if (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or "No space left on device" in text:
        where = getattr(exc, "filename", None)
        return ResourceError(f"no space left on device while {doing}"
                             + (f" (writing {where})" if where else "")
                             + "; free disk space and run again; earlier outputs (and 'latest') are unchanged")
    return None

"""Errors a user can act on: the CLI prints them as one line, without a traceback."""

from __future__ import annotations


class VasoflowError(Exception):
    """A problem with the user's input or environment, stated in one line.

    The message names what is wrong and where (file, column, rule), e.g.
    ``icu/inputevents.csv.gz: column 'rate': 412 values are not DOUBLE (e.g. 'abc' on line 7)``.
    """


class InputFileError(VasoflowError):
    """A source file is missing, unreadable, truncated or malformed."""


class ConfigError(VasoflowError):
    """The study or concept configuration is invalid."""

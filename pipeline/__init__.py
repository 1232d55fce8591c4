"""vasoflow: vasopressin timing in septic shock, from MIMIC-IV-style files to a report.

The package holds plain, testable functions; `flows/` wraps them for Prefect and
`pipeline.cli` for the command line.
"""

__version__ = "0.1.0"

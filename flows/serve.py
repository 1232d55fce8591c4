"""`vasoflow serve`: a long-running local scheduler for both flows (Prefect ``serve``).

It registers two deployments on the configured Prefect server (``PREFECT_API_URL``; start one
with ``prefect server start``) and runs their scheduled and manual runs in this process:
the study weekly, the audit monthly. The same schedules are in prefect.yaml for work-pool
deployments (``tests/test_flows_unit.py`` checks the two agree). Commands: docs/scheduling.md.
"""

from __future__ import annotations

from pathlib import Path

from prefect import serve as prefect_serve
from prefect.schedules import Cron

from flows.study import audit_flow, study_flow

# Monday 06:00 (a fresh weekly extract is usually in by then) and the 1st of the month
# 07:00. Operational choices, not clinical constants; change them here and in prefect.yaml.
STUDY_CRON = "0 6 * * 1"
AUDIT_CRON = "0 7 1 * *"
# Deployment names differ from prefect.yaml's (``...-worker``): a `vasoflow serve` process and
# a work-pool worker on one server must not overwrite each other's deployment (schedule,
# time zone, paused state).
STUDY_DEPLOYMENT = "vasoflow-study-weekly-serve"
AUDIT_DEPLOYMENT = "vasoflow-audit-monthly-serve"


def deployments(out: Path, source: Path | None, config: Path | None, timezone: str = "UTC") -> list:
    """The two runner deployments with their cron schedules and parameters."""
    parameters = {"out": str(Path(out).resolve()),
                  "source": str(Path(source).resolve()) if source else None,
                  "config": str(Path(config).resolve()) if config else None}
    return [
        study_flow.to_deployment(name=STUDY_DEPLOYMENT, schedules=[Cron(STUDY_CRON, timezone=timezone)],
                                 parameters=parameters, tags=["vasoflow", "study"]),
        audit_flow.to_deployment(name=AUDIT_DEPLOYMENT, schedules=[Cron(AUDIT_CRON, timezone=timezone)],
                                 parameters=parameters, tags=["vasoflow", "audit"]),
    ]


def serve(out: Path, source: Path | None = None, config: Path | None = None, timezone: str = "UTC") -> None:
    """Register both deployments and run them until interrupted (Ctrl-C, or systemd stopping
    the service). The schedules stay active when this process stops (``pause_on_shutdown``
    False): a restart, a reboot or a deploy does not silently switch a hospital's monthly audit
    off; runs that fell due meanwhile show as Late and run when serve is back."""
    prefect_serve(*deployments(out, source, config, timezone), pause_on_shutdown=False)

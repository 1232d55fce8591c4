"""Failure notification for scheduled runs: one Prefect automation on the server.

``ensure_failure_alert("email/vasoflow-alerts")`` creates (or updates) the automation
``vasoflow-run-failed``: when a flow run of ``vasoflow-study`` or ``vasoflow-audit`` enters
Failed, Crashed or TimedOut, Prefect sends a notification through the named notification block
(e-mail, Slack, Teams, a webhook...; create the block first in the UI or with its Python class).
The server's automation service sends it, so a monthly audit that fails at 07:00 reaches
someone even though nobody is watching a terminal. Commands: docs/scheduling.md.
"""

from __future__ import annotations

from prefect import get_client
from prefect.automations import Automation
from prefect.events.actions import SendNotification
from prefect.events.schemas.automations import EventTrigger, Posture

from pipeline.errors import VasoflowError

AUTOMATION_NAME = "vasoflow-run-failed"
FLOW_NAMES = ("vasoflow-study", "vasoflow-audit")
FAILED_EVENTS = ("prefect.flow-run.Failed", "prefect.flow-run.Crashed", "prefect.flow-run.TimedOut")

# Jinja templates filled in by the server (Prefect automation templating).
SUBJECT = "vasoflow: {{ flow.name }} run {{ flow_run.name }} {{ flow_run.state.name }}"
BODY = (
    "The vasoflow run '{{ flow_run.name }}' (flow {{ flow.name }}) ended {{ flow_run.state.name }}:\n"
    "{{ flow_run.state.message }}\n\n"
    "Its logs: {{ flow_run|ui_url }}\n"
    "The last good outputs are untouched (OUT/latest); fix the cause and re-run, or wait for the next schedule."
)


def failure_automation(block_document_id) -> Automation:
    """The automation (not yet saved): reactive, fires on each failed run of either flow."""
    return Automation(
        name=AUTOMATION_NAME,
        description="Notify when a scheduled or manual vasoflow run fails (created by `vasoflow alert`).",
        enabled=True,
        trigger=EventTrigger(
            expect=set(FAILED_EVENTS),
            match={"prefect.resource.id": "prefect.flow-run.*"},
            match_related={"prefect.resource.role": "flow", "prefect.resource.name": list(FLOW_NAMES)},
            posture=Posture.Reactive,
            threshold=1,
        ),
        actions=[SendNotification(block_document_id=block_document_id, subject=SUBJECT, body=BODY)],
    )


def ensure_failure_alert(block: str) -> Automation:
    """Create or update ``vasoflow-run-failed`` to notify through ``block`` (``<block type
    slug>/<block name>``, e.g. ``slack-webhook/icu-qi``) on the configured Prefect server."""
    if block.count("/") != 1:
        raise VasoflowError(f"--block {block!r}: give '<block type>/<block name>', e.g. 'slack-webhook/icu-qi'")
    block_type, name = block.split("/")
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            document = client.read_block_document_by_name(name=name, block_type_slug=block_type)
        except ObjectNotFound:
            raise VasoflowError(f"--block {block!r}: no such block on the Prefect server "
                                f"(create it in the UI under Blocks, or with its Python class)") from None
        automation = failure_automation(document.id)
        existing = client.read_automations_by_name(AUTOMATION_NAME)
    if existing:
        automation.id = existing[0].id
        automation.update()
        return automation
    return automation.create()

"""Commands on waiting executions: send-event, provide-input, pending."""

from __future__ import annotations

from typing import Any

import click

from durable_celery.cli.instance import CliState, pass_state
from durable_celery.cli.output import emit_json, format_option, table
from durable_celery.cli.params import json_value
from durable_celery.models import PendingInput


@click.command("send-event")
@click.argument("execution_id", metavar="ID")
@click.argument("name")
@click.option("--payload", metavar="JSON", callback=json_value,
              help='the payload, any JSON value: --payload \'{"paid": true}\' (default: null)')
@pass_state
def send_event(state: CliState, execution_id: str, name: str, payload: Any) -> None:
    """Send event NAME to an execution. If it waits for NAME it resumes; otherwise the event is
    kept until it does (see `pending --events`)."""
    state.durable.send_event(execution_id, name, payload)
    click.echo(f"sent event {name} to {execution_id}")


@click.command("provide-input")
@click.argument("execution_id", metavar="ID")
@click.argument("name")
@click.option("--data", metavar="JSON", callback=json_value,
              help='the answer, any JSON value: --data \'"approved"\' or --data \'{"amount": 3}\' (default: null)')
@pass_state
def provide_input(state: CliState, execution_id: str, name: str, data: Any) -> None:
    """Answer the human-input request NAME of an execution (see `pending --inputs`).

    The answer is checked against the request's type, fields and choices; a bad one is refused
    (exit 2) and nothing is recorded. A request already answered is refused (exit 1).
    """
    state.durable.provide_input(execution_id, name, data)
    click.echo(f"provided input {name} to {execution_id}")


@click.command()
@click.option("--inputs", is_flag=True, help="human-input requests waiting for an answer")
@click.option("--events", is_flag=True, help="events and inputs sent but not yet consumed by a wait")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True,
              help="at most this many of each")
@format_option
@pass_state
def pending(state: CliState, inputs: bool, events: bool, limit: int, fmt: str) -> None:
    """What waits for someone: open input requests and kept events, oldest first (both unless
    --inputs or --events is given)."""
    if not inputs and not events:
        inputs = events = True
    durable = state.durable
    found: dict[str, list[Any]] = {}
    if inputs:
        found["inputs"] = durable.list_pending_inputs(status="pending", limit=limit)
    if events:
        found["events"] = durable.list_pending_events(limit=limit)
    if fmt == "json":
        emit_json(found)
        return
    sections = []
    if inputs:
        sections.append(_inputs_table(found["inputs"]))
    if events:
        sections.append(_events_table(found["events"]))
    click.echo("\n\n".join(sections))


def _inputs_table(requests: list[PendingInput]) -> str:
    if not requests:
        return "no pending inputs"
    return "pending inputs:\n" + table(
        ["ID", "INPUT", "TYPE", "STEP", "PROMPT", "CHOICES", "CREATED", "TIMEOUT"],
        [(r.workflow_id, r.input_name, r.type, r.step_name, r.prompt, r.choices, r.created_at, r.timeout_at)
         for r in requests],
    )


def _events_table(kept: list[dict[str, Any]]) -> str:
    if not kept:
        return "no pending events"
    return "pending events:\n" + table(
        ["ID", "KIND", "NAME", "PAYLOAD", "CREATED"],
        [(e["execution_id"], e["kind"], e["name"], e["payload"], e["created_at"]) for e in kept],
    )

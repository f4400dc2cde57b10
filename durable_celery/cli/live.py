"""``events``: live lifecycle events, one JSON object per line, as they happen."""

from __future__ import annotations

import json
from datetime import timedelta

import click

from durable_celery.cli.instance import CliState, pass_state
from durable_celery.cli.params import duration


@click.command()
@click.option("--execution", "execution_id", metavar="ID", help="only this execution's events (with its branches')")
@click.option("--workflow", metavar="NAME", help="only executions of this workflow")
@click.option("--kind", "kinds", metavar="KIND", multiple=True, help="only this kind of event (repeatable)")
@click.option("--timeout", metavar="DURATION", callback=duration,
              help="stop after this long without an event: 30s, 5m (default: never)")
@pass_state
def events(state: CliState, execution_id: str | None, workflow: str | None, kinds: tuple[str, ...],
           timeout: timedelta | None) -> None:
    """Follow lifecycle events as they happen, one JSON object per line (Ctrl-C to stop):
    executions started, steps started, completed, retrying or failed, waits and resumes,
    inputs, compensations, ends, schedules fired."""
    subscription = state.durable.subscribe(execution_id=execution_id, workflow=workflow, kinds=kinds or None,
                                           timeout=timeout)
    try:
        for event in subscription:
            click.echo(json.dumps(event.as_dict(), default=str))
    except KeyboardInterrupt:
        pass
    finally:
        subscription.close()

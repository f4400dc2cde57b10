"""Commands about workflow definitions: workflows."""

from __future__ import annotations

import click

from durable_celery.cli.instance import CliState, pass_state
from durable_celery.cli.output import emit_json, format_option, table


@click.command()
@format_option
@pass_state
def workflows(state: CliState, fmt: str) -> None:
    """The workflows registered on this Durable instance."""
    durable = state.durable
    found = durable.registry.workflows()
    rows = [{"name": w.name, "queue": w.queue or durable.settings.queue, "timeout": w.timeout,
             "schedule": w.schedule.expression if w.schedule else None} for w in found]
    if fmt == "json":
        emit_json(rows)
    elif not rows:
        click.echo("no workflows registered")
    else:
        click.echo(table(["NAME", "QUEUE", "TIMEOUT", "SCHEDULE"], [list(r.values()) for r in rows]))

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


@click.command()
@click.argument("workflow")
@click.option("--execution", "execution_id", default=None, help="Mark each node with this execution's state.")
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot", "json"]), default="mermaid", show_default=True)
@pass_state
def graph(state: CliState, workflow: str, execution_id: str | None, fmt: str) -> None:
    """A workflow's state machine as Mermaid, DOT or JSON."""
    drawn = state.durable.graph(workflow, execution_id)
    click.echo({"mermaid": drawn.to_mermaid, "dot": drawn.to_dot, "json": drawn.to_json}[fmt]())

"""Commands about workflow definitions: workflows, graph."""

from __future__ import annotations

import click

from durable_celery.cli.instance import CliState, pass_state
from durable_celery.cli.output import emit_json, format_option, table


@click.command()
@format_option
@pass_state
def workflows(state: CliState, fmt: str) -> None:
    """The workflows registered on this Durable instance, and any other seen among the
    executions, with their runs: total, running, waiting, failed, and the newest run."""
    durable = state.durable
    defined = {w.name: w for w in durable.registry.workflows()}
    rows = []
    for summary in durable.list_workflows():
        w = defined.get(summary.name)
        rows.append({"name": summary.name, "registered": summary.registered,
                     "queue": (w.queue or durable.settings.queue) if w else None, "timeout": w.timeout if w else None,
                     "schedule": w.schedule.expression if w and w.schedule else None,
                     "total_runs": summary.total_runs, "running": summary.running, "waiting": summary.waiting,
                     "failed": summary.failed, "last_run_at": summary.last_run_at, "last_status": summary.last_status})
    if fmt == "json":
        emit_json(rows)
    elif not rows:
        click.echo("no workflows registered")
    else:
        headers = ["NAME", "QUEUE", "TIMEOUT", "SCHEDULE", "RUNS", "RUNNING", "WAITING", "FAILED", "LAST RUN",
                   "LAST STATUS"]
        click.echo(table(headers, [[f"{r['name']}{'' if r['registered'] else ' (not registered)'}",
                                    *list(r.values())[2:]] for r in rows]))


@click.command()
@click.argument("workflow")
@click.option("--execution", "execution_id", default=None, help="Mark each node with this execution's state.")
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot", "json"]), default="mermaid", show_default=True)
@pass_state
def graph(state: CliState, workflow: str, execution_id: str | None, fmt: str) -> None:
    """A workflow's state machine as Mermaid, DOT or JSON."""
    drawn = state.durable.graph(workflow, execution_id)
    click.echo({"mermaid": drawn.to_mermaid, "dot": drawn.to_dot, "json": drawn.to_json}[fmt]())

"""Commands about workflow definitions: workflows, graph, plan."""

from __future__ import annotations

import click

from durable_celery.cli.instance import CliState, pass_state
from durable_celery.cli.output import emit_json, format_option, table, version_text
from durable_celery.models import PLAN_VERDICTS, DeployPlan


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


@click.command()
@click.option("--json", "as_json", is_flag=True, help="print the plan as JSON")
@pass_state
def plan(state: CliState, as_json: bool) -> None:
    """What deploying this code does to the in-flight executions: per workflow, how many stand
    on a state that is unchanged, changed (and how) or gone, or run on an old version kept
    registered. Exits 1 when the deploy would strand executions (docs/deploys.md)."""
    made = state.durable.plan()
    if as_json:
        emit_json(made.as_dict())
    else:
        click.echo(plan_text(made))
    if not made.ok:
        raise SystemExit(1)


def plan_text(made: DeployPlan) -> str:
    lines: list[str] = []
    for w in made.workflows:
        if not w.groups and len(w.versions) <= 1:
            continue  # nothing in flight, nothing kept: nothing to say
        counts = ", ".join(f"{w.counts[v]} {v}" for v in PLAN_VERDICTS if w.counts[v])
        current = version_text(w.current_version, w.current_label) if w.registered else "not registered"
        lines.append(f"{w.workflow} (deploying {current}): {counts or 'no executions in flight'}")
        for g in w.groups:
            mark = "STRANDED" if g.stranded else "ok"
            how = f" ({'; '.join(g.changes)})" if g.changes else ""
            lines.append(f"  {mark:8} {g.count:>7} on {g.state or '-'} of version "
                         f"{version_text(g.version, g.version_label)}: {g.verdict}{how}; e.g. {', '.join(g.examples)}")
        for v in w.unneeded_versions:
            lines.append(f"  note: no execution needs version {version_text(v.version, v.label)} any more "
                         "(it may be removed from the code)")
    verdict = ("ok: no execution would be stranded" if made.ok
               else f"NOT SAFE: {made.stranded} executions would be stranded")
    return "\n".join([*lines, verdict])

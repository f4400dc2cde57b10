"""Commands on cron schedules: schedules [list|enable|disable|trigger NAME]."""

from __future__ import annotations

from typing import Any

import click

from durable_celery.cli.instance import CliState, pass_state
from durable_celery.cli.output import details, emit_json, format_option, table
from durable_celery.cli.params import json_object
from durable_celery.models import Schedule


@click.group(invoke_without_command=True)
@format_option
@click.pass_context
def schedules(ctx: click.Context, fmt: str) -> None:
    """Cron schedules: list them (the default), enable, disable or trigger one."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_schedules, enabled=None, workflow=None, queue=None, limit=100, fmt=fmt)


@schedules.command("list")
@click.option("--enabled/--disabled", default=None, help="only enabled (or disabled) schedules")
@click.option("--workflow", metavar="NAME", help="only schedules of this workflow")
@click.option("--queue", help="only schedules on this queue")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True, help="at most this many")
@format_option
@pass_state
def list_schedules(state: CliState, enabled: bool | None, workflow: str | None, queue: str | None, limit: int,
                   fmt: str) -> None:
    """Schedules, by name."""
    found = state.durable.list_schedules(enabled=enabled, workflow=workflow, queue=queue, limit=limit)
    if fmt == "json":
        emit_json(found)
        return
    if not found:
        click.echo("no schedules")
        return
    click.echo(table(
        ["NAME", "WORKFLOW", "CRON", "TIMEZONE", "ENABLED", "NEXT RUN", "LAST RUN", "FAILURES", "LAST ERROR"],
        [(s.name, s.workflow, s.cron, s.timezone, "yes" if s.enabled else "no", s.next_run_at, s.last_run_at,
          s.consecutive_failures or None, s.last_error) for s in found],
    ))


def _show(schedule: Schedule, fmt: str) -> None:
    if fmt == "json":
        emit_json(schedule)
        return
    s = schedule
    click.echo(details([("name", s.name), ("workflow", s.workflow), ("cron", s.cron), ("timezone", s.timezone),
                        ("enabled", "yes" if s.enabled else "no"), ("next run", s.next_run_at),
                        ("last run", s.last_run_at)]))


@schedules.command()
@click.argument("name")
@format_option
@pass_state
def enable(state: CliState, name: str, fmt: str) -> None:
    """Enable a schedule; its next run is its next time from now."""
    _show(state.durable.enable_schedule(name), fmt)


@schedules.command()
@click.argument("name")
@format_option
@pass_state
def disable(state: CliState, name: str, fmt: str) -> None:
    """Disable a schedule: beat starts no run of it until it is enabled."""
    _show(state.durable.disable_schedule(name), fmt)


@schedules.command()
@click.argument("name")
@click.option("--input", "input_", callback=json_object, metavar="JSON",
              help="the run's input (default: the schedule's), a JSON object")
@pass_state
def trigger(state: CliState, name: str, input_: dict[str, Any] | None) -> None:
    """Start a run of a schedule now; prints the new execution's id."""
    click.echo(state.durable.trigger_schedule(name, input=input_))

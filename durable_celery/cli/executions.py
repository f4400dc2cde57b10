"""Commands on executions: status, list, show, run, cancel, retry."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone
from typing import Any

import click

from durable_celery.cli.instance import CliState, pass_state
from durable_celery.cli.output import (
    cell,
    details,
    duration_text,
    emit_json,
    error_text,
    format_option,
    table,
    version_text,
)
from durable_celery.cli.params import duration, json_object
from durable_celery.engine.statuses import ExecutionStatus
from durable_celery.models import Execution, StepRecord

STATUSES = [s.value for s in ExecutionStatus]


@click.command()
@format_option
@pass_state
def status(state: CliState, fmt: str) -> None:
    """How many executions are in each status, the controlled queues (running, waiting, paused)
    and the schedules (how many enabled, the next due)."""
    counts = state.durable.count_by_status()
    scheduled = state.durable.schedule_summary()
    controlled = [q for q in state.durable.list_queues() if q.controlled]
    if fmt == "json":
        emit_json({"counts": counts, "total": sum(counts.values()), "schedules": scheduled,
                   "queues": [dataclasses.asdict(q) for q in controlled]})
        return
    rows = [*counts.items(), ("total", sum(counts.values()))]
    click.echo(table(["STATUS", "COUNT"], rows))
    if controlled:
        click.echo("\n" + table(["QUEUE", "RUNNING", "RUNNABLE", "WAITING", "CONCURRENCY", "PAUSED"],
                                [(q.name, q.running, q.runnable, q.waiting, q.concurrency, "yes" if q.paused else "no")
                                 for q in controlled]))
    if scheduled["total"]:
        click.echo("\n" + table(["SCHEDULES", "ENABLED", "NEXT DUE"],
                                [(scheduled["total"], scheduled["enabled"], scheduled["next_run_at"])]))


@click.command("list")
@click.option("--status", type=click.Choice(STATUSES), help="only executions in this status")
@click.option("--workflow", metavar="NAME", help="only executions of this workflow")
@click.option("--queue", help="only executions on this queue")
@click.option("--step", "current_step", metavar="NAME", help="only executions standing on this step")
@click.option("--since", metavar="DURATION", callback=duration,
              help="only executions created this long ago or later: 90s, 30m, 1h, 2d, 1w")
@click.option("--limit", type=click.IntRange(min=1, max=1000), default=50, show_default=True,
              help="at most this many")
@click.option("--cursor", help="the page after the one that printed this cursor")
@format_option
@pass_state
def list_executions(state: CliState, status: str | None, workflow: str | None, queue: str | None,
                    current_step: str | None, since: timedelta | None, limit: int, cursor: str | None,
                    fmt: str) -> None:
    """Executions, newest first; a full page ends with the --cursor of the next."""
    after = datetime.now(timezone.utc) - since if since is not None else None
    page = state.durable.page_executions(workflow=workflow, status=status, queue=queue, current_step=current_step,
                                         created_after=after, limit=limit, cursor=cursor)
    found = page.items
    if fmt == "json":
        emit_json(found)
        return
    if not found:
        click.echo("no executions")
        return
    click.echo(table(
        ["ID", "WORKFLOW", "STATUS", "STEP", "QUEUE", "CREATED", "COMPLETED", "VERSION"],
        [(e.id, e.workflow, e.status, e.current_step, e.queue, e.created_at, e.completed_at,
          version_text(e.version, e.version_label)) for e in found],
    ))
    if page.next_cursor:
        click.echo(f"\nmore: --cursor {page.next_cursor}")


@click.command()
@click.argument("execution_id", metavar="ID")
@click.option("--logs", is_flag=True, help="also show what each step attempt logged and printed")
@format_option
@pass_state
def show(state: CliState, execution_id: str, logs: bool, fmt: str) -> None:
    """One execution and its step attempts."""
    execution = state.durable.get_execution(execution_id, include_steps=True, include_logs=logs)
    if fmt == "json":
        emit_json(execution)
        return
    children = state.durable.list_children(execution_id) if execution.children else []
    click.echo(_describe(execution, logs, children, state.durable.why(execution_id)))


def _describe(execution: Execution, logs: bool, children: list[Execution], why: str | None) -> str:
    e = execution
    parts = [details([
        ("id", e.id), ("workflow", e.workflow), ("status", e.status), *([("why", why)] if why else []),
        ("current step", e.current_step), ("version", version_text(e.version, e.version_label)),
        ("queue", e.queue), ("priority", e.priority), ("parent", e.parent_id), ("created", e.created_at),
        ("scheduled", e.scheduled_at), ("started", e.started_at), ("completed", e.completed_at),
        ("input", e.input), ("context", e.context), ("error", error_text(e.error)),
    ])]
    if children:
        parts.append(table(["CHILD WORKFLOW", "ID", "STATUS", "CREATED"],
                           [(c.workflow, c.id, c.status, c.created_at) for c in children]))
    if e.compensation_results:
        parts.append(table(["COMPENSATION", "FOR STEP", "STATUS", "ERROR"],
                           [(c.get("compensation"), c.get("step"), c.get("status"), error_text(c.get("error")))
                            for c in e.compensation_results]))
    if not e.steps:
        parts.append("no step attempts yet")
        return "\n\n".join(parts)
    attempts = [s for s in e.steps if s.migration is None]
    parts.append(table(
        ["STEP", "ATTEMPT", "STATUS", "STARTED", "DURATION", "ERROR"],
        [(s.step_name + (" (compensation)" if s.is_compensation else ""), s.attempt, s.status, s.started_at,
          duration_text(s.duration_ms), error_text(s.error)) for s in attempts],
    ))
    moves = [migrated_text(s) for s in e.steps if s.migration is not None]
    if moves:
        parts.append("\n".join(moves))
    if logs:
        parts.extend(_attempt_logs(s) for s in attempts)
    return "\n\n".join(parts)


def migrated_text(record: StepRecord) -> str:
    """One migration of the execution's history: "migrated from X@v1 to Y@v2 at <time>"."""
    m = record.migration or {}
    how = ", re-opened" if m.get("reopened") else ""
    how += ", step restarted" if m.get("restarted") else ""
    return (f"migrated from {m.get('from')}@{m.get('from_version')} to {m.get('to')}@{m.get('to_version')} "
            f"at {cell(record.completed_at)}{how}")


def _attempt_logs(attempt: StepRecord) -> str:
    """What one attempt logged and printed, then its traceback if it failed."""
    lines = [f"logs of {attempt.step_name} (attempt {attempt.attempt}):"]
    lines += [f"  {entry.get('at', '')} {entry.get('level', '')} {entry.get('logger', '')}: {entry.get('message', '')}"
              for entry in attempt.logs or []]
    if len(lines) == 1:
        lines.append("  (nothing)")
    traceback = (attempt.error or {}).get("traceback")
    if traceback:
        lines += ["  traceback:", *(f"    {line}" for line in str(traceback).rstrip().splitlines())]
    return "\n".join(lines)


@click.command()
@click.argument("workflow")
@click.option("--input", "input_", metavar="JSON", callback=json_object,
              help='the input, a JSON object: --input \'{"id": 1}\'')
@click.option("--queue", help="the Celery queue to run it on (default: the workflow's or the engine's)")
@click.option("--start-deadline", "start_deadline", metavar="DURATION", callback=duration,
              help="cancel it if its first step has not begun within this long (30s, 10m, 12h, 2d)")
@pass_state
def run(state: CliState, workflow: str, input_: dict[str, Any] | None, queue: str | None,
        start_deadline: timedelta | None) -> None:
    """Start WORKFLOW and print the new execution's id."""
    click.echo(state.durable.start(workflow, input_, queue=queue, start_deadline=start_deadline))


@click.command()
@click.argument("execution_id", metavar="ID")
@click.option("--reason", help="recorded as the execution's error message")
@pass_state
def cancel(state: CliState, execution_id: str, reason: str | None) -> None:
    """Cancel an active execution (and its active children)."""
    state.durable.cancel(execution_id, reason=reason)
    click.echo(f"cancelled {execution_id}")


@click.command()
@click.argument("execution_id", metavar="ID")
@pass_state
def retry(state: CliState, execution_id: str) -> None:
    """Start a failed, cancelled or compensated execution again; prints the new id."""
    click.echo(state.durable.retry(execution_id))

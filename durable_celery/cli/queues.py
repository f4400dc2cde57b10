"""Commands about queues: ``queues [list|pause|resume NAME]`` (docs/queues.md)."""

from __future__ import annotations

import dataclasses

import click

from durable_celery.cli.errors import InputError
from durable_celery.cli.instance import CliState, pass_state
from durable_celery.cli.output import emit_json, format_option, table
from durable_celery.models import QueueStats

ACTIONS = ("list", "pause", "resume")


@click.command()
@click.argument("action", type=click.Choice(ACTIONS), default="list")
@click.argument("name", required=False)
@format_option
@pass_state
def queues(state: CliState, action: str, name: str | None, fmt: str) -> None:
    """The engine's queues with their limits and counts; pause or resume a controlled queue.

    \b
    queues [list]        every queue: running, runnable, waiting, limits, paused
    queues list NAME     one queue
    queues pause NAME    no new step of NAME starts on any worker (running ones finish)
    queues resume NAME   steps start again; those that waited are dispatched
    """
    durable = state.durable
    if action in ("pause", "resume"):
        if name is None:
            raise InputError(f"queues {action} needs the queue's NAME")
        (durable.pause_queue if action == "pause" else durable.resume_queue)(name)
        found = [durable.queue_stats(name)]
    else:
        found = [durable.queue_stats(name)] if name is not None else durable.list_queues()
    if fmt == "json":
        emit_json([dataclasses.asdict(q) for q in found] if action == "list" and name is None else
                  dataclasses.asdict(found[0]))
        return
    if action != "list":
        click.echo(f"queue {name} {'paused' if action == 'pause' else 'resumed'}")
    click.echo(table(["QUEUE", "RUNNING", "RUNNABLE", "WAITING", "CONCURRENCY", "PER KEY", "RATE", "PAUSED"],
                     [_row(q) for q in found]))


def _row(q: QueueStats) -> list[object]:
    per_key = None
    if q.per_key is not None:
        per_key = ", ".join(part for part in (f"{q.per_key}: {q.key_concurrency}" if q.key_concurrency else q.per_key,
                                               q.key_rate) if part)
    rate = f"{q.rate} ({q.rate_used} used)" if q.rate else None
    paused = "yes" if q.paused else "no" if q.controlled else "-"
    return [q.name, q.running, q.runnable, q.waiting, q.concurrency, per_key, rate, paused]

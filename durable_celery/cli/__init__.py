"""``celery -A proj durable ...``: a thin command line over the Durable client API.

Celery 5 loads click commands from the ``celery.commands`` entry-point group (see
pyproject.toml), so this group works wherever ``celery -A proj`` does. Each command parses its
arguments, calls the Durable instance built on the ``-A`` app (see ``instance.py``) and renders
the result (``output.py``); failures become one-line errors (``errors.py``).
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from durable_celery.cli.dashboard import dashboard
from durable_celery.cli.errors import InputError, reported_errors
from durable_celery.cli.executions import cancel, list_executions, retry, run, show, status
from durable_celery.cli.instance import CliState
from durable_celery.cli.live import events
from durable_celery.cli.maintenance import cleanup, doctor, migrate
from durable_celery.cli.metrics import metrics
from durable_celery.cli.moves import migrate_executions
from durable_celery.cli.queues import queues
from durable_celery.cli.schedules import schedules
from durable_celery.cli.waits import pending, provide_input, send_event
from durable_celery.cli.workflows import graph, plan, workflows


class DurableGroup(click.Group):
    """Runs every sub-command under :func:`reported_errors`."""

    def invoke(self, ctx: click.Context) -> Any:
        with reported_errors():
            return super().invoke(ctx)


@click.group(cls=DurableGroup)
@click.option("--instance", metavar="PREFIX",
              help="the Durable instance to use, by its prefix, when the app has several")
@click.pass_context
def durable(ctx: click.Context, instance: str | None) -> None:
    """Inspect and operate durable workflows: celery -A proj durable COMMAND.

    Exit codes: 0 success, 1 the command could not be carried out, 2 bad input.
    """
    app = getattr(ctx.obj, "app", None)
    if app is None:
        raise InputError("run this as a Celery sub-command: celery -A proj durable ...")
    state = CliState(app=app, app_arg=_app_arg(ctx), instance=instance)
    ctx.obj = state
    ctx.call_on_close(state.close)


def _app_arg(ctx: click.Context) -> str | None:
    """The ``-A`` argument as the user typed it, for the hints we print. Celery 5.3+ hands it
    over as typed; 5.2 hands over the app it loaded, so there we read it from the command line
    (or Celery's ``APP`` variable). Remove the fallback with Celery 5.2."""
    value = ctx.find_root().params.get("app")
    if isinstance(value, str):
        return value
    args = sys.argv[1:]
    for i, arg in enumerate(args[:args.index("durable") if "durable" in args else len(args)]):
        if arg in ("-A", "--app") and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--app="):
            return arg.removeprefix("--app=")
        if arg.startswith("-A") and not arg.startswith("--"):
            return arg[2:]
    return os.environ.get("APP")


for command in (status, list_executions, show, run, cancel, retry, pending, send_event, provide_input, workflows, graph,
                migrate, migrate_executions, schedules, queues, metrics, events, cleanup, doctor, plan, dashboard):
    durable.add_command(command)

__all__ = ["durable", "DurableGroup"]

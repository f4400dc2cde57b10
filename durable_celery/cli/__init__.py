"""``celery -A proj durable ...``: a thin command line over the Durable client API.

Celery 5 loads click commands from the ``celery.commands`` entry-point group (see
pyproject.toml), so this group works wherever ``celery -A proj`` does. Each command parses its
arguments, calls the Durable instance built on the ``-A`` app (see ``instance.py``) and renders
the result (``output.py``); failures become one-line errors (``errors.py``).
"""

from __future__ import annotations

from typing import Any

import click

from durable_celery.cli.errors import InputError, reported_errors
from durable_celery.cli.executions import cancel, list_executions, retry, run, show, status
from durable_celery.cli.instance import CliState
from durable_celery.cli.maintenance import migrate
from durable_celery.cli.waits import pending, provide_input, send_event
from durable_celery.cli.workflows import graph, workflows


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
    app_arg = ctx.find_root().params.get("app")
    state = CliState(app=app, app_arg=app_arg if isinstance(app_arg, str) else None, instance=instance)
    ctx.obj = state
    ctx.call_on_close(state.close)


for command in (status, list_executions, show, run, cancel, retry, pending, send_event, provide_input, workflows, graph,
                migrate):
    durable.add_command(command)

__all__ = ["durable", "DurableGroup"]

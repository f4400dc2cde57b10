"""``celery -A proj durable ...``: a thin command line over the Durable client API.

Celery 5 loads click commands from the ``celery.commands`` entry-point group (see
pyproject.toml), so this group works wherever ``celery -A proj`` does. Each command parses its
arguments, calls one Durable method and renders the result; the rules live in the library.

Errors never show a traceback: what the user typed wrong (a bad id, JSON or option, an unknown
workflow) exits with 2, anything else that stops a command (a refused call, an out-of-date
schema, an unreachable database) with 1, each as one ``Error: ...`` line on stderr.
"""

from __future__ import annotations

from typing import Any

import click
from alembic.util.exc import CommandError as AlembicError
from sqlalchemy.exc import DBAPIError, OperationalError

from durable_celery.cli.executions import cancel, list_executions, retry, run, show, status
from durable_celery.cli.instance import CliState
from durable_celery.cli.maintenance import migrate
from durable_celery.cli.workflows import workflows
from durable_celery.errors import DurableError, ExecutionNotFound, InvalidInput, WorkflowNotFound

#: Errors that mean "what you typed is wrong" (exit 2, like click's own usage errors).
INPUT_ERRORS = (ExecutionNotFound, WorkflowNotFound, InvalidInput)


class InputError(click.ClickException):
    """A one-line error about the command's input, exiting with 2."""

    exit_code = 2


class DurableGroup(click.Group):
    """Turns library and database errors of every sub-command into one-line click errors."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except INPUT_ERRORS as exc:
            raise InputError(str(exc)) from None
        except DurableError as exc:
            raise click.ClickException(str(exc)) from None
        except OperationalError as exc:
            raise click.ClickException(f"cannot reach the database: {_first_line(exc.orig)}") from None
        except DBAPIError as exc:
            raise click.ClickException(f"database error: {_first_line(exc.orig)}") from None
        except AlembicError as exc:
            raise click.ClickException(f"migration failed: {exc}") from None


def _first_line(error: BaseException | None) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


@click.group(cls=DurableGroup)
@click.option("--instance", metavar="PREFIX",
              help="the Durable instance to use, by its prefix, when the app has several")
@click.pass_context
def durable(ctx: click.Context, instance: str | None) -> None:
    """Inspect and operate durable workflows: celery -A proj durable COMMAND."""
    app = getattr(ctx.obj, "app", None)
    if app is None:
        raise click.UsageError("run this as a Celery sub-command: celery -A proj durable ...")
    state = CliState(app=app, instance=instance)
    ctx.obj = state
    ctx.call_on_close(state.close)


for command in (status, list_executions, show, run, cancel, retry, workflows, migrate):
    durable.add_command(command)

__all__ = ["durable", "DurableGroup", "InputError"]

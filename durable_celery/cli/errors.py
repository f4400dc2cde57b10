"""How failures reach the terminal: one ``Error: ...`` line on stderr, never a traceback.

What the user typed wrong (a bad id, JSON or option, an unknown workflow or instance) exits with
2, like click's own usage errors; anything else that stops a command (a refused call, an
out-of-date schema, an unreachable database) exits with 1.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click
from alembic.util.exc import CommandError as AlembicError
from sqlalchemy.exc import DBAPIError, OperationalError

from durable_celery.errors import (
    DatabaseUnavailable,
    DurableError,
    ExecutionNotFound,
    InvalidInput,
    QueueNotFound,
    ScheduleNotFound,
    WorkflowNotFound,
)

#: Library errors that mean "what you typed is wrong".
INPUT_ERRORS = (ExecutionNotFound, WorkflowNotFound, ScheduleNotFound, QueueNotFound, InvalidInput)


class InputError(click.ClickException):
    """A one-line error about the command's input, exiting with 2."""

    exit_code = 2


@contextmanager
def reported_errors() -> Iterator[None]:
    """Turn library and database errors into click errors, which click prints in one line."""
    try:
        yield
    except INPUT_ERRORS as exc:
        raise InputError(str(exc)) from None
    except DatabaseUnavailable as exc:
        raise click.ClickException(f"cannot reach the database at {exc.url}: {exc.detail}") from None
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

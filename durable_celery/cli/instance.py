"""Which Durable instance a command talks to.

Celery hands a sub-command only the app of ``-A proj`` (``ctx.obj.app``). The Durable instance
is whatever the user attached to that app, usually a module-level ``durable = Durable(app, ...)``
next to it, or a ``durable.init_app(app)`` in an app factory; by the time a sub-command runs,
Celery has imported that module. Every Durable is listed on its app when attached, so we ask
the app for them (``instances_on``); if none is attached yet, we let Celery import the app's
configured modules (``imports``/``include``) as a worker would, and ask again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import click

from durable_celery.attachment import instances_on
from durable_celery.cli.errors import InputError
from durable_celery.durable import Durable


@dataclass
class CliState:
    """What every ``durable`` sub-command gets: the Celery app (and the ``-A`` argument that
    named it) and, found on first use, its Durable instance."""

    app: Any
    app_arg: str | None = None
    instance: str | None = None
    _durable: Durable | None = field(default=None, repr=False)

    @property
    def durable(self) -> Durable:
        if self._durable is None:
            self._durable = find_durable(self.app, self.instance, self.app_arg)
        return self._durable

    def command(self, line: str) -> str:
        """A hint the user can paste: ``celery -A <their app> durable <line>``."""
        return f"celery -A {self.app_arg or 'proj'} durable {line}"

    def close(self) -> None:
        if self._durable is not None:
            self._durable.db.dispose()


pass_state = click.make_pass_decorator(CliState)


def find_durable(app: Any, prefix: str | None = None, app_arg: str | None = None) -> Durable:
    """The Durable instance built on ``app`` (the one with that ``prefix`` if given).

    Raises:
        InputError: none is built, several are and no ``prefix`` is given, or none has ``prefix``.
    """
    found = instances_on(app)
    if not found:
        app.loader.import_default_modules()
        found = instances_on(app)
    if not found:
        if app_arg is None:
            raise InputError("no Durable instance found: name the module that builds it with -A, "
                             "as in `celery -A proj durable ...`")
        raise InputError(f"no Durable instance uses the Celery app of {app_arg!r}: build one when that "
                         "module is imported (e.g. `durable = Durable(app, database_url=...)`)")
    prefixes = ", ".join(sorted(d.settings.prefix for d in found))
    if prefix is not None:
        found = [d for d in found if d.settings.prefix == prefix]
        if not found:
            raise InputError(f"no Durable instance on this app has the prefix {prefix!r} (known: {prefixes})")
    if len(found) > 1:
        raise InputError(f"{len(found)} Durable instances use this app; choose one with "
                         f"`durable --instance PREFIX ...` (one of: {prefixes})")
    return found[0]


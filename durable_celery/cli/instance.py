"""Which Durable instance a command talks to.

Celery hands a sub-command only the app of ``-A proj`` (``ctx.obj.app``). The Durable instance
is whatever the user built on that app, usually a module-level ``durable = Durable(app, ...)``
next to it; by the time a sub-command runs, Celery has imported that module. So we look through
the loaded modules for module-level Durable instances whose ``.app`` is that app; if none is
loaded yet, we let Celery import the app's configured modules (``imports``/``include``) as a
worker would, and look again.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import click

from durable_celery.durable import Durable


@dataclass
class CliState:
    """What every ``durable`` sub-command gets: the Celery app and, found on first use, its
    Durable instance (``--instance`` picks one by prefix when the app has several)."""

    app: Any
    instance: str | None = None
    _durable: Durable | None = field(default=None, repr=False)

    @property
    def durable(self) -> Durable:
        if self._durable is None:
            self._durable = find_durable(self.app, self.instance)
        return self._durable

    def close(self) -> None:
        if self._durable is not None:
            self._durable.db.dispose()


pass_state = click.make_pass_decorator(CliState)


def find_durable(app: Any, prefix: str | None = None) -> Durable:
    """The Durable instance built on ``app`` (the one with that ``prefix`` if given).

    Raises:
        click.ClickException: none is loaded. click.UsageError: several and no ``prefix``, or
        none with that ``prefix``.
    """
    found = loaded_instances(app)
    if not found:
        app.loader.import_default_modules()
        found = loaded_instances(app)
    name = getattr(app, "main", None) or repr(app)
    if not found:
        raise click.ClickException(
            f"no Durable instance uses the Celery app {name!r}: build one at module level in the module "
            "given to -A (e.g. `durable = Durable(app, database_url=...)`)"
        )
    if prefix is not None:
        found = [d for d in found if d.settings.prefix == prefix]
        if not found:
            known = ", ".join(sorted(d.settings.prefix for d in loaded_instances(app)))
            raise click.UsageError(f"no Durable instance on app {name!r} has the prefix {prefix!r} (known: {known})")
    if len(found) > 1:
        known = ", ".join(sorted(d.settings.prefix for d in found))
        raise click.UsageError(f"{len(found)} Durable instances use the app {name!r}; "
                               f"choose one with --instance PREFIX (one of: {known})")
    return found[0]


def loaded_instances(app: Any) -> list[Durable]:
    """Module-level Durable instances on ``app`` in every loaded module, each once."""
    seen: dict[int, Durable] = {}
    for module in list(sys.modules.values()):
        # type() rather than isinstance(): isinstance consults __class__, which lazy proxies
        # (celery.local.Proxy and the like) evaluate.
        if not issubclass(type(module), ModuleType):
            continue
        for value in list(vars(module).values()):
            if issubclass(type(value), Durable) and value.app is app:
                seen.setdefault(id(value), value)
    return list(seen.values())

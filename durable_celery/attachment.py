"""Which Durable instance is attached to which Celery app.

The rules (``Durable.init_app`` documents them for users):

- An instance is attached to one app at a time. Attaching it to the app it is on does nothing,
  so an app factory may call ``init_app`` every time it runs. Attaching it to another app moves
  it: it is installed on the new app first, then its worker and beat handlers are taken off the
  old one, and the old app no longer lists it (its two task objects stay, unused: Celery has no
  public way to withdraw a task). This is what a factory that builds a new Celery app per test
  module needs: one module-level instance, following the newest app, with one set of handlers.
- Two instances with the same prefix are never attached to one app: they would share one pair
  of task names, and Celery keeps the first task of a name and silently ignores the second.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

from celery import Celery

from durable_celery.errors import InvalidInput
from durable_celery.runtime.install import Installation
from durable_celery.runtime.runner import Runner
from durable_celery.runtime.services import Services

if TYPE_CHECKING:
    from durable_celery.durable import Durable

# Which Durable instances each app carries (for the CLI, which is handed only the app).
_INSTANCES: WeakKeyDictionary[Celery, list[Durable]] = WeakKeyDictionary()
# attach() reads _INSTANCES and then changes it: one attach at a time.
_LOCK = threading.Lock()


@dataclass(frozen=True)
class Attachment:
    """What an instance holds while attached to an app: the parts that publish through the app,
    and what ``install`` put on it."""

    app: Celery
    services: Services
    runner: Runner
    installation: Installation


def instances_on(app: Celery) -> list[Durable]:
    """The Durable instances attached to ``app``, oldest first."""
    return list(_INSTANCES.get(app, ()))


def apps_with_instances() -> list[Celery]:
    """The Celery apps of this process that carry a Durable instance."""
    return [app for app, attached in list(_INSTANCES.items()) if attached]


def attach(durable: Durable, app: Celery, current: Attachment | None,
           build: Callable[[], Attachment]) -> Attachment:
    """Attach ``durable`` to ``app`` (``build`` installs it there) and detach it from the app of
    ``current``; returns ``current`` itself if that is already ``app``.

    Raises:
        InvalidInput: another instance with the same prefix is attached to ``app``.
    """
    with _LOCK:
        if current is not None and current.app is app:
            return current
        prefix = durable.settings.prefix
        if any(other.settings.prefix == prefix for other in _INSTANCES.get(app, ()) if other is not durable):
            raise InvalidInput(
                f"another Durable instance with prefix {prefix!r} is attached to the Celery app {app.main!r}; "
                f"both would answer to the tasks {durable.step_task_name!r} and {durable.tick_task_name!r}. "
                "Build one instance and call its init_app(app) (repeating it does nothing), or give each "
                "instance its own prefix="
            )
        attachment = build()  # first: if installing fails, the instance stays where it was
        if current is not None:
            _remove(durable, current)
        _INSTANCES.setdefault(app, []).append(durable)
        return attachment


def detach(durable: Durable, current: Attachment) -> None:
    """Take ``durable`` off the app of ``current``: its worker and beat handlers are
    disconnected and the app no longer lists it (the test runner's ``close``, so that an app
    built for one test is not kept alive by the signals and this registry)."""
    with _LOCK:
        _remove(durable, current)


def _remove(durable: Durable, current: Attachment) -> None:
    current.installation.remove()
    others = [d for d in _INSTANCES.get(current.app, ()) if d is not durable]
    if others:
        _INSTANCES[current.app] = others
    else:
        _INSTANCES.pop(current.app, None)


def task_packages(app: Celery) -> list[str]:
    """The packages an app's tasks come from, for ``Durable.autodiscover_workflows()``.

    Celery first imports the app's task modules as a worker does at boot (its ``imports`` and
    ``include`` settings, and what ``app.autodiscover_tasks`` names). Then every module in
    those settings and every module that defines one of the app's tasks (a plugin's too) names
    its package, and itself if it is a package. Celery's and durable-celery's own are left out.
    """
    app.loader.import_default_modules()
    modules = [*app.loader.default_modules, *(task.__module__ for task in app.tasks.values())]
    packages: dict[str, None] = {}
    for name in modules:
        if not isinstance(name, str) or name.partition(".")[0] in ("celery", "durable_celery", "__main__"):
            continue
        if hasattr(sys.modules.get(name), "__path__"):
            packages[name] = None
        parent = name.rpartition(".")[0]
        if parent:
            packages[parent] = None
    return list(packages)

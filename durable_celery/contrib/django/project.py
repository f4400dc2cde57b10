"""The project's ``Durable``: the instance attached to the Celery app of Celery's Django recipe
(``proj/celery.py``, imported by ``proj/__init__.py`` when Django loads the settings), for the
parts of the integration that are not handed one (``manage.py durable_migrate``, the dashboard's
URLconf)."""

from __future__ import annotations

from typing import Any, cast

from celery import current_app
from django.core.exceptions import ImproperlyConfigured

from durable_celery.attachment import apps_with_instances, instances_on
from durable_celery.cli.errors import InputError
from durable_celery.cli.instance import find_durable
from durable_celery.durable import Durable


def project_durable(instance: str | None = None, *, choose: str = "`--instance PREFIX ...`") -> Durable:
    """The Durable instance on the project's Celery app (the one with prefix ``instance``, when
    the app has several); ``choose`` says in an error how the caller picks one of several.

    Raises:
        ImproperlyConfigured: none is built, several are and ``instance`` is None, or none has
            that prefix; the message says how to build or choose one.
    """
    # The project's Celery app is the current one, building it in proj/celery.py made it so; but
    # only in the thread that built it (Celery's current app is per thread): in a request's
    # thread it is the one app that carries a Durable
    app = cast(Any, current_app)._get_current_object()
    carrying = apps_with_instances()
    if not instances_on(app) and len(carrying) == 1:
        app = carrying[0]
    try:
        return find_durable(app, instance, None)
    except InputError as exc:
        hint = ("" if instances_on(app) else " (build DjangoDurable(app) in proj/celery.py, imported by "
                "proj/__init__.py as in Celery's Django recipe)")
        raise ImproperlyConfigured(exc.message.replace("`durable --instance PREFIX ...`", choose) + hint) from None

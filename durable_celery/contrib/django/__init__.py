"""Durable workflows in a Django project (see docs/django.md).

Next to the Celery app of Celery's own Django recipe (``proj/celery.py``)::

    app = Celery("proj")
    app.config_from_object("django.conf:settings", namespace="CELERY")
    app.autodiscover_tasks()
    durable = DjangoDurable(app)   # DURABLE_* settings, DATABASES["default"], apps' workflows.py

and in a view::

    with transaction.atomic():
        order = Order.objects.create(...)
        durable.start_on_commit(order_flow, {"order_id": order.pk})

``"durable_celery.contrib.django"`` in ``INSTALLED_APPS`` adds ``manage.py durable_migrate``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from celery import Celery
from sqlalchemy.engine import Connection

from durable_celery.compiler.ir import StateMachine
from durable_celery.contrib.django.config import is_postgres, read_settings, same_database, url_of
from durable_celery.contrib.django.connection import borrowed, can_borrow
from durable_celery.dsl.typed import ModelLike
from durable_celery.dsl.workflow import Workflow
from durable_celery.durable import Durable
from durable_celery.errors import InvalidInput
from durable_celery.registry import Sources
from durable_celery.runtime.starts import new_execution_rows
from durable_celery.state.executions import insert_execution_txn
from durable_celery.state.inserts import insert_executions_txn

__all__ = ["DjangoDurable", "installed_apps"]


def installed_apps() -> list[str]:
    """The packages of Django's installed apps, in ``INSTALLED_APPS`` order (what Celery's
    ``autodiscover_tasks()`` searches in a Django project)."""
    from django.apps import apps

    return [config.name for config in apps.get_app_configs()]


class DjangoDurable(Durable):
    """``Durable`` configured from Django's settings, whose starts can join a Django transaction.

    Args:
        app: the Celery app (``None``: ``init_app(app)`` later).
        namespace: the settings read are ``<namespace>_<OPTION>`` for each keyword option of
            ``Durable`` (``DURABLE_PREFIX``, ``DURABLE_QUEUE``, ...; see
            ``durable_celery.contrib.django.config``). ``DURABLE_DATABASE``: the alias of the
            database the engine shares (``"default"``); without ``DURABLE_DATABASE_URL`` the
            engine's tables are in that database when it is PostgreSQL (else in the embedded
            default). ``DURABLE_AUTODISCOVER`` (``True``): find workflows in every installed
            app's ``workflows`` module, as Celery finds ``tasks.py``.
        workflows: more sources, added to ``DURABLE_WORKFLOWS`` and the discovered ones.
        overrides: keyword options of ``Durable`` that win over the settings.

    Settings are read when the instance is built, normally when ``proj/celery.py`` is imported.

    Raises:
        InvalidInput: a ``DURABLE_*`` setting that is not one, a bad value, an unknown alias.
    """

    def __init__(self, app: Celery | None = None, *, namespace: str = "DURABLE", workflows: Sources = (),
                 **overrides: Any) -> None:
        from django.conf import settings

        options = {**read_settings(settings, namespace), **overrides}
        self.using: str = options.pop("database", "default")
        autodiscover = options.pop("autodiscover", True)
        if self.using not in settings.DATABASES:
            raise InvalidInput(f"{namespace}_DATABASE is {self.using!r}, which is not in settings.DATABASES")
        database = settings.DATABASES[self.using]
        if options.get("database_url") is None and is_postgres(database):
            options["database_url"] = url_of(database)
        sources = [*_listed(options.pop("workflows", ())), *_listed(workflows)]
        super().__init__(app, workflows=sources, **options)
        #: whether the engine's tables are in the database of ``using``: a start then joins
        #: Django's transaction on its own connection
        self.shares_database = not self.settings.embedded and same_database(self.settings.database_url, database)
        if autodiscover:
            self.autodiscover_workflows(installed_apps)

    def start_on_commit(self, workflow: Workflow | str, input: dict[str, Any] | ModelLike | None = None, *,
                        using: str | None = None, queue: str | None = None, priority: int = 0,
                        scheduled_at: datetime | None = None, idempotency_key: str | None = None) -> str:
        """Start an execution that exists only if the current Django transaction commits, and
        return its id.

        Inside ``transaction.atomic()`` on the engine's own database (``shares_database``),
        its row is inserted on Django's connection, in that transaction: it commits or rolls
        back with the app's rows. Its message is published by ``transaction.on_commit``, so a
        rollback publishes nothing; a message lost after the commit (the process killed
        between the two) is published again by beat's tick, as for any start. On another
        database the row is inserted and published by ``transaction.on_commit``: nothing is
        started on a rollback, but a crash right after the commit loses the start. Outside an
        atomic block (autocommit) it is ``start``.

        Args:
            using: the Django database alias whose transaction it joins (``DURABLE_DATABASE``).
            queue, priority, scheduled_at, idempotency_key: as for ``start``. A key already
                used starts nothing; the id returned is the holder's when the row joins the
                transaction (on another database the key is found only at the commit).

        Raises:
            WorkflowNotFound, InvalidInput, AppNotInitialized: as ``start``, before anything is
            written.
        """
        from django.db import connections

        if not connections[self.using if using is None else using].in_atomic_block:
            return self.start(workflow, input, queue=queue, priority=priority, scheduled_at=scheduled_at,
                              idempotency_key=idempotency_key)
        self._attachment()
        machine = self.registry.machine_for(workflow)
        row = self._new_row(machine, input, queue=queue, priority=priority, scheduled_at=scheduled_at,
                            idempotency_key=idempotency_key, connection=None)
        return self._join(using, [row], machine)[0]

    def start_many_on_commit(self, workflow: Workflow | str, inputs: Iterable[dict[str, Any] | ModelLike | None], *,
                             using: str | None = None, queue: str | None = None, priority: int = 0,
                             scheduled_at: datetime | None = None,
                             idempotency_keys: Iterable[str | None] | None = None) -> list[str]:
        """``start_many`` as ``start_on_commit`` is ``start``: one execution per input, their ids
        in the order of ``inputs``, all inserted in the current transaction (or on its commit,
        on another database) and published on its commit.

        Raises:
            WorkflowNotFound, InvalidInput, AppNotInitialized: as ``start_many``, before
            anything is written.
        """
        from django.db import connections

        if not connections[self.using if using is None else using].in_atomic_block:
            return self.start_many(workflow, inputs, queue=queue, priority=priority, scheduled_at=scheduled_at,
                                   idempotency_keys=idempotency_keys)
        self._attachment()
        machine = self.registry.machine_for(workflow)
        rows = new_execution_rows(machine, self.settings, inputs, self.clock.now(), queue=queue, priority=priority,
                                  scheduled_at=scheduled_at, idempotency_keys=idempotency_keys)
        return self._join(using, rows, machine) if rows else []

    def joins_transaction(self, using: str | None = None) -> bool:
        """Whether ``start_on_commit`` inserts in the transaction of ``using`` (the engine's
        tables are in that database, reached through a driver it can run on: psycopg 3 on
        SQLAlchemy 2, or psycopg2), rather than on its commit. Opens Django's connection."""
        from django.db import connections

        connection = connections[self.using if using is None else using]
        # Checked at each call: Django's test runner moves its connection to a test database
        # after this instance was built, and the engine stays where it was.
        if not self.shares_database or not same_database(self.db.url, connection.settings_dict):
            return False
        connection.ensure_connection()
        return can_borrow(connection.connection)

    def _join(self, using: str | None, rows: list[dict[str, Any]], machine: StateMachine) -> list[str]:
        """Insert ``rows`` in the current transaction of ``using`` (on its commit, when it is
        not the engine's database) and publish them on its commit; their ids."""
        from django.db import connections, transaction

        alias = self.using if using is None else using
        connection = connections[alias]
        self.ensure_schema()
        if self.joins_transaction(alias):
            with borrowed(connection.connection) as conn:
                ids, created = _insert(conn, rows, self.db.schema_options)
            new = [row for row, fresh in zip(rows, created) if fresh]
            if new:
                transaction.on_commit(lambda: self._started(new, machine), using=alias)
            return ids

        def insert_and_publish() -> None:
            with self.db.begin() as conn:
                _, created = _insert(conn, rows, None)
            self._started([row for row, fresh in zip(rows, created) if fresh], machine)

        transaction.on_commit(insert_and_publish, using=alias)
        # Not inserted yet: a key repeated in ``rows`` is the first row's, as the insert will
        # find (a key held by a stored execution is found only then).
        first: dict[str, str] = {}
        return [first.setdefault(row["idempotency_key"], row["id"]) if row.get("idempotency_key") else row["id"]
                for row in rows]

    def _started(self, rows: list[dict[str, Any]], machine: StateMachine) -> None:
        """Once the rows are committed: announce them, publish those due now."""
        if not rows:
            return
        self._announce(rows)
        self._publish_starts([row for row in rows if row["dispatched_at"] is not None], machine)


def _insert(conn: Connection, rows: list[dict[str, Any]],
            options: dict[str, Any] | None) -> tuple[list[str], list[bool]]:
    """Ids, and whether each row was created, as ``start`` and ``start_many`` insert them."""
    if len(rows) == 1:
        execution_id, created = insert_execution_txn(conn, rows[0], options)
        return [execution_id], [created]
    return insert_executions_txn(conn, rows, options)


def _listed(sources: Sources) -> list[Any]:
    if sources is None:
        return []
    if isinstance(sources, (list, tuple)):
        return list(sources)
    return [sources]

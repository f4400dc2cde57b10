"""``Durable``: the engine on a Celery app, and the client API of API.md."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from celery import Celery, Signature
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, scoped_session

from durable_celery import codec
from durable_celery.attachment import Attachment, attach, task_packages
from durable_celery.clock import Clock, SystemClock, as_utc
from durable_celery.compiler.ir import StateMachine
from durable_celery.dsl.nodes import StepNode, walk
from durable_celery.dsl.typed import ModelLike, dump
from durable_celery.dsl.workflow import Workflow
from durable_celery.durations import Duration, to_seconds
from durable_celery.engine.statuses import RETRYABLE, TERMINAL, ExecutionStatus
from durable_celery.engine.transitions import queue_of
from durable_celery.engine.values import Message, Snapshot
from durable_celery.errors import (
    AppNotInitialized,
    ExecutionNotFound,
    InvalidInput,
    InvalidState,
    QueueNotFound,
    SchemaOutOfDate,
)
from durable_celery.graph import Graph, build_graph
from durable_celery.identifiers import check_execution_id
from durable_celery.limits import DEFAULT_MAX_PAYLOAD_BYTES, check_count, encode_payload
from durable_celery.models import Execution, PendingInput, QueueStats
from durable_celery.operations.calls import OperationsCalls
from durable_celery.queries import QueryCalls
from durable_celery.queries import status_value as _status
from durable_celery.registry import Registry, Sources
from durable_celery.runtime import deliver, eager, queues
from durable_celery.runtime.boot import UNREACHABLE
from durable_celery.runtime.broker import UnsentMarker
from durable_celery.runtime.calls import wake_caller
from durable_celery.runtime.dispatch import Dispatcher
from durable_celery.runtime.handoff import confirm_after
from durable_celery.runtime.install import broker_configured, install, task_names, use_embedded_broker
from durable_celery.runtime.leases import LeaseKeeper
from durable_celery.runtime.live import Emitter
from durable_celery.runtime.runner import Runner
from durable_celery.runtime.services import Services
from durable_celery.runtime.start_task import SIGNATURE_OPTIONS, start_task_name
from durable_celery.runtime.starts import hand_over_start, new_execution_row, new_execution_rows
from durable_celery.schedules import ScheduleCalls
from durable_celery.settings import Settings, default_data_dir
from durable_celery.state import migrate
from durable_celery.state.db import Database
from durable_celery.state.executions import children_of_txn, insert_execution, insert_execution_txn, peek_txn
from durable_celery.state.inserts import insert_executions_txn
from durable_celery.state.queues import counts_txn, paused_queues_txn, set_paused_txn, starts_in_window_txn
from durable_celery.state.records import to_execution, to_pending_input
from durable_celery.state.steps import in_flight_children_txn, list_attempts_txn
from durable_celery.state.stops import stop_txn
from durable_celery.state.waits import list_events_txn, list_inputs_txn, lock_execution_txn
from durable_celery.testing import faults
from durable_celery.versions import VersionCalls

log = logging.getLogger(__name__)


class Durable(ScheduleCalls, QueryCalls, OperationsCalls, VersionCalls):
    """Durable workflows on a Celery app.

    Build it with the app (``Durable(app, ...)``), or without one and attach it later with
    ``init_app(app)``, the Flask extension pattern for app factories. Everything but the app is
    set up here: settings, the database, the workflow registry. The cron schedule calls
    (``schedule``, ``trigger_schedule``, ...) come from :class:`ScheduleCalls`, the reads over
    many executions (``list_executions``, ``list_workflows``, ``get_metrics``, ...) from
    :class:`QueryCalls`; ``cleanup``, ``doctor``, ``why`` and ``migrate_executions`` from
    :class:`OperationsCalls`.

    Args:
        app: the Celery app whose workers run the steps; ``None`` to call ``init_app`` later.
        database_url: where state lives (``postgresql+psycopg://...``); ``None`` keeps it in a
            SQLite file under ``data_dir`` (the embedded default). When the app has no broker
            configured either, a file-based kombu transport is used, so nothing needs a server.
        workflows: where the definitions are: module names and modules (read on first use),
            ``Workflow`` objects, and callables returning those (called on first use); or one
            callable returning the whole list. See ``autodiscover_workflows`` for plugins.
        queue: the Celery queue of the engine's tasks. prefix: the Postgres schema of its tables.
        stale_lock_timeout: a running step whose worker stopped heart-beating this long is re-run
            elsewhere. heartbeat_interval: how often a worker renews its leases.
        tick_interval: how often beat fires timers, timeouts, cron schedules and recovery.
        schedule_catch_up: what beat starts for cron slots missed while no beat ran: ``"one"``
            run for them all (default), ``"all"`` (one per slot) or ``"none"``.
            schedule_misfire_grace: a slot due longer ago than this counts as missed.
            schedule_max_failures: a schedule whose start fails this many times in a row
            (e.g. its workflow is gone) is disabled. See docs/schedules.md.
        dispatch_mode: ``"per_step"`` (one Celery task per step) or ``"continuation"``.
        redispatch_after: a runnable execution whose message was not consumed this long is
            published again (covers a publish lost between commit and broker).
        log_capture_max_entries: what a step attempt logs and prints is kept up to this many
            entries, then one entry says how many more were dropped. log_capture_max_chars: a
            longer message is cut there and marked. See docs/running.md.
        max_context_bytes: the largest context a step may return, in bytes of JSON (8 MiB);
            a larger one fails the attempt with ``ContextNotSerializable``.
        max_payload_bytes: the largest payload a call may send (a start's input, an event's
            payload, an input's data, a schedule's input), in bytes of compact UTF-8 JSON;
            over it the call raises ``PayloadTooLarge`` and writes nothing. Default 1 MiB;
            ``None``: no limit. See docs/security.md.
        auto_migrate: migrate the schema on first use; if False, verify it and raise
            ``SchemaOutOfDate`` (never any DDL: workers and clients may then run as a role with
            data privileges only, see docs/security.md). If True and the schema is current,
            it is only read too.

    Raises:
        InvalidInput: a bad setting, or an app as in ``init_app``.
    """

    def __init__(
        self,
        app: Celery | None = None,
        database_url: str | None = None,
        workflows: Sources = (),
        *,
        queue: str = "durable",
        prefix: str = "durable",
        queues: dict[str, dict[str, Any]] | None = None,
        stale_lock_timeout: Duration = 60,
        heartbeat_interval: Duration = 10,
        tick_interval: Duration = 1,
        dispatch_mode: str = "per_step",
        continuation_budget: Duration = 0.5,
        redispatch_after: Duration = 15,
        max_countdown: Duration = 60,
        max_lost_leases: int = 3,
        schedule_catch_up: str = "one",
        schedule_misfire_grace: Duration = 60,
        schedule_max_failures: int = 5,
        log_capture_max_entries: int = 500,
        log_capture_max_chars: int = 4000,
        max_context_bytes: int = 8 * 1024 * 1024,
        max_payload_bytes: int | None = DEFAULT_MAX_PAYLOAD_BYTES,
        auto_migrate: bool = True,
        data_dir: str | Path | None = None,
        clock: Clock | None = None,
    ) -> None:
        if app is not None and not isinstance(app, Celery):
            raise InvalidInput(f"Durable needs a Celery app (or None, and init_app(app) later), got {app!r}")
        self._data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
        self.settings = Settings.build(
            database_url=database_url, data_dir=self._data_dir, queue=queue, prefix=prefix, queues=queues,
            stale_lock_timeout=stale_lock_timeout, heartbeat_interval=heartbeat_interval,
            tick_interval=tick_interval, dispatch_mode=dispatch_mode, continuation_budget=continuation_budget,
            redispatch_after=redispatch_after, max_countdown=max_countdown, auto_migrate=auto_migrate,
            max_lost_leases=max_lost_leases, schedule_catch_up=schedule_catch_up,
            schedule_misfire_grace=schedule_misfire_grace, schedule_max_failures=schedule_max_failures,
            log_capture_max_entries=log_capture_max_entries, log_capture_max_chars=log_capture_max_chars,
            max_context_bytes=max_context_bytes,
            max_payload_bytes=max_payload_bytes,
        )
        self.clock: Clock = clock or SystemClock()
        self.db = Database(self.settings.database_url, self.settings.prefix)
        self.registry = Registry(workflows)
        self.leases = LeaseKeeper(self.db, self.clock, self.settings.heartbeat_interval,
                                  self.settings.stale_lock_timeout, confirm_after(self.settings.handoff_ttl) / 2)
        self.step_task_name, self.tick_task_name = task_names(self.settings.prefix)
        self.start_task_name = start_task_name(self.settings.prefix)
        self._schema_ready = False
        self._schema_lock = threading.Lock()
        self._attached: Attachment | None = None
        if app is not None:
            self.init_app(app)

    # -- the app -------------------------------------------------------------------------------

    def init_app(self, app: Celery) -> None:
        """Attach the engine to ``app``: its two tasks, its queues, and the worker and beat
        handlers (see docs/running.md); the embedded broker if the app has none.

        ``Durable(app, ...)`` calls this for you. Called again with the same app it does
        nothing, so an app factory may call it every time it builds the app. One instance serves
        one app at a time: called with another app, it moves there. The client API then
        publishes through the new app, the old app's worker and beat handlers are disconnected,
        and the CLI no longer finds the instance through the old app (its two task objects stay
        registered on it, unused). For two apps live at once, build one instance per app.

        Raises:
            InvalidInput: ``app`` is not a Celery app, or another Durable instance with the
                same ``prefix`` is attached to it (they would share one pair of task names).
        """
        if not isinstance(app, Celery):
            raise InvalidInput(f"init_app needs a Celery app, got {app!r}")

        def build() -> Attachment:
            if not broker_configured(app):
                use_embedded_broker(app, self._data_dir)
            dispatcher = Dispatcher(app, self.step_task_name, self._queue_for, on_unsent=UnsentMarker(app, self.db))
            services = Services(self.settings, self.db, self.clock, self.registry, dispatcher, self.leases)
            runner = Runner(services)
            installed = install(app, services, runner, load=self.registry.load, ensure_schema=self._boot_state,
                                queues=self.declared_queues(), engine_queues=self.engine_queues, start=self.start)
            return Attachment(app, services, runner, installed)

        self._attached = attach(self, app, self._attached, build)

    def _attachment(self) -> Attachment:
        attached = self._attached
        if attached is None:
            raise AppNotInitialized(
                f"this Durable instance (prefix {self.settings.prefix!r}) is not attached to a Celery app yet: "
                "call durable.init_app(app) first, or build it as Durable(app, ...)"
            )
        return attached

    @property
    def app(self) -> Celery:
        """The Celery app this instance is attached to (``AppNotInitialized`` if none)."""
        return self._attachment().app

    @property
    def services(self) -> Services:
        """What the runtime works with (it never sees this facade)."""
        return self._attachment().services

    @property
    def dispatcher(self) -> Dispatcher:
        return self._attachment().services.dispatcher

    @property
    def runner(self) -> Runner:
        return self._attachment().runner

    @property
    def live(self) -> Emitter:
        """Lifecycle events (``subscribe``): the runtime's emitter, for a tick run through this facade."""
        return self.services.live

    # -- set-up ----------------------------------------------------------------------------------

    def prepare(self) -> None:
        """Compile every workflow and make sure the schema is current (workers call this at boot)."""
        self.registry.load()
        self._boot_state()

    def _boot_state(self) -> None:
        """What a worker and beat do at boot, once the workflows are loaded: the schema, the
        schedules declared in code, and the description of every registered version (for
        ``plan``; one that cannot be written is logged, the worker starts anyway)."""
        self._prepare_state()
        try:
            self.record_versions()
        except UNREACHABLE:
            raise  # the boot retries it with the schema
        except Exception:  # noqa: BLE001 - plan then says less about how a state changed
            log.warning("durable: could not record the registered workflow versions", exc_info=True)

    def ensure_schema(self) -> None:
        if self._schema_ready:
            return
        with self._schema_lock:
            if self._schema_ready:
                return
            if self.settings.auto_migrate:
                migrate.upgrade(self.db)
            elif not migrate.is_current(self.db):
                raise SchemaOutOfDate(
                    f"the durable schema {self.settings.prefix!r} is at {migrate.current_revision(self.db)}, "
                    f"this version needs {migrate.head_revision()}: run `celery -A proj durable migrate`"
                )
            self._schema_ready = True

    def register(self, workflow: Workflow) -> None:
        """Register (and compile) a workflow on this instance, now."""
        self.registry.register(workflow)

    def autodiscover_workflows(self, packages: Iterable[str] | Callable[[], Iterable[str]] | None = None,
                               related_name: str = "workflows") -> None:
        """Find workflows in ``<package>.<related_name>`` modules, as Celery's
        ``app.autodiscover_tasks`` finds tasks in ``<package>.tasks``.

        Nothing is imported now. The modules are imported with the other sources, on first use
        or when a worker boots, so plugins may finish loading after this call. A package
        without that module is skipped; an error raised inside one that exists propagates.

        Args:
            packages: package names, or a callable returning them (called at that first use).
                ``None``: the packages the app's tasks come from: Celery imports the app's task
                modules as a worker does at boot, then the package of every module that
                defines one of its tasks (a plugin's too) is searched. Needs the app by then.
            related_name: the module to look for in each package.

        Raises:
            InvalidInput: ``packages`` is not a list of names or a callable, or ``related_name``
                is not a module name.
        """
        self.registry.discover(packages if packages is not None else lambda: task_packages(self.app), related_name)

    def declared_queues(self) -> list[str]:
        names = [self.settings.queue, *self.settings.queues]
        for workflow in self.registry.given:  # loaded or not: declared the same whenever attached
            names.extend(q for q in _queues_of(workflow) if q)
        return list(dict.fromkeys(names))

    def engine_queues(self) -> set[str]:
        """Every queue engine steps may run on: the declared ones and those of every loaded workflow."""
        return {*self.declared_queues(), *self.registry.queues()}

    # -- client API ----------------------------------------------------------------------------------

    def start(
        self,
        workflow: Workflow | str,
        input: dict[str, Any] | ModelLike | None = None,
        *,
        queue: str | None = None,
        priority: int = 0,
        scheduled_at: datetime | None = None,
        idempotency_key: str | None = None,
        connection: Connection | Session | scoped_session[Session] | None = None,
        start_deadline: Duration | None = None,
    ) -> str:
        """Start an execution and return its id.

        ``start_deadline`` (a ``timedelta`` or seconds): if its first step has not begun this
        long after it is due (now, or ``scheduled_at``), it is cancelled instead, with the error
        type ``StartDeadlinePassed``; once begun it is never cancelled by it. Default: the
        workflow's ``start_deadline`` (none: it waits for a worker however long it takes).

        Raises:
            WorkflowNotFound: unknown workflow name. InvalidInput: input that is not a
            JSON-storable dict, or a bad option. AppNotInitialized: no ``init_app`` yet.
            Nothing is written in any of these cases.
        """
        self._attachment()  # before anything is written: the start is published through the app
        if isinstance(connection, scoped_session):  # Flask-SQLAlchemy's db.session: the current session
            connection = connection()
        machine = self.registry.machine_for(workflow)
        row = self._new_row(machine, input, queue=queue, priority=priority, scheduled_at=scheduled_at,
                            idempotency_key=idempotency_key, connection=connection, start_deadline=start_deadline)
        if connection is not None:
            return self._start_in(connection, [row], machine)[0]
        self.ensure_schema()
        handed = self._hand_over(row, machine)
        # One statement, in autocommit: the insert is the start's only round trip to the database.
        execution_id, created = insert_execution(self.db, row)
        faults.trip("after_start_commit", machine.workflow)
        if created:
            self._announce([row])
        if created and row["dispatched_at"] is not None:
            self._publish_starts([row], machine, handed)
        return execution_id

    def start_many(
        self,
        workflow: Workflow | str,
        inputs: Iterable[dict[str, Any] | ModelLike | None],
        *,
        queue: str | None = None,
        priority: int = 0,
        scheduled_at: datetime | None = None,
        idempotency_keys: Iterable[str | None] | None = None,
        connection: Connection | Session | scoped_session[Session] | None = None,
        start_deadline: Duration | None = None,
    ) -> list[str]:
        """Start one execution per input, as that many ``start`` calls would, and return their
        ids in the order of ``inputs``.

        All rows are inserted in one statement and committed before any message is published,
        then the messages go out through one producer, pipelined where the broker allows it. A
        message lost on the way (the broker down, the process killed) is re-published by the
        tick, as for ``start``. With ``connection`` the rows join the caller's transaction, as
        ``start``'s row does, and nothing is published unless it commits.

        Args:
            workflow: the ``Workflow`` or its name. inputs: the input dicts (None is ``{}``).
            queue, priority, scheduled_at, start_deadline: as for ``start``, for every execution.
            idempotency_keys: one key (or None) per input. A key already used, by an existing
                execution or by an earlier input of this call, starts nothing: its id is that
                execution's, as ``start`` returns it.
            connection: a SQLAlchemy Connection, Session or scoped_session, as for ``start``.

        Raises:
            WorkflowNotFound, InvalidInput, AppNotInitialized: as ``start``; a bad input or key
            is named by its index (``inputs[3]: ...``). Nothing is written in any of these cases.
        """
        self._attachment()
        if isinstance(connection, scoped_session):
            connection = connection()
        machine = self.registry.machine_for(workflow)
        _check_connection(connection)
        rows = new_execution_rows(machine, self.settings, inputs, self.clock.now(), queue=queue, priority=priority,
                                  scheduled_at=scheduled_at, idempotency_keys=idempotency_keys,
                                  dispatched=_publishes_itself(connection), start_deadline=start_deadline)
        if not rows:
            return []
        if connection is not None:
            return self._start_in(connection, rows, machine)
        self.ensure_schema()
        with self.db.begin() as conn:
            ids, created = insert_executions_txn(conn, rows)
        faults.trip("after_start_commit", machine.workflow)
        self._announce([row for row, new in zip(rows, created) if new])
        self._publish_starts([row for row, new in zip(rows, created) if new and row["dispatched_at"] is not None],
                             machine)
        return ids

    def signature(self, workflow: Workflow | str, input: dict[str, Any] | ModelLike | None = None,
                  **start_options: Any) -> Signature:
        """A Celery signature that starts ``workflow`` when it runs, for a chain or group of
        plain tasks: ``chain(fetch.s(id), durable.signature(report), notify.s())``.

        It runs on the engine's queue (only workflow workers take it) and returns the new
        execution's id, which a chain passes to the next task. In a chain it gets the previous
        task's result: a dict is merged over ``input``, any other value (but ``None``) is put
        under the key ``"previous"``; ``.set(immutable=True)`` ignores it. Delivered twice, it
        starts one execution: its idempotency key is derived from the Celery task id.

        Args:
            workflow: the ``Workflow`` or its name. input: the input dict.
            start_options: ``queue``, ``priority``, ``idempotency_key``, ``start_deadline``, as for
                ``start`` (the start deadline counts from when the signature runs).

        Raises:
            WorkflowNotFound, InvalidInput: as ``start`` would, now rather than when it runs.
        """
        unknown = set(start_options) - set(SIGNATURE_OPTIONS)
        if unknown:
            raise InvalidInput(f"signature() takes the start options {', '.join(SIGNATURE_OPTIONS)}, "
                               f"not {', '.join(sorted(unknown))}")
        machine = self.registry.machine_for(workflow)
        input = dump(input)  # the message carries the JSON form of a pydantic model
        self._new_row(machine, input, queue=start_options.get("queue"), priority=start_options.get("priority", 0),
                      scheduled_at=None, idempotency_key=start_options.get("idempotency_key"), connection=None,
                      start_deadline=start_options.get("start_deadline"))
        options = {k: v for k, v in start_options.items() if v is not None}
        if "start_deadline" in options:  # a message carries JSON: seconds, not a timedelta
            options["start_deadline"] = to_seconds(options["start_deadline"], "start_deadline")
        return self.app.signature(self.start_task_name, args=(), options={"queue": self.settings.queue,
                                                                          "serializer": "json"},
                                  kwargs={"workflow": machine.workflow, "input": input, "options": options})

    def _hand_over(self, row: dict[str, Any], machine: StateMachine) -> Snapshot | None:
        """Lease a new execution's row to its first message, as a checkpoint leases the next
        step's (``runtime/handoff.py``): its task runs the first step without a claim. Only a
        start published at once, outside eager mode and off controlled queues."""
        policy = self.services.policy
        if (row["dispatched_at"] is None or policy.handoff_ttl is None
                or queue_of(machine, machine.entry, row["queue"]) in policy.controlled):
            return None
        return hand_over_start(row, uuid.uuid4().hex, policy.handoff_ttl)

    def _announce(self, rows: list[dict[str, Any]]) -> None:
        """``execution.started`` for new executions, once committed (see ``subscribe``)."""
        live = self.services.live
        if rows and live.active():
            live.emit_all([live.event("execution.started", row, seq=0) for row in rows])

    def _publish_starts(self, rows: list[dict[str, Any]], machine: StateMachine,
                        handed: Snapshot | None = None) -> None:
        """Publish the first message of each new execution (its row committed); ``handed``: the
        execution whose row is leased to its message."""
        if rows:
            self.dispatcher.send_many([Message(row["id"], 0, machine.workflow, machine.entry,
                                               queue_of(machine, machine.entry, row["queue"]), row["priority"],
                                               handoff=row.get("lease_owner"),
                                               handoff_until=row.get("lease_expires_at"))
                                       for row in rows], {handed.id: handed} if handed is not None else None)

    def _new_row(self, machine: StateMachine, input: Any, *, queue: str | None, priority: int,
                 scheduled_at: datetime | None, idempotency_key: str | None, connection: Any,
                 start_deadline: Duration | None = None) -> dict[str, Any]:
        _check_connection(connection)
        return new_execution_row(machine, self.settings, input, self.clock.now(), queue=queue, priority=priority,
                                 scheduled_at=scheduled_at, idempotency_key=idempotency_key,
                                 dispatched=_publishes_itself(connection), start_deadline=start_deadline)

    def _start_in(self, connection: Connection | Session, rows: list[dict[str, Any]],
                  machine: StateMachine) -> list[str]:
        """Insert inside the caller's transaction. With a Connection the rows are left
        undispatched, so the tick publishes them once they are committed (and due). With a
        Session an immediate start is published when the session commits (a scheduled one is
        left to the tick); its row says so, so the tick re-publishes it only if that message
        is lost."""
        self.ensure_schema()
        conn = connection.connection() if isinstance(connection, Session) else connection
        # Per statement: the caller's connection must not keep our schema map afterwards.
        options = self.db.schema_options
        if len(rows) == 1:
            execution_id, new = insert_execution_txn(conn, rows[0], options)
            ids, created = [execution_id], [new]
        else:
            ids, created = insert_executions_txn(conn, rows, options)
        due = [row for row, new in zip(rows, created) if new and row["ready_at"] <= row["created_at"]]
        if due and isinstance(connection, Session):
            @event.listens_for(connection, "after_commit", once=True)
            def publish(_session: Session) -> None:
                self._publish_starts(due, machine)
        return ids

    def _queue_for(self, workflow: str, state_id: str | None, queue: str, version: str | None = None) -> str:
        """The queue a message for ``state_id`` goes to: the step's own (in the definition the
        execution runs on, ``version``), else the execution's."""
        machine = self.registry.get(workflow, version) if state_id else None
        return queue_of(machine, state_id, queue) if machine is not None and state_id else queue

    def get_execution(self, execution_id: str, include_steps: bool = False, include_logs: bool = False) -> Execution:
        """The execution with that id (and its step attempts); raises ``ExecutionNotFound``."""
        check_execution_id(execution_id)
        self.ensure_schema()
        with self.db.connect() as conn:
            row = peek_txn(conn, execution_id)
            if row is None:
                raise ExecutionNotFound(execution_id)
            steps = list_attempts_txn(conn, execution_id) if include_steps else []
            in_flight = in_flight_children_txn(conn, execution_id) if include_steps else []
            children = [child["id"] for child in children_of_txn(conn, execution_id)]
            labels = self._version_labels(conn, [row])
        return to_execution(row, steps if include_steps else None, include_logs, in_flight, children, labels=labels)

    def list_children(self, parent_id: str, status: str | None = None) -> list[Execution]:
        """The child workflows started by the steps of ``parent_id`` (with ``call_workflow`` or
        ``start_workflow``, from its branches and iterations too), oldest first; raises
        ``ExecutionNotFound`` for an unknown id."""
        check_execution_id(parent_id)
        status = _status(status)
        self.ensure_schema()
        with self.db.connect() as conn:
            if peek_txn(conn, parent_id) is None:
                raise ExecutionNotFound(parent_id)
            rows = children_of_txn(conn, parent_id, status)
            labels = self._version_labels(conn, rows)
        return [to_execution(row, None, False, labels=labels) for row in rows]

    def emit_event(self, name: str, payload: Any = None) -> None:
        """Emit an event by name to every execution waiting for ``name``: each execution active
        now whose steps wait for it (now, or later: it is kept for them) takes it once. Unlike
        ``send_event``, the emitter does not need to know which executions wait.

        Raises:
            InvalidInput: a bad name or a payload that is not JSON.
        """
        self._attachment()  # before the schema is touched: the wake-ups are published
        self.ensure_schema()
        deliver.emit_event(self.services, name, payload)

    def wait(self, execution_id: str, timeout: Duration | None = None, poll: float = 0.1) -> Execution:
        """Block until the execution reaches a final status and return it (with its steps).

        Raises:
            TimeoutError: it is still active after ``timeout``. ExecutionNotFound: unknown id.
        """
        limit = None if timeout is None else time.monotonic() + to_seconds(timeout, "timeout")
        if to_seconds(poll, "poll") <= 0:
            raise InvalidInput(f"poll must be a positive number of seconds, got {poll!r}")
        while True:
            execution = self.get_execution(execution_id)  # cheap: steps are read once, at the end
            if execution.status in TERMINAL:
                return self.get_execution(execution_id, include_steps=True)
            if limit is not None and time.monotonic() > limit:
                raise TimeoutError(f"execution {execution_id} is still {execution.status.value}")
            time.sleep(poll)

    # -- queues (docs/queues.md) ----------------------------------------------------------------

    def pause_queue(self, name: str) -> None:
        """Stop starting steps on a controlled queue, on every worker: steps running finish, the
        others wait in the database (nothing is lost) until ``resume_queue``. When this returns,
        no step of the queue starts any more (a claim in flight has committed before it).

        Raises:
            QueueNotFound: ``name`` is not listed in ``queues=`` (only those can be paused).
        """
        self._set_paused(name, True)

    def resume_queue(self, name: str) -> None:
        """Start steps on a paused queue again, dispatching those that waited (within its limits).

        Raises:
            QueueNotFound: ``name`` is not listed in ``queues=``.
        """
        self._set_paused(name, False)
        queues.dispatch_waiting(self.services, self.settings.queue_limits[name])

    def _set_paused(self, name: str, paused: bool) -> None:
        if not isinstance(name, str) or name not in self.settings.queue_limits:
            known = ", ".join(sorted(self.settings.queue_limits)) or "none"
            raise QueueNotFound(name, f"only queues listed in queues= can be paused (listed: {known})")
        self.ensure_schema()
        with self.db.begin() as conn:
            set_paused_txn(conn, name, paused, self.clock.now())

    def queue_stats(self, name: str) -> QueueStats:
        """What a queue is doing now: running, runnable and waiting steps, its limits, whether it
        is paused and how much of its rate is used.

        Raises:
            QueueNotFound: not a queue of this engine (listed in ``queues=``, the engine's queue,
                or a queue of one of its workflows or steps).
        """
        if not isinstance(name, str) or (name not in self.settings.queue_limits and name not in self.engine_queues()):
            raise QueueNotFound(name, "not listed in queues=, nor the queue of the engine or of a workflow or step")
        self.ensure_schema()
        limits = self.settings.queue_limits.get(name)
        now = self.clock.now()
        with self.db.connect() as conn:
            counts = counts_txn(conn, name, limits is not None, now)
            paused = name in paused_queues_txn(conn)
            used = starts_in_window_txn(conn, name, limits.rate, now) if limits and limits.rate else None
        if limits is None:
            return QueueStats(name, counts["running"], counts["runnable"], counts["waiting"], None, False,
                              controlled=False)
        pk = limits.per_key
        return QueueStats(name, counts["running"], counts["runnable"], counts["waiting"], limits.concurrency, paused,
                          rate=limits.rate.text if limits.rate else None, rate_used=used,
                          per_key=pk.key if pk else None, key_concurrency=pk.concurrency if pk else None,
                          key_rate=pk.rate.text if pk and pk.rate else None)

    def list_queues(self) -> list[QueueStats]:
        """``queue_stats`` of every queue of this engine, controlled ones first, by name."""
        names = sorted(self.settings.queue_limits) + sorted(set(self.engine_queues()) - set(self.settings.queue_limits))
        return [self.queue_stats(name) for name in names]

    def cancel(self, execution_id: str, reason: str | None = None, compensate: bool = False) -> None:
        """Cancel an active execution and everything it started (branches, iterations, child
        workflows). A step running at that moment is fenced off: it finishes, but its result is
        discarded. With ``compensate=True`` (and compensations defined) the execution compensates
        instead: a step in flight is let finish and its outcome recorded first, then the
        compensations of every completed step run, newest first (it ends ``compensated`` or
        ``compensation_failed``, or ``cancelled`` when there was nothing to compensate)."""
        check_execution_id(execution_id)
        self._attachment()  # before anything is written: the stop is published through the app
        if reason is not None and not isinstance(reason, str):
            raise InvalidInput(f"reason must be a string, got {reason!r}")
        if reason is not None:
            encode_payload(reason, "the reason", self.settings.max_payload_bytes)
        if not isinstance(compensate, bool):
            raise InvalidInput(f"compensate must be True or False, got {compensate!r}")
        self.ensure_schema()
        error = {"type": "Cancelled", "message": reason or "cancelled", "step": None, "traceback": None}
        with self.db.begin() as conn:
            row = lock_execution_txn(conn, execution_id)
            if row is None:
                raise ExecutionNotFound(execution_id)
            if row["kind"] != "workflow":
                raise InvalidInput(f"{execution_id} is a {row['kind']} of execution {row['root_id']}: "
                                   "cancel that execution instead")
            asked = compensate
            compensate = asked and row["status"] != ExecutionStatus.COMPENSATING and self._compensable(row["workflow"], row["version"])
            stopped = stop_txn(conn, row, ExecutionStatus.CANCELLED, error, self.clock.now(), compensate=compensate,
                               compensable=self._compensable if asked else None)
            if stopped is None:
                raise InvalidState(execution_id, row["status"], "only active executions can be cancelled")
        self._announce_stop(execution_id)
        self.dispatcher.publish(stopped)
        if row["parent_id"] is not None:
            wake_caller(self.services, execution_id, row["parent_id"])

    def _announce_stop(self, execution_id: str) -> None:
        """The live event of a cancel applied at once (one waiting for a step in flight is
        announced by that step's checkpoint)."""
        live = self.services.live
        if live.active():
            with self.db.connect() as conn:
                row = peek_txn(conn, execution_id)
            kinds = {ExecutionStatus.CANCELLED.value: "execution.cancelled",
                     ExecutionStatus.COMPENSATING.value: "execution.compensating"}
            if row is not None and row["status"] in kinds and row["stopping"] is None:
                live.emit(kinds[row["status"]], row, seq=row["seq"])

    def _compensable(self, workflow: str, version: str | None = None) -> bool:
        machine = self.registry.get(workflow, version)
        return machine is not None and bool(machine.compensations)

    def send_event(self, execution_id: str, name: str, payload: Any = None) -> None:
        """Send an event to an execution. If it waits for ``name`` it resumes; otherwise the
        event is kept until a wait for it is reached.

        Raises:
            ExecutionNotFound: unknown id. InvalidState: the execution has finished.
            InvalidInput: a bad name or a payload that is not JSON.
        """
        check_execution_id(execution_id)
        self._attachment()  # before the schema is touched: the delivery is published
        self.ensure_schema()
        deliver.send_event(self.services, execution_id, name, payload)

    def provide_input(self, execution_id: str, name: str, data: Any) -> None:
        """Answer a human-input request (``wait_for_input`` and its wrappers).

        Raises:
            ExecutionNotFound: unknown id. InvalidState: finished execution, or this input was
            already provided. InvalidInput: data that does not fit the declared type, fields or
            choices (nothing is recorded).
        """
        check_execution_id(execution_id)
        self._attachment()  # before the schema is touched: the delivery is published
        self.ensure_schema()
        deliver.provide_input(self.services, execution_id, name, data)

    def list_pending_inputs(self, status: str | None = None, timeout_before: datetime | None = None,
                            limit: int = 100, *, execution_id: str | None = None,
                            expiring_first: bool = False) -> list[PendingInput]:
        """Human-input requests, oldest first, in one status (``pending``, ``completed``,
        ``timed_out``, ``cancelled``) or all (``None``). ``workflow_id`` is the execution to
        answer through ``provide_input``, also for a step inside a parallel branch or foreach.

        Args:
            execution_id: only the inputs of this execution (and its branches and iterations).
            expiring_first: by ``timeout_at``, soonest first, those that never time out last.
        """
        statuses = {"pending": "pending", "completed": "resolved", "timed_out": "timed_out", "cancelled": "cancelled"}
        if status is not None and (not isinstance(status, str) or status not in statuses):
            raise InvalidInput(f"status must be one of {', '.join(statuses)} or None, got {status!r}")
        if timeout_before is not None and (not isinstance(timeout_before, datetime) or timeout_before.tzinfo is None):
            raise InvalidInput(f"timeout_before must be a timezone-aware datetime, got {timeout_before!r}")
        check_count(limit, "limit")
        if execution_id is not None:
            check_execution_id(execution_id)
        self.ensure_schema()
        with self.db.connect() as conn:
            before = as_utc(timeout_before) if timeout_before is not None else None
            rows = list_inputs_txn(conn, statuses[status] if status else None, before, limit, execution_id,
                                   bool(expiring_first))
        return [to_pending_input(row) for row in rows]

    def list_pending_events(self, execution_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Events and inputs kept for executions that have not consumed them yet, oldest first:
        sent before their wait was reached, or losers of a race (a second ``wait_for_any`` event)."""
        if execution_id is not None:
            check_execution_id(execution_id)
        check_count(limit, "limit")
        self.ensure_schema()
        with self.db.connect() as conn:
            rows = list_events_txn(conn, execution_id, "pending", limit)
        return [{"id": r["id"], "execution_id": r["execution_id"], "kind": r["kind"], "name": r["name"],
                 "payload": codec.decode(r["payload"]), "status": r["status"], "created_at": as_utc(r["created_at"])}
                for r in rows]

    def graph(self, workflow: Workflow | str, execution_id: str | None = None) -> Graph:
        """The workflow's state machine as a ``Graph`` (``.nodes``, ``.edges``, ``.to_dot()``,
        ``.to_mermaid()``, ``.to_dict()``); with ``execution_id`` each node carries its state,
        on the version of the workflow that execution runs on when that version is registered."""
        machine = self.registry.machine_for(workflow)
        execution = self.get_execution(execution_id, include_steps=True) if execution_id is not None else None
        if execution is not None and execution.workflow != machine.workflow:
            raise InvalidInput(f"execution {execution_id} runs {execution.workflow!r}, not {machine.workflow!r}")
        if execution is not None:
            machine = self.registry.get(machine.workflow, execution.version) or machine
        return build_graph(machine, execution)

    def retry(self, execution_id: str) -> str:
        """Start a new execution with the workflow, input, queue and priority of a failed or
        cancelled one; returns the new id."""
        execution = self.get_execution(execution_id)
        if execution.status not in RETRYABLE:
            raise InvalidState(execution_id, execution.status.value,
                               "only failed, cancelled, compensated or compensation_failed executions can be retried")
        return self.start(execution.workflow, execution.input, queue=execution.queue, priority=execution.priority)

    # -- Celery's eager mode -------------------------------------------------------------------------

    def run_due(self) -> None:
        """Run what is due now, in this process: the tick that beat runs (due sleeps and wait
        timeouts, scheduled starts, workflow timeouts, recovery), until it finds nothing more.

        In Celery's eager mode (``task_always_eager=True``) ``start`` runs an execution in
        this process to its end or its first wait, and ``send_event``, ``provide_input`` and
        ``cancel`` run what they wake; what waits for time needs this call (or
        :meth:`advance_time`), since no beat runs. The executions it wakes run before it
        returns. Outside eager mode it publishes them to the workers, as beat does.
        """
        self.ensure_schema()
        eager.run_due(self.services)

    def advance_time(self, by: Duration) -> None:
        """Move the engine's clock forward by ``by`` (a ``timedelta`` or seconds), then
        :meth:`run_due`: a sleep or wait timeout that falls within ``by`` fires, and the
        execution runs on to its next wait or its end. Celery's eager mode only.

        The default clock then runs ``by`` ahead of the wall clock for the rest of the process;
        a ``FrozenClock`` passed as ``Durable(..., clock=...)`` just moves.

        Raises:
            DurableError: not in eager mode (workers in other processes keep their own clock),
                or a ``clock`` that has no ``advance`` method. InvalidInput: a bad or negative ``by``.
        """
        self.ensure_schema()
        eager.advance(self.services, by)


def _check_connection(connection: Any) -> None:
    if connection is not None and not isinstance(connection, (Connection, Session)):
        raise InvalidInput(f"connection must be a SQLAlchemy Connection, Session or scoped_session, got {connection!r}")


def _publishes_itself(connection: Connection | Session | None) -> bool:
    """Whether a start's message is published by the start itself (on its own, or when the
    caller's Session commits), rather than left to the tick (a caller's Connection, whose commit
    the engine does not see)."""
    return not isinstance(connection, Connection)


def _queues_of(workflow: Workflow) -> list[str | None]:
    return [workflow.queue, *(n.queue for n in walk(workflow.body) if isinstance(n, StepNode))]

"""Unit tests of workflows without a broker, a worker or beat: :class:`TestEnvironment` runs
executions in the test's own process on a fake clock that skips time, as Temporal's
time-skipping test environment does.

It is the production engine, not a model of it: the workflows compile with the same compiler,
each step runs through the engine's Celery task in Celery's eager mode (claim, decide,
checkpoint; see ``runtime/dispatch.py``), the state lives in SQLite through the same SQL, and
timers, retries and timeouts fire through the tick beat runs. What the environment adds:

- a :class:`~durable_celery.clock.FrozenClock`, which it moves straight to the next moment the
  tick has something to do (``state/due.py``): a sleep of three days costs one tick;
- retries that wait for their backoff on that clock (Celery's eager mode alone runs them at
  once), so the time between two attempts is the policy's delay, to the microsecond;
- an SQLite file of its own in a temporary directory, with a schema copied from one migrated
  once per process, and no ``fsync`` (nothing in it must survive a crash).

See docs/testing.md ("Unit tests on a fake clock"); the pytest fixtures are in
``durable_celery_pytest``.
"""

from __future__ import annotations

import atexit
import dataclasses
import shutil
import tempfile
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

from celery import Celery
from sqlalchemy import event

from durable_celery.attachment import detach
from durable_celery.clock import FrozenClock, as_utc
from durable_celery.dsl.workflow import Workflow
from durable_celery.durable import Durable
from durable_celery.durations import Duration, to_seconds
from durable_celery.engine.statuses import TERMINAL, ExecutionStatus
from durable_celery.errors import DurableError, InvalidInput
from durable_celery.models import Execution, StepRecord
from durable_celery.registry import Sources
from durable_celery.runtime.tick import tick
from durable_celery.state.due import next_due_txn, tree_txn
from durable_celery.state.executions import peek_txn

#: Where the fake clock starts unless told otherwise: a fixed time, so recorded times repeat.
DEFAULT_START = datetime(2030, 1, 1, tzinfo=timezone.utc)
#: How many times ``run`` and ``run_until_idle`` move the clock before they give up.
MAX_WAKE_UPS = 10_000

#: Durable options the environment sets itself.
_OWN_OPTIONS = frozenset({"clock", "max_countdown", "data_dir"})


class RunLimitReached(DurableError):
    """``run`` or ``run_until_idle`` moved the clock ``max_wake_ups`` times and something was
    still due: most likely a loop that sleeps forever."""


class TestEnvironment:
    """The engine in this process, on a fake clock, for unit tests of workflows.

    ``start``, ``send_event``, ``provide_input`` and ``cancel`` run what they set in motion at
    once, to its end or its next wait, and never move the clock. ``run(id)`` moves it, from one
    due moment to the next (sleeps, retry backoffs, wait and input timeouts, workflow timeouts,
    scheduled starts), until the execution has ended or waits for nothing but the outside
    world (an event, an input without a timeout). ``advance(by)`` moves it by ``by``, firing
    everything due on the way, each at its own time.

    Args:
        workflows: what ``Durable(workflows=...)`` takes: ``Workflow`` objects, modules or
            module names.
        start: where the clock starts (timezone-aware; naive means UTC); default
            :data:`DEFAULT_START`, 2030-01-01 00:00 UTC.
        app: the Celery app to run on; default a new one with no broker. A given app is
            switched to eager mode until ``close`` (its tasks awaited by steps then run here
            too); it must not carry another Durable with the same ``prefix``.
        directory: where the SQLite file goes; default a new temporary directory, removed by
            ``close``.
        **options: other ``Durable`` options (``queues``, ``dispatch_mode``, ``prefix``, a
            ``database_url``, ...); not ``clock``, ``max_countdown`` or ``data_dir``, which the
            environment sets.

    Raises:
        InvalidInput: an option the environment sets, or a bad one.
    """

    __test__ = False  # not a test class, whatever pytest makes of its name

    def __init__(self, workflows: Sources = (), *, start: datetime | None = None, app: Celery | None = None,
                 directory: str | Path | None = None, **options: Any) -> None:
        taken = _OWN_OPTIONS & options.keys()
        if taken:
            raise InvalidInput(f"the test environment sets {', '.join(sorted(taken))} itself")
        if start is not None and not isinstance(start, datetime):
            raise InvalidInput(f"start must be a datetime, got {start!r}")
        self.clock = FrozenClock(as_utc(start) if start is not None else DEFAULT_START)
        self._owned_dir = directory is None
        self.directory = Path(tempfile.mkdtemp(prefix="durable-test-")) if directory is None else Path(directory)
        self._app_given = app is not None
        self.app = app if app is not None else Celery("durable-test", set_as_current=False)
        self._saved_conf = {key: self.app.conf.get(key) for key in ("task_always_eager", "task_eager_propagates")}
        self._durable: Durable | None = None
        self._keeper: Any = None
        self._closed = False
        self._idle = False  # did the last tick do nothing?
        try:
            self._open(workflows, options)
        except BaseException:
            self.close()
            raise

    def _open(self, workflows: Sources, options: dict[str, Any]) -> None:
        database_url = options.pop("database_url", None)
        if database_url is None:
            database_url = _fresh_sqlite(self.directory, options.get("prefix", "durable"))
        self._durable = Durable(self.app, database_url, workflows, clock=self.clock, max_countdown=0,
                                data_dir=self.directory, **options)
        if self._durable.db.dialect == "sqlite":
            self._keeper = _fast_sqlite(self._durable)
        self.app.conf.task_always_eager = True
        # an error of the engine itself (not of a step: those are recorded) fails the test
        self.app.conf.task_eager_propagates = True
        self._durable.services.keep_backoff_when_eager()
        self._durable.prepare()

    @property
    def durable(self) -> Durable:
        """The engine: the whole client API of ``Durable`` (``list_pending_inputs``, ``graph``...)."""
        assert self._durable is not None, "the environment failed to open"
        return self._durable

    # -- the clock ---------------------------------------------------------------------------------

    @property
    def now(self) -> datetime:
        """The fake clock's time (UTC)."""
        return self.clock.now()

    def advance(self, by: Duration) -> None:
        """Move the clock forward by ``by`` (a ``timedelta`` or seconds), stopping at each due
        moment on the way to fire what is due then, as beat would have: a one-day sleep that
        ends halfway, followed by another, both end within a two-day ``advance``. Cron
        schedules fire too (each due run, as ``schedule_catch_up`` says).

        Raises:
            InvalidInput: ``by`` is not a duration, or is negative.
            RunLimitReached: more than ``MAX_WAKE_UPS`` due moments on the way.
        """
        target = self.now + timedelta(seconds=to_seconds(by, "by"))
        overdue: datetime | None = None
        for _ in range(MAX_WAKE_UPS):
            due = self._next_due(None, schedules=True)
            if due is None or due > target or self._stuck(due, overdue):
                break
            overdue = due
            self._move_to(due)
            self._tick()
        else:
            raise RunLimitReached(f"more than {MAX_WAKE_UPS} due moments before {target.isoformat()}")
        self._move_to(target)
        self._tick()  # what the due times above do not cover (a lost lease, say) is beat's every tick

    def advance_to(self, when: datetime) -> None:
        """``advance`` until the clock reads ``when`` (naive means UTC).

        Raises:
            InvalidInput: ``when`` is in the fake past.
        """
        delta = as_utc(when) - self.now
        if delta < timedelta(0):
            raise InvalidInput(f"the clock reads {self.now.isoformat()}; it does not go back to {when.isoformat()}")
        self.advance(delta)

    def next_due(self, execution_id: str | None = None) -> datetime | None:
        """When the next timer, retry or timeout of ``execution_id`` (and what it started) is
        due; of any execution if None. None: only an event, an input or a call can move it on."""
        return self._next_due(execution_id, schedules=False)

    # -- running -----------------------------------------------------------------------------------

    def start(self, workflow: Workflow | str, input: dict[str, Any] | None = None, **options: Any) -> str:
        """Start an execution (``Durable.start``'s options) and run it to its first wait or its
        end; the clock does not move. Returns its id."""
        return self.durable.start(workflow, input, **options)

    def run(self, execution_id: str, *, max_wake_ups: int = MAX_WAKE_UPS) -> Execution:
        """Run the execution to its end, skipping time: the clock moves to each moment its tree
        (itself, its blocks' branches, its child workflows) has something due, and every
        execution's due work runs on the way. Stops early, and returns the execution waiting,
        when only the outside world can move it on: an event, an input with no timeout, a
        child that waits for one. A wait with a timeout is run to that timeout: send the event
        before ``run`` to take the other path.

        Returns:
            The execution with its steps (``Execution.steps``).

        Raises:
            ExecutionNotFound: no such execution.
            RunLimitReached: the clock moved ``max_wake_ups`` times and it is still running.
        """
        self.durable.get_execution(execution_id)  # ExecutionNotFound first
        overdue: datetime | None = None
        for _ in range(max_wake_ups):
            finished, due = self._progress(execution_id)
            if finished or due is None or self._stuck(due, overdue):
                return self.execution(execution_id)
            overdue = due
            self._move_to(due)
            self._tick()
        raise RunLimitReached(f"execution {execution_id} still had something due after {max_wake_ups} "
                              f"moves of the clock (now {self.now.isoformat()})")

    def run_until_idle(self, *, max_wake_ups: int = MAX_WAKE_UPS) -> None:
        """Run every execution until none has anything due at any time: what is left waits for
        an event or an input. Cron schedules do not keep it going (``advance`` fires them).

        Raises:
            RunLimitReached: the clock moved ``max_wake_ups`` times and something is still due.
        """
        overdue: datetime | None = None
        for _ in range(max_wake_ups):
            due = self._next_due(None, schedules=False)
            if due is None or self._stuck(due, overdue):
                return
            overdue = due
            self._move_to(due)
            self._tick()
        raise RunLimitReached(f"timers were still due after {max_wake_ups} moves of the clock "
                              f"(now {self.now.isoformat()})")

    def send_event(self, execution_id: str, name: str, payload: Any = None) -> None:
        """``Durable.send_event``: the execution it wakes runs to its next wait or its end."""
        self.durable.send_event(execution_id, name, payload)

    def provide_input(self, execution_id: str, name: str, data: Any) -> None:
        """``Durable.provide_input``: the execution it wakes runs to its next wait or its end."""
        self.durable.provide_input(execution_id, name, data)

    def cancel(self, execution_id: str, reason: str | None = None, compensate: bool = False) -> None:
        """``Durable.cancel``: the compensations, if any, run at once (their retries with ``run``)."""
        self.durable.cancel(execution_id, reason, compensate)

    # -- reading -----------------------------------------------------------------------------------

    def execution(self, execution_id: str, include_logs: bool = False) -> Execution:
        """The execution as ``Durable.get_execution`` returns it, with its steps."""
        return self.durable.get_execution(execution_id, include_steps=True, include_logs=include_logs)

    def step_attempts(self, execution_id: str, step: str | None = None) -> list[StepRecord]:
        """The step attempts of the execution in the order they ran (of ``step`` only, if
        given): their ``attempt``, ``status``, ``started_at`` on the fake clock, ``error``..."""
        return [s for s in self.execution(execution_id).steps if step is None or s.step_name == step]

    # -- the end ------------------------------------------------------------------------------------

    def close(self) -> None:
        """Detach the engine from the app (a given app leaves eager mode as it was), close the
        database and remove the temporary directory. Calling it again does nothing."""
        if self._closed:
            return
        self._closed = True
        engine = self._durable
        if engine is not None and engine._attached is not None:
            detach(engine, engine._attached)
        if self._app_given:
            for key, value in self._saved_conf.items():
                self.app.conf[key] = value
        else:
            self.app.close()
        if self._keeper is not None:
            self._keeper.close()
        if engine is not None:
            engine.db.dispose()
        if self._owned_dir:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> TestEnvironment:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- inside ---------------------------------------------------------------------------------------

    def _tick(self) -> None:
        """One tick, as beat runs it; what it wakes or dispatches runs here once it is done."""
        services = self.durable.services
        with services.dispatcher.held():
            report = tick(services)
        self._idle = not any(dataclasses.astuple(report))

    def _stuck(self, due: datetime, before: datetime | None) -> bool:
        """Is ``due`` a moment already past that the last tick was run for, and that tick did
        nothing? Then no tick will act on it (a row of a paused queue, say): it is not a matter
        of time, so no reason to keep ticking."""
        return due <= self.now and due == before and self._idle

    def _move_to(self, when: datetime) -> None:
        if when > self.now:
            self.clock.advance(when - self.now)

    def _progress(self, execution_id: str) -> tuple[bool, datetime | None]:
        """Has the execution ended; if not, when is its tree next due (None: not by time)."""
        with self.durable.db.connect() as conn:
            row = peek_txn(conn, execution_id)
            if row is None or ExecutionStatus(row["status"]) in TERMINAL:
                return True, None
            return False, next_due_txn(conn, tree_txn(conn, execution_id))

    def _next_due(self, execution_id: str | None, schedules: bool) -> datetime | None:
        with self.durable.db.connect() as conn:
            within = tree_txn(conn, execution_id) if execution_id is not None else None
            return next_due_txn(conn, within, schedules=schedules)


# -- the SQLite file -----------------------------------------------------------------------------------

#: One migrated database per (process, prefix), copied for each environment: migrating takes
#: longer than the tests it serves.
_TEMPLATES: dict[str, Path] = {}
_TEMPLATES_LOCK = threading.Lock()


def _fresh_sqlite(directory: Path, prefix: str) -> str:
    """An SQLite URL for a new file in ``directory`` holding the current schema."""
    target = directory / "state.db"
    with _TEMPLATES_LOCK:
        template = _TEMPLATES.get(prefix)
        if template is None or not template.exists():
            folder = tempfile.mkdtemp(prefix="durable-test-schema-")
            atexit.register(shutil.rmtree, folder, True)
            template = Path(folder) / "state.db"
            engine = Durable(None, f"sqlite:///{template}", prefix=prefix, data_dir=template.parent)
            try:
                engine.ensure_schema()
            finally:
                engine.db.dispose()  # the last connection to close folds the WAL into the file
            _TEMPLATES[prefix] = template
    shutil.copyfile(template, target)
    return f"sqlite:///{target}"


def _fast_sqlite(durable: Durable) -> Any:
    """No ``fsync`` on this throwaway file, and one connection kept open for the
    environment's life, so the write-ahead log is not folded back and removed each time the
    engine's last connection closes (it opens one per transaction). Returns that connection."""

    def no_sync(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA synchronous=OFF")
        cursor.close()

    engine = durable.db.engine
    event.listen(engine, "connect", no_sync)
    return engine.raw_connection()


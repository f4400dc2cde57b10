"""The client calls that operate a deployment, a part of ``Durable`` (it inherits them):
``cleanup``, ``doctor``, ``why`` and ``migrate_executions``. See docs/operations.md and
docs/migrating-executions.md."""

from __future__ import annotations

from collections.abc import Generator, Iterable, Mapping
from typing import TYPE_CHECKING

from durable_celery.durations import Duration, optional_seconds
from durable_celery.engine.migrate import check_mapping
from durable_celery.errors import ExecutionNotFound, InvalidInput
from durable_celery.identifiers import check_execution_id
from durable_celery.limits import check_name
from durable_celery.operations import doctor as doctor_checks
from durable_celery.operations import migrate as moves
from durable_celery.operations import retention
from durable_celery.operations.consumers import live_queues
from durable_celery.operations.why import explain
from durable_celery.runtime import live
from durable_celery.state.diagnosis import active_fanout_txn, pending_waits_txn
from durable_celery.state.executions import peek_txn

if TYPE_CHECKING:
    from celery import Celery

    from durable_celery.clock import Clock
    from durable_celery.dsl.workflow import Workflow
    from durable_celery.models import LifecycleEvent, MigrationResult
    from durable_celery.registry import Registry
    from durable_celery.runtime.dispatch import Dispatcher
    from durable_celery.runtime.services import Services
    from durable_celery.settings import Settings
    from durable_celery.state.db import Database

#: the largest event id (a Postgres bigint)
MAX_EVENT_ID = 2**63 - 1


class OperationsCalls:
    """Retention and diagnosis (mixed into ``Durable``)."""

    if TYPE_CHECKING:
        settings: Settings
        db: Database
        clock: Clock
        registry: Registry

        @property
        def dispatcher(self) -> Dispatcher: ...

        @property
        def app(self) -> Celery: ...

        @property
        def services(self) -> Services: ...

        def ensure_schema(self) -> None: ...

        def prepare(self) -> None: ...

        def _queue_for(self, workflow: str, state_id: str | None, queue: str, version: str | None = None) -> str: ...

    def subscribe(self, execution_id: str | None = None, workflow: str | None = None,
                  kinds: Iterable[str] | None = None, *, after: int | None = None,
                  timeout: Duration | None = None) -> Generator[LifecycleEvent, None, None]:
        """Lifecycle events from now on, as they happen, oldest first (docs/operations.md#live-events):
        an iterator that blocks for the next event; stop it by leaving the loop (or ``close()``).

        Events come within a second, from every process of the deployment: on PostgreSQL a
        NOTIFY wakes the iterator, on the embedded SQLite default it polls. The engine writes
        events only while someone subscribes (a look for subscribers at most once a second per
        process), so events from the first second of a subscription may be missing.

        Args:
            execution_id: only this execution's events (with its branches' and iterations').
            workflow: only executions of this workflow.
            kinds: only these kinds (see ``durable_celery.runtime.live.KINDS``).
            after: the id of the last event a previous subscription received: go on from
                there (events are kept 10 minutes), to reconnect without a gap.
            timeout: stop iterating after this long without an event (a ``timedelta`` or
                seconds; None: never).
        """
        if execution_id is not None:
            check_execution_id(execution_id)
        if workflow is not None:
            check_name(workflow, "workflow")
        wanted = None
        if kinds is not None:
            if isinstance(kinds, (str, bytes)) or not isinstance(kinds, Iterable):
                raise InvalidInput(f"kinds must be a list of event kinds, got {kinds!r}")
            wanted = list(kinds)
            unknown = sorted(repr(k) for k in wanted if not isinstance(k, str) or k not in live.KINDS)
            if unknown:
                raise InvalidInput(f"unknown event kind(s) {', '.join(unknown)}; kinds are: {', '.join(live.KINDS)}")
        if after is not None and (isinstance(after, bool) or not isinstance(after, int)
                                  or not 0 <= after <= MAX_EVENT_ID):
            raise InvalidInput(f"after must be an event id (an int from 0 to {MAX_EVENT_ID}), got {after!r}")
        idle = optional_seconds(timeout, "timeout")
        self.ensure_schema()
        return live.subscribe(self.db, self.clock, self.settings.prefix, execution_id=execution_id,
                              workflow=workflow, kinds=wanted, after=after, timeout=idle)

    def cleanup(self, older_than: Duration, statuses: Iterable[str] | None = None, batch_size: int = 1000,
                dry_run: bool = False) -> retention.CleanupReport:
        """Delete finished top-level executions that completed more than ``older_than`` ago,
        with their branches and iterations, step attempts, waits and events, and the events
        emitted by name that no active execution can still receive.

        It works in batches of ``batch_size`` executions, each its own short transaction that
        skips rows someone holds, so running workflows never wait for it. It never deletes an
        execution whose tree has an active member, nor a child workflow whose caller is still
        active. Safe to run from several processes at once, and to stop at any time.

        Args:
            older_than: a ``timedelta`` or a number of seconds, measured from ``completed_at``.
            statuses: only these final statuses (``completed``, ``failed``, ``cancelled``,
                ``compensated``, ``compensation_failed``); None for all of them.
            batch_size: executions per transaction (1 to 100,000).
            dry_run: count what would be deleted, delete nothing.

        Returns:
            A :class:`~durable_celery.operations.retention.CleanupReport` with the counts.

        Raises:
            InvalidInput: a bad argument (nothing is deleted).
        """
        retention.check_statuses(statuses)  # before the schema is touched: bad input changes nothing
        retention.check_batch_size(batch_size)
        self.ensure_schema()
        return retention.cleanup(self.db, self.clock, older_than, statuses, batch_size, dry_run)

    def doctor(self, fix: bool = False) -> doctor_checks.DoctorReport:
        """Check why executions might not be moving (see ``durable_celery/operations/doctor.py``):
        the beat tick, queues without a live worker, expired leases, waits nothing can wake,
        stalled compensations, disabled schedules, the schema. ``fix=True`` first runs one tick
        in this process (recovery and re-dispatch, as beat does). Never migrates the schema."""
        if not isinstance(fix, bool):
            raise InvalidInput(f"fix must be True or False, got {fix!r}")
        return doctor_checks.diagnose(self._probe(), self._tick_services if fix else None)

    def _tick_services(self) -> Services:
        self.prepare()
        return self.services

    def _probe(self) -> doctor_checks.Probe:
        return doctor_checks.Probe(self.db, self.settings, self.clock, self._queue_for, lambda: live_queues(self.app))

    def why(self, execution_id: str) -> str | None:
        """One line on why an execution is not moving (waiting for an event, leased by a worker,
        dispatched on a queue no worker consumes, a retry due at ...); None once it has finished.

        Raises:
            ExecutionNotFound: no such execution. InvalidInput: not an execution id.
        """
        check_execution_id(execution_id)
        self.ensure_schema()
        with self.db.connect() as conn:
            row = peek_txn(conn, execution_id)
            if row is None:
                raise ExecutionNotFound(execution_id)
            waits = pending_waits_txn(conn, execution_id, row["entered_seq"])
            fanout = active_fanout_txn(conn, execution_id)
        queue = self._queue_for(row["workflow"], row["current_node"], row["queue"], row["version"])
        return explain(row, waits, fanout, self.clock.now(), queue, self._consumers_or_none)

    def _consumers_or_none(self) -> dict[str, list[str]] | None:
        try:
            return live_queues(self.app)
        except Exception:  # a broker that cannot be asked: the line says so
            return None


    def migrate_executions(self, workflow: Workflow | str, mapping: Mapping[str, str], ids: Iterable[str] | None = None,
                           dry_run: bool = True, *, restart_step: bool = False) -> MigrationResult:
        """Move in-flight executions of ``workflow`` that stand on a node of an earlier version
        onto the deployed definition, at the state ``mapping`` names for that node
        (docs/migrating-executions.md). Each moves in a transaction of its own, recorded in its
        history (a ``$migrated`` row in ``get_execution(..., include_steps=True).steps``).

        Only executions that are waiting, idle (runnable with no step in flight) or failed with
        ``DefinitionChanged`` (re-opened and run again) move; one whose step is running, or that
        a worker holds at that moment, is skipped and reported, never touched.

        Args:
            workflow: the ``Workflow`` or its name; its currently registered definition is the target.
            mapping: old node id -> state id in the deployed definition (a step, decision,
                parallel or foreach state at top level). A key no execution stands on is reported
                in ``unmatched``, not an error.
            ids: only these executions (each reported if it does not move); None: all that
                stand on a mapped node.
            dry_run: (the default) write nothing; report what would move.
            restart_step: False: the target continues the step's visit (the same step, renamed
                or changed): its journal replays, its pending waits stay. True: the target
                starts afresh (mapping onto another step); the old visit's pending waits are cancelled.

        Returns:
            A :class:`~durable_celery.models.MigrationResult`: moved (or would-move) ids by old
            node, the skipped executions with reasons, the unmatched mapping keys.

        Raises:
            WorkflowNotFound: unknown workflow. InvalidInput: a target that is not a state an
            execution can stand on, a bad id or argument; nothing is written.
        """
        if not isinstance(dry_run, bool) or not isinstance(restart_step, bool):
            raise InvalidInput(f"dry_run and restart_step must be True or False, got {dry_run!r}, {restart_step!r}")
        machine = self.registry.machine_for(workflow)
        checked = check_mapping(machine, mapping)
        wanted = moves.check_ids(ids)
        dispatcher = None if dry_run else self.dispatcher  # before anything is written: moves are published
        self.ensure_schema()
        return moves.migrate_executions(self.db, self.clock, dispatcher, machine, checked, wanted, dry_run=dry_run,
                                        restart_step=restart_step)

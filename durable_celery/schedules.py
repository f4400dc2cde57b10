"""The client calls on cron schedules, a part of ``Durable`` (it inherits them): ``schedule``,
``get_schedule``, ``list_schedules``, ``update_schedule``, ``enable_schedule``,
``disable_schedule``, ``delete_schedule``, ``trigger_schedule``. Each change is one
transaction; bad input raises before anything is written. See docs/schedules.md."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from durable_celery import codec
from durable_celery.clock import as_utc
from durable_celery.dsl.workflow import Workflow
from durable_celery.errors import InvalidInput, ScheduleNotFound
from durable_celery.limits import check_count, check_name
from durable_celery.models import Schedule
from durable_celery.runtime.schedules import sync_code_schedules
from durable_celery.runtime.starts import check_options, encode_input, input_model, new_execution_row
from durable_celery.scheduling.cron import parse
from durable_celery.scheduling.plan import first_run
from durable_celery.state.executions import insert_execution_txn
from durable_celery.state.schedules import (
    count_schedules_txn,
    delete_schedule_txn,
    get_schedule_txn,
    insert_schedule_txn,
    list_schedules_txn,
    update_schedule_txn,
)

if TYPE_CHECKING:
    from durable_celery.attachment import Attachment
    from durable_celery.clock import Clock
    from durable_celery.registry import Registry
    from durable_celery.settings import Settings
    from durable_celery.state.db import Database

#: What ``update_schedule`` may change: the keyword names of ``schedule``.
UPDATABLE = ("workflow", "cron", "input", "timezone", "queue", "enabled")
_UNSET: Any = object()


class ScheduleCalls:
    """The schedule half of the client API (mixed into ``Durable``)."""

    if TYPE_CHECKING:
        settings: Settings
        db: Database
        clock: Clock
        registry: Registry

        def ensure_schema(self) -> None: ...

        def _attachment(self) -> Attachment: ...

    _schedules_synced = False

    def schedule(self, workflow: Workflow | str, cron: str, *, name: str | None = None,
                 input: dict[str, Any] | None = None, timezone: str = "UTC", queue: str | None = None,
                 enabled: bool = True) -> Schedule:
        """Store a cron schedule: beat starts ``workflow`` with ``input`` at each time ``cron``
        names in ``timezone``.

        Args:
            workflow: the ``Workflow`` or its name (it must be registered here).
            cron: 5 fields (``"0 9 * * MON-FRI"``), or 6 with seconds last (``"* * * * * */10"``).
            name: the schedule's name (default: the workflow's name).
            input: the input of each run (a JSON-storable dict).
            timezone: an IANA name; the cron is read in local time there (DST included).
            queue: the queue of its runs (default: the workflow's, else the engine's).
            enabled: False stores it without running it.

        Returns:
            The stored ``Schedule``; ``next_run_at`` is its first time after now.

        Raises:
            InvalidInput: a bad cron, timezone, input, name or queue, or a schedule of that name
                exists. WorkflowNotFound: an unknown workflow. Nothing is stored then.
        """
        machine = self.registry.machine_for(workflow)
        name = _name(machine.workflow if name is None else name)
        spec = parse(cron, timezone)
        stored_input = encode_input(input, self.settings.max_payload_bytes, input_model(machine))
        check_options(queue=queue)
        if not isinstance(enabled, bool):
            raise InvalidInput(f"enabled must be True or False, got {enabled!r}")
        now = self.clock.now()
        row = {"name": name, "workflow": machine.workflow, "cron": spec.expression, "timezone": spec.timezone,
               "input": stored_input, "queue": queue, "enabled": enabled, "origin": "client",
               "next_run_at": first_run(spec, now) if enabled else None, "consecutive_failures": 0,
               "created_at": now, "updated_at": now}
        self.ensure_schema()
        with self.db.begin() as conn:
            if not insert_schedule_txn(conn, row):
                raise InvalidInput(f"a schedule named {name!r} exists: change it with update_schedule, or give "
                                   "this one another name")
            stored = get_schedule_txn(conn, name)
        return _to_schedule(stored)

    def get_schedule(self, name: str) -> Schedule:
        """The schedule of that name; raises ``ScheduleNotFound``."""
        self.ensure_schema()
        with self.db.connect() as conn:
            row = get_schedule_txn(conn, _name(name))
        if row is None:
            raise ScheduleNotFound(name)
        return _to_schedule(row)

    def list_schedules(self, enabled: bool | None = None, workflow: Workflow | str | None = None,
                       queue: str | None = None, limit: int = 100, offset: int = 0) -> list[Schedule]:
        """Schedules by name, filtered by ``enabled``, workflow (a ``Workflow`` or its name) and queue."""
        if enabled is not None and not isinstance(enabled, bool):
            raise InvalidInput(f"enabled must be True, False or None, got {enabled!r}")
        check_count(limit, "limit")
        check_count(offset, "offset")
        name = workflow.name if isinstance(workflow, Workflow) else workflow
        if name is not None:
            check_name(name, "workflow")
        if queue is not None:
            check_name(queue, "queue")
        self.ensure_schema()
        with self.db.connect() as conn:
            rows = list_schedules_txn(conn, enabled=enabled, workflow=name, queue=queue, limit=limit, offset=offset)
        return [_to_schedule(row) for row in rows]

    def update_schedule(self, name: str, /, **changes: Any) -> Schedule:
        """Change a schedule: ``workflow``, ``cron``, ``input``, ``timezone``, ``queue``,
        ``enabled`` (the keyword names of ``schedule``). A new cron or timezone, or enabling it,
        makes its next run the first time after now that the cron names.

        Raises:
            ScheduleNotFound: no such schedule. InvalidInput: an unknown or bad change.
            WorkflowNotFound: an unknown workflow. Nothing is changed then.
        """
        unknown = sorted(set(changes) - set(UPDATABLE))
        if unknown:
            raise InvalidInput(f"update_schedule changes {', '.join(UPDATABLE)}, not {', '.join(unknown)}")
        values: dict[str, Any] = {}
        if "workflow" in changes:
            values["workflow"] = self.registry.machine_for(changes["workflow"]).workflow
        if "input" in changes:
            values["input"] = encode_input(changes["input"], self.settings.max_payload_bytes)
        if "queue" in changes:
            check_options(queue=changes["queue"])
            values["queue"] = changes["queue"]
        enabled = changes.get("enabled", _UNSET)
        if enabled is not _UNSET and not isinstance(enabled, bool):
            raise InvalidInput(f"enabled must be True or False, got {enabled!r}")
        if "cron" in changes or "timezone" in changes:
            parse(changes.get("cron", "* * * * *"), changes.get("timezone", "UTC"))  # each checked alone first
        return self._change(name, values, changes.get("cron"), changes.get("timezone"), enabled)

    def enable_schedule(self, name: str) -> Schedule:
        """Enable a schedule (also one that failures disabled: its failure count starts over).
        Its next run is the first time after now; the times missed while disabled are not run."""
        return self._change(name, {}, None, None, True)

    def disable_schedule(self, name: str) -> Schedule:
        """Disable a schedule: beat starts no run of it until it is enabled again."""
        return self._change(name, {}, None, None, False)

    def delete_schedule(self, name: str) -> None:
        """Delete a schedule (runs already started go on); raises ``ScheduleNotFound``."""
        self.ensure_schema()
        with self.db.begin() as conn:
            if not delete_schedule_txn(conn, _name(name)):
                raise ScheduleNotFound(name)

    def trigger_schedule(self, name: str, input: dict[str, Any] | None = None) -> str:
        """Start a run of the schedule now, whether it is enabled or not, with ``input`` (default:
        the schedule's). Its ``last_run_at`` is set; its ``next_run_at`` is not changed.

        Returns:
            The new execution's id.

        Raises:
            ScheduleNotFound: no such schedule. WorkflowNotFound: its workflow is not
            registered here. InvalidInput: a bad input. Nothing is started then.
        """
        self._attachment()  # before anything is written: the start is published through the app
        self.ensure_schema()
        now = self.clock.now()
        with self.db.begin() as conn:
            schedule = get_schedule_txn(conn, _name(name), lock=True)
            if schedule is None:
                raise ScheduleNotFound(name)
            machine = self.registry.machine_for(schedule["workflow"])
            row = new_execution_row(machine, self.settings, codec.decode(schedule["input"]) if input is None else input,
                                    now, queue=schedule["queue"])
            execution_id, _ = insert_execution_txn(conn, row)
            update_schedule_txn(conn, schedule["name"], {"last_run_at": now, "last_execution_id": execution_id,
                                                         "updated_at": now})
        self._attachment().services.dispatcher.publish([row])
        return execution_id

    def schedule_summary(self) -> dict[str, Any]:
        """``{"total": n, "enabled": n, "next_run_at": datetime | None}`` (for ``durable status``)."""
        self.ensure_schema()
        with self.db.connect() as conn:
            total, enabled, next_due = count_schedules_txn(conn)
        return {"total": total, "enabled": enabled, "next_run_at": as_utc(next_due) if next_due else None}

    def sync_schedules(self) -> int:
        """Store the schedules declared on the registered workflows (``Workflow(schedule=Cron(...))``);
        workers and beat do it when they boot. Returns how many there are."""
        self.ensure_schema()
        synced = sync_code_schedules(self.registry, self.db, self.clock.now())
        self._schedules_synced = True
        return synced

    def _prepare_state(self) -> None:
        """The schema, then (once per process) the schedules declared in code: what a worker
        and beat do at boot, after the workflows are loaded."""
        self.ensure_schema()
        if not self._schedules_synced:
            self.sync_schedules()

    def _change(self, name: str, values: dict[str, Any], cron: str | None, timezone: str | None,
                enabled: Any) -> Schedule:
        self.ensure_schema()
        now = self.clock.now()
        with self.db.begin() as conn:
            row = get_schedule_txn(conn, _name(name), lock=True)
            if row is None:
                raise ScheduleNotFound(name)
            spec = parse(cron if cron is not None else row["cron"], timezone if timezone is not None else row["timezone"])
            values.update(cron=spec.expression, timezone=spec.timezone, updated_at=now)
            on = row["enabled"] if enabled is _UNSET else enabled
            values["enabled"] = on
            if not on:
                values["next_run_at"] = None
            elif not row["enabled"] or row["next_run_at"] is None or (spec.expression, spec.timezone) != (
                    row["cron"], row["timezone"]):
                values["next_run_at"] = first_run(spec, now)
            if on and not row["enabled"]:
                values.update(consecutive_failures=0, auto_disabled_at=None)
            updated = update_schedule_txn(conn, row["name"], values)
        assert updated is not None
        return _to_schedule(updated)


def _name(name: Any) -> str:
    if not isinstance(name, str) or not name or len(name) > 200:
        raise InvalidInput(f"a schedule name is a string of 1 to 200 characters, got {name!r}")
    return check_name(name, "schedule name")


def _to_schedule(row: Mapping[Any, Any] | None) -> Schedule:
    assert row is not None

    def when(value: Any) -> Any:
        return as_utc(value) if value is not None else None

    return Schedule(
        name=row["name"], workflow=row["workflow"], cron=row["cron"], timezone=row["timezone"],
        input=codec.decode(row["input"]), queue=row["queue"], enabled=bool(row["enabled"]),
        last_run_at=when(row["last_run_at"]), next_run_at=when(row["next_run_at"]),
        consecutive_failures=row["consecutive_failures"], last_error=row["last_error"],
        last_error_at=when(row["last_error_at"]), auto_disabled_at=when(row["auto_disabled_at"]),
        last_execution_id=row["last_execution_id"], origin=row["origin"],
    )

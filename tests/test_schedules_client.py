"""The schedule client calls, on PostgreSQL and on the embedded SQLite store, in Celery's eager
mode on a frozen clock: ``advance_time`` runs the tick as beat would, so due schedules start
their runs here. Each slot starts one run; missed slots follow the catch-up policy; bad input
changes nothing; failures are recorded and disable the schedule; schedules declared in code are
stored at boot and keep what was set at run time."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from sqlalchemy import text

from durable_celery import (
    Cron,
    Durable,
    InvalidInput,
    Schedule,
    ScheduleNotFound,
    Workflow,
    WorkflowNotFound,
    hours,
    minutes,
)
from durable_celery.clock import FrozenClock
from tests.conftest import POSTGRES

T0 = datetime(2030, 1, 7, 8, 59, 30, tzinfo=timezone.utc)  # a Monday

report = Workflow("sched_report")


@report.step
def build(ctx: dict[str, Any]) -> dict[str, Any]:
    return {**ctx, "built": True}


def declared(input: dict[str, Any], expression: str = "0 9 * * *") -> Workflow:
    flow = Workflow("sched_declared", schedule=Cron(expression, timezone="Europe/Berlin", input=input))

    @flow.step
    def run(ctx: dict[str, Any]) -> dict[str, Any]:
        return ctx

    return flow


class Store:
    """Durable instances on one database (a Postgres schema or a SQLite file), each a "boot"."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self.prefix = f"t_{uuid.uuid4().hex[:10]}"
        self.url = POSTGRES if kind == "postgres" else f"sqlite:///{tmp_path / 'state.db'}"
        self.tmp_path = tmp_path
        self.clock = FrozenClock(T0)
        self.made: list[Durable] = []

    def boot(self, workflows: list[Workflow], **settings: Any) -> Durable:
        app = Celery(f"sched-{uuid.uuid4().hex[:8]}")
        app.conf.task_always_eager = True
        durable = Durable(app, database_url=self.url, workflows=workflows, prefix=self.prefix, clock=self.clock,
                          data_dir=self.tmp_path, **settings)
        durable.prepare()  # what a worker does at boot
        self.made.append(durable)
        return durable

    def close(self) -> None:
        if self.kind == "postgres" and self.made:
            with self.made[0].db.begin() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{self.prefix}" CASCADE'))
        for durable in self.made:
            durable.db.dispose()


@pytest.fixture(params=["postgres", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    made = Store(request.param, tmp_path)
    yield made
    made.close()


def runs(durable: Durable, workflow: str = "sched_report") -> list[tuple[datetime | None, str]]:
    """(slot, status) of every run of ``workflow``, oldest slot first."""
    found = durable.list_executions(workflow=workflow, limit=1000)
    return sorted((e.scheduled_at, e.status.value) for e in found if e.scheduled_at is not None)


def at(hour: int, minute: int = 0, day: int = 7) -> datetime:
    return datetime(2030, 1, day, hour, minute, tzinfo=timezone.utc)


def test_a_schedule_starts_one_run_per_slot_as_time_passes(store: Store) -> None:
    durable = store.boot([report])
    made = durable.schedule(report, "0 9-11 * * MON-FRI", input={"kind": "daily"})
    assert isinstance(made, Schedule)
    assert (made.name, made.workflow, made.cron, made.timezone, made.enabled) == (
        "sched_report", "sched_report", "0 9-11 * * MON-FRI", "UTC", True)
    assert made.next_run_at == at(9) and made.last_run_at is None

    durable.advance_time(minutes(1))  # 09:00:30
    assert runs(durable) == [(at(9), "completed")]
    durable.run_due()  # a tick run twice starts nothing more
    for _ in range(3):  # to 12:00:30, a tick each hour
        durable.advance_time(hours(1))
    assert [slot for slot, _ in runs(durable)] == [at(9), at(10), at(11)]
    now = durable.get_schedule("sched_report")
    assert now.next_run_at == at(9, day=8) and now.last_run_at == T0 + timedelta(hours=2, minutes=1)
    execution = durable.get_execution(now.last_execution_id or "")
    assert execution.input == {"kind": "daily"} and execution.context["built"] is True


@pytest.mark.parametrize("policy, slots", [
    ("one", [at(9)]),                       # the missed 09:00-11:00 slots: one run
    ("all", [at(9), at(10), at(11)]),       # one run each
    ("none", []),                           # none
])
def test_missed_slots_follow_the_catch_up_policy(store: Store, policy: str, slots: list[datetime]) -> None:
    durable = store.boot([report], schedule_catch_up=policy, schedule_misfire_grace=120)
    durable.schedule(report, "0 9-11 * * *")
    store.clock.advance(hours(3))  # no tick ran from 08:59:30 to 11:59:30
    durable.run_due()
    assert [slot for slot, _ in runs(durable)] == slots
    assert durable.get_schedule("sched_report").next_run_at == at(9, day=8)


def test_update_disable_enable_trigger_and_delete(store: Store) -> None:
    durable = store.boot([report])
    durable.schedule(report, "*/15 * * * *", name="quarterly", input={"n": 1}, queue="reports")
    updated = durable.update_schedule("quarterly", cron="0 * * * *", timezone="America/New_York", input={"n": 2})
    assert (updated.cron, updated.timezone, updated.input, updated.queue) == (
        "0 * * * *", "America/New_York", {"n": 2}, "reports")
    assert updated.next_run_at == at(9)

    off = durable.disable_schedule("quarterly")
    assert off.enabled is False and off.next_run_at is None
    durable.advance_time(hours(2))
    assert runs(durable) == []  # disabled: nothing ran
    execution_id = durable.trigger_schedule("quarterly", input={"n": 3})  # by hand, disabled or not
    triggered = durable.get_execution(execution_id)
    assert triggered.input == {"n": 3} and triggered.queue == "reports" and triggered.status == "completed"
    after = durable.get_schedule("quarterly")
    assert after.last_run_at == store.clock.now() and after.next_run_at is None  # next run untouched

    on = durable.enable_schedule("quarterly")
    assert on.enabled and on.next_run_at == at(11)  # from now; the slots missed while off are not run
    assert [s.name for s in durable.list_schedules(enabled=True, workflow=report, queue="reports")] == ["quarterly"]
    assert durable.list_schedules(enabled=False) == [] and durable.list_schedules(queue="other") == []

    durable.delete_schedule("quarterly")
    for call in (durable.get_schedule, durable.enable_schedule, durable.delete_schedule, durable.trigger_schedule):
        with pytest.raises(ScheduleNotFound, match="quarterly"):
            call("quarterly")
    with pytest.raises(ScheduleNotFound):
        durable.update_schedule("quarterly", enabled=True)


@pytest.mark.parametrize("call, error, message", [
    (lambda d: d.schedule(report, "61 * * * *"), InvalidInput, "not a valid cron"),
    (lambda d: d.schedule(report, "0 9 * *"), InvalidInput, "4 fields"),
    (lambda d: d.schedule(report, "0 9 * * *", timezone="Moon/Base"), InvalidInput, "unknown timezone"),
    (lambda d: d.schedule(report, "0 9 * * *", input={"at": object()}), InvalidInput, "cannot be stored"),
    (lambda d: d.schedule("no_such_flow", "0 9 * * *"), WorkflowNotFound, "no_such_flow"),
    (lambda d: d.schedule(report, "0 9 * * *", queue=""), InvalidInput, "queue"),
    (lambda d: d.update_schedule("kept", cron="0 9 * * FUNDAY"), InvalidInput, "not a valid cron"),
    (lambda d: d.update_schedule("kept", timezone="Nowhere/City"), InvalidInput, "unknown timezone"),
    (lambda d: d.update_schedule("kept", name="renamed"), InvalidInput, "not name"),
    (lambda d: d.update_schedule("kept", workflow="no_such_flow"), WorkflowNotFound, "no_such_flow"),
    (lambda d: d.schedule(report, "0 10 * * *", name="kept"), InvalidInput, "exists"),
])
def test_bad_input_is_rejected_and_nothing_is_saved(store: Store, call: Any, error: type, message: str) -> None:
    durable = store.boot([report])
    kept = durable.schedule(report, "0 9 * * *", name="kept")
    with pytest.raises(error, match=message):
        call(durable)
    assert durable.list_schedules() == [kept]


def test_a_schedule_whose_start_fails_is_disabled_after_max_failures(store: Store) -> None:
    # Stored by a deploy that had the workflow, run by one that has not
    store.boot([report]).schedule(report, "* * * * *")
    durable = store.boot([], schedule_max_failures=3)
    for minute in range(1, 3):
        durable.advance_time(minutes(1))
        failing = durable.get_schedule("sched_report")
        assert failing.enabled and failing.consecutive_failures == minute
        assert failing.last_error == "WorkflowNotFound: no workflow named 'sched_report' is registered"
    durable.advance_time(minutes(1))
    disabled = durable.get_schedule("sched_report")
    assert (disabled.enabled, disabled.consecutive_failures, disabled.next_run_at) == (False, 3, None)
    assert disabled.auto_disabled_at == store.clock.now() and runs(durable) == []
    # Back in the code and enabled again: its failures start over and it runs
    healed = store.boot([report])
    assert healed.enable_schedule("sched_report").consecutive_failures == 0
    healed.advance_time(minutes(1))
    ran = healed.get_schedule("sched_report")
    assert ran.last_error is None and ran.consecutive_failures == 0 and len(runs(healed)) == 1


def test_a_schedule_declared_in_code_is_stored_at_boot_and_keeps_its_run_time_state(store: Store) -> None:
    durable = store.boot([declared({"v": 1})])
    stored = durable.get_schedule("sched_declared")
    assert (stored.cron, stored.timezone, stored.input, stored.enabled, stored.origin) == (
        "0 9 * * *", "Europe/Berlin", {"v": 1}, True, "code")
    assert stored.next_run_at == at(8, day=8)  # 09:00 in Berlin is 08:00 UTC in winter
    durable.disable_schedule("sched_declared")

    rebooted = store.boot([declared({"v": 2})])  # a new deploy: same cron, new input
    after = rebooted.get_schedule("sched_declared")
    assert (after.input, after.enabled, after.next_run_at) == ({"v": 2}, False, None)  # disabled stays so

    rebooted.enable_schedule("sched_declared")
    retimed = store.boot([declared({"v": 2}, "30 9 * * *")]).get_schedule("sched_declared")
    assert retimed.enabled and retimed.next_run_at == at(8, 30, day=8)  # a new cron: a new next run
    assert store.boot([declared({"v": 2}, "30 9 * * *")]).get_schedule("sched_declared") == retimed
    assert len(rebooted.list_schedules()) == 1


def test_a_bad_cron_on_a_definition_fails_when_it_is_defined() -> None:
    with pytest.raises(InvalidInput, match="not a valid cron"):
        Workflow("bad_cron", schedule=Cron("0 25 * * *"))
    with pytest.raises(InvalidInput, match="unknown timezone"):
        Cron("0 9 * * *", timezone="Europe/Nowhere")

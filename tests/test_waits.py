"""Waits on real workers: the execution is suspended durably (status waiting, no worker held)
and resumes when its event, input, timer or timeout arrives; every wait it passed returns its
recorded value when the step runs again."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from durable_celery import ExecutionNotFound, InvalidInput, InvalidState
from tests.conftest import Project


def waiting(p: Project, execution_id: str) -> None:
    p.wait(execution_id, statuses={"waiting"}, timeout=20)


def test_a_short_sleep_resumes_when_it_falls_due_without_holding_a_worker(running_project: Project) -> None:
    p = running_project
    execution_id = p.durable.start("napper", {"seconds": 2})
    waiting(p, execution_id)
    suspended = p.durable.get_execution(execution_id, include_steps=True)
    assert suspended.steps[-1].status == "waiting"  # shown, though nothing runs
    assert p.sql("SELECT lease_owner FROM {schema}.workflow_executions WHERE id = :id", id=execution_id)[0][0] is None
    execution = p.wait(execution_id)
    assert execution.status == "completed" and execution.context["woke"] is True
    # The sleep was recorded as due 2 s after it was reached, and resolved no earlier
    (created_at, timeout_at, resolved_at), = p.sql(
        "SELECT created_at, timeout_at, resolved_at FROM {schema}.waits WHERE execution_id = :id", id=execution_id)
    assert (timeout_at - created_at).total_seconds() == 2
    assert resolved_at >= timeout_at
    assert p.effects(execution_id) == {"nap": 2}  # ran, then resumed once


def test_an_event_resumes_the_wait_with_its_payload(running_project: Project) -> None:
    p = running_project
    execution_id = p.durable.start("eventful", {})
    waiting(p, execution_id)
    p.durable.send_event(execution_id, "paid", {"amount": 30})
    execution = p.wait(execution_id)
    assert execution.status == "completed" and execution.context["payment"] == {"amount": 30}


def test_a_wait_that_times_out_returns_its_timeout_value(running_project: Project) -> None:
    p = running_project
    execution = p.wait(p.durable.start("eventful", {"timeout": 1}))
    assert execution.status == "completed" and execution.context["payment"] == "timeout"


def test_an_event_sent_before_the_wait_is_reached_is_kept_and_consumed_there(running_project: Project) -> None:
    p = running_project
    execution_id = p.durable.start("eventful", {"warm_up": 1.5})
    p.wait(execution_id, statuses={"running"})
    p.durable.send_event(execution_id, "paid", {"amount": 5})  # the step before the wait is still running
    execution = p.wait(execution_id)
    assert execution.context["payment"] == {"amount": 5}
    assert p.effects(execution_id) == {"await_payment": 1}  # never had to suspend


def test_a_filter_skips_payloads_it_rejects_and_keeps_them(running_project: Project) -> None:
    p = running_project
    execution_id = p.durable.start("eventful", {"min": 100})
    waiting(p, execution_id)
    p.durable.send_event(execution_id, "paid", {"amount": 1})
    time.sleep(1)
    assert p.durable.get_execution(execution_id).status == "waiting"
    p.durable.send_event(execution_id, "paid", {"amount": 150})
    assert p.wait(execution_id).context["payment"] == {"amount": 150}
    statuses = p.sql("SELECT status FROM {schema}.events WHERE execution_id = :id ORDER BY id", id=execution_id)
    assert [s for s, in statuses] == ["pending", "consumed"]


def test_wait_for_any_takes_the_first_event_and_keeps_the_other(running_project: Project) -> None:
    p = running_project
    execution_id = p.durable.start("racing", {})
    waiting(p, execution_id)
    p.durable.send_event(execution_id, "failure", {"why": "card declined"})
    p.durable.send_event(execution_id, "success", {"id": 1})
    execution = p.wait(execution_id)
    assert execution.context["answer"] == ["failure", {"why": "card declined"}]
    rows = p.sql("SELECT name, status FROM {schema}.events WHERE execution_id = :id ORDER BY id", id=execution_id)
    assert [tuple(r) for r in rows] == [("failure", "consumed"), ("success", "pending")]


def test_wait_for_all_returns_every_payload_once_all_arrived(running_project: Project) -> None:
    p = running_project
    execution_id = p.durable.start("gathering", {})
    waiting(p, execution_id)
    p.durable.send_event(execution_id, "legal", "ok by legal")
    time.sleep(0.5)
    assert p.durable.get_execution(execution_id).status == "waiting"
    p.durable.send_event(execution_id, "finance", "ok by finance")
    assert p.wait(execution_id).context["sign_offs"] == {"legal": "ok by legal", "finance": "ok by finance"}


def test_wait_for_all_with_a_partial_arrival_then_a_timeout_returns_the_timeout_value(running_project: Project) -> None:
    p = running_project
    execution_id = p.durable.start("gathering", {"timeout": 2})
    waiting(p, execution_id)
    p.durable.send_event(execution_id, "legal", "ok by legal")
    execution = p.wait(execution_id)
    assert execution.context["sign_offs"] == ["timeout", "partial"]
    kept = p.sql("SELECT status, result FROM {schema}.waits WHERE execution_id = :id", id=execution_id)
    assert kept[0][0] == "timed_out" and kept[0][1] == {"legal": "ok by legal"}


def test_a_step_may_wait_several_times_and_replays_the_waits_it_passed(running_project: Project) -> None:
    p = running_project
    execution_id = p.durable.start("twice", {})
    waiting(p, execution_id)
    p.durable.send_event(execution_id, "a", 1)
    deadline = time.monotonic() + 10
    while p.effects(execution_id).get("two_waits", 0) < 3 or p.durable.get_execution(execution_id).status != "waiting":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    p.durable.send_event(execution_id, "b", 2)
    execution = p.wait(execution_id)
    assert (execution.context["a"], execution.context["b"]) == (1, 2)
    notes = p.sql("SELECT note FROM {schema}.test_effects WHERE execution_id = :id ORDER BY id", id=execution_id)
    # first run stops at a; the second replays a and stops at b; the third replays both
    assert [n for n, in notes] == ["before", "before", "between", "before", "between"]


def test_an_approval_is_validated_listed_answered_once_and_resumes(running_project: Project) -> None:
    p = running_project
    # lingering after the answer: a second answer finds the execution still active
    execution_id = p.durable.start("asking", {"kind": "approval", "linger": True})
    waiting(p, execution_id)
    pending = [i for i in p.durable.list_pending_inputs() if i.workflow_id == execution_id]
    assert len(pending) == 1
    assert (pending[0].input_name, pending[0].type, pending[0].prompt, pending[0].metadata,
            pending[0].step_name, pending[0].status) == ("manager", "approval", "Approve?", {"amount": 10}, "ask", "pending")
    # bad data is refused and changes nothing
    with pytest.raises(InvalidInput, match="approved"):
        p.durable.provide_input(execution_id, "manager", "maybe")
    assert p.sql("SELECT count(*) FROM {schema}.events WHERE execution_id = :id", id=execution_id)[0][0] == 0
    p.durable.provide_input(execution_id, "manager", True)
    with pytest.raises(InvalidState, match="already provided"):
        p.durable.provide_input(execution_id, "manager", "rejected")
    p.durable.send_event(execution_id, "close")
    execution = p.wait(execution_id)
    assert execution.context["answer"] == "approved"
    done = [i for i in p.durable.list_pending_inputs(status="completed") if i.workflow_id == execution_id]
    assert done[0].response == "approved"


@pytest.mark.parametrize("kind, bad, good, expected", [
    ("choice", "green", {"value": "blue"}, None),
    ("form", {"name": "Ada", "age": "old"}, {"name": "Ada", "age": 36}, {"name": "Ada", "age": 36}),
    ("text", 42, "looks fine", "looks fine"),
])
def test_inputs_are_checked_against_their_declared_form(running_project: Project, kind: str, bad: object,
                                                        good: object, expected: object) -> None:
    p = running_project
    name = {"choice": "color", "form": "details", "text": "comment"}[kind]
    if kind == "choice":
        good = "blue"
        expected = "blue"
    execution_id = p.durable.start("asking", {"kind": kind})
    waiting(p, execution_id)
    with pytest.raises(InvalidInput):
        p.durable.provide_input(execution_id, name, bad)
    p.durable.provide_input(execution_id, name, good)
    assert p.wait(execution_id).context["answer"] == expected


def test_an_unanswered_approval_times_out_with_its_timeout_value(running_project: Project) -> None:
    p = running_project
    execution_id = p.durable.start("asking", {"kind": "approval", "timeout": 1})
    execution = p.wait(execution_id)
    assert execution.context["answer"] == "auto_rejected"
    timed_out = [i for i in p.durable.list_pending_inputs(status="timed_out") if i.workflow_id == execution_id]
    assert len(timed_out) == 1
    with pytest.raises(InvalidState):
        p.durable.provide_input(execution_id, "manager", "approved")


def test_events_for_unknown_or_finished_executions_or_with_bad_payloads_are_refused(running_project: Project) -> None:
    p = running_project
    with pytest.raises(ExecutionNotFound):
        p.durable.send_event("00000000-0000-0000-0000-000000000000", "paid")
    done = p.wait(p.durable.start("pipeline", {}))
    with pytest.raises(InvalidState):
        p.durable.send_event(done.id, "paid", {})
    execution_id = p.durable.start("eventful", {})
    with pytest.raises(InvalidInput):
        p.durable.send_event(execution_id, "paid", {"when": object()})
    with pytest.raises(InvalidInput):
        p.durable.send_event(execution_id, "", {})
    with pytest.raises(InvalidInput):
        p.durable.list_pending_inputs(timeout_before=datetime(2030, 1, 1))
    assert p.sql("SELECT count(*) FROM {schema}.events WHERE execution_id = :id", id=execution_id)[0][0] == 0
    p.durable.cancel(execution_id)


def test_an_event_that_arrives_after_the_timeout_does_not_win_it(project_factory) -> None:  # type: ignore[no-untyped-def]
    p = project_factory("redis")
    p.worker()  # no beat: nothing fires the timeout by itself
    execution_id = p.durable.start("eventful", {"timeout": 1})
    waiting(p, execution_id)
    time.sleep(1.5)
    p.durable.send_event(execution_id, "paid", {"amount": 1})  # late: wakes the step, which sees the timeout
    assert p.wait(execution_id).context["payment"] == "timeout"
    assert p.sql("SELECT status FROM {schema}.events WHERE execution_id = :id", id=execution_id)[0][0] == "pending"


def test_a_wait_survives_a_worker_restart(project_factory) -> None:  # type: ignore[no-untyped-def]
    p = project_factory("amqp")
    first = p.worker()
    execution_id = p.durable.start("eventful", {})
    waiting(p, execution_id)
    first.kill()
    p.worker()
    p.durable.send_event(execution_id, "paid", {"amount": 7})
    assert p.wait(execution_id).context["payment"] == {"amount": 7}


def test_two_beats_never_wake_a_sleeper_twice(project_factory) -> None:  # type: ignore[no-untyped-def]
    p = project_factory("redis", tick_interval=0.2)
    p.worker()
    p.beat()
    p.beat()
    ids = [p.durable.start("napper", {"seconds": 1}) for _ in range(12)]
    for execution_id in ids:
        assert p.wait(execution_id).status == "completed"
    assert all(p.effects(i) == {"nap": 2} for i in ids)


def test_a_beat_that_was_down_catches_up_on_sleeps_that_fell_due(project_factory) -> None:  # type: ignore[no-untyped-def]
    p = project_factory("redis")
    p.worker()
    execution_id = p.durable.start("napper", {"seconds": 1})
    waiting(p, execution_id)
    time.sleep(2)
    assert p.durable.get_execution(execution_id).status == "waiting"  # nobody fired it
    p.beat()
    assert p.wait(execution_id).status == "completed"


def test_scheduled_times_in_the_past_do_not_suspend(running_project: Project) -> None:
    p = running_project
    # Given a step that calls schedule_at(a day ago), then sleep(0)
    at = datetime.now(timezone.utc) - timedelta(days=1)
    execution = p.wait(p.durable.start("past_due", {"at": at.isoformat()}))
    # Then the workflow completed, and the step body ran exactly once: a wait that suspended
    # would have run it again from its top on resume
    assert execution.status == "completed" and execution.context["went_on"] is True
    assert p.effects(execution.id) == {"already_due": 1}
    assert [(s.step_name, s.attempt, s.status) for s in execution.steps] == [("already_due", 1, "completed")]
    # And both waits were resolved when they were reached, in the same transaction that
    # recorded them: never waited on, never woken by the tick
    waits = p.sql("SELECT idx, kind, status, timeout_at, created_at, resolved_at FROM {schema}.waits "
                  "WHERE execution_id = :id ORDER BY idx", id=execution.id)
    assert [(w.idx, w.kind, w.status) for w in waits] == [(0, "sleep", "resolved"), (1, "sleep", "resolved")]
    assert waits[0].timeout_at == at
    assert all(w.resolved_at == w.created_at for w in waits)


def test_schedule_at_outside_a_running_step_is_refused() -> None:
    from durable_celery.context import NotInStep
    from durable_celery.wait import schedule_at

    with pytest.raises(NotInStep, match="only available inside a running step"):
        schedule_at(datetime.now(timezone.utc) - timedelta(days=1))

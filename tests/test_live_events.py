"""Live lifecycle events: ``subscribe`` in this process receives, in order and within a second,
what a real worker (another process) and the client calls do to a workflow with a retry and a
wait. The engine writes events only while someone subscribes."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from durable_celery import InvalidInput, LifecycleEvent
from tests.conftest import Project

Factory = Callable[..., Project]


class Collector:
    """Iterates a subscription in a thread, keeping every event it yields."""

    def __init__(self, p: Project, **filters: Any) -> None:
        self.p = p
        self.events: list[LifecycleEvent] = []
        self._filters = filters
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        # subscribed once its heartbeat row is in (the engine then writes events)
        deadline = time.monotonic() + 10
        while not p.sql("SELECT 1 FROM {schema}.heartbeats WHERE name LIKE 'subscriber:%'"):
            assert time.monotonic() < deadline, "the subscription never registered"
            time.sleep(0.05)
        time.sleep(1.1)  # every process looks for subscribers at most once a second

    def _run(self) -> None:
        # short subscriptions, each going on after the last event the previous one received
        after = 0  # every event kept (this project's schema is new)
        while not self._stop.is_set():
            for event in self.p.durable.subscribe(**self._filters, after=after, timeout=0.2):
                self.events.append(event)
                after = event.id

    def until(self, kind: str, timeout: float = 30) -> list[LifecycleEvent]:
        deadline = time.monotonic() + timeout
        while not any(e.kind == kind for e in self.events):
            assert time.monotonic() < deadline, [e.kind for e in self.events]
            time.sleep(0.05)
        return list(self.events)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


def test_a_subscriber_receives_the_ordered_events_of_a_workflow_with_a_retry_and_a_wait(
        project_factory: Factory) -> None:
    p = project_factory("redis")
    p.worker()
    # Given a subscriber to the workflow's events
    watching = Collector(p, workflow="traced")
    try:
        # When it runs: its first step fails once, the next waits for an event sent from here
        execution_id = p.durable.start("traced", {"order": "o-1"})
        waiting = watching.until("execution.waiting")
        sent = time.monotonic()
        p.durable.send_event(execution_id, "approved", {"by": "ada"})
        events = watching.until("execution.completed")
        took = time.monotonic() - sent
    finally:
        watching.close()
    # Then it received every event, in the order they happened
    assert [(e.kind, e.step, e.attempt) for e in events] == [
        ("execution.started", None, None),
        ("step.started", "charge", 1), ("step.retrying", "charge", 1),
        ("step.started", "charge", 2), ("step.completed", "charge", 2),
        ("step.started", "approve", 1), ("execution.waiting", "approve", None),
        ("execution.resumed", "approve", None),
        ("step.started", "approve", 1), ("step.completed", "approve", 1),
        ("step.started", "ship", 1), ("step.completed", "ship", 1),
        ("execution.completed", None, None)]
    assert {e.execution_id for e in events} == {execution_id} and {e.workflow for e in events} == {"traced"}
    assert [e.id for e in events] == sorted(e.id for e in events)
    retrying = events[2]
    assert retrying.data["error"]["message"] == "card network timeout" and "retry_at" in retrying.data
    assert events[7].data == {"by": "event"}
    # And the rest came within seconds of the send (each within a second of happening)
    assert took < 5 and len(waiting) == 7


def test_filters_by_kind_and_execution_and_refuses_unknown_kinds(project_factory: Factory) -> None:
    p = project_factory("redis")
    p.worker()
    with pytest.raises(InvalidInput, match="unknown event kind"):
        p.durable.subscribe(kinds=["step.exploded"])
    watching = Collector(p, kinds=["execution.completed"])
    try:
        first = p.durable.start("pipeline", {})
        second = p.durable.start("pipeline", {})
        events = watching.until("execution.completed")
        while len(watching.events) < 2:
            time.sleep(0.05)
    finally:
        watching.close()
    assert sorted((e.kind, e.execution_id) for e in watching.events[:2]) == sorted(
        [("execution.completed", first), ("execution.completed", second)])
    assert events[0].kind == "execution.completed"


def test_with_no_subscriber_the_engine_writes_no_event(project_factory: Factory) -> None:
    p = project_factory("redis")
    p.worker()
    execution = p.wait(p.durable.start("pipeline", {}))
    assert execution.status == "completed"
    assert p.sql("SELECT count(*) FROM {schema}.live_events")[0][0] == 0


def test_on_the_embedded_sqlite_default_a_subscriber_polls_the_same_events(tmp_path: Path) -> None:
    from celery import Celery

    from durable_celery import Durable, Workflow

    flow = Workflow("embedded_live")

    @flow.step
    def only(ctx: dict[str, Any]) -> dict[str, Any]:
        return ctx

    app = Celery(f"embedded-{uuid.uuid4().hex[:8]}")
    durable = Durable(app, workflows=[flow], data_dir=tmp_path)
    app.conf.task_always_eager = True
    try:
        # Given a subscription (its heartbeat written when it first looks for events)
        subscription = durable.subscribe(timeout=0.5)
        assert next(subscription, None) is None  # nothing yet: it ends after 0.5 s without one
        time.sleep(1.1)
        # When an execution runs (eagerly, in this process), then a new subscription after the last
        # event seen (none: 0) reads what happened, in order
        execution_id = durable.start(flow, {})
        events = list(durable.subscribe(after=0, timeout=0.5))
        assert [(e.kind, e.step) for e in events] == [
            ("execution.started", None), ("step.started", "only"), ("step.completed", "only"),
            ("execution.completed", None)]
        assert {e.execution_id for e in events} == {execution_id}
    finally:
        durable.db.dispose()

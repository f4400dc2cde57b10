"""Hostile input to the client API (issue 16), as properties: whatever wrong value reaches any
argument of any call (a wrong type, an empty, huge, control-character or lone-surrogate string,
a negative, NaN or infinite number, a bad or unknown id, an unknown name, a bad duration, a
payload JSON cannot hold or one over ``max_payload_bytes``), the call raises a ``DurableError``
with a message, never a raw TypeError or a database driver's error, and no table gains or loses
a row."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from durable_celery import Durable, DurableError, InvalidInput
from durable_celery.engine.statuses import ExecutionStatus
from tests.conftest import Project, new_project
from tests.hostile import (
    BAD_COUNT,
    BAD_DURATION,
    BAD_ID,
    BAD_INPUT,
    BAD_NAME,
    BAD_PAYLOAD,
    FEW,
    HOSTILE_TEXT,
    NAIVE_OR_NOT_DATETIME,
    NOT_TEXT,
    SURROGATES,
    UNKNOWN_ID,
    row_counts,
)


@dataclass(frozen=True)
class Known:
    """What exists before each call: a pending execution (no worker runs it) and a schedule."""

    execution: str
    schedule: str


@pytest.fixture(scope="module")
def hostile_project() -> Iterator[tuple[Project, Known]]:
    project = new_project()
    try:
        execution = project.durable.start("pipeline", {"n": 1})
        project.durable.schedule("pipeline", "0 9 * * *", name="nightly")
        yield project, Known(execution, "nightly")
    finally:
        project.close()


NOT_BOOL = st.one_of(st.integers(), st.text(max_size=3), st.none(), st.floats())
NOT_STATUS = st.one_of(st.text(max_size=12).filter(lambda s: s not in {x.value for x in ExecutionStatus}), NOT_TEXT)
BAD_KEY = st.one_of(st.just(""), st.builds(lambda a: f"k{a}\x00", st.text(max_size=3)), SURROGATES,
                    st.integers(min_value=256, max_value=400).map(lambda n: "k" * n), NOT_TEXT)
BAD_REASON = st.one_of(st.builds(lambda a: f"{a}\x00", st.text(max_size=3)), SURROGATES,
                       st.just("r" * (2**20 + 1)), NOT_TEXT.filter(lambda v: v is not None))
ANY_ID = st.one_of(BAD_ID, UNKNOWN_ID)
NO_WORKFLOW = st.one_of(BAD_NAME, st.text(max_size=12).map(lambda s: f"no_such_{s}"))
BAD_CRON = st.one_of(st.text(max_size=15).filter(lambda s: len(s.split()) not in (5, 6)),
                     st.just("0 9 * * \x00"), st.just("99 99 99 99 99"), NOT_TEXT)
BAD_TIMEZONE = st.one_of(HOSTILE_TEXT, st.text(max_size=12).map(lambda s: f"Nowhere/{s}"), NOT_TEXT,
                         st.just("../../etc/passwd"), st.just("/etc/localtime"))
BAD_LIST = st.one_of(st.text(max_size=4), st.integers(), st.lists(NOT_STATUS, min_size=1, max_size=2))

Call = Callable[[Durable, Any, Known], Any]

#: (label, the call with the hostile value in one argument, the hostile values)
CALLS: list[tuple[str, Call, st.SearchStrategy[Any]]] = [
    ("start: workflow", lambda d, x, k: d.start(x, {}), NO_WORKFLOW),
    ("start: input", lambda d, x, k: d.start("pipeline", x), BAD_INPUT),
    ("start: queue", lambda d, x, k: d.start("pipeline", {}, queue=x), BAD_NAME),
    ("start: priority", lambda d, x, k: d.start("pipeline", {}, priority=x),
     st.one_of(BAD_COUNT, st.integers(min_value=10))),
    ("start: scheduled_at", lambda d, x, k: d.start("pipeline", {}, scheduled_at=x), NAIVE_OR_NOT_DATETIME),
    ("start: idempotency_key", lambda d, x, k: d.start("pipeline", {}, idempotency_key=x), BAD_KEY),
    ("start: connection", lambda d, x, k: d.start("pipeline", {}, connection=x), NOT_TEXT.filter(lambda v: v is not None)),
    ("start_many: inputs", lambda d, x, k: d.start_many("pipeline", [{}, x]), BAD_INPUT),
    ("start_many: not a list", lambda d, x, k: d.start_many("pipeline", x),
     st.one_of(st.text(max_size=3), st.integers(), st.dictionaries(st.text(max_size=2), st.integers(), max_size=2))),
    ("start_many: idempotency_keys", lambda d, x, k: d.start_many("pipeline", [{}], idempotency_keys=[x]), BAD_KEY),
    ("signature: input", lambda d, x, k: d.signature("pipeline", x), BAD_INPUT),
    ("get_execution: id", lambda d, x, k: d.get_execution(x), ANY_ID),
    ("list_executions: workflow", lambda d, x, k: d.list_executions(workflow=x), BAD_NAME),
    ("list_executions: status", lambda d, x, k: d.list_executions(status=x), NOT_STATUS),
    ("list_executions: queue", lambda d, x, k: d.list_executions(queue=x), BAD_NAME),
    ("list_executions: current_step", lambda d, x, k: d.list_executions(current_step=x), BAD_NAME),
    ("list_executions: limit", lambda d, x, k: d.list_executions(limit=x), BAD_COUNT),
    ("list_executions: offset", lambda d, x, k: d.list_executions(offset=x), BAD_COUNT),
    ("list_executions: created_after", lambda d, x, k: d.list_executions(created_after=x), NAIVE_OR_NOT_DATETIME),
    ("list_executions: cursor", lambda d, x, k: d.list_executions(cursor=x), st.one_of(st.text(max_size=30), NOT_TEXT)),
    ("page_executions: limit", lambda d, x, k: d.page_executions(limit=x), st.one_of(BAD_COUNT, st.integers(1001))),
    ("cancel: id", lambda d, x, k: d.cancel(x), ANY_ID),
    ("cancel: reason", lambda d, x, k: d.cancel(k.execution, reason=x), BAD_REASON),
    ("cancel: compensate", lambda d, x, k: d.cancel(k.execution, compensate=x), NOT_BOOL),
    ("retry: id", lambda d, x, k: d.retry(x), ANY_ID),
    ("send_event: id", lambda d, x, k: d.send_event(x, "paid"), ANY_ID),
    ("send_event: name", lambda d, x, k: d.send_event(k.execution, x), BAD_NAME),
    ("send_event: payload", lambda d, x, k: d.send_event(k.execution, "paid", x), BAD_PAYLOAD),
    ("emit_event: name", lambda d, x, k: d.emit_event(x), BAD_NAME),
    ("emit_event: payload", lambda d, x, k: d.emit_event("paid", x), BAD_PAYLOAD),
    ("provide_input: id", lambda d, x, k: d.provide_input(x, "manager", "approved"), ANY_ID),
    ("provide_input: name", lambda d, x, k: d.provide_input(k.execution, x, "approved"), BAD_NAME),
    ("provide_input: data", lambda d, x, k: d.provide_input(k.execution, "manager", x), BAD_PAYLOAD),
    ("list_children: id", lambda d, x, k: d.list_children(x), ANY_ID),
    ("list_children: status", lambda d, x, k: d.list_children(k.execution, status=x), NOT_STATUS),
    ("list_pending_inputs: status", lambda d, x, k: d.list_pending_inputs(status=x), NOT_STATUS),
    ("list_pending_inputs: timeout_before", lambda d, x, k: d.list_pending_inputs(timeout_before=x),
     NAIVE_OR_NOT_DATETIME),
    ("list_pending_inputs: limit", lambda d, x, k: d.list_pending_inputs(limit=x), BAD_COUNT),
    ("list_pending_events: id", lambda d, x, k: d.list_pending_events(x), BAD_ID.filter(lambda v: v is not None)),
    ("list_pending_events: limit", lambda d, x, k: d.list_pending_events(limit=x), BAD_COUNT),
    ("schedule: workflow", lambda d, x, k: d.schedule(x, "0 9 * * *", name="s1"), NO_WORKFLOW),
    ("schedule: cron", lambda d, x, k: d.schedule("pipeline", x, name="s1"), BAD_CRON),
    ("schedule: name", lambda d, x, k: d.schedule("pipeline", "0 9 * * *", name=x), BAD_NAME),
    ("schedule: existing name", lambda d, x, k: d.schedule("pipeline", "0 9 * * *", name=k.schedule), st.none()),
    ("schedule: input", lambda d, x, k: d.schedule("pipeline", "0 9 * * *", name="s1", input=x), BAD_INPUT),
    ("schedule: timezone", lambda d, x, k: d.schedule("pipeline", "0 9 * * *", name="s1", timezone=x), BAD_TIMEZONE),
    ("schedule: queue", lambda d, x, k: d.schedule("pipeline", "0 9 * * *", name="s1", queue=x), BAD_NAME),
    ("schedule: enabled", lambda d, x, k: d.schedule("pipeline", "0 9 * * *", name="s1", enabled=x), NOT_BOOL),
    ("get_schedule: name", lambda d, x, k: d.get_schedule(x), st.one_of(BAD_NAME, st.text(min_size=1, max_size=9).map("no-{}".format))),
    ("list_schedules: workflow", lambda d, x, k: d.list_schedules(workflow=x), BAD_NAME),
    ("list_schedules: queue", lambda d, x, k: d.list_schedules(queue=x), BAD_NAME),
    ("list_schedules: enabled", lambda d, x, k: d.list_schedules(enabled=x), NOT_BOOL.filter(lambda v: v is not None)),
    ("list_schedules: limit", lambda d, x, k: d.list_schedules(limit=x), BAD_COUNT),
    ("update_schedule: name", lambda d, x, k: d.update_schedule(x, enabled=False), BAD_NAME),
    ("update_schedule: cron", lambda d, x, k: d.update_schedule(k.schedule, cron=x), BAD_CRON),
    ("update_schedule: timezone", lambda d, x, k: d.update_schedule(k.schedule, timezone=x), BAD_TIMEZONE),
    ("update_schedule: input", lambda d, x, k: d.update_schedule(k.schedule, input=x), BAD_INPUT),
    ("update_schedule: queue", lambda d, x, k: d.update_schedule(k.schedule, queue=x), BAD_NAME),
    ("update_schedule: workflow", lambda d, x, k: d.update_schedule(k.schedule, workflow=x), NO_WORKFLOW),
    ("update_schedule: unknown change", lambda d, x, k: d.update_schedule(k.schedule, **{x: 1}),
     st.text(min_size=1, max_size=8).filter(lambda s: s not in ("workflow", "cron", "input", "timezone", "queue",
                                                                  "enabled"))),
    ("enable_schedule: name", lambda d, x, k: d.enable_schedule(x), BAD_NAME),
    ("delete_schedule: name", lambda d, x, k: d.delete_schedule(x), BAD_NAME),
    ("trigger_schedule: name", lambda d, x, k: d.trigger_schedule(x), BAD_NAME),
    ("trigger_schedule: input", lambda d, x, k: d.trigger_schedule(k.schedule, x), BAD_INPUT),
    ("graph: workflow", lambda d, x, k: d.graph(x), NO_WORKFLOW),
    ("graph: execution_id", lambda d, x, k: d.graph("pipeline", x), BAD_ID.filter(lambda v: v is not None)),
    ("pause_queue: name", lambda d, x, k: d.pause_queue(x), BAD_NAME),
    ("resume_queue: name", lambda d, x, k: d.resume_queue(x), BAD_NAME),
    ("queue_stats: name", lambda d, x, k: d.queue_stats(x), BAD_NAME),
    ("get_metrics: workflow", lambda d, x, k: d.get_metrics(workflow=x), BAD_NAME),
    ("get_metrics: since", lambda d, x, k: d.get_metrics(since=x), st.one_of(BAD_DURATION, st.datetimes())),
    ("cleanup: older_than", lambda d, x, k: d.cleanup(x), BAD_DURATION),
    ("cleanup: statuses", lambda d, x, k: d.cleanup(timedelta(days=1), statuses=x), BAD_LIST),
    ("cleanup: batch_size", lambda d, x, k: d.cleanup(timedelta(days=1), batch_size=x), BAD_COUNT),
    ("why: id", lambda d, x, k: d.why(x), ANY_ID),
    ("wait: timeout", lambda d, x, k: d.wait(k.execution, timeout=x), BAD_DURATION),
    ("wait: poll", lambda d, x, k: d.wait(k.execution, timeout=0, poll=x), st.one_of(BAD_DURATION, st.just(0))),
    ("wait: id", lambda d, x, k: d.wait(x, timeout=0), ANY_ID),
    ("advance_time: by", lambda d, x, k: d.advance_time(x), BAD_DURATION),
    ("doctor: fix", lambda d, x, k: d.doctor(fix=x), NOT_BOOL),
    ("subscribe: execution_id", lambda d, x, k: d.subscribe(x), BAD_ID.filter(lambda v: v is not None)),
    ("subscribe: workflow", lambda d, x, k: d.subscribe(workflow=x), BAD_NAME),
    ("subscribe: kinds", lambda d, x, k: d.subscribe(kinds=x), BAD_LIST),
    ("subscribe: after", lambda d, x, k: d.subscribe(after=x), BAD_COUNT.filter(lambda v: v is not None)),
    ("subscribe: timeout", lambda d, x, k: d.subscribe(timeout=x),
     st.one_of(st.floats(max_value=-1e-3), st.just(math.nan), st.text(max_size=3), st.booleans())),
]


@pytest.mark.parametrize("label, call, values", CALLS, ids=[label for label, _, _ in CALLS])
def test_a_hostile_argument_raises_a_durable_error_and_writes_nothing(
        hostile_project: tuple[Project, Known], label: str, call: Call, values: st.SearchStrategy[Any]) -> None:
    project, known = hostile_project

    @FEW
    @given(value=values)
    def refused(value: Any) -> None:
        # Given every table's row count
        before = row_counts(project.durable.db, project.prefix)
        # When the call gets the hostile value, then it raises a DurableError with a message
        with pytest.raises(DurableError) as raised:
            call(project.durable, value, known)
        assert str(raised.value)
        # and nothing was written
        assert row_counts(project.durable.db, project.prefix) == before

    refused()


#: (setting, hostile values): ``Durable(...)`` refuses each with InvalidInput, before any connection
SETTINGS: list[tuple[str, st.SearchStrategy[Any]]] = [
    ("queue", BAD_NAME),
    ("prefix", st.one_of(HOSTILE_TEXT, NOT_TEXT, st.just("Upper"), st.just("x; DROP SCHEMA public"))),
    ("stale_lock_timeout", BAD_DURATION),
    ("heartbeat_interval", BAD_DURATION),
    ("tick_interval", BAD_DURATION),
    ("redispatch_after", BAD_DURATION),
    ("max_payload_bytes", st.one_of(st.integers(max_value=0), st.floats(), st.text(max_size=3), st.booleans())),
    ("max_lost_leases", BAD_COUNT.filter(lambda v: not isinstance(v, int) or isinstance(v, bool) or v < 1)),
    ("dispatch_mode", st.one_of(st.text(max_size=8), NOT_TEXT)),
    ("schedule_catch_up", st.one_of(st.text(max_size=8).filter(lambda s: s not in ("one", "all", "none")), NOT_TEXT)),
    ("log_capture_max_entries", st.one_of(st.integers(max_value=0), st.floats(), st.text(max_size=3))),
    ("database_url", st.one_of(st.just(""), st.integers(), st.just("mysql://x/y"))),
]


@pytest.mark.parametrize("setting, values", SETTINGS, ids=[name for name, _ in SETTINGS])
def test_a_hostile_setting_is_refused_when_the_engine_is_configured(setting: str, values: st.SearchStrategy[Any]) -> None:
    @FEW
    @given(value=values)
    def refused(value: Any) -> None:
        with pytest.raises(InvalidInput):
            Durable(**{"database_url": "postgresql+psycopg://nobody@127.0.0.1:1/none", setting: value})

    refused()

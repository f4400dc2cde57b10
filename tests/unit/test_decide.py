"""The decision core as tables: what each thing that happens to an execution leads to, with no
database and no broker."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from durable_celery import Retry, Workflow, codec, goto
from durable_celery.compiler import compile_workflow
from durable_celery.compiler.ir import StateMachine
from durable_celery.engine import decide, fanout, saga
from durable_celery.engine.statuses import ExecutionStatus, check_move
from durable_celery.engine.values import Checkpoint, Outcome, Snapshot, StepOutcome, StepResult
from durable_celery.errors import IllegalMove
from tests.unit.snapshots import snap

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)
POLICY = decide.Policy(dispatch_mode="per_step", max_countdown=60, stale_lock_timeout=30, worker="w1")


def machine(compensate: bool = False) -> StateMachine:
    wf = Workflow("orders")

    with wf.branch(on=lambda ctx: ctx.get("kind", "a")) as b:
        with b.case("a"):
            @wf.step(queue="gpu", retry=Retry(max_attempts=3, backoff="constant", base=5))
            def on_gpu(ctx: dict[str, Any]) -> dict[str, Any]:
                return ctx

        with b.default():
            @wf.step(retry=Retry(max_attempts=3, backoff="constant", base=3600))
            def slow_retry(ctx: dict[str, Any]) -> dict[str, Any]:
                return ctx

    @wf.step(compensate="undo" if compensate else None)
    def charge(ctx: dict[str, Any]) -> dict[str, Any]:
        return ctx

    @wf.decision
    def jump(ctx: dict[str, Any]) -> Any:
        return goto("charge", ctx) if ctx.get("again") else ctx

    @wf.step
    def last(ctx: dict[str, Any]) -> dict[str, Any]:
        return ctx

    if compensate:
        @wf.compensation
        def undo(ctx: dict[str, Any]) -> dict[str, Any]:
            return ctx

    return compile_workflow(wf)


def ok(value: Any) -> StepResult:
    return StepResult(StepOutcome.SUCCEEDED, value=value)


def failed(retryable: bool = True) -> StepResult:
    return StepResult(StepOutcome.FAILED, error={"type": "RuntimeError", "message": "boom", "step": None,
                                                 "traceback": None}, retryable=retryable)


def run_of(m: StateMachine, state: str, ctx: dict[str, Any] | None = None) -> decide.Run:
    return decide.Run(m.states[state], ctx if ctx is not None else {"kind": "a"}, {})


# -- entering a node ---------------------------------------------------------------------------------


def test_a_branch_at_the_entry_point_is_handed_to_the_queue_of_the_step_it_resolves_to() -> None:
    m = machine()
    located = decide.locate(m, snap(m, m.entry), decide.Turn(NOW, queue="durable"))
    assert isinstance(located, Checkpoint) and located.outcome is Outcome.DISPATCHED
    assert located.values["current_node"] == "on_gpu" and located.values["entered_seq"] == 5
    assert [(msg.step, msg.queue, msg.seq) for msg in located.messages] == [("on_gpu", "gpu", 5)]


def test_a_step_reached_on_its_own_queue_runs_there() -> None:
    m = machine()
    located = decide.locate(m, snap(m, m.entry), decide.Turn(NOW, queue="gpu"))
    assert isinstance(located, decide.Run) and located.state.id == "on_gpu"


def test_re_routing_the_current_step_keeps_its_visit_and_attempt() -> None:
    m = machine()
    located = decide.locate(m, snap(m, "on_gpu", attempt=2), decide.Turn(NOW, queue="durable"))
    assert isinstance(located, Checkpoint)
    assert "entered_seq" not in located.values and "attempt" not in located.values


@pytest.mark.parametrize("changes, error_type", [
    ({"deadline_at": NOW - timedelta(seconds=1)}, "WorkflowTimeout"),
    ({"version": "old", "node_shape": "changed"}, "DefinitionChanged"),
    ({"current_node": "gone", "version": "old"}, "DefinitionChanged"),
])
def test_an_execution_that_cannot_go_on_fails_before_its_step_runs(changes: dict[str, Any], error_type: str) -> None:
    m = machine()
    located = decide.locate(m, snap(m, "charge", **changes), decide.Turn(NOW))
    assert isinstance(located, Checkpoint) and located.outcome is Outcome.FAILED
    assert located.values["error"]["type"] == error_type and located.stop_descendants


def test_an_unknown_workflow_fails() -> None:
    m = machine()
    located = decide.locate(None, snap(m, "charge"), decide.Turn(NOW))
    assert isinstance(located, Checkpoint) and located.values["error"]["type"] == "WorkflowNotFound"


# -- after a step ----------------------------------------------------------------------------------


def test_a_completed_step_hands_over_to_the_next_step_in_a_new_visit() -> None:
    m = machine()
    cp = decide.after_step(m, snap(m, "charge"), run_of(m, "charge"), ok({"n": 1}), decide.Turn(NOW, "durable"),
                           POLICY)
    assert cp.outcome is Outcome.DISPATCHED and cp.simple
    assert cp.values["current_node"] == "jump" and cp.values["entered_seq"] == 5 and cp.values["attempt"] == 1
    assert cp.values["lease_owner"] is None and cp.values["ready_at"] == NOW
    assert cp.attempt is not None and cp.attempt["status"] == "completed" and cp.attempt["output"] == {"n": 1}
    assert [(msg.execution_id, msg.seq, msg.step, msg.queue) for msg in cp.messages] == [("e1", 5, "jump", "durable")]


HANDING = dataclasses.replace(POLICY, handoff_ttl=15, controlled=frozenset({"ai"}))


def test_a_completed_step_hands_its_lease_to_the_next_steps_message() -> None:
    m = machine()
    cp = decide.after_step(m, snap(m, "charge"), run_of(m, "charge"), ok({"n": 1}),
                           decide.Turn(NOW, "durable", handoff="h1"), HANDING)
    # The row is leased to the message, not runnable by a claim, and the tick takes it back at expiry
    assert cp.outcome is Outcome.DISPATCHED and cp.simple
    until = decide.handed_until(NOW, 15)
    assert NOW + timedelta(seconds=15) <= until <= NOW + timedelta(seconds=15 * 1.25)
    assert cp.values["lease_owner"] == "h1" and cp.values["lease_expires_at"] == until
    assert cp.values["ready_at"] is None and cp.values["step_started_at"] is None and cp.values["dispatched_at"] == NOW
    assert [(msg.seq, msg.step, msg.handoff, msg.handoff_until) for msg in cp.messages] == [(5, "jump", "h1", until)]


def test_steps_handed_over_within_a_quarter_of_the_ttl_write_the_same_lease_expiry() -> None:
    # A handed lease lasts at least its ttl and at most a quarter more, on a grid of ttl / 4
    start = datetime(2026, 12, 7, 4, 0, 0, tzinfo=timezone.utc)  # a multiple of 3.75 s since the epoch
    assert decide.handed_until(start, 15) == start + timedelta(seconds=15)
    # so consecutive steps within the same quarter write the same value (their updates stay HOT)
    expiries = {decide.handed_until(start + timedelta(seconds=s), 15) for s in (0.001, 1.0, 2.5, 3.75)}
    assert expiries == {start + timedelta(seconds=18.75)}
    # and a step in the next quarter moves it on by one step of the grid
    assert decide.handed_until(start + timedelta(seconds=3.76), 15) == start + timedelta(seconds=22.5)
    for offset in range(0, 600, 7):
        now = start + timedelta(seconds=offset / 10)
        assert now + timedelta(seconds=15) <= decide.handed_until(now, 15) <= now + timedelta(seconds=18.75)


@pytest.mark.parametrize("policy, next_queue", [(dataclasses.replace(HANDING, handoff_ttl=None), "durable"),
                                                (dataclasses.replace(HANDING, controlled=frozenset({"durable"})),
                                                 "durable")])
def test_no_lease_is_handed_in_eager_mode_or_to_a_controlled_queue(policy: decide.Policy, next_queue: str) -> None:
    m = machine()
    cp = decide.after_step(m, snap(m, "charge"), run_of(m, "charge"), ok({}),
                           decide.Turn(NOW, next_queue, handoff="h1"), policy)
    assert cp.values["lease_owner"] is None and cp.values["ready_at"] == NOW
    assert [msg.handoff for msg in cp.messages] == [None]


def test_a_retry_and_a_continuation_hand_no_lease() -> None:
    m = machine()
    retry = decide.after_step(m, snap(m, "on_gpu", current_node="on_gpu"), run_of(m, "on_gpu"), failed(),
                              decide.Turn(NOW, "gpu", handoff="h1"), HANDING)
    assert retry.outcome is Outcome.RETRY_SCHEDULED and [msg.handoff for msg in retry.messages] == [None]
    kept = decide.after_step(m, snap(m, "charge"), run_of(m, "charge"), ok({}),
                             decide.Turn(NOW, "durable", True, handoff="h1"),
                             dataclasses.replace(HANDING, dispatch_mode="continuation"))
    assert kept.outcome is Outcome.CONTINUE and "lease_owner" not in kept.values and not kept.messages


def test_a_snapshot_survives_the_trip_in_a_message() -> None:
    m = machine()
    original = snap(m, "charge", deadline_at=NOW, step_started_at=None, loops={"again": 2}, item={"i": [1, 2]},
                    stopping=None)
    assert Snapshot.from_wire(json.loads(json.dumps(original.to_wire()))) == original


@pytest.mark.parametrize("may_continue, queue, keeps", [(True, "durable", True), (False, "durable", False),
                                                         (True, "other", False)])
def test_continuation_keeps_the_lease_only_within_budget_and_on_the_same_queue(may_continue: bool, queue: str,
                                                                               keeps: bool) -> None:
    m = machine()
    policy = decide.Policy(dispatch_mode="continuation", stale_lock_timeout=30)
    cp = decide.after_step(m, snap(m, "charge"), run_of(m, "charge"), ok({}), decide.Turn(NOW, queue, may_continue),
                           policy)
    assert cp.keep_lease is keeps and (cp.outcome is Outcome.CONTINUE) is keeps
    assert bool(cp.messages) is not keeps


def test_a_goto_jumps_and_the_last_step_completes_the_execution() -> None:
    m = machine()
    cp = decide.after_step(m, snap(m, "jump"), run_of(m, "jump"), ok(goto("charge", {"x": 1})), decide.Turn(NOW),
                           POLICY)
    assert cp.values["current_node"] == "charge" and cp.values["context"] == {"x": 1}
    done = decide.after_step(m, snap(m, "last"), run_of(m, "last"), ok({"x": 2}), decide.Turn(NOW), POLICY)
    assert done.outcome is Outcome.COMPLETED and done.finishing and done.values["context"] == {"x": 2}


@pytest.mark.parametrize("step, delay, via_message", [("on_gpu", 5, True), ("slow_retry", 3600, False)])
def test_a_failed_attempt_is_retried_on_its_step_and_queue_never_held_in_the_broker_long(
        step: str, delay: float, via_message: bool) -> None:
    m = machine()
    cp = decide.after_step(m, snap(m, m.entry), run_of(m, step), failed(), decide.Turn(NOW), POLICY)
    assert cp.outcome is Outcome.RETRY_SCHEDULED
    # the retry stands on the step itself, not on the branch that led to it
    assert cp.values["current_node"] == step and cp.values["attempt"] == 2
    assert cp.values["ready_at"] == NOW + timedelta(seconds=delay)
    if via_message:
        assert [(msg.queue, msg.countdown) for msg in cp.messages] == [("gpu", 5)]
    else:
        assert cp.messages == () and cp.values["dispatched_at"] is None


@pytest.mark.parametrize("step, queue", [("on_gpu", "gpu"), ("slow_retry", "durable")])
def test_in_celery_eager_mode_a_retry_is_due_at_once_with_a_message(step: str, queue: str) -> None:
    m = machine()
    eager = dataclasses.replace(POLICY, skip_backoff=True)
    cp = decide.after_step(m, snap(m, m.entry), run_of(m, step), failed(), decide.Turn(NOW), eager)
    assert cp.outcome is Outcome.RETRY_SCHEDULED and cp.values["attempt"] == 2
    assert cp.values["ready_at"] == cp.values["dispatched_at"] == NOW
    assert [(msg.queue, msg.countdown) for msg in cp.messages] == [(queue, 0)]


def test_the_last_attempt_fails_the_execution_and_stops_its_branches() -> None:
    m = machine()
    cp = decide.after_step(m, snap(m, "on_gpu", attempt=3), run_of(m, "on_gpu"), failed(), decide.Turn(NOW), POLICY)
    assert cp.outcome is Outcome.FAILED and cp.stop_descendants and not cp.compensate
    assert cp.attempt is not None and cp.attempt["status"] == "failed"


@pytest.mark.parametrize("result, error_type", [
    (ok("not a dict"), "StepResultError"),
    (ok({"when": object()}), "ContextNotSerializable"),
    (ok(goto("nowhere", {})), "StepResultError"),
])
def test_an_unusable_return_value_fails_without_retrying(result: StepResult, error_type: str) -> None:
    m = machine()
    cp = decide.after_step(m, snap(m, "on_gpu"), run_of(m, "on_gpu"), result, decide.Turn(NOW), POLICY)
    assert cp.outcome is Outcome.FAILED and cp.values["error"]["type"] == error_type


def test_a_suspended_step_waits_on_the_step_itself_and_rechecks_its_waits() -> None:
    m = machine()
    cp = decide.after_step(m, snap(m, m.entry), run_of(m, "on_gpu"), StepResult(StepOutcome.SUSPENDED),
                           decide.Turn(NOW), POLICY)
    assert cp.outcome is Outcome.WAITING and cp.recheck_waits and cp.attempt is None
    assert cp.values["status"] == "waiting" and cp.values["current_node"] == "on_gpu"


@pytest.mark.parametrize("compensate", [True, False])
def test_a_top_level_failure_compensates_only_when_the_workflow_has_compensations(compensate: bool) -> None:
    m = machine(compensate=compensate)
    cp = decide.fail(m, snap(m, "charge"), {"type": "X"}, NOW)
    assert cp.compensate is compensate
    branch = decide.fail(m, snap(m, "charge", kind="branch", parent_id="p", root_id="p"), {"type": "X"}, NOW)
    assert not branch.compensate


def test_a_step_that_keeps_losing_its_worker_fails_that_attempt_and_is_retried() -> None:
    m = machine()
    cp = decide.worker_lost(m, snap(m, "on_gpu", lost_leases=2), NOW, POLICY)
    assert cp.outcome is Outcome.RETRY_SCHEDULED and cp.values["lost_leases"] == 0
    assert cp.attempt is not None and cp.attempt["error"]["type"] == "WorkerLost"
    last = decide.worker_lost(m, snap(m, "charge", lost_leases=2), NOW, POLICY)  # charge has no retries
    assert last.outcome is Outcome.FAILED


def test_a_stop_requested_during_a_step_records_the_step_then_ends_or_compensates() -> None:
    m = machine(compensate=True)
    attempt = {"step_name": "charge"}
    stop = {"status": "cancelled", "error": {"type": "Cancelled"}, "compensate": True}
    cp = decide.stopped(m, snap(m, "charge", stopping=stop), attempt, NOW)
    assert cp.compensate and cp.attempt == attempt and cp.values["stopping"] is None
    plain = decide.stopped(m, snap(m, "charge", stopping={**stop, "compensate": False}), attempt, NOW)
    assert plain.outcome is Outcome.CANCELLED and not plain.compensate


def test_every_status_move_is_checked_against_the_table() -> None:
    check_move("running", "waiting")
    with pytest.raises(IllegalMove):
        check_move(ExecutionStatus.COMPLETED, ExecutionStatus.RUNNING)
    m = machine()
    with pytest.raises(IllegalMove):
        decide.complete(snap(m, "last", status=ExecutionStatus.FAILED), {}, None, NOW)


# -- fan-out and join --------------------------------------------------------------------------------


def blocks() -> StateMachine:
    wf = Workflow("blocks")

    with wf.foreach("each", items=lambda ctx: ctx["items"], concurrency=2):
        @wf.step
        def work(ctx: dict[str, Any], item: Any) -> dict[str, Any]:
            return ctx

    @wf.step
    def after(ctx: dict[str, Any]) -> dict[str, Any]:
        return ctx

    return compile_workflow(wf)


def test_a_foreach_inserts_its_items_with_at_most_concurrency_runnable() -> None:
    m = blocks()
    s = snap(m, "each", context={"items": [1, 2, 3]})
    cp = fanout.spawn(m, s, m.states["each"], {"items": [1, 2, 3]}, {}, decide.Turn(NOW), POLICY)
    assert cp.outcome is Outcome.WAITING and len(cp.children) == 3
    assert [c["ready_at"] is not None for c in cp.children] == [True, True, False]
    assert len(cp.messages) == 2 and all(c["root_id"] == "e1" for c in cp.children)


def test_a_foreach_over_no_items_moves_on_with_empty_results() -> None:
    m = blocks()
    cp = fanout.spawn(m, snap(m, "each"), m.states["each"], {"items": []}, {}, decide.Turn(NOW), POLICY)
    assert cp.values["current_node"] == "after" and cp.values["context"]["__results__"] == []


@pytest.mark.parametrize("statuses, fail_fast, expected", [
    (["completed", "running"], True, False), (["completed", "failed"], True, True),
    (["running", "failed"], False, False), (["completed", "cancelled"], False, True),
])
def test_a_block_is_decided_when_all_finished_or_one_failed_fast(statuses: list[str], fail_fast: bool,
                                                                  expected: bool) -> None:
    assert fanout.decided(statuses, fail_fast) is expected


def test_a_failed_iteration_fails_the_foreach() -> None:
    m = blocks()
    children = [{"status": "completed", "context": {}, "error": None, "branch_key": "0"},
                {"status": "failed", "context": {}, "error": {"message": "bad", "step": "work"}, "branch_key": "1"}]
    cp = fanout.join(m, snap(m, "each"), m.states["each"], {}, {}, children, decide.Turn(NOW), POLICY)
    assert cp.outcome is Outcome.FAILED and cp.values["error"]["type"] == "ChildFailed"


# -- compensations -------------------------------------------------------------------------------------


def test_the_plan_runs_newest_completed_step_first_with_its_output() -> None:
    m = machine(compensate=True)
    done = [{"step_name": "charge", "input": {"a": 1}, "output": {"charged": 2}},
            {"step_name": "last", "input": {}, "output": {}},
            {"step_name": "charge", "input": {"a": 0}, "output": None}]  # outcome unknown: its input
    assert saga.plan(m, done) == [{"step": "charge", "compensation": "undo", "input": {"charged": 2}},
                                  {"step": "charge", "compensation": "undo", "input": {"a": 0}}]


def test_nothing_to_compensate_ends_as_it_would_have_without_compensations() -> None:
    m = machine(compensate=True)
    s = snap(m, None, status=ExecutionStatus.COMPENSATING, stop_status="cancelled")
    cp = saga.start(s, [], NOW)
    assert cp.outcome is Outcome.CANCELLED and cp.values["status"] == "cancelled"


def test_a_failing_compensation_is_retried_then_recorded_and_the_next_one_runs() -> None:
    m = machine(compensate=True)
    entry = {"step": "charge", "compensation": "undo", "input": {}}
    plan = [entry, entry]
    handler = m.compensations["undo"]
    s = snap(m, None, status=ExecutionStatus.COMPENSATING, compensation_plan=plan, compensation_results=[])
    cp = saga.after(s, entry, handler, failed(), None, NOW, POLICY)
    assert cp.outcome is Outcome.CONTINUE and cp.values["compensation_results"][0]["status"] == "failed"
    assert cp.attempt is not None and cp.attempt["is_compensation"] and cp.attempt["compensation_for"] == "charge"
    last = saga.after(s.after(cp), entry, handler, ok({}), {}, NOW, POLICY)
    assert last.outcome is Outcome.COMPENSATION_FAILED


# -- contexts that cannot be stored ----------------------------------------------------------------


@pytest.mark.parametrize("limit, size, fails", [(None, 100_000, False), (1000, 900, False), (1000, 1000, True)])
def test_a_context_over_max_context_bytes_fails_the_attempt_without_a_retry(limit: int | None, size: int,
                                                                             fails: bool) -> None:
    m = machine()
    policy = dataclasses.replace(POLICY, max_context_bytes=limit)
    cp = decide.after_step(m, snap(m, "charge"), run_of(m, "charge"), ok({"blob": "x" * size}),
                           decide.Turn(NOW, "durable"), policy)
    assert cp.attempt is not None
    if not fails:
        assert cp.attempt["status"] == "completed"
        return
    assert cp.outcome is Outcome.FAILED and cp.attempt["status"] == "failed"
    error = cp.attempt["error"]
    assert error["type"] == "ContextNotSerializable"
    assert f"it is {size + 11} bytes of JSON, over max_context_bytes (1000)" in error["message"]


def test_a_context_nested_too_deep_fails_the_attempt_without_a_retry() -> None:
    m = machine()
    deep: dict[str, Any] = {}
    for _ in range(10_000):
        deep = {"a": deep}
    cp = decide.after_step(m, snap(m, "charge"), run_of(m, "charge"), ok({"deep": deep}),
                           decide.Turn(NOW, "durable"), POLICY)
    assert cp.outcome is Outcome.FAILED and cp.attempt is not None
    assert cp.attempt["error"]["type"] == "ContextNotSerializable"
    assert f"nested deeper than {codec.MAX_DEPTH} levels" in cp.attempt["error"]["message"]

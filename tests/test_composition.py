"""Parallel blocks, foreach and loops on real workers: branches fan out as separate Celery tasks,
the join is durable, and a killed worker never re-runs a finished branch or item."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

import pytest

from tests.conftest import Project

Factory = Callable[..., Project]


def max_overlap(intervals: list[tuple[datetime, datetime]]) -> int:
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals],
                    key=lambda e: (e[0], e[1]))
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    return peak


def test_parallel_branches_run_concurrently_on_copies_and_join_into_results(running_project: Project) -> None:
    p = running_project
    execution = p.wait(p.durable.start("fanout", {"id": 7, "sleep": 1.5, "orders_sleep": 1.5}))
    assert execution.status == "completed"
    assert execution.context == {
        "prepared": True,
        "results": {"user": ["ok", {"user": 7}], "fetch_orders": ["ok", {"orders": [1, 2]}]},
    }
    # each branch ran once, and the two attempts overlapped: they ran at the same time on the
    # worker's two processes, not one after the other
    branch_steps = [s for s in execution.steps if s.step_name in ("fetch_user", "fetch_orders")]
    assert sorted((s.step_name, s.attempt, s.status) for s in branch_steps) == [
        ("fetch_orders", 1, "completed"), ("fetch_user", 1, "completed")]
    assert max_overlap([(s.started_at, s.completed_at) for s in branch_steps]) == 2
    assert all(s.input == {"id": 7, "sleep": 1.5, "orders_sleep": 1.5, "prepared": True} for s in branch_steps)
    # and the join ran only after both had finished
    combine = next(s for s in execution.steps if s.step_name == "combine")
    assert combine.started_at >= max(s.completed_at for s in branch_steps)


def test_complete_all_records_a_failed_branch_as_an_error_result(running_project: Project) -> None:
    p = running_project
    execution = p.wait(p.durable.start("fanout", {"id": 1, "orders_fail": "always"}))
    assert execution.status == "completed"
    assert execution.context["results"]["user"] == ["ok", {"user": 1}]
    status, reason = execution.context["results"]["fetch_orders"]
    assert status == "error" and reason["type"] == "RuntimeError" and reason["message"] == "orders service down"
    orders = [s.attempt for s in execution.steps if s.step_name == "fetch_orders"]
    assert orders == [1, 2]  # the branch retried on its own


def test_a_branch_retries_individually_and_then_succeeds(running_project: Project) -> None:
    p = running_project
    execution = p.wait(p.durable.start("fanout", {"id": 2, "orders_fail": "once"}))
    assert execution.context["results"]["fetch_orders"] == ["ok", {"orders": [1, 2]}]
    assert p.effects(execution.id) == {"fetch_user": 1, "fetch_orders": 2}


def test_fail_fast_fails_on_the_first_error_and_cancels_the_rest(running_project: Project) -> None:
    p = running_project
    execution = p.wait(p.durable.start("fail_fast", {}))
    assert execution.status == "failed"
    assert execution.error["type"] == "ChildFailed" and "broken for good" in execution.error["message"]
    # The slow branch's step is not interrupted: it runs its 3 s to the end
    deadline = time.monotonic() + 20
    while True:
        notes = dict(p.sql("SELECT note, max(at) FROM {schema}.test_effects WHERE execution_id = :id GROUP BY note",
                           id=execution.id))
        if "finished" in notes:
            break
        assert time.monotonic() < deadline, f"the slow branch never finished: {notes}"
        time.sleep(0.05)
    assert set(notes) == {"started", "finished"}
    # The execution failed before it did: the block did not wait for the slow branch
    assert execution.completed_at < notes["finished"]
    # and the slow branch was cancelled with it
    branches = dict(p.sql("SELECT branch_key, status FROM {schema}.workflow_executions WHERE parent_id = :id",
                          id=execution.id))
    assert branches == {"slow_branch": "cancelled", "broken_branch": "failed"}
    # Its result is discarded: once its attempt is over (the worker runs no task any more), no
    # checkpoint of it was recorded
    while any((p.app.control.inspect(timeout=1).active() or {"no reply": [None]}).values()):
        assert time.monotonic() < deadline, "the slow branch's attempt never ended"
        time.sleep(0.1)
    again = p.durable.get_execution(execution.id, include_steps=True)
    assert "slow_branch" not in [s.step_name for s in again.steps if s.status == "completed"]
    assert "never_reached" not in [s.step_name for s in again.steps]


@pytest.mark.parametrize("fail_a, path", [(False, "normal"), (True, "rescue")])
def test_into_decides_what_follows_with_a_dict_or_a_goto(running_project: Project, fail_a: bool, path: str) -> None:
    p = running_project
    execution = p.wait(p.durable.start("into_goto", {"fail_a": fail_a}))
    assert execution.status == "completed" and execution.context["path"] == path
    assert "__results__" not in execution.context
    if fail_a:
        assert execution.context["why"] == "a is broken"
        assert [s.step_name for s in execution.steps if s.step_name in ("normal", "rescue")] == ["rescue"]
    else:
        assert execution.context["checked"] == ["check_a", "check_b"]


def test_a_sequential_foreach_threads_the_context_through_each_item_in_order(running_project: Project) -> None:
    p = running_project
    execution = p.wait(p.durable.start("adder", {"items": [1, 2, 3, 4]}))
    assert execution.context == {"total": 10, "count": 4}
    assert [s.input.get("total", 0) for s in execution.steps if s.step_name == "add"] == [0, 1, 3, 6]


def test_a_concurrent_foreach_runs_at_most_n_at_once_and_collects_results_in_item_order(
        running_project: Project) -> None:
    p = running_project
    execution = p.wait(p.durable.start("squares", {"items": [1, 2, 3, 4, 5, 6], "sleep": 0.5}), timeout=40)
    assert execution.status == "completed"
    results = execution.context["__results__"]
    assert [r[1]["square"] for r in results] == [1, 4, 9, 16, 25, 36]
    assert [r[1]["item"] for r in results] == [1, 2, 3, 4, 5, 6]
    squares = [(s.started_at, s.completed_at) for s in execution.steps if s.step_name == "square"]
    assert max_overlap(squares) <= 2  # the worker has two processes; the bound of 3 is never exceeded


def test_a_failing_iteration_fails_the_foreach_and_stops_the_rest(running_project: Project) -> None:
    p = running_project
    execution = p.wait(p.durable.start("squares", {"items": list(range(10)), "bad": 1, "sleep": 0.2}))
    assert execution.status == "failed" and execution.error["type"] == "ChildFailed"
    assert "cannot square 1" in execution.error["message"]
    assert len(p.notes(execution.id)) < 10


def test_an_empty_foreach_goes_straight_on(running_project: Project) -> None:
    p = running_project
    assert p.wait(p.durable.start("adder", {"items": []})).context == {"total": 0, "count": 0}


def test_a_loop_repeats_while_its_condition_holds_and_fails_past_max_iterations(running_project: Project) -> None:
    p = running_project
    execution = p.wait(p.durable.start("poller", {"until": 3}))
    assert execution.status == "completed" and execution.context == {"until": 3, "n": 3, "done": True}
    assert [s.step_name for s in execution.steps].count("poll_once") == 3
    too_many = p.wait(p.durable.start("poller", {"until": 10}))
    assert too_many.status == "failed" and too_many.error["type"] == "LoopLimitExceeded"
    assert [s.step_name for s in too_many.steps].count("poll_once") == 5


@pytest.mark.parametrize("mode, expected_mode", [("fast", ["ok", {"quick": "eu"}]),
                                                 (None, ["ok", {"i": 2, "spun": "eu", "regions": ["eu", "us"]}])])
def test_blocks_nest_a_branch_and_a_loop_inside_a_parallel_inside_a_foreach(
        running_project: Project, mode: str | None, expected_mode: list) -> None:
    p = running_project
    ctx = {"regions": ["eu", "us"], **({"mode": mode} if mode else {})}
    execution = p.wait(p.durable.start("nested", ctx), timeout=40)
    assert execution.status == "completed", execution.error
    first = execution.context["__results__"][0]
    assert first[0] == "ok" and first[1]["region"] == "eu" and first[1]["a"] == "EU"
    if mode:
        assert first[1]["mode"] == expected_mode[1]
    else:
        assert first[1]["mode"]["i"] == 2 and first[1]["mode"]["spun"] == "eu"
    graph = p.durable.registry.get("nested").describe()
    assert {s["id"]: s["kind"] for s in graph["states"]}["spin"] == "loop"


def test_a_worker_killed_during_a_foreach_resumes_at_the_first_unfinished_item(project_factory: Factory) -> None:
    p = project_factory("redis")
    doomed = p.worker()
    execution_id = p.durable.start("adder", {"items": [1, 2, 3, 4, 5], "sleep": 0.7})
    deadline = time.monotonic() + 20
    while "3" not in p.notes(execution_id):  # item 3 is running: 1 and 2 are done
        assert time.monotonic() < deadline
        time.sleep(0.05)
    doomed.kill()
    p.beat()
    p.worker()
    execution = p.wait(execution_id, timeout=40)
    assert execution.status == "completed" and execution.context["total"] == 15
    runs = p.notes(execution_id)
    assert (runs["1"], runs["2"], runs["4"], runs["5"]) == (1, 1, 1, 1)
    assert runs["3"] in (1, 2)


def test_a_worker_killed_during_a_parallel_block_does_not_rerun_finished_branches(project_factory: Factory) -> None:
    p = project_factory("amqp")
    doomed = p.worker()
    execution_id = p.durable.start("fanout", {"id": 3, "orders_sleep": 3})
    deadline = time.monotonic() + 20
    while p.effects(execution_id) != {"fetch_user": 1, "fetch_orders": 1}:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.3)  # fetch_user checkpointed; fetch_orders is mid-sleep
    doomed.kill()
    p.beat()
    p.worker()
    execution = p.wait(execution_id, timeout=40)
    assert execution.status == "completed"
    assert p.effects(execution_id) == {"fetch_user": 1, "fetch_orders": 2}


def test_the_graph_of_an_execution_marks_what_ran(running_project: Project) -> None:
    p = running_project
    execution = p.wait(p.durable.start("fanout", {"id": 5, "orders_fail": "always"}))
    graph = p.durable.graph("fanout", execution.id)
    states = {n.id: (n.state, n.attempts) for n in graph.nodes}
    assert states["prepare"] == ("completed", 1)
    assert states["fetch_orders"] == ("failed", 2)
    assert states["combine"] == ("completed", 1)
    assert 'fillcolor="salmon"' in graph.to_dot()


def test_a_foreach_over_ten_thousand_items_fans_out_lazily_and_cancels_as_a_whole(project_factory: Factory) -> None:
    p = project_factory("redis")
    p.worker()
    # Given a foreach over 10,000 items, 50 at a time
    execution_id = p.durable.start("many", {"n": 10_000})
    p.wait(execution_id, statuses={"waiting"}, timeout=30)
    # Then every item is a row of its own, created in one checkpoint, and at most 50 ever run
    counts = dict(p.sql("SELECT status, count(*) FROM {schema}.workflow_executions WHERE parent_id = :id "
                        "GROUP BY status", id=execution_id))
    assert sum(counts.values()) == 10_000
    released = p.sql("SELECT count(*) FROM {schema}.workflow_executions WHERE parent_id = :id "
                     "AND dispatched_at IS NOT NULL AND status <> 'completed'", id=execution_id)[0][0]
    assert released <= 50
    # and the messages carry ids, not the items
    biggest = p.sql("SELECT max(length(item::text)) FROM {schema}.workflow_executions WHERE parent_id = :id",
                    id=execution_id)[0][0]
    assert biggest <= 5
    time.sleep(2)
    done = p.sql("SELECT count(*) FROM {schema}.workflow_executions WHERE parent_id = :id AND status = 'completed'",
                 id=execution_id)[0][0]
    assert done > 0
    # When it is cancelled, every unfinished iteration is cancelled with it
    p.durable.cancel(execution_id)
    left = p.sql("SELECT count(*) FROM {schema}.workflow_executions WHERE parent_id = :id AND status IN "
                 "('pending', 'running', 'waiting')", id=execution_id)[0][0]
    assert left == 0


def test_a_foreach_of_a_thousand_items_completes_with_results_in_order(project_factory: Factory) -> None:
    p = project_factory("redis", dispatch_mode="continuation")
    p.worker()
    execution = p.durable.wait(p.durable.start("many", {"n": 1000}), timeout=120, poll=0.5)
    assert execution.status == "completed"
    assert execution.context == {"count": 1000, "in_order": True}


def test_complete_all_waits_for_slower_branches_after_one_failed(running_project: Project) -> None:
    p = running_project
    # the failing branch finishes first; the join must still wait for the slow one
    execution = p.wait(p.durable.start("fanout", {"id": 9, "orders_fail": "always", "sleep": 1.5}))
    assert execution.context["results"]["user"] == ["ok", {"user": 9}]
    assert execution.context["results"]["fetch_orders"][0] == "error"


def test_events_and_inputs_sent_to_the_workflow_reach_waits_inside_its_branches(running_project: Project) -> None:
    from durable_celery import InvalidInput

    p = running_project
    execution_id = p.durable.start("branch_waits", {"order": 1})
    deadline = time.monotonic() + 20
    while not [i for i in p.durable.list_pending_inputs(status="pending") if i.workflow_id == execution_id]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    # the request is listed under the workflow's own id, and answered through it
    with pytest.raises(InvalidInput):
        p.durable.provide_input(execution_id, "boss", "perhaps")
    p.durable.provide_input(execution_id, "boss", "approved")
    p.durable.send_event(execution_id, "go", {"now": True})
    execution = p.wait(execution_id)
    assert execution.status == "completed"
    results = execution.context["__results__"]
    assert results["ask_boss"] == ["ok", {"boss": "approved"}]
    # workflow_input() in a branch is what the workflow was started with
    assert results["wait_go"] == ["ok", {"go": {"now": True}, "input": {"order": 1}}]


def test_a_branch_cannot_be_cancelled_on_its_own(running_project: Project) -> None:
    from durable_celery import InvalidInput

    p = running_project
    execution_id = p.durable.start("branch_waits", {})
    p.wait(execution_id, statuses={"waiting"})
    child = p.sql("SELECT id FROM {schema}.workflow_executions WHERE parent_id = :id LIMIT 1", id=execution_id)[0][0]
    with pytest.raises(InvalidInput, match="cancel that execution instead"):
        p.durable.cancel(child)
    # the refused cancel changed nothing
    assert p.durable.get_execution(execution_id).status == "waiting"
    assert p.sql("SELECT status FROM {schema}.workflow_executions WHERE id = :id", id=child)[0][0] != "cancelled"
    # Cancelling the workflow cancels it and both of its branches
    p.durable.cancel(execution_id)
    tree = dict(p.sql("SELECT coalesce(branch_key, 'workflow'), status FROM {schema}.workflow_executions "
                      "WHERE root_id = :id", id=execution_id))
    assert tree == {"workflow": "cancelled", "wait_go": "cancelled", "ask_boss": "cancelled"}

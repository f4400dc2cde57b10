"""The core paths on real workers, on Redis and on RabbitMQ: steps run in order with their
contexts, each attempt is recorded, retries back off without blocking, timeouts fail attempts,
branches and decisions route."""

from __future__ import annotations

from tests.conftest import Project


def test_a_pipeline_runs_every_step_once_in_order_passing_each_output_on(running_project: Project) -> None:
    p = running_project
    # Given a three-step workflow
    execution_id = p.durable.start("pipeline", {"order": 7})
    # When a worker runs it
    execution = p.wait(execution_id)
    # Then it completed with each step's output feeding the next
    assert execution.status == "completed"
    assert execution.context == {"order": 7, "trail": ["first", "second", "third"]}
    assert [(s.step_name, s.attempt, s.status) for s in execution.steps] == [
        ("first", 1, "completed"), ("second", 1, "completed"), ("third", 1, "completed")]
    assert execution.steps[0].input == {"order": 7}
    assert execution.steps[1].input == execution.steps[0].output
    assert all(s.duration_ms is not None and s.started_at <= s.completed_at for s in execution.steps)
    assert execution.started_at <= execution.completed_at
    # And each step body ran exactly once
    assert p.effects(execution_id) == {"first": 1, "second": 1, "third": 1}


def test_a_failing_step_is_retried_with_its_attempts_recorded(running_project: Project) -> None:
    p = running_project
    execution = p.wait(p.durable.start("flaky", {"succeed_on": 3}))
    assert execution.status == "completed" and execution.context["succeeded_on"] == 3
    assert [(s.attempt, s.status) for s in execution.steps] == [(1, "failed"), (2, "failed"), (3, "completed")]
    assert execution.steps[0].error["type"] == "RuntimeError"
    assert "attempt 1 fails" in execution.steps[0].error["message"]
    assert "Traceback" in execution.steps[0].error["traceback"]
    # constant backoff of 0.2 s: the next attempt starts no sooner
    gap = (execution.steps[1].started_at - execution.steps[0].completed_at).total_seconds()
    assert gap >= 0.15


def test_a_step_that_exhausts_its_retries_fails_the_execution_with_its_error(running_project: Project) -> None:
    p = running_project
    execution = p.wait(p.durable.start("flaky", {"succeed_on": 9}))
    assert execution.status == "failed"
    assert len(execution.steps) == 3
    assert execution.error["type"] == "RuntimeError" and execution.error["step"] == "sometimes"
    assert execution.completed_at is not None


def test_a_step_that_runs_past_its_timeout_fails_that_attempt_and_is_retried(running_project: Project) -> None:
    p = running_project
    execution = p.wait(p.durable.start("slow", {}))
    assert execution.status == "failed"
    assert [(s.attempt, s.error["type"]) for s in execution.steps] == [(1, "StepTimeout"), (2, "StepTimeout")]
    assert all(s.duration_ms < 2000 for s in execution.steps)  # interrupted, not waited out


def test_a_branch_runs_only_the_matching_clause_then_continues_after_it(running_project: Project) -> None:
    p = running_project
    bill = p.wait(p.durable.start("routing", {"kind": "bill"}))
    receipt = p.wait(p.durable.start("routing", {"kind": "receipt"}))
    assert [s.step_name for s in bill.steps] == ["triage", "handle_invoice", "finish"]
    assert [s.step_name for s in receipt.steps] == ["triage", "handle_receipt", "finish"]
    assert bill.context == {"kind": "bill", "handled": "invoice", "done": True}


def test_a_decision_goto_skips_ahead(running_project: Project) -> None:
    p = running_project
    execution = p.wait(p.durable.start("routing", {"kind": "bill", "skip": True}))
    assert [s.step_name for s in execution.steps] == ["triage", "finish"]
    assert execution.context == {"kind": "bill", "skip": True, "skipped": True, "done": True}


def test_a_branch_with_no_matching_case_and_no_default_fails_clearly(running_project: Project) -> None:
    p = running_project
    execution = p.wait(p.durable.start("routing", {"kind": "postcard"}))
    assert execution.status == "failed"
    assert execution.error["type"] == "BranchNoMatch" and "'postcard'" in execution.error["message"]


def test_a_workflow_past_its_timeout_fails_with_a_timeout_error(running_project: Project) -> None:
    p = running_project
    execution = p.wait(p.durable.start("overdue", {}), timeout=20)
    assert execution.status == "failed"
    assert execution.error["type"] == "WorkflowTimeout"
    assert "after_linger" not in [s.step_name for s in execution.steps]


def test_a_step_that_returns_something_unstorable_fails_naming_the_step_and_key(running_project: Project) -> None:
    p = running_project
    execution = p.wait(p.durable.start("unstorable", {}))
    assert execution.status == "failed"
    assert execution.error["type"] == "ContextNotSerializable"
    assert "'bad_value'" in execution.error["message"] and "'make_set'" in execution.error["message"]
    assert len(execution.steps) == 1  # not retried: it would fail the same way


def test_what_a_step_logs_and_prints_is_captured_on_its_attempt(running_project: Project) -> None:
    p = running_project
    execution = p.wait(p.durable.start("chatty", {}))
    logs = execution.steps[0].logs
    assert {"PRINT": "hello from chatty", "WARNING": "careful now"} == {e["level"]: e["message"] for e in logs}
    assert execution.context["seen"]["workflow_id"] == execution.id
    assert execution.context["seen"]["step"] == "speak" and execution.context["seen"]["attempt"] == 1


def test_many_executions_complete_concurrently(running_project: Project) -> None:
    p = running_project
    ids = [p.durable.start("pipeline", {"n": i}) for i in range(30)]
    results = [p.wait(i) for i in ids]
    assert all(r.status == "completed" for r in results)
    assert [r.context["n"] for r in results] == list(range(30))

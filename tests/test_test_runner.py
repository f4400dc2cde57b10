"""Unit tests without a broker (``durable_celery.testing.runner``): a TestEnvironment runs
workflows in the test's process, through the production engine on SQLite, on a fake clock that
skips straight to the next timer. Sleeps, retry backoffs and timeouts cost no real time; events
and inputs come from the test. The fixtures come from the pytest plugin (``durable_celery_pytest``,
loaded by tests/conftest.py as the pytest11 entry point loads it in a project)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from sqlalchemy import text

from durable_celery import Cron, InvalidInput, Retry, Workflow, context, days, hours, minutes
from durable_celery.engine.backoff import retry_delay
from durable_celery.orchestration import await_task, call_workflow
from durable_celery.testing.runner import DEFAULT_START, RunLimitReached, TestEnvironment
from durable_celery.wait import sleep, wait_for_event, wait_for_input
from tests.conftest import POSTGRES

T0 = datetime(2031, 3, 1, 9, 0, tzinfo=timezone.utc)

# -- the workflows under test -------------------------------------------------------------------

# Ten steps; the sixth sleeps three days.
ten_steps = Workflow("runner_ten_steps")
for _i in range(10):
    def _step(ctx: dict[str, Any], i: int = _i) -> dict[str, Any]:
        if i == 5:
            sleep(days(3))
        return {**ctx, "done": [*ctx.get("done", []), i]}
    _step.__name__ = f"step_{_i}"
    ten_steps.step(_step)

# A payment service that is down for the first two attempts; exponential backoff 10**n s.
flaky = Workflow("runner_flaky")
PAY_RETRY = Retry(max_attempts=4, backoff="exponential", base=10)


@flaky.step(retry=PAY_RETRY)
def pay(ctx: dict[str, Any]) -> dict[str, Any]:
    if context.attempt() < 3:
        raise ConnectionError("payment service down")
    return {**ctx, "paid": True}


# An order approved by an event within a day, else rejected.
approval = Workflow("runner_approval")


@approval.step
def await_approval(ctx: dict[str, Any]) -> dict[str, Any]:
    decision = wait_for_event("approved", timeout=days(1), timeout_value={"by": None})
    return {**ctx, "approved_by": decision["by"]}


# A person reviews a document; after two hours without an answer it is escalated.
review = Workflow("runner_review")


@review.step
def ask_reviewer(ctx: dict[str, Any]) -> dict[str, Any]:
    answer = wait_for_input("verdict", type="approval", timeout=hours(2), timeout_value="escalated")
    return {**ctx, "verdict": answer}


# A parent calls a child that sleeps a day; the parent then sleeps an hour.
child = Workflow("runner_child")


@child.step
def ripen(ctx: dict[str, Any]) -> dict[str, Any]:
    sleep(days(1))
    return {"ripe": ctx["fruit"]}


parent = Workflow("runner_parent")


@parent.step
def pick(ctx: dict[str, Any]) -> dict[str, Any]:
    result = call_workflow(child, {"fruit": ctx["fruit"]})
    sleep(hours(1))
    return {**ctx, "picked": result["ripe"]}


# Two branches sleeping different times; a foreach over three items, each retried once.
fan = Workflow("runner_fan")

with fan.parallel():
    @fan.step
    def short(ctx: dict[str, Any]) -> dict[str, Any]:
        sleep(hours(1))
        return {"slept": 1}

    @fan.step
    def long(ctx: dict[str, Any]) -> dict[str, Any]:
        sleep(hours(5))
        return {"slept": 5}

with fan.foreach("each", items=lambda ctx: [1, 2, 3]):
    @fan.step(retry=Retry(max_attempts=2, backoff="constant", base=60))
    def handle(ctx: dict[str, Any], item: int) -> dict[str, Any]:
        if context.attempt() == 1:
            raise RuntimeError(f"item {item} failed once")
        return {**ctx, "total": ctx.get("total", 0) + item}


# A step that fails for good.
broken = Workflow("runner_broken")


@broken.step
def explode(ctx: dict[str, Any]) -> dict[str, Any]:
    raise ValueError("the warehouse is on fire")


# Waits for an event with no timeout.
go_signal = Workflow("runner_go_signal")


@go_signal.step
def wait_for_go(ctx: dict[str, Any]) -> dict[str, Any]:
    return {**ctx, "go": wait_for_event("go")}


# Waits for an event with no timeout, under a one-hour workflow timeout.
deadline = Workflow("runner_deadline", timeout=hours(1))


@deadline.step
def wait_forever(ctx: dict[str, Any]) -> dict[str, Any]:
    wait_for_event("never")
    return ctx


# A reservation released if the order is cancelled; the release fails once, retried after 30 s.
saga = Workflow("runner_saga")


@saga.step(compensate="release")
def reserve(ctx: dict[str, Any]) -> dict[str, Any]:
    return {**ctx, "reserved": True}


@saga.compensation(retry=Retry(max_attempts=2, backoff="constant", base=30))
def release(ctx: dict[str, Any]) -> dict[str, Any]:
    if context.attempt() == 1:
        raise RuntimeError("stock service down")
    return {**ctx, "released": True}


@saga.step
def await_payment(ctx: dict[str, Any]) -> dict[str, Any]:
    wait_for_event("paid")
    return ctx


# Two one-day sleeps in a row.
two_sleeps = Workflow("runner_two_sleeps")


@two_sleeps.step
def first_night(ctx: dict[str, Any]) -> dict[str, Any]:
    sleep(days(1))
    return ctx


@two_sleeps.step
def second_night(ctx: dict[str, Any]) -> dict[str, Any]:
    sleep(days(1))
    return ctx


# Sleeps a minute, forever (up to a million iterations).
forever = Workflow("runner_forever")

with forever.loop("tick", condition=lambda ctx: True, max_iterations=1_000_000):
    @forever.step
    def nap(ctx: dict[str, Any]) -> dict[str, Any]:
        sleep(minutes(1))
        return ctx


ALL = [ten_steps, flaky, approval, review, child, parent, fan, broken, go_signal, deadline, saga, two_sleeps,
       forever]
pytestmark = pytest.mark.durable(ALL, start=T0)


def attempts(env: TestEnvironment, execution_id: str) -> list[tuple[str, int, str]]:
    return [(s.step_name, s.attempt, s.status) for s in env.step_attempts(execution_id)]


# -- sleeps and timers ---------------------------------------------------------------------------


def test_a_sleep_of_three_days_is_skipped_to_and_recorded_at_its_time(durable_env: TestEnvironment) -> None:
    # Given a workflow started: it runs to its sleep and stops there, the clock unmoved
    execution_id = durable_env.start(ten_steps, {})
    assert durable_env.execution(execution_id).status == "waiting"
    assert durable_env.now == T0
    assert durable_env.next_due(execution_id) == T0 + days(3)

    # When it is run
    execution = durable_env.run(execution_id)

    # Then the clock jumped the three days, and the steps after the sleep ran then
    assert execution.status == "completed"
    assert execution.context == {"done": list(range(10))}
    assert durable_env.now == T0 + days(3)
    started = {s.step_name: s.started_at for s in execution.steps if s.attempt == 1}
    assert started["step_4"] == T0
    assert started["step_6"] == T0 + days(3)
    assert execution.completed_at == T0 + days(3)


def test_advance_stops_at_each_due_moment_on_the_way(durable_env: TestEnvironment) -> None:
    execution_id = durable_env.start(two_sleeps, {})
    # Half a day: nothing is due yet
    durable_env.advance(hours(12))
    assert durable_env.execution(execution_id).current_step == "first_night"
    # Two days more: the first sleep ends at day 1, the second (begun then) at day 2
    durable_env.advance(days(2))
    execution = durable_env.execution(execution_id)
    assert execution.status == "completed"
    assert execution.completed_at == T0 + days(2)
    assert durable_env.now == T0 + hours(12) + days(2)


def test_a_run_that_never_ends_is_stopped(durable_env: TestEnvironment) -> None:
    execution_id = durable_env.start(forever, {})
    with pytest.raises(RunLimitReached):
        durable_env.run(execution_id, max_wake_ups=5)
    assert durable_env.now == T0 + minutes(5)


# -- retries -------------------------------------------------------------------------------------


def test_retry_backoffs_are_spent_on_the_fake_clock(durable_env: TestEnvironment) -> None:
    execution = durable_env.run(durable_env.start(flaky, {}))

    assert execution.status == "completed"
    assert attempts(durable_env, execution.id) == [("pay", 1, "failed"), ("pay", 2, "failed"), ("pay", 3, "completed")]
    # Each attempt started exactly its backoff after the one before (10 s, then 100 s)
    starts = [s.started_at for s in execution.steps]
    assert starts == [T0, T0 + timedelta(seconds=retry_delay(PAY_RETRY, 1)),
                      T0 + timedelta(seconds=retry_delay(PAY_RETRY, 1) + retry_delay(PAY_RETRY, 2))]
    assert starts[2] == T0 + timedelta(seconds=110)
    assert execution.steps[0].error is not None
    assert execution.steps[0].error["message"] == "payment service down"


def test_the_backoff_holds_the_retry_until_the_clock_gets_there(durable_env: TestEnvironment) -> None:
    execution_id = durable_env.start(flaky, {})
    # The first attempt failed; the second waits 10 s
    assert attempts(durable_env, execution_id) == [("pay", 1, "failed")]
    assert durable_env.next_due(execution_id) == T0 + timedelta(seconds=10)
    durable_env.advance(9)
    assert attempts(durable_env, execution_id) == [("pay", 1, "failed")]
    durable_env.advance(1)
    assert attempts(durable_env, execution_id) == [("pay", 1, "failed"), ("pay", 2, "failed")]


# -- events and inputs -----------------------------------------------------------------------------


def test_an_event_sent_from_the_test_wakes_the_wait(durable_env: TestEnvironment) -> None:
    # Given an execution waiting for its approval event
    execution_id = durable_env.start(approval, {"order": 1})
    assert durable_env.execution(execution_id).status == "waiting"

    # When the event is sent an hour later
    durable_env.advance(hours(1))
    durable_env.send_event(execution_id, "approved", {"by": "ada"})

    # Then the execution completed then, with the payload
    execution = durable_env.execution(execution_id)
    assert execution.status == "completed"
    assert execution.context == {"order": 1, "approved_by": "ada"}
    assert execution.completed_at == T0 + hours(1)


def test_run_takes_a_wait_with_a_timeout_to_its_timeout(durable_env: TestEnvironment) -> None:
    execution = durable_env.run(durable_env.start(approval, {"order": 2}))
    assert execution.status == "completed"
    assert execution.context == {"order": 2, "approved_by": None}
    assert execution.completed_at == T0 + days(1)


def test_an_input_wait_times_out_when_the_clock_is_advanced_past_it(durable_env: TestEnvironment) -> None:
    execution_id = durable_env.start(review, {"doc": "a"})
    assert [i.input_name for i in durable_env.durable.list_pending_inputs()] == ["verdict"]

    durable_env.advance(hours(2))

    execution = durable_env.execution(execution_id)
    assert (execution.status, execution.context) == ("completed", {"doc": "a", "verdict": "escalated"})
    assert durable_env.durable.list_pending_inputs(status="pending") == []


def test_an_input_provided_in_time_is_the_answer(durable_env: TestEnvironment) -> None:
    execution_id = durable_env.start(review, {"doc": "b"})
    durable_env.advance(minutes(30))
    durable_env.provide_input(execution_id, "verdict", "approved")
    assert durable_env.execution(execution_id).context == {"doc": "b", "verdict": "approved"}


def test_run_stops_at_a_wait_only_the_outside_world_can_end(durable_env: TestEnvironment) -> None:
    # No timeout on the wait: run returns the execution waiting, and the clock has not moved
    execution_id = durable_env.start(go_signal, {})
    execution = durable_env.run(execution_id)
    assert (execution.status, execution.current_step, durable_env.now) == ("waiting", "wait_for_go", T0)
    assert durable_env.next_due(execution_id) is None

    durable_env.send_event(execution_id, "go", 42)
    assert durable_env.run(execution_id).context == {"go": 42}


def test_a_workflow_timeout_is_a_due_time_too(durable_env: TestEnvironment) -> None:
    execution = durable_env.run(durable_env.start(deadline, {}))
    assert execution.status == "failed"
    assert execution.error is not None and execution.error["type"] == "WorkflowTimeout"
    assert T0 + hours(1) < durable_env.now < T0 + hours(1) + timedelta(seconds=1)


# -- composition -------------------------------------------------------------------------------------


def test_a_child_workflow_is_run_with_its_parent(durable_env: TestEnvironment) -> None:
    execution = durable_env.run(durable_env.start(parent, {"fruit": "pear"}))

    assert execution.status == "completed"
    assert execution.context == {"fruit": "pear", "picked": "pear"}
    # the child's day, then the parent's hour
    assert execution.completed_at == T0 + days(1) + hours(1)
    (child_id,) = execution.children
    assert durable_env.execution(child_id).completed_at == T0 + days(1)


def test_parallel_branches_and_foreach_retries(durable_env: TestEnvironment) -> None:
    execution = durable_env.run(durable_env.start(fan, {}))

    assert execution.status == "completed"
    assert execution.context["total"] == 6
    # the branches slept side by side: the block ended after the longer sleep; then each
    # iteration failed once and was retried a minute later
    handled = [s for s in execution.steps if s.step_name == "handle"]
    assert [(s.attempt, s.status) for s in handled] == [(1, "failed"), (2, "completed")] * 3
    assert handled[0].started_at == T0 + hours(5)
    assert execution.completed_at == T0 + hours(5) + minutes(3)


def test_a_cancelled_saga_retries_its_compensation_on_the_fake_clock(durable_env: TestEnvironment) -> None:
    execution_id = durable_env.start(saga, {})
    durable_env.advance(minutes(5))
    # cancel runs the compensation at once: its first attempt fails, the retry waits 30 s
    durable_env.cancel(execution_id, compensate=True)
    assert durable_env.execution(execution_id).status == "compensating"

    execution = durable_env.run(execution_id)
    assert execution.status == "compensated"
    assert [(s.attempt, s.status, s.started_at) for s in execution.steps if s.is_compensation] == [
        (1, "failed", T0 + minutes(5)), (2, "completed", T0 + minutes(5) + timedelta(seconds=30))]


# -- failures ------------------------------------------------------------------------------------


def test_a_failing_workflow_reports_its_error(durable_env: TestEnvironment) -> None:
    execution = durable_env.run(durable_env.start(broken, {}))
    assert execution.status == "failed"
    assert execution.error is not None
    assert (execution.error["type"], execution.error["message"], execution.error["step"]) == (
        "ValueError", "the warehouse is on fire", "explode")
    assert attempts(durable_env, execution.id) == [("explode", 1, "failed")]


# -- the environment ---------------------------------------------------------------------------------


def test_ten_steps_with_a_three_day_sleep_run_in_well_under_a_second(durable_env: TestEnvironment) -> None:
    durable_env.run(durable_env.start(ten_steps, {}))  # warm: the first run compiles SQL statements
    started = time.perf_counter()
    execution = durable_env.run(durable_env.start(ten_steps, {}))
    elapsed = time.perf_counter() - started
    assert execution.status == "completed"
    assert durable_env.now == T0 + days(6)  # two runs, three days each
    # about 0.1 s on an idle machine; the bound leaves room for a busy CI machine
    assert elapsed < 1.0, f"took {elapsed:.3f} s"


def test_run_until_idle_runs_everything_that_waits_only_for_time(durable_env: TestEnvironment) -> None:
    a = durable_env.start(two_sleeps, {})
    b = durable_env.start(flaky, {})
    c = durable_env.start(review, {"doc": "c"})  # times out after 2 h
    durable_env.run_until_idle()
    assert {durable_env.execution(i).status for i in (a, b, c)} == {"completed"}
    assert durable_env.now == T0 + days(2)


def test_run_returns_when_the_tick_cannot_act_on_what_is_due(durable_env_factory: Any) -> None:
    # Given a step on a paused queue: due now, but no tick dispatches it
    env = durable_env_factory([broken], queue="paused_q", queues={"paused_q": {"concurrency": 1}}, start=T0)
    env.durable.pause_queue("paused_q")
    execution_id = env.start(broken, {})
    # Then run does not tick on for ever: the execution waits for the queue, the clock unmoved
    assert env.run(execution_id).status == "pending"
    assert env.now == T0
    env.durable.resume_queue("paused_q")
    assert env.run(execution_id).status == "failed"


def test_the_environment_on_postgresql() -> None:
    prefix = f"runner_{uuid.uuid4().hex[:8]}"
    with TestEnvironment([flaky], database_url=POSTGRES, prefix=prefix, start=T0) as env:
        try:
            execution = env.run(env.start(flaky, {}))
            assert execution.status == "completed"
            assert [s.started_at for s in execution.steps][-1] == T0 + timedelta(seconds=110)
        finally:
            with env.durable.db.begin() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{prefix}" CASCADE'))


def test_options_the_environment_sets_are_refused() -> None:
    with pytest.raises(InvalidInput, match="max_countdown"):
        TestEnvironment([], max_countdown=5)


def test_a_given_app_runs_the_tasks_steps_await_and_is_eager_only_while_the_environment_lives() -> None:
    app = Celery("runner-own-app")

    @app.task(name="runner_square")
    def square(n: int) -> int:
        return n * n

    squares = Workflow("runner_squares")

    @squares.step
    def ask(ctx: dict[str, Any]) -> dict[str, Any]:
        return {"square": await_task(square.s(ctx["n"]))}

    with TestEnvironment([squares], app=app, prefix="runner_own") as env:
        assert app.conf.task_always_eager
        assert env.now == DEFAULT_START
        assert env.run(env.start(squares, {"n": 7})).context == {"square": 49}
    assert not app.conf.task_always_eager
    assert not env.directory.exists()


def test_advance_fires_cron_schedules_at_each_slot(durable_env_factory: Any) -> None:
    nightly = Workflow("runner_nightly", schedule=Cron("0 2 * * *"))

    @nightly.step
    def report(ctx: dict[str, Any]) -> dict[str, Any]:
        return {"ran": True}

    env = durable_env_factory([nightly], start=T0)
    env.advance(days(3))
    runs = env.durable.list_executions(workflow="runner_nightly")
    assert sorted(e.started_at for e in runs) == [T0.replace(hour=2) + days(n) for n in (1, 2, 3)]
    # run_until_idle does not chase the schedule: it would never be idle
    env.run_until_idle()
    assert env.now == T0 + days(3)


# -- the pytest plugin -------------------------------------------------------------------------------


@pytest.fixture
def durable_workflows() -> list[Workflow]:
    return [broken]


@pytest.mark.durable(start=datetime(2040, 6, 1, tzinfo=timezone.utc))
def test_the_marker_sets_the_options_and_durable_workflows_the_workflows(durable_env: TestEnvironment) -> None:
    assert durable_env.now == datetime(2040, 6, 1, tzinfo=timezone.utc)
    assert durable_env.durable.registry.get("runner_broken") is not None
    assert durable_env.durable.registry.get("runner_flaky") is None


def test_loading_the_plugin_imports_nothing_of_the_engine() -> None:
    code = ("import sys, durable_celery_pytest; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'durable_celery', 'celery', 'sqlalchemy'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_plugin_in_a_project_of_its_own(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")  # this plugin alone, as -p loads it
    pytester.makepyfile(test_order="""
        import pytest
        from durable_celery import Workflow, hours
        from durable_celery.wait import sleep

        order = Workflow("plugin_order")

        @order.step
        def ship(ctx):
            sleep(hours(24))
            return {**ctx, "shipped": True}

        @pytest.fixture
        def durable_workflows():
            return [order]

        def test_ships_the_next_day(durable_env):
            execution = durable_env.run(durable_env.start(order, {"id": 1}))
            assert execution.context == {"id": 1, "shipped": True}
            assert execution.completed_at == durable_env.now

        @pytest.mark.durable(workflows=[order])
        def test_two_environments(durable_env, durable_env_factory):
            other = durable_env_factory([order])
            assert other.directory != durable_env.directory
    """)
    result = pytester.runpytest_inprocess("-p", "durable_celery_pytest", "--strict-markers")
    result.assert_outcomes(passed=2)


def test_the_example_in_the_docs_passes(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    # The two code blocks of docs/testing.md's example, as a project of their own
    docs = (Path(__file__).resolve().parent.parent / "docs" / "testing.md").read_text()
    section = docs[docs.index("### Unit tests on a fake clock"):docs.index("#### What moves the clock")]
    blocks = {block.split("\n", 1)[0]: block for block in re.findall(r"```python\n(.*?)```", section, re.S)}
    pytester.mkpydir("myproj")
    pytester.path.joinpath("myproj", "workflows.py").write_text(blocks["# myproj/workflows.py"])
    pytester.makepyfile(test_order=blocks["# tests/test_order.py"])
    pytester.syspathinsert()
    result = pytester.runpytest_inprocess("-p", "durable_celery_pytest", "--strict-markers")
    result.assert_outcomes(passed=2)

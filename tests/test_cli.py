"""`celery -A proj durable ...` as users run it: the real command in a subprocess, against the real
Postgres (one schema per test module, dropped at the end) and Redis. The project it drives is
tests/cliproj.py; only the tests that need steps to have run start a worker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

from durable_celery.state.migrate import head_revision
from durable_celery.testing.workers import worker

ROOT = Path(__file__).resolve().parent.parent
DATABASE = os.environ.get("DURABLE_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
BROKER = os.environ.get("DURABLE_TEST_CLI_REDIS", "redis://127.0.0.1:6379/11")


@dataclass
class Cli:
    """Runs `python -m celery -A tests.cliproj durable ARGS` for one schema prefix."""

    prefix: str
    env: dict[str, str] = field(default_factory=dict)

    @property
    def queue(self) -> str:
        return f"dq-{self.prefix}"

    def environ(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "CLI_BROKER": BROKER, "CLI_DB": DATABASE, "CLI_PREFIX": self.prefix,
                "CLI_QUEUE": self.queue, **self.env, **extra}

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "celery", "-A", "tests.cliproj", "durable", *args]
        return subprocess.run(cmd, cwd=ROOT, env=self.environ(**env), capture_output=True, text=True, timeout=60)

    def ok(self, *args: str, **env: str) -> str:
        """Stdout of a command that must succeed."""
        result = self.run(*args, **env)
        assert result.returncode == 0, f"durable {' '.join(args)} exited {result.returncode}:\n{result.stderr}"
        assert "Traceback" not in result.stderr
        return result.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--format", "json"))

    def fails(self, *args: str, code: int, **env: str) -> str:
        """Stderr of a command that must fail with ``code``, readably (no traceback)."""
        result = self.run(*args, **env)
        assert result.returncode == code, (f"durable {' '.join(args)} exited {result.returncode}, not {code}\n"
                                           f"{result.stdout}\n{result.stderr}")
        assert "Traceback" not in result.stderr + result.stdout
        assert result.stderr.strip().splitlines()[-1].startswith("Error: ")
        return result.stderr

    def total(self) -> int:
        return int(self.json("status")["total"])


def _drop(prefix: str) -> None:
    with psycopg.connect(DATABASE.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{prefix}" CASCADE')
    client = redis.Redis.from_url(BROKER)
    for key in client.scan_iter(match=f"*{prefix}*"):  # its queues and their kombu bindings
        client.delete(key)


def _new_cli() -> Cli:
    # Connect first: a service that is down fails the test here, loudly.
    psycopg.connect(DATABASE.replace("+psycopg", ""), connect_timeout=3).close()
    redis.Redis.from_url(BROKER, socket_timeout=3).ping()
    return Cli(prefix=f"cli_{uuid.uuid4().hex[:10]}")


@contextmanager
def migrated_cli() -> Iterator[Cli]:
    """A migrated schema (dropped afterwards) and the commands on it."""
    made = _new_cli()
    try:
        made.ok("migrate")
        yield made
    finally:
        _drop(made.prefix)


@pytest.fixture(scope="module")
def cli() -> Iterator[Cli]:
    """A migrated schema shared by the module."""
    with migrated_cli() as made:
        yield made


@pytest.fixture
def fresh_cli() -> Iterator[Cli]:
    """A schema prefix nothing has created yet."""
    made = _new_cli()
    try:
        yield made
    finally:
        _drop(made.prefix)


# -- migrate -------------------------------------------------------------------------------------


def test_migrate_check_fails_when_schema_is_behind_and_passes_after_migrate(fresh_cli: Cli) -> None:
    # Given a database without the schema, the check reports it and exits non-zero
    head = head_revision()
    result = fresh_cli.run("migrate", "--check")
    assert result.returncode == 1
    assert "current none" in result.stdout and f"head {head}" in result.stdout
    assert "is behind" in result.stderr and "celery -A tests.cliproj durable migrate" in result.stderr
    # When it is migrated
    assert f"to {head}" in fresh_cli.ok("migrate")
    # Then the check passes, and migrating again changes nothing
    assert "up to date" in fresh_cli.ok("migrate", "--check")
    assert f"already at {head}" in fresh_cli.ok("migrate")


def test_commands_refuse_a_schema_that_is_behind_and_say_how_to_migrate(fresh_cli: Cli) -> None:
    error = fresh_cli.fails("status", code=1)
    assert "is at None" in error and "durable migrate" in error
    # and the check still reports it behind: nothing was created by the refused command
    assert fresh_cli.run("migrate", "--check").returncode == 1


# -- workflows, run, show, list, status ------------------------------------------------------------


def test_workflows_lists_the_registered_workflow_names(cli: Cli) -> None:
    assert [w["name"] for w in cli.json("workflows")] == ["broken", "family", "greet", "order"]
    lines = cli.ok("workflows").splitlines()
    assert lines[0].split() == ["NAME", "QUEUE", "TIMEOUT", "SCHEDULE", "RUNS", "RUNNING", "WAITING", "FAILED", "LAST",
                                "RUN", "LAST", "STATUS"]
    assert [line.split()[0] for line in lines[1:]] == ["broken", "family", "greet", "order"]


def test_run_prints_the_id_of_a_pending_execution_that_show_and_list_report(cli: Cli) -> None:
    # When I start a workflow with an input (no worker runs it)
    execution_id = cli.ok("run", "greet", "--input", '{"name": "ann", "n": 1.5}').strip()
    assert str(uuid.UUID(execution_id)) == execution_id
    # Then show reports it pending on its first step, with its input
    shown = cli.json("show", execution_id)
    assert (shown["id"], shown["workflow"], shown["status"]) == (execution_id, "greet", "pending")
    assert shown["input"] == {"name": "ann", "n": 1.5} and shown["current_step"] == "hello"
    assert shown["queue"] == cli.queue and shown["steps"] == []
    assert datetime.fromisoformat(shown["created_at"]).tzinfo is not None
    table = cli.ok("show", execution_id)
    assert f"id            {execution_id}" in table and "status        pending" in table
    assert '"name":"ann"' in table.split("input", 1)[1].splitlines()[0] and "no step attempts yet" in table
    # And list shows it, newest first, filtered by workflow and status
    listed = cli.json("list", "--workflow", "greet", "--status", "pending")
    assert listed[0]["id"] == execution_id and all(e["status"] == "pending" for e in listed)
    assert execution_id not in [e["id"] for e in cli.json("list", "--status", "completed")]
    assert execution_id not in [e["id"] for e in cli.json("list", "--workflow", "broken")]
    rows = cli.ok("list", "--limit", "1").splitlines()
    assert rows[0].split() == ["ID", "WORKFLOW", "STATUS", "STEP", "QUEUE", "CREATED", "COMPLETED", "VERSION"]
    assert rows[1].split()[:4] == [execution_id, "greet", "pending", "hello"] and len(rows) == 2


def test_run_puts_the_execution_on_the_queue_given(cli: Cli) -> None:
    queue = f"{cli.queue}-other"
    execution_id = cli.ok("run", "greet", "--input", '{"name": "q"}', "--queue", queue).strip()
    assert cli.json("show", execution_id)["queue"] == queue


def test_run_sets_a_start_deadline_counted_from_the_start(cli: Cli) -> None:
    # When I start a workflow with --start-deadline 90m
    execution_id = cli.ok("run", "greet", "--input", '{"name": "sd"}', "--start-deadline", "90m").strip()
    # Then its first step must begin within 90 minutes of its start
    with psycopg.connect(DATABASE.replace("+psycopg", ""), autocommit=True) as conn:
        deadline, created = conn.execute(f'SELECT start_deadline_at, created_at FROM "{cli.prefix}".workflow_executions '
                                         "WHERE id = %s", (execution_id,)).fetchone()
    assert (deadline - created).total_seconds() == 90 * 60
    # And a start deadline that is not a duration (or not a positive one) starts nothing
    total = cli.total()
    assert "not a duration" in cli.fails("run", "greet", "--start-deadline", "soon", code=2)
    assert "must be positive" in cli.fails("run", "greet", "--start-deadline", "0s", code=2)
    assert cli.total() == total


def test_status_counts_executions_by_status(cli: Cli) -> None:
    before = cli.json("status")
    assert set(before["counts"]) == {"pending", "running", "waiting", "completed", "failed", "cancelled",
                                     "compensating", "compensated", "compensation_failed"}
    # Given one more pending and one more cancelled execution
    cli.ok("run", "greet", "--input", '{"name": "a"}')
    cli.ok("cancel", cli.ok("run", "greet", "--input", '{"name": "b"}').strip())
    # Then the counts moved by exactly that
    after = cli.json("status")
    assert after["counts"]["pending"] == before["counts"]["pending"] + 1
    assert after["counts"]["cancelled"] == before["counts"]["cancelled"] + 1
    assert after["total"] == before["total"] + 2 == sum(after["counts"].values())
    counts_table = cli.ok("status").split("\n\n")[0]
    table = dict(line.split() for line in counts_table.splitlines()[1:])
    assert table["total"] == str(after["total"]) and table["cancelled"] == str(after["counts"]["cancelled"])
    # the controlled queues follow, in the table and in JSON
    assert [q["name"] for q in after["queues"]] == [q["name"] for q in cli.json("queues") if q["controlled"]]
    if after["queues"]:
        assert "QUEUE" in cli.ok("status")


# -- cancel, retry ------------------------------------------------------------------------------------


def test_cancel_then_retry_starts_a_new_execution_with_the_same_input(cli: Cli) -> None:
    execution_id = cli.ok("run", "greet", "--input", '{"name": "cy"}').strip()
    # When I cancel it with a reason
    assert cli.ok("cancel", execution_id, "--reason", "not needed").strip() == f"cancelled {execution_id}"
    cancelled = cli.json("show", execution_id)
    assert cancelled["status"] == "cancelled" and cancelled["error"]["message"] == "not needed"
    assert cancelled["completed_at"] is not None
    # And retry it
    new_id = cli.ok("retry", execution_id).strip()
    # Then a new pending execution of the same workflow and input exists; the old one is unchanged
    assert new_id != execution_id and str(uuid.UUID(new_id)) == new_id
    retried = cli.json("show", new_id)
    assert (retried["workflow"], retried["status"], retried["input"]) == ("greet", "pending", {"name": "cy"})
    assert cli.json("show", execution_id)["status"] == "cancelled"


def test_cancelling_a_finished_execution_or_retrying_an_active_one_is_refused(cli: Cli) -> None:
    execution_id = cli.ok("run", "greet", "--input", '{"name": "d"}').strip()
    assert "only failed, cancelled, compensated or compensation_failed executions can be retried" in cli.fails(
        "retry", execution_id, code=1)
    cli.ok("cancel", execution_id)
    assert f"execution {execution_id} is cancelled" in cli.fails("cancel", execution_id, code=1)


# -- bad input ----------------------------------------------------------------------------------------

UNKNOWN = "00000000-0000-4000-8000-000000000000"


@pytest.mark.parametrize(("args", "message"), [
    (["run", "greet", "--input", "{name: 1}"], "Invalid value for '--input': not valid JSON"),
    (["run", "greet", "--input", "[1, 2]"], "expected a JSON object"),
    (["run", "nope"], "no workflow named 'nope' is registered"),
    (["show", UNKNOWN], f"no execution with id '{UNKNOWN}'"),
    (["cancel", UNKNOWN], f"no execution with id '{UNKNOWN}'"),
    (["retry", UNKNOWN], f"no execution with id '{UNKNOWN}'"),
    (["show", "not-an-id"], "'not-an-id' is not an execution id"),
    (["list", "--status", "sleeping"], "'sleeping' is not one of 'pending'"),
    (["list", "--limit", "0"], "Invalid value for '--limit'"),
    (["list", "--format", "yaml"], "Invalid value for '--format'"),
    (["send-event", UNKNOWN, "paid"], f"no execution with id '{UNKNOWN}'"),
    (["provide-input", UNKNOWN, "manager", "--data", '"approved"'], f"no execution with id '{UNKNOWN}'"),
    (["send-event", "not-an-id", "paid"], "'not-an-id' is not an execution id"),
    (["send-event", UNKNOWN, "paid", "--payload", "{bad"], "Invalid value for '--payload': not valid JSON"),
    (["provide-input", UNKNOWN, "manager", "--data", "approved"], """a string needs JSON quotes, e.g. '"approved"'"""),
    (["pending", "--limit", "0"], "Invalid value for '--limit'"),
])
def test_bad_input_exits_2_with_a_readable_error(cli: Cli, args: list[str], message: str) -> None:
    assert message in cli.fails(*args, code=2)


def test_a_refused_run_starts_nothing(cli: Cli) -> None:
    before = cli.total()
    cli.fails("run", "greet", "--input", "{bad", code=2)
    cli.fails("run", "nope", code=2)
    assert cli.total() == before


# -- events and inputs without a worker ----------------------------------------------------------------


def test_an_event_sent_before_the_execution_waits_is_kept_and_listed_by_pending(cli: Cli) -> None:
    # Given a pending execution (no worker runs it, so it waits for nothing yet)
    execution_id = cli.ok("run", "order", "--input", '{"order": 1}').strip()
    # When an event is sent to it
    assert cli.ok("send-event", execution_id, "shipped", "--payload", '{"tracking": "T0"}').strip() == (
        f"sent event shipped to {execution_id}")
    # Then pending --events lists it, with its payload; the execution is still pending
    listed = cli.json("pending", "--events")
    assert set(listed) == {"events"}
    mine = [e for e in listed["events"] if e["execution_id"] == execution_id]
    assert [(e["kind"], e["name"], e["payload"], e["status"]) for e in mine] == [
        ("event", "shipped", {"tracking": "T0"}, "pending")]
    assert datetime.fromisoformat(mine[0]["created_at"]).tzinfo is not None
    assert cli.json("show", execution_id)["status"] == "pending"
    # And the table shows both sections by default, the event in its own
    table = cli.ok("pending")
    assert "pending events:" in table and ("pending inputs:" in table or "no pending inputs" in table)
    row = next(line for line in table.split("pending events:", 1)[1].splitlines() if execution_id in line)
    assert row.split()[:4] == [execution_id, "event", "shipped", '{"tracking":"T0"}']
    assert set(cli.json("pending")) == {"inputs", "events"}
    assert "pending events:" not in cli.ok("pending", "--inputs")


def test_events_and_inputs_for_a_finished_execution_are_refused(cli: Cli) -> None:
    execution_id = cli.ok("run", "order", "--input", '{"order": 2}').strip()
    cli.ok("cancel", execution_id)
    assert "a finished execution takes no events" in cli.fails("send-event", execution_id, "shipped", code=1)
    assert "a finished execution takes no input" in cli.fails(
        "provide-input", execution_id, "manager", "--data", '"approved"', code=1)
    assert execution_id not in [e["execution_id"] for e in cli.json("pending", "--events")["events"]]


# -- finding the Durable instance ---------------------------------------------------------------------


def test_an_app_without_a_durable_instance_gets_a_clear_error(cli: Cli) -> None:
    error = cli.fails("status", code=2, CLI_NO_DURABLE="1")
    assert "no Durable instance uses the Celery app of 'tests.cliproj'" in error


def test_an_app_with_two_durable_instances_needs_the_instance_option(cli: Cli) -> None:
    second = f"{cli.prefix}_b"
    error = cli.fails("status", code=2, CLI_SECOND_PREFIX=second)
    assert "choose one with `durable --instance PREFIX ...`" in error and f"{cli.prefix}, {second}" in error
    assert json.loads(cli.ok("--instance", cli.prefix, "status", "--format", "json", CLI_SECOND_PREFIX=second))
    assert "has the prefix 'zzz'" in cli.fails("--instance", "zzz", "status", code=2, CLI_SECOND_PREFIX=second)


def test_an_unreachable_database_is_reported_in_one_line(cli: Cli) -> None:
    error = cli.fails("status", code=1, CLI_DB="postgresql+psycopg://postgres@127.0.0.1:1/test")
    assert "cannot reach the database" in error and len(error.strip().splitlines()) == 1


# -- with a worker ------------------------------------------------------------------------------------


def _wait_for(cli: Cli, execution_id: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        shown: dict[str, Any] = cli.json("show", execution_id, "--logs")
        if shown["status"] in ("completed", "failed"):
            return shown
        assert time.monotonic() < deadline, f"{execution_id} still {shown['status']} after {timeout}s"
        time.sleep(0.2)


def test_show_reports_each_step_attempt_with_what_it_logged_and_failures_can_be_retried(cli: Cli) -> None:
    with worker("tests.cliproj", [cli.queue], concurrency=1, pool="solo", env=cli.environ(), cwd=str(ROOT)):
        greeted_id = cli.ok("run", "greet", "--input", '{"name": "bo"}').strip()
        broken_id = cli.ok("run", "broken").strip()
        greeted, broken = _wait_for(cli, greeted_id), _wait_for(cli, broken_id)
    # The completed execution shows both attempts and what each logged or printed
    assert greeted["status"] == "completed"
    assert greeted["context"] == {"name": "bo", "greeting": "hello bo", "shouted": True}
    assert [(s["step_name"], s["attempt"], s["status"]) for s in greeted["steps"]] == [
        ("hello", 1, "completed"), ("shout", 1, "completed")]
    assert [entry["message"] for entry in greeted["steps"][0]["logs"]] == ["saying hello to bo"]
    assert [entry["message"] for entry in greeted["steps"][1]["logs"]] == ["HELLO BO"]
    table = cli.ok("show", greeted_id, "--logs")
    assert "logs of hello (attempt 1):" in table and "INFO cliproj: saying hello to bo" in table
    assert "PRINT stdout: HELLO BO" in table
    assert "saying hello" not in cli.ok("show", greeted_id)
    # The failed one shows the error, and its traceback with --logs
    assert broken["status"] == "failed" and broken["error"]["type"] == "RuntimeError"
    table = cli.ok("show", broken_id, "--logs")
    assert "error         RuntimeError: boom (step explode)" in table
    assert 'raise RuntimeError("boom")' in table
    # A failed execution can be retried; a completed one cannot
    assert cli.json("show", cli.ok("retry", broken_id).strip())["status"] == "pending"
    assert "only failed, cancelled" in cli.fails("retry", greeted_id, code=1)


def test_show_lists_the_child_workflows_an_execution_called(cli: Cli) -> None:
    with worker("tests.cliproj", [cli.queue], concurrency=1, pool="solo", env=cli.environ(), cwd=str(ROOT)):
        parent_id = cli.ok("run", "family", "--input", '{"name": "ada"}').strip()
        parent = _wait_for(cli, parent_id)
    assert parent["context"] == {"greetings": ["hello ada", "hello ada junior"]}
    assert len(parent["children"]) == 2
    table = cli.ok("show", parent_id)
    assert "CHILD WORKFLOW" in table
    for child_id in parent["children"]:
        assert child_id in table
        assert cli.json("show", child_id)["parent_id"] == parent_id


def _poll(what: str, check: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"no {what} after {timeout}s"
        time.sleep(0.2)


def test_a_waiting_execution_resumes_on_its_input_and_event(cli: Cli) -> None:
    with worker("tests.cliproj", [cli.queue], concurrency=1, pool="solo", env=cli.environ(), cwd=str(ROOT)):
        execution_id = cli.ok("run", "order", "--input", '{"order": 7}').strip()

        def asked() -> list[dict[str, Any]]:
            return [r for r in cli.json("pending", "--inputs")["inputs"] if r["workflow_id"] == execution_id]

        # Given the execution waits for a manager's approval, which pending lists with its prompt
        (request,) = _poll("input request", asked)
        assert (request["input_name"], request["type"], request["step_name"]) == ("manager", "approval", "fulfil")
        assert (request["prompt"], request["status"], request["response"]) == ("ship order 7?", "pending", None)
        assert cli.json("show", execution_id)["status"] == "waiting"
        row = next(line for line in cli.ok("pending", "--inputs").splitlines() if execution_id in line)
        assert row.split()[:4] == [execution_id, "manager", "approval", "fulfil"] and "ship order 7?" in row
        # When a bad answer is given, it is refused and nothing changes
        error = cli.fails("provide-input", execution_id, "manager", "--data", '"maybe"', code=2)
        assert "an approval takes 'approved' or 'rejected'" in error and "'maybe'" in error
        assert asked() == [request] and cli.json("show", execution_id)["status"] == "waiting"
        assert execution_id not in [e["execution_id"] for e in cli.json("pending", "--events")["events"]]
        # When the manager approves, the execution goes on to wait for the shipment
        assert cli.ok("provide-input", execution_id, "manager", "--data", '"approved"').strip() == (
            f"provided input manager to {execution_id}")
        _poll("wait for the shipment", lambda: cli.json("show", execution_id)["status"] == "waiting" and not asked())
        # A second answer is refused
        assert "already provided" in cli.fails("provide-input", execution_id, "manager", "--data", '"rejected"',
                                               code=1)
        assert execution_id not in [e["execution_id"] for e in cli.json("pending", "--events")["events"]]
        # When the event it waits for is sent, it completes with the payload
        cli.ok("send-event", execution_id, "shipped", "--payload", '{"tracking": "T7"}')
        done = _wait_for(cli, execution_id)
    assert done["status"] == "completed"
    assert done["context"] == {"order": 7, "decision": "approved", "shipment": {"tracking": "T7"}}
    # And a finished execution takes neither
    assert "a finished execution takes no input" in cli.fails("provide-input", execution_id, "manager", "--data",
                                                              '"approved"', code=1)
    assert "finished execution" in cli.fails("send-event", execution_id, "shipped", code=1)


def test_graph_draws_a_workflow_as_mermaid_dot_or_json(cli: Cli) -> None:
    assert cli.ok("graph", "greet").startswith("flowchart TD")
    assert cli.ok("graph", "greet", "--format", "dot").startswith('digraph "greet"')
    nodes = {n["id"] for n in cli.json("graph", "greet", "--format", "json")["nodes"]}
    assert {"$start", "hello", "$end"} <= nodes
    assert "no workflow named 'nope'" in cli.fails("graph", "nope", code=2)


# -- queues --------------------------------------------------------------------------------------


def test_queues_lists_limits_and_pause_and_resume_are_stored_for_every_process(cli: Cli) -> None:
    ai = f"{cli.queue}-ai"
    listed = {q["name"]: q for q in cli.json("queues")}
    assert listed[ai] == {"name": ai, "running": 0, "runnable": 0, "waiting": 0, "concurrency": 2, "paused": False,
                          "rate": "100/m", "rate_used": 0, "per_key": "tenant", "key_concurrency": 1,
                          "key_rate": None, "controlled": True}
    assert listed[cli.queue]["controlled"] is False and listed[cli.queue]["concurrency"] is None
    lines = cli.ok("queues").splitlines()
    assert lines[0].split()[:4] == ["QUEUE", "RUNNING", "RUNNABLE", "WAITING"]
    assert lines[1].split()[0] == ai and lines[1].split()[-1] == "no"
    # pause, in one process, is seen by the next one (it is stored in Postgres)
    assert cli.ok("queues", "pause", ai).splitlines()[0] == f"queue {ai} paused"
    assert cli.json("queues", "list", ai)["paused"] is True
    assert cli.ok("queues").splitlines()[1].split()[-1] == "yes"
    assert cli.json("queues", "resume", ai)["paused"] is False


@pytest.mark.parametrize(("args", "message"), [
    (["pause"], "needs the queue's NAME"),
    (["pause", "nope"], "no queue named 'nope'"),
    (["list", "nope"], "no queue named 'nope'"),
])
def test_queues_refuses_a_missing_or_unknown_queue(cli: Cli, args: list[str], message: str) -> None:
    assert message in cli.fails("queues", *args, code=2)


def test_only_a_queue_listed_in_queues_can_be_paused(cli: Cli) -> None:
    assert "only queues listed in queues= can be paused" in cli.fails("queues", "pause", cli.queue, code=2)


# -- metrics, workflows with their runs, list pages --------------------------------------------------

def test_metrics_workflows_and_list_pages_report_the_runs(fresh_cli: Cli) -> None:
    fresh_cli.ok("migrate")
    # Given three greetings and one broken run on a real worker
    with worker("tests.cliproj", [fresh_cli.queue], concurrency=1, pool="solo", env=fresh_cli.environ(),
                cwd=str(ROOT)):
        ids = [fresh_cli.ok("run", "greet", "--input", f'{{"name": "n{i}"}}').strip() for i in range(3)]
        ids.append(fresh_cli.ok("run", "broken").strip())
        for execution_id in ids:
            _wait_for(fresh_cli, execution_id)
    # Then metrics counts them, with a success rate and per-step figures
    found = json.loads(fresh_cli.ok("metrics", "--json"))
    assert (found["total"], found["counts"]["completed"], found["counts"]["failed"]) == (4, 3, 1)
    assert found["success_rate"] == 0.75
    steps = {s["step_name"]: s for s in found["steps"]}
    assert (steps["hello"]["attempts"], steps["explode"]["failures"]) == (3, 1)
    assert json.loads(fresh_cli.ok("metrics", "--workflow", "greet", "--since", "1h", "--json"))["total"] == 3
    table = fresh_cli.ok("metrics")
    assert "success rate  75.0%" in table and "explode" in table
    assert "is not a duration" in fresh_cli.fails("metrics", "--since", "soon", code=2)
    # And workflows lists each with its runs, the ones that never ran included
    rows = {r["name"]: r for r in fresh_cli.json("workflows")}
    assert (rows["greet"]["total_runs"], rows["broken"]["failed"], rows["order"]["total_runs"]) == (3, 1, 0)
    assert rows["broken"]["last_status"] == "failed"
    # And list pages through them, newest first, with the cursor of the next page
    first = fresh_cli.ok("list", "--limit", "3")
    cursor = first.strip().splitlines()[-1].removeprefix("more: --cursor ")
    rest = fresh_cli.json("list", "--limit", "3", "--cursor", cursor)
    assert [e["id"] for e in rest] == [ids[0]]
    assert [e["id"] for e in fresh_cli.json("list", "--step", "explode")] == [ids[3]]
    assert "is not a cursor" in fresh_cli.fails("list", "--cursor", "nope", code=2)


# -- events -------------------------------------------------------------------------------------


def test_events_follows_lifecycle_events_from_other_processes_as_json_lines(cli: Cli) -> None:
    # Given `durable events` following one workflow's executions
    follow = subprocess.Popen([sys.executable, "-m", "celery", "-A", "tests.cliproj", "durable", "events",
                               "--workflow", "greet", "--kind", "execution.started", "--timeout", "10s"],
                              cwd=ROOT, env=cli.environ(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(3)  # subscribed, and seen by the other processes (they look once a second)
        # When another process starts one
        execution_id = cli.ok("run", "greet", "--input", '{"name": "ev"}').strip()
        out, err = follow.communicate(timeout=30)
    finally:
        if follow.poll() is None:
            follow.kill()
    # Then it printed the event as a JSON line, and stopped after 10 s without another
    assert follow.returncode == 0, err
    [line] = out.splitlines()
    event = json.loads(line)
    assert (event["kind"], event["execution_id"], event["workflow"]) == ("execution.started", execution_id, "greet")


def test_events_refuses_an_unknown_kind(cli: Cli) -> None:
    assert "unknown event kind" in cli.fails("events", "--kind", "step.exploded", code=2)

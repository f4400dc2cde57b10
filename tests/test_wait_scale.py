"""Waits at scale, on the real PostgreSQL: the tick's due-waits sweep is driven by the partial
index on due waits, whatever the number of waiting executions, and an event sent to a workflow
with a 10,000-item foreach touches only the iterations that wait for it. Rows are inserted in
bulk with SQL (no workers): what is measured is the store, not the steps."""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, insert, select, text
from sqlalchemy.engine import Connection

from durable_celery import Durable, InvalidInput, InvalidState
from durable_celery.runtime import deliver
from durable_celery.state.journal import should_wake
from durable_celery.state.tables import waits as w
from durable_celery.state.tables import workflow_executions as t
from durable_celery.state.waits import take_due_waits_txn
from tests.conftest import BROKERS, Project, _delete_queues
from tests.proj.factory import make

Factory = Callable[..., Project]

WAITING_EXECUTIONS = 100_000
DUE = 50
ITERATIONS = 10_000


def run(p: Project, query: str, **params: Any) -> None:
    with p.durable.db.begin() as conn:
        conn.execute(text(query.replace("{schema}", f'"{p.prefix}"')), params)


def insert_executions(p: Project, select: str, **params: Any) -> None:
    """INSERT ... SELECT into workflow_executions; ``select`` yields id, status, root_id,
    parent_id, kind, branch_index, entered_seq."""
    run(p, "INSERT INTO {schema}.workflow_executions (id, status, root_id, parent_id, kind, branch_index, "
           "entered_seq, seq, workflow, version, queue, current_node, node_shape, created_at, updated_at) "
           "SELECT id, status, root_id, parent_id, kind, branch_index, entered_seq, entered_seq + 1, "
           f"'eventful', 'v1', '{p.queue}', 'await_payment', 'step', now(), now() FROM ({select}) "
           "AS rows (id, status, root_id, parent_id, kind, branch_index, entered_seq)", **params)


def insert_waits(p: Project, select: str, **params: Any) -> None:
    """INSERT ... SELECT into waits; ``select`` yields execution_id, entered_seq, idx, kind,
    names (JSON text), status, timeout_at."""
    run(p, "INSERT INTO {schema}.waits (execution_id, entered_seq, idx, step_name, kind, names, status, timeout_at, "
           "created_at) SELECT execution_id, entered_seq, idx, 'await_payment', kind, CAST(names AS jsonb), status, "
           f"timeout_at, now() FROM ({select}) AS rows (execution_id, entered_seq, idx, kind, names, status, timeout_at)",
        **params)


def statuses(p: Project, ids: list[str]) -> dict[str, str]:
    return dict(p.sql("SELECT id, status FROM {schema}.workflow_executions WHERE id = ANY(:ids)", ids=ids))


Statements = list[tuple[str, Any]]


@pytest.fixture
def counted() -> Iterator[Callable[[Project], Statements]]:
    """Record the SQL statements (and their parameters) a project's engine sends from now on."""
    listeners: list[tuple[Any, Callable[..., None]]] = []

    def count(p: Project) -> Statements:
        statements: Statements = []

        def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
            if "heartbeats" not in statement:  # a process's look for live-event subscribers, once a second at most
                statements.append((statement, parameters))

        event.listen(p.durable.db.engine, "before_cursor_execute", record)
        listeners.append((p.durable.db.engine, record))
        return statements

    yield count
    for engine, listener in listeners:
        event.remove(engine, "before_cursor_execute", listener)


# -- the tick's sweep over 100,000 waiting executions -------------------------------------------


def waiting_executions(p: Project) -> None:
    """100,000 executions waiting at visit 3 of their step, with one pending wait each: the
    first 50 are due, the others due tomorrow."""
    insert_executions(p, "SELECT 'x' || lpad(i::text, 8, '0'), 'waiting', 'x' || lpad(i::text, 8, '0'), NULL, "
                         "'workflow', NULL::int, 3 FROM generate_series(1, CAST(:n AS int)) AS i", n=WAITING_EXECUTIONS)
    insert_waits(p, "SELECT 'x' || lpad(i::text, 8, '0'), 3, 0, 'event', '[\"paid\"]', 'pending', "
                    "CASE WHEN i <= :due THEN now() - interval '1 minute' ELSE now() + interval '1 day' END "
                    "FROM generate_series(1, CAST(:n AS int)) AS i", n=WAITING_EXECUTIONS, due=DUE)


def analyze(p: Project) -> None:
    run(p, "ANALYZE {schema}.workflow_executions")
    run(p, "ANALYZE {schema}.waits")


def explain(conn: Connection, statement: str, parameters: Any, *options: str) -> list[str]:
    """The plan of a statement exactly as the driver received it."""
    prefix = f"EXPLAIN ({', '.join(options)}) " if options else "EXPLAIN "
    return list(conn.exec_driver_sql(prefix + statement, parameters).scalars())


def test_the_due_waits_sweep_uses_the_due_index_and_wakes_only_the_due(project_factory: Factory,
                                                                       counted: Any) -> None:
    p = project_factory("redis")
    waiting_executions(p)
    # the first five due ones have a second wait that is due too
    insert_waits(p, "SELECT 'x' || lpad(i::text, 8, '0'), 3, 1, 'event', '[\"paid\"]', 'pending', "
                    "now() - interval '2 minutes' FROM generate_series(1, 5) AS i")
    # a pending wait of a visit the execution has left is not its wait any more: never woken by it
    insert_waits(p, "SELECT 'x' || lpad(i::text, 8, '0'), 2, 0, 'event', '[\"paid\"]', 'pending', "
                    "now() - interval '1 hour' FROM generate_series(CAST(:first AS int), CAST(:last AS int)) AS i",
                 first=DUE + 1, last=DUE + 10)
    analyze(p)

    statements = counted(p)
    with p.durable.db.begin() as conn:
        started = time.perf_counter()
        woken = take_due_waits_txn(conn, p.durable.clock.now(), p.durable.settings.tick_batch)
        elapsed = time.perf_counter() - started
        sent = len(statements)
        plan = explain(conn, *next(s for s in statements if "SKIP LOCKED" in s[0]))
    print(f"\nsweep of {WAITING_EXECUTIONS} waiting executions: {elapsed * 1000:.1f} ms, {sent} statements\n"
          + "\n".join(plan))

    # (1) driven by the partial index on due waits; no pass over the executions
    assert any("ix_waits_due" in line for line in plan), plan
    assert not any("Seq Scan" in line for line in plan), plan
    # (2) exactly the 50 due executions woke, each once, in one select and one update
    assert sorted(row["id"] for row in woken) == [f"x{i:08d}" for i in range(1, DUE + 1)]
    assert sent == 2
    assert elapsed < 0.5
    assert p.sql("SELECT count(*) FROM {schema}.workflow_executions WHERE status = 'running'")[0][0] == DUE
    # woken rows leave `waiting` here: the next tick finds nothing
    with p.durable.db.begin() as conn:
        assert take_due_waits_txn(conn, p.durable.clock.now(), 500) == []


# -- an event sent to a workflow running a 10,000-item foreach -----------------------------------


def member_id(root_id: str, i: int) -> str:
    return str(uuid.UUID(hashlib.md5(f"{root_id}{i}".encode()).hexdigest()))


def make_tree(p: Project, members: int, go: tuple[int, ...]) -> tuple[str, list[str]]:
    """A workflow waiting on a foreach of ``members`` iterations, at visit 2 of their step.
    Iterations ``go`` wait for event "go"; every fifth other one waits for "other"; the rest run
    or are pending (every seventh with a pending "go" wait left from its previous visit, every
    eleventh having already received its "go" in this visit). Returns the root and the ``go`` ids."""
    root_id = str(uuid.uuid4())
    insert_executions(p, "SELECT :root, 'waiting', :root, NULL, 'workflow', NULL::int, 1", root=root_id)
    status = ("CASE WHEN i = ANY(:go) OR i % 5 = 0 THEN 'waiting' WHEN i % 2 = 0 THEN 'running' "
              "ELSE 'pending' END")
    insert_executions(p, f"SELECT md5(:root || i)::uuid::text, {status}, :root, :root, 'iteration', i, 2 "
                         "FROM generate_series(1, CAST(:n AS int)) AS i", root=root_id, n=members, go=list(go))
    names = ("CASE WHEN i = ANY(:go) THEN '[\"go\"]' WHEN i % 5 = 0 THEN '[\"other\"]' WHEN i % 11 = 0 THEN '[\"go\"]' "
             "ELSE '[\"other\"]' END")
    wait_status = "CASE WHEN i = ANY(:go) OR i % 5 = 0 THEN 'pending' ELSE 'resolved' END"
    insert_waits(p, f"SELECT md5(:root || i)::uuid::text, 2, 0, 'event', {names}, {wait_status}, NULL::timestamptz "
                    "FROM generate_series(1, CAST(:n AS int)) AS i WHERE i = ANY(:go) OR i % 5 = 0 OR i % 11 = 0",
                 root=root_id, n=members, go=list(go))
    insert_waits(p, "SELECT md5(:root || i)::uuid::text, 1, 0, 'event', '[\"go\"]', 'pending', NULL::timestamptz "
                    "FROM generate_series(1, CAST(:n AS int)) AS i WHERE i % 7 = 0", root=root_id, n=members)
    return root_id, [member_id(root_id, i) for i in go]


def by_status(p: Project, root_id: str) -> dict[str, int]:
    return dict(p.sql("SELECT status, count(*) FROM {schema}.workflow_executions WHERE root_id = :root "
                      "GROUP BY status", root=root_id))


def test_an_event_for_three_iterations_of_ten_thousand_locks_and_wakes_only_those(project_factory: Factory,
                                                                                 counted: Any) -> None:
    p = project_factory("redis")
    small, small_go = make_tree(p, 10, go=(1, 3, 7))
    big, big_go = make_tree(p, ITERATIONS, go=(17, 5_001, 9_999))
    analyze(p)
    before = by_status(p, big)

    # Another transaction holds the locks of iterations that don't wait for "go": running, pending,
    # waiting for "other", with a "go" wait of an earlier visit, with a "go" already received
    held = [member_id(big, i) for i in (2, 3, 5, 14, 22)]
    with p.durable.db.engine.connect() as other:
        other.execute(text(f'SELECT id FROM "{p.prefix}".workflow_executions WHERE id = ANY(:ids) FOR UPDATE'),
                      {"ids": held})
        statements = counted(p)
        assert deliver.send_event(p.durable.services, small, "go", {"n": 1}) is True
        small_sent = len(statements)
        del statements[:]
        outcome: list[Any] = []
        sender = threading.Thread(target=lambda: outcome.append(deliver.send_event(p.durable.services, big, "go", {"n": 2})))
        started = time.perf_counter()
        sender.start()
        sender.join(timeout=10)
        elapsed = time.perf_counter() - started
        blocked = sender.is_alive()
        other.rollback()  # releases the held rows (a blocked sender would go on now)
        sender.join()
    big_sent = len(statements)
    print(f"\nsend_event to a tree of {ITERATIONS} iterations: {elapsed * 1000:.1f} ms, "
          f"{big_sent} statements (tree of 10: {small_sent})\n" + "\n".join(s for s, _ in statements))

    # it never waited for a row it has no business with
    assert not blocked and outcome == [True]
    assert elapsed < 2
    # the same statements for 10 iterations and for 10,000: none per iteration
    assert big_sent == small_sent <= 8
    # exactly the three "go" iterations woke
    assert set(statuses(p, big_go).values()) == {"running"}
    after = by_status(p, big)
    assert after["running"] == before["running"] + 3 and after["waiting"] == before["waiting"] - 3
    assert after["pending"] == before["pending"]
    assert set(statuses(p, small_go).values()) == {"running"}


def test_the_query_finding_the_waiting_iterations_uses_the_indexes(project_factory: Factory, counted: Any) -> None:
    p = project_factory("redis")
    waiting_executions(p)  # other workflows
    root_id, _ = make_tree(p, ITERATIONS, go=(17, 5_001, 9_999))
    analyze(p)
    statements = counted(p)
    deliver.send_event(p.durable.services, root_id, "go", None)
    with p.durable.db.begin() as conn:
        finding = next(s for s in statements if "FOR UPDATE" in s[0] and "EXISTS" in s[0])
        plan = explain(conn, *finding, "ANALYZE", "BUFFERS")
    print("\n" + finding[0] + "\n" + "\n".join(plan))
    # the tree is read through the root_id index (then each member's waits through the unique
    # index on waits, or one pass over a small waits table), never by scanning every execution
    assert any("ix_workflow_executions_root_id" in line for line in plan), plan
    assert not any("Seq Scan on workflow_executions" in line for line in plan), plan


def test_an_iteration_that_suspends_while_the_event_is_being_sent_is_woken(project_factory: Factory) -> None:
    p = project_factory("redis")
    root_id, _ = make_tree(p, 20, go=(3,))
    late = member_id(root_id, 4)  # running its step: about to reach a wait for "go"
    fired: list[bool] = []

    def step_reaches_its_wait(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        """Right after send_event looked for the waits on "go": the iteration reaches its wait,
        looks at the events (the new one is not committed yet) and suspends."""
        if fired or not ("FOR UPDATE" in statement and "EXISTS" in statement):
            return
        fired.append(True)
        with p.durable.db.engine.begin() as step:
            step.execute(text(f'INSERT INTO "{p.prefix}".waits (execution_id, entered_seq, idx, step_name, kind, '
                              "names, status, created_at) VALUES (:id, 2, 0, 'await_payment', 'event', "
                              "CAST('[\"go\"]' AS jsonb), 'pending', now())"), {"id": late})
            assert not should_wake(step, late, 2, p.durable.clock.now(), root_id)  # missed the event
            step.execute(text(f'UPDATE "{p.prefix}".workflow_executions SET status = \'waiting\' WHERE id = :id'),
                         {"id": late})

    event.listen(p.durable.db.engine, "after_cursor_execute", step_reaches_its_wait)
    try:
        assert deliver.send_event(p.durable.services, root_id, "go", {"late": True}) is True
    finally:
        event.remove(p.durable.db.engine, "after_cursor_execute", step_reaches_its_wait)
    assert fired
    # the second look, after the event was committed, found it suspended and woke it
    assert statuses(p, [late, member_id(root_id, 3)]) == {late: "running", member_id(root_id, 3): "running"}


def test_input_to_an_iteration_is_checked_against_its_form_and_taken_once(project_factory: Factory) -> None:
    p = project_factory("redis")
    root_id, (asking,) = make_tree(p, 1_000, go=(500,))
    run(p, "UPDATE {schema}.waits SET kind = 'input', names = '[\"boss\"]', input_type = 'approval' "
           "WHERE execution_id = :id", id=asking)
    # data that doesn't fit the pending request is refused, and nothing is recorded
    with pytest.raises(InvalidInput):
        p.durable.provide_input(root_id, "boss", "perhaps")
    assert statuses(p, [asking]) == {asking: "waiting"}
    assert deliver.provide_input(p.durable.services, root_id, "boss", True) is True
    assert statuses(p, [asking]) == {asking: "running"}
    # a second answer while the first is unconsumed is refused
    with pytest.raises(InvalidState, match="already provided"):
        p.durable.provide_input(root_id, "boss", "rejected")
    # once the step took it, the request is answered: refused too
    run(p, "UPDATE {schema}.events SET status = 'consumed' WHERE execution_id = :root", root=root_id)
    run(p, "UPDATE {schema}.waits SET status = 'resolved' WHERE execution_id = :id", id=asking)
    with pytest.raises(InvalidState, match="already provided or timed out"):
        p.durable.provide_input(root_id, "boss", "rejected")
    # an input no step asks for yet is kept for later, waking nothing
    assert deliver.provide_input(p.durable.services, root_id, "later", {"a": 1}) is False
    assert p.sql("SELECT status FROM {schema}.events WHERE execution_id = :root AND name = 'later'",
                 root=root_id) == [("pending",)]


# -- the same on the embedded SQLite store (no row locks: one write transaction at a time) -------


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[Durable]:
    prefix = f"s_{uuid.uuid4().hex[:10]}"
    queue = f"dq-{prefix}"
    _app, durable = make(BROKERS["redis"], f"sqlite:///{tmp_path / 'state.db'}", prefix, queue)
    durable.ensure_schema()
    try:
        yield durable
    finally:
        durable.db.dispose()
        _delete_queues(BROKERS["redis"], [queue])


def test_on_sqlite_the_sweep_and_events_wake_the_same_executions(embedded: Durable) -> None:
    durable = embedded
    now = durable.clock.now()
    root = "root"

    def execution(id: str, status: str, entered_seq: int = 2, **more: Any) -> dict[str, Any]:
        return {"id": id, "status": status, "root_id": more.pop("root_id", id), "entered_seq": entered_seq,
                "seq": entered_seq + 1, "workflow": "eventful", "version": "v1", "queue": durable.settings.queue,
                "current_node": "await_payment", "created_at": now, "updated_at": now, **more}

    def wait(execution_id: str, names: list[str], entered_seq: int = 2, idx: int = 0, status: str = "pending",
             due: bool | None = None, kind: str = "event") -> dict[str, Any]:
        timeout_at = None if due is None else now + timedelta(minutes=-1 if due else 60)
        return {"execution_id": execution_id, "entered_seq": entered_seq, "idx": idx, "step_name": "await_payment",
                "kind": kind, "names": names, "status": status, "timeout_at": timeout_at, "created_at": now}

    with durable.db.begin() as conn:
        conn.execute(insert(t), [
            execution("due-1", "waiting"), execution("due-2", "waiting"), execution("later", "waiting"),
            execution("left", "waiting"), execution("running", "running"),
            execution(root, "waiting", 1),
            *[execution(f"it-{i}", "waiting" if i in (2, 5) else "running", root_id=root, parent_id=root,
                        kind="iteration", branch_index=i) for i in range(8)],
        ])
        conn.execute(insert(w), [
            wait("due-1", ["paid"], due=True), wait("due-1", ["paid"], idx=1, due=True),  # two due: woken once
            wait("due-2", [], due=True, kind="sleep"), wait("later", ["paid"], due=False),
            wait("left", ["paid"], entered_seq=1, due=True), wait("left", ["paid"], due=False),  # an earlier visit's
            wait("running", ["paid"], due=True),  # already running
            wait("it-2", ["go"]), wait("it-5", ["other", "go"], kind="any"), wait("it-3", ["go"], entered_seq=1),
            wait("it-4", ["go"], status="resolved"), wait("it-6", ["go"], kind="input"),
        ])

    with durable.db.begin() as conn:
        woken = take_due_waits_txn(conn, durable.clock.now(), 500)
    assert sorted(row["id"] for row in woken) == ["due-1", "due-2"]
    with durable.db.begin() as conn:
        assert take_due_waits_txn(conn, durable.clock.now(), 500) == []

    assert deliver.send_event(durable, "it-0", "go", {"n": 1}) is True  # through any id of the tree
    with durable.db.begin() as conn:
        status = dict(conn.execute(select(t.c.id, t.c.status).where(t.c.root_id == root)).all())
    assert [i for i, s in sorted(status.items()) if s == "waiting"] == [root]
    assert status["it-2"] == status["it-5"] == "running"
    assert deliver.send_event(durable, root, "nobody", None) is False

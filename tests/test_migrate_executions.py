"""Moving in-flight executions onto a new version (``Durable.migrate_executions`` and
``durable migrate-executions``): executions wait on version 1 (tests/proj/wf_migrate.py), the
code changes (a step renamed, a step added before the wait, a retry policy changed), a mapping
moves them, and they complete on version 2; no step's effect happens twice."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from celery import Celery
from sqlalchemy import text

from durable_celery import Durable, InvalidInput
from durable_celery.engine.statuses import MIGRATED_STEP
from tests.conftest import ROOT, Project
from tests.proj import wf_migrate

#: the environment of a worker that runs version 1 of the workflows
V1 = {"DT_MIGRATE_V": "1"}


def version_1(p: Project) -> Durable:
    """An engine on the project's schema and queue whose workflows are version 1: starting
    through it is starting before the deploy."""
    return Durable(Celery(f"v1-{p.prefix}", broker=p.broker), database_url=p.database, workflows=wf_migrate.build(1),
                   queue=p.queue, prefix=p.prefix, **p.settings)


def state_of(p: Project) -> list[Any]:
    """Everything a migration could write: the rows, the attempts, the waits."""
    return [p.sql("SELECT id, seq, entered_seq, version, current_node, node_shape, status, error, ready_at, "
                  "dispatched_at FROM {schema}.workflow_executions ORDER BY id"),
            p.sql("SELECT execution_id, seq, step_name, status FROM {schema}.step_executions ORDER BY id"),
            p.sql("SELECT execution_id, entered_seq, idx, status FROM {schema}.waits ORDER BY id")]


def ran(p: Project, execution_id: str) -> dict[tuple[str, str], int]:
    """How many times each (step, note) was recorded by the step bodies of one execution."""
    rows = p.sql("SELECT step, note, count(*) FROM {schema}.test_effects WHERE execution_id = :id "
                 "GROUP BY step, note", id=execution_id)
    return {(step, note): n for step, note, n in rows}


def cli(p: Project, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "celery", "-A", "tests.proj.app", "durable", *args]
    env = {**os.environ, **p.env, "PYTHONPATH": str(ROOT)}
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_waiting_executions_move_to_version_2_and_complete_there(project_factory: Any) -> None:
    p = project_factory()
    v1 = version_1(p)
    old_worker = p.worker(env=V1)
    renamed = [v1.start("mig_rename", {"n": i}) for i in range(2)]
    added = v1.start("mig_added", {})
    for execution_id in (*renamed, added):
        p.wait(execution_id, statuses={"waiting"})
    old_worker.stop()  # the deploy: version 2 of the code
    deployed = p.durable.registry.machine_for("mig_rename").version

    # a dry run (the default) says what would move and writes nothing
    before = state_of(p)
    dry = p.durable.migrate_executions("mig_rename", {"wait_v1": "wait_v2", "gone": "finish"})
    assert dry.dry_run and dry.moved == {"wait_v1": renamed} and dry.count == 2
    assert dry.unmatched == ["gone"] and dry.skipped == [] and dry.version == deployed
    assert state_of(p) == before

    result = p.durable.migrate_executions("mig_rename", {"wait_v1": "wait_v2"}, dry_run=False)
    assert not result.dry_run and result.moved == {"wait_v1": renamed}
    moved = p.sql("SELECT current_node, version, status FROM {schema}.workflow_executions WHERE id = :id",
                  id=renamed[0])
    assert [tuple(r) for r in moved] == [("wait_v2", deployed, "waiting")]  # it waits on, on version 2
    again = p.durable.migrate_executions("mig_rename", {"wait_v2": "wait_v2"}, dry_run=False)
    assert again.count == 0 and {s.reason for s in again.skipped} == {"already on the current version"}

    # the step added before the wait: the CLI maps the waiting step onto it, which starts afresh
    out = cli(p, "migrate-executions", "mig_added", "--map", "wait_step=audit", "--restart-step")
    assert out.returncode == 0, out.stderr
    assert "would move 1 execution(s) of mig_added" in out.stdout and "dry run: nothing was written" in out.stdout
    out = cli(p, "migrate-executions", "mig_added", "--map", "wait_step=audit", "--restart-step", "--apply",
              "--json")
    assert out.returncode == 0, out.stderr
    assert '"moved": {\n    "wait_step": [\n      "' + added in out.stdout

    p.worker()  # version 2
    p.wait(added, statuses={"waiting"})  # ran audit, then reached the wait afresh
    for execution_id in (*renamed, added):
        p.durable.send_event(execution_id, "go", {"ok": execution_id})
    for execution_id in (*renamed, added):
        done = p.wait(execution_id)
        assert done.status == "completed", done.error
        assert done.context["go"] == {"ok": execution_id} and done.context["finished"]

    # recorded in the history, shown by get_execution and the CLI
    steps = p.durable.get_execution(renamed[0], include_steps=True).steps
    [migration] = [s for s in steps if s.step_name == MIGRATED_STEP]
    assert migration.migration is not None
    assert (migration.migration["from"], migration.migration["to"], migration.migration["to_version"]) == (
        "wait_v1", "wait_v2", deployed)
    shown = cli(p, "show", renamed[0])
    assert shown.returncode == 0, shown.stderr
    assert f"migrated from wait_v1@{migration.migration['from_version']} to wait_v2@{deployed} at" in shown.stdout

    # nothing ran twice: each step's effect (after its wait) happened once
    for execution_id in renamed:
        assert ran(p, execution_id) == {("prepare", "ran"): 1, ("wait_v1", "before"): 1, ("wait_v2", "before"): 1,
                                        ("wait_v2", "after"): 1, ("finish", "finished"): 1}
    # the old visit of wait_step was left at its wait; the new one ran from the top (then again on
    # the event, as every resumed step does): its effect after the wait happened once
    assert ran(p, added) == {("prepare", "ran"): 1, ("wait_step", "before"): 3, ("audit", "audited"): 1,
                             ("wait_step", "after"): 1, ("finish", "finished"): 1}


def test_a_definition_changed_failure_is_reopened_and_completes(project_factory: Any) -> None:
    p = project_factory()
    v1 = version_1(p)
    old_worker = p.worker(env=V1)
    execution_id = v1.start("mig_retry", {})
    p.wait(execution_id, statuses={"waiting"})
    old_worker.stop()
    p.worker()  # version 2: the waiting step's retry policy changed
    p.durable.send_event(execution_id, "go", {"ok": 1})
    failed = p.wait(execution_id)
    assert failed.status == "failed" and failed.error is not None
    assert failed.error["type"] == "DefinitionChanged" and failed.error["step"] == "wait_step"

    result = p.durable.migrate_executions("mig_retry", {"wait_step": "wait_step"}, dry_run=False)
    assert result.moved == {"wait_step": [execution_id]}
    done = p.wait(execution_id)
    assert done.status == "completed", done.error
    assert done.context["go"] == {"ok": 1} and done.error is None
    [migration] = [s.migration for s in done.steps if s.migration is not None]
    assert migration["reopened"] and migration["from_status"] == "failed"
    # the step replayed the event it had received before the failure; its effect happened once
    assert ran(p, execution_id) == {("prepare", "ran"): 1, ("wait_step", "before"): 2, ("wait_step", "after"): 1,
                                    ("finish", "finished"): 1}


def test_bad_mappings_and_running_steps_are_refused_and_nothing_is_written(project_factory: Any) -> None:
    p = project_factory()
    v1 = version_1(p)
    p.worker(env=V1)
    waiting = v1.start("mig_rename", {})
    p.wait(waiting, statuses={"waiting"})

    before = state_of(p)
    with pytest.raises(InvalidInput, match="has no state 'nowhere'"):
        p.durable.migrate_executions("mig_rename", {"wait_v1": "nowhere"}, dry_run=False)
    with pytest.raises(InvalidInput, match="only routes"):
        p.durable.migrate_executions("mig_rename", {"wait_v1": "branch:finish"}, dry_run=False)
    with pytest.raises(InvalidInput):
        p.durable.migrate_executions("mig_rename", {"wait_v1": "wait_v2"}, ids=["not-an-id"], dry_run=False)
    bad = cli(p, "migrate-executions", "mig_rename", "--map", "wait_v1=nowhere", "--apply")
    assert bad.returncode == 2 and "has no state 'nowhere'" in bad.stderr
    assert state_of(p) == before

    busy = v1.start("mig_rename", {"slow": 8})
    deadline = time.monotonic() + 20
    while not p.sql("SELECT 1 FROM {schema}.workflow_executions WHERE id = :id AND lease_owner IS NOT NULL "
                    "AND step_started_at IS NOT NULL", id=busy):
        assert time.monotonic() < deadline, "the slow step never started"
        time.sleep(0.05)
    # a running step is never touched; an unknown id is reported
    unknown = str(uuid.uuid4())
    result = p.durable.migrate_executions("mig_rename", {"prepare": "prepare"}, ids=[busy, unknown], dry_run=False)
    assert result.count == 0
    assert {(s.execution_id, s.reason) for s in result.skipped} == {(busy, "running"), (unknown, "not found")}
    assert p.sql("SELECT count(*) FROM {schema}.step_executions WHERE step_name = :m", m=MIGRATED_STEP)[0][0] == 0
    assert p.wait(busy, statuses={"waiting"}).current_step == "wait_v1"  # it went on, on version 1
    assert ran(p, busy)[("prepare", "ran")] == 1


def test_a_locked_execution_is_skipped_and_a_scheduled_one_keeps_its_time(project_factory: Any) -> None:
    p = project_factory()
    v1 = version_1(p)
    later = datetime.now(timezone.utc) + timedelta(hours=1)
    first, second = (v1.start("mig_rename", {}, scheduled_at=later) for _ in range(2))
    with p.durable.db.begin() as conn:  # a worker holds the first at this moment
        conn.execute(text(f'SELECT 1 FROM "{p.prefix}".workflow_executions WHERE id = :id FOR UPDATE'), {"id": first})
        result = p.durable.migrate_executions("mig_rename", {"prepare": "prepare"}, dry_run=False)
    assert result.moved == {"prepare": [second]}
    assert [(s.execution_id, s.reason) for s in result.skipped] == [(first, "locked or changed meanwhile")]
    [moved] = p.sql("SELECT status, version, ready_at, dispatched_at FROM {schema}.workflow_executions "
                    "WHERE id = :id", id=second)
    assert tuple(moved) == ("pending", p.durable.registry.machine_for("mig_rename").version, later, None)
    # the first moves once it is free
    assert p.durable.migrate_executions("mig_rename", {"prepare": "prepare"}, dry_run=False).moved == {
        "prepare": [first]}

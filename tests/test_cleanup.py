"""Retention: ``durable.cleanup`` and ``celery -A proj durable cleanup`` delete finished executions
with everything keyed to them, in batches, and never touch what is still active."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import text

from durable_celery import InvalidInput
from tests.conftest import ROOT, Project

TABLES = {"workflow_executions": "id", "step_executions": "execution_id", "waits": "execution_id",
          "events": "execution_id"}


def _rows(project: Project, ids: list[str]) -> dict[str, int]:
    """How many rows of each table belong to the executions ``ids`` or their trees."""
    tree = [r[0] for r in project.sql("SELECT id FROM {schema}.workflow_executions WHERE root_id = ANY(:ids) "
                                      "OR id = ANY(:ids)", ids=ids)]
    return {table: project.sql(f"SELECT count(*) FROM {{schema}}.{table} WHERE {column} = ANY(:ids)", ids=tree)[0][0]
            for table, column in TABLES.items()}


def _exec(project: Project, query: str, **params: Any) -> None:
    with project.durable.db.begin() as conn:
        conn.execute(text(query.replace("{schema}", f'"{project.prefix}"')), params)


def _everything(project: Project) -> dict[str, int]:
    return {table: project.sql(f"SELECT count(*) FROM {{schema}}.{table}")[0][0] for table in [*TABLES, "broadcasts"]}


@pytest.fixture
def finished_and_active(project_factory: Callable[..., Project]) -> tuple[Project, dict[str, Any]]:
    """A project whose worker has run executions of several kinds to their end, and left others
    active: a wait for a second event, and a fan-out whose branch is (made) still running."""
    project = project_factory()
    project.worker()
    d = project.durable
    done = {
        "pipeline": d.start("pipeline", {}),
        "eventful": d.start("eventful", {}),
        "fanout": d.start("fanout", {"id": 7}),
        "flaky": d.start("flaky", {"succeed_on": 9}),  # fails after 3 attempts
        "adopted": d.start("pipeline", {}),  # made the child of an active caller below
        "held": d.start("fanout", {"id": 8}),  # its tree gets an active member below
    }
    active = d.start("twice", {})
    project.wait(done["eventful"], statuses={"waiting"})
    d.send_event(done["eventful"], "paid", {"amount": 5})
    project.wait(active, statuses={"waiting"})
    d.send_event(active, "a", 1)
    for execution_id in done.values():
        project.wait(execution_id)
    d.emit_event("announcement", {"to": "everyone"})  # kept for the active execution
    _exec(project, "UPDATE {schema}.workflow_executions SET parent_id = :caller WHERE id = :id",
                caller=active, id=done["adopted"])
    _exec(project, "UPDATE {schema}.workflow_executions SET status = 'running' "
                "WHERE id = (SELECT min(id) FROM {schema}.workflow_executions WHERE root_id = :id AND id <> :id)",
                id=done["held"])
    # all of it finished two hours ago
    _exec(project, "UPDATE {schema}.workflow_executions SET completed_at = completed_at - interval '2 hours' "
                "WHERE completed_at IS NOT NULL")
    return project, {"done": done, "active": active}


def test_cleanup_deletes_finished_executions_with_their_trees_and_keeps_active_ones(
        finished_and_active: tuple[Project, dict[str, Any]]) -> None:
    project, made = finished_and_active
    d = project.durable
    deletable = [made["done"][k] for k in ("pipeline", "eventful", "fanout", "flaky")]
    kept = [made["done"]["adopted"], made["done"]["held"], made["active"]]
    expected = _rows(project, deletable)
    assert expected["step_executions"] >= 8 and expected["waits"] >= 1 and expected["events"] >= 1
    assert expected["workflow_executions"] > 4  # the fan-out's branches too
    kept_rows = _rows(project, kept)
    before = _everything(project)

    # A dry run counts exactly what a cleanup deletes, and deletes nothing
    dry = d.cleanup(older_than=3600, batch_size=2, dry_run=True)
    assert (dry.workflows, dry.executions, dry.attempts, dry.waits, dry.events) == (
        4, expected["workflow_executions"], expected["step_executions"], expected["waits"], expected["events"])
    assert dry.batches == 2 and dry.dry_run
    assert _everything(project) == before

    # Nothing finished three hours ago
    assert d.cleanup(older_than=3 * 3600).workflows == 0

    # When it runs in batches of two
    report = d.cleanup(older_than=3600, batch_size=2)
    assert (report.workflows, report.executions, report.attempts, report.waits, report.events) == (
        dry.workflows, dry.executions, dry.attempts, dry.waits, dry.events)
    assert report.batches == 2
    assert _rows(project, deletable) == dict.fromkeys(TABLES, 0)
    # Then the active execution, the child its active caller may read, and the tree with an
    # active member are untouched, and so is the broadcast the active execution can still receive
    assert _rows(project, kept) == kept_rows
    assert report.broadcasts == 0 and _everything(project)["broadcasts"] == 1
    # And the active execution still finishes
    d.send_event(made["active"], "b", 2)
    assert project.wait(made["active"]).context["b"] == 2
    # Once it has finished, the broadcast (older than the cutoff, received by no one) goes too
    _exec(project, "UPDATE {schema}.broadcasts SET created_at = created_at - interval '2 hours'")
    later = d.cleanup(older_than=3600)
    # and the child, whose caller has finished
    assert later.broadcasts == 1 and later.workflows == 1
    assert d.get_execution(made["done"]["held"]).status == "completed"  # its tree still has an active member
    assert d.cleanup(older_than=0, statuses=["completed"]).workflows == 1  # the caller, just finished


def test_cleanup_narrows_by_status(finished_and_active: tuple[Project, dict[str, Any]]) -> None:
    project, made = finished_and_active
    report = project.durable.cleanup(older_than=3600, statuses=["failed"])
    assert report.workflows == 1 and report.statuses == ("failed",)
    assert project.sql("SELECT count(*) FROM {schema}.workflow_executions WHERE id = :id",
                       id=made["done"]["flaky"])[0][0] == 0
    assert project.durable.get_execution(made["done"]["pipeline"]).status == "completed"


@pytest.mark.parametrize("kwargs, message", [
    ({"older_than": -1}, "must not be negative"),
    ({"older_than": "30d"}, "timedelta or a number"),
    ({"older_than": 0, "statuses": ["running"]}, "not final"),
    ({"older_than": 0, "statuses": ["done"]}, "unknown status"),
    ({"older_than": 0, "statuses": "completed"}, "a list"),
    ({"older_than": 0, "statuses": []}, "empty"),
    ({"older_than": 0, "batch_size": 0}, "batch_size"),
    ({"older_than": 0, "dry_run": "yes"}, "dry_run"),
])
def test_bad_arguments_raise_and_delete_nothing(project_factory: Callable[..., Project], kwargs: dict[str, Any],
                                                message: str) -> None:
    project = project_factory()
    _exec(project, "INSERT INTO {schema}.workflow_executions (id, workflow, version, status, queue, kind, root_id, "
                "created_at, completed_at, updated_at) VALUES ('00000000-0000-0000-0000-000000000001', 'pipeline', "
                "'v1', 'completed', 'q', 'workflow', '00000000-0000-0000-0000-000000000001', now() - interval '1 day',"
                " now() - interval '1 day', now())")
    with pytest.raises(InvalidInput, match=message):
        project.durable.cleanup(**kwargs)
    assert _everything(project)["workflow_executions"] == 1


def _cli(project: Project, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "celery", "-A", "tests.proj.app", "durable", *args], cwd=ROOT,
                          env=project.env, capture_output=True, text=True, timeout=60)


def test_cli_cleanup_dry_run_then_delete(finished_and_active: tuple[Project, dict[str, Any]]) -> None:
    project, made = finished_and_active
    before = _everything(project)
    dry = _cli(project, "cleanup", "--older-than", "90m", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    counted = json.loads(dry.stdout)
    assert counted["workflows"] == 4 and counted["dry_run"] is True
    assert _everything(project) == before
    done = _cli(project, "cleanup", "--older-than", "1h", "--status", "completed", "--status", "failed",
                "--batch-size", "3")
    assert done.returncode == 0, done.stderr
    assert "deleted 4 executions" in done.stdout and "step attempts" in done.stdout
    assert _everything(project)["workflow_executions"] == before["workflow_executions"] - counted["executions"]
    for bad, expected in ((["--older-than", "soon"], "not a duration"), (["--older-than", "1h", "--status", "running"],
                                                                         "running"), ([], "--older-than")):
        result = _cli(project, "cleanup", *bad)
        assert result.returncode == 2 and expected in result.stderr and "Traceback" not in result.stderr

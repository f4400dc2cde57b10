"""``celery -A proj durable doctor`` and ``show``'s "why" line, as real subprocesses against a real
worker and beat: each problem is reported with a count and example ids, and exits 1."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import text

from tests.conftest import ROOT, Project


def _cli(project: Project, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "celery", "-A", "tests.proj.app", "durable", *args], cwd=ROOT,
                          env=project.env, capture_output=True, text=True, timeout=60)


def _doctor(project: Project, *args: str) -> tuple[int, dict[str, Any]]:
    result = _cli(project, "doctor", "--json", *args)
    assert "Traceback" not in result.stderr, result.stderr
    report = json.loads(result.stdout)
    return result.returncode, {f["check"]: f for f in report["findings"]} | {"fixed": report["fixed"]}


def _exec(project: Project, query: str, **params: Any) -> None:
    with project.durable.db.begin() as conn:
        conn.execute(text(query.replace("{schema}", f'"{project.prefix}"')), params)


def test_doctor_is_healthy_with_worker_and_beat_and_reports_each_problem(
        project_factory: Callable[..., Project]) -> None:
    # Given a worker and beat, and an execution waiting for an event
    project = project_factory()
    project.worker()
    beat = project.beat()
    d = project.durable
    waiting = d.start("eventful", {})
    project.wait(waiting, statuses={"waiting"})
    time.sleep(1.5)  # a tick or two recorded
    code, found = _doctor(project)
    assert code == 0, found
    assert all(f["ok"] for k, f in found.items() if k != "fixed")
    # show says what it waits for
    shown = _cli(project, "show", waiting)
    assert "waiting in step await_payment for event paid since" in shown.stdout

    # When beat stops, a workflow is started on a queue no worker consumes, an execution waits
    # with nothing to wake it, another has an expired lease, and a schedule failed until disabled
    beat.stop()
    orphan = d.start("pipeline", {}, queue=f"{project.queue}-nobody")
    stuck = d.start("twice", {})
    project.wait(stuck, statuses={"waiting"})
    _exec(project, "DELETE FROM {schema}.waits WHERE execution_id = :id", id=stuck)
    lost = d.start("eventful", {"warm_up": 30})
    _exec(project, "UPDATE {schema}.workflow_executions SET lease_owner = 'gone', step_started_at = now(), "
                   "lease_expires_at = now() - interval '1 minute', ready_at = NULL WHERE id = :id", id=lost)
    d.schedule("pipeline", "0 3 * * *", name="nightly")
    _exec(project, "UPDATE {schema}.scheduled_workflows SET enabled = false, auto_disabled_at = now(), "
                   "last_error = 'boom' WHERE name = 'nightly'")
    _exec(project, "UPDATE {schema}.heartbeats SET seen_at = seen_at - interval '1 minute'")

    # Then the doctor reports each with counts and example ids, and exits 1
    code, found = _doctor(project)
    assert code == 1
    assert not found["beat"]["ok"] and "no beat tick for" in found["beat"]["message"]
    assert not found["queues"]["ok"] and orphan in found["queues"]["examples"]
    assert f"{project.queue}-nobody" in found["queues"]["message"]
    assert not found["waits"]["ok"] and found["waits"]["examples"] == [stuck]
    assert not found["leases"]["ok"] and lost in found["leases"]["examples"]  # the orphan's handed lease too
    assert not found["schedules"]["ok"] and "nightly" in found["schedules"]["examples"]
    assert found["schema"]["ok"] and found["compensations"]["ok"]
    # the table form too
    plain = _cli(project, "doctor")
    assert plain.returncode == 1 and "PROBLEM  queues" in plain.stdout and orphan in plain.stdout
    # show explains each in one line
    assert "with no consumer" in _cli(project, "show", orphan).stdout
    assert "nothing can wake it" in _cli(project, "show", stuck).stdout
    assert "lost its worker: the lease of gone expired" in _cli(project, "show", lost).stdout

    # When --fix runs one tick, the expired lease is recovered
    code, found = _doctor(project, "--fix")
    assert found["fixed"]["recovered"] >= 1
    assert found["leases"]["ok"]
    assert code == 1  # the rest needs people


def test_doctor_reports_a_schema_behind(project_factory: Callable[..., Project]) -> None:
    project = project_factory()
    _exec(project, "UPDATE {schema}.alembic_version SET version_num = '0008'")
    code, found = _doctor(project)
    assert code == 1 and not found["schema"]["ok"] and "0008" in found["schema"]["message"]

"""Deploying new code under in-flight executions, with real workers: ``durable plan`` says what
the deploy does to them before it happens, and keeping the old definition registered lets them
finish on it (docs/deploys.md).

The executions wait for an event in the second step of three workflows (tests/proj/versions).
The new code renames that step (ver_renamed), adds a step before it (ver_inserted) or changes
its retry policy (ver_retried)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

from durable_celery import Durable
from tests.conftest import ROOT, Project
from tests.proj.factory import make

V1 = "tests.proj.versions.v1"
V2 = "tests.proj.versions.v2"
V2_KEPT = "tests.proj.versions.v2_kept"
WORKFLOWS = ("ver_renamed", "ver_inserted", "ver_retried")


def deploy(p: Project, module: str) -> Project:
    """The same project (schema, queue, broker) with another workflows module: the code of the
    next deploy. Its workers are stopped with the project's."""
    settings = {**p.settings, "workflows": [module]}
    app, durable = make(p.broker, p.database, p.prefix, p.queue, **settings)
    return Project(p.broker, p.prefix, p.queue, settings, app, durable, processes=p.processes, database=p.database)


def waiting_on_v1(p: Project, per_workflow: int = 2) -> dict[str, list[str]]:
    """Executions of each workflow started by a version 1 worker, all waiting for "go"; the
    worker is stopped (the deploy replaces it)."""
    v1_worker = p.worker()
    started = {name: [p.durable.start(name, {}) for _ in range(per_workflow)] for name in WORKFLOWS}
    for ids in started.values():
        for execution_id in ids:
            p.wait(execution_id, statuses={"waiting"}, timeout=30)
    v1_worker.stop()
    return started


def plan_cli(p: Project) -> tuple[int, dict[str, Any], str]:
    """``celery -A tests.proj.app durable plan`` in the project's deploy: exit code, --json, text."""
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "celery", "-A", "tests.proj.app", "durable", "plan", *args],
                              cwd=ROOT, env={**p.env, **_os_env()}, capture_output=True, text=True, timeout=60)
    as_json, as_text = run("--json"), run()
    assert "Traceback" not in as_json.stderr + as_text.stderr, as_json.stderr + as_text.stderr
    assert as_json.returncode == as_text.returncode
    return as_json.returncode, json.loads(as_json.stdout), as_text.stdout


def _os_env() -> dict[str, str]:
    import os
    return {k: v for k, v in os.environ.items() if not k.startswith("DT_")}


def verdicts(durable: Durable) -> dict[str, list[tuple[str, int, list[str]]]]:
    made = durable.plan()
    return {w.workflow: [(g.verdict, g.count, g.changes) for g in w.groups] for w in made.workflows
            if w.workflow in WORKFLOWS}


def test_plan_says_which_in_flight_executions_a_deploy_strands_and_how(project_factory: Any) -> None:
    # Given executions of three workflows waiting on version 1
    p = project_factory(workflows=[V1])
    started = waiting_on_v1(p)
    listed = {e.id: e for e in p.durable.list_executions(limit=100)}
    assert {listed[i].version_label for ids in started.values() for i in ids} == {1}
    # When the code changes: the wait renamed, a step added before it, its retry policy changed
    v2 = deploy(p, V2)
    # Then the plan tells each case apart, with example ids
    assert verdicts(v2.durable) == {
        "ver_renamed": [("gone", 2, ["renamed to await_go"])],
        "ver_inserted": [("unchanged", 2, [])],
        "ver_retried": [("changed", 2, ["options: retry"])],
    }
    made = v2.durable.plan()
    assert not made.ok and made.stranded == 4
    renamed = made.workflow("ver_renamed")
    assert renamed is not None and set(renamed.groups[0].examples) <= set(started["ver_renamed"])
    assert renamed.groups[0].version_label == 1 and renamed.current_label == 2
    # And the CLI exits non-zero, so a pipeline can refuse the deploy
    code, data, text = plan_cli(v2)
    assert code == 1 and data["ok"] is False and data["stranded"] == 4
    assert "STRANDED" in text and "renamed to await_go" in text and "options: retry" in text
    # When it is deployed anyway, the plan comes true: the unchanged ones finish on version 2
    # without running the step added before their wait; the others fail, each step run once
    v2.worker()
    for ids in started.values():
        for execution_id in ids:
            p.durable.send_event(execution_id, "go", {"ok": True})
    for execution_id in started["ver_inserted"]:
        done = p.wait(execution_id)
        assert done.status == "completed" and done.context["path"] == ["reserve@1", "wait_go@2", "ship@2"]
        assert p.effects(execution_id) == {"reserve": 1, "wait_go": 1, "ship": 1}
    for name in ("ver_renamed", "ver_retried"):
        for execution_id in started[name]:
            failed = p.wait(execution_id)
            assert failed.status == "failed" and failed.error is not None
            assert failed.error["type"] == "DefinitionChanged"
            assert p.effects(execution_id) == {"reserve": 1}


def test_keeping_version_1_registered_lets_its_executions_finish_on_it(project_factory: Any) -> None:
    # Given executions of three workflows waiting on version 1
    p = project_factory(workflows=[V1])
    started = waiting_on_v1(p)
    # When version 2 is deployed with version 1 kept beside it
    v2 = deploy(p, V2_KEPT)
    # Then the plan strands nothing: every execution is kept on version 1, which is still needed
    assert verdicts(v2.durable) == {name: [("kept", 2, [])] for name in WORKFLOWS}
    code, data, text = plan_cli(v2)
    assert code == 0 and data["ok"] is True and "STRANDED" not in text
    assert all(v["needed"] for w in data["workflows"] if w["workflow"] in WORKFLOWS for v in w["versions"])
    # When a version 2 worker runs and new executions start beside the old ones
    v2.worker()
    fresh = {name: v2.durable.start(name, {}) for name in WORKFLOWS}
    for execution_id in fresh.values():
        assert v2.wait(execution_id, statuses={"waiting"}).version_label == 2
    for ids in started.values():
        for execution_id in ids:
            assert v2.durable.get_execution(execution_id).version_label == 1
            v2.durable.send_event(execution_id, "go", {"ok": True})
    # Then the old ones finish on version 1, each step run once
    for ids in started.values():
        for execution_id in ids:
            done = v2.wait(execution_id)
            assert done.status == "completed", done.error
            assert done.context["path"] == ["reserve@1", "wait_go@1", "ship@1"]
            assert p.effects(execution_id) == {"reserve": 1, "wait_go": 1, "ship": 1}
    # And the plan says no execution needs version 1 any more
    made = v2.durable.plan()
    for name in WORKFLOWS:
        plan_of = made.workflow(name)
        assert plan_of is not None and [v.label for v in plan_of.unneeded_versions] == [1]
    code, _, text = plan_cli(v2)
    assert code == 0 and text.count("no execution needs version 1 any more") == 4  # ver_fanout's: none started
    # While the new ones run on version 2
    for name, execution_id in fresh.items():
        v2.durable.send_event(execution_id, "go", {"ok": True})
        done = v2.wait(execution_id)
        assert done.status == "completed" and done.version_label == 2
        assert all(step.endswith("@2") for step in done.context["path"])
        if name == "ver_renamed":
            assert "await_go@2" in done.context["path"]


def test_the_iterations_of_a_foreach_finish_on_the_version_they_started_on(project_factory: Any) -> None:
    # Given an execution of version 1 whose foreach iteration sleeps in its body step "nap"
    p = project_factory(workflows=[V1])
    v1_worker = p.worker()
    p.beat()
    execution_id = p.durable.start("ver_fanout", {"items": [1, 2], "nap": 2})
    deadline = time.monotonic() + 30
    while not p.sql("SELECT 1 FROM {schema}.workflow_executions WHERE root_id = :id AND status = 'waiting'",
                    id=execution_id):
        assert time.monotonic() < deadline, "the first iteration never slept"
        time.sleep(0.05)
    v1_worker.stop()
    # When version 2 renames that step, with version 1 kept
    v2 = deploy(p, V2_KEPT)
    plan_of = v2.durable.plan().workflow("ver_fanout")
    # Then the plan keeps the execution and its iteration on version 1
    assert plan_of is not None and plan_of.counts["kept"] >= 2 and plan_of.stranded == 0
    assert {g.state for g in plan_of.groups} >= {"each", "nap"}
    # And a version 2 worker finishes every iteration on version 1, each body once past its sleep
    v2.worker()
    done = v2.wait(execution_id, timeout=60)
    assert done.status == "completed", done.error
    assert done.context["path"] == ["prepare@1", "nap1@1", "nap2@1", "finish@1"]
    assert p.notes(execution_id) == {"1": 1, "2": 1}

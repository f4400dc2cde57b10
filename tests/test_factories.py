"""App factories: ``Durable()`` without an app and ``init_app(app)`` later (Flask's pattern),
one set of tasks and handlers however often the app is built, and workflows found where
plugins keep them."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from celery import Celery, signals
from celery.beat import EmbeddedService
from sqlalchemy import text

from durable_celery import AppNotInitialized, Durable, InvalidInput, Workflow
from durable_celery.attachment import instances_on, task_packages
from durable_celery.testing.workers import CeleryProcess, worker
from tests.conftest import BROKERS, POSTGRES, ROOT, _delete_queues
from tests.proj.flask_style import create_app, make_durable


@dataclass
class FlaskProject:
    """A project built the app-factory way: its schema and queue, the test's own instance and
    app (as a web process would build them), and the worker processes."""

    prefix: str
    queue: str
    durable: Durable
    processes: list[CeleryProcess] = field(default_factory=list)

    def new_app(self, broker: str = BROKERS["redis"]) -> Celery:
        return create_app(self.durable, broker, self.queue)

    @property
    def env(self) -> dict[str, str]:
        return {"DT_BROKER": BROKERS["redis"], "DT_DB": POSTGRES, "DT_PREFIX": self.prefix, "DT_QUEUE": self.queue}

    def worker(self) -> CeleryProcess:
        proc = worker("tests.proj.flask_app", [self.queue], concurrency=1, env=self.env, cwd=str(ROOT))
        self.processes.append(proc)
        return proc.start()


@pytest.fixture
def flask_project() -> Iterator[FlaskProject]:
    prefix = f"t_{uuid.uuid4().hex[:10]}"
    project = FlaskProject(prefix, f"dq-{prefix}", make_durable(POSTGRES, prefix, f"dq-{prefix}"))
    try:
        yield project
    finally:
        for proc in project.processes:
            proc.stop()
        with project.durable.db.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{prefix}" CASCADE'))
        project.durable.db.dispose()
        _delete_queues(BROKERS["redis"], [project.queue, f"{project.queue}-default"])


def durable_handlers() -> tuple[int, int]:
    """How many worker_init and beat_init receivers are connected, in this process."""
    return len(signals.worker_init.receivers), len(signals.beat_init.receivers)


# -- one instance, attached later ------------------------------------------------------------------


def test_an_instance_without_an_app_refuses_to_publish_and_writes_nothing(flask_project: FlaskProject) -> None:
    # Given an instance built without an app
    durable = flask_project.durable
    # When a call that publishes is made, it names the way out, and nothing is written
    with pytest.raises(AppNotInitialized, match=r"init_app\(app\)"):
        durable.start("plugin_greeting", {"name": "ada"})
    with pytest.raises(AppNotInitialized, match=flask_project.prefix):
        _ = durable.app
    with pytest.raises(AppNotInitialized):
        durable.cancel(str(uuid.uuid4()))
    with pytest.raises(AppNotInitialized):
        durable.send_event(str(uuid.uuid4()), "go")
    # reads need only the database
    assert durable.list_executions() == []


def test_the_queues_of_workflows_given_directly_are_declared_whenever_the_app_comes(
        flask_project: FlaskProject) -> None:
    routed = Workflow("routed_later", queue=f"{flask_project.queue}-special")
    routed.step(name="only")(lambda ctx: ctx)
    durable = Durable(database_url=POSTGRES, prefix=flask_project.prefix, workflows=[routed])
    assert durable.registry.names() == ["routed_later"]  # loaded before any app is attached
    app = Celery("late", broker="memory://")
    durable.init_app(app)
    assert f"{flask_project.queue}-special" in [q.name for q in app.conf.task_queues]
    durable.db.dispose()


def test_init_app_twice_with_the_same_app_installs_once(flask_project: FlaskProject) -> None:
    before = durable_handlers()
    app = flask_project.new_app("memory://")
    flask_project.durable.init_app(app)
    flask_project.durable.init_app(app)
    assert durable_handlers() == (before[0] + 1, before[1] + 1)
    assert instances_on(app) == [flask_project.durable]
    assert flask_project.durable.app is app
    assert flask_project.durable.step_task_name in app.tasks


def test_an_app_built_once_per_test_module_leaves_one_set_of_handlers(flask_project: FlaskProject) -> None:
    # Given an app factory run three times, as once per test module, with one module-level instance
    before = durable_handlers()
    apps = [flask_project.new_app("memory://") for _ in range(3)]
    # Then the instance follows the newest app, and only that app carries it
    assert flask_project.durable.app is apps[-1]
    assert [instances_on(app) for app in apps] == [[], [], [flask_project.durable]]
    # and one worker_init and one beat_init handler are connected, not three of each
    assert durable_handlers() == (before[0] + 1, before[1] + 1)


def test_a_beat_of_an_app_built_three_times_runs_one_tick(flask_project: FlaskProject,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    # Given the app built three times, the newest attached twice, and a real beat of it in this process
    app = [flask_project.new_app("memory://") for _ in range(3)][-1]
    flask_project.durable.init_app(app)
    schedule = Path(tempfile.mkdtemp(prefix="durable-beat-")) / "schedule"
    beat = EmbeddedService(app, thread=True, schedule_filename=str(schedule))
    name = f"durable-tick-{flask_project.prefix}"
    with caplog.at_level(logging.INFO, logger="durable_celery"):
        beat.start()
        try:
            deadline = time.monotonic() + 10
            while not any(t.name == name for t in threading.enumerate()) and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.5)  # room for a second handler, if one were connected
            # Then the beat_init handler ran once: one tick thread, one announcement
            assert [t.name for t in threading.enumerate()].count(name) == 1
            announced = [r for r in caplog.records if "beat runs the tick" in r.getMessage()
                         and flask_project.prefix in r.getMessage()]
            assert len(announced) == 1
        finally:
            beat.stop()
    deadline = time.monotonic() + 10
    while any(t.name == name for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(t.name == name for t in threading.enumerate())


def test_a_second_instance_with_the_same_prefix_on_one_app_is_refused(flask_project: FlaskProject) -> None:
    app = flask_project.new_app("memory://")
    # Then a second instance with that prefix fails, naming the prefix, built with the app or attached later
    with pytest.raises(InvalidInput, match=f"prefix '{flask_project.prefix}'"):
        Durable(app, database_url=POSTGRES, prefix=flask_project.prefix)
    late = Durable(database_url=POSTGRES, prefix=flask_project.prefix)
    with pytest.raises(InvalidInput, match="init_app"):
        late.init_app(app)
    assert instances_on(app) == [flask_project.durable]
    # Another prefix is another engine (two instances may share an app)
    other = Durable(app, database_url=POSTGRES, prefix=f"{flask_project.prefix}_b")
    assert instances_on(app) == [flask_project.durable, other]
    # Once the first instance moves to a newer app, the old app is free for the second one
    flask_project.new_app("memory://")
    late.init_app(app)
    assert instances_on(app) == [other, late]
    for durable in (late, other):
        durable.db.dispose()


def test_init_app_takes_only_a_celery_app(flask_project: FlaskProject) -> None:
    with pytest.raises(InvalidInput, match="Celery app"):
        flask_project.durable.init_app("proj.celery")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match=r"init_app\(app\) later"):
        Durable("postgresql+psycopg://localhost/proj")  # type: ignore[arg-type]


# -- finding workflows -----------------------------------------------------------------------------


def test_autodiscovery_without_packages_looks_next_to_the_apps_task_modules(flask_project: FlaskProject) -> None:
    app = flask_project.new_app("memory://")
    # The plugin registered its task from tests/proj/plugin_pkg/tasks.py
    assert "tests.proj.plugin_pkg" in task_packages(app)
    # so its workflows.py is found, and the file-loaded plugin comes from the callable in workflows=
    assert {"plugin_greeting", "stamp"} <= set(flask_project.durable.registry.names())


def test_autodiscovery_without_packages_needs_the_app_when_it_loads() -> None:
    durable = Durable(database_url=POSTGRES, prefix=f"t_{uuid.uuid4().hex[:10]}")
    durable.autodiscover_workflows()
    with pytest.raises(AppNotInitialized):
        durable.registry.names()
    durable.db.dispose()


# -- end to end ------------------------------------------------------------------------------------


def test_a_factory_built_project_runs_plugin_workflows_on_a_real_worker(flask_project: FlaskProject) -> None:
    # Given a worker of the app-factory project (its module builds the app three times)
    proc = flask_project.worker()
    # and this process's own app, built twice as a web app's test suite would
    flask_project.new_app()
    flask_project.new_app()
    durable = flask_project.durable
    # When it starts a discovered workflow and a file-loaded one, by name
    greeting = durable.start("plugin_greeting", {"name": "ada"})
    stamped = durable.start("stamp", {"n": 1})
    # Then the worker runs both to completion
    done = [durable.wait(i, timeout=30) for i in (greeting, stamped)]
    assert [e.status for e in done] == ["completed", "completed"], proc.log()[-3000:]
    assert done[0].context["greeting"] == "hello ada" and done[0].context["pid"] != 0
    assert done[1].context == {"n": 1, "stamped": True}
    assert "cannot start" not in proc.log()


def test_the_cli_finds_the_instance_a_factory_attached(flask_project: FlaskProject) -> None:
    cmd = [sys.executable, "-m", "celery", "-A", "tests.proj.flask_app", "durable", "workflows", "--format", "json"]
    done = subprocess.run(cmd, cwd=ROOT, env={**os.environ, **flask_project.env}, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert {"plugin_greeting", "stamp"} <= {row["name"] for row in json.loads(done.stdout)}

"""Shared fixtures. Every integration test runs against the real PostgreSQL, Redis and RabbitMQ
on this machine and real `celery worker` processes; a missing service fails the run loudly."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from kombu import Connection as KombuConnection
from sqlalchemy import text

from durable_celery import Durable, Execution
from durable_celery.testing.services import PrivatePostgres, PrivateRabbitMQ, PrivateRedis
from durable_celery.testing.workers import CeleryProcess, beat, worker
from tests.proj.factory import env_for, make

# pytester for the plugin's own test; durable_celery_pytest as its pytest11 entry point loads it
# in an installed project (a name it registers under, so an installed one is not loaded twice);
# tests.browser_support: the dashboard's browser fixtures (it imports Playwright only when used)
pytest_plugins = ["pytester", "durable_celery_pytest", "tests.browser_support"]

ROOT = Path(__file__).resolve().parent.parent
POSTGRES = os.environ.get("DURABLE_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
BROKERS = {
    "redis": os.environ.get("DURABLE_TEST_REDIS", "redis://127.0.0.1:6379/5"),
    "amqp": os.environ.get("DURABLE_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672//"),
}
#: Short timings so recovery paths run in seconds.
FAST = {"stale_lock_timeout": 3, "heartbeat_interval": 0.5, "tick_interval": 0.5, "redispatch_after": 2}
FINAL = {"completed", "failed", "cancelled", "compensated", "compensation_failed"}


def _require_services() -> None:
    problems = []
    try:
        psycopg.connect(POSTGRES.replace("+psycopg", ""), connect_timeout=3).close()
    except Exception as exc:
        problems.append(f"PostgreSQL at {POSTGRES}: {exc}")
    try:
        redis.Redis.from_url(BROKERS["redis"], socket_timeout=3).ping()
    except Exception as exc:
        problems.append(f"Redis at {BROKERS['redis']}: {exc}")
    try:
        with KombuConnection(BROKERS["amqp"], connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception as exc:
        problems.append(f"RabbitMQ at {BROKERS['amqp']}: {exc}")
    if problems:
        pytest.exit("required services are down (these tests never skip):\n  " + "\n  ".join(problems), returncode=3)


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    if any("unit" not in item.nodeid.split("::")[0] for item in items):
        _require_services()


@dataclass
class Project:
    """One isolated test project: its own Postgres schema, queue, Durable instance and workers."""

    broker: str
    prefix: str
    queue: str
    settings: dict[str, Any]
    app: Any
    durable: Durable
    processes: list[CeleryProcess] = field(default_factory=list)
    #: the database URL (the shared PostgreSQL, or a private one a fault test may restart)
    database: str = POSTGRES

    @property
    def env(self) -> dict[str, str]:
        return env_for(self.broker, self.database, self.prefix, self.queue, **self.settings)

    def worker(self, *, concurrency: int = 2, env: dict[str, str] | None = None, start: bool = True,
               queues: list[str] | None = None, pool: str = "prefork") -> CeleryProcess:
        proc = worker("tests.proj.app", [self.queue] if queues is None else queues, concurrency=concurrency, pool=pool,
                      env={**self.env, **(env or {})}, cwd=str(ROOT))
        self.processes.append(proc)
        return proc.start() if start else proc

    def legacy_worker(self, *, concurrency: int = 1) -> CeleryProcess:
        """A plain Celery worker of another app (``tests.proj.legacy_app``, no engine in it) on
        the project's legacy queue."""
        proc = worker("tests.proj.legacy_app", [self.legacy_queue], concurrency=concurrency, env=self.env,
                      cwd=str(ROOT))
        self.processes.append(proc)
        return proc.start()

    @property
    def legacy_queue(self) -> str:
        return f"{self.queue}-legacy"

    def beat(self) -> CeleryProcess:
        proc = beat("tests.proj.app", env=self.env, cwd=str(ROOT))
        self.processes.append(proc)
        return proc.start()

    def wait(self, execution_id: str, timeout: float = 30, statuses: set[str] = FINAL) -> Execution:
        deadline = time.monotonic() + timeout
        while True:
            execution = self.durable.get_execution(execution_id, include_steps=True, include_logs=True)
            if execution.status in statuses:
                return execution
            if time.monotonic() > deadline:
                logs = "\n".join(p.log()[-3000:] for p in self.processes)
                raise AssertionError(f"{execution_id} still {execution.status} after {timeout}s\n{logs}")
            time.sleep(0.05)

    def effects(self, execution_id: str) -> dict[str, int]:
        """How many times each step body ran for an execution."""
        with self.durable.db.connect() as conn:
            rows = conn.execute(text(f'SELECT step, count(*) FROM "{self.prefix}".test_effects '
                                     "WHERE execution_id = :id GROUP BY step"), {"id": execution_id})
            return {step: count for step, count in rows}

    def notes(self, execution_id: str) -> dict[str, int]:
        """How many times each note was recorded by the step bodies of an execution."""
        rows = self.sql("SELECT note, count(*) FROM {schema}.test_effects WHERE execution_id = :id GROUP BY note",
                        id=execution_id)
        return {note: count for note, count in rows}

    def sql(self, query: str, **params: Any) -> list[Any]:
        with self.durable.db.begin() as conn:
            return list(conn.execute(text(query.replace("{schema}", f'"{self.prefix}"')), params))

    def close(self) -> None:
        for proc in self.processes:
            proc.stop()
        with self.durable.db.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{self.prefix}" CASCADE'))
        self.durable.db.dispose()
        _delete_queues(self.broker, [self.queue, f"{self.queue}-default", self.legacy_queue])
        if self.broker.startswith("redis"):  # the tick's marker (runtime/broker.py)
            redis.Redis.from_url(self.broker, socket_timeout=3).delete(f"durable:{self.prefix}:broker-run")


def _delete_queues(broker: str, names: list[str]) -> None:
    with KombuConnection(broker) as conn:
        channel = conn.channel()
        for name in names:
            try:
                channel.queue_delete(name)
            except Exception:
                channel = conn.channel()  # amqp closes the channel on a missing queue


def new_project(broker: str = "redis", *, broker_url: str | None = None, database_url: str | None = None,
                **settings: Any) -> Project:
    """A project on ``broker`` (a name in BROKERS); ``broker_url`` and ``database_url`` put it on
    other servers instead (``durable_celery.testing.services``: private ones a test may restart)."""
    prefix = f"t_{uuid.uuid4().hex[:10]}"
    queue = f"dq-{prefix}"
    merged = {**FAST, **settings}
    broker_url = broker_url or BROKERS[broker]
    database_url = database_url or POSTGRES
    app, durable = make(broker_url, database_url, prefix, queue, **merged)
    durable.ensure_schema()
    with durable.db.begin() as conn:
        conn.execute(text(f'CREATE TABLE "{prefix}".test_effects (id serial PRIMARY KEY, execution_id text, '
                          "step text, attempt int, pid int, note text, at timestamptz DEFAULT now())"))
    return Project(broker_url, prefix, queue, merged, app, durable, database=database_url)


@pytest.fixture
def project_factory() -> Iterator[Callable[..., Project]]:
    """Make isolated projects; everything they started is stopped and dropped afterwards."""
    made: list[Project] = []

    def factory(broker: str = "redis", **settings: Any) -> Project:
        made.append(new_project(broker, **settings))  # broker_url=, database_url= go through too
        return made[-1]

    yield factory
    for project in made:
        project.close()


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A PostgreSQL server of the test's own, which it may restart or keep down; request it
    before ``project_factory``, so that projects on it are dropped while it still runs."""
    with PrivatePostgres() as server:
        yield server


@pytest.fixture(scope="module", params=["redis", "amqp"])
def running_project(request: pytest.FixtureRequest) -> Iterator[Project]:
    """A project with one running worker and beat, shared by a module, on each broker."""
    project = new_project(request.param)
    try:
        project.worker()
        project.beat()
        yield project
    finally:
        project.close()


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    """A Redis server of the test's own (nothing on disk: a restart loses every message), which
    it may restart or kill. Ask for it before ``project_factory``, so it outlives the projects."""
    with PrivateRedis() as server:
        yield server


@pytest.fixture
def private_rabbitmq() -> Iterator[PrivateRabbitMQ]:
    """A RabbitMQ node of the test's own, which it may restart or kill (about 5 s to boot). Ask
    for it before ``project_factory``, so it outlives the projects."""
    with PrivateRabbitMQ() as server:
        yield server

"""What every benchmark shares: the dedicated Postgres database and its schemas, the advisory
lock that lets one bench run at a time, fresh worker subprocesses, and tidying the broker's
queues afterwards (used by ``bench.bench`` and ``bench.orchestration``)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from celery import Celery
from psycopg import sql

from durable_celery.testing.workers import CeleryProcess, worker

ROOT = Path(__file__).resolve().parent.parent

DATABASE = "durable_bench"
SCHEMA_PREFIX = "bench_"  # + run id: the engine's schema (and task-name) prefix
LOCK_KEY = 0x6475726162  # advisory lock serialising bench runs (of every bench module) on one server


@dataclass(frozen=True)
class Postgres:
    """The benchmark's server: ``server`` is a URL without a database; ``admin_database`` an
    existing database to create ``durable_bench`` from, take the lock on and read statistics over."""

    server: str
    admin_database: str

    def dsn(self, database: str) -> str:
        """A libpq URL of ``database`` on the benchmark's server."""
        return f"{self.server.rstrip('/')}/{database}"

    @property
    def database_url(self) -> str:
        """The engine's SQLAlchemy URL (psycopg 3) of ``durable_bench``."""
        return self.dsn(DATABASE).replace("postgresql://", "postgresql+psycopg://", 1)


def ensure_database(pg: Postgres) -> None:
    """Create the dedicated ``durable_bench`` database if it does not exist yet."""
    with psycopg.connect(pg.dsn(pg.admin_database), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone()
        if exists is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))


def drop_schemas(pg: Postgres, *names: str) -> None:
    """Drop these schemas, or with no names every bench schema left over by an earlier run."""
    with psycopg.connect(pg.dsn(DATABASE), autocommit=True) as conn:
        if not names:
            rows = conn.execute("SELECT nspname FROM pg_namespace WHERE starts_with(nspname, %s)", (SCHEMA_PREFIX,))
            names = tuple(row[0] for row in rows)
        for name in names:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


@contextmanager
def exclusive_run(pg: Postgres) -> Iterator[None]:
    """Hold an advisory lock (on the admin database, so not counted) for the whole run: two bench
    runs at once would pollute each other's figures."""
    with psycopg.connect(pg.dsn(pg.admin_database), autocommit=True) as conn:
        locked = conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()
        if not (locked and locked[0]):
            print("waiting for another bench run to finish ...", flush=True)
            conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))


def start_worker(queues: Sequence[str], env: dict[str, str], concurrency: int) -> CeleryProcess:
    """A fresh ``celery -A bench.app worker`` on ``queues`` (prefork, default prefetch, no
    gossip/mingle/heartbeat), built from the ``BENCH_*`` variables in ``env`` (not yet started:
    use it as a context manager; it is stopped by its PID)."""
    return worker("bench.app", list(queues), concurrency=concurrency, pool="prefork", env=env, cwd=str(ROOT))


def delete_queues(app: Celery, *queues: str) -> None:
    """Remove the run's queues from the broker (they are unique per run, so they would pile up)."""
    try:
        with app.connection_for_write() as conn:
            channel = conn.default_channel
            for queue in queues:
                channel.queue_delete(queue)
                _forget_redis_queue(channel, queue)
    except Exception as exc:  # tidying up only
        print(f"  (could not delete queues {', '.join(queues)}: {exc})")


def _forget_redis_queue(channel: Any, queue: str) -> None:
    """kombu's Redis transport deletes a queue's lists and bindings only when the deleting process
    declared it itself: purge the lists (messages the stopping worker handed back, if any) and drop
    the binding sets, keyed by exchange, which Celery names after the queue."""
    prefixes = [getattr(channel, name, None) for name in ("keyprefix_queue", "keyprefix_binding_permanent")]
    keys = [prefix % queue for prefix in prefixes if isinstance(prefix, str)]
    if len(keys) == len(prefixes):  # a Redis channel
        channel.queue_purge(queue)
        channel.client.delete(*keys)


def fmt(value: float | None, spec: str) -> str:
    """``value`` formatted, or ``n/a``."""
    return "n/a" if value is None else format(value, spec)

"""A legacy Celery project with no durable engine at all: its own app module, its own queue
(``<DT_QUEUE>-legacy``), plain tasks. Workflows of the test project await these tasks by name
(``await_task(signature("legacy.multiply", ...))``): ``celery -A tests.proj.legacy_app worker``."""

from __future__ import annotations

import os
import time

import psycopg
from celery import Celery

app = Celery("legacy", broker=os.environ["DT_BROKER"])
app.conf.update(
    broker_connection_retry_on_startup=True,
    task_default_queue=f"{os.environ['DT_QUEUE']}-legacy",
    worker_hijack_root_logger=False,
    # a killed worker's message comes back soon on Redis too (RabbitMQ redelivers at once)
    broker_transport_options={"visibility_timeout": 4},
    task_acks_late=True,
    task_reject_on_worker_lost=True,
)


def _ran(note: str) -> None:
    """Count a run of a legacy task in the test's schema (committed at once)."""
    with psycopg.connect(os.environ["DT_DB"].replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as c:
        c.execute(f'INSERT INTO "{os.environ["DT_PREFIX"]}".test_effects (execution_id, step, attempt, pid, note) '
                  "VALUES (%s, %s, %s, %s, %s)", ("legacy", "legacy", 0, os.getpid(), note))


@app.task(name="legacy.multiply")
def multiply(x: int, y: int, seconds: float = 0, note: str = "multiply") -> int:
    _ran(note)
    time.sleep(seconds)
    return x * y


@app.task(name="legacy.explode")
def explode(message: str) -> None:
    _ran("explode")
    raise ValueError(message)

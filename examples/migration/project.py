"""The example project's settings and the helpers every stage shares.

Settings come from environment variables, with localhost defaults:

==============================  ==========================================  =====================================
variable                        default                                     what
==============================  ==========================================  =====================================
``MIGRATION_BROKER``            ``redis://127.0.0.1:6379/0``                the one broker old and new share
``MIGRATION_RESULT_BACKEND``    ``redis://127.0.0.1:6379/1``                the chord's result backend (stages 0-2)
``MIGRATION_DATABASE_URL``      ``postgresql+psycopg://postgres@127.0.0.1``  the workflow state (stages 1-3)
                                ``:5432/postgres``
``MIGRATION_REDIS``             ``redis://127.0.0.1:6379/0``                where reports are "published"
``MIGRATION_QUEUE``             ``reports``                                 the old tasks' queue
``MIGRATION_DURABLE_QUEUE``     ``durable``                                 the workflows' queue
``MIGRATION_PREFIX``            ``durable``                                 the workflow tables' schema
==============================  ==========================================  =====================================
"""

from __future__ import annotations

import os
import re
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis
from celery import Celery
from celery.result import AsyncResult
from kombu import Connection

from durable_celery import Durable, Execution
from durable_celery.testing.workers import CeleryProcess, beat, worker

BROKER = os.environ.get("MIGRATION_BROKER", "redis://127.0.0.1:6379/0")
RESULT_BACKEND = os.environ.get("MIGRATION_RESULT_BACKEND", "redis://127.0.0.1:6379/1")
DATABASE_URL = os.environ.get("MIGRATION_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("MIGRATION_REDIS", "redis://127.0.0.1:6379/0")
OLD_QUEUE = os.environ.get("MIGRATION_QUEUE", "reports")
DURABLE_QUEUE = os.environ.get("MIGRATION_DURABLE_QUEUE", "durable")
PREFIX = os.environ.get("MIGRATION_PREFIX", "durable")
CHANNEL = "#daily-reports"

ROOT = str(Path(__file__).resolve().parent.parent.parent)  # the repository: workers import examples.migration
_TASK_DONE = re.compile(r"Task ([\w.]+)\[[0-9a-f-]+\] succeeded")


def make_app(*, result_backend: bool) -> Celery:
    """The project's Celery app, as its ``celery.py`` builds it: plain tasks go to ``OLD_QUEUE``."""
    app = Celery("reports", broker=BROKER, backend=RESULT_BACKEND if result_backend else None)
    app.conf.update(
        task_default_queue=OLD_QUEUE,
        broker_connection_retry_on_startup=True,
        result_expires=600,
        worker_hijack_root_logger=False,
    )
    return app


def make_durable(app: Celery, workflows: Sequence[Any]) -> Durable:
    """The engine on the project's app: built after ``app.conf``, in the module workers import."""
    return Durable(app, database_url=DATABASE_URL, workflows=list(workflows), queue=DURABLE_QUEUE, prefix=PREFIX)


def store() -> redis.Redis:
    """Where the tasks keep what they did (the "chat channel" reports are published to)."""
    return redis.Redis.from_url(REDIS, decode_responses=True)


def key(*parts: str) -> str:
    """A Redis key of this project (namespaced by the old queue's name, so runs can be isolated)."""
    return ":".join((OLD_QUEUE, *parts))


# -- running a stage ----------------------------------------------------------------------------------

@contextmanager
def processes(app_module: str, pools: dict[str, list[str]], *, with_beat: bool) -> Iterator[dict[str, CeleryProcess]]:
    """Start one ``celery worker`` per pool (``{name: queues}``) and, if asked, one beat, all
    loading ``app_module`` (together, to save time); stop every one of them by PID on the way out."""
    started = {name: worker(app_module, queues, concurrency=2, cwd=ROOT) for name, queues in pools.items()}
    everything = [*started.values(), *([beat(app_module, cwd=ROOT)] if with_beat else [])]
    try:
        with ThreadPoolExecutor(len(everything)) as pool:
            list(pool.map(CeleryProcess.start, everything))
        for name, proc in started.items():
            print(f"started {name} pool (pid {proc.pid}): celery -A {app_module} worker -Q {','.join(pools[name])}")
        if with_beat:
            print(f"started beat (pid {everything[-1].pid}): celery -A {app_module} beat")
        yield started
    finally:
        for proc in everything:
            proc.stop()
        print("stopped " + ", ".join(f"{name} (pid {proc.pid})" for name, proc in started.items() if proc.proc)
              + (" and beat" if with_beat else ""))


def canvas_result(result: AsyncResult[Any], timeout: float = 60) -> Any:
    """The result of a sent canvas, read from the result backend. Like ``result.get(timeout)``,
    but polled, so that no pub/sub subscription is left open when the script exits."""
    deadline = time.monotonic() + timeout
    while not result.ready():
        if time.monotonic() > deadline:
            raise TimeoutError(f"canvas {result.id} has not finished after {timeout}s")
        time.sleep(0.1)
    if result.failed():
        raise RuntimeError(f"canvas {result.id} failed: {result.result!r}")
    return result.result


def release_results(app: Celery, results: Iterable[Any]) -> None:
    """Stop tracking the results of sent canvases now. Celery's Redis backend keeps a chord's
    header results subscribed after the chain is done; left to be freed at interpreter exit,
    each one tries to unsubscribe over a connection that can no longer be made and prints a
    traceback."""
    pending = list(results)
    while pending:
        result = pending.pop()
        if result is None:
            continue
        app.backend.remove_pending_result(result)  # type: ignore[attr-defined]  # the async backends' (Redis)
        pending.append(result.parent)
        pending.extend(getattr(result, "results", None) or ())


def ran(proc: CeleryProcess) -> Counter[str]:
    """The task names a worker ran to success, from its log."""
    return Counter(_TASK_DONE.findall(proc.log()))


def print_ran(pools: dict[str, CeleryProcess]) -> None:
    for name, proc in pools.items():
        tasks = ran(proc)
        print(f"  {name} pool ran: " + (", ".join(f"{task} x{n}" for task, n in sorted(tasks.items())) or "nothing"))


def print_execution(execution: Execution) -> None:
    print(f"workflow {execution.workflow} {execution.id}: {execution.status.value}")
    for step in execution.steps:
        what = f"error: {step.error['message']}" if step.error else "ok"
        role = f" (compensates {step.compensation_for})" if step.is_compensation else ""
        print(f"  {step.step_name:<16} attempt {step.attempt}  {step.status:<9} {what}{role}")


def queue_depth(name: str) -> int:
    """How many messages wait in a queue of the broker (Redis or RabbitMQ)."""
    with Connection(BROKER) as conn:
        channel = conn.channel()
        try:
            return int(channel.queue_declare(name, passive=True).message_count)  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001 - RabbitMQ: a queue that does not exist holds nothing
            return 0

"""The fan-out benchmark's Celery apps (``bench/fanout.py``), built the same way by the bench
process and by its workers (``celery -A bench.fanout_app worker``), from ``BENCH_*`` variables:

* ``BENCH_KIND=fanout``: an engine running ``bench_foreach`` (a foreach over
  ``range(ctx["items"])``, ``BENCH_WINDOW`` at a time, of one no-op step, then a no-op step; the
  items are made from a count so that the context every iteration starts from stays small) and ``bench_parallel`` (a
  parallel block of ``BENCH_BRANCHES`` no-op branches, then a no-op step);
* ``BENCH_KIND=chord``: a plain Celery app with a no-op task and a no-op callback, results in
  Redis, for ``celery.chord`` of the same tasks.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

from durable_celery import Durable, Workflow

FOREACH = "bench_foreach"
PARALLEL = "bench_parallel"
ITEM_TASK = "bench.item"
CALLBACK_TASK = "bench.callback"


def fanout_workflows(window: int, branches: int) -> list[Workflow]:
    """``bench_foreach`` and ``bench_parallel``; every step passes its context on unchanged."""
    foreach = Workflow(FOREACH)
    with foreach.foreach("items", items=lambda ctx: list(range(ctx["items"])), concurrency=window):
        foreach.step(name="item")(lambda ctx, item: ctx)
    foreach.step(name="after_items")(lambda ctx: {"n": len(ctx["__results__"])})
    parallel = Workflow(PARALLEL)
    with parallel.parallel(name="branches"):
        for i in range(branches):
            parallel.step(name=f"b{i}")(lambda ctx: ctx)
    parallel.step(name="after_branches")(lambda ctx: {"n": len(ctx["__results__"])})
    return [foreach, parallel]


def _celery(name: str, broker: str, queue: str, backend: str | None = None) -> Celery:
    app = Celery(name, broker=broker, backend=backend)
    app.conf.update(broker_connection_retry_on_startup=True, task_default_queue=queue,
                    worker_hijack_root_logger=False, broker_transport_options={"visibility_timeout": 3600},
                    result_expires=600)
    return app


def make_engine(broker: str, database_url: str, prefix: str, queue: str, window: int, branches: int,
                dispatch_mode: str) -> tuple[Celery, Durable]:
    app = _celery(f"bench-fanout-{prefix}", broker, f"{queue}-default")
    durable = Durable(app, database_url=database_url, workflows=fanout_workflows(window, branches), queue=queue,
                      prefix=prefix, dispatch_mode=dispatch_mode)
    return app, durable


def _noop(value: Any = None) -> Any:
    return value


def _callback(values: list[Any]) -> int:
    return len(values)


def make_chord(broker: str, backend: str, queue: str) -> tuple[Celery, Any, Any]:
    """The plain app, its no-op item task and the chord's no-op callback."""
    app = _celery("bench-chord", broker, queue, backend=backend)
    return app, app.task(name=ITEM_TASK)(_noop), app.task(name=CALLBACK_TASK)(_callback)


def engine_env(broker: str, database_url: str, prefix: str, queue: str, window: int, branches: int,
               dispatch_mode: str) -> dict[str, str]:
    return {"BENCH_KIND": "fanout", "BENCH_BROKER": broker, "BENCH_DB": database_url, "BENCH_PREFIX": prefix,
            "BENCH_QUEUE": queue, "BENCH_WINDOW": str(window), "BENCH_BRANCHES": str(branches),
            "BENCH_DISPATCH_MODE": dispatch_mode}


def chord_env(broker: str, backend: str, queue: str) -> dict[str, str]:
    return {"BENCH_KIND": "chord", "BENCH_BROKER": broker, "BENCH_BACKEND": backend, "BENCH_QUEUE": queue}


def from_env() -> Celery:
    env = os.environ
    if env["BENCH_KIND"] == "chord":
        return make_chord(env["BENCH_BROKER"], env["BENCH_BACKEND"], env["BENCH_QUEUE"])[0]
    return make_engine(env["BENCH_BROKER"], env["BENCH_DB"], env["BENCH_PREFIX"], env["BENCH_QUEUE"],
                       int(env["BENCH_WINDOW"]), int(env["BENCH_BRANCHES"]), env["BENCH_DISPATCH_MODE"])[0]


if os.environ.get("BENCH_KIND"):  # a worker: `celery -A bench.fanout_app worker`
    app = from_env()

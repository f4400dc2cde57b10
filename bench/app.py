"""The benchmark's Celery apps, built the same way by the bench process and by its workers.

The kind of app is chosen by ``BENCH_KIND``:

* ``engine``: a Celery app with a :class:`~durable_celery.Durable` engine running the
  ``bench_noop`` workflow (``BENCH_STEPS`` no-op steps, in ``BENCH_DISPATCH_MODE``);
* ``chain``: a plain Celery app with one no-op task and a Redis result backend, for a
  ``celery.chain`` of the same number of steps;
* ``orchestration``: an engine running the workflows of ``bench.orchestration``: ``bench_call``
  (one step calling ``bench_child``, one no-op step, with ``call_workflow``) and
  ``bench_await`` (one step awaiting the plain no-op task on ``BENCH_PLAIN_QUEUE`` with
  ``await_task``);
* ``plain``: a plain Celery app, no engine, serving that no-op task on its own queue (with a
  result backend only if ``BENCH_BACKEND`` is set).

Workers load it with ``celery -A bench.app worker``; the bench passes the settings in the
environment (see :func:`engine_env` and :func:`chain_env`) and builds the same app in-process
with :func:`make_engine` / :func:`make_chain`.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery, signature

from durable_celery import Durable, Workflow
from durable_celery.orchestration import await_task, call_workflow

WORKFLOW = "bench_noop"
CHAIN_TASK = "bench.noop"
CALLER = "bench_call"  # one step: call_workflow(bench_child)
CHILD = "bench_child"  # one no-op step
AWAITER = "bench_await"  # one step: await_task(bench.plain_noop)
PLAIN_TASK = "bench.plain_noop"  # served by a plain worker (no engine) on its own queue


def noop_workflow(steps: int) -> Workflow:
    """``bench_noop``: ``steps`` consecutive no-op steps named ``s0`` .. ``s{steps-1}``."""
    wf = Workflow(WORKFLOW)
    for i in range(steps):
        wf.step(name=f"s{i}")(lambda ctx: ctx)
    return wf


def orchestration_workflows(plain_queue: str) -> list[Workflow]:
    """``bench_call``, ``bench_child`` and ``bench_await`` (awaiting ``PLAIN_TASK`` on ``plain_queue``).

    Each parent's step runs twice: once up to the call (it suspends there, holding no worker),
    and again from its top once the child or the task has answered, to return."""
    child = Workflow(CHILD)
    child.step(name="noop")(lambda ctx: ctx)
    caller = Workflow(CALLER)
    caller.step(name="call")(lambda ctx: {**ctx, "child": call_workflow(child, {})})
    awaiter = Workflow(AWAITER)
    awaiter.step(name="await")(
        lambda ctx: {**ctx, "value": await_task(signature(PLAIN_TASK, args=(1,), queue=plain_queue))})
    return [caller, child, awaiter]


def _celery(name: str, broker: str, queue: str, backend: str | None = None) -> Celery:
    """A Celery app with the settings shared by every scenario (prefetch left at its default)."""
    app = Celery(name, broker=broker, backend=backend)
    app.conf.update(
        broker_connection_retry_on_startup=True,
        task_default_queue=queue,
        worker_hijack_root_logger=False,
        broker_transport_options={"visibility_timeout": 3600},
        result_expires=600,
    )
    return app


def make_engine(broker: str, database_url: str, prefix: str, queue: str, steps: int, dispatch_mode: str,
                continuation_budget: float) -> tuple[Celery, Durable]:
    """The engine scenario's app: steps run as the engine's ``durable.<prefix>.step`` task on ``queue``."""
    app = _celery(f"bench-engine-{prefix}", broker, f"{queue}-default")
    durable = Durable(app, database_url=database_url, workflows=[noop_workflow(steps)], queue=queue,
                      prefix=prefix, dispatch_mode=dispatch_mode, continuation_budget=continuation_budget)
    return app, durable


def _noop_task(value: Any = None) -> Any:
    """The plain-Celery no-op: passes its argument on to the next task of the chain."""
    return value


def make_chain(broker: str, backend: str, queue: str) -> tuple[Celery, Any]:
    """The plain-Celery scenario's app and its no-op task (results kept in ``backend``)."""
    app = _celery("bench-chain", broker, queue, backend=backend)
    task = app.task(name=CHAIN_TASK)(_noop_task)
    return app, task


def make_orchestration(broker: str, database_url: str, prefix: str, queue: str, plain_queue: str,
                       dispatch_mode: str) -> tuple[Celery, Durable]:
    """The orchestration scenarios' engine (every other setting at the engine's default)."""
    app = _celery(f"bench-orchestration-{prefix}", broker, f"{queue}-default")
    durable = Durable(app, database_url=database_url, workflows=orchestration_workflows(plain_queue), queue=queue,
                      prefix=prefix, dispatch_mode=dispatch_mode)
    return app, durable


def make_plain(broker: str, queue: str, backend: str | None) -> tuple[Celery, Any]:
    """A plain app (no engine) with the awaited no-op task ``PLAIN_TASK`` on ``queue``."""
    app = _celery("bench-plain", broker, queue, backend=backend)
    task = app.task(name=PLAIN_TASK)(_noop_task)
    return app, task


def engine_env(broker: str, database_url: str, prefix: str, queue: str, steps: int, dispatch_mode: str,
               continuation_budget: float) -> dict[str, str]:
    """The environment that makes a worker build :func:`make_engine` with these settings."""
    return {"BENCH_KIND": "engine", "BENCH_BROKER": broker, "BENCH_DB": database_url, "BENCH_PREFIX": prefix,
            "BENCH_QUEUE": queue, "BENCH_STEPS": str(steps), "BENCH_DISPATCH_MODE": dispatch_mode,
            "BENCH_CONTINUATION_BUDGET": str(continuation_budget)}


def chain_env(broker: str, backend: str, queue: str) -> dict[str, str]:
    """The environment that makes a worker build :func:`make_chain` with these settings."""
    return {"BENCH_KIND": "chain", "BENCH_BROKER": broker, "BENCH_BACKEND": backend, "BENCH_QUEUE": queue}


def orchestration_env(broker: str, database_url: str, prefix: str, queue: str, plain_queue: str,
                      dispatch_mode: str) -> dict[str, str]:
    """The environment that makes a worker build :func:`make_orchestration` with these settings."""
    return {"BENCH_KIND": "orchestration", "BENCH_BROKER": broker, "BENCH_DB": database_url, "BENCH_PREFIX": prefix,
            "BENCH_QUEUE": queue, "BENCH_PLAIN_QUEUE": plain_queue, "BENCH_DISPATCH_MODE": dispatch_mode}


def plain_env(broker: str, queue: str, backend: str | None) -> dict[str, str]:
    """The environment that makes a worker build :func:`make_plain` with these settings."""
    return {"BENCH_KIND": "plain", "BENCH_BROKER": broker, "BENCH_QUEUE": queue, "BENCH_BACKEND": backend or ""}


def from_env() -> Celery:
    """Build the app described by the ``BENCH_*`` environment variables (in a worker)."""
    env = os.environ
    if env["BENCH_KIND"] == "chain":
        return make_chain(env["BENCH_BROKER"], env["BENCH_BACKEND"], env["BENCH_QUEUE"])[0]
    if env["BENCH_KIND"] == "plain":
        return make_plain(env["BENCH_BROKER"], env["BENCH_QUEUE"], env["BENCH_BACKEND"] or None)[0]
    if env["BENCH_KIND"] == "orchestration":
        return make_orchestration(env["BENCH_BROKER"], env["BENCH_DB"], env["BENCH_PREFIX"], env["BENCH_QUEUE"],
                                  env["BENCH_PLAIN_QUEUE"], env["BENCH_DISPATCH_MODE"])[0]
    app, _durable = make_engine(env["BENCH_BROKER"], env["BENCH_DB"], env["BENCH_PREFIX"], env["BENCH_QUEUE"],
                                int(env["BENCH_STEPS"]), env["BENCH_DISPATCH_MODE"],
                                float(env["BENCH_CONTINUATION_BUDGET"]))
    return app


if os.environ.get("BENCH_KIND"):  # a worker: `celery -A bench.app worker`
    app = from_env()

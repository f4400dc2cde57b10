"""Wiring a Durable instance into a Celery app: its tasks, queues, the tick in beat, the
embedded broker, and the worker and beat signals. Written out in one place, in order.

Installing is idempotent per (app, prefix): the signal handlers are connected under a
``dispatch_uid`` naming both, so installing twice leaves one handler per signal, and
``Installation.remove`` disconnects them again when the instance moves to another app.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from celery import Celery, signals
from celery.utils.dispatch import Signal
from kombu.entity import Queue

from durable_celery.errors import DatabaseUnavailable
from durable_celery.runtime import awaited, capture, poison, reported
from durable_celery.runtime.awaited import callback_names
from durable_celery.runtime.beat_service import TickService
from durable_celery.runtime.boot import WorkerBoot
from durable_celery.runtime.outage import claim_countdown
from durable_celery.runtime.poison import ENGINE_TASK_OPTIONS
from durable_celery.runtime.runner import Runner
from durable_celery.runtime.services import Services
from durable_celery.runtime.start_task import Start, install_start_task, start_task_name
from durable_celery.runtime.tick import tick as run_tick

log = logging.getLogger(__name__)
MAX_PRIORITY = 10


def task_names(prefix: str) -> tuple[str, str]:
    """(step task, tick task); the default prefix gives ``durable.step`` and ``durable.tick``."""
    base = "durable" if prefix == "durable" else f"durable.{prefix}"
    return f"{base}.step", f"{base}.tick"


def broker_configured(app: Celery) -> bool:
    return bool(app.conf.broker_url or os.environ.get("CELERY_BROKER_URL"))


def use_embedded_broker(app: Celery, data_dir: Path) -> None:
    """A kombu transport that needs no server: messages are files under ``data_dir``."""
    folder = (data_dir / "broker").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    app.conf.broker_url = "filesystem://"  # type: ignore[misc]  # settable (celery-types says read-only)
    control = (data_dir / "control").resolve()
    control.mkdir(parents=True, exist_ok=True)
    app.conf.broker_transport_options = {"data_folder_in": str(folder), "data_folder_out": str(folder),
                                         "control_folder": str(control), "store_processed": False}
    app.conf.worker_enable_remote_control = False


@dataclasses.dataclass(frozen=True)
class Installation:
    """What ``install`` put on one app: its two tasks, and the signal handlers (by signal and
    ``dispatch_uid``) that ``remove`` disconnects."""

    app: Celery
    step: Any
    tick: Any
    handlers: tuple[tuple[Signal, str], ...]

    def remove(self) -> None:
        """Disconnect the worker and beat handlers, so a worker or beat of this app no longer
        boots the engine. The tasks stay registered: Celery has no public way to withdraw one."""
        for signal, uid in self.handlers:
            signal.disconnect(dispatch_uid=uid)


def install(app: Celery, services: Services, runner: Runner, *, load: Callable[[], None],
            ensure_schema: Callable[[], None], queues: list[str],
            engine_queues: Callable[[], set[str]], start: Start | None = None) -> Installation:
    """Register the engine's tasks, queues and signals (worker boot, beat's tick) on ``app``.

    Idempotent per (app, prefix): a second call finds the tasks registered and the handlers
    connected, and adds neither (Celery keeps the first task of a name and the first handler of
    a ``dispatch_uid``). ``Durable`` never installs two instances with one prefix on one app.
    """
    settings = services.settings
    step_name, tick_name = task_names(settings.prefix)
    # One handler per signal per (app, prefix). id(app) is unique while the handler lives: the
    # handler holds the app (weak=False), so the app cannot be collected and its id reused.
    uid = f"durable-celery:{settings.prefix}:{id(app)}"

    # `durable_engine` (a task attribute) tells the engine's tasks apart in a signal handler.
    # `Strategy`: a malformed message is dropped with one log line, not a stopped worker.
    @app.task(name=step_name, ignore_result=True, bind=True, shared=False, durable_engine=True, **ENGINE_TASK_OPTIONS)
    def step(task: Any, *args: Any, **kwargs: Any) -> str:
        """Advance one execution by (at least) one step: ``(execution_id, seq, workflow=None,
        step=None, handoff=None)``, where workflow and step name them for Flower, and ``handoff``
        is the lease the previous checkpoint handed to this message. Taken as ``*args`` so that
        a malformed message is dropped with one log line (``runtime/poison.py``), not a traceback."""
        return poison.guarded(step_name, task.request.id, lambda: _advance(runner, task, args, kwargs))

    @app.task(name=tick_name, ignore_result=True, shared=False, durable_engine=True, **ENGINE_TASK_OPTIONS)
    def tick() -> dict[str, int]:
        """Fire what is due: recover lost workers, re-dispatch lost messages, time out executions.

        Not scheduled: beat runs the tick in its own process (see ``beat_service``). The task is
        kept for a tick by hand (``celery call``) or from cron where no beat can run."""
        return dataclasses.asdict(run_tick(services))

    done_name, failed_name = callback_names(settings.prefix)

    @app.task(name=done_name, ignore_result=True, shared=False, durable_engine=True, **ENGINE_TASK_OPTIONS)
    def task_done(result: Any, *, execution_id: str, entered_seq: int, idx: int, task_id: str) -> bool:
        """A task awaited by a step (``await_task``) returned: its link callback."""
        return awaited.task_done(services, result, execution_id, entered_seq, idx, task_id)

    @app.task(name=failed_name, ignore_result=True, shared=False, durable_engine=True, **ENGINE_TASK_OPTIONS)
    def task_failed(request_or_id: Any, exc: BaseException | None = None, traceback: Any = None, *,
                    execution_id: str, entered_seq: int, idx: int, task_id: str, queue: str,
                    error: dict[str, Any] | None = None) -> bool:
        """A task awaited by a step failed: its errback. Celery calls it in the failed task's own
        worker, with the exception, when this app is loaded there; that worker may serve no
        workflows, so it only forwards the error to the step's queue. Elsewhere Celery sends it
        there with the task id alone."""
        where: dict[str, Any] = {"execution_id": execution_id, "entered_seq": entered_seq, "idx": idx,
                                 "task_id": task_id}
        if error is None:
            error = awaited.failure_of(app, task_id, exc)
            if exc is not None and not app.conf.task_always_eager:
                app.send_task(failed_name, args=(task_id,), kwargs={**where, "queue": queue, "error": error},
                              queue=queue, serializer="json")
                return False
        return awaited.task_failed(services, error, **where)

    if start is not None:  # the start task of ``durable.signature``: a workflow in a chain of plain tasks
        install_start_task(app, start_task_name(settings.prefix), settings.queue, start)

    added = _declare_queues(app, queues)

    def prepare() -> None:
        load()
        ensure_schema()

    # The tick runs in beat's own process, never as a message to workers that may all be busy.
    ticker = TickService(services, prepare)

    @signals.beat_init.connect(weak=False, dispatch_uid=uid)
    def on_beat_init(sender: Any = None, **_: Any) -> None:
        if getattr(sender, "app", None) is app:
            ticker.start(sender)

    boot = WorkerBoot(added, engine_queues, load, ensure_schema)

    @signals.worker_init.connect(weak=False, dispatch_uid=uid)
    def on_worker_init(sender: Any = None, **_: Any) -> None:
        if getattr(sender, "app", None) is app:
            boot.on_worker_init(sender)

    return Installation(app, step, tick, ((signals.beat_init, uid), (signals.worker_init, uid)))


def _advance(runner: Runner, task: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """The step task's body, once its arguments are checked (``PoisonMessage`` if they are bad).
    A message met by an unreachable database is not dropped: Celery's ``retry`` puts a copy back
    on its queue, due shortly, and acks this one (runtime/outage.py)."""
    message = poison.step_message(args, kwargs)
    request = task.request
    delivery = request.delivery_info or {}
    settings = runner.services.settings
    try:
        with capture.limits(settings.log_capture_max_entries, settings.log_capture_max_chars):
            # a failed attempt is a retried or failed task in Celery's (and Flower's) eyes
            return reported.telling_celery(lambda: runner.run(message.execution_id, message.seq,
                                                              delivery.get("routing_key"), message.handoff,
                                                              bool(delivery.get("redelivered"))),
                                           eager=bool(request.is_eager)).value
    except DatabaseUnavailable as exc:
        if request.is_eager:
            raise
        raise task.retry(exc=exc, countdown=claim_countdown(request.retries), max_retries=None) from exc


def _declare_queues(app: Celery, names: list[str]) -> list[str]:
    """Declare the engine's queues with a max priority (RabbitMQ needs it at declaration),
    keeping the app's default queue and any queues it already declares; returns the names it
    added (workers without ``-Q`` do not consume them: see ``boot``)."""
    existing = list(app.conf.task_queues or [])
    if not existing:
        default = app.conf.task_default_queue or "celery"
        existing = [Queue(default, routing_key=default)]
    known = {q.name for q in existing}
    added = []
    for name in names:
        if name not in known:
            existing.append(Queue(name, routing_key=name, queue_arguments={"x-max-priority": MAX_PRIORITY}))
            known.add(name)
            added.append(name)
    app.conf.task_queues = existing
    return added

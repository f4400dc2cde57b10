"""Celery tasks awaited from a step (``await_task``): sending them with callbacks, and the two
engine tasks those callbacks are.

The awaited task runs on its own queue, on any worker that serves it (a plain Celery worker
without the engine is enough). Its result comes back as a Celery link callback: the worker that
ran it sends a message to the engine's ``task_done`` task, on the queue of the step that awaits
it, and that task records the result on the step's pending wait and wakes the execution. A
failure goes to ``task_failed`` the same way (Celery's errbacks). Nothing polls a result backend.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from celery.canvas import Signature, maybe_signature

from durable_celery import codec
from durable_celery.state.journal import resolve_task_txn

if TYPE_CHECKING:
    from durable_celery.runtime.services import Services
    from durable_celery.runtime.waiting import WaitHandle

log = logging.getLogger(__name__)


def callback_names(prefix: str) -> tuple[str, str]:
    """(task done, task failed); the default prefix gives ``durable.task_done`` and ``durable.task_failed``."""
    base = "durable" if prefix == "durable" else f"durable.{prefix}"
    return f"{base}.task_done", f"{base}.task_failed"


def sender(handle: WaitHandle, signature: Signature) -> Callable[[str, int], None]:
    """A function sending ``signature`` under a given task id, its result and failure linked
    back to the journal entry the step is about to record."""
    done, failed = callback_names(handle.services.settings.prefix)
    app = handle.services.dispatcher.app

    def send(task_id: str, idx: int) -> None:
        where = {"execution_id": handle.execution_id, "entered_seq": handle.entered_seq, "idx": idx,
                 "task_id": task_id}
        # Not declared by the sender (``declare=[]``): the worker that sends the callback may
        # belong to another app, which would declare the queue without the engine's arguments,
        # and RabbitMQ refuses a second declaration that differs. The engine declared it.
        route: dict[str, Any] = {"queue": handle.queue, "declare": []}
        on_done = app.signature(done, kwargs=where, serializer="json", **route)  # engine tasks take JSON only
        on_failure = app.signature(failed, kwargs={**where, "queue": handle.queue}, serializer="json", **route)
        sig = maybe_signature(signature.clone(), app=app)  # sent through the engine's app, not current_app
        assert sig is not None  # a signature in, a signature out
        sig.apply_async(task_id=task_id, link=on_done, link_error=on_failure)

    return send


def task_done(services: Services, result: Any, execution_id: str, entered_seq: int, idx: int, task_id: str) -> bool:
    """The awaited task returned ``result``: record it on the wait (once) and wake the step."""
    try:
        outcome: dict[str, Any] = {"value": codec.encode(result), "task_id": task_id}
    except codec.Unencodable as exc:
        outcome = {"task_id": task_id, "error": {
            "type": "ResultNotSerializable",
            "message": f"the task's result at {exc.path or 'its root'} holds a {exc.type_name}, which is not JSON",
            "step": None, "traceback": None}}
    return _resolve(services, execution_id, entered_seq, idx, outcome)


def task_failed(services: Services, error: dict[str, Any], execution_id: str, entered_seq: int, idx: int,
                task_id: str) -> bool:
    """The awaited task failed: record its error on the wait (once) and wake the step."""
    return _resolve(services, execution_id, entered_seq, idx, {"task_id": task_id, "error": error})


def failure_of(app: Any, task_id: str, exc: BaseException | None) -> dict[str, Any]:
    """The error dict of a failed task: from its exception when Celery handed it over (the
    errback ran in the task's worker), else from the app's result backend if it keeps results,
    else only that it failed."""
    if exc is None:
        try:
            if not app.conf.task_ignore_result and app.backend.__class__.__name__ != "DisabledBackend":
                stored = app.AsyncResult(task_id)
                if stored.failed() and isinstance(stored.result, BaseException):
                    exc = stored.result
        except Exception:  # noqa: BLE001 - the backend is a nicety here: the failure is known anyway
            log.debug("durable: no stored failure for task %s", task_id, exc_info=True)
    if exc is None:
        return {"type": None, "message": f"task {task_id} failed (its worker reported no exception to the engine)",
                "step": None, "traceback": None}
    return {"type": type(exc).__name__, "message": str(exc), "step": None, "traceback": None}


def _resolve(services: Services, execution_id: str, entered_seq: int, idx: int, outcome: dict[str, Any]) -> bool:
    with services.db.begin() as conn:
        settled, woken = resolve_task_txn(conn, execution_id, entered_seq, idx, outcome, services.clock.now())
    if woken is not None:
        services.dispatcher.publish([woken])
    if not settled:
        log.info("durable: a result for task %s of %s came after its wait was over (duplicate or late); ignored",
                 outcome["task_id"], execution_id)
    return settled

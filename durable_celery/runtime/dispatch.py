"""Publishing the Celery messages that nudge executions forward. A message carries only the
execution id and its ``seq``; Postgres holds everything else. Task name and arguments name the
workflow and step, so Flower shows what each task is."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Optional

from celery import Celery

from durable_celery.engine.values import Message

log = logging.getLogger(__name__)

MAX_PRIORITY = 9


QueueFor = Callable[[str, Optional[str], str], str]  # evaluated at runtime: no ``|`` on 3.9


class Dispatcher:
    """Publishes step messages. ``queue_for(workflow, state, execution_queue)`` picks the Celery
    queue of the state a row stands on (a step's own queue, else the execution's)."""

    def __init__(self, app: Celery, step_task_name: str, queue_for: QueueFor) -> None:
        self._app = app
        self._task_name = step_task_name
        self._queue_for = queue_for
        self._invert_priority: bool | None = None

    def broker_priority(self, priority: int) -> int:
        """The message priority for the broker in use, from an API priority (0..9, higher first)."""
        # API priority: higher = more important (0..9). RabbitMQ agrees; kombu's Redis transport
        # serves lower numbers first, so it is inverted there.
        if self._invert_priority is None:
            self._invert_priority = self._app.conf.broker_url is not None and str(
                self._app.conf.broker_url).startswith(("redis", "rediss", "sentinel"))
        clamped = max(0, min(MAX_PRIORITY, priority))
        return MAX_PRIORITY - clamped if self._invert_priority else clamped

    def send(self, execution_id: str, seq: int, *, workflow: str, step: str | None, queue: str, priority: int,
             countdown: float | None = None) -> None:
        """Publish one step message. A failure is logged, not raised: the row is already
        committed as runnable, and the tick re-dispatches it."""
        options: dict[str, Any] = {"queue": queue, "routing_key": queue, "priority": self.broker_priority(priority)}
        if countdown:
            options["countdown"] = countdown
        try:
            self._app.send_task(self._task_name, args=(execution_id, seq),
                                kwargs={"workflow": workflow, "step": step}, **options)
        except Exception:
            log.warning("durable: publishing execution %s seq %s failed; the tick will re-dispatch it",
                        execution_id, seq, exc_info=True)

    def publish(self, rows: Iterable[Mapping[Any, Any]], countdown: float | None = None) -> None:
        """Publish a message for each execution row (id, seq, workflow, current_node, queue,
        priority), on the queue of the state it stands on."""
        for row in rows:
            queue = self._queue_for(row["workflow"], row["current_node"], row["queue"])
            self.send(row["id"], row["seq"], workflow=row["workflow"], step=row["current_node"], queue=queue,
                      priority=row["priority"], countdown=countdown)

    def send_all(self, messages: Iterable[Message]) -> None:
        """Publish messages the engine decided (their queue is already the state's own)."""
        for m in messages:
            self.send(m.execution_id, m.seq, workflow=m.workflow, step=m.step, queue=m.queue, priority=m.priority,
                      countdown=m.countdown)

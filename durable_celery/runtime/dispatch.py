"""Publishing the Celery messages that nudge executions forward. A message carries only the
execution id and its ``seq``; Postgres holds everything else. Task name and arguments name the
workflow and step, so Flower shows what each task is.

In Celery's eager mode (``task_always_eager``) nothing is published: each message runs the step
task in this process instead (:class:`EagerQueue`)."""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, Optional

from celery import Celery
from kombu.utils.uuid import uuid

from durable_celery.engine.values import Message, Snapshot

log = logging.getLogger(__name__)

MAX_PRIORITY = 9


QueueFor = Callable[[str, Optional[str], str, Optional[str]], str]  # evaluated at runtime: no ``|`` on 3.9


class Dispatcher:
    """Publishes step messages. ``queue_for(workflow, state, execution_queue)`` picks the Celery
    queue of the state a row stands on (a step's own queue, else the execution's)."""

    def __init__(self, app: Celery, step_task_name: str, queue_for: QueueFor,
                 on_unsent: Callable[[Sequence[Message]], None] | None = None) -> None:
        self._app = app
        self._on_unsent = on_unsent
        self._task_name = step_task_name
        self._queue_for = queue_for
        self._invert_priority: bool | None = None
        self._eager = EagerQueue(app, step_task_name)

    @property
    def app(self) -> Celery:
        """The Celery app messages are published through."""
        return self._app

    @property
    def eager(self) -> bool:
        """Celery's eager mode: read at each call, since tests switch it on after the app is built."""
        return bool(self._app.conf.task_always_eager)

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
        """Publish one step message (see :meth:`send_many`)."""
        self.send_many([Message(execution_id, seq, workflow, step, queue, priority, countdown)])

    def send_many(self, messages: Sequence[Message], handed: Mapping[str, Snapshot] | None = None) -> None:
        """Publish step messages, through one producer and, on a transport that can (kombu
        5.7's ``Producer.batch``: Redis), pipelined ``PUBLISH_BATCH`` at a time. A message that
        carries a lease (``Message.handoff``) carries the execution it leases too, from
        ``handed`` (by execution id): the task that receives it runs without a claim (see
        ``runtime/handoff.py``).

        Celery's ``send_task`` spends most of a publish on what is the same for every message
        here (routing, the task's options, the queue's declaration, a safe repr of the
        arguments, an ``AsyncResult``). This builds each message with Celery's own
        ``amqp.create_task_message`` and publishes it with ``amqp.send_task_message``
        (``before_task_publish``/``after_task_publish`` and sent events as usual), with those
        worked out once. ``tests/test_start_many.py`` checks the two publish the same message.

        A failure stops the rest (and may lose the batch in flight), logged, not raised: their
        rows are committed as runnable (or leased to their messages: the tick takes the leases
        back), and the tick re-dispatches them. The messages not known to be sent go to
        ``on_unsent``, which marks their rows so the tick sends them again at once (see
        ``runtime/broker.py``). In eager mode the step tasks run here once all
        are queued (see :meth:`held`)."""
        if self.eager:
            with self.held():
                for m in messages:
                    self._eager.put(m)
            return
        sent = 0
        batching = False
        amqp = self._app.amqp
        conf = self._app.conf
        name = self._task_name
        # as send_task links a message sent from inside a task to that task
        parent = self._app.current_worker_task
        root_id = (parent.request.root_id or parent.request.id) if parent else None
        parent_id = parent.request.id if parent else None
        try:
            with self._app.producer_or_acquire() as producer, _batch(producer, len(messages)) as batch:
                # In a batch a publish only buffers (the flush writes, and is not retried):
                # Celery's publish retry would wrap nothing but that buffering.
                batching = batch is not None
                retry = False if batching else None
                declared: set[str] = set()
                for m in messages:
                    args = (m.execution_id, m.seq)
                    kwargs: dict[str, Any] = {"workflow": m.workflow, "step": m.step}
                    # What Flower and the task events show: the workflow and step, never the
                    # handed-over execution (and no saferepr of it to compute)
                    shown = repr(kwargs)
                    if m.handoff is not None and handed is not None and m.execution_id in handed:
                        kwargs["handoff"] = handoff_payload(m, handed[m.execution_id])
                    message = amqp.create_task_message(
                        uuid(), name, args, kwargs, countdown=m.countdown or None, reply_to=self._app.thread_oid,
                        create_sent_event=conf.task_send_sent_event, root_id=root_id, parent_id=parent_id,
                        ignore_result=None, argsrepr=repr(args), kwargsrepr=shown,
                        # the name worker logs, task events and Flower show: which workflow and step
                        shadow=f"{m.workflow}.{m.step}" if m.step else m.workflow)
                    # declared once per queue and batch, and not at all once the connection has
                    # declared it (kombu's cache, which Celery's own lookup reaches only after
                    # copying the queue, at every message)
                    declare: list[Any] | None = [] if m.queue in declared or _declared(producer, amqp, m.queue) \
                        else None
                    declared.add(m.queue)
                    amqp.send_task_message(producer, name, message, queue=m.queue, routing_key=m.queue,
                                           priority=self.broker_priority(m.priority), declare=declare, retry=retry,
                                           serializer="json")  # the engine's tasks take JSON only
                    sent += 1
        except Exception:
            log.warning("durable: publishing %d messages failed after %d (the batch in flight may be lost); "
                        "the tick will re-dispatch them", len(messages), sent, exc_info=True)
            if self._on_unsent is not None:
                # a batch buffers what it "sends": none of it is known to have left
                self._on_unsent(messages if batching else messages[sent:])

    def publish(self, rows: Iterable[Mapping[Any, Any]], countdown: float | None = None) -> None:
        """Publish a message for each execution row (id, seq, workflow, current_node, queue,
        priority), on the queue of the state it stands on."""
        messages = [Message(row["id"], row["seq"], row["workflow"], row["current_node"],
                            self._queue_for(row["workflow"], row["current_node"], row["queue"], row.get("version")),
                            row["priority"],
                            countdown) for row in rows]
        if messages:
            self.send_many(messages)

    def send_all(self, messages: Sequence[Message], handed: Snapshot | None = None) -> None:
        """Publish messages the engine decided (their queue is already the state's own). A
        message that carries a lease carries ``handed``, the execution as its checkpoint left it."""
        if messages:
            self.send_many(messages, {handed.id: handed} if handed is not None else None)

    def held(self) -> AbstractContextManager[None]:
        """In eager mode, the messages sent inside the block run when the outermost block ends
        (the tick publishes all it found before any of it runs); otherwise nothing changes."""
        return self._eager.held()


def handoff_payload(message: Message, handed: Snapshot) -> dict[str, Any]:
    """The lease a message carries: its token, when it expires (a POSIX timestamp) and the
    execution it leases, so the receiving task needs no claim (``Runner.run``)."""
    assert message.handoff is not None and message.handoff_until is not None
    return {"token": message.handoff, "until": message.handoff_until.timestamp(), "snapshot": handed.to_wire()}


def _declared(producer: Any, amqp: Any, queue: str) -> bool:
    """Whether the producer's connection has declared ``queue`` already: kombu keeps the
    entities a connection declared (``Connection.declared_entities``, emptied when it
    reconnects) by their hash, as ``maybe_declare`` looks them up."""
    entities: set[int] | None = getattr(producer.connection, "declared_entities", None)
    known = amqp.queues.get(queue)
    return entities is not None and known is not None and hash(known) in entities


#: Messages pipelined per round trip by ``send_many`` (where the transport supports it).
PUBLISH_BATCH = 1000


def _batch(producer: Any, size: int) -> AbstractContextManager[Any]:
    """kombu's publish batch on this producer for ``size`` messages, where kombu has one (5.7
    and newer) and there is more than one message; else nothing."""
    batch = getattr(producer, "batch", None)
    return batch(max_size=PUBLISH_BATCH) if batch is not None and size > 1 else nullcontext()


class _Pending(threading.local):
    """One thread's messages waiting to run, and how deep it is in drains and held blocks."""

    def __init__(self) -> None:
        self.deliveries: deque[Message] = deque()
        self.depth = 0


class EagerQueue:
    """Step messages in Celery's eager mode. Celery's ``send_task`` ignores ``task_always_eager``
    (it warns and publishes), so the dispatcher runs the step task itself, through ``Task.apply``:
    the same task and runner as on a worker (claim, decide, checkpoint), so the same history is
    recorded, and Celery's eager settings (``task_eager_propagates``) and task signals apply.

    A step run here sends messages in turn (the next step, a parallel branch, a woken parent).
    They are not run inside the send: each thread queues them in a deque, and only the outermost
    send runs the queue, in the order sent, until it is empty. The stack never grows with the
    workflow, and the call that sent the first message (``start``, ``send_event``, ``cancel``)
    returns once everything it set in motion has ended or reached a wait.

    A countdown is not waited for, as in Celery's eager ``apply_async``; nothing needs one here:
    in eager mode a retry is decided due at once (``Policy.skip_backoff``), as Celery's eager
    retries run at once, and the runner does not re-publish an early message. What is scheduled
    for later (sleeps, wait timeouts, scheduled starts, workflow timeouts) is not a message: it
    waits in the database for the tick, which a test runs with ``Durable.run_due`` or
    ``Durable.advance_time``.

    A drain cut short by an exception (``task_eager_propagates``) drops the messages it had not
    run: their rows are committed as runnable, and the tick re-dispatches them like lost publishes.
    """

    def __init__(self, app: Celery, step_task_name: str) -> None:
        self._app = app
        self._task_name = step_task_name
        self._pending = _Pending()

    def put(self, delivery: Message) -> None:
        self._pending.deliveries.append(delivery)
        if self._pending.depth == 0:
            self._drain()

    @contextmanager
    def held(self) -> Iterator[None]:
        pending = self._pending
        pending.depth += 1
        try:
            yield
        except BaseException:
            pending.deliveries.clear()
            raise
        finally:
            pending.depth -= 1
        if pending.depth == 0:
            self._drain()

    def _drain(self) -> None:
        pending = self._pending
        task = self._app.tasks[self._task_name]
        pending.depth += 1
        try:
            while pending.deliveries:
                d = pending.deliveries.popleft()
                # Task.apply takes the delivery options as **options (celery-types omits them)
                task.apply(args=(d.execution_id, d.seq), kwargs={"workflow": d.workflow, "step": d.step},
                           queue=d.queue, routing_key=d.queue, priority=d.priority)  # type: ignore[call-arg]
        except BaseException:
            pending.deliveries.clear()
            raise
        finally:
            pending.depth -= 1

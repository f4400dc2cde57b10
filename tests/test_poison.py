"""Poison messages to the engine's step task, published raw with kombu on Redis and RabbitMQ:
each is dropped (acknowledged, never redelivered) with exactly one log line naming the message
id and the reason, and the same worker process goes on running workflows."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from amqp.exceptions import ChannelError

from tests.conftest import Project

Factory = Callable[..., Project]


def publish(p: Project, body: Any, *, task: str | None = None, content_type: str = "application/json",
            **headers_update: Any) -> str:
    """Publish one message to the project's engine queue as Celery's protocol 2 would, but with
    ``body`` as given (bytes are sent as they are); returns its id."""
    message_id = str(uuid.uuid4())
    headers = {"lang": "py", "task": task or p.durable.step_task_name, "id": message_id, "root_id": message_id,
               "parent_id": None, "group": None, "retries": 0, "eta": None, "expires": None,
               "timelimit": [None, None], "argsrepr": "", "kwargsrepr": "", "origin": "test_poison"}
    headers = {key: value for key, value in {**headers, **headers_update}.items() if value is not ...}
    queue = p.app.amqp.queues[p.queue]
    with p.app.connection_for_write() as conn:
        producer = conn.Producer()
        options: dict[str, Any] = {"content_type": content_type, "content_encoding": "utf-8"}
        if not isinstance(body, bytes):
            options = {"serializer": "json"}
        producer.publish(body, exchange=queue.exchange, routing_key=queue.routing_key, declare=[queue],
                         headers=headers, correlation_id=message_id, **options)
    return message_id


#: a part of the reason each poison message is logged with
REASONS = {
    "undecodable body": "the body cannot be decoded",
    "not a task message": "the body is not [args, kwargs, embed] but a str",
    "no id header": "the message has no id",
    "a malformed timelimit": "a malformed timelimit header",
    "missing arguments": "missing a required argument: 'execution_id'",
    "missing seq": "missing a required argument: 'seq'",
    "unknown argument": "got an unexpected keyword argument 'colour'",
    "too many arguments": "too many positional arguments",
    "execution_id of a wrong type": "bad execution_id: an execution id is a string, got int",
    "execution_id not an id": "is not an execution id",
    "seq of a wrong type": "bad seq",
    "seq negative": "bad seq",
    "seq beyond any": "bad seq",
    "handoff of a wrong type": "bad handoff",
    "no such execution": "(deleted, or never started)",
    "seq far in the future": "seq 1000000 is ahead of execution",
}


def queued(p: Project) -> int:
    with p.app.connection_for_write() as conn:
        try:
            _, count, _ = conn.default_channel.queue_declare(p.queue, passive=True)
        except ChannelError:  # Redis: a queue with no message has no key
            return 0
    return int(count)


def step_body(*args: Any, **kwargs: Any) -> list[Any]:
    return [list(args), kwargs, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]


def problem_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if re.search(r"\b(WARNING|ERROR|CRITICAL)\b", line)]


@pytest.mark.parametrize("broker", ["redis", "amqp"])
def test_poison_messages_are_dropped_with_one_log_line_and_the_worker_goes_on(project_factory: Factory,
                                                                             broker: str) -> None:
    p = project_factory(broker)
    worker = p.worker(concurrency=1)
    pid = worker.pid
    done = p.wait(p.durable.start("pipeline", {}))  # an execution that exists, at seq 3
    assert done.status == "completed"
    real = done.id
    # Given messages that can never be handled, each published once
    poisons = {
        "undecodable body": publish(p, b"{this is not json", content_type="application/json"),
        "not a task message": publish(p, b'"just a string"'),
        "no id header": publish(p, step_body(real, 3), id=...),
        "a malformed timelimit": publish(p, step_body(real, 3), timelimit="soon"),
        "missing arguments": publish(p, step_body()),
        "missing seq": publish(p, step_body(real)),
        "unknown argument": publish(p, step_body(real, 3, colour="red")),
        "too many arguments": publish(p, step_body(real, 3, "pipeline", "first", None, "extra")),
        "execution_id of a wrong type": publish(p, step_body(42, 3)),
        "execution_id not an id": publish(p, step_body("'; DROP TABLE x; --", 3)),
        "seq of a wrong type": publish(p, step_body(real, "three")),
        "seq negative": publish(p, step_body(real, -1)),
        "handoff of a wrong type": publish(p, step_body(real, 3, handoff=[1, 2])),
        "no such execution": publish(p, step_body(str(uuid.uuid4()), 0)),
        "seq far in the future": publish(p, step_body(real, 1_000_000)),
        "seq beyond any": publish(p, step_body(real, 10**12)),
    }
    # And a workflow started after them
    after = p.durable.start("pipeline", {})
    # Then the worker runs it to its end: same process, nothing wedged
    assert p.wait(after, timeout=30).status == "completed"
    time.sleep(1)
    assert worker.alive() and worker.pid == pid
    log = worker.log()
    lines = problem_lines(log)
    # And each poison message left exactly one warning or error line, naming its id and the reason
    for what, message_id in poisons.items():
        mine = [line for line in lines if message_id in line]
        assert len(mine) == 1, f"{what}: {mine}"
        assert "durable: dropped message" in mine[0], f"{what}: {mine[0]}"
        assert REASONS[what] in mine[0], f"{what}: {mine[0]}"
    assert "Traceback" not in log, log[-3000:]
    assert "Unrecoverable error" not in log
    # And every one was acknowledged: a warm shutdown restores nothing, and the queue is empty
    worker.stop()
    assert "Restoring" not in worker.log()
    assert queued(p) == 0
    # And the real execution was not touched
    assert p.sql("SELECT seq, status FROM {schema}.workflow_executions WHERE id = :id", id=real)[0] == (3, "completed")

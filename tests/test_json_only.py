"""JSON only (issue 16): the engine's tasks refuse a pickle message, unread, even on an app that
accepts (and sends) pickle for its own tasks; the worker goes on, and the engine's own messages
are JSON whatever the app's ``task_serializer``."""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from tests.conftest import BROKERS, Project

Factory = Callable[..., Project]


class Touch:
    """Unpickling this creates ``path``: proof that a payload was unpickled (pickle runs code)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (Path(self.path),))


def test_a_pickle_message_to_an_engine_task_is_refused_unread_and_the_worker_goes_on(
        project_factory: Factory) -> None:
    # Given an app that accepts and sends pickle for its own tasks, and its worker
    p = project_factory(accept_pickle=True)
    worker = p.worker(env={"C_FORCE_ROOT": "1"})  # Celery refuses pickle as root without it (CI runs as root)
    marker = Path(tempfile.mkdtemp(prefix="durable-pickle-")) / "unpickled"
    evil = Touch(str(marker))
    # When a pickle message reaches each engine task on the engine's queue
    engine_tasks = (p.durable.step_task_name, p.durable.tick_task_name, p.durable.start_task_name)
    for name in engine_tasks:
        p.app.send_task(name, args=(evil, 0), kwargs={"workflow": evil}, queue=p.queue, serializer="pickle")
    # and a pickle message reaches a task of the app's own, on the same worker
    key = f"pickle-{uuid.uuid4().hex}"
    p.app.send_task("proj.add_up", args=(key, 2, 3), queue=p.queue, serializer="pickle")
    # Then the app's own task ran (pickle is accepted for it)
    client = redis.Redis.from_url(BROKERS["redis"])
    deadline = time.monotonic() + 30
    while client.lrange(key, 0, -1) == [] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert client.lrange(key, 0, -1) == [b"5"]
    client.delete(key)
    # and a workflow started now runs to its end on the same worker: the engine's messages are
    # JSON although the app's task_serializer is pickle, and the worker went on
    execution = p.wait(p.durable.start("pipeline", {"n": 2}))
    assert execution.status == "completed", execution.error
    # but no engine task read the pickle payloads: nothing was unpickled, each was refused
    log = worker.log()
    assert not marker.exists()
    for name in engine_tasks:
        assert f"{name} takes JSON messages only" in log, log[-3000:]
    assert worker.alive()
    os.rmdir(marker.parent)

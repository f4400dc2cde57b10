"""Which queues live workers consume, asked of them through Celery's remote control."""

from __future__ import annotations

from celery import Celery

#: how long to wait for workers' replies (seconds)
INSPECT_TIMEOUT = 1.0


def live_queues(app: Celery, timeout: float = INSPECT_TIMEOUT) -> dict[str, list[str]]:
    """Queue name -> the workers consuming it, from ``inspect().active_queues()``. Workers
    started with ``worker_enable_remote_control=False`` don't answer, and count as absent."""
    replies = app.control.inspect(timeout=timeout).active_queues() or {}
    consumers: dict[str, list[str]] = {}
    for worker, queues in replies.items():
        for queue in queues or []:
            consumers.setdefault(str(queue.get("name")), []).append(worker)
    return consumers

"""Controlled queues on the embedded default (SQLite state) in Celery's eager mode: the limited
claim and pause work there too, with SQLite's write lock in place of the queue row's lock."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from celery import Celery

from durable_celery import Durable, Workflow

noted = Workflow("embedded_noted")


@noted.step
def note(ctx: dict[str, Any]) -> dict[str, Any]:
    return {**ctx, "noted": True}


def test_limits_and_pause_work_on_the_embedded_sqlite_state(tmp_path: Path) -> None:
    app = Celery(f"embedded-{uuid.uuid4().hex[:8]}")
    durable = Durable(app, workflows=[noted], data_dir=tmp_path, queues={"durable": {"concurrency": 1, "rate": "50/s"}})
    app.conf.task_always_eager = True
    try:
        assert durable.settings.database_url.startswith("sqlite")
        # A step on a limited queue runs
        first = durable.start(noted, {"n": 1})
        assert durable.get_execution(first).status == "completed"
        # A paused queue starts nothing: the execution waits in the database
        durable.pause_queue("durable")
        second = durable.start(noted, {"n": 2})
        stats = durable.queue_stats("durable")
        assert durable.get_execution(second).status == "pending"
        assert stats.paused and stats.waiting == 1 and stats.running == 0 and stats.rate_used == 1, stats
        # And resume runs what waited
        durable.resume_queue("durable")
        assert durable.get_execution(second).status == "completed"
        assert durable.queue_stats("durable").rate_used == 2
    finally:
        durable.db.dispose()

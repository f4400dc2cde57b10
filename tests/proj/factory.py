"""Builds the test project's Celery app and Durable engine from explicit settings; the worker
side (``tests.proj.app``) builds the same from the environment the test passes it."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

from celery import Celery

from durable_celery import Durable
from durable_celery.clock import SystemClock

#: The test project's workflow modules: workflows.py plus one ``wf_<topic>.py`` per feature area.
WORKFLOW_MODULES = ["tests.proj.workflows", *sorted(
    f"tests.proj.{p.stem}" for p in Path(__file__).resolve().parent.glob("wf_*.py"))]

SETTING_KEYS = ("stale_lock_timeout", "heartbeat_interval", "tick_interval", "dispatch_mode",
                "redispatch_after", "continuation_budget", "max_countdown", "max_lost_leases",
                "log_capture_max_entries", "log_capture_max_chars", "max_context_bytes")
#: settings passed through as text or as ints
TEXT_KEYS = ("dispatch_mode", "schedule_catch_up")
INT_KEYS = ("max_lost_leases", "schedule_max_failures", "log_capture_max_entries", "log_capture_max_chars",
            "max_context_bytes")
SCHEDULE_KEYS = ("schedule_catch_up", "schedule_misfire_grace", "schedule_max_failures")


def make(broker: str, database_url: str, prefix: str, queue: str, **settings: Any) -> tuple[Celery, Durable]:
    app = Celery(f"proj-{prefix}", broker=broker)
    app.conf.update(
        broker_connection_retry_on_startup=True,
        task_default_queue=f"{queue}-default",
        worker_hijack_root_logger=False,
        broker_transport_options={"visibility_timeout": 3600},
    )
    @app.task(name="proj.add_up", shared=False)
    def add_up(key: str, x: int, y: int) -> None:
        """A plain Celery task of the project, beside the workflows: it records its result in Redis."""
        import redis

        redis.Redis.from_url(os.environ.get("DURABLE_TEST_REDIS", "redis://127.0.0.1:6379/5")).rpush(key, x + y)

    # accept_pickle: an app that takes (and sends) pickle for its own tasks (tests/test_json_only.py)
    if settings.pop("accept_pickle", False):
        app.conf.update(accept_content=["json", "pickle"], task_serializer="pickle")
    # queue_limits: flow control of the project's own queue (``queues={queue: queue_limits}``)
    limits = settings.pop("queue_limits", None)
    if limits is not None:
        settings["queues"] = {queue: limits}
    # workflows: more workflow modules, e.g. one definition of a workflow per deploy (tests/test_versions.py)
    modules = [*WORKFLOW_MODULES, *settings.pop("workflows", ())]
    durable = Durable(app, database_url=database_url, workflows=modules, queue=queue, prefix=prefix, **settings)
    return app, durable


def env_for(broker: str, database_url: str, prefix: str, queue: str, **settings: Any) -> dict[str, str]:
    env = {"DT_BROKER": broker, "DT_DB": database_url, "DT_PREFIX": prefix, "DT_QUEUE": queue}
    env.update({f"DT_{k.upper()}": json.dumps(v) if isinstance(v, (dict, list)) else str(v)
                for k, v in settings.items()})
    return env


def from_env() -> tuple[Celery, Durable]:
    settings: dict[str, Any] = {}
    for key in (*SETTING_KEYS, *SCHEDULE_KEYS):
        value = os.environ.get(f"DT_{key.upper()}")
        if value is not None:
            settings[key] = value if key in TEXT_KEYS else int(value) if key in INT_KEYS else float(value)
    modules = os.environ.get("DT_WORKFLOWS")
    if modules is not None:
        settings["workflows"] = json.loads(modules)
    limits = os.environ.get("DT_QUEUE_LIMITS")
    if limits is not None:
        settings["queue_limits"] = json.loads(limits)
    skew = os.environ.get("DT_CLOCK_SKEW")
    if skew is not None:  # this process's engine clock runs that many seconds ahead (negative: behind)
        clock = SystemClock()
        clock.advance(timedelta(seconds=float(skew)))
        settings["clock"] = clock
    if os.environ.get("DT_ACCEPT_PICKLE") == "True":
        settings["accept_pickle"] = True
    return make(os.environ["DT_BROKER"], os.environ["DT_DB"], os.environ["DT_PREFIX"], os.environ["DT_QUEUE"],
                **settings)

"""An app on the embedded default (SQLite state and a file broker in ``$DURABLE_DATA_DIR``), for
the worker of ``tests/test_start_many.py``'s embedded test: ``celery -A tests.proj.embedded_app worker``."""

from __future__ import annotations

from typing import Any

from celery import Celery

from durable_celery import Durable, Workflow

doubled = Workflow("embedded_doubled")


@doubled.step
def double(ctx: dict[str, Any]) -> dict[str, Any]:
    return {**ctx, "n": ctx["n"] * 2}


app = Celery("embedded-starts")
durable = Durable(app, workflows=[doubled])

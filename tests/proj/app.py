"""The test project's Celery app, as workers load it: ``celery -A tests.proj.app worker``."""

import os

from tests.proj.factory import from_env

if os.environ.get("DT_SPANS"):  # OpenTelemetry in the worker processes (tests/test_tracing.py)
    from tests.proj import tracing  # noqa: F401

app, durable = from_env()

"""The test project's Celery app, as workers load it: ``celery -A tests.proj.app worker``."""

from tests.proj.factory import from_env

app, durable = from_env()

"""The app a plain worker of the test project loads (``celery -A tests.proj.plain_app worker``):
the project's app, with its legacy tasks imported, as a project's own ``celery.py`` would."""

from tests.proj import legacy_tasks  # noqa: F401 - registers the project's plain tasks
from tests.proj.app import app, durable

__all__ = ["app", "durable"]

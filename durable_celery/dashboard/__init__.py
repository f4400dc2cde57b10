"""A web dashboard for durable workflows: watch, steer and answer them in the browser
(docs/dashboard.md). ``celery -A proj durable dashboard`` serves it; ``Dashboard(durable,
auth=...).wsgi()`` / ``.asgi()`` or ``mount(...)`` put it inside an existing web app.

Needs the ``dashboard`` extra (Jinja2): ``pip install 'durable-celery[dashboard]'``.
"""

from durable_celery.dashboard import pages as _pages  # noqa: F401 - registers the routes
from durable_celery.dashboard.app import Dashboard
from durable_celery.dashboard.http import Request, Response
from durable_celery.dashboard.mount import mount
from durable_celery.dashboard.security import HOST_AUTH

__all__ = ["Dashboard", "HOST_AUTH", "Request", "Response", "mount"]

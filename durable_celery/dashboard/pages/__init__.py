"""The dashboard's pages; importing this package registers their routes."""

from durable_celery.dashboard.pages import assets, executions, live, overview  # noqa: F401

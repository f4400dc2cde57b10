"""The dashboard's pages; importing this package registers their routes."""

from durable_celery.dashboard.pages import assets, detail, executions, live, overview  # noqa: F401

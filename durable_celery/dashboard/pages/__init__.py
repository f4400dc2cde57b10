"""The dashboard's pages; importing this package registers their routes."""

from durable_celery.dashboard.pages import assets, detail, executions, inbox, live, overview, schedules  # noqa: F401

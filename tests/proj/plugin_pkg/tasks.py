"""The plugin's Celery tasks; the host's plugin loader calls ``setup(app)``."""

from __future__ import annotations

from celery import Celery


def setup(app: Celery) -> None:
    @app.task(name="plugin_pkg.ping", shared=False)
    def ping() -> str:
        return "pong"

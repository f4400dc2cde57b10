"""The plugin's workflows, found by ``durable.autodiscover_workflows()``."""

from __future__ import annotations

import os

from durable_celery import Workflow

plugin_greeting = Workflow("plugin_greeting")


@plugin_greeting.step
def greet(ctx):
    return {**ctx, "greeting": f"hello {ctx['name']}", "pid": os.getpid()}

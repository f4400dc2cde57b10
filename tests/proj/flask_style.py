"""A project built the app-factory way (Flask's pattern): a module-level ``Durable`` without
an app, attached by ``create_app()``, which a test suite may call once per test module.

Workflows come from plugins: ``plugin_pkg`` registers Celery tasks on the app and keeps its
workflows next to them (found by ``autodiscover_workflows()``); ``loose-plugins/stamp.py`` is
loaded from its file and handed over by a callable in ``workflows=``. Workers run
``tests.proj.flask_app``, which builds all this from the environment.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from celery import Celery

from durable_celery import Durable

PLUGINS = ["tests.proj.plugin_pkg"]
LOOSE_PLUGIN = Path(__file__).resolve().parent / "loose-plugins" / "stamp.py"


def load_loose_plugins() -> list[ModuleType]:
    """What a plugin loader hands over: modules loaded from files, not importable by name."""
    name = "durable_test_loose_stamp"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, LOOSE_PLUGIN)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return [sys.modules[name]]


def make_durable(database_url: str, prefix: str, queue: str) -> Durable:
    """The project's module-level instance: no app yet."""
    durable = Durable(database_url=database_url, workflows=load_loose_plugins, queue=queue, prefix=prefix,
                      stale_lock_timeout=3, heartbeat_interval=0.5, tick_interval=0.5, redispatch_after=2)
    durable.autodiscover_workflows()  # next to the modules the app's tasks come from
    return durable


def create_app(durable: Durable, broker: str, queue: str) -> Celery:
    """The app factory: a new Celery app, its plugins' tasks, and the engine attached to it."""
    app = Celery("flask-style", broker=broker)
    app.conf.update(broker_connection_retry_on_startup=True, task_default_queue=f"{queue}-default",
                    worker_hijack_root_logger=False, broker_transport_options={"visibility_timeout": 3600})
    for plugin in PLUGINS:
        importlib.import_module(f"{plugin}.tasks").setup(app)
    durable.init_app(app)
    return app

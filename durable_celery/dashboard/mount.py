"""``mount(host_app, durable, path=..., auth=...)``: the dashboard inside an existing web app,
in one call (docs/dashboard.md).

* **Starlette / FastAPI** (ASGI): ``host_app.mount(path, dashboard.asgi())``. Starlette's mount
  puts the prefix in the scope's ``root_path``, which the dashboard builds its links on.
* **Flask** (WSGI): werkzeug's ``DispatcherMiddleware`` in front of ``host_app.wsgi_app``, so
  requests under ``path`` reach the dashboard with the prefix in ``SCRIPT_NAME`` and never go
  through Flask's routing, sessions or CSRF extensions.
* **Django**: its URLconf includes the dashboard instead
  (``durable_celery.contrib.django.dashboard.dashboard_urls``).

``auth`` has no default: a mount is never silently open to whoever reaches the host app.
"""

from __future__ import annotations

import re
import sys
from typing import TYPE_CHECKING, Any

from durable_celery.dashboard.app import Dashboard
from durable_celery.dashboard.security import AuthSpec

if TYPE_CHECKING:
    from durable_celery.durable import Durable

#: a mount point: one or more ``/segment`` of URL-safe characters, no trailing slash
_PATH = re.compile(r"(/[A-Za-z0-9._~-]+)+")

SUPPORTED = ("a Starlette or FastAPI app (ASGI) or a Flask app (WSGI); in Django include "
             "durable_celery.contrib.django.dashboard.dashboard_urls() in your URLconf; anywhere else serve "
             "Dashboard(durable, auth=...).wsgi() or .asgi() under the path yourself")


def mount(host_app: Any, durable: Durable, *, path: str = "/durable", auth: AuthSpec,
          title: str = "durable-celery") -> Dashboard:
    """Serve the dashboard of ``durable`` under ``path`` of ``host_app``.

    Args:
        host_app: a ``starlette.applications.Starlette`` (``fastapi.FastAPI`` is one) or a
            ``flask.Flask``.
        durable: the engine whose executions the dashboard shows and acts on.
        path: where it answers (``/durable``: ``/durable/``, ``/durable/executions``, ...).
        auth: who may use it, required: a token of 16 or more characters, a callable
            ``(Request) -> bool`` (``request.native`` is the ASGI scope or the WSGI environ, to
            ask the host app who is signed in), or ``HOST_AUTH`` when the host app's own
            middleware authenticates every request under ``path`` before it gets there.
        title: shown in the dashboard's header and the browser tab.

    Returns:
        The mounted ``Dashboard``.

    Raises:
        TypeError: ``host_app`` is none of the supported apps, or ``auth`` is not one of the above.
        ValueError: ``path`` is not a path like ``/durable``, or the token is too short.
    """
    if not isinstance(path, str) or not _PATH.fullmatch(path):
        raise ValueError(f"path must look like '/durable' (a leading slash, no trailing one), got {path!r}")
    asgi = _is_instance(host_app, "starlette.applications", "Starlette")
    if not asgi and not _is_instance(host_app, "flask.app", "Flask"):
        raise TypeError(f"cannot mount the dashboard into {type(host_app).__module__}."
                        f"{type(host_app).__qualname__}: mount() takes {SUPPORTED}")
    dashboard = Dashboard(durable, auth=auth, title=title)
    if asgi:
        host_app.mount(path, app=dashboard.asgi(), name="durable_dashboard")
    else:
        from werkzeug.middleware.dispatcher import DispatcherMiddleware

        host_app.wsgi_app = DispatcherMiddleware(host_app.wsgi_app, {path: dashboard.wsgi()})
    return dashboard


def _is_instance(value: Any, module: str, name: str) -> bool:
    """``isinstance(value, module.name)`` if that module is imported (an app of it exists only
    then), without importing a framework the host does not use."""
    loaded = sys.modules.get(module)
    kind = getattr(loaded, name, None) if loaded is not None else None
    return isinstance(kind, type) and isinstance(value, kind)

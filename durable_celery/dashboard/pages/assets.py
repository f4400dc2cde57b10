"""``/static/<name>``: the stylesheet and script shipped inside the package (no CDN)."""

from __future__ import annotations

import re
from importlib import resources
from typing import TYPE_CHECKING

from durable_celery.dashboard.app import route
from durable_celery.dashboard.http import HTTPError, Request, Response

if TYPE_CHECKING:
    from durable_celery.dashboard.app import Dashboard

TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml",
         ".png": "image/png"}


@route("GET", r"/static/(?P<name>[A-Za-z0-9_-]+\.(?:css|js|svg|png))")
def static(dashboard: Dashboard, request: Request, match: re.Match[str]) -> Response:
    name = match["name"]
    asset = resources.files("durable_celery.dashboard").joinpath("static").joinpath(name)
    if not asset.is_file():
        raise HTTPError(404, f"no asset {name}")
    kind = TYPES[name[name.rindex("."):]]
    return Response(asset.read_bytes(), content_type=kind, headers=[("Cache-Control", "max-age=300")])

"""The dashboard: a WSGI and ASGI web application over one ``Durable`` (docs/dashboard.md).

It reads and acts only through the public client API (``count_by_status``,
``page_executions``, ``get_execution``, ``graph``, ``cancel``, ``provide_input``, ...), so it
shows what the CLI shows and changes nothing the API could not. Every page is a function of a
:class:`~durable_celery.dashboard.http.Request` registered on a path pattern; ``handle`` wraps
them with auth, CSRF and error pages.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from durable_celery.dashboard.http import HTTPError, Request, Response, asgi_app, redirect, wsgi_app
from durable_celery.dashboard.hub import EventHub
from durable_celery.dashboard.render import page
from durable_celery.dashboard.security import (
    HOST_AUTH,
    Auth,
    AuthSpec,
    check_csrf,
    check_host,
    csrf_token,
    token_cookie,
)
from durable_celery.dashboard.shared import SharedReads
from durable_celery.errors import DurableError, ExecutionNotFound, InvalidInput

if TYPE_CHECKING:
    from durable_celery.durable import Durable

log = logging.getLogger(__name__)

View = Callable[["Dashboard", Request, "re.Match[str]"], Response]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    view: View


_ROUTES: list[Route] = []


def route(method: str, pattern: str) -> Callable[[View], View]:
    """Register a view for ``method`` on the path ``pattern`` (a regex matched whole)."""

    def register(view: View) -> View:
        _ROUTES.append(Route(method, re.compile(pattern), view))
        return view

    return register


class Dashboard:
    """The web dashboard of a ``Durable``: serve it with :meth:`wsgi` or :meth:`asgi`, or mount
    it into a host app (``durable_celery.dashboard.mount``).

    Args:
        durable: the engine whose executions it shows and acts on.
        auth: who may use it: a token (``str``, at least 16 characters: send it as
            ``Authorization: Bearer ...`` or open the dashboard once with ``?token=...``), a
            callable ``(Request) -> bool`` (``request.native`` is the WSGI environ, the ASGI
            scope or the Django request, to ask the host app for its user), or ``HOST_AUTH``
            when the host app authenticates every request before it reaches the dashboard.
        local_only: answer only requests whose Host is a loopback name (the standalone server
            sets it when it binds to a loopback address).
        title: shown in the header and the browser tab.
    """

    def __init__(self, durable: Durable, *, auth: AuthSpec, local_only: bool = False,
                 title: str = "durable-celery") -> None:
        self.durable = durable
        self.auth = Auth(auth)
        self.local_only = local_only
        self.title = title
        self.hub = EventHub(durable)
        #: whole-table aggregates shared by every open page for a while
        self.shared = SharedReads(self.hub.nudge)

    # --- serving -----------------------------------------------------------------------

    def wsgi(self) -> Callable[..., Any]:
        """A WSGI application (Flask, Django, gunicorn, wsgiref)."""
        return wsgi_app(self.handle)

    def asgi(self) -> Callable[..., Any]:
        """An ASGI application (Starlette, FastAPI, uvicorn)."""
        return asgi_app(self.handle)

    def close(self) -> None:
        """Stop the live-event subscription (the standalone server calls it when it stops)."""
        self.hub.stop()

    def handle(self, request: Request) -> Response:
        """Answer one request: host and auth checks, CSRF for POSTs, the view, error pages."""
        try:
            if self.local_only:
                check_host(request)
            token = self.auth.token_in_link(request)
            if token is not None and request.method == "GET":
                # the token once in a link: keep it in a cookie, and drop it from the URL
                # re-encoded: the values are decoded, and a raw CR/LF would split the header
                query = urlencode([(k, v) for k, values in request.query.items() if k != "token" for v in values])
                target = request.url(quote(request.path)) + (f"?{query}" if query else "")
                response = redirect(target)
                response.headers.append(token_cookie(token, request.root, request.scheme == "https"))
                return response
            if not self.auth.allowed(request):
                return self._denied(request)
            request.csrf, new_cookie = csrf_token(request)
            response = self._dispatch(request)
            if new_cookie is not None:
                response.headers.append(new_cookie)
            return response
        except HTTPError as error:
            return self._error(request, error.status, error.message)
        except ExecutionNotFound as error:
            return self._error(request, 404, str(error))
        except InvalidInput as error:
            return self._error(request, 400, str(error))
        except DurableError as error:
            return self._error(request, 409, str(error))
        except Exception:  # noqa: BLE001 - one failing page never takes the dashboard down
            log.exception("durable dashboard: %s %s failed", request.method, request.path)
            return self._error(request, 500, "the dashboard failed to answer this request; its log has the details")

    def _dispatch(self, request: Request) -> Response:
        allowed: list[str] = []
        for candidate in _ROUTES:
            match = candidate.pattern.fullmatch(request.path)
            if match is None:
                continue
            if candidate.method != request.method:
                allowed.append(candidate.method)
                continue
            if request.method == "POST":
                check_csrf(request)
            return candidate.view(self, request, match)
        if allowed:
            response = self._error(request, 405, f"{request.method} is not allowed here")
            response.headers.append(("Allow", ", ".join(sorted(set(allowed)))))
            return response
        raise HTTPError(404, f"no page at {request.path}")

    def _denied(self, request: Request) -> Response:
        if self.auth.uses_token:
            message = ("this dashboard needs its token: open it once with ?token=... "
                       "or send Authorization: Bearer ...")
        else:
            message = "you may not use this dashboard"
        return self._error(request, 401 if self.auth.uses_token else 403, message, signed_in=False)

    def _error(self, request: Request, status: int, message: str, *, signed_in: bool = True) -> Response:
        if "text/event-stream" in request.headers.get("accept", "") or request.path.startswith("/static/"):
            return Response(message.encode(), status, content_type="text/plain; charset=utf-8")
        return page(request, "error.html", status=status, title=f"{status}", message=message, signed_in=signed_in,
                    dashboard=self)


__all__ = ["Dashboard", "HOST_AUTH", "route"]

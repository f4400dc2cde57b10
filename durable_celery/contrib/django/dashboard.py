"""The web dashboard in a Django project's URLconf (docs/dashboard.md)::

    from django.urls import include, path

    from durable_celery.contrib.django.dashboard import dashboard_urls

    urlpatterns = [..., path("durable/", include(dashboard_urls()))]

Staff users only by default (``request.user.is_active and request.user.is_staff``, through
Django's ``AuthenticationMiddleware``). The dashboard checks its own CSRF token on every POST
(its pages carry it), so its view is exempt from Django's ``CsrfViewMiddleware``; its event
stream is a ``StreamingHttpResponse`` (under WSGI or ASGI), which holds a thread per open page.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import quote

from django.core.exceptions import ImproperlyConfigured
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.urls import URLPattern, re_path
from django.views.decorators.csrf import csrf_exempt

from durable_celery.contrib.django.project import project_durable
from durable_celery.dashboard import Dashboard, Request, Response
from durable_celery.dashboard.http import pumped
from durable_celery.dashboard.security import Auth, AuthSpec

if TYPE_CHECKING:
    from durable_celery.durable import Durable

__all__ = ["dashboard_urls", "staff_only"]

log = logging.getLogger(__name__)


def staff_only(request: Request) -> bool:
    """The default auth: a signed-in, active staff user (``request.native`` is Django's request)."""
    user = getattr(request.native, "user", None)
    if user is None:
        raise ImproperlyConfigured("the durable dashboard's default auth reads request.user: add "
                                   "django.contrib.auth.middleware.AuthenticationMiddleware to MIDDLEWARE, "
                                   "or pass dashboard_urls(auth=...)")
    return bool(user.is_active and user.is_staff)


def dashboard_urls(durable: Durable | None = None, auth: AuthSpec | None = None, *,
                   title: str = "durable-celery") -> list[URLPattern]:
    """URL patterns serving the dashboard, to ``include`` under a prefix of your choice.

    Args:
        durable: the engine to show (None: the ``DjangoDurable`` attached to the project's
            Celery app, found on the first request).
        auth: who may use it (None: ``staff_only``); or a token, a callable ``(Request) -> bool``
            (``request.native`` is the ``HttpRequest``), or ``HOST_AUTH`` when your own
            middleware or wrapper already decided.
        title: shown in the dashboard's header and the browser tab.

    Raises:
        TypeError, ValueError: ``auth`` is none of the above, or a token is too short.
    """
    spec: AuthSpec = staff_only if auth is None else auth
    Auth(spec)  # a bad one fails as the URLconf is built, not on the first request
    found = _lazy(lambda: Dashboard(
        durable if durable is not None else project_durable(choose="dashboard_urls(durable=...)"),
        auth=spec, title=title))

    def dashboard_view(request: HttpRequest, subpath: str) -> HttpResponseBase:
        return _django_response(request, found().handle(_dashboard_request(request, subpath)))

    # the dashboard checks its own CSRF token on each POST: Django's check would refuse them
    view = csrf_exempt(dashboard_view)
    return [re_path(r"^(?P<subpath>.*)\Z", view, name="durable_dashboard")]


def _lazy(build: Callable[[], Dashboard]) -> Callable[[], Dashboard]:
    """``build()`` once, on first use (the project's Celery app and its Durable exist by the
    first request, not necessarily when the URLconf is imported)."""
    built: list[Dashboard] = []
    lock = threading.Lock()

    def get() -> Dashboard:
        with lock:
            if not built:
                built.append(build())
            return built[0]

    return get


def _dashboard_request(request: HttpRequest, subpath: str) -> Request:
    """The dashboard's view of Django's request: ``path`` under the include's prefix, ``root``
    the prefix itself (with the deployment's SCRIPT_NAME), ``native`` the ``HttpRequest``."""
    full = request.path
    root = full[: len(full) - len(subpath)] if full.endswith(subpath) else full
    return Request(method=(request.method or "GET").upper(), path="/" + subpath, root=quote(root.rstrip("/")),
                   query={name: request.GET.getlist(name) for name in request.GET},
                   headers={name.lower(): value for name, value in request.headers.items()},
                   body=request.body, scheme=request.scheme or "http", native=request)


def _django_response(request: HttpRequest, response: Response) -> HttpResponseBase:
    answer: HttpResponseBase
    if isinstance(response.body, bytes):
        answer = HttpResponse(response.body, status=response.status, content_type=response.content_type)
    else:
        # Django under ASGI reads a synchronous iterator whole before it sends a byte (an
        # endless one: never), and one under WSGI an asynchronous one: each gets its own kind
        chunks = pumped(response) if isinstance(request, ASGIRequest) else response.body
        answer = StreamingHttpResponse(chunks, status=response.status, content_type=response.content_type)
    for name, value in response.all_headers():
        if name.lower() == "set-cookie":
            answer.cookies.load(value)
        elif name.lower() != "content-type":
            answer.headers[name] = value
    return answer


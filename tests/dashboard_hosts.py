"""Web apps that host the dashboard, each served by a real server in a process of its own
(``python -c "from tests.dashboard_hosts import serve; serve('flask')"`` in a test project's
environment: uvicorn for FastAPI, werkzeug for Flask, the standard library's WSGI server for
Django), and what the tests of the mounts and of ``durable dashboard`` do with them: start a
server and read the URL it prints (:class:`ServerProcess`, stopped by PID), sign a form,
read the event stream.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from durable_celery import Durable
from durable_celery.dashboard import Request, mount

ROOT = Path(__file__).resolve().parent.parent
#: where each host serves the dashboard (the Django site itself runs under SCRIPT_NAME /site)
PREFIXES = {"fastapi": "/ops/durable", "flask": "/ops/durable", "django": "/site/durable",
            "django-asgi": "/site/durable"}
#: the host's own sign-in, reduced to a header for these tests
OPERATOR = {"X-Role": "operator"}


def cancel_path(execution_id: str) -> str:
    """The execution page's cancel action: a POST whose effect the tests can read back."""
    return f"/executions/{execution_id}/cancel"


def operators_only(request: Request) -> bool:
    return request.headers.get("x-role") == "operator"


# --- the hosts ----------------------------------------------------------------------------------

def fastapi_host(durable: Durable) -> Any:
    from fastapi import FastAPI

    host = FastAPI()

    @host.get("/")
    def home() -> dict[str, str]:
        return {"app": "the host's own page"}

    mount(host, durable, path=PREFIXES["fastapi"], auth=operators_only)
    return host


def flask_host(durable: Durable) -> Any:
    from flask import Flask

    host = Flask("host")

    @host.get("/")
    def home() -> str:
        return "the host's own page"

    mount(host, durable, path=PREFIXES["flask"], auth=operators_only)
    return host


#: the Django site's URLconf (ROOT_URLCONF is this module), filled in by ``django_host``
urlpatterns: list[Any] = []


def django_host(*, asgi: bool) -> Any:
    """A Django site on SQLite (its users and sessions) under the script name ``/site``
    (WSGI's SCRIPT_NAME, ASGI's root_path), with the dashboard at ``durable/`` for its staff
    (the default auth); the Durable is the one on the project's Celery app, found as
    ``DjangoDurable`` would be. ``/test-login/<user>/`` signs in ``staff`` or ``clerk`` (a user
    who is not staff)."""
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False, SECRET_KEY=os.urandom(16).hex(), ALLOWED_HOSTS=["127.0.0.1", "localhost"],
        ROOT_URLCONF=__name__, USE_TZ=True,
        # a failure's traceback in the server's log (the test shows it)
        LOGGING={"version": 1, "handlers": {"log": {"class": "logging.StreamHandler"}},
                 "loggers": {"django.request": {"handlers": ["log"], "level": "ERROR"}}},
        INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes", "django.contrib.sessions"],
        MIDDLEWARE=["django.middleware.security.SecurityMiddleware",
                    "django.contrib.sessions.middleware.SessionMiddleware",
                    "django.middleware.common.CommonMiddleware",
                    "django.middleware.csrf.CsrfViewMiddleware",
                    "django.contrib.auth.middleware.AuthenticationMiddleware",
                    "django.middleware.clickjacking.XFrameOptionsMiddleware"],
        # one in-memory database shared by the server's threads while the main thread holds it
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3",
                               "NAME": "file:dashboard-host?mode=memory&cache=shared"}},
    )
    django.setup()
    from django.contrib.auth import login
    from django.contrib.auth.models import User
    from django.core.handlers.asgi import ASGIHandler
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.management import call_command
    from django.http import HttpRequest, HttpResponse
    from django.urls import include, path
    from starlette.applications import Starlette
    from starlette.routing import Mount
    from werkzeug.exceptions import NotFound
    from werkzeug.middleware.dispatcher import DispatcherMiddleware

    from durable_celery.contrib.django.dashboard import dashboard_urls

    call_command("migrate", verbosity=0)
    User.objects.create_user("staff", is_staff=True)
    User.objects.create_user("clerk")

    def sign_in(request: HttpRequest, username: str) -> HttpResponse:
        login(request, User.objects.get(username=username), backend="django.contrib.auth.backends.ModelBackend")
        return HttpResponse(status=204)

    urlpatterns[:] = [path("test-login/<str:username>/", sign_in), path("durable/", include(dashboard_urls()))]
    if asgi:
        return Starlette(routes=[Mount("/site", app=ASGIHandler())])
    return DispatcherMiddleware(NotFound(), {"/site": WSGIHandler()})


def serve(kind: str) -> None:
    """Serve the ``kind`` host on a free port of 127.0.0.1 and print where its dashboard is."""
    from tests.proj.factory import from_env

    _, durable = from_env()  # the project's Celery app (the current one) and its Durable
    if kind in ("fastapi", "django-asgi"):
        import uvicorn

        app = fastapi_host(durable) if kind == "fastapi" else django_host(asgi=True)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        _announce(sock.getsockname()[1], kind)
        uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off",
                                      timeout_graceful_shutdown=1)).run(sockets=[sock])
        return
    from werkzeug.serving import make_server

    served = make_server("127.0.0.1", 0, flask_host(durable) if kind == "flask" else django_host(asgi=False),
                         threaded=True)
    _announce(served.port, kind)
    served.serve_forever()


def _announce(port: int, kind: str) -> None:
    print(f"serving on http://127.0.0.1:{port}{PREFIXES[kind]}/", flush=True)


# --- driving them -------------------------------------------------------------------------------

class ServerProcess:
    """A server in a process of its own (its own process group): ``start`` waits for the URL it
    prints; ``stop`` ends it by PID (SIGTERM, then SIGKILL)."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.args = args
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
        fd, name = tempfile.mkstemp(prefix="durable-dashboard-", suffix=".log")
        os.close(fd)
        self.log_path = Path(name)
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    @classmethod
    def host(cls, kind: str, env: dict[str, str]) -> ServerProcess:
        return cls([sys.executable, "-c", f"from tests.dashboard_hosts import serve; serve({kind!r})"], env)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def start(self, timeout: float = 60) -> ServerProcess:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.args, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(r"http://\S+", self.log())
            if found:
                self.url = found.group(0)
                return self
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.args} exited with {self.proc.returncode}:\n{self.log()[-4000:]}")
            time.sleep(0.05)
        self.stop()
        raise AssertionError(f"{self.args} printed no URL in {timeout}s:\n{self.log()[-4000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)  # a stream's thread may wait up to 10 s for its next event
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def csrf_form(client: httpx.Client, **fields: str) -> dict[str, str]:
    """A form as the dashboard's pages send it: with the CSRF token of the page last loaded
    (the pages put the value of their ``durable_csrf`` cookie in every form)."""
    token = client.cookies.get("durable_csrf")
    assert token, "load a page of the dashboard first"
    return {"csrf_token": token, **fields}


def event_for_a_start(client: httpx.Client, url: str, start: Callable[[], str], timeout: float = 20) -> dict[str, Any]:
    """Open the event stream at ``url`` and start executions (``start()``, one every 0.3 s: the
    engine looks for subscribers about once a second) until the stream tells of one of them;
    that event's data."""
    started: list[str] = []
    done = threading.Event()

    def keep_starting() -> None:
        while not done.is_set():
            started.append(start())
            done.wait(0.3)

    deadline = time.monotonic() + timeout
    starter = threading.Thread(target=keep_starting, daemon=True)
    with client.stream("GET", url, headers={"Accept": "text/event-stream"},
                       timeout=httpx.Timeout(10, read=timeout)) as response:
        assert response.status_code == 200, response.read()[:2000]
        assert response.headers["content-type"].startswith("text/event-stream")
        starter.start()
        try:
            for line in response.iter_lines():
                if line.startswith("data:"):
                    data: dict[str, Any] = json.loads(line[5:])
                    if data.get("execution_id") in started:
                        return data
                assert time.monotonic() < deadline, f"no event for {started} in {timeout}s"
        finally:
            done.set()
            starter.join()
    raise AssertionError(f"the stream ended without an event for {started}")

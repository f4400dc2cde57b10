"""The dashboard's HTTP layer: one framework-free request and response, and the two adapters
that serve them over WSGI and ASGI. Pages are plain functions of a :class:`Request`; the
adapters are all that knows the servers' calling conventions, so the same dashboard runs under
the standalone server (``wsgiref``), Flask or Django (WSGI) and Starlette or FastAPI (ASGI).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, quote

log = logging.getLogger(__name__)

#: the largest request body the dashboard reads (its forms are small)
MAX_BODY = 256 * 1024


class HTTPError(Exception):
    """An error answered with ``status`` and a short plain message (escaped when rendered)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Request:
    """One request as the pages see it, whichever server it came through.

    ``path`` is relative to where the dashboard is mounted (always starting with ``/``);
    ``root`` is the mount point (``""`` or ``/durable``), to build links. ``native`` is the
    server's own object (the WSGI environ, the ASGI scope, or the Django request), for auth
    hooks that need the host app's user.
    """

    method: str
    path: str
    root: str = ""
    query: dict[str, list[str]] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    scheme: str = "http"
    native: Any = None
    #: the page's CSRF token (set by the dashboard before a page renders)
    csrf: str = ""

    def arg(self, name: str, default: str = "") -> str:
        """The first value of query parameter ``name``, stripped."""
        values = self.query.get(name)
        return values[0].strip() if values else default

    @property
    def form(self) -> dict[str, str]:
        """The url-encoded form of a POST, first value of each field."""
        if not hasattr(self, "_form"):
            parsed = parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True)
            self._form = {name: values[0] for name, values in parsed.items()}
        return self._form

    @property
    def cookies(self) -> dict[str, str]:
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(self.headers.get("cookie", ""))
        except Exception:  # noqa: BLE001 - a malformed cookie header is no cookie
            return {}
        return {name: morsel.value for name, morsel in jar.items()}

    @property
    def host(self) -> str:
        return self.headers.get("host", "")

    def url(self, path: str) -> str:
        """An absolute path under the mount point."""
        return self.root + path


@dataclass
class Response:
    """A status, headers and a body: bytes, or an iterator of chunks for a stream (SSE)."""

    body: bytes | Iterator[bytes] = b""
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str = "text/html; charset=utf-8"

    def all_headers(self) -> list[tuple[str, str]]:
        base = [("Content-Type", self.content_type), ("X-Content-Type-Options", "nosniff"),
                ("Referrer-Policy", "same-origin"), ("X-Frame-Options", "DENY"),
                ("Content-Security-Policy",
                 "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                 "frame-ancestors 'none'; form-action 'self'")]
        if isinstance(self.body, bytes):
            base.append(("Content-Length", str(len(self.body))))
        return base + self.headers


def redirect(location: str, status: int = 303) -> Response:
    return Response(b"", status, [("Location", location)])


def status_line(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Unknown"


Handler = Callable[[Request], Response]


def wsgi_app(handler: Handler) -> Callable[..., Iterable[bytes]]:
    """A WSGI application serving ``handler``."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        given = str(environ.get("CONTENT_LENGTH") or "0")
        length = int(given) if given.isdigit() else 0
        response = _too_large() if length > MAX_BODY else handler(_environ_request(environ, length))
        start_response(status_line(response.status), response.all_headers())
        # a stream is a generator: the server closes it when the client goes, which runs its clean-up
        return [response.body] if isinstance(response.body, bytes) else response.body

    return app


def _environ_request(environ: dict[str, Any], length: int) -> Request:
    body = environ["wsgi.input"].read(length) if length > 0 else b""
    headers = {key[5:].replace("_", "-").lower(): value for key, value in environ.items() if key.startswith("HTTP_")}
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = environ["CONTENT_TYPE"]
    path = environ.get("PATH_INFO", "") or "/"
    # PEP 3333: PATH_INFO is latin-1 decoded bytes; the dashboard's paths are UTF-8
    path = path.encode("latin-1").decode("utf-8", "replace")
    return Request(method=environ["REQUEST_METHOD"].upper(), path=path,
                   root=quote(environ.get("SCRIPT_NAME", "").rstrip("/")),
                   query=parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True),
                   headers=headers, body=body, scheme=environ.get("wsgi.url_scheme", "http"), native=environ)


def asgi_app(handler: Handler) -> Callable[..., Any]:
    """An ASGI (3.0, HTTP) application serving ``handler``: each request runs in a thread (the
    pages read the database synchronously), a stream's chunks are pulled in a thread too."""

    async def app(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        body = await _read_body(receive)
        response = _too_large() if body is None else await asyncio.to_thread(handler, _scope_request(scope, body))
        await send({"type": "http.response.start", "status": response.status,
                    "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.all_headers()]})
        if isinstance(response.body, bytes):
            await send({"type": "http.response.body", "body": response.body})
            return
        await _stream(response, receive, send)

    return app


async def _lifespan(receive: Callable[..., Any], send: Callable[..., Any]) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _read_body(receive: Callable[..., Any]) -> bytes | None:
    """The request's body, or None when it is larger than ``MAX_BODY``."""
    body = b""
    while True:
        message = await receive()
        body += bytes(message.get("body", b""))
        if len(body) > MAX_BODY:
            return None
        if not message.get("more_body"):
            return body


def _scope_request(scope: dict[str, Any], body: bytes) -> Request:
    headers: dict[str, str] = {}
    for key, value in scope.get("headers", []):
        name, text = key.decode("latin-1").lower(), value.decode("latin-1")
        headers[name] = f"{headers[name]}{'; ' if name == 'cookie' else ', '}{text}" if name in headers else text
    request = Request(method=scope["method"].upper(), path=scope.get("path", "/") or "/",
                      root=scope.get("root_path", "").rstrip("/"),
                      query=parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True),
                      headers=headers, body=body, scheme=scope.get("scheme", "http"), native=scope)
    # Starlette's Mount leaves the full path in scope["path"] and the prefix in root_path
    if request.root and request.path.startswith(request.root + "/"):
        request.path = request.path[len(request.root):]
    elif request.root and request.path == request.root:
        request.path = "/"
    return request


async def _stream(response: Response, receive: Callable[..., Any], send: Callable[..., Any]) -> None:
    gone = asyncio.Event()

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        gone.set()

    watcher = asyncio.ensure_future(watch())
    chunks = pumped(response)
    try:
        async for chunk in chunks:
            if gone.is_set():
                break
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        if not gone.is_set():
            await send({"type": "http.response.body", "body": b""})
    except OSError:
        pass
    finally:
        watcher.cancel()
        await chunks.aclose()


async def pumped(response: Response) -> AsyncGenerator[bytes, None]:
    """A streamed body's chunks for an asyncio server: a thread of its own reads them (each
    may wait seconds for the next event: never one of the event loop's pool, which a few open
    pages would exhaust) and, once the client went away, closes the stream in that same thread
    (a generator closes only where it is not running)."""
    loop = asyncio.get_running_loop()
    received: asyncio.Queue[bytes | None] = asyncio.Queue()
    gone = threading.Event()

    def hand_over(chunk: bytes | None) -> None:
        try:
            loop.call_soon_threadsafe(received.put_nowait, chunk)
        except RuntimeError:  # the loop is closed: nobody reads any more
            gone.set()

    chunks = response.body
    assert not isinstance(chunks, bytes)

    def pump() -> None:
        try:
            for chunk in chunks:
                if gone.is_set():
                    break
                hand_over(chunk)
        except Exception:  # noqa: BLE001 - the stream ends; the page reconnects
            log.exception("durable dashboard: the event stream failed")
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
            hand_over(None)

    threading.Thread(target=pump, name="durable-dashboard-stream", daemon=True).start()
    try:
        while True:
            chunk = await received.get()
            if chunk is None:
                return
            yield chunk
    finally:
        gone.set()


def _too_large() -> Response:
    return Response(b"request body too large", 413, content_type="text/plain; charset=utf-8")

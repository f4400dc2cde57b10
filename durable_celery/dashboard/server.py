"""The standalone server behind ``celery -A proj durable dashboard``: the standard library's
WSGI server, one thread per connection (each live page holds one for its event stream)."""

from __future__ import annotations

import ipaddress
import socket
import socketserver
from collections.abc import Callable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _IPv6ThreadingServer(_ThreadingServer):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    """No line on stderr per request (a page that fails is logged by ``Dashboard.handle``)."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


def is_loopback(host: str) -> bool:
    """Is ``host`` (a name or an address) this machine only?"""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def make(app: Callable[..., Any], host: str, port: int) -> WSGIServer:
    """A threading WSGI server for ``app`` bound to ``host``:``port`` (0: any free port)."""
    server_class = _IPv6ThreadingServer if ":" in host else _ThreadingServer
    return make_server(host.strip("[]"), port, app, server_class=server_class, handler_class=_QuietHandler)

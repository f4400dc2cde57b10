"""Who may use the dashboard, and proof that a POST came from its own pages.

* **Auth** (:class:`Auth`): a shared token, a callable that asks the host app (its user,
  its session), or :data:`HOST_AUTH` to say the host app's middleware already decided. A token
  is accepted as ``Authorization: Bearer <token>`` or, once, as ``?token=`` in a link: the
  dashboard then sets it as an HttpOnly, SameSite=Strict cookie and redirects to the same page
  without it, so it does not stay in the address bar or the history.
* **CSRF**: every page sets a random ``durable_csrf`` cookie (SameSite=Strict) and puts the
  same value in each form; a POST must carry both, equal, and its ``Origin`` (when the browser
  sends one) must be the dashboard's own host. The cookie is not readable cross-site, so another
  site can neither read nor forge the pair.
* **Host check**: when served standalone on a loopback address, a request must name a loopback
  host (``localhost``, ``127.0.0.1``, ``[::1]``): a page on another site cannot reach the
  dashboard by pointing its own domain at 127.0.0.1 (DNS rebinding).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from typing import Union
from urllib.parse import urlsplit

from durable_celery.dashboard.http import HTTPError, Request

TOKEN_COOKIE = "durable_dashboard_token"
CSRF_COOKIE = "durable_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


class _HostAuth:
    def __repr__(self) -> str:
        return "HOST_AUTH"


#: ``auth=HOST_AUTH``: the app the dashboard is mounted in authenticates every request before
#: it reaches the dashboard (its middleware, a login-required wrapper); the dashboard adds none.
HOST_AUTH = _HostAuth()

AuthSpec = Union[str, Callable[[Request], bool], _HostAuth]


class Auth:
    """Decides whether a request may see the dashboard (see the module docstring)."""

    def __init__(self, spec: AuthSpec) -> None:
        if isinstance(spec, str):
            if len(spec) < 16:
                raise ValueError("a dashboard token must be at least 16 characters long "
                                 "(python -c 'import secrets; print(secrets.token_urlsafe())' makes one)")
            self._token_hash: bytes | None = hashlib.sha256(spec.encode()).digest()
            self._check: Callable[[Request], bool] | None = None
        elif isinstance(spec, _HostAuth):
            self._token_hash = None
            self._check = None
        elif callable(spec):
            self._token_hash = None
            self._check = spec
        else:
            raise TypeError(f"auth must be a token (str), a callable(request) -> bool or HOST_AUTH, got {spec!r}")

    @property
    def uses_token(self) -> bool:
        return self._token_hash is not None

    def _token_ok(self, token: str) -> bool:
        assert self._token_hash is not None
        return secrets.compare_digest(hashlib.sha256(token.encode()).digest(), self._token_hash)

    def allowed(self, request: Request) -> bool:
        if self._check is not None:
            return bool(self._check(request))
        if self._token_hash is None:
            return True
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer ") and self._token_ok(header[7:].strip()):
            return True
        cookie = request.cookies.get(TOKEN_COOKIE)
        return cookie is not None and self._token_ok(cookie)

    def token_in_link(self, request: Request) -> str | None:
        """A valid ``?token=`` in the URL (to turn into a cookie), else None."""
        if self._token_hash is None:
            return None
        token = request.arg("token")
        return token if token and self._token_ok(token) else None


def token_cookie(token: str, root: str, secure: bool) -> tuple[str, str]:
    return ("Set-Cookie", _cookie(TOKEN_COOKIE, token, root, secure))


def csrf_token(request: Request) -> tuple[str, tuple[str, str] | None]:
    """The request's CSRF token, and the Set-Cookie header to send when it is new."""
    token = request.cookies.get(CSRF_COOKIE, "")
    if len(token) == 43 and token.replace("-", "").replace("_", "").isalnum():
        return token, None
    token = secrets.token_urlsafe(32)
    return token, ("Set-Cookie", _cookie(CSRF_COOKIE, token, request.root, request.scheme == "https"))


def check_csrf(request: Request) -> None:
    """Raise ``HTTPError(403)`` unless the POST carries the page's CSRF token and, when the
    browser says where it came from, comes from the dashboard's own origin."""
    cookie = request.cookies.get(CSRF_COOKIE, "")
    sent = request.form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER, "")
    if not cookie or not sent or not secrets.compare_digest(cookie.encode(), sent.encode()):
        raise HTTPError(403, "the form is stale or did not come from this dashboard: reload the page and try again")
    origin = request.headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.host:
        raise HTTPError(403, f"a request from {origin} may not act on this dashboard")


def check_host(request: Request) -> None:
    """Raise ``HTTPError(421)`` unless the Host header names a loopback address."""
    host = request.host.rsplit(":", 1)[0] if not request.host.endswith("]") else request.host
    if host not in LOOPBACK_HOSTS:
        raise HTTPError(421, f"this dashboard answers only on localhost, not {request.host!r}: "
                             "serve it with --host and a --token to reach it from elsewhere")


def _cookie(name: str, value: str, root: str, secure: bool) -> str:
    """A cookie for the dashboard's path only, never sent cross-site, never readable by scripts."""
    parts = [f"{name}={value}", f"Path={root or '/'}", "SameSite=Strict", "HttpOnly"]
    if secure:
        parts.append("Secure")
    return "; ".join(parts)

"""A test client for the dashboard: calls its WSGI app in-process, keeps cookies like a
browser and fills in the CSRF token of the page it last loaded, so tests read as what a user
does (open a page, submit a form)."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlencode, urlsplit
from wsgiref.util import setup_testing_defaults

from durable_celery.dashboard import Dashboard
from tests.conftest import Project, new_project


@dataclass
class Page:
    status: int
    headers: dict[str, str]
    text: str

    @property
    def location(self) -> str:
        return self.headers.get("location", "")


@dataclass
class DashboardClient:
    """A browser-like client of one dashboard's WSGI app (``root``: where it is mounted)."""

    dashboard: Dashboard
    host: str = "127.0.0.1:5556"
    root: str = ""
    cookies: dict[str, str] = field(default_factory=dict)
    csrf: str = ""

    def get(self, path: str, query: dict[str, Any] | str | None = None, headers: dict[str, str] | None = None) -> Page:
        return self.request("GET", path, query=query, headers=headers)

    def post(self, path: str, form: dict[str, Any] | None = None, *, csrf: bool = True,
             headers: dict[str, str] | None = None) -> Page:
        """POST ``form``; with ``csrf`` (the default) the token of the last page is added, as
        the dashboard's own forms carry it. The first GET of a test sets that token."""
        data = dict(form or {})
        if csrf:
            if not self.csrf:
                self.get("/")
            data.setdefault("csrf_token", self.csrf)
        return self.request("POST", path, body=urlencode(data, doseq=True).encode(),
                            headers={"content-type": "application/x-www-form-urlencoded", **(headers or {})})

    def request(self, method: str, path: str, *, query: dict[str, Any] | str | None = None, body: bytes = b"",
                headers: dict[str, str] | None = None) -> Page:
        if "?" in path and query is None:
            path, query = path.split("?", 1)
        environ: dict[str, Any] = {
            "REQUEST_METHOD": method, "SCRIPT_NAME": self.root, "PATH_INFO": path,
            "QUERY_STRING": query if isinstance(query, str) else urlencode(query or {}, doseq=True),
            "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body)), "HTTP_HOST": self.host,
        }
        for name, value in (headers or {}).items():
            key = name.upper().replace("-", "_")
            environ[key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{key}"] = value
        if self.cookies:
            environ["HTTP_COOKIE"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        setup_testing_defaults(environ)
        seen: dict[str, Any] = {}

        def start_response(status: str, response_headers: list[tuple[str, str]]) -> None:
            seen["status"] = int(status.split()[0])
            seen["headers"] = response_headers

        chunks = self.dashboard.wsgi()(environ, start_response)
        try:
            text = b"".join(chunks).decode()
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        headers_out: dict[str, str] = {}
        for name, value in seen["headers"]:
            if name.lower() == "set-cookie":
                jar: SimpleCookie = SimpleCookie()
                jar.load(value)
                self.cookies.update({k: m.value for k, m in jar.items()})
            headers_out[name.lower()] = value
        found = re.search(r'name="csrf_token" value="([^"]+)"', text)
        if found:
            self.csrf = found.group(1)
        elif "durable_csrf" in self.cookies:
            self.csrf = self.cookies["durable_csrf"]
        return Page(seen["status"], headers_out, text)

    def follow(self, page: Page) -> Page:
        """GET where a redirect points."""
        target = urlsplit(page.location)
        path = target.path[len(self.root):] if self.root and target.path.startswith(self.root) else target.path
        return self.get(path, target.query)


@dataclass
class Form:
    """A form of a page: its attributes, its controls (tag and attributes) and its text."""

    attrs: dict[str, str]
    controls: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    text: str = ""

    def named(self, name: str) -> list[dict[str, str]]:
        return [attrs for _, attrs in self.controls if attrs.get("name") == name]


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self._open: Form | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form":
            self._open = Form(values)
            self.forms.append(self._open)
        elif self._open is not None and tag in ("input", "button", "textarea", "select", "option"):
            self._open.controls.append((tag, values))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._open = None

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._open.text += data


def forms(page: Page, **wanted: str) -> list[Form]:
    """The page's forms whose ``data-<key>`` attributes have the wanted values (``data_form_key=``)."""
    parser = _FormParser()
    parser.feed(page.text)
    want = {f"data-{key.replace('_', '-')}": value for key, value in wanted.items()}
    return [form for form in parser.forms if all(form.attrs.get(k) == v for k, v in want.items())]


def the_form(page: Page, **wanted: str) -> Form:
    found = forms(page, **wanted)
    assert len(found) == 1, f"{len(found)} forms match {wanted}"
    return found[0]


def working_project(*, beat: bool, **settings: Any) -> Iterator[Project]:
    """A project with a worker (and beat) for a module's tests, stopped and dropped after them."""
    p = new_project("redis", **settings)
    try:
        p.worker()
        if beat:
            p.beat()
        yield p
    finally:
        p.close()

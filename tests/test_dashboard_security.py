"""The dashboard is secure by default: an action is a POST with the page's CSRF token from its
own origin, or nothing happens; every response tells the browser to run only the dashboard's
own script and never to frame or sniff it; whatever a user or a workflow supplied is escaped;
a wrong method, a path out of the static folder and a token in a link go nowhere they should
not. Driven in-process through DashboardClient (what a browser sends), against a real project."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest

from durable_celery.dashboard import HOST_AUTH, Dashboard
from durable_celery.dashboard.http import MAX_BODY
from tests.conftest import Project, _delete_queues, new_project
from tests.dashboard_hosts import cancel_path
from tests.dashboard_support import DashboardClient, Page

TOKEN = "s3cret-token-of-the-tests-0123456789"
MARK = '<script>alert("xss")</script>'
#: how MARK reads once escaped (Jinja writes a double quote as &#34;)
ESCAPED = "&lt;script&gt;alert(&#34;xss&#34;)&lt;/script&gt;"
#: a value that would break out of an attribute if it were not escaped
BREAKOUT = '" autofocus onfocus="alert(1)'


@pytest.fixture(scope="module")
def project() -> Iterator[Project]:
    """A project holding executions with markup in what users supplied: an input, a queue name,
    and an error message (run by a worker, stopped once it failed)."""
    made = new_project("redis")
    try:
        made.durable.start("noop", {"note": MARK}, queue=MARK)
        worker = made.worker()
        failed = made.durable.start("payment", {"amount": MARK, "fail": True})
        assert MARK in str(made.wait(failed).error)
        worker.stop()
        yield made
    finally:
        made.close()
        _delete_queues(made.broker, [MARK])


@pytest.fixture
def client(project: Project) -> DashboardClient:
    return DashboardClient(Dashboard(project.durable, auth=HOST_AUTH))


@pytest.fixture
def pending(project: Project) -> str:
    """An execution an action can change (no worker takes it: it stays pending)."""
    return project.durable.start("noop", {})


def _status(project: Project, execution_id: str) -> str:
    return project.durable.get_execution(execution_id).status


# --- CSRF and origin ------------------------------------------------------------------------------

def test_a_post_without_the_pages_csrf_token_is_refused_and_changes_nothing(
        client: DashboardClient, project: Project, pending: str) -> None:
    client.get("/")
    attempts = [
        client.post(cancel_path(pending), csrf=False),  # no token at all
        client.post(cancel_path(pending), {"csrf_token": "x" * 43}),  # a wrong one
        client.post(cancel_path(pending), {"csrf_token": ""}),
    ]
    cookieless = DashboardClient(client.dashboard)  # the page's token, but not its cookie
    attempts.append(cookieless.post(cancel_path(pending), {"csrf_token": client.csrf}))
    for page in attempts:
        assert page.status == 403, page.text[-1000:]
        assert "the form is stale" in page.text
    assert _status(project, pending) == "pending"
    # the page's own token, as its forms send it, works
    done = client.post(cancel_path(pending))
    assert done.status == 303 and _status(project, pending) == "cancelled"


def test_a_post_from_another_origin_is_refused_even_with_the_token(
        client: DashboardClient, project: Project, pending: str) -> None:
    client.get("/")
    for origin in ("https://evil.example", "http://127.0.0.1:5557", "http://localhost:5556"):
        refused = client.post(cancel_path(pending), headers={"Origin": origin})
        assert refused.status == 403, origin
        assert "may not act on this dashboard" in refused.text
    assert _status(project, pending) == "pending"
    done = client.post(cancel_path(pending), headers={"Origin": f"http://{client.host}"})
    assert done.status == 303 and _status(project, pending) == "cancelled"


# --- headers ---------------------------------------------------------------------------------------

def _assert_locked_down(headers: dict[str, str], what: str) -> None:
    policy = headers.get("content-security-policy", "")
    for rule in ("default-src 'self'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'",
                 "form-action 'self'"):
        assert rule in policy, (what, policy)
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy, what
    assert headers.get("x-content-type-options") == "nosniff", what
    assert headers.get("x-frame-options") == "DENY", what
    assert headers.get("referrer-policy") == "same-origin", what


def _stream_headers(dashboard: Dashboard) -> tuple[str, dict[str, str]]:
    """The status and headers of ``/events``, without reading the endless stream."""
    environ: dict[str, Any] = {"REQUEST_METHOD": "GET", "PATH_INFO": "/events", "HTTP_HOST": "127.0.0.1:5556",
                               "HTTP_ACCEPT": "text/event-stream", "wsgi.input": io.BytesIO()}
    setup_testing_defaults(environ)
    seen: dict[str, Any] = {}
    body = dashboard.wsgi()(environ, lambda status, headers: seen.update(status=status, headers=headers))
    getattr(body, "close", lambda: None)()
    return seen["status"], {name.lower(): value for name, value in seen["headers"]}


def test_every_response_carries_the_content_security_policy_and_no_sniff_no_frame_headers(
        client: DashboardClient, pending: str) -> None:
    client.get("/")
    answers: dict[str, Page] = {
        "a page": client.get("/"),
        "the list": client.get("/executions", {"status": "pending"}),
        "a flash": client.get("/executions", {"flash": "cancelled"}),
        "a live refresh": client.get("/executions", headers={"X-Durable-Fragment": "1"}),
        "an asset": client.get("/static/dashboard.js"),
        "a missing asset": client.get("/static/nothing.js"),
        "no page": client.get("/nowhere"),
        "bad input": client.get("/executions", {"range": "forever"}),
        "a wrong method": client.post("/"),
        "a refused post": client.post(cancel_path(pending), csrf=False),
        "a done post": client.post(cancel_path(pending)),
        "too large": client.request("POST", cancel_path(pending), body=b"x" * (MAX_BODY + 1)),
    }
    tokened = DashboardClient(Dashboard(client.dashboard.durable, auth=TOKEN))
    answers["no token"] = tokened.get("/")
    answers["a token in a link"] = tokened.get("/", {"token": TOKEN})
    expected = {"a page": 200, "the list": 200, "a flash": 200, "a live refresh": 200, "an asset": 200,
                "a missing asset": 404, "no page": 404, "bad input": 400, "a wrong method": 405,
                "a refused post": 403, "a done post": 303, "too large": 413, "no token": 401,
                "a token in a link": 303}
    assert {what: page.status for what, page in answers.items()} == expected
    for what, page in answers.items():
        _assert_locked_down(page.headers, what)
    status, headers = _stream_headers(client.dashboard)
    assert status.startswith("200") and headers["content-type"] == "text/event-stream"
    _assert_locked_down(headers, "the event stream")


# --- escaping --------------------------------------------------------------------------------------

def _crawl(client: DashboardClient, limit: int = 60) -> dict[str, Page]:
    """Every page linked from the overview, and from those (up to ``limit``), as a user clicks."""
    seen: dict[str, Page] = {}
    queue = ["/"]
    while queue and len(seen) < limit:
        path = queue.pop(0)
        if path in seen:
            continue
        seen[path] = page = client.get(path)
        for link in re.findall(r'href="(/[^"]*)"', page.text):
            link = link.replace("&amp;", "&")
            if not link.startswith(("/static/", "/events")) and link not in seen:
                queue.append(link)
    return seen


def test_text_from_workflows_and_users_is_escaped_on_every_page(client: DashboardClient) -> None:
    pages = _crawl(client)
    assert len(pages) >= 5, list(pages)
    for path, page in pages.items():
        assert MARK not in page.text, path
        assert "<script>alert" not in page.text, path
    # the queue named with markup is listed, escaped
    assert ESCAPED in pages["/"].text and ESCAPED in pages["/executions"].text


@pytest.mark.parametrize("query, status", [
    ({"workflow": MARK}, 200),
    ({"queue": MARK}, 200),
    ({"queue": BREAKOUT}, 200),
    ({"workflow": BREAKOUT}, 200),
    ({"id": MARK}, 400),
    ({"from": MARK}, 400),
    ({"to": BREAKOUT}, 400),
    ({"range": MARK}, 400),
    ({"cursor": MARK}, 400),
    ({"flash": MARK}, 200),
])
def test_query_parameters_echoed_in_the_filter_bar_or_an_error_are_escaped(
        client: DashboardClient, query: dict[str, str], status: int) -> None:
    page = client.get("/executions", query)
    assert page.status == status, page.text[-1000:]
    assert MARK not in page.text and BREAKOUT not in page.text
    assert "<script>alert" not in page.text and 'onfocus="alert' not in page.text
    value = next(iter(query.values()))
    shown = ESCAPED if value == MARK else "&#34; autofocus onfocus=&#34;alert(1)"
    if "flash" not in query:
        assert shown in page.text  # it is shown, escaped


def test_a_path_is_escaped_when_the_not_found_page_names_it(client: DashboardClient) -> None:
    page = client.get(f"/{MARK}")
    assert page.status == 404 and MARK not in page.text and "&lt;script&gt;" in page.text


# --- methods and paths -----------------------------------------------------------------------------

@pytest.mark.parametrize("method, path, allowed", [
    ("POST", "/", "GET"),
    ("PUT", "/executions", "GET"),
    ("DELETE", "/executions", "GET"),
    ("POST", "/static/dashboard.css", "GET"),
    ("GET", cancel_path("0" * 8 + "-0000-0000-0000-" + "0" * 12), "POST"),
])
def test_a_wrong_method_is_answered_405_with_the_allowed_one(client: DashboardClient, method: str, path: str,
                                                           allowed: str) -> None:
    page = client.request(method, path)
    assert page.status == 405 and page.headers["allow"] == allowed


@pytest.mark.parametrize("path", [
    "/static/../app.py",
    "/static/../../dashboard/app.py",
    "/static/..%2Fapp.py",
    "/static/%2e%2e/app.py",
    "/static/dashboard.css/../../app.py",
    "/static/../templates/base.html",
    "/static/..\\app.py",
    "/static//etc/passwd",
    "/static/.dashboard.css",
    "/static/dashboard.py",
])
def test_a_static_path_out_of_the_static_folder_is_refused(client: DashboardClient, path: str) -> None:
    page = client.get(path)
    assert page.status == 404
    assert "import " not in page.text and "{%" not in page.text and "root:" not in page.text


def test_a_static_asset_is_served_from_the_package(client: DashboardClient) -> None:
    page = client.get("/static/dashboard.css")
    assert page.status == 200 and page.headers["content-type"].startswith("text/css") and "{" in page.text


# --- the token -------------------------------------------------------------------------------------

def test_the_token_is_never_echoed_in_a_page(project: Project) -> None:
    browser = DashboardClient(Dashboard(project.durable, auth=TOKEN))
    # Without it: asked for it, without being told it
    refused = browser.get("/executions", {"token": "not-the-token-0123456789"})
    assert refused.status == 401 and "not-the-token" not in refused.text
    # A link with it: a cookie, and the same page without it in the address
    moved = browser.get("/executions", {"token": TOKEN, "status": "failed", "workflow": "a&b"})
    assert moved.status == 303
    assert moved.location == "/executions?status=failed&workflow=a%26b"
    assert TOKEN not in moved.location and "HttpOnly" in moved.headers["set-cookie"]
    pages = [browser.follow(moved), *_crawl(browser, limit=15).values(),
             browser.get("/executions", headers={"X-Durable-Fragment": "1"}), browser.get("/nowhere"),
             browser.get("/executions", {"range": "forever"})]
    for page in pages:
        assert page.status in (200, 400, 404)
        assert TOKEN not in page.text
    # the page it went on to is the one the link asked for, its filters intact
    assert pages[0].status == 200
    assert 'value="failed" selected' in pages[0].text and 'value="a&amp;b" selected' in pages[0].text


def test_a_token_in_a_link_cannot_smuggle_a_header_into_the_redirect(project: Project) -> None:
    browser = DashboardClient(Dashboard(project.durable, auth=TOKEN))
    moved = browser.request("GET", "/executions\r\nSet-Cookie: evil=1",
                            query=f"token={TOKEN}&workflow=a%0D%0AX-Evil:%201")
    assert moved.status == 303
    assert "\r" not in moved.location and "\n" not in moved.location
    assert "evil" not in browser.cookies and "x-evil" not in moved.headers
    assert moved.location == "/executions%0D%0ASet-Cookie%3A%20evil%3D1?workflow=a%0D%0AX-Evil%3A+1"


def test_a_bearer_token_opens_the_dashboard_and_a_wrong_one_does_not(project: Project) -> None:
    browser = DashboardClient(Dashboard(project.durable, auth=TOKEN))
    assert browser.get("/", headers={"Authorization": f"Bearer {TOKEN}"}).status == 200
    assert browser.get("/", headers={"Authorization": "Bearer wrong-token-0123456789"}).status == 401
    assert browser.get("/", headers={"Authorization": TOKEN}).status == 401

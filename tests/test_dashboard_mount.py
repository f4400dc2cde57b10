"""The dashboard mounted into a host app with one call: FastAPI (Starlette) and Flask through
``durable_celery.dashboard.mount``, Django through ``dashboard_urls`` in its URLconf. Each host
runs on a real server in a process of its own (tests/dashboard_hosts.py), since the event
stream is what an in-process test client cannot show; under each, the pages link under the
mount's prefix, an action with its CSRF token works, the host's auth decides who gets in, and
the stream delivers."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import httpx
import pytest
from flask import Flask

from durable_celery.dashboard import HOST_AUTH, mount
from tests.conftest import Project, new_project
from tests.dashboard_hosts import OPERATOR, ServerProcess, cancel_path, csrf_form, event_for_a_start


@pytest.fixture(scope="module")
def project() -> Iterator[Project]:
    """A project whose executions the hosts show (no worker: started executions stay pending)."""
    made = new_project("redis")
    try:
        yield made
    finally:
        made.close()


@pytest.fixture(scope="module", params=["fastapi", "flask"])
def host(request: pytest.FixtureRequest, project: Project) -> Iterator[ServerProcess]:
    with ServerProcess.host(request.param, project.env) as server:
        yield server


@pytest.fixture(scope="module", params=["django", "django-asgi"])
def django_site(request: pytest.FixtureRequest, project: Project) -> Iterator[ServerProcess]:
    """The Django site under WSGI (werkzeug's server) and under ASGI (uvicorn)."""
    with ServerProcess.host(request.param, project.env) as server:
        yield server


def _links(html: str) -> list[str]:
    return re.findall(r'(?:href|src|action)="([^"]*)"', html)


def _site(url: str) -> str:
    return re.sub(r"(http://[^/]+).*", r"\1", url)


def _prefix(server: ServerProcess) -> str:
    """Where the server's dashboard is (its URL's path, as it printed it)."""
    return re.sub(r"http://[^/]+", "", server.url).rstrip("/")


def _assert_links_under(prefix: str, html: str) -> None:
    links = _links(html)
    assert len(links) >= 8, links  # the stylesheet, the script, the navigation, ...
    assert [link for link in links if not link.startswith(f"{prefix}/")] == []
    assert f'data-root="{prefix}"' in html


def test_mount_takes_starlette_and_flask_apps_and_names_them_when_given_anything_else(project: Project) -> None:
    def plain_wsgi(environ: object, start_response: object) -> list[bytes]:
        return []

    for unknown in (object(), plain_wsgi):
        with pytest.raises(TypeError, match=r"Starlette or FastAPI app \(ASGI\) or a Flask app \(WSGI\).*dashboard_urls"):
            mount(unknown, project.durable, auth=HOST_AUTH)


def test_mount_has_no_open_default_and_checks_its_path(project: Project) -> None:
    host = Flask("host")
    with pytest.raises(TypeError, match="auth"):
        mount(host, project.durable)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"a token \(str\), a callable.* or HOST_AUTH"):
        mount(host, project.durable, auth=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 16 characters"):
        mount(host, project.durable, auth="short")
    for path in ("durable", "/durable/", "/", "/a b"):
        with pytest.raises(ValueError, match="path must look like"):
            mount(host, project.durable, path=path, auth=HOST_AUTH)
    assert host.wsgi_app.__self__ is host  # type: ignore[attr-defined]  # nothing was mounted


def test_the_pages_answer_under_the_mount_with_every_link_under_its_prefix(host: ServerProcess) -> None:
    prefix = _prefix(host)
    with httpx.Client(base_url=_site(host.url), headers=OPERATOR) as client:
        overview = client.get(f"{prefix}/")
        assert overview.status_code == 200, overview.text[-2000:]
        _assert_links_under(prefix, overview.text)
        listing = client.get(f"{prefix}/executions", params={"status": "pending"})
        assert listing.status_code == 200
        _assert_links_under(prefix, listing.text)
        assert client.get(f"{prefix}/static/dashboard.js").status_code == 200
        # the host keeps its own pages
        assert "the host's own page" in client.get("/").text


def test_an_action_needs_its_csrf_token_and_then_works_under_the_mount(host: ServerProcess, project: Project) -> None:
    with httpx.Client(base_url=_site(host.url), headers=OPERATOR) as client:
        _a_cancel_needs_the_dashboards_csrf_token(client, _prefix(host), project)


def _a_cancel_needs_the_dashboards_csrf_token(client: httpx.Client, prefix: str, project: Project) -> None:
    """Cancel a new execution through ``client``: refused with a forged CSRF token, nothing
    changed; done with the page's, and back to a page under ``prefix``."""
    execution_id = project.durable.start("noop", {})
    client.get(f"{prefix}/")
    refused = client.post(f"{prefix}{cancel_path(execution_id)}", data={"csrf_token": "forged"})
    assert refused.status_code == 403 and "the form is stale" in refused.text  # the dashboard's answer
    assert project.durable.get_execution(execution_id).status == "pending"
    done = client.post(f"{prefix}{cancel_path(execution_id)}", data=csrf_form(client))
    assert done.status_code == 303, done.text[-2000:]
    assert done.headers["location"] == f"{prefix}/executions/{execution_id}?flash=cancelled"
    assert project.durable.get_execution(execution_id).status == "cancelled"


def test_the_host_auth_callable_decides_who_gets_in(host: ServerProcess, project: Project) -> None:
    prefix = _prefix(host)
    execution_id = project.durable.start("noop", {})
    with httpx.Client(base_url=_site(host.url)) as stranger:
        assert stranger.get(f"{prefix}/").status_code == 403
        assert stranger.get(f"{prefix}/events").status_code == 403
        stranger.get(f"{prefix}/static/dashboard.css")
        refused = stranger.post(f"{prefix}{cancel_path(execution_id)}",
                                data={"csrf_token": stranger.cookies.get("durable_csrf") or "none"})
        assert refused.status_code == 403
    assert project.durable.get_execution(execution_id).status == "pending"


def test_the_event_stream_works_under_the_mount(host: ServerProcess, project: Project) -> None:
    prefix = _prefix(host)
    with httpx.Client(base_url=_site(host.url), headers=OPERATOR) as client:
        event = event_for_a_start(client, f"{prefix}/events", lambda: project.durable.start("noop", {}))
    assert event["kind"] == "execution.started" and event["workflow"] == "noop"


def test_many_open_event_streams_do_not_hold_back_the_pages(host: ServerProcess) -> None:
    # more streams than an asyncio server's default thread pool has threads (cores + 4)
    prefix = _prefix(host)
    with httpx.Client(base_url=_site(host.url), headers=OPERATOR,
                      limits=httpx.Limits(max_connections=40)) as client, ExitStack() as streams:
        for _ in range(12):
            response = streams.enter_context(client.stream("GET", f"{prefix}/events", timeout=10))
            assert next(response.iter_lines()).startswith("retry:")
        started = time.monotonic()
        assert client.get(f"{prefix}/executions", timeout=10).status_code == 200
        assert time.monotonic() - started < 2


# --- Django --------------------------------------------------------------------------------------

@contextmanager
def _signed_in(site: ServerProcess, username: str | None) -> Iterator[httpx.Client]:
    """A browser of the Django site, signed in as ``username`` (None: anonymous)."""
    with httpx.Client(base_url=_site(site.url)) as client:
        if username is not None:
            assert client.get(f"/site/test-login/{username}/").status_code == 204
        yield client


def test_in_django_only_active_staff_get_in_by_default(django_site: ServerProcess) -> None:
    for who in (None, "clerk"):
        with _signed_in(django_site, who) as client:
            denied = client.get("/site/durable/")
            assert denied.status_code == 403, who
            assert "you may not use this dashboard" in denied.text
    with _signed_in(django_site, "staff") as client:
        assert client.get("/site/durable/").status_code == 200


def test_in_django_the_pages_link_under_the_include_and_the_script_name(django_site: ServerProcess) -> None:
    with _signed_in(django_site, "staff") as client:
        overview = client.get("/site/durable/")
        _assert_links_under("/site/durable", overview.text)
        listing = client.get("/site/durable/executions", params={"status": "pending"})
        assert listing.status_code == 200
        _assert_links_under("/site/durable", listing.text)
        asset = client.get("/site/durable/static/dashboard.css")
        assert asset.status_code == 200 and asset.headers["content-type"].startswith("text/css")
        assert "content-security-policy" in overview.headers and overview.headers["x-frame-options"] == "DENY"


def test_in_django_the_dashboard_checks_its_own_csrf_token_not_djangos(django_site: ServerProcess,
                                                                       project: Project) -> None:
    # Django's CsrfViewMiddleware would refuse these POSTs (no csrftoken cookie): the view is exempt
    with _signed_in(django_site, "staff") as client:
        _a_cancel_needs_the_dashboards_csrf_token(client, "/site/durable", project)


def test_in_django_the_event_stream_is_streamed(django_site: ServerProcess, project: Project) -> None:
    with _signed_in(django_site, "staff") as client:
        event = event_for_a_start(client, "/site/durable/events", lambda: project.durable.start("noop", {}))
    assert event["kind"] == "execution.started"

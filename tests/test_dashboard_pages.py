"""The dashboard's overview, executions list and live event stream, as a browser-like client
sees them (tests/dashboard_support.py), on a real project's PostgreSQL. No worker runs: the
started executions stay pending, which is all these pages need to show."""

from __future__ import annotations

import re
import time
import urllib.request
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import pytest

from durable_celery.dashboard import HOST_AUTH, Dashboard
from durable_celery.dashboard import hub as hub_module
from tests.conftest import Project
from tests.dashboard_support import DashboardClient


@pytest.fixture
def project(project_factory) -> Project:
    return project_factory()


@pytest.fixture
def client(project: Project) -> DashboardClient:
    return DashboardClient(Dashboard(project.durable, auth=HOST_AUTH))


def listed(text: str) -> list[str]:
    """The execution ids of a page's execution tables, in order."""
    return re.findall(r'<tr data-execution="([0-9a-f-]{36})">', text)


def test_the_overview_counts_executions_by_status_and_lists_the_newest(project: Project, client: DashboardClient):
    ids = [project.durable.start("noop", {"n": i}) for i in range(3)]
    page = client.get("/")
    assert page.status == 200
    assert re.search(r'data-status="pending">\s*<span class="count-n">3</span>', page.text)
    assert listed(page.text)[:3] == ids[::-1]
    assert 'href="/executions?workflow=noop"' in page.text


def test_the_list_is_filtered_by_the_urls_parameters_and_shows_them_in_the_filter_bar(project: Project,
                                                                                        client: DashboardClient):
    noop = [project.durable.start("noop", {}) for _ in range(2)]
    pipeline = project.durable.start("pipeline", {"items": [1]})
    project.durable.cancel(noop[0])

    page = client.get("/executions", {"workflow": "noop"})
    assert set(listed(page.text)) == set(noop)
    assert '<option value="noop" selected>' in page.text

    page = client.get("/executions", {"workflow": "noop", "status": "cancelled"})
    assert listed(page.text) == [noop[0]]
    assert '<option value="cancelled" selected>' in page.text

    assert listed(client.get("/executions", {"status": "pending"}).text) == [pipeline, noop[1]]
    assert listed(client.get("/executions", {"range": "15m", "workflow": "pipeline"}).text) == [pipeline]
    later = (datetime.now(timezone.utc) + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S")
    assert listed(client.get("/executions", {"from": later}).text) == []
    assert set(listed(client.get("/executions", {"to": later}).text)) == {*noop, pipeline}


def test_an_id_prefix_finds_its_executions_and_a_whole_id_opens_the_execution(project: Project,
                                                                               client: DashboardClient):
    ids = [project.durable.start("noop", {}) for _ in range(4)]
    target = ids[2]
    found = listed(client.get("/executions", {"id": target[:8].upper()}).text)
    assert found == [target]
    page = client.get("/executions", {"id": target})
    assert page.status == 303 and page.location == f"/executions/{target}"


def test_pages_follow_one_another_by_cursor_without_overlap(project: Project, client: DashboardClient,
                                                            monkeypatch: pytest.MonkeyPatch):
    from durable_celery.dashboard.pages import executions

    monkeypatch.setattr(executions, "PAGE_SIZE", 3)
    ids = [project.durable.start("noop", {}) for _ in range(7)]
    seen: list[str] = []
    page = client.get("/executions", {"workflow": "noop"})
    while True:
        seen += listed(page.text)
        found = re.search(r'<a href="([^"]+)" rel="next">', page.text)
        if not found:
            break
        link = found.group(1).replace("&amp;", "&")
        assert "workflow=noop" in link  # the filters ride along with the cursor
        page = client.get(link)
        assert "First page" in page.text
    assert seen == ids[::-1]


@pytest.mark.parametrize(("query", "message"), [
    ({"status": "sleeping"}, "sleeping"),
    ({"range": "3 weeks"}, "unknown range"),
    ({"from": "yesterday"}, "from must be a date and time"),
    ({"id": "xyz"}, "id_prefix must be"),
    ({"cursor": "not-a-cursor"}, "cursor"),
])
def test_a_bad_filter_is_a_clear_400_page(client: DashboardClient, query: dict[str, str], message: str):
    page = client.get("/executions", query)
    assert page.status == 400
    assert message in page.text
    assert "<table" not in page.text


def test_a_live_refresh_gets_only_the_pages_main_content(project: Project, client: DashboardClient):
    whole = client.get("/executions")
    part = client.get("/executions", headers={"X-Durable-Fragment": "1"})
    assert "<html" in whole.text and "<html" not in part.text
    assert '<form class="filters"' in part.text


@pytest.fixture
def served(project: Project, serve_dashboard: Callable[[Dashboard], str]) -> tuple[Dashboard, str]:
    """The project's dashboard on the standalone server (tests/browser_support.py), and its URL."""
    board = Dashboard(project.durable, auth=HOST_AUTH, local_only=True)
    return board, serve_dashboard(board)


def read_event(stream) -> str:
    """The data line of the next event, past keep-alive comments."""
    while True:
        line = stream.readline().decode()
        assert line, "the event stream ended"
        if line.startswith("data:"):
            return line


def test_open_pages_receive_an_event_within_a_second_of_a_change_through_one_subscription(
        project: Project, served: tuple[Dashboard, str]):
    board, url = served
    everything = urllib.request.urlopen(f"{url}/events", timeout=10)
    first = project.durable.start("noop", {})
    one = urllib.request.urlopen(f"{url}/events?execution={first}", timeout=10)
    try:
        assert everything.headers["Content-Type"] == "text/event-stream"
        time.sleep(1.2)  # the engine looks for subscribers once a second
        assert board.hub.listening
        started = time.monotonic()
        project.durable.cancel(first)
        data = read_event(one)
        while "execution.cancelled" not in data:  # its start, if the engine saw the page in time
            assert first in data
            data = read_event(one)
        assert first in data
        assert time.monotonic() - started < 1.5
        other = project.durable.start("noop", {})
        data = read_event(everything)
        while other not in data:
            data = read_event(everything)
        assert "execution.started" in data
        assert time.monotonic() - started < 3
    finally:
        everything.close()
        one.close()


def test_the_subscription_ends_when_the_last_page_has_gone(project: Project, served: tuple[Dashboard, str],
                                                          monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(hub_module, "IDLE_STOP", 0.5)
    monkeypatch.setattr(hub_module, "POLL", 0.2)
    board, url = served
    stream = urllib.request.urlopen(f"{url}/events", timeout=10)
    stream.readline()
    assert board.hub.listening
    stream.close()
    deadline = time.monotonic() + 15  # the server notices the closed page at its next keep-alive
    while board.hub.listening and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not board.hub.listening

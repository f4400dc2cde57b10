"""Browser tests of the dashboard: a real headless Chromium (Debian's ``chromium`` package,
driven by Playwright pointed at that executable: nothing is downloaded) against a dashboard
served by the standalone server over a test project with real workers.

Fixtures (a pytest plugin, loaded by tests/conftest.py; Playwright is imported only when a
browser test runs, so the suites without it still load this module):

* ``chromium``: one browser per test module;
* ``browser_project``: a test project with one running worker;
* ``serve_dashboard``: serves a ``Dashboard`` on a free port of 127.0.0.1 and returns its URL;
  every server is shut down after the test, whether it passed or not;
* ``dashboard_url``: ``browser_project``'s dashboard, served (no auth, loopback only, as
  ``celery -A proj durable dashboard`` runs it by default);
* ``browser_context``: a fresh browser context (cookies, storage) per test, 1280x800; when the
  test fails, a screenshot and the HTML of each of its pages are saved under the test's tmp dir
  and their paths added to the failure report.

``readme_screenshot(page, name)`` saves ``docs/images/<name>.png`` for the README, only when
``DURABLE_SCREENSHOTS=1`` (so CI never rewrites tracked files).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIServer

import pytest

from durable_celery.dashboard import HOST_AUTH, Dashboard
from durable_celery.dashboard.pages import live
from durable_celery.dashboard.server import make
from durable_celery.runtime.live import LOOK_EVERY

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Locator, Page

    from tests.conftest import Project

CHROMIUM = os.environ.get("DURABLE_TEST_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "images"
VIEWPORT: Any = {"width": 1280, "height": 800}  # Playwright's ViewportSize
#: how long a page waits for what a test expects to see (Playwright's default is 30 s)
EXPECT_TIMEOUT_MS = 15_000
#: set on a page's window by ``mark_window``; a navigation or reload loses it
MARKER = "__durableTestMarker"

_CONTEXT = pytest.StashKey["tuple[BrowserContext, Path]"]()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """Headless Chromium, one per test module; it must be installed (scripts/test installs it)."""
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"no Chromium at {CHROMIUM}: the browser tests need Debian's chromium package "
                    "(apt-get install -y chromium; scripts/test installs it) or DURABLE_TEST_CHROMIUM", pytrace=False)
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def browser_project(project_factory: Callable[..., Project]) -> Project:
    """A test project (Redis broker) with one running worker."""
    project = project_factory("redis")
    project.worker()
    return project


@pytest.fixture
def serve_dashboard(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Dashboard], str]]:
    """Serve dashboards with the standalone server (``durable_celery/dashboard/server.py``), each
    on a free port of 127.0.0.1 in a thread; returns the base URL. After the test every server
    is shut down and every thread that answered a request has ended, passed or failed."""
    # An event stream notices that its browser is gone (or that the test is over) when it next
    # writes: a keep-alive every half second, instead of 10 s, lets it end before the project
    # it reads is dropped.
    monkeypatch.setattr(live, "KEEPALIVE", 0.5)
    stopping = threading.Event()
    handlers: set[threading.Thread] = set()
    servers: list[tuple[WSGIServer, threading.Thread]] = []
    dashboards: list[Dashboard] = []

    def serve(dashboard: Dashboard) -> str:
        dashboards.append(dashboard)
        app = dashboard.wsgi()

        def tracked(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
            handlers.add(threading.current_thread())
            return _until(stopping, app(environ, start_response))

        server = make(tracked, "127.0.0.1", 0)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                  name=f"dashboard-{server.server_port}", daemon=True)
        thread.start()
        servers.append((server, thread))
        return f"http://127.0.0.1:{server.server_port}"

    yield serve
    stopping.set()
    for server, thread in servers:
        try:
            server.shutdown()
        finally:
            server.server_close()
        thread.join(timeout=5)
    for dashboard in dashboards:  # its event subscription, before the project's schema is dropped
        dashboard.close()
    threads = [*handlers, *(thread for _, thread in servers)]
    for thread in threads:
        thread.join(timeout=5)
    left = [thread.name for thread in threads if thread.is_alive()]
    assert not left, f"dashboard server threads still running after the test: {left}"


def _until(stopping: threading.Event, body: Iterable[bytes]) -> Iterator[bytes]:
    """``body``, ended early once ``stopping`` is set (an event stream never ends by itself)."""
    try:
        for chunk in body:
            yield chunk
            if stopping.is_set():
                return
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()


@pytest.fixture
def dashboard_url(browser_project: Project, serve_dashboard: Callable[[Dashboard], str]) -> str:
    """``browser_project``'s dashboard, served as ``celery -A proj durable dashboard`` serves it
    on localhost without a token."""
    return serve_dashboard(Dashboard(browser_project.durable, auth=HOST_AUTH, local_only=True))


@pytest.fixture
def browser_context(chromium: Browser, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BrowserContext]:
    """A fresh browser context for the test: no cookies, no storage, a 1280x800 window."""
    context = chromium.new_context(viewport=VIEWPORT)
    context.set_default_timeout(EXPECT_TIMEOUT_MS)
    request.node.stash[_CONTEXT] = (context, tmp_path)
    try:
        yield context
    finally:
        del request.node.stash[_CONTEXT]
        context.close()


@pytest.fixture
def page(browser_context: BrowserContext) -> Page:
    """A page of the test's fresh browser context."""
    return browser_context.new_page()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """When a browser test fails, keep what its pages showed: a screenshot and the HTML of each."""
    report = yield
    if report.failed and report.when in ("setup", "call") and _CONTEXT in item.stash:
        context, folder = item.stash[_CONTEXT]
        report.sections.append(("browser", _save_pages(context, folder / "browser")))
    return report


def _save_pages(context: BrowserContext, folder: Path) -> str:
    from playwright.sync_api import Error

    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for number, shown in enumerate(context.pages, 1):
        base = folder / f"page-{number}"
        try:
            shown.screenshot(path=base.with_suffix(".png"), full_page=True)
            base.with_suffix(".html").write_text(shown.content())
            lines.append(f"page {number} ({shown.url}): {base}.png and {base}.html")
        except Error as error:
            lines.append(f"page {number} ({shown.url}): could not be saved: {error}")
    return "\n".join(lines) or "the test had no page open"


def readme_screenshot(page: Page, name: str) -> None:
    """Save the page as ``docs/images/<name>.png`` (the README's screenshots) when
    ``DURABLE_SCREENSHOTS=1``; otherwise do nothing, so a test run never rewrites them."""
    if os.environ.get("DURABLE_SCREENSHOTS") != "1":
        return
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.mouse.move(0, 0)  # no hover effect in the picture
    page.screenshot(path=SCREENSHOTS / f"{name}.png", animations="disabled", caret="hide")


def mark_window(page: Page) -> None:
    """Mark the page's window: ``assert_not_reloaded`` finds the mark only if the page never
    navigated or reloaded since."""
    page.evaluate(f"window.{MARKER} = 'kept'")


def assert_not_reloaded(page: Page) -> None:
    assert page.evaluate(f"window.{MARKER}") == "kept", f"{page.url} was reloaded or navigated away"


def open_live(page: Page, url: str) -> Page:
    """Open ``url``, wait until its live updates are connected and the engine writes events for
    them, and mark its window.

    A process writes events only once it has seen a subscriber, and it looks at most once a
    second (``LOOK_EVERY``): a worker that last looked just before the page subscribed would
    keep the change the test makes next to itself."""
    from playwright.sync_api import expect

    response = page.goto(url)
    assert response is not None and response.ok, f"{url} answered {response.status if response else None}"
    expect(page.locator("body")).to_have_attribute("data-live", "on")
    page.wait_for_timeout((LOOK_EVERY + 0.25) * 1000)
    mark_window(page)
    return page


def count_of(page: Page, status: str) -> Locator:
    """The overview's count of executions in ``status``."""
    return page.locator(f'.counts a[data-status="{status}"] .count-n')


def rows(page: Page) -> Locator:
    """The rows of the page's (first) table of executions."""
    return page.locator("table.executions").first.locator("tr[data-execution]")


def row_ids(found: Locator) -> set[str]:
    """The execution ids of ``found`` rows."""
    return {str(row.get_attribute("data-execution")) for row in found.all()}

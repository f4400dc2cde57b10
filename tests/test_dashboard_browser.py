"""The dashboard in a real headless Chromium against real workers: what a user sees and does on
the overview and the executions list (tests/browser_support.py has the fixtures)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

from playwright.sync_api import BrowserContext, Page, expect

from durable_celery.dashboard import Dashboard
from tests.browser_support import assert_not_reloaded, count_of, open_live, readme_screenshot, row_ids, rows
from tests.conftest import Project

TOKEN = "browser-test-token-0123456789"


def test_a_started_workflow_appears_and_completes_on_the_open_pages_without_a_reload(
        browser_project: Project, dashboard_url: str, browser_context: BrowserContext) -> None:
    overview = open_live(browser_context.new_page(), dashboard_url + "/")
    listing = open_live(browser_context.new_page(), dashboard_url + "/executions")
    expect(count_of(overview, "completed")).to_have_text("0")
    expect(rows(listing)).to_have_count(0)

    execution_id = browser_project.durable.start("dash_browser_steps", {"order": "A-7"})

    row = listing.locator(f'tr[data-execution="{execution_id}"]')
    expect(row.locator(".status")).to_have_text("running")
    expect(count_of(overview, "running")).to_have_text("1")
    expect(row.locator(".status")).to_have_text("completed")
    expect(count_of(overview, "running")).to_have_text("0")
    expect(count_of(overview, "completed")).to_have_text("1")
    expect(overview.locator(f'tr[data-execution="{execution_id}"] .status')).to_have_text("completed")
    assert_not_reloaded(overview)
    assert_not_reloaded(listing)
    assert browser_project.durable.get_execution(execution_id).status == "completed"


def test_the_overview_counts_every_status_and_lists_the_failures(
        browser_project: Project, dashboard_url: str, page: Page) -> None:
    durable = browser_project.durable
    done = [durable.start("dash_browser_steps", {"order": f"A-{n}", "pause": 0.05}) for n in range(3)]
    failed = durable.start("dash_browser_fails", {"street": "Nowhere Lane 7"})
    waiting = [durable.start("dash_browser_approval", {"customer": "Ada Lovelace"}),
               durable.start("dash_browser_release")]
    for execution_id in [*done, failed]:
        browser_project.wait(execution_id)
    for execution_id in waiting:
        browser_project.wait(execution_id, statuses={"waiting"})

    open_live(page, dashboard_url + "/")
    expected = {"completed": 3, "failed": 1, "waiting": 2, "running": 0, "pending": 0, "cancelled": 0}
    for status, count in expected.items():
        expect(count_of(page, status)).to_have_text(str(count))
    failures = page.locator('h2:text-is("Recent failures") + table.executions tr[data-execution]')
    assert row_ids(failures) == {failed}
    readme_screenshot(page, "dashboard-overview")

    page.get_by_role("link", name="All executions").click()
    expect(page).to_have_url(dashboard_url + "/executions")
    expect(rows(page)).to_have_count(6)
    assert row_ids(rows(page)) == {*done, failed, *waiting}
    readme_screenshot(page, "dashboard-executions")


def test_the_list_filtered_by_its_url_shows_the_filter_and_only_matching_rows(
        browser_project: Project, dashboard_url: str, page: Page) -> None:
    durable = browser_project.durable
    completed = [durable.start("dash_browser_steps", {"pause": 0}) for _ in range(2)]
    later = durable.start("dash_browser_steps", scheduled_at=datetime.now(timezone.utc) + timedelta(hours=1))
    failed = durable.start("dash_browser_fails")
    for execution_id in [*completed, failed]:
        browser_project.wait(execution_id)

    open_live(page, dashboard_url + "/executions?workflow=dash_browser_steps&status=completed")

    bar = page.locator("form.filters")
    expect(bar.locator('select[name="workflow"]')).to_have_value("dash_browser_steps")
    expect(bar.locator('select[name="status"]')).to_have_value("completed")
    expect(rows(page)).to_have_count(2)
    assert row_ids(rows(page)) == set(completed)
    assert later not in row_ids(rows(page))


def test_changing_the_filter_bar_filters_the_list_and_puts_the_filter_in_the_url(
        browser_project: Project, dashboard_url: str, page: Page) -> None:
    durable = browser_project.durable
    completed = durable.start("dash_browser_steps", {"pause": 0})
    failed = durable.start("dash_browser_fails")
    for execution_id in (completed, failed):
        browser_project.wait(execution_id)
    open_live(page, dashboard_url + "/executions?workflow=dash_browser_steps&status=completed")
    bar = page.locator("form.filters")

    bar.locator('select[name="workflow"]').select_option("dash_browser_fails")
    bar.locator('select[name="status"]').select_option("failed")
    # the list refreshes live while the user is choosing: the filter bar keeps the choice
    refreshed = page.evaluate("document.body.dataset.refreshed")
    browser_project.wait(durable.start("dash_browser_steps", {"pause": 0}))
    expect(page.locator("body")).not_to_have_attribute("data-refreshed", str(refreshed))
    expect(bar.locator('select[name="workflow"]')).to_have_value("dash_browser_fails")
    assert_not_reloaded(page)
    bar.get_by_role("button", name="Filter").click()

    expect(rows(page)).to_have_count(1)
    assert row_ids(rows(page)) == {failed}
    query = parse_qs(urlsplit(page.url).query)
    assert query["workflow"] == ["dash_browser_fails"] and query["status"] == ["failed"]
    expect(page.locator('form.filters select[name="workflow"]')).to_have_value("dash_browser_fails")
    expect(page.locator('form.filters select[name="status"]')).to_have_value("failed")


def test_a_token_protected_dashboard_shows_401_without_the_token_and_a_link_with_it_lets_you_in(
        project_factory: Callable[..., Project], serve_dashboard: Callable[[Dashboard], str],
        browser_context: BrowserContext) -> None:
    url = serve_dashboard(Dashboard(project_factory().durable, auth=TOKEN))
    page = browser_context.new_page()

    for attempt in ("/executions?status=failed", "/?token=not-the-right-token-at-all"):
        response = page.goto(url + attempt)
        assert response is not None and response.status == 401, attempt
        expect(page.locator(".error-message")).to_contain_text("this dashboard needs its token")
        expect(page.locator("header nav")).to_have_count(0)

    response = page.goto(url + f"/executions?status=failed&token={TOKEN}")

    assert response is not None and response.status == 200
    expect(page).to_have_url(url + "/executions?status=failed")
    expect(page.get_by_role("heading", name="Executions")).to_be_visible()
    expect(page.locator('select[name="status"]')).to_have_value("failed")
    # the token is now a cookie of this browser: the other pages open without it
    page.get_by_role("link", name="Overview").click()
    expect(page).to_have_url(url + "/")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()

"""The dashboard's actions in a real headless Chromium against real workers: answering an
approval in the inbox, cancelling from the execution detail page (tests/browser_support.py has
the fixtures).
"""

from __future__ import annotations

from playwright.sync_api import BrowserContext, Dialog, expect

from durable_celery.dashboard.render import FLASHES
from tests.browser_support import assert_not_reloaded, open_live, readme_screenshot
from tests.conftest import Project


def approval_card(execution_id: str) -> str:
    return f'article.inbox-card[data-execution="{execution_id}"][data-input="manager_approval"]'


def approval_form(execution_id: str) -> str:
    return f'form[data-action="provide-input"][data-execution="{execution_id}"][data-input="manager_approval"]'


def test_an_approval_answered_in_the_inbox_resumes_the_workflow_live_on_its_detail_page(
        browser_project: Project, dashboard_url: str, browser_context: BrowserContext) -> None:
    durable = browser_project.durable
    ada = durable.start("dash_browser_approval", {"customer": "Ada Lovelace"})
    grace = durable.start("dash_browser_approval", {"customer": "Grace Hopper", "amount": 80})
    for execution_id in (ada, grace):
        browser_project.wait(execution_id, statuses={"waiting"})
    detail = open_live(browser_context.new_page(), f"{dashboard_url}/executions/{ada}")
    status = detail.locator("#execution-status")
    expect(status).to_have_attribute("data-status", "waiting")

    inbox = open_live(browser_context.new_page(), f"{dashboard_url}/inbox")
    expect(inbox.locator(approval_card(ada))).to_contain_text("Refund 120 EUR to Ada Lovelace?")
    expect(inbox.locator(approval_card(grace))).to_contain_text("Refund 80 EUR to Grace Hopper?")
    readme_screenshot(inbox, "dashboard-inbox")
    inbox.locator(approval_form(ada)).locator('button[name="decision"][value="approved"]').click()

    expect(inbox.locator(".flash")).to_have_text(FLASHES["input-provided"])
    expect(inbox.locator(approval_form(ada))).to_have_count(0)
    expect(inbox.locator(approval_form(grace))).to_have_count(1)
    expect(status).to_have_attribute("data-status", "completed")
    assert_not_reloaded(detail)
    readme_screenshot(detail, "dashboard-execution")
    answered = browser_project.wait(ada)
    assert answered.status == "completed"
    assert answered.context["decision"] == "approved" and answered.context["paid"] is True
    assert durable.get_execution(grace).status == "waiting"


def test_cancelling_a_waiting_execution_from_its_detail_page_asks_first_then_cancels_it(
        browser_project: Project, dashboard_url: str, browser_context: BrowserContext) -> None:
    durable = browser_project.durable
    execution_id = durable.start("dash_browser_release")
    browser_project.wait(execution_id, statuses={"waiting"})
    detail = open_live(browser_context.new_page(), f"{dashboard_url}/executions/{execution_id}")
    cancel = detail.locator('form[data-action="cancel"]')
    question = cancel.get_attribute("data-confirm")
    assert question, "the cancel form asks for a confirmation"
    asked: list[str] = []

    def decline(dialog: Dialog) -> None:
        asked.append(dialog.message)
        dialog.dismiss()

    detail.once("dialog", decline)
    cancel.locator("button, input[type=submit]").first.click()

    assert asked == [question]
    detail.wait_for_timeout(500)  # time for a POST that must not happen
    assert_not_reloaded(detail)
    assert durable.get_execution(execution_id).status == "waiting"

    def accept(dialog: Dialog) -> None:
        asked.append(dialog.message)
        dialog.accept()

    detail.once("dialog", accept)
    cancel.locator("button, input[type=submit]").first.click()

    assert asked == [question, question]
    expect(detail.locator(".flash")).to_have_text(FLASHES["cancelled"])
    expect(detail.locator("#execution-status")).to_have_attribute("data-status", "cancelled")
    assert browser_project.wait(execution_id).status == "cancelled"

"""The dashboard's schedules and queues pages, as a browser-like client uses them
(tests/dashboard_support.py), against a real project with a worker: enabling, disabling and
triggering a schedule change what ``list_schedules`` returns and start a run; pausing a queue
holds its steps until it is resumed."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from durable_celery.dashboard import HOST_AUTH, Dashboard
from tests.conftest import Project
from tests.dashboard_support import DashboardClient, forms, the_form, working_project


@pytest.fixture(scope="module")
def project() -> Iterator[Project]:
    yield from working_project(beat=False, queue_limits={})  # the project's queue is controlled: it can be paused


@pytest.fixture
def client(project: Project) -> DashboardClient:
    return DashboardClient(Dashboard(project.durable, auth=HOST_AUTH))


def test_a_schedule_is_listed_with_its_cron_zone_and_next_run_and_is_disabled_then_enabled(project: Project,
                                                                                           client: DashboardClient):
    project.durable.schedule("dash_inbox_tick", "0 9 * * MON-FRI", name="weekday report", timezone="Europe/Paris")
    page = client.get("/schedules")
    assert page.status == 200 and '<main id="main" data-live="all">' in page.text
    assert '<tr data-schedule="weekday report" data-enabled="true">' in page.text
    assert "<code>0 9 * * MON-FRI</code>" in page.text and "Europe/Paris" in page.text
    next_run = project.durable.get_schedule("weekday report").next_run_at
    assert next_run is not None and next_run.strftime("%Y-%m-%d %H:%M:%S UTC") in page.text
    disable = the_form(page, action="disable", schedule="weekday report")
    assert disable.attrs["action"] == "/schedules/weekday%20report/disable"
    assert forms(page, action="enable", schedule="weekday report") == []

    done = client.post("/schedules/weekday report/disable")
    assert done.status == 303 and done.location == "/schedules?flash=disabled"
    schedule = project.durable.get_schedule("weekday report")
    assert not schedule.enabled and schedule.next_run_at is None
    page = client.follow(done)
    assert "Schedule disabled." in page.text and '<tr data-schedule="weekday report" data-enabled="false">' in page.text
    the_form(page, action="enable", schedule="weekday report")

    assert client.post("/schedules/weekday report/enable").location == "/schedules?flash=enabled"
    schedule = project.durable.get_schedule("weekday report")
    assert schedule.enabled and schedule.next_run_at is not None
    assert "weekday report" in [s.name for s in project.durable.list_schedules(enabled=True)]


def test_run_now_starts_an_execution_and_links_to_it(project: Project, client: DashboardClient):
    project.durable.schedule("dash_inbox_tick", "0 0 1 1 *", name="yearly/<b>close</b>", input={"year": 2026},
                             enabled=False)
    page = client.get("/schedules")
    assert "<b>close</b>" not in page.text and "yearly/&lt;b&gt;close&lt;/b&gt;" in page.text
    trigger = the_form(page, action="trigger", schedule="yearly/<b>close</b>")
    assert trigger.attrs["data-confirm"] == "Start a run of dash_inbox_tick now?"

    done = client.post("/schedules/yearly/<b>close</b>/trigger")
    assert done.status == 303 and done.location.startswith("/schedules?flash=triggered&execution=")
    execution_id = done.location.rsplit("=", 1)[1]
    page = client.follow(done)
    assert "Schedule triggered: a run started." in page.text and f'href="/executions/{execution_id}"' in page.text
    execution = project.wait(execution_id)
    assert execution.status == "completed" and execution.context == {"year": 2026, "ran": True}
    schedule = project.durable.get_schedule("yearly/<b>close</b>")
    assert schedule.last_execution_id == execution_id and not schedule.enabled


def test_an_unknown_schedule_is_not_found_and_changes_nothing(project: Project, client: DashboardClient):
    before = project.durable.list_schedules()
    for action in ("enable", "disable", "trigger"):
        page = client.post(f"/schedules/no such schedule/{action}")
        assert page.status == 404 and "no schedule named &#39;no such schedule&#39;" in page.text
    assert client.post("/schedules/x/explode").status == 404
    assert project.durable.list_schedules() == before


def test_a_paused_queue_holds_its_steps_until_resumed(project: Project, client: DashboardClient):
    queue = project.queue
    page = client.get("/queues")
    assert page.status == 200 and f'<tr data-queue="{queue}" data-paused="false">' in page.text
    assert the_form(page, action="pause", queue=queue).attrs["action"] == f"/queues/{queue}/pause"

    paused = client.post(f"/queues/{queue}/pause")
    assert paused.status == 303 and paused.location == "/queues?flash=paused"
    assert project.durable.queue_stats(queue).paused
    page = client.follow(paused)
    assert "Queue paused." in page.text and f'<tr data-queue="{queue}" data-paused="true">' in page.text
    the_form(page, action="resume", queue=queue)

    held = project.durable.start("dash_inbox_tick", {})
    time.sleep(2)
    assert project.durable.get_execution(held).status == "pending"
    assert client.post(f"/queues/{queue}/resume").location == "/queues?flash=resumed"
    assert not project.durable.queue_stats(queue).paused
    assert project.wait(held).status == "completed"


def test_only_a_controlled_queue_can_be_paused_and_an_unknown_one_is_not_found(project: Project,
                                                                               client: DashboardClient):
    project.wait(project.durable.start("dash_inbox_tick", {}))  # the engine has loaded every workflow's queue
    page = client.get("/queues")
    assert '<tr data-queue="durable-test-special" data-paused="false">' in page.text
    assert forms(page, queue="durable-test-special") == []
    refused = client.post("/queues/durable-test-special/pause")
    assert refused.status == 400 and "only the queues listed in the engine&#39;s queues= setting" in refused.text
    unknown = client.post("/queues/nowhere/pause")
    assert unknown.status == 404 and "no queue named &#39;nowhere&#39;" in unknown.text
    assert not any(q.paused for q in project.durable.list_queues())


def test_actions_without_the_pages_csrf_token_are_refused_and_change_nothing(project: Project,
                                                                             client: DashboardClient):
    project.durable.schedule("dash_inbox_tick", "0 0 1 1 *", name="guarded")
    client.get("/schedules")
    for path in ("/schedules/guarded/disable", "/schedules/guarded/trigger", f"/queues/{project.queue}/pause"):
        assert client.post(path, csrf=False).status == 403
    assert project.durable.get_schedule("guarded").enabled
    assert project.durable.get_schedule("guarded").last_run_at is None
    assert not project.durable.queue_stats(project.queue).paused

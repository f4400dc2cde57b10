"""The execution page of the dashboard (``/executions/<id>``) and its actions, against a real
project with a running worker and beat: what a user sees of an execution (its steps, graph,
errors, values, parent and children) and what they can do to it (cancel, retry, send an event)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from typing import Any

import pytest

from durable_celery import Workflow
from durable_celery.dashboard import HOST_AUTH, Dashboard
from tests.conftest import Project
from tests.dashboard_support import DashboardClient, Page, working_project
from tests.proj.factory import make


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, {name: value or "" for name, value in attrs}))


def tags(page: Page, tag: str, **attrs: str) -> list[dict[str, str]]:
    """The attributes of every ``tag`` of the page that has ``attrs`` (``data_x`` for ``data-x``)."""
    parser = _Tags()
    parser.feed(page.text)
    wanted = {name.replace("_", "-"): value for name, value in attrs.items()}
    return [found for name, found in parser.found
            if name == tag and all(found.get(k) == v for k, v in wanted.items())]


@pytest.fixture(scope="module")
def project() -> Iterator[Project]:
    yield from working_project(beat=True)


@pytest.fixture
def client(project: Project) -> DashboardClient:
    return DashboardClient(Dashboard(project.durable, auth=HOST_AUTH))


def finished(project: Project, workflow: str, input: dict[str, Any] | None = None) -> str:
    execution_id = project.durable.start(workflow, input or {})
    project.wait(execution_id)
    return execution_id


def waiting(project: Project) -> str:
    execution_id = project.durable.start("dash_waiter", {"order": 7})
    project.wait(execution_id, statuses={"waiting"})
    return execution_id


def test_a_completed_execution_shows_every_step_attempt_and_its_graph_with_states(
        project: Project, client: DashboardClient) -> None:
    execution_id = finished(project, "dash_linear", {"note": "hello"})
    page = client.get(f"/executions/{execution_id}")
    assert page.status == 200
    assert tags(page, "span", id="execution-status") == [
        {"id": "execution-status", "data-status": "completed", "class": "status status-completed"}]
    assert tags(page, "main")[0]["data-live"] == f"execution:{execution_id}"
    assert tags(page, "a", data_link="workflow")[0]["href"] == "/executions?workflow=dash_linear"
    steps = [(li["data-step"], li["data-attempt"], li["data-status"]) for li in tags(page, "li", **{"class": "attempt"})]
    assert steps == [("dash_fetch", "1", "completed"), ("dash_transform", "1", "completed"),
                     ("dash_store", "1", "completed")]
    # what each attempt logged and printed, behind a <details>
    assert "fetching hello" in page.text and "transforming" in page.text and "stored" in page.text
    assert len(tags(page, "details", **{"class": "attempt-logs"})) == 3
    nodes = {g["data-node"]: g for g in tags(page, "g") if "data-node" in g}
    assert {n: nodes[n].get("data-state") for n in ("dash_fetch", "dash_transform", "dash_store")} == dict.fromkeys(
        ("dash_fetch", "dash_transform", "dash_store"), "completed")
    assert "reached" in nodes["$end"]["class"].split()
    assert [g["class"] for g in tags(page, "g") if g.get("data-source")] == ["edge taken"] * 4
    # no actions on a completed execution
    assert tags(page, "form", data_action="cancel") == tags(page, "form", data_action="retry") == []


def test_the_graph_shows_the_branch_taken_and_not_the_other(project: Project, client: DashboardClient) -> None:
    execution_id = finished(project, "routing", {"kind": "receipt"})
    page = client.get(f"/executions/{execution_id}")
    nodes = {g["data-node"]: g for g in tags(page, "g") if "data-node" in g}
    assert nodes["handle_receipt"]["class"] == "node node-step state-completed reached"
    assert nodes["handle_invoice"]["class"] == "node node-step"
    edges = {(g["data-source"], g["data-target"]): g["class"] for g in tags(page, "g") if g.get("data-source")}
    assert edges[("branch:handle_invoice", "handle_receipt")] == "edge taken"
    assert edges[("branch:handle_invoice", "handle_invoice")] == "edge"


def test_a_retried_step_shows_both_attempts(project: Project, client: DashboardClient) -> None:
    execution_id = finished(project, "dash_flaky")
    page = client.get(f"/executions/{execution_id}")
    attempts = tags(page, "li", **{"class": "attempt"}, data_step="dash_wobble")
    assert [(a["data-attempt"], a["data-status"]) for a in attempts] == [("1", "failed"), ("2", "completed")]
    assert "the first attempt fails" in page.text and '<span class="tag tag-retry">retry</span>' in page.text
    assert tags(page, "g", data_node="dash_wobble")[0]["data-attempts"] == "2"


def test_a_failed_execution_shows_its_error_and_traceback_and_is_retried_as_a_new_execution(
        project: Project, client: DashboardClient) -> None:
    execution_id = finished(project, "dash_broken", {"what": "the order"})
    page = client.get(f"/executions/{execution_id}")
    assert tags(page, "span", id="execution-status")[0]["data-status"] == "failed"
    assert tags(page, "div", id="execution-error")
    assert "ValueError</strong>: cannot handle the order" in page.text
    assert '<pre class="traceback">Traceback (most recent call last):' in page.text
    assert 'in dash_explode' in page.text
    assert tags(page, "g", data_node="dash_explode")[0]["data-state"] == "failed"
    assert tags(page, "form", data_action="cancel") == [] and len(tags(page, "form", data_action="retry")) == 1

    retried = client.post(f"/executions/{execution_id}/retry")
    assert retried.status == 303
    new_id = retried.location.split("/executions/")[1].split("?")[0]
    assert new_id != execution_id and retried.location.endswith("?flash=retried")
    again = project.wait(new_id)
    assert (again.workflow, again.input, again.status) == ("dash_broken", {"what": "the order"}, "failed")
    shown = client.follow(retried)
    assert "A new execution was started from this one." in shown.text
    assert tags(shown, "span", id="execution-status")[0]["data-status"] == "failed"


def test_a_waiting_execution_says_what_it_waits_for_and_completes_when_sent_its_event(
        project: Project, client: DashboardClient) -> None:
    execution_id = waiting(project)
    page = client.get(f"/executions/{execution_id}")
    assert tags(page, "span", id="execution-status")[0]["data-status"] == "waiting"
    assert "waiting in step dash_await_go for event go" in page.text
    assert tags(page, "li", **{"class": "attempt"}, data_step="dash_await_go")[0]["data-status"] == "waiting"
    [form] = tags(page, "form", data_action="send-event")
    assert form["data-form-key"] == "send-event" and form["action"] == f"/executions/{execution_id}/events"
    assert tags(page, "form", data_action="retry") == []

    sent = client.post(f"/executions/{execution_id}/events", {"name": "go", "payload": '{"approved": true}'})
    assert (sent.status, sent.location) == (303, f"/executions/{execution_id}?flash=event-sent")
    done = project.wait(execution_id)
    assert done.status == "completed" and done.context["go"] == {"approved": True}
    shown = client.follow(sent)
    assert "Event sent." in shown.text and tags(shown, "span", id="execution-status")[0]["data-status"] == "completed"


def test_an_event_sent_with_an_empty_payload_carries_null(project: Project, client: DashboardClient) -> None:
    execution_id = waiting(project)
    assert client.post(f"/executions/{execution_id}/events", {"name": "go", "payload": "  "}).status == 303
    assert project.wait(execution_id).context["go"] is None


@pytest.mark.parametrize(("form", "message"), [
    ({"name": "go", "payload": "{oops"}, "the payload is not JSON"),
    ({"name": "go", "payload": "NaN"}, "the payload is not JSON: NaN is not JSON"),
    ({"name": " ", "payload": "1"}, "an event needs a name"),
])
def test_an_event_with_a_bad_payload_or_no_name_is_refused_and_nothing_is_sent(
        project: Project, client: DashboardClient, form: dict[str, str], message: str) -> None:
    execution_id = waiting(project)
    refused = client.post(f"/executions/{execution_id}/events", form)
    assert refused.status == 400 and message in refused.text
    assert project.durable.list_pending_events(execution_id) == []
    assert project.durable.get_execution(execution_id).status == "waiting"
    project.durable.cancel(execution_id)


def test_cancel_without_compensation_stops_a_waiting_execution(project: Project, client: DashboardClient) -> None:
    execution_id = waiting(project)
    [form] = tags(client.get(f"/executions/{execution_id}"), "form", data_action="cancel")
    assert form["data-confirm"] and form["method"] == "post"
    cancelled = client.post(f"/executions/{execution_id}/cancel", {"reason": "<b>no longer needed</b>"})
    assert (cancelled.status, cancelled.location) == (303, f"/executions/{execution_id}?flash=cancelled")
    stopped = project.wait(execution_id)
    assert stopped.status == "cancelled" and stopped.error["message"] == "<b>no longer needed</b>"
    assert stopped.compensation_results == []
    page = client.follow(cancelled)
    assert "Cancellation requested." in page.text and "&lt;b&gt;no longer needed&lt;/b&gt;" in page.text
    assert tags(page, "form", data_action="cancel") == tags(page, "form", data_action="send-event") == []
    assert len(tags(page, "form", data_action="retry")) == 1


def test_cancel_with_compensation_runs_the_compensations_of_completed_steps(
        project: Project, client: DashboardClient) -> None:
    execution_id = waiting(project)
    cancelled = client.post(f"/executions/{execution_id}/cancel", {"compensate": "1"})
    assert cancelled.status == 303
    assert project.wait(execution_id).status == "compensated"
    page = client.get(f"/executions/{execution_id}")
    assert tags(page, "tr", data_compensation="dash_release")
    [compensation] = tags(page, "li", **{"class": "attempt"}, data_step="dash_release")
    assert compensation["data-compensation"] == "dash_reserve" and compensation["data-status"] == "completed"


def test_a_compensate_field_that_is_no_checkbox_value_is_refused(project: Project, client: DashboardClient) -> None:
    execution_id = waiting(project)
    refused = client.post(f"/executions/{execution_id}/cancel", {"compensate": "maybe"})
    assert refused.status == 400 and "compensate is a checkbox" in refused.text
    assert project.durable.get_execution(execution_id).status == "waiting"
    project.durable.cancel(execution_id)


def test_values_with_markup_are_escaped_everywhere_on_the_page(project: Project, client: DashboardClient) -> None:
    script = "<script>alert('x')</script>"
    logged = finished(project, "dash_linear", {"note": script})
    failed = finished(project, "dash_broken", {"what": script})
    for execution_id in (logged, failed):
        page = client.get(f"/executions/{execution_id}")
        assert "<script>alert" not in page.text
        assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page.text or (
            "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page.text)
    assert "fetching &lt;script&gt;" in client.get(f"/executions/{logged}").text  # in the step's logs


def test_the_page_links_a_parent_to_its_children_and_back(project: Project, client: DashboardClient) -> None:
    parent_id = finished(project, "dash_parent")
    [child_id] = project.durable.get_execution(parent_id).children
    page = client.get(f"/executions/{parent_id}")
    [row] = tags(page, "tr", data_execution=child_id)
    assert row and f'href="/executions/{child_id}"' in page.text
    assert 'class="status status-completed">completed</span>' in page.text.split(f'data-execution="{child_id}"')[1]
    child = client.get(f"/executions/{child_id}")
    assert tags(child, "a", data_link="parent")[0]["href"] == f"/executions/{parent_id}"


def test_a_workflow_no_longer_registered_shows_a_note_instead_of_the_graph(
        project: Project, client: DashboardClient) -> None:
    # Given an execution started by a deploy that had a workflow this one does not
    _, older = make(project.broker, project.database, project.prefix, project.queue, **project.settings)
    gone = Workflow("dash_gone")

    @gone.step
    def vanish(ctx: dict[str, Any]) -> dict[str, Any]:
        return ctx

    try:
        later = datetime.now(timezone.utc) + timedelta(hours=1)  # not due: nothing runs it
        execution_id = older.start(gone, {}, scheduled_at=later)
        page = client.get(f"/executions/{execution_id}")
        assert page.status == 200 and tags(page, "p", id="graph-missing")
        assert "the workflow dash_gone is not registered" in page.text and "<svg" not in page.text
        project.durable.cancel(execution_id)
    finally:
        older.db.dispose()


def test_an_unknown_execution_is_a_404_page_and_a_malformed_id_a_400(project: Project, client: DashboardClient) -> None:
    unknown = str(uuid.uuid4())
    for method, path in (("GET", ""), ("POST", "/cancel"), ("POST", "/retry"), ("POST", "/events")):
        answer = (client.get(f"/executions/{unknown}{path}") if method == "GET"
                  else client.post(f"/executions/{unknown}{path}", {"name": "go"}))
        assert answer.status == 404 and unknown in answer.text, (method, path)
        malformed = (client.get(f"/executions/not-an-id{path}") if method == "GET"
                     else client.post(f"/executions/<b>x{path}", {"name": "go"}))
        assert malformed.status == 400 and "is not an execution id" in malformed.text, (method, path)
    assert "<b>x" not in client.post("/executions/<b>x/cancel").text


def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(project: Project, client: DashboardClient) -> None:
    execution_id = waiting(project)
    client.get(f"/executions/{execution_id}")
    for action, form in (("cancel", {"compensate": "1"}), ("events", {"name": "go", "payload": "1"})):
        assert client.post(f"/executions/{execution_id}/{action}", form, csrf=False).status == 403
        forged = {**form, "csrf_token": "x" * 43}
        assert client.post(f"/executions/{execution_id}/{action}", forged, csrf=False).status == 403
    failed = finished(project, "dash_broken")
    before = {e.id for e in project.durable.list_executions(workflow="dash_broken", limit=1000)}
    assert client.post(f"/executions/{failed}/retry", csrf=False).status == 403
    assert project.durable.get_execution(execution_id).status == "waiting"
    assert project.durable.list_pending_events(execution_id) == []
    assert {e.id for e in project.durable.list_executions(workflow="dash_broken", limit=1000)} == before
    project.durable.cancel(execution_id)


def test_a_live_refresh_gets_only_the_main_of_the_page(project: Project, client: DashboardClient) -> None:
    execution_id = finished(project, "dash_linear")
    fragment = client.get(f"/executions/{execution_id}", headers={"X-Durable-Fragment": "1"})
    assert fragment.status == 200 and "<html" not in fragment.text
    assert tags(fragment, "span", id="execution-status")[0]["data-status"] == "completed"

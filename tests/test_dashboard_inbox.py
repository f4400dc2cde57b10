"""The dashboard's inbox of human inputs, as a browser-like client uses it (tests/dashboard_support.py),
against a real project with a worker and beat: each pending input is the form its declaration
describes, a bad answer is refused next to its form with nothing provided, a good one resumes
the workflow."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from durable_celery.dashboard import HOST_AUTH, Dashboard
from tests.conftest import Project
from tests.dashboard_support import DashboardClient, forms, the_form, working_project


@pytest.fixture(scope="module")
def project() -> Iterator[Project]:
    yield from working_project(beat=True)  # beat: inputs time out


@pytest.fixture
def client(project: Project) -> DashboardClient:
    return DashboardClient(Dashboard(project.durable, auth=HOST_AUTH))


def ask(p: Project, **declared: Any) -> str:
    """Start a workflow that asks for the declared input; return once the input is pending."""
    execution_id = p.durable.start("dash_inbox_asks", {"input": declared})
    deadline = time.monotonic() + 30
    while not is_pending(p, execution_id, declared["name"]):
        assert time.monotonic() < deadline, f"{execution_id} never asked for {declared['name']!r}"
        time.sleep(0.1)
    return execution_id


def is_pending(p: Project, execution_id: str, name: str) -> bool:
    found = p.durable.list_pending_inputs(status="pending", execution_id=execution_id)
    assert all(i.workflow_id == execution_id for i in found)
    return any(i.input_name == name for i in found)


def answered(p: Project, execution_id: str) -> Any:
    execution = p.wait(execution_id)
    assert execution.status == "completed", execution.error
    assert execution.context["went_on"] is True
    return execution.context["answer"]


def test_an_approval_answered_in_the_inbox_resumes_the_workflow_to_completion(project: Project,
                                                                               client: DashboardClient):
    execution_id = ask(project, name="manager", type="approval", prompt="Ship order 42?", metadata={"amount": 120})
    page = client.get("/inbox")
    assert page.status == 200 and '<main id="main" data-live="all">' in page.text
    form = the_form(page, action="provide-input", execution=execution_id, input="manager")
    assert form.attrs["data-form-key"] == f"{execution_id}/manager"
    assert form.attrs["method"] == "post" and form.attrs["action"] == f"/inbox/{execution_id}/manager"
    assert [b["value"] for b in form.named("decision")] == ["approved", "rejected"]
    assert "Ship order 42?" in page.text and f'href="/executions/{execution_id}"' in page.text
    assert "dash_inbox_asks" in page.text and "<dt>amount</dt><dd><code>120</code></dd>" in page.text
    # the execution's own page names the input and links to its card
    assert f'id="input-{execution_id}-manager"' in page.text
    assert f'href="/inbox#input-{execution_id}-manager"' in client.get(f"/executions/{execution_id}").text

    answer = client.post(f"/inbox/{execution_id}/manager", {"decision": "approved"})
    assert answer.status == 303 and answer.location == "/inbox?flash=input-provided"
    assert "Answer recorded: the workflow resumes." in client.follow(answer).text
    assert answered(project, execution_id) == "approved"
    assert forms(client.get("/inbox"), execution=execution_id) == []


FIELDS = [
    {"name": "name", "type": "string", "label": "Full name"},
    {"name": "age", "type": "integer", "required": False},
    {"name": "score", "type": "number"},
    {"name": "subscribed", "type": "boolean"},
    {"name": "plan", "type": "string", "choices": ["free", {"value": "pro", "label": "Pro plan"}]},
    {"name": "start", "type": "string", "format": "date"},
    {"name": "tags", "type": "list", "required": False},
]


def test_a_form_is_refused_next_to_itself_until_its_fields_are_right_then_accepted(project: Project,
                                                                                    client: DashboardClient):
    execution_id = ask(project, name="details", type="form", fields=FIELDS)
    other = ask(project, name="other", type="free_text")
    form = the_form(client.get("/inbox"), execution=execution_id)
    kinds = {attrs.get("name", ""): (tag, attrs.get("type")) for tag, attrs in form.controls if tag != "option"}
    assert kinds == {"csrf_token": ("input", "hidden"), "field.name": ("input", "text"),
                     "field.age": ("input", "number"), "field.score": ("input", "number"),
                     "field.subscribed": ("input", "checkbox"), "field.plan": ("select", None),
                     "field.start": ("input", "date"), "field.tags": ("textarea", None),
                     "": ("button", "submit")}
    assert "required" in form.named("field.name")[0] and "required" not in form.named("field.age")[0]
    assert form.named("field.age")[0]["step"] == "1" and form.named("field.score")[0]["step"] == "any"
    assert "Full name" in form.text and "Pro plan" in form.text

    # a required field missing and a number that is not one: 400, the errors in that form, nothing provided
    bad = client.post(f"/inbox/{execution_id}/details", {"field.age": "thirty", "field.score": "4.5",
                                                         "field.plan": "1", "field.start": "2026-12-31"})
    assert bad.status == 400
    refused = the_form(bad, execution=execution_id)
    assert refused.attrs["data-dirty"] == "1"
    assert "required" in refused.text and "'thirty' is not a whole number" in refused.text
    assert refused.named("field.age")[0]["value"] == "thirty"  # what was typed stays
    assert "required" not in the_form(bad, execution=other).text
    assert [f.attrs["data-execution"] for f in forms(bad, action="provide-input")][0] == execution_id
    assert is_pending(project, execution_id, "details")
    # the page of the refused answer, reloaded or refreshed live, is the inbox
    assert client.get(f"/inbox/{execution_id}/details").location == "/inbox"

    good = client.post(f"/inbox/{execution_id}/details", {
        "field.name": "Ada", "field.age": "36", "field.score": "4.5", "field.subscribed": "true",
        "field.plan": "1", "field.start": "2026-12-31", "field.tags": "a\r\nb\r\n"})
    assert good.status == 303
    assert answered(project, execution_id) == {"name": "Ada", "age": 36, "score": 4.5, "subscribed": True,
                                               "plan": "pro", "start": "2026-12-31", "tags": ["a", "b"]}


@pytest.mark.parametrize(("declared", "submitted", "expected"), [
    ({"type": "single_choice", "choices": ["red", {"value": 2, "label": "Two"}]}, {"choice": "1"}, 2),
    ({"type": "multi_choice", "choices": ["a", "b", "c"]}, {"choice": ["0", "2"]}, ["a", "c"]),
    ({"type": "free_text"}, {"text": "line one\r\nline two"}, "line one\nline two"),
])
def test_choices_and_text_answer_with_the_values_they_stand_for(project: Project, client: DashboardClient,
                                                                declared: dict[str, Any], submitted: dict[str, Any],
                                                                expected: Any):
    execution_id = ask(project, name="pick", **declared)
    form = the_form(client.get("/inbox"), execution=execution_id)
    if "choices" in declared:
        kind = "radio" if declared["type"] == "single_choice" else "checkbox"
        assert [(c["type"], c["value"]) for c in form.named("choice")] == [(kind, str(i)) for i in
                                                                          range(len(declared["choices"]))]
        refused = client.post(f"/inbox/{execution_id}/pick", {"choice": "7"})
        assert refused.status == 400 and "choose one of the options shown" in refused.text
        assert is_pending(project, execution_id, "pick")
    assert client.post(f"/inbox/{execution_id}/pick", submitted).status == 303
    assert answered(project, execution_id) == expected


def test_inputs_that_expire_first_come_first_and_those_without_a_timeout_last(project: Project,
                                                                               client: DashboardClient):
    never = ask(project, name="q", type="free_text")
    in_a_day = ask(project, name="q", type="free_text", timeout=86400)
    in_an_hour = ask(project, name="q", type="free_text", timeout=3600)
    never_later = ask(project, name="q", type="free_text")
    mine = {never, in_a_day, in_an_hour, never_later}
    order = [f.attrs["data-execution"] for f in forms(client.get("/inbox"), action="provide-input")]
    assert [i for i in order if i in mine] == [in_an_hour, in_a_day, never, never_later]


def test_what_a_workflow_asks_with_is_shown_escaped(project: Project, client: DashboardClient):
    name = 'a"<b>name</b>'
    execution_id = ask(project, name=name, type="single_choice", prompt="<script>alert('prompt')</script>",
                       metadata={"<i>key</i>": "<script>alert('meta')</script>", "nested": {"x": "<img src=x>"}},
                       choices=["<u>one</u>", {"value": "two", "label": "<svg onload=alert(1)>"}])
    page = client.get("/inbox")
    assert "<script>alert" not in page.text and "<img src=x>" not in page.text and "<svg onload" not in page.text
    assert "&lt;script&gt;alert(&#39;prompt&#39;)&lt;/script&gt;" in page.text
    assert "&lt;i&gt;key&lt;/i&gt;" in page.text and "&lt;u&gt;one&lt;/u&gt;" in page.text
    form = the_form(page, execution=execution_id)
    assert form.attrs["data-input"] == name and form.attrs["data-form-key"] == f"{execution_id}/{name}"
    assert client.post(f"/inbox/{execution_id}/{name}", {"choice": "0"}).status == 303
    assert answered(project, execution_id) == "<u>one</u>"


def test_an_input_answered_or_timed_out_meanwhile_is_a_conflict(project: Project, client: DashboardClient):
    answered_elsewhere = ask(project, name="manager", type="approval")
    timing_out = ask(project, name="manager", type="approval", timeout=1)
    client.get("/inbox")  # the page the user answers from
    project.durable.provide_input(answered_elsewhere, "manager", "rejected")
    assert answered(project, answered_elsewhere) == "rejected"
    assert answered(project, timing_out) == "timed out"
    for execution_id in (answered_elsewhere, timing_out):
        late = client.post(f"/inbox/{execution_id}/manager", {"decision": "approved"})
        assert late.status == 409 and "is no longer pending" in late.text
    assert project.durable.get_execution(answered_elsewhere).context["answer"] == "rejected"


def test_answers_to_no_execution_are_not_found(project: Project, client: DashboardClient):
    unknown = client.post("/inbox/00000000-0000-4000-8000-000000000000/manager", {"decision": "approved"})
    assert unknown.status == 404 and "00000000-0000-4000-8000-000000000000" in unknown.text
    assert client.post("/inbox/not-an-id/manager", {"decision": "approved"}).status == 404


def test_an_answer_without_the_pages_csrf_token_is_refused_and_provides_nothing(project: Project,
                                                                                 client: DashboardClient):
    execution_id = ask(project, name="manager", type="approval")
    client.get("/inbox")
    refused = client.post(f"/inbox/{execution_id}/manager", {"decision": "approved"}, csrf=False)
    assert refused.status == 403
    forged = client.post(f"/inbox/{execution_id}/manager", {"decision": "approved", "csrf_token": "x" * 43})
    assert forged.status == 403
    assert is_pending(project, execution_id, "manager")
    project.durable.cancel(execution_id)

"""Names cannot inject SQL or break a query (issue 16). Workflow, step, queue, event, input,
schedule names and idempotency keys are data: quotes, semicolons, ``'; DROP TABLE``, percent
signs, colons and any Unicode reach the database as bound values and come back unchanged. The
schema prefix, which is put in DDL, is held to a strict pattern when the engine is configured."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import text

from durable_celery import Durable, InvalidInput, Workflow
from durable_celery.limits import PREFIX_PATTERN
from durable_celery.wait import wait_for_event, wait_for_input
from tests.conftest import POSTGRES, Project, new_project
from tests.hostile import FEW, row_counts
from tests.test_eager import eager_durable

INJECTIONS = [
    "'; DROP TABLE workflow_executions; --",
    "x'); DELETE FROM waits; --",
    '"; DROP SCHEMA public CASCADE; --',
    "' OR '1'='1",
    "a;b;c",
    "%s %(name)s :name $1 ?",
    "\\'\\\\",
    "名前 🙂 ñ é",
    "‮rtl‬",
]
#: valid names: any printable text of 1 to 60 characters, and the classic injections
NAMES = st.one_of(st.sampled_from(INJECTIONS),
                  st.text(alphabet=st.characters(blacklist_categories=["Cc", "Cs"]), min_size=1, max_size=60))

HOSTILE_WORKFLOW = "wf'; DROP TABLE workflow_executions; --"
hostile = Workflow(HOSTILE_WORKFLOW)


@hostile.step(name='ask"; DELETE FROM waits; --')
def ask(ctx: dict[str, Any]) -> dict[str, Any]:
    paid = wait_for_event("paid'); DROP TABLE events; --", timeout=timedelta(hours=1))
    answer = wait_for_input("boss' OR '1'='1", type="free_text", prompt="ok; DROP?")
    return {**ctx, "paid": paid, "answer": answer}


def test_a_workflow_whose_names_are_sql_runs_end_to_end_and_every_table_survives() -> None:
    with eager_durable([hostile]) as durable:
        # Given an execution of a workflow whose workflow, step, event and input names are SQL
        execution_id = durable.start(HOSTILE_WORKFLOW, {"note": "'; DROP TABLE steps; --"})
        tables = set(row_counts(durable.db, durable.settings.prefix))
        # When it gets its event and its input, by those names
        durable.send_event(execution_id, "paid'); DROP TABLE events; --", {"by": "'; --"})
        durable.provide_input(execution_id, "boss' OR '1'='1", "yes'; DROP TABLE waits; --")
        # Then it completes with the values as sent, and is found by its name
        done = durable.get_execution(execution_id, include_steps=True)
        assert done.status == "completed", done.error
        assert done.context == {"note": "'; DROP TABLE steps; --", "paid": {"by": "'; --"},
                                "answer": "yes'; DROP TABLE waits; --"}
        assert {s.step_name for s in done.steps} == {'ask"; DELETE FROM waits; --'}
        assert [e.id for e in durable.list_executions(workflow=HOSTILE_WORKFLOW)] == [execution_id]
        assert set(row_counts(durable.db, durable.settings.prefix)) == tables


@pytest.fixture(scope="module")
def names_project() -> Iterator[Project]:
    project = new_project()
    try:
        yield project
    finally:
        project.close()


def test_hostile_names_are_stored_and_found_verbatim(names_project: Project) -> None:
    durable = names_project.durable
    later = datetime.now(timezone.utc) + timedelta(days=1)  # nothing published to a queue of that name
    tables = set(row_counts(durable.db, names_project.prefix))

    @FEW
    @given(name=NAMES)
    def verbatim(name: str) -> None:
        key = f"{uuid.uuid4().hex}{name}"[:255]
        # Given an execution on a queue, with an idempotency key and a kept event, named by it
        execution_id = durable.start("pipeline", {name: name}, queue=name, scheduled_at=later, idempotency_key=key)
        durable.send_event(execution_id, name, {"name": name})
        # Then each is found by that name, and holds it unchanged
        assert execution_id in [e.id for e in durable.list_executions(queue=name, limit=1000)]
        assert durable.start("pipeline", {}, idempotency_key=key) == execution_id
        found = durable.get_execution(execution_id)
        assert (found.queue, found.input) == (name, {name: name})
        kept = [e for e in durable.list_pending_events(execution_id)]
        assert [(e["name"], e["payload"]) for e in kept] == [(name, {"name": name})]
        assert durable.list_executions(workflow=name) == []
        schedule = f"s-{uuid.uuid4().hex[:8]}-{name}"[:200]
        assert durable.schedule("pipeline", "0 9 * * *", name=schedule, queue=name).name == schedule
        assert durable.get_schedule(schedule).queue == name
        assert [s.name for s in durable.list_schedules(queue=name, limit=1000)] == [schedule]
        durable.delete_schedule(schedule)
        durable.cancel(execution_id, reason=name)
        assert durable.get_execution(execution_id).error["message"] == name  # type: ignore[index]

    verbatim()
    assert set(row_counts(durable.db, names_project.prefix)) == tables


@FEW
@given(prefix=st.one_of(
    st.sampled_from(["durable; DROP SCHEMA public CASCADE", 'x"y', "x'y", "Durable", "pg_temp", "1st", "a" * 64,
                     "ñandú", "a-b", "a b", "", "x\x00", "public.x"]),
    st.text(max_size=20).filter(lambda s: not PREFIX_PATTERN.fullmatch(s)),
    st.integers(), st.none()))
def test_a_prefix_that_is_not_a_plain_lower_case_identifier_is_refused_when_configured(prefix: Any) -> None:
    with pytest.raises(InvalidInput, match="prefix must be"):
        Durable(database_url=POSTGRES, prefix=prefix)


def test_no_schema_is_created_for_a_refused_prefix() -> None:
    with pytest.raises(InvalidInput):
        Durable(database_url=POSTGRES, prefix='x"; CREATE SCHEMA injected; --')
    probe = Durable(database_url=POSTGRES, prefix=f"t_{uuid.uuid4().hex[:10]}")
    try:
        with probe.db.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM information_schema.schemata "
                                     "WHERE schema_name = 'injected'")).scalar() == 0
    finally:
        probe.db.dispose()

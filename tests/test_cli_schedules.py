"""`celery -A tests.cliproj durable schedules [list|enable|disable|trigger NAME]`, and the
schedules line of `status`, against a real database."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery

from durable_celery import Durable, Workflow
from tests.test_cli import DATABASE, Cli, migrated_cli

greet = Workflow("greet")  # as in tests/cliproj.py: the client here only needs its name


@greet.step
def hello(ctx: dict[str, Any]) -> dict[str, Any]:
    return ctx


@pytest.fixture(scope="module")
def cli() -> Iterator[Cli]:
    with migrated_cli() as made:
        yield made


def test_schedules_list_enable_disable_trigger_and_status(cli: Cli) -> None:
    assert cli.ok("schedules").strip() == "no schedules"
    assert "SCHEDULES" not in cli.ok("status")
    durable = Durable(Celery("cli-schedules", broker="memory://"), database_url=DATABASE, workflows=[greet],
                      prefix=cli.prefix, queue=cli.queue)
    try:
        durable.schedule(greet, "0 9 * * MON-FRI", name="morning", input={"name": "ann"}, timezone="Europe/Berlin")
        durable.schedule(greet, "*/15 * * * *", name="often", enabled=False)
    finally:
        durable.db.dispose()

    lines = cli.ok("schedules").splitlines()
    assert lines[0].split()[:5] == ["NAME", "WORKFLOW", "CRON", "TIMEZONE", "ENABLED"]
    assert lines[1].startswith("morning") and "0 9 * * MON-FRI" in lines[1] and "Europe/Berlin" in lines[1]
    listed = cli.json("schedules", "list")
    assert [(s["name"], s["enabled"], s["input"]) for s in listed] == [
        ("morning", True, {"name": "ann"}), ("often", False, {})]
    assert [s["name"] for s in cli.json("schedules", "list", "--disabled")] == ["often"]

    status = cli.json("status")["schedules"]
    assert (status["total"], status["enabled"]) == (2, 1) and status["next_run_at"] == listed[0]["next_run_at"]
    assert "SCHEDULES" in cli.ok("status")

    enabled = cli.json("schedules", "enable", "often")
    assert enabled["enabled"] is True and enabled["next_run_at"] is not None
    assert "enabled   no" in cli.ok("schedules", "disable", "often")

    execution_id = cli.ok("schedules", "trigger", "morning", "--input", '{"name": "bo"}').strip()
    shown = cli.json("show", execution_id)
    assert (shown["workflow"], shown["input"]) == ("greet", {"name": "bo"})
    assert cli.json("schedules", "list", "--enabled")[0]["last_execution_id"] == execution_id


@pytest.mark.parametrize("args, message", [
    (["schedules", "enable", "nope"], "no schedule named 'nope'"),
    (["schedules", "trigger", "nope"], "no schedule named 'nope'"),
    (["schedules", "trigger", "morning", "--input", "[1]"], "expected a JSON object"),
])
def test_schedule_commands_report_bad_input(cli: Cli, args: list[str], message: str) -> None:
    assert message in cli.fails(*args, code=2)

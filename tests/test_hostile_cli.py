"""Hostile input to `celery -A proj durable ...` (issue 16): bad ids, names, JSON (invalid,
NaN/Infinity, NUL, too deep, too large, not an object), limits and durations exit non-zero with
one ``Error: ...`` line and no traceback, and write nothing. The properties run the commands in
process (click's CliRunner, on a test project's app); a few real `celery` runs check the same
from the shell."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from durable_celery.cli import durable as durable_command
from tests.conftest import Project, new_project
from tests.hostile import FEW, HOSTILE_TEXT, UNKNOWN_ID, row_counts
from tests.test_cli import DATABASE, Cli, migrated_cli

#: command-line text that is not JSON, or JSON no payload may hold
BAD_JSON = st.one_of(
    st.text(max_size=12).filter(lambda s: not _is_json(s)),
    st.sampled_from(['NaN', '{"a": NaN}', '{"a": Infinity}', '[-Infinity]', '{"a": 1e999}', '{"a": "x\\u0000"}',
                     '{"a\\u0000": 1}', '{"a": "\\ud800"}', "{'a': 1}", '{"a": 1,}', '[1, 2']),
    st.integers(min_value=101, max_value=50_000).map(lambda n: "[" * n + "]" * n),
    st.just('{"n": ' + "9" * 5000 + "}"),
    st.just('{"blob": "' + "x" * (2**20 + 1) + '"}'),
)
#: not a JSON object (an --input)
NOT_OBJECT = st.one_of(BAD_JSON, st.sampled_from(["[]", "1", '"x"', "null", "true", "[{}]"]))
#: not an execution id
BAD_ID_TEXT = st.one_of(st.text(max_size=40).filter(lambda s: len(s) != 36), UNKNOWN_ID, HOSTILE_TEXT)
BAD_COUNT_TEXT = st.one_of(st.integers(max_value=0).map(str), st.integers(min_value=2**63).map(str),
                           st.sampled_from(["nan", "inf", "1.5", "", "ten", "1e3"]))
BAD_DURATION_TEXT = st.one_of(st.text(max_size=8), st.sampled_from(["-1d", "nand", "infd", "1e400d", "1 year"]),
                              st.integers(min_value=10**12).map(lambda n: f"{n}d"))


def _is_json(text: str) -> bool:
    import json
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


@pytest.fixture(scope="module")
def cli_project() -> Iterator[tuple[Project, str]]:
    project = new_project()
    try:
        yield project, project.durable.start("pipeline", {"n": 1})
    finally:
        project.close()


#: (label, the command line with the hostile text in one place, the hostile texts)
COMMANDS: list[tuple[str, Any, st.SearchStrategy[str]]] = [
    ("show ID", lambda x, e: ["show", x], BAD_ID_TEXT),
    ("run WORKFLOW", lambda x, e: ["run", x], st.one_of(HOSTILE_TEXT, st.text(max_size=9).map("nope_{}".format))),
    ("run --input", lambda x, e: ["run", "pipeline", "--input", x], NOT_OBJECT),
    ("run --queue", lambda x, e: ["run", "pipeline", "--queue", x], HOSTILE_TEXT),
    ("cancel ID", lambda x, e: ["cancel", x], BAD_ID_TEXT),
    ("cancel --reason", lambda x, e: ["cancel", e, "--reason", x],
     st.builds(lambda a: f"{a}\x00", st.text(max_size=4))),
    ("retry ID", lambda x, e: ["retry", x], BAD_ID_TEXT),
    ("send-event ID", lambda x, e: ["send-event", x, "paid"], BAD_ID_TEXT),
    ("send-event NAME", lambda x, e: ["send-event", e, x], HOSTILE_TEXT),
    ("send-event --payload", lambda x, e: ["send-event", e, "paid", "--payload", x], BAD_JSON),
    ("provide-input NAME", lambda x, e: ["provide-input", e, x, "--data", '"approved"'], HOSTILE_TEXT),
    ("provide-input --data", lambda x, e: ["provide-input", e, "manager", "--data", x], BAD_JSON),
    ("list --workflow", lambda x, e: ["list", "--workflow", x], HOSTILE_TEXT),
    ("list --queue", lambda x, e: ["list", "--queue", x], HOSTILE_TEXT),
    ("list --step", lambda x, e: ["list", "--step", x], HOSTILE_TEXT),
    ("list --status", lambda x, e: ["list", "--status", x], st.text(max_size=8).map("x{}".format)),
    ("list --since", lambda x, e: ["list", "--since", x], BAD_DURATION_TEXT),
    ("list --limit", lambda x, e: ["list", "--limit", x], BAD_COUNT_TEXT),
    ("list --cursor", lambda x, e: ["list", "--cursor", x], st.text(min_size=1, max_size=30)),
    ("pending --limit", lambda x, e: ["pending", "--limit", x], BAD_COUNT_TEXT),
    ("schedules list --workflow", lambda x, e: ["schedules", "list", "--workflow", x], HOSTILE_TEXT),
    ("schedules list --limit", lambda x, e: ["schedules", "list", "--limit", x], BAD_COUNT_TEXT),
    ("schedules enable NAME", lambda x, e: ["schedules", "enable", x],
     st.one_of(HOSTILE_TEXT, st.text(min_size=1, max_size=9).map("no-{}".format))),
    ("schedules trigger NAME", lambda x, e: ["schedules", "trigger", x], HOSTILE_TEXT),
    ("queues pause NAME", lambda x, e: ["queues", "pause", x], st.text(max_size=9)),
    ("queues list NAME", lambda x, e: ["queues", "list", x], st.text(max_size=9).map("no-{}".format)),
    ("cleanup --older-than", lambda x, e: ["cleanup", "--older-than", x], BAD_DURATION_TEXT),
    ("cleanup --batch-size", lambda x, e: ["cleanup", "--older-than", "1d", "--batch-size", x], BAD_COUNT_TEXT),
    ("metrics --workflow", lambda x, e: ["metrics", "--workflow", x], HOSTILE_TEXT),
    ("metrics --since", lambda x, e: ["metrics", "--since", x], BAD_DURATION_TEXT),
    ("graph WORKFLOW", lambda x, e: ["graph", x], st.one_of(HOSTILE_TEXT, st.text(max_size=9).map("nope_{}".format))),
    ("graph --execution", lambda x, e: ["graph", "pipeline", "--execution", x], BAD_ID_TEXT),
    ("events --execution", lambda x, e: ["events", "--execution", x, "--timeout", "1s"],
     BAD_ID_TEXT.filter(lambda s: len(s) != 36)),
    ("events --workflow", lambda x, e: ["events", "--workflow", x, "--timeout", "1s"], HOSTILE_TEXT),
    ("events --kind", lambda x, e: ["events", "--kind", x, "--timeout", "1s"], st.text(max_size=9).map("x{}".format)),
    ("events --timeout", lambda x, e: ["events", "--timeout", x], BAD_DURATION_TEXT),
]


def assert_one_line_error(exit_code: int, output: str, exception: BaseException | None) -> None:
    assert exit_code == 2, output  # bad input (docs/cli.md)
    assert exception is None or isinstance(exception, SystemExit), repr(exception)
    assert "Traceback" not in output
    lines = [line for line in output.strip().splitlines() if line.strip()]
    assert lines and lines[-1].startswith("Error: "), output[-500:]
    assert sum(line.startswith("Error: ") for line in lines) == 1, output[-500:]


@pytest.mark.parametrize("label, argv, values", COMMANDS, ids=[label for label, _, _ in COMMANDS])
def test_a_hostile_command_line_exits_non_zero_with_one_error_line_and_writes_nothing(
        cli_project: tuple[Project, str], label: str, argv: Any, values: st.SearchStrategy[str]) -> None:
    project, execution = cli_project
    runner = CliRunner()

    @FEW
    @given(value=values)
    def refused(value: str) -> None:
        before = row_counts(project.durable.db, project.prefix)
        result = runner.invoke(durable_command, argv(value, execution), obj=SimpleNamespace(app=project.app))
        assert_one_line_error(result.exit_code, result.output, result.exception)
        assert row_counts(project.durable.db, project.prefix) == before

    refused()


@pytest.fixture(scope="module")
def shell_cli() -> Iterator[Cli]:
    with migrated_cli() as made:
        yield made


@pytest.mark.parametrize("args, code", [
    (["run", "greet", "--input", '{"name": NaN}'], 2),
    (["run", "greet", "--input", "[" * 5000 + "]" * 5000], 2),
    (["provide-input", "not-an-id", "manager", "--data", '"approved"'], 2),
    (["run", "greet", "--queue", "q\x1b[31m"], 2),
    (["send-event", "'; DROP TABLE workflow_executions; --", "paid"], 2),
    (["list", "--limit", "99999999999999999999"], 2),
    (["cleanup", "--older-than", "99999999999999999999d"], 2),
])
def test_hostile_arguments_to_the_real_command_fail_in_one_line(shell_cli: Cli, args: list[str], code: int) -> None:
    before = _executions(shell_cli)
    shell_cli.fails(*args, code=code)
    assert _executions(shell_cli) == before


def _executions(cli: Cli) -> int:
    with psycopg.connect(DATABASE.replace("+psycopg", "")) as conn:
        row = conn.execute(f'SELECT count(*) FROM "{cli.prefix}".workflow_executions').fetchone()
    assert row is not None
    return int(row[0])

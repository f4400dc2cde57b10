"""Capturing a step's output: each step attempt gets exactly what it logged and printed, even
when steps run side by side in threads (Celery's threads pool) or tasks on one thread (gevent,
eventlet, asyncio), and the process's stdout is left as it was."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from celery.utils.log import LoggingProxy

from durable_celery.runtime.capture import MARKER_LOGGER, MAX_ENTRIES, MAX_MESSAGE, capture_output, limits

log = logging.getLogger("tests.capture")


def lines(entries: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(e["level"], e["logger"], e["message"]) for e in entries]


def own_lines(i: int, rounds: int) -> list[tuple[str, str, str]]:
    expected = []
    for r in range(rounds):
        expected += [("PRINT", "stdout", f"step {i} prints {r}"), ("WARNING", "tests.capture", f"step {i} logs {r}")]
    return expected


def test_steps_running_in_threads_at_once_each_capture_only_their_own_output() -> None:
    n, rounds = 8, 3
    with capture_output():  # the first step of a process puts the hooks in place
        pass
    stdout_before = sys.stdout
    barrier = threading.Barrier(n, timeout=10)
    entered = [threading.Event() for _ in range(n)]
    exited = [threading.Event() for _ in range(n)]
    captured: dict[int, list[dict[str, Any]]] = {}
    failures: list[BaseException] = []

    def step(i: int) -> None:
        try:
            # Start one after the other, then interleave, then end in the same order as started
            # (not nested): a per-step swap of sys.stdout cannot survive this.
            if i:
                entered[i - 1].wait(10)
            with capture_output() as logs:
                entered[i].set()
                barrier.wait()
                for r in range(rounds):
                    print(f"step {i} prints {r}")
                    log.warning("step %d logs %d", i, r)
                    barrier.wait()
                if i:
                    exited[i - 1].wait(10)
            captured[i] = logs
        except BaseException as exc:  # reported below, not lost in the thread
            failures.append(exc)
            barrier.abort()
        finally:
            exited[i].set()

    threads = [threading.Thread(target=step, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)

    assert not failures
    for i in range(n):
        assert lines(captured[i]) == own_lines(i, rounds), f"step {i}"
    assert sys.stdout is stdout_before


def test_steps_running_as_tasks_on_one_thread_each_capture_only_their_own_output() -> None:
    n, rounds = 6, 3
    with capture_output():
        pass
    stdout_before = sys.stdout

    async def step(i: int) -> list[dict[str, Any]]:
        with capture_output() as logs:
            for r in range(rounds):
                await asyncio.sleep(0)  # let the other steps run in between
                print(f"step {i} prints {r}")
                await asyncio.sleep(0)
                log.warning("step %d logs %d", i, r)
        return logs

    async def main() -> list[list[dict[str, Any]]]:
        return await asyncio.gather(*(step(i) for i in range(n)))

    for i, logs in enumerate(asyncio.run(main())):
        assert lines(logs) == own_lines(i, rounds), f"step {i}"
    assert sys.stdout is stdout_before


def test_a_thread_that_ran_a_step_captures_nothing_afterwards() -> None:
    def run() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        with capture_output() as first:
            print("in the step")
        print("between steps")  # a pool thread between two tasks
        log.warning("between steps")
        with capture_output() as second:
            log.warning("in the next step")
        return first, second

    out: list[tuple[list[dict[str, Any]], list[dict[str, Any]]]] = []
    thread = threading.Thread(target=lambda: out.append(run()))
    thread.start()
    thread.join(10)
    first, second = out[0]
    assert [e["message"] for e in first] == ["in the step"]
    assert [e["message"] for e in second] == ["in the next step"]


def test_printed_text_is_forwarded_and_split_into_lines_keeping_a_last_line_without_newline() -> None:
    stream = io.StringIO()
    with contextlib.redirect_stdout(stream):
        print("before the step")
        with capture_output() as logs:
            print("one", "two")
            print("three", end="")
            print(" continued")
            sys.stdout.writelines(["four\nfi", "ve\n"])
            print("no newline at the end", end="")
        print("after the step")
    assert [e["message"] for e in logs] == ["one two", "three continued", "four", "five", "no newline at the end"]
    assert {(e["level"], e["logger"]) for e in logs} == {("PRINT", "stdout")}
    assert stream.getvalue() == ("before the step\none two\nthree continued\nfour\nfive\n"
                                 "no newline at the endafter the step\n")


def test_the_engines_own_loggers_are_left_out() -> None:
    with capture_output() as logs:
        for name in ("durable_celery.runtime", "celery", "celery.worker", "kombu.connection", "amqp",
                     "sqlalchemy.engine"):
            logging.getLogger(name).warning("engine noise")
        logging.getLogger("celeryish").warning("a user logger that only starts like one")
        log.error("the step's own %s", "record")
    assert lines(logs) == [("WARNING", "celeryish", "a user logger that only starts like one"),
                           ("ERROR", "tests.capture", "the step's own record")]


def test_entries_past_the_bound_are_dropped_and_one_last_entry_says_how_many() -> None:
    with capture_output() as logs:
        for i in range(MAX_ENTRIES + 50):
            print(f"line {i}")
        log.warning("one too many")
    # the first MAX_ENTRIES are kept, then one marker counts the 51 that were not
    assert len(logs) == MAX_ENTRIES + 1 and logs[MAX_ENTRIES - 1]["message"] == f"line {MAX_ENTRIES - 1}"
    assert (logs[-1]["level"], logs[-1]["logger"]) == ("WARNING", MARKER_LOGGER)
    assert logs[-1]["message"] == f"... 51 more entries dropped (log_capture_max_entries={MAX_ENTRIES})"


def test_long_messages_are_cut_with_a_marker_saying_how_much() -> None:
    with capture_output() as logs:
        print("p" * (MAX_MESSAGE + 10))
        log.warning("l" * (MAX_MESSAGE + 10))
        for _ in range(3):
            print("x" * MAX_MESSAGE, end="")  # a long line without newline: kept bounded too
    assert [e["message"] for e in logs] == [
        "p" * MAX_MESSAGE + " ... [10 more characters truncated]",
        "l" * MAX_MESSAGE + " ... [10 more characters truncated]",
        "x" * MAX_MESSAGE + f" ... [{2 * MAX_MESSAGE} more characters truncated]",
    ]


@pytest.mark.parametrize("entries, chars, printed, expected", [
    # (bounds, what the step prints, what is kept)
    (2, 10, ["a", "b"], ["a", "b"]),
    (2, 10, ["a", "b", "c"], ["a", "b", "... 1 more entry dropped (log_capture_max_entries=2)"]),
    (1, 3, ["abcdef", "g", "h"], ["abc ... [3 more characters truncated]",
                                  "... 2 more entries dropped (log_capture_max_entries=1)"]),
    (3, 5, ["12345"], ["12345"]),
])
def test_the_bounds_of_a_context_apply_to_the_attempts_captured_in_it(
        entries: int, chars: int, printed: list[str], expected: list[str]) -> None:
    with limits(entries, chars), capture_output() as logs:
        for line in printed:
            print(line)
    assert [e["message"] for e in logs] == expected


def test_the_drop_marker_is_current_before_the_capture_closes() -> None:
    # a failed attempt's logs are read inside the capture block (runtime/executor.py)
    with limits(1, 100), capture_output() as logs:
        print("kept")
        print("dropped")
        snapshot = tuple(logs)
        print("dropped too")
    assert snapshot[-1]["message"] == "... 2 more entries dropped (log_capture_max_entries=1)"


def test_stdout_attributes_are_those_of_the_wrapped_stream(tmp_path: Path) -> None:
    with open(tmp_path / "out.txt", "w", encoding="latin-1") as stream, contextlib.redirect_stdout(stream):
        with capture_output():
            assert sys.stdout is not stream
            assert sys.stdout.fileno() == stream.fileno()
            assert sys.stdout.encoding == "latin-1"
            assert sys.stdout.isatty() is False
            assert sys.stdout.buffer is stream.buffer
            print("é")
            sys.stdout.flush()
    assert (tmp_path / "out.txt").read_text(encoding="latin-1") == "é\n"


def test_a_print_is_collected_once_through_a_stream_that_logs_it_or_forwards_to_another_proxy() -> None:
    # Celery's worker replaces sys.stdout with a LoggingProxy: a print becomes a log record
    redirected = LoggingProxy(logging.getLogger("user.redirected"), logging.WARNING)
    with contextlib.redirect_stdout(redirected):  # type: ignore[type-var]
        with capture_output() as logs:
            print("said once")
    assert lines(logs) == [("PRINT", "stdout", "said once")]

    # Something replaced our proxy with a stream that writes into it; the next step wraps that
    stream = io.StringIO()
    with contextlib.redirect_stdout(stream):
        with capture_output():
            proxy = sys.stdout

        class Forward(io.StringIO):
            def write(self, text: str) -> int:
                return proxy.write(text)

        with contextlib.redirect_stdout(Forward()):
            with capture_output() as logs:
                print("said once too")
    assert lines(logs) == [("PRINT", "stdout", "said once too")]
    assert stream.getvalue() == "said once too\n"

"""``celery -A proj durable dashboard`` as users run it: the real command in a subprocess of a
test project with a running worker, its URL read from what it prints (``--port 0``: any free
port), stopped by PID. On localhost it answers only requests that name localhost; anywhere
else it needs a ``--token``, which visitors present once in a link or as a Bearer header."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import ROOT, Project
from tests.dashboard_hosts import ServerProcess, event_for_a_start
from tests.dashboard_support import working_project

TOKEN = "cli-token-of-the-tests-0123456789"
COMMAND = [sys.executable, "-m", "celery", "-A", "tests.proj.app", "durable", "dashboard"]


@pytest.fixture(scope="module")
def project() -> Iterator[Project]:
    yield from working_project(beat=False)


def _env(project: Project) -> dict[str, str]:
    """The project's environment, without a token from the one the tests run in."""
    return {**project.env, "DURABLE_DASHBOARD_TOKEN": ""}


@pytest.fixture(scope="module")
def local(project: Project) -> Iterator[ServerProcess]:
    """The dashboard as it starts by default: on 127.0.0.1, no token."""
    with ServerProcess([*COMMAND, "--port", "0"], _env(project)) as server:
        yield server


@pytest.fixture(scope="module")
def tokened(project: Project) -> Iterator[ServerProcess]:
    with ServerProcess([*COMMAND, "--port", "0", "--token", TOKEN], _env(project)) as server:
        yield server


def test_it_prints_its_url_and_its_pages_answer(local: ServerProcess) -> None:
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", local.url), local.url
    assert "token required" not in local.log()
    with httpx.Client(base_url=local.url) as browser:
        for path, kind in (("/", "text/html"), ("/executions", "text/html"), ("/executions?status=failed", "text/html"),
                           ("/static/dashboard.css", "text/css"), ("/static/dashboard.js", "text/javascript")):
            page = browser.get(path)
            assert page.status_code == 200, (path, page.text[-1000:])
            assert page.headers["content-type"].startswith(kind), path
        assert browser.get("/nowhere").status_code == 404


def test_on_localhost_a_request_naming_another_host_is_refused(local: ServerProcess) -> None:
    port = local.url.rsplit(":", 1)[1].strip("/")
    with httpx.Client(base_url=local.url) as browser:
        for host in ("evil.example", f"evil.example:{port}", f"192.168.1.10:{port}", ""):
            refused = browser.get("/", headers={"Host": host})
            assert refused.status_code == 421, host
            assert "answers only on localhost" in refused.text
        for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "localhost"):
            assert browser.get("/", headers={"Host": host}).status_code == 200, host


@pytest.mark.parametrize("args, message", [
    (["--host", "0.0.0.0"], "--host 0.0.0.0 makes the dashboard reachable from other machines: give it a --token"),
    (["--host", "192.0.2.1"], "give it a --token"),
    (["--token", "short"], "at least 16 characters"),
])
def test_a_setup_open_to_others_or_with_a_weak_token_exits_2_with_a_clear_message(
        project: Project, args: list[str], message: str) -> None:
    result = subprocess.run([*COMMAND, "--port", "0", *args], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **_env(project)},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert "http://" not in result.stdout  # it never listened


def test_with_a_token_a_visitor_presents_it_once_in_a_link_or_as_a_bearer(tokened: ServerProcess) -> None:
    assert "token required" in tokened.log() and TOKEN not in tokened.log()
    with httpx.Client(base_url=tokened.url) as stranger:
        refused = stranger.get("/executions")
        assert refused.status_code == 401 and TOKEN not in refused.text
        assert stranger.get("/", params={"token": "wrong-token-0123456789"}).status_code == 401
    with httpx.Client(base_url=tokened.url) as visitor:
        moved = visitor.get("/executions", params={"token": TOKEN, "status": "failed"})
        assert moved.status_code == 303
        assert moved.headers["location"] == "/executions?status=failed"
        cookie = moved.headers["set-cookie"]
        assert "durable_dashboard_token=" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
        page = visitor.get(moved.headers["location"])  # the cookie from now on
        assert page.status_code == 200 and TOKEN not in page.text
    with httpx.Client(base_url=tokened.url, headers={"Authorization": f"Bearer {TOKEN}"}) as script:
        assert script.get("/").status_code == 200
        assert script.get("/static/dashboard.css").status_code == 200


def test_the_event_stream_delivers_a_workflow_started_meanwhile(local: ServerProcess, tokened: ServerProcess,
                                                                project: Project) -> None:
    for server, headers in ((local, {}), (tokened, {"Authorization": f"Bearer {TOKEN}"})):
        with httpx.Client(base_url=server.url, headers=headers) as browser:
            event = event_for_a_start(browser, "/events", lambda: project.durable.start("pipeline", {}))
        assert event["workflow"] == "pipeline"
        # and the worker runs it to the end, as the stream would go on to tell
        assert project.wait(event["execution_id"]).status == "completed"

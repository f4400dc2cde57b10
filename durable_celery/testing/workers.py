"""Real ``celery worker`` and ``celery beat`` processes for tests, examples and benchmarks,
started in their own process group and stopped (or killed) by PID."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType


class CeleryProcess:
    """One ``celery -A <app> <command>`` subprocess.

    Args:
        app: the ``-A`` argument (a module path).
        command: ``worker`` or ``beat``.
        args: extra command-line arguments.
        env: extra environment variables.
        ready_marker: text in its log that means it is ready.
    """

    def __init__(self, app: str, command: str, args: Sequence[str] = (), env: dict[str, str] | None = None,
                 ready_marker: str = "ready.", cwd: str | None = None) -> None:
        self.app = app
        self.command = command
        self.args = list(args)
        self.env = {**os.environ, **(env or {})}
        self.ready_marker = ready_marker
        self.cwd = cwd
        fd, path = tempfile.mkstemp(prefix=f"durable-{command}-", suffix=".log")
        os.close(fd)
        self.log_path = Path(path)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    def start(self, timeout: float = 30) -> CeleryProcess:
        cmd = [sys.executable, "-m", "celery", "-A", self.app, self.command, *self.args]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True, cwd=self.cwd)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready_marker in self.log():
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"celery {self.command} exited with {self.proc.returncode}:\n{self.log()[-4000:]}")
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"celery {self.command} not ready after {timeout}s:\n{self.log()[-4000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole process group: the main process and every pool child, mid-step."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)

    def stop(self, timeout: float = 15) -> None:
        """Warm shutdown (SIGTERM), then SIGKILL whatever is left of the group."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=timeout)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # stragglers of the group, if any
        except ProcessLookupError:
            pass
        if self.proc.poll() is None:
            self.proc.wait(timeout=10)

    def __enter__(self) -> CeleryProcess:
        return self.start() if self.proc is None else self

    def __exit__(self, *exc: object | TracebackType) -> None:
        self.stop()


def worker(app: str, queues: Sequence[str], *, concurrency: int = 2, pool: str = "prefork",
           env: dict[str, str] | None = None, loglevel: str = "info", extra: Sequence[str] = (),
           cwd: str | None = None) -> CeleryProcess:
    """A worker consuming ``queues`` (every queue the app declares if empty; not yet started:
    use it as a context manager)."""
    args = [*(["-Q", ",".join(queues)] if queues else []), "-c", str(concurrency), "-P", pool, "-l", loglevel,
            "-n", f"w{uuid.uuid4().hex[:8]}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat",
            *extra]
    return CeleryProcess(app, "worker", args, env=env, cwd=cwd)


def beat(app: str, *, env: dict[str, str] | None = None, cwd: str | None = None) -> CeleryProcess:
    """A beat process with its own schedule file (two beats never share one)."""
    state = Path(tempfile.mkdtemp(prefix="durable-beat-")) / "schedule"
    return CeleryProcess(app, "beat", ["-s", str(state), "-l", "info", "--max-interval", "1"], env=env,
                         ready_marker="beat: Starting", cwd=cwd)

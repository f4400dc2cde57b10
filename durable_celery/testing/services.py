"""Private PostgreSQL, Redis and RabbitMQ servers for fault tests: real servers on free ports,
each in its own data directory, that a test may kill, restart or keep down without touching
the machine's shared services (which other tests use at the same time).

Each server runs in its own process group and is stopped by PID. When the test process runs as
root, PostgreSQL and RabbitMQ run as their system users (``postgres``, ``rabbitmq``), which
they require; the data directories are handed to those users.

    with PrivateRedis() as broker, PrivatePostgres() as db:
        ...                               # broker.url, db.url
        broker.restart(down_for=2)        # killed (its queues are lost), back 2 s later
        db.stop(); ...; db.start()        # crashed (immediate shutdown), down as long as you like
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType


def free_port() -> int:
    """A TCP port nothing listens on now (the OS's pick)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pg_bin() -> Path:
    if os.environ.get("DURABLE_PG_BIN"):
        return Path(os.environ["DURABLE_PG_BIN"])
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    if not found:
        raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql (set DURABLE_PG_BIN)")
    return found[-1].parent


class PrivateServer:
    """A server process on a free port: ``start``, ``stop``, ``restart``, ``close``.

    Args:
        name: for logs and errors.
        user: the system user it must run as when this process is root (None: as this process).
    """

    name = "server"
    user: str | None = None

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix=f"durable-{self.name}-"))
        self.log_path = self.dir / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        if self.user is not None and self._as_other_user():
            shutil.chown(self.dir, self.user)

    # -- what each server defines ---------------------------------------------------------------

    def command(self) -> Sequence[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        return {}

    def ready(self) -> bool:
        """Does it answer a client yet?"""
        raise NotImplementedError

    #: the signal of a crash (``stop(hard=True)``) and of a clean shutdown
    hard_signal = signal.SIGKILL
    soft_signal = signal.SIGTERM

    @property
    def url(self) -> str:
        raise NotImplementedError

    # -- lifecycle ---------------------------------------------------------------------------------

    def _as_other_user(self) -> bool:
        return self.user is not None and os.geteuid() == 0

    def start(self, timeout: float = 60) -> PrivateServer:
        """Start it and wait until it answers clients."""
        cmd = list(self.command())
        if self._as_other_user():
            assert self.user is not None
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, env={**os.environ, **self.environment()}, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True, cwd=self.dir)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"private {self.name} exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            try:
                if self.ready():
                    return self
            except Exception:  # noqa: BLE001 - not up yet
                pass
            time.sleep(0.1)
        self.stop(hard=True)
        raise RuntimeError(f"private {self.name} not ready after {timeout}s:\n{self.log()[-3000:]}")

    def stop(self, hard: bool = True, timeout: float = 30) -> None:
        """Stop it: ``hard`` as a crash (what it has not made durable is lost), else cleanly."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        try:
            self._signal(proc, self.hard_signal if hard else self.soft_signal)
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout)
        except ProcessLookupError:
            pass
        self._wait_port_free(timeout)

    def _signal(self, proc: subprocess.Popen[bytes], signum: int) -> None:
        """Send a stop signal: to the server's whole process group."""
        os.killpg(proc.pid, signum)

    def restart(self, down_for: float = 0.0, hard: bool = True) -> float:
        """Stop it, keep it down ``down_for`` seconds, start it again; returns the monotonic
        time at which it answered clients again."""
        self.stop(hard=hard)
        time.sleep(down_for)
        self.start()
        return time.monotonic()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def close(self) -> None:
        """Stop it and remove its data directory."""
        self.stop(hard=True)
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _wait_port_free(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) != 0:
                    return
            time.sleep(0.05)

    def __enter__(self) -> PrivateServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class PrivateRedis(PrivateServer):
    """``redis-server`` keeping nothing on disk, as on this machine: a restart loses every
    queued message."""

    name = "redis"

    def command(self) -> Sequence[str]:
        return ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", str(self.dir)]

    def ready(self) -> bool:
        import redis
        return bool(redis.Redis(port=self.port, socket_timeout=1).ping())

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


class PrivatePostgres(PrivateServer):
    """A PostgreSQL cluster of its own (``initdb`` once, trust auth, database ``postgres``).
    ``stop(hard=True)`` is an immediate shutdown: the crash a restart recovers from."""

    name = "postgres"
    user = "postgres"
    hard_signal = signal.SIGQUIT  # the postmaster's immediate shutdown
    soft_signal = signal.SIGINT  # fast shutdown

    def __init__(self) -> None:
        super().__init__()
        self.data = self.dir / "data"
        cmd = [str(_pg_bin() / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
               "--no-sync", "--no-instructions"]
        if self._as_other_user():
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, cwd=self.dir)
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stderr.decode(errors='replace')[-3000:]}")

    def command(self) -> Sequence[str]:
        # stop() signals the process group: the postmaster alone must get it (it stops its children)
        return [str(_pg_bin() / "postgres"), "-D", str(self.data), "-p", str(self.port), "-k", str(self.dir),
                "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=200"]

    def ready(self) -> bool:
        import psycopg
        psycopg.connect(self.url.replace("+psycopg", ""), connect_timeout=1).close()
        return True

    def _signal(self, proc: subprocess.Popen[bytes], signum: int) -> None:
        # the postmaster alone: it takes its backends down itself (a group-wide SIGQUIT would too,
        # but SIGKILL to the group leaves shared memory behind)
        os.kill(self._postmaster_pid() or proc.pid, signum)

    def _postmaster_pid(self) -> int | None:
        pid_file = self.data / "postmaster.pid"
        try:
            return int(pid_file.read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"


class PrivateRabbitMQ(PrivateServer):
    """A RabbitMQ node of its own (no plugins), on a free AMQP port and distribution port.
    A hard stop kills the node; durable queues and persistent messages (Celery's default)
    survive a restart, the rest is lost."""

    name = "rabbitmq"
    user = "rabbitmq"

    def __init__(self) -> None:
        super().__init__()
        self.dist_port = free_port()
        self.node = f"durable-{self.port}@localhost"

    def command(self) -> Sequence[str]:
        return ["rabbitmq-server"]

    def environment(self) -> dict[str, str]:
        return {"RABBITMQ_NODENAME": self.node, "RABBITMQ_NODE_PORT": str(self.port),
                "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1", "RABBITMQ_DIST_PORT": str(self.dist_port),
                "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"), "RABBITMQ_LOG_BASE": str(self.dir / "log"),
                "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq"),
                "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.dir / "advanced.config"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
                "RABBITMQ_PID_FILE": str(self.dir / "node.pid")}

    def ready(self) -> bool:
        from kombu.connection import Connection
        with Connection(self.url, connect_timeout=1) as conn:
            conn.ensure_connection(max_retries=0)
        return True

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

"""The broker going away: workers that survive its restarts, and a tick that notices when it
lost the messages it held, so they are sent again at once rather than after a lease expires.

**Noticing a loss.** Postgres holds the truth, so a lost message costs only time: the tick
re-sends it once the lease handed to it expires (``handoff_ttl``) or its outbox back-off is
due (``redispatch_after``). A broker that restarts without persistence (Redis with no RDB or
AOF, the usual set-up for a Celery broker) loses every message at once, and everything then
waits for those timers. So the tick keeps a marker key in Redis (``BrokerWatch``). While the
marker is there, the broker still holds what it held when the marker was written. When it is
gone, the broker has lost its data, and every message published before the broker's current
run started (``INFO``'s ``uptime_in_seconds``) is gone with it: the tick re-sends those at once
(``state/resend.py``), sweeps again at every tick of the broker's first ``RECOVERY_WINDOW``
seconds, and then writes the marker again. Messages published since the broker came
back are not touched, so a healthy backlog is never duplicated. RabbitMQ keeps durable queues
and persistent messages (Celery's defaults) across a restart: nothing is checked there, and the
few messages a crash does lose wait for the usual timers.

**Surviving a restart.** Celery 5.7's consumer closes the broken connection after collecting
it (``Consumer.on_connection_error_after_connected``). With Redis, if closing the channel in
the collect was cut short (by the dead socket, most likely while the channel was in a
``BRPOP``), kombu's ``Connection.collect`` has still dropped the transport, and kept the
half-closed default channel; the close then closes that channel again,
and restoring its unacknowledged messages builds a client from the dropped transport:
``AttributeError: 'NoneType' object has no attribute 'hostname'`` (``_connparams``). That is not
a connection error, so ``kombu.common.ignore_errors`` lets it through and the worker exits
("Unrecoverable error"). ``Consumer`` below catches exactly that close failure and lets the
consumer reconnect as it would have; it also tries a lost broker after shorter pauses.

**Failed publishes.** A publish that fails (the broker is down) is logged by the dispatcher,
which hands the messages to ``UnsentMarker``: their rows are marked never dispatched, so the
tick sends them as soon as it can publish, with no back-off.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from celery import Celery
from celery.worker.consumer import Consumer as CeleryConsumer
from kombu.utils.imports import symbol_by_name

from durable_celery.clock import Clock
from durable_celery.engine.values import Message
from durable_celery.runtime.services import Services
from durable_celery.state.db import Database
from durable_celery.state.resend import mark_unsent_txn, unsend_lost_txn

log = logging.getLogger(__name__)

#: How long a broker must have been up before the handed leases of messages it lost are taken
#: back: a task that took such a message just before the broker went down has confirmed its
#: lease by then (``runtime/handoff.py``: at most 1.5 s into its step), so it is never cut off.
SETTLE = 2.0
#: How long after the broker's start the tick keeps looking for what it lost, before it marks
#: the broker's data as known: a worker whose publish failed while the broker was down may mark
#: that message unsent only seconds later (a busy machine holds a process back that long), and
#: a row locked at the moment of one sweep (``SKIP LOCKED``) is only found by the next.
RECOVERY_WINDOW = 10.0
#: Pauses between a worker's attempts to reach a broker it lost: 1, 2, 3 ... 30 s (Celery's are
#: 2, 4, 6 ... 30 s).
RECONNECT_START = 1.0
RECONNECT_MAX = 30.0


class Consumer(CeleryConsumer):  # type: ignore[misc]  # Celery is untyped
    """Celery's consumer, surviving the close of a connection kombu has already collected, and
    trying a lost broker again after shorter pauses."""

    def ensure_connected(self, conn: Any) -> Any:
        # Celery leaves the pauses between attempts to kombu's defaults, 2, 4, 6 ... 30 s: after an
        # outage of 12 s a worker came back up to 8 s after its broker. Pauses of 1, 2, 3 ... 30 s
        # bring it back within about sqrt(2 x outage) seconds, and give up (after
        # ``broker_connection_max_retries`` attempts) about as late as Celery's would.
        conn.ensure_connection = functools.partial(conn.ensure_connection, interval_start=RECONNECT_START,
                                                   interval_step=RECONNECT_START, interval_max=RECONNECT_MAX)
        return super().ensure_connected(conn)

    def on_connection_error_after_connected(self, exc: Exception) -> None:
        try:
            super().on_connection_error_after_connected(exc)
        except AttributeError:
            # Celery clears self.connection just before it closes the broken connection: an
            # AttributeError with the connection still set did not come from that close.
            if self.connection is not None:
                raise
            log.warning("durable: closing the broken broker connection failed inside kombu (a channel of a "
                        "connection it had already collected); reconnecting anyway", exc_info=True)


def mend_consumer(worker: Any) -> None:
    """Have ``worker`` (at ``worker_init``) run :class:`Consumer` if it would run Celery's own;
    a consumer class of the application's own is left alone."""
    if symbol_by_name(worker.consumer_cls) is CeleryConsumer:
        worker.consumer_cls = Consumer
    else:
        log.info("durable: this worker runs its own consumer class (%s); a broker restart can still stop it "
                 "(see docs/reliability.md#when-the-broker-goes-away)", worker.consumer_cls)


@dataclass(frozen=True)
class Loss:
    """The broker lost what it held: every message published before ``before`` is gone.
    ``settled``: it has been up long enough (``SETTLE``) for the handed leases of those messages
    to be taken back too; ``over``: long enough (``RECOVERY_WINDOW``) that a message lost with it
    has been marked by now."""

    before: datetime
    settled: bool
    over: bool = False


class BrokerWatch:
    """Notices, from the tick, that the broker lost its messages (Redis only; see above)."""

    def __init__(self, app: Celery, prefix: str, clock: Clock) -> None:
        self._app = app
        self._key = f"durable:{prefix}:broker-run"
        self._clock = clock

    def check(self) -> Loss | None:
        """The loss to recover from, or None: the broker kept its data (or is not Redis, or
        cannot be reached now: then nothing can be published either, and the next tick looks)."""
        try:
            with self._app.connection_or_acquire() as conn:
                if conn.transport.driver_type != "redis":
                    return None
                client = conn.default_channel.client
                if client.get(self._key) is not None:
                    return None
                started = _started_at(client, self._clock)
        except Exception as exc:  # noqa: BLE001 - the broker is down: the tick carries on with Postgres
            log.debug("durable: cannot look at the broker: %r", exc)
            return None
        # a margin for the clocks of the broker, the workers and this process (kept in sync: NTP)
        up = (self._clock.now() - started).total_seconds()
        return Loss(started - timedelta(seconds=0.1), settled=up >= SETTLE, over=up >= RECOVERY_WINDOW)

    def recovered(self) -> None:
        """Every message lost has been sent again: mark the broker's data as known."""
        with self._app.connection_or_acquire() as conn:
            conn.default_channel.client.set(self._key, uuid.uuid4().hex)


def _started_at(client: Any, clock: Clock) -> datetime:
    """A time the broker's current run started after: the start of the second it started in.
    Redis counts its uptime in whole seconds of its own clock (``uptime_in_seconds`` is the
    difference of two truncated times), so that is as close as it tells; its own time of day
    (``server_time_usec``, Redis 5 and newer) keeps our clock's second boundaries out of it."""
    info = client.info("server")
    uptime = int(info["uptime_in_seconds"])
    if "server_time_usec" in info:
        now = datetime.fromtimestamp(int(info["server_time_usec"]) // 1_000_000, tz=timezone.utc)
        return now - timedelta(seconds=uptime)
    return clock.now() - timedelta(seconds=uptime + 1)


def resend_lost(sv: Services, now: datetime) -> int:
    """The tick's first sweep: if the broker lost the messages it held, mark their rows never
    dispatched (and due at ``now``, the tick's time), so the outbox sweep that follows publishes
    them now. Returns how many."""
    if sv.dispatcher.eager:
        return 0
    watch = BrokerWatch(sv.dispatcher.app, sv.settings.prefix, sv.clock)
    loss = watch.check()
    if loss is None:
        return 0
    batch = sv.settings.tick_batch
    with sv.db.begin() as conn:
        marked = unsend_lost_txn(conn, loss.before, now, batch, leases=loss.settled)
    if marked:
        log.warning("durable: the broker lost its messages (it restarted at %s without them); sending %d again",
                    loss.before.isoformat(timespec="seconds"), marked)
    # Every tick of the window sweeps again (one indexed query): a lease whose message was marked
    # unsent late, or whose row was locked during a sweep, is taken back within a tick, not when
    # it expires. After the window, with nothing left to send again, the broker's data is known.
    if loss.over and marked < batch:
        try:
            watch.recovered()
        except Exception as exc:  # noqa: BLE001 - gone again: the next tick finds the marker missing
            log.debug("durable: cannot mark the broker's data as known: %r", exc)
    return marked


class UnsentMarker:
    """The dispatcher's ``on_unsent``: marks the rows of messages whose publish failed, so the
    tick sends them again as soon as it can publish (``state/resend.py`` ``mark_unsent_txn``).

    A lease handed to such a message is released at once only on RabbitMQ without publisher
    confirms: there a publish that raised never reached a queue. A Redis command whose reply was
    lost may have run, so its lease waits for the tick to see the broker lost its data (or for
    the lease to expire)."""

    def __init__(self, app: Celery, db: Database) -> None:
        self._app = app
        self._db = db
        self._releases: bool | None = None

    def __call__(self, messages: Sequence[Message]) -> None:
        try:
            with self._db.begin() as conn:
                mark_unsent_txn(conn, [(m.execution_id, m.seq) for m in messages], release_leases=self._release())
        except Exception as exc:  # noqa: BLE001 - the rows keep their timers: the tick sends them later
            log.warning("durable: could not mark %d unsent messages for the tick: %r", len(messages), exc)

    def _release(self) -> bool:
        if self._releases is None:
            with self._app.connection_for_write() as conn:  # not connected: the transport's kind only
                self._releases = (conn.transport.driver_type == "amqp"
                                  and not (conn.transport_options or {}).get("confirm_publish"))
        return self._releases

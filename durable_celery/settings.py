"""Engine settings: one frozen, validated object built from ``Durable(...)``'s arguments."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from durable_celery.durations import Duration, to_seconds
from durable_celery.errors import InvalidInput
from durable_celery.limits import DEFAULT_MAX_PAYLOAD_BYTES, check_name, check_prefix
from durable_celery.queue_limits import QueueLimits, parse_queues

DispatchMode = Literal["per_step", "continuation"]


#: the shortest lease handed over with a message (see ``Settings.handoff_ttl``)
MIN_HANDOFF_TTL = 10.0


@dataclass(frozen=True)
class Settings:
    """Validated engine settings (durations in seconds).

    ``dispatch_mode``: ``"per_step"`` publishes one Celery task per step (each step is its own
    task in Flower); ``"continuation"`` lets a task go on with the next step on the same queue
    after each checkpoint, for up to ``continuation_budget`` seconds.
    """

    database_url: str
    embedded: bool
    queue: str = "durable"
    prefix: str = "durable"
    queues: dict[str, dict[str, Any]] = field(default_factory=dict)
    stale_lock_timeout: float = 60.0
    heartbeat_interval: float = 10.0
    tick_interval: float = 1.0
    dispatch_mode: DispatchMode = "per_step"
    continuation_budget: float = 0.5
    redispatch_after: float = 15.0
    max_countdown: float = 60.0
    auto_migrate: bool = True
    #: an attempt whose worker is lost this many times in a row fails with WorkerLost
    max_lost_leases: int = 3
    tick_batch: int = 500
    #: cron slots missed while no beat ran: "one" run for them all, "all" (one each) or "none"
    schedule_catch_up: str = "one"
    #: a slot due longer ago than this is missed (see scheduling/plan.py); later ones all run
    schedule_misfire_grace: float = 60.0
    #: a schedule whose start fails this many times in a row is disabled
    schedule_max_failures: int = 5
    #: what one step attempt's captured logs keep: entries (then one marker entry saying how
    #: many more were dropped), and characters per message (then a truncation marker)
    log_capture_max_entries: int = 500
    log_capture_max_chars: int = 4000
    #: the largest context a step may return, in bytes of its stored JSON; a larger one fails
    #: the attempt with ContextNotSerializable (a handoff message carries the context, and
    #: RabbitMQ 4 refuses messages over 16 MiB by default)
    max_context_bytes: int = 8 * 1024 * 1024
    #: the largest payload a call may send (a start's input, an event's payload, an input's
    #: data, a schedule's input), in bytes of compact UTF-8 JSON; None: no limit
    max_payload_bytes: int | None = DEFAULT_MAX_PAYLOAD_BYTES
    #: the controlled queues (flow control, pause) parsed from ``queues``
    queue_limits: dict[str, QueueLimits] = field(default_factory=dict)

    @property
    def handoff_ttl(self) -> float:
        """Seconds a lease handed over with a step's message lasts (``runtime/handoff.py``): a
        lost message's step is re-sent after ``redispatch_after``, but not before 10 s (a shorter
        lease leaves too little room for clock skew), and never later than a worker's lease."""
        return min(self.stale_lock_timeout, max(self.redispatch_after, MIN_HANDOFF_TTL))

    @classmethod
    def build(cls, *, database_url: str | None, data_dir: Path, queue: str, prefix: str,
              queues: dict[str, dict[str, Any]] | None, stale_lock_timeout: Duration,
              heartbeat_interval: Duration, tick_interval: Duration, dispatch_mode: str,
              continuation_budget: Duration, redispatch_after: Duration, max_countdown: Duration,
              auto_migrate: bool, max_lost_leases: int = 3, schedule_catch_up: str = "one",
              schedule_misfire_grace: Duration = 60, schedule_max_failures: int = 5,
              log_capture_max_entries: int = 500, log_capture_max_chars: int = 4000,
              max_context_bytes: int = 8 * 1024 * 1024,
              max_payload_bytes: int | None = DEFAULT_MAX_PAYLOAD_BYTES) -> Settings:
        embedded = database_url is None
        if database_url is None:
            data_dir.mkdir(parents=True, exist_ok=True)
            database_url = f"sqlite:///{(data_dir / 'state.db').resolve()}"
        check_name(queue, "queue")
        check_prefix(prefix)
        if max_payload_bytes is not None and (isinstance(max_payload_bytes, bool)
                                              or not isinstance(max_payload_bytes, int) or max_payload_bytes < 1):
            raise InvalidInput(f"max_payload_bytes must be an int >= 1 or None (no limit), got {max_payload_bytes!r}")
        if dispatch_mode not in ("per_step", "continuation"):
            raise InvalidInput(f"dispatch_mode must be 'per_step' or 'continuation', got {dispatch_mode!r}")
        settings = cls(
            database_url=database_url,
            embedded=embedded,
            queue=queue,
            prefix=prefix,
            queues=dict(queues or {}),
            queue_limits=parse_queues(queues),
            stale_lock_timeout=to_seconds(stale_lock_timeout, "stale_lock_timeout"),
            heartbeat_interval=to_seconds(heartbeat_interval, "heartbeat_interval"),
            tick_interval=to_seconds(tick_interval, "tick_interval"),
            dispatch_mode=dispatch_mode,  # type: ignore[arg-type]
            continuation_budget=to_seconds(continuation_budget, "continuation_budget"),
            redispatch_after=to_seconds(redispatch_after, "redispatch_after"),
            max_countdown=to_seconds(max_countdown, "max_countdown"),
            auto_migrate=bool(auto_migrate),
            max_lost_leases=max_lost_leases,
            schedule_catch_up=schedule_catch_up,
            schedule_misfire_grace=to_seconds(schedule_misfire_grace, "schedule_misfire_grace"),
            schedule_max_failures=schedule_max_failures,
            log_capture_max_entries=log_capture_max_entries,
            log_capture_max_chars=log_capture_max_chars,
            max_context_bytes=max_context_bytes,
            max_payload_bytes=max_payload_bytes,
        )
        _check_schedule_settings(settings)
        for what, bound in (("log_capture_max_entries", log_capture_max_entries),
                            ("log_capture_max_chars", log_capture_max_chars), ("max_context_bytes", max_context_bytes)):
            if isinstance(bound, bool) or not isinstance(bound, int) or bound < 1:
                raise InvalidInput(f"{what} must be an int >= 1, got {bound!r}")
        if isinstance(max_lost_leases, bool) or not isinstance(max_lost_leases, int) or max_lost_leases < 1:
            raise InvalidInput(f"max_lost_leases must be an int >= 1, got {max_lost_leases!r}")
        if settings.heartbeat_interval <= 0 or settings.tick_interval <= 0:
            raise InvalidInput("heartbeat_interval and tick_interval must be positive")
        if settings.heartbeat_interval >= settings.stale_lock_timeout:
            raise InvalidInput(
                f"heartbeat_interval ({settings.heartbeat_interval:g}s) must be shorter than "
                f"stale_lock_timeout ({settings.stale_lock_timeout:g}s), or live workers lose their leases"
            )
        return settings


def _check_schedule_settings(settings: Settings) -> None:
    if settings.schedule_catch_up not in ("one", "all", "none"):
        raise InvalidInput(f"schedule_catch_up must be 'one', 'all' or 'none', got {settings.schedule_catch_up!r}")
    if settings.schedule_misfire_grace < 0:
        raise InvalidInput(f"schedule_misfire_grace must not be negative, got {settings.schedule_misfire_grace:g}")
    failures = settings.schedule_max_failures
    if isinstance(failures, bool) or not isinstance(failures, int) or failures < 1:
        raise InvalidInput(f"schedule_max_failures must be an int >= 1, got {failures!r}")


def default_data_dir() -> Path:
    """Where the embedded default keeps its files: ``$DURABLE_DATA_DIR`` or ``./.durable``."""
    return Path(os.environ.get("DURABLE_DATA_DIR", ".durable"))

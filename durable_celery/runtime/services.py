"""What the runtime needs from the engine, in one small object: settings, the database, the
clock, the compiled workflows, the dispatcher and the lease keeper. ``Durable`` builds it; the
runtime never sees ``Durable`` itself."""

from __future__ import annotations

import dataclasses
import socket
from dataclasses import dataclass, field

from durable_celery.clock import Clock
from durable_celery.engine.decide import Policy
from durable_celery.registry import Registry
from durable_celery.runtime.dispatch import Dispatcher
from durable_celery.runtime.leases import LeaseKeeper
from durable_celery.runtime.live import Emitter
from durable_celery.settings import Settings
from durable_celery.state.db import Database


@dataclass(frozen=True)
class Services:
    """The engine's parts, shared by the step task, the tick and the client calls."""

    settings: Settings
    db: Database
    clock: Clock
    registry: Registry
    dispatcher: Dispatcher
    leases: LeaseKeeper
    _policy: Policy = field(init=False, repr=False)
    _eager_policy: Policy = field(init=False, repr=False)
    #: lifecycle events for ``subscribe`` (written only while someone subscribes)
    live: Emitter = field(init=False, repr=False)

    def __post_init__(self) -> None:
        s = self.settings
        policy = Policy(dispatch_mode=s.dispatch_mode, max_countdown=s.max_countdown,
                        stale_lock_timeout=s.stale_lock_timeout, worker=socket.gethostname(),
                        handoff_ttl=s.handoff_ttl, controlled=frozenset(s.queue_limits),
                        max_context_bytes=s.max_context_bytes)
        object.__setattr__(self, "_policy", policy)
        # Eager mode has no broker to carry a lease: each message's task claims
        object.__setattr__(self, "_eager_policy", dataclasses.replace(policy, skip_backoff=True, handoff_ttl=None))
        object.__setattr__(self, "live", Emitter(self.db, self.clock, s.prefix))

    def keep_backoff_when_eager(self) -> None:
        """In eager mode, let retries wait for their backoff as on workers instead of running at
        once: for the test runner (``durable_celery.testing.runner``), whose fake clock the
        backoff is then spent on (its engine leaves every delay to the tick: ``max_countdown=0``)."""
        object.__setattr__(self, "_eager_policy", dataclasses.replace(self._eager_policy, skip_backoff=False))

    @property
    def policy(self) -> Policy:
        """The settings decisions depend on. Read at each decision, since a test may switch
        Celery's eager mode on after the engine is built: in eager mode retries skip their backoff."""
        return self._eager_policy if self.dispatcher.eager else self._policy

"""Versions of a workflow across deploys, a part of ``Durable`` (it inherits them): ``plan``,
and the labels of the versions executions run on. See docs/deploys.md.

A worker records the description of every machine it registered (``workflow_versions``, once
per process, when it boots); ``plan`` compares the machines registered in *this* process (the
code being deployed) with where the in-flight executions stand, grouped in SQL, and never
writes: a CI job may run it with a read-only database user.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Connection

from durable_celery.engine import plan as planning
from durable_celery.models import DeployPlan
from durable_celery.state.versions import in_flight_groups_txn, labels_txn, record_versions_txn, stored_versions_txn

if TYPE_CHECKING:
    from durable_celery.clock import Clock
    from durable_celery.registry import Registry
    from durable_celery.state.db import Database

log = logging.getLogger(__name__)


class VersionCalls:
    """``plan`` and the recording of the deployed versions (mixed into ``Durable``)."""

    if TYPE_CHECKING:
        db: Database
        clock: Clock
        registry: Registry

        def ensure_schema(self) -> None: ...

    _versions_recorded: frozenset[tuple[str, str]] = frozenset()

    def plan(self) -> DeployPlan:
        """What deploying the workflows registered here does to the in-flight executions.

        Per workflow: how many executions (and branches, iterations) stand on a state that is
        unchanged, changed (``changes`` says how) or gone, or run on an old version kept
        registered; example ids; and the registered versions no execution needs any more.
        ``DeployPlan.ok`` is False when the deploy would strand executions (``durable plan``
        exits 1 then). One grouped query over the in-flight index, whatever their number.
        """
        self.registry.load()
        registered = {name: self.registry.versions(name) for name in self.registry.names()}
        self.ensure_schema()
        with self.db.connect() as conn:
            groups = in_flight_groups_txn(conn)
            stored = stored_versions_txn(conn, {g[0] for g in groups})
        return planning.plan(groups, registered, stored)

    def record_versions(self) -> int:
        """Store the description of every registered machine not stored yet (what workers do
        when they boot; ``plan`` reads them to say how a state changed). Returns how many this
        process had not recorded before; each is written once per process."""
        machines = [m for m in self.registry.all_machines() if (m.workflow, m.version) not in self._versions_recorded]
        if not machines:
            return 0
        self.ensure_schema()
        with self.db.begin() as conn:
            record_versions_txn(conn, machines, self.clock.now())
        self._versions_recorded = self._versions_recorded | {(m.workflow, m.version) for m in machines}
        return len(machines)

    def _version_labels(self, conn: Connection, rows: Iterable[Mapping[Any, Any]]) -> dict[tuple[str, str], Any]:
        """The labels of the versions ``rows`` run on: registered here, else recorded by a worker."""
        known = self.registry.known_labels()
        wanted = {(row["workflow"], row["version"]) for row in rows}
        missing = [pair for pair in wanted if pair not in known]
        return {**known, **(labels_txn(conn, missing) if missing else {})}

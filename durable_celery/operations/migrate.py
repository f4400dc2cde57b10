"""``migrate_executions``: move in-flight executions of a workflow onto its deployed definition
at mapped states (docs/migrating-executions.md). The decisions are ``engine/migrate.py``'s;
each execution moves in a transaction of its own (``state/moves.py``); the step messages of
those that run at once are published after their commits."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from durable_celery.clock import Clock
from durable_celery.compiler.ir import StateMachine
from durable_celery.engine import migrate as rules
from durable_celery.engine.values import Message
from durable_celery.errors import InvalidInput
from durable_celery.identifiers import check_execution_id
from durable_celery.models import MigrationResult, MigrationSkip
from durable_celery.runtime.dispatch import Dispatcher
from durable_celery.state.db import Database
from durable_celery.state.moves import candidates_txn, lock_for_move_txn, move_txn

#: the most ids one call takes (one transaction each)
MAX_IDS = 10_000


def check_ids(ids: Any) -> list[str] | None:
    """``ids`` as a list of execution ids, or None; ``InvalidInput`` otherwise."""
    if ids is None:
        return None
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
        raise InvalidInput(f"ids must be a list of execution ids or None, got {ids!r}")
    checked = list(dict.fromkeys(ids))
    if len(checked) > MAX_IDS:
        raise InvalidInput(f"ids lists {len(checked)} executions; at most {MAX_IDS} per call")
    for execution_id in checked:
        check_execution_id(execution_id)
    return checked


def migrate_executions(db: Database, clock: Clock, dispatcher: Dispatcher | None, machine: StateMachine,
                       mapping: Mapping[str, str], ids: list[str] | None, *, dry_run: bool,
                       restart_step: bool) -> MigrationResult:
    """Move (or, ``dry_run``, only find) the executions of ``machine.workflow`` that ``mapping``
    covers. ``dispatcher``: publishes the moved executions that run at once (None with dry_run)."""
    with db.connect() as conn:
        rows = candidates_txn(conn, machine.workflow, list(mapping), ids)
    result = MigrationResult(machine.workflow, machine.version, dry_run, dict(mapping))
    found = {row["id"] for row in rows}
    for execution_id in ids or ():
        if execution_id not in found:
            result.skipped.append(MigrationSkip(execution_id, None, None, rules.NOT_FOUND))
    messages: list[Message] = []
    for row in rows:
        if dry_run:
            outcome: rules.Move | str = _decide(machine, row, mapping, clock, restart_step)
        else:
            outcome = _move_one(db, machine, row, mapping, clock, restart_step)
        if isinstance(outcome, str):
            result.skipped.append(MigrationSkip(row["id"], row["current_node"], row["status"], outcome))
            continue
        result.moved.setdefault(row["current_node"], []).append(row["id"])
        if outcome.message is not None:
            messages.append(outcome.message)
    stood_on = {row["current_node"] for row in rows}
    result.unmatched.extend(old for old in mapping if old not in stood_on)
    if messages and dispatcher is not None:
        dispatcher.send_all(messages)
    return result


def _decide(machine: StateMachine, row: Mapping[Any, Any], mapping: Mapping[str, str], clock: Clock,
            restart_step: bool) -> rules.Move | str:
    return rules.decide_move(machine, row, mapping, clock.now(), restart_step=restart_step)


def _move_one(db: Database, machine: StateMachine, row: Mapping[Any, Any], mapping: Mapping[str, str],
              clock: Clock, restart_step: bool) -> rules.Move | str:
    """One execution, in one transaction: skipped before any lock if it cannot move as read;
    then locked (SKIP LOCKED, fenced on the seq read), decided again on the locked row, written."""
    first = _decide(machine, row, mapping, clock, restart_step)
    if isinstance(first, str):
        return first
    with db.begin() as conn:
        locked = lock_for_move_txn(conn, row["id"], row["seq"])
        if locked is None:
            return rules.LOCKED
        move = _decide(machine, locked, mapping, clock, restart_step)
        if isinstance(move, str):
            return move
        if move_txn(conn, locked, move) is None:
            return rules.LOCKED
    return move

"""The one writer of checkpoints: a decided :class:`Checkpoint` becomes one transaction,
fenced by the execution's ``seq`` and the lease owner (and by no stop having been requested
meanwhile). Exactly-once comes from that fence: a stale worker, a duplicate message or a
cancelled execution writes nothing.

A checkpoint that is only the row and its attempt is one statement on Postgres (a
data-modifying CTE, no BEGIN/COMMIT round trips), and so is the end of a completing branch of a
top-level parallel block (its parent's lock and wake included); anything else takes the general
path. Both write the same rows: the short form is chosen only when the checkpoint has nothing
else to do.

Lock order, everywhere: the root, then the parent, then the execution itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, exists, insert, literal_column, select, text, update
from sqlalchemy.engine import Connection

from durable_celery.compiler.ir import State, StateMachine
from durable_celery.engine.decide import compensating_values
from durable_celery.engine.fanout import fails_fast
from durable_celery.engine.statuses import TERMINAL, ExecutionStatus
from durable_celery.engine.transitions import queue_of
from durable_celery.engine.values import Checkpoint, Message, Outcome, Snapshot
from durable_celery.state.children import (
    Finished,
    TakeNext,
    child_finished_txn,
    insert_children_txn,
    release_compensation_txn,
    settle_block_txn,
    stop_tree_txn,
    tree_quiescent_txn,
)
from durable_celery.state.db import Database
from durable_celery.state.executions import CLAIMED_COLUMNS, DISPATCH_COLUMNS, leased_values
from durable_celery.state.journal import should_wake
from durable_celery.state.prepared import prepared_for
from durable_celery.state.tables import UNSETTLED_WHERE
from durable_celery.state.tables import step_executions as s
from durable_celery.state.tables import waits as w
from durable_celery.state.tables import workflow_executions as t
from durable_celery.state.waits import cancel_waits_txn, lock_execution_txn, wake_txn
from durable_celery.testing import faults


@dataclass(frozen=True)
class Written:
    """A committed checkpoint: how it ended and the messages to publish now."""

    outcome: Outcome
    messages: tuple[Message, ...] = ()
    #: rows made runnable by the transaction (woken, released), to publish like messages
    rows: tuple[Mapping[Any, Any], ...] = ()
    #: the next iteration of the same foreach, claimed for this worker (see ``TakeNext``)
    claimed: Mapping[Any, Any] | None = None
    #: a child ended under a shared lock of its parent, releasing no sibling: whether its block
    #: is decided is settled in a second transaction (see ``_settle``)
    unsettled: bool = False


def write_checkpoint(db: Database, machine: StateMachine | None, snap: Snapshot, token: str, cp: Checkpoint,
                     now: datetime, *, stopping: bool = False, take: TakeNext | None = None) -> Written | None:
    """Commit ``cp`` for the execution ``snap`` leased by ``token``; ``None`` if the fence
    failed (the lease was lost, or a stop was requested: see ``stop_requested_txn``).

    ``stopping=True`` writes the checkpoint that applies a requested stop (the fence then
    expects the request). ``take``: a finishing iteration's worker offers to run the sibling
    its end releases (claimed in this transaction, returned as ``Written.claimed``)."""
    if not stopping and db.dialect == "postgresql":
        # A top-level workflow that completes has no parent to tell: its open waits close in the statement
        closes = cp.completes_alone and snap.is_top_level and cp.attempt is not None
        if cp.simple or closes:
            values = {**cp.values, "updated_at": now}
            if cp.attempt is not None:  # the step path: one statement, on the driver's cursor
                key = _shape(values, cp.attempt, closes)
                prepared = prepared_for(db, key, lambda: _advance_statement(key))
                moved = prepared.first(_advance_params(snap, token, values, cp.attempt, now if closes else None)) \
                    is not None
            else:
                with db.single() as conn:
                    moved = advance_txn(conn, snap, token, values)
            return Written(cp.outcome, cp.messages) if moved else None
        if cp.completes_alone and cp.attempt is not None and snap.kind == "branch" and snap.parent_id == snap.top:
            # the parent joins on its own queue (a parallel state has none): the branch's, copied from it
            offer = take if take is not None and take.queue == snap.queue else None
            ended = _end_branch(db, snap, token, {**cp.values, "updated_at": now}, cp.attempt, now, offer)
            if ended is not None:
                woken, claimed = ended
                return Written(cp.outcome, cp.messages, woken, claimed)
    with db.begin() as conn:
        written = write_checkpoint_txn(conn, machine, snap, token, cp, now, stopping=stopping, take=take,
                                       share_parent=not stopping)
    if written is not None and written.unsettled:
        faults.trip("before_settle", cp.attempt["step_name"] if cp.attempt is not None else "*")
        with db.begin() as conn:
            rows = _settle_txn(conn, snap, now)
        written = dataclasses.replace(written, rows=(*written.rows, *rows), unsettled=False)
    return written


def write_checkpoint_txn(conn: Connection, machine: StateMachine | None, snap: Snapshot, token: str,
                         cp: Checkpoint, now: datetime, *, stopping: bool = False,
                         take: TakeNext | None = None, share_parent: bool = False) -> Written | None:
    """The general path of :func:`write_checkpoint`, in the caller's transaction.

    ``share_parent``: a foreach iteration that completes may hold only a shared lock of its
    parent, so the iterations of one block finish side by side; it then never writes the parent
    (that would wait on its siblings' shared locks): a decision it cannot make is left
    ``unsettled``. A parallel branch locks its parent for update instead: a block has a few
    branches, not thousands of items, and holding the lock for the three statements of its end
    costs less than the mark, its removal and, for the last branches, a second transaction."""
    values: dict[str, Any] = {**cp.values, "updated_at": now}
    child = not snap.is_top_level and snap.parent_id is not None
    ends = cp.finishing or cp.compensate
    shared = (share_parent and child and snap.kind != "branch" and not cp.compensate
              and values.get("status") == ExecutionStatus.COMPLETED.value)
    ancestors = _lock_ancestors(conn, snap, shared=shared) if ends and child else None
    if cp.stop_descendants or cp.compensate:
        # Before its descendants are touched: a finishing child locks its ancestors first too.
        lock_execution_txn(conn, snap.id)
    if cp.stop_descendants:
        # Before the row moves: the compensation it may start must know whether steps of its tree
        # are still in flight (they finish first, so their effects get compensated too).
        compensable = machine is not None and bool(machine.compensations)
        stop_tree_txn(conn, snap.id, now, {"type": "Cancelled", "message": "the execution failed", "step": None,
                                          "traceback": None}, wait_for_in_flight=compensable)
    if cp.compensate:
        assert cp.status is not None
        values.update(compensating_values(cp.status, values.get("error"), now, tree_quiescent_txn(conn, snap.id)))
    if shared:
        # Marked until its block is settled (here, or in the second transaction): a worker that
        # dies between the two leaves the mark for the tick (``settle_lost``)
        values["ready_at"] = now + SETTLE_GRACE
    # A completing branch or iteration: its row, its attempt and its open waits in one statement
    merged = (child and not stopping and cp.completes_alone and cp.attempt is not None
              and conn.dialect.name == "postgresql")
    if not _move_txn(conn, snap, token, values, cp, now, stopping=stopping, merged=merged):
        return None
    if cp.children:
        insert_children_txn(conn, [dict(c) for c in cp.children])
    outcome = Outcome.COMPENSATING if cp.compensate else cp.outcome
    messages = list(cp.messages)
    if cp.compensate and values["ready_at"] is not None:
        messages.append(Message(snap.id, snap.seq + 1, snap.workflow, None, snap.queue, snap.priority))
    rows: list[Mapping[Any, Any]] = []
    if cp.recheck_waits and should_wake(conn, snap.id, snap.entered_seq, now, snap.top):
        woken = wake_txn(conn, snap.id, now)
        if woken is not None:
            rows.append(woken)
            outcome = Outcome.WOKEN
    ended = Finished()
    if ends:
        if not merged:
            cancel_waits_txn(conn, snap.id, now)
        if ancestors is not None:
            ended = _ended_txn(conn, machine, snap, ancestors, values, now, take, shared)
            rows.extend(ended.rows)
    return Written(outcome, tuple(messages), tuple(rows), ended.claimed, ended.unsettled)


#: how long a branch or iteration that ended unsettled may wait for its second transaction
#: before the tick settles its block in its place (its worker died in between)
SETTLE_GRACE = timedelta(seconds=5)


def _unmark(conn: Connection, execution_id: str) -> None:
    conn.execute(update(t).where(t.c.id == execution_id, t.c.ready_at.is_not(None),
                                 t.c.status == ExecutionStatus.COMPLETED.value).values(ready_at=None))


def unsettled_txn(conn: Connection, now: datetime, limit: int) -> list[str]:
    """Branches and iterations that ended unsettled more than ``SETTLE_GRACE`` ago and were
    never settled: their worker died between the two transactions (unlocked: ``settle_lost``
    locks in the usual order)."""
    # the partial index's predicate as literal text: a generic plan matches it only so
    stmt = (select(t.c.id).where(text(UNSETTLED_WHERE), t.c.ready_at <= now)
            .order_by(t.c.ready_at).limit(limit))
    return list(conn.execute(stmt).scalars())


def settle_lost(db: Database, execution_id: str, now: datetime) -> list[Mapping[Any, Any]]:
    """The tick's safety net for ``unsettled_txn``: settle the block of a branch or iteration
    whose worker died before it did (harmless if it did meanwhile: a parent whose block is not
    decided, or no longer waits, is not woken)."""
    with db.connect() as conn:
        row = conn.execute(select(t).where(t.c.id == execution_id)).mappings().first()
    if row is None or row["ready_at"] is None or row["parent_id"] is None:
        return []
    return settle(db, Snapshot.from_row(row), now)


def _move_txn(conn: Connection, snap: Snapshot, token: str, values: dict[str, Any], cp: Checkpoint,
              now: datetime, *, stopping: bool, merged: bool) -> bool:
    """Move the row and record the attempt (``merged``: in one statement, closing the
    execution's open waits too); False if the fence failed."""
    if merged:
        assert cp.attempt is not None
        return _advance_with_attempt(conn, snap, token, values, cp.attempt, close_waits_at=now)
    if not advance_txn(conn, snap, token, values, stopping=stopping):
        return False
    if cp.attempt is not None:
        conn.execute(insert(s).values(**cp.attempt))
    return True


@dataclass(frozen=True)
class _Ancestors:
    """The locked root's status and the locked parent's id, status, state and visit."""

    root_status: str
    parent: Mapping[Any, Any]


def _lock_statement(shared: bool) -> Any:
    # built once: every branch and iteration that ends runs it
    stmt = select(t.c.id, t.c.status, t.c.current_node, t.c.entered_seq).where(t.c.id == bindparam("id"))
    return stmt.with_for_update(read=shared)


_LOCK = {shared: _lock_statement(shared) for shared in (False, True)}


def _lock(conn: Connection, execution_id: str, shared: bool) -> Mapping[Any, Any] | None:
    """Lock a row, reading only what a finishing child needs of it (not its context)."""
    return conn.execute(_LOCK[shared], {"id": execution_id}).mappings().first()


def _lock_ancestors(conn: Connection, snap: Snapshot, *, shared: bool = False) -> _Ancestors | None:
    """Lock the root, then the parent (the lock order everywhere); ``shared``: FOR SHARE, which
    keeps out stops and decisions (they lock FOR UPDATE) but not the parent's other children."""
    assert snap.parent_id is not None
    root = _lock(conn, snap.top, shared) if snap.top != snap.parent_id else None
    parent = _lock(conn, snap.parent_id, shared)
    if parent is None:
        return None
    return _Ancestors(str((root or parent)["status"]), parent)


def _ended_txn(conn: Connection, machine: StateMachine | None, snap: Snapshot, ancestors: _Ancestors,
               values: Mapping[Any, Any], now: datetime, take: TakeNext | None, shared: bool) -> Finished:
    """A branch or iteration ended: release a parked sibling (or claim it for ``take``) or wake
    its parent, and let its workflow's compensation start if it waited for this step."""
    done = Finished()
    if ExecutionStatus(values["status"]) in TERMINAL:
        state = machine.state(ancestors.parent["current_node"]) if machine else None
        offer = take if take is not None and machine is not None and _runs_on(machine, state, snap) == take.queue \
            else None
        done = child_finished_txn(conn, _as_row(snap), ExecutionStatus(values["status"]),
                                  values.get("context", snap.context), now, fails_fast(state), offer, shared=shared)
    if ancestors.root_status == ExecutionStatus.COMPENSATING.value:  # (the root is locked: it stays so)
        if shared:
            done.unsettled = True
        else:
            released = release_compensation_txn(conn, snap.top, now)
            if released is not None:
                done.rows.append(released)
    if shared and not done.unsettled:  # settled here: no second transaction, no mark
        _unmark(conn, snap.id)
    return done


def _runs_on(machine: StateMachine, state: State | None, snap: Snapshot) -> str | None:
    """The queue the next iteration of a foreach starts on (every iteration starts the same)."""
    if state is None or state.kind != "foreach" or state.body is None:
        return None
    return queue_of(machine, state.body, snap.queue)


def settle(db: Database, snap: Snapshot, now: datetime) -> list[Mapping[Any, Any]]:
    """The second transaction of a branch or iteration that ended unsettled, on its own: for a
    writer that lost the answer of its checkpoint's commit, and so cannot know whether its end
    left the block unsettled. Harmless if it did not: it wakes only a parent whose block is decided."""
    with db.begin() as conn:
        return _settle_txn(conn, snap, now)


def _settle_txn(conn: Connection, snap: Snapshot, now: datetime) -> list[Mapping[Any, Any]]:
    """After a branch or iteration ended under a shared lock, leaving the decision unsettled:
    with the ancestors locked for update, wake the parent if the block is decided (its last
    children may end side by side: the last of them to get here sees the others' commits), and
    let a compensating root go on."""
    ancestors = _lock_ancestors(conn, snap)
    if ancestors is None:  # its parent is gone (cleaned up): nothing to settle
        _unmark(conn, snap.id)
        return []
    rows: list[Mapping[Any, Any]] = []
    parent = ancestors.parent
    if parent["status"] == ExecutionStatus.WAITING.value and parent["entered_seq"] == snap.parent_seq:
        rows.extend(settle_block_txn(conn, _as_row(snap), now))
    if ancestors.root_status == ExecutionStatus.COMPENSATING.value:
        released = release_compensation_txn(conn, snap.top, now)
        if released is not None:
            rows.append(released)
    _unmark(conn, snap.id)
    return rows


def _as_row(snap: Snapshot) -> dict[str, Any]:
    return {"id": snap.id, "kind": snap.kind, "parent_id": snap.parent_id, "parent_seq": snap.parent_seq,
            "root_id": snap.root_id}


def advance_txn(conn: Connection, snap: Snapshot, token: str, values: Mapping[Any, Any], *,
                stopping: bool = False) -> bool:
    """Move a leased execution from ``seq`` to ``seq + 1`` with ``values``; False (nothing
    written) if the lease was lost, or a stop was requested (``stopping`` expects one)."""
    fence = t.c.stopping.is_not(None) if stopping else t.c.stopping.is_(None)
    result = conn.execute(
        update(t).where(t.c.id == snap.id, t.c.seq == snap.seq, t.c.lease_owner == token, fence)
        .values(seq=snap.seq + 1, **values)
    )
    return result.rowcount == 1


def stop_requested_txn(conn: Connection, snap: Snapshot, token: str) -> Mapping[Any, Any] | None:
    """The execution row if this worker still holds it at ``snap.seq`` and a stop was requested
    meanwhile (locked after its ancestors), else None."""
    if not snap.is_top_level and snap.parent_id is not None:
        _lock_ancestors(conn, snap)
    elif snap.top != snap.id:
        lock_execution_txn(conn, snap.top)
    row = conn.execute(select(t).where(t.c.id == snap.id).with_for_update()).mappings().first()
    if row is None or row["seq"] != snap.seq or row["lease_owner"] != token or row["stopping"] is None:
        return None
    return row


def _advance_with_attempt(conn: Connection, snap: Snapshot, token: str, values: dict[str, Any],
                          attempt: Mapping[Any, Any], close_waits_at: datetime | None = None) -> bool:
    """Postgres, in one statement: move the execution and record the attempt, or neither; with
    ``close_waits_at``, the execution's open waits are closed too (it completes)."""
    key = _shape(values, attempt, close_waits_at is not None)
    stmt = _ADVANCE.get(key)
    if stmt is None:  # built once per shape: building costs more than running it
        stmt = _ADVANCE[key] = _advance_statement(key)
    return conn.execute(stmt, _advance_params(snap, token, values, attempt, close_waits_at)).first() is not None


_Shape = tuple[tuple[str, ...], tuple[str, ...], bool]


def _shape(values: Mapping[str, Any], attempt: Mapping[Any, Any], closes: bool) -> _Shape:
    """What the statement of :func:`_advance_with_attempt` depends on: the columns it writes."""
    return tuple(values), tuple(attempt), closes


def _advance_statement(shape: _Shape) -> Any:
    written, recorded, closes = shape
    moved = _moved(written)
    stmt = insert(s).from_select(list(recorded), _recorded_row(recorded, moved)).returning(s.c.id)
    if closes:
        stmt = stmt.add_cte(_closed(moved))
    return stmt


def _moved(written: tuple[str, ...], *guards: Any) -> Any:
    """The fenced update of the execution's row (and whatever ``guards`` add), as a CTE."""
    return (update(t).where(t.c.id == bindparam("_id"), t.c.seq == bindparam("_seq"),
                            t.c.lease_owner == bindparam("_token"), t.c.stopping.is_(None), *guards)
            .values(seq=bindparam("_next"), **{k: bindparam(f"v_{k}", type_=t.c[k].type) for k in written})
            .returning(t.c.id).cte("moved"))


def _recorded_row(recorded: tuple[str, ...], moved: Any) -> Any:
    """The attempt's record, a row only if the execution moved."""
    return select(*[bindparam(f"a_{c}", type_=s.c[c].type).label(c) for c in recorded]).select_from(moved)


def _closed(moved: Any) -> Any:
    """Close the execution's open waits once its row moved (as ``cancel_waits_txn`` does)."""
    return (update(w).where(w.c.execution_id == bindparam("_id"), w.c.status == "pending", exists(select(moved.c.id)))
            .values(status="cancelled", resolved_at=bindparam("_closed_at")).cte("closed"))


def _end_branch(db: Database, snap: Snapshot, token: str, values: dict[str, Any], attempt: Mapping[Any, Any],
                now: datetime, take: TakeNext | None
                ) -> tuple[tuple[Mapping[Any, Any], ...], Mapping[Any, Any] | None] | None:
    """A branch of a top-level parallel block that completes, in one statement: lock the parent
    (the lock order everywhere: root, parent, execution), move the branch's row with its attempt
    and open waits, and wake the parent if no sibling is unfinished. Returns the woken parent (to
    publish), or, with ``take``, the parent claimed for this worker instead (its join runs in
    this task, with no message); None when it wrote nothing (the lease was lost, a stop was
    requested, the parent compensates): the general path then decides, as it does for every
    other end of a branch (a failure, a stop, a branch of a nested block).

    A statement sees only what was committed before it began, so a plain look at the siblings
    could miss one that ended while this statement waited for the parent's lock: of two last
    branches ending side by side, neither would wake the parent. The look locks the unfinished
    sibling it finds (``FOR SHARE``): a locking read at READ COMMITTED reads the row as last
    committed, and goes on past one that has ended meanwhile."""
    shape = _shape(values, attempt, True)
    prepared = prepared_for(db, ("branch", take is not None, *shape), lambda: _branch_end_statement(shape, take is not None))
    params = {**_advance_params(snap, token, values, attempt, now), "_parent": snap.parent_id,
              "_parent_seq": snap.parent_seq, "_now": now}
    if take is not None:
        params.update(_take_token=take.token, _take_until=take.lease_until)
    ended = prepared.first_mapping(params)
    if ended is None:  # it wrote nothing
        return None
    del ended["_moved"]
    if ended["id"] is None:
        return (), None
    return ((), ended) if take is not None else ((ended,), None)


def _branch_end_statement(shape: _Shape, take: bool) -> Any:
    written, recorded, _ = shape
    parent, sibling = t.alias("parent"), t.alias("sibling")
    locked = (select(parent.c.id)
              .where(parent.c.id == bindparam("_parent"), parent.c.entered_seq == bindparam("_parent_seq"),
                     parent.c.status != ExecutionStatus.COMPENSATING.value)
              .with_for_update().cte("locked"))
    moved = _moved(written, exists(select(locked.c.id)))
    finished: list[Any] = [literal_column(f"'{status.value}'") for status in TERMINAL]
    # after the move (and so after the parent's lock): the scan goes backwards over the
    # (parent_id, parent_seq, branch_index) index, and stops at the first sibling still unfinished
    unfinished = (select(sibling.c.id)
                  .where(sibling.c.parent_id == bindparam("_parent"), sibling.c.parent_seq == bindparam("_parent_seq"),
                         sibling.c.id != bindparam("_id"), sibling.c.status.not_in(finished), exists(select(moved.c.id)))
                  .order_by(sibling.c.branch_index.desc()).limit(1).with_for_update(read=True).cte("unfinished"))
    now = bindparam("_now", type_=t.c.updated_at.type)
    woken: Any = update(t).where(t.c.id == bindparam("_parent"), t.c.status == ExecutionStatus.WAITING.value,
                                 exists(select(moved.c.id)), ~exists(select(unfinished.c.id)))
    if take:  # as a claim leaves it (a started execution), leased to this worker's token
        until = bindparam("_take_until", type_=t.c.lease_expires_at.type)
        woken = (woken.values(**leased_values(bindparam("_take_token"), until, now), status=ExecutionStatus.RUNNING.value,
                              seq=t.c.seq + 1, dispatched_at=now, start_deadline_at=None, updated_at=now)
                 .returning(*CLAIMED_COLUMNS))
    else:
        woken = (woken.values(status=ExecutionStatus.RUNNING.value, seq=t.c.seq + 1, ready_at=now, dispatched_at=now,
                              updated_at=now)
                 .returning(*DISPATCH_COLUMNS))
    woken = woken.cte("woken")
    recorded_ = insert(s).from_select(list(recorded), _recorded_row(recorded, moved)).cte("recorded")
    return (select(moved.c.id.label("_moved"), *woken.c).select_from(moved.outerjoin(woken, literal_column("true")))
            .add_cte(recorded_).add_cte(_closed(moved)))


def _advance_params(snap: Snapshot, token: str, values: Mapping[str, Any], attempt: Mapping[Any, Any],
                    close_waits_at: datetime | None) -> dict[str, Any]:
    params = {"_id": snap.id, "_seq": snap.seq, "_token": token, "_next": snap.seq + 1,
              **{f"v_{k}": v for k, v in values.items()}, **{f"a_{c}": v for c, v in attempt.items()}}
    if close_waits_at is not None:
        params["_closed_at"] = close_waits_at
    return params


_ADVANCE: dict[_Shape, Any] = {}

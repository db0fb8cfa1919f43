"""Alias moves, serialised by an alias lock beside the log and recorded in the log (``alias_moves``).

MLflow sets an alias unconditionally, so every writer of aliases (the checkpointer, promote, rollback, the
guardrail) runs its read-compare-set-re-read under one lock per log. On SQLite that lock is a
``BEGIN IMMEDIATE`` on a small SQLite file of its own beside the log (``<log file>.alias-lock``, created
on demand; nothing is ever written to it): every mover of every process sharing the data dir waits for it,
but no decision does -- the log's own write lock is taken only for the short transaction that records the
move, while the alias lock is still held (so the log's alias-move mark changes only once the move is
visible in MLflow). Holding the log's write lock across the MLflow calls made every decision's commit wait
for them (tens to hundreds of ms per checkpoint). PostgreSQL takes an advisory transaction lock
(`decision_log.dialect.ALIAS_LOCK`) on a pooled connection of its own instead (:func:`alias_move`), which
the decision writer never takes.
"""
from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from decision_log.dialect import ALIAS_LOCK, dialect_of
from decision_log.records import AliasMove
from decision_log.sqlite.write_ops import WriteOp

__all__ = ["ALIAS_LOCK_SUFFIX", "ALIAS_LOCK_TIMEOUT_S", "ALIAS_MOVE_KINDS", "alias_lock", "alias_lock_path",
           "alias_move", "alias_moves", "move_under_alias_lock", "newest_alias_move_id"]

#: ``set_alias``: an alias pointed somewhere without a compare (a publish with aliases, ``set_alias``).
ALIAS_MOVE_KINDS = ("checkpoint", "promote", "rollback", "set_alias")
#: The alias lock's file: the log file's path plus this.
ALIAS_LOCK_SUFFIX = ".alias-lock"
#: How long a mover waits for another's move (a few MLflow calls; slow stores take seconds).
ALIAS_LOCK_TIMEOUT_S = 300.0

#: ``move()`` runs under the lock and returns ``(from_version, to_version)`` when it moved the alias, else None.
Mover = Callable[[], "tuple[str | None, str] | None"]


def _check_kind(kind: str) -> None:
    if kind not in ALIAS_MOVE_KINDS:
        raise ValueError(f"alias move kind must be one of {ALIAS_MOVE_KINDS}, got {kind!r}")


def _record(campaign: str, alias: str, kind: str, who: str, why: str, moved: tuple[str | None, str]) -> AliasMove:
    return AliasMove(campaign, alias, moved[0], moved[1], kind, who, why, time.time())


def _insert(record: AliasMove) -> WriteOp:
    def op(conn: Any) -> AliasMove:
        conn.execute("INSERT INTO alias_moves (campaign, alias, from_version, to_version, kind, who, why, moved_at) "
                     "VALUES (?,?,?,?,?,?,?,?)", (record.campaign, record.alias, record.from_version,
                                                  record.to_version, record.kind, record.who, record.why,
                                                  record.moved_at))
        return record

    return op


def alias_move(campaign: str, alias: str, kind: str, who: str, why: str, move: Mover) -> WriteOp:
    """PostgreSQL: run ``move`` inside a transaction of its own under the advisory alias lock, and record what
    it moved in that transaction. Returns the AliasMove or None."""
    _check_kind(kind)

    def op(conn: Any) -> AliasMove | None:
        dialect_of(conn).lock(conn, ALIAS_LOCK)
        moved = move()
        return None if moved is None else _insert(_record(campaign, alias, kind, who, why, moved))(conn)

    return op


def alias_lock_path(log_file: Path) -> Path:
    """The alias lock's file beside the SQLite log ``log_file``."""
    return Path(log_file).with_name(Path(log_file).name + ALIAS_LOCK_SUFFIX)


@contextlib.contextmanager
def alias_lock(log_file: Path, timeout_s: float = ALIAS_LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold the alias lock of the SQLite log ``log_file`` (waiting up to ``timeout_s`` for another mover):
    a ``BEGIN IMMEDIATE`` on the lock file, across threads and processes; released when the block ends or
    the process dies. Busy after ``timeout_s``: sqlite3.OperationalError (the backend makes it LogUnavailable)."""
    path = alias_lock_path(log_file)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))  # private, like the log
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=timeout_s)
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")  # nothing was written: releasing the lock is all it does
    finally:
        conn.close()


def move_under_alias_lock(log_file: Path, campaign: str, alias: str, kind: str, who: str, why: str, move: Mover,
                          write: Callable[[WriteOp], Any], timeout_s: float = ALIAS_LOCK_TIMEOUT_S) -> AliasMove | None:
    """SQLite: run ``move`` under the alias lock; when it moved, ``write`` the ``alias_moves`` row (a short
    transaction of the log: the writer's group in the server, one of its own elsewhere) before releasing the
    lock. Returns the AliasMove or None."""
    _check_kind(kind)
    with alias_lock(log_file, timeout_s):
        moved = move()
        if moved is None:
            return None
        return write(_insert(_record(campaign, alias, kind, who, why, moved)))


def alias_moves(conn: sqlite3.Connection, campaign: str, alias: str,
                kinds: Sequence[str] = ALIAS_MOVE_KINDS) -> list[AliasMove]:
    """The recorded moves of ``alias`` of ``campaign`` of these kinds, newest first."""
    wanted = [k for k in kinds if k in ALIAS_MOVE_KINDS]
    if not wanted:
        return []
    marks = ",".join("?" * len(wanted))
    rows = conn.execute(
        "SELECT campaign, alias, from_version, to_version, kind, who, why, moved_at FROM alias_moves "
        f"WHERE campaign = ? AND alias = ? AND kind IN ({marks}) ORDER BY id DESC", (campaign, alias, *wanted)
    ).fetchall()
    return [AliasMove(r["campaign"], r["alias"], r["from_version"], r["to_version"], r["kind"], r["who"] or "",
                      r["why"] or "", float(r["moved_at"])) for r in rows]


def newest_alias_move_id(conn: sqlite3.Connection) -> int:
    """The id of the newest recorded move of any alias (0 when none): changes whenever a move is recorded."""
    row = conn.execute("SELECT COALESCE(MAX(id), 0) AS newest FROM alias_moves").fetchone()
    return int(row["newest"])

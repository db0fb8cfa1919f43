"""Alias moves under the log's write lock (``alias_moves``).

MLflow sets an alias unconditionally, so every writer of aliases (the checkpointer, promote, rollback)
runs its read-compare-set-re-read inside a write transaction of the log: in the server as one operation
of the log's writer (inside its ``BEGIN IMMEDIATE``), in another process (the CLI) in a
``BEGIN IMMEDIATE`` of its own. Two movers therefore never interleave, and each move is recorded.
"""
from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from decision_log.dialect import ALIAS_LOCK, dialect_of
from decision_log.records import AliasMove
from decision_log.sqlite.connection import run_in_own_transaction
from decision_log.sqlite.write_ops import WriteOp

__all__ = ["ALIAS_MOVE_KINDS", "alias_move", "alias_moves", "alias_move_in_own_transaction", "newest_alias_move_id"]

#: ``set_alias``: an alias pointed somewhere without a compare (a publish with aliases, ``set_alias``).
ALIAS_MOVE_KINDS = ("checkpoint", "promote", "rollback", "set_alias")

#: ``move()`` runs under the lock and returns ``(from_version, to_version)`` when it moved the alias, else None.
Mover = Callable[[], "tuple[str | None, str] | None"]


def alias_move(campaign: str, alias: str, kind: str, who: str, why: str, move: Mover) -> WriteOp:
    """Run ``move`` inside the writer's transaction; record what it moved. Returns the AliasMove or None."""
    if kind not in ALIAS_MOVE_KINDS:
        raise ValueError(f"alias move kind must be one of {ALIAS_MOVE_KINDS}, got {kind!r}")

    def op(conn: sqlite3.Connection) -> AliasMove | None:
        dialect_of(conn).lock(conn, ALIAS_LOCK)  # PostgreSQL: an advisory lock; SQLite: its write lock
        moved = move()
        if moved is None:
            return None
        record = AliasMove(campaign, alias, moved[0], moved[1], kind, who, why, time.time())
        conn.execute("INSERT INTO alias_moves (campaign, alias, from_version, to_version, kind, who, why, moved_at) "
                     "VALUES (?,?,?,?,?,?,?,?)", (record.campaign, record.alias, record.from_version,
                                                  record.to_version, record.kind, record.who, record.why,
                                                  record.moved_at))
        return record

    return op


def alias_move_in_own_transaction(path: Path, busy_timeout_ms: int, op: WriteOp) -> AliasMove | None:
    """Run an :func:`alias_move` operation in a ``BEGIN IMMEDIATE`` of its own (a process without the writer)."""
    return run_in_own_transaction(path, busy_timeout_ms, op)


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

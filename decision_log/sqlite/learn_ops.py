"""The order of learning: ``decisions.learn_seq``, given by the learner alone when it learns an event.

An event is *final* once it was claimed (``learned_at``); it is *learned* into the live model once the
learner gave it a ``learn_seq`` (in the order it learns them, never twice: the write only fills an empty
``learn_seq``). A checkpoint records the highest ``learn_seq`` it includes, so a model loaded from it
catches up on exactly the events with a higher one (:func:`learned_after_seq`, streamed in learn_seq
order); events that are final but have none were claimed and not learned yet (still queued when the
server stopped) and are learned at the next start (:func:`unlearned_final`).
"""
from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence

from decision_log.counting import LEARNED_SQL
from decision_log.dialect import LEARN_LOCK, dialect_of
from decision_log.sqlite.write_ops import WriteOp

__all__ = ["assign_learn_seq", "backfill_learn_seq", "learn_seq_through", "learned_after_seq", "max_learn_seq",
           "unlearned_final"]

_ASSIGN = ("UPDATE decisions SET learn_seq = ? WHERE seq = ? AND learned_at IS NOT NULL AND learn_seq IS NULL "
           "AND quarantined_at IS NULL")


def assign_learn_seq(seqs: Sequence[int]) -> WriteOp:
    """Give the final, not yet learned events among ``seqs`` the next learn_seqs, in the order given.

    Returns ``{seq: learn_seq}`` for the events this call gave one (an event that already has one, or
    is quarantined, is left out: it is never learned twice).
    """
    ordered = [int(s) for s in seqs]

    def op(conn: sqlite3.Connection) -> dict[int, int]:
        dialect_of(conn).lock(conn, LEARN_LOCK)  # one numbering at a time, also across processes
        next_seq = int(conn.execute("SELECT coalesce(max(learn_seq), 0) FROM decisions").fetchone()[0]) + 1
        assigned: dict[int, int] = {}
        for seq in ordered:
            if seq in assigned:
                continue
            if conn.execute(_ASSIGN, (next_seq, seq)).rowcount:
                assigned[seq] = next_seq
                next_seq += 1
        return assigned

    return op


def backfill_learn_seq() -> WriteOp:
    """A log written before learn_seq existed: number its final events in the order they were claimed.

    Runs only while no event has a learn_seq (a log from older code); returns how many were numbered.
    Older code learned an event when it claimed it, so those events count as learned.
    """

    def op(conn: sqlite3.Connection) -> int:
        dialect_of(conn).lock(conn, LEARN_LOCK)
        if conn.execute("SELECT max(learn_seq) FROM decisions").fetchone()[0] is not None:
            return 0
        cursor = conn.execute(
            "UPDATE decisions SET learn_seq = ranked.n FROM (SELECT seq, row_number() OVER "
            f"(ORDER BY learned_at, seq) AS n FROM decisions WHERE {LEARNED_SQL} AND quarantined_at IS NULL) "
            "AS ranked WHERE decisions.seq = ranked.seq")
        return int(cursor.rowcount)

    return op


def learned_after_seq(conn: Callable[[], sqlite3.Connection], campaign: str, after: int,
                      chunk: int = 1000) -> Iterator[sqlite3.Row]:
    """Decisions of ``campaign`` learned with a learn_seq above ``after``, in learn_seq order, ``chunk`` at a time."""
    sql = ("SELECT * FROM decisions WHERE learn_seq > ? AND campaign = ? AND quarantined_at IS NULL "
           "ORDER BY learn_seq LIMIT ?")
    last = int(after)
    while True:
        rows = conn().execute(sql, (last, campaign, chunk)).fetchall()
        if not rows:
            return
        yield from rows
        last = int(rows[-1]["learn_seq"])


def max_learn_seq(conn: sqlite3.Connection, campaign: str | None = None) -> int:
    """The highest learn_seq given (of ``campaign``, or of any); 0 when none."""
    if campaign is None:
        row = conn.execute("SELECT coalesce(max(learn_seq), 0) FROM decisions").fetchone()
    else:
        row = conn.execute("SELECT coalesce(max(learn_seq), 0) FROM decisions WHERE campaign = ?",
                           (campaign,)).fetchone()
    return int(row[0])


def learn_seq_through(conn: sqlite3.Connection, campaign: str, learned_at: float) -> int:
    """The highest learn_seq of ``campaign``'s events claimed at or before ``learned_at`` (0: none): where
    a checkpoint from before learn_seq (it recorded only ``log_window_end``) stands in the order of learning."""
    row = conn.execute("SELECT coalesce(max(learn_seq), 0) FROM decisions WHERE campaign = ? AND learned_at <= ?",
                       (campaign, float(learned_at))).fetchone()
    return int(row[0])


def unlearned_final(conn: Callable[[], sqlite3.Connection], chunk: int = 1000) -> Iterator[int]:
    """Seqs of events claimed for learning that have no learn_seq (nor quarantine), in claim order."""
    sql = (f"SELECT seq, learned_at FROM decisions WHERE {LEARNED_SQL} AND learn_seq IS NULL "
           "AND quarantined_at IS NULL AND (learned_at > ? OR (learned_at = ? AND seq > ?)) "
           "ORDER BY learned_at, seq LIMIT ?")
    after, last = float("-inf"), -1
    while True:
        rows = conn().execute(sql, (after, after, last, chunk)).fetchall()
        if not rows:
            return
        for row in rows:
            yield int(row["seq"])
        after, last = float(rows[-1]["learned_at"]), int(rows[-1]["seq"])

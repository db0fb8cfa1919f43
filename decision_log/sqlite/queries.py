"""The named read queries of a SQLite log. Each thread reads on its own read-only connection; rows
never leave the decision_log package (`decision_log.DecisionLog` decodes them into records)."""
from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from decision_log.codec import decode_offers
from decision_log.counting import LEARNED_SQL
from decision_log.dialect import dialect_of
from decision_log.records import LiveStats, LogFilter
from decision_log.sqlite.connection import connect
from decision_log.sqlite.faults import log_faults
from offerbandit.errors import NotFound
from policies.types import Offer

#: The columns offline evaluation keeps (whole rows carry contexts it does not need).
FEEDBACK_COLUMNS = ("seq, event_id, campaign, decided_at, user_key, eligible, pmf, arm_set_id, arm_set_key, "
                    "chosen_index, probability, policy_version, exploration, deferred, activated_at, learned_at, "
                    "reward")
#: The columns of an exposure (whole rows carry pmf blobs the reports do not need).
EXPOSURE_COLUMNS = ("seq, event_id, campaign, policy_version, user_key, decided_at, offer_set, arm_set_id, "
                    "arm_set_key, offer_id, format, time_slot, exploration, chosen_index, deferred, activated_at, "
                    "learned_at, reward, reward_count")
#: The columns lift reads: who, which group, and whether (and with what) the reward is final.
LIFT_COLUMNS = ("seq, user_key, exploration, chosen_index, deferred, activated_at, decided_at, learn_due_at, "
                "learned_at, reward, reward_count, format, policy_version")
_NO_SEQ = 2**63 - 1
_TABLES = ("decisions", "rewards", "shadow_scores", "offer_sets", "alias_moves", "arm_sets", "log_keys", "audit")


def _where(log_filter: LogFilter) -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for clause, value in (("campaign = ?", log_filter.campaign), ("decided_at >= ?", log_filter.since),
                          ("decided_at < ?", log_filter.until), ("policy_version = ?", log_filter.policy_version)):
        if value is not None:
            clauses.append(clause)
            params.append(value)
    return clauses, params


class LogReader:
    """Read-only access to the log; each thread gets its own connection."""

    def __init__(self, path: Path, busy_timeout_ms: int = 5000) -> None:
        self.path = Path(path)
        self._busy = busy_timeout_ms
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path, synchronous="NORMAL", busy_timeout_ms=self._busy, readonly=True)
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    @log_faults
    def find_decision(self, event_id: str) -> sqlite3.Row | None:
        return self._conn().execute("SELECT * FROM decisions WHERE event_id = ?", (event_id,)).fetchone()

    @log_faults
    def rewards_of(self, event_id: str) -> list[sqlite3.Row]:
        """The reward calls stored for ``event_id``, in arrival order."""
        return self._conn().execute("SELECT reward_id, value, received_at, status FROM rewards WHERE event_id = ? "
                                    "ORDER BY id", (event_id,)).fetchall()

    @log_faults
    def offer_set(self, offer_set_id: str) -> tuple[Offer, ...]:
        row = self._conn().execute("SELECT offers FROM offer_sets WHERE id = ?", (offer_set_id,)).fetchone()
        if row is None:
            raise NotFound(f"unknown offer set {offer_set_id!r}")
        return decode_offers(row["offers"])

    @log_faults
    def arm_set(self, ref: int | str) -> tuple[str, str]:
        """The id and stored text of an arm set (`decision_log.codec.decode_arm_set`) by its integer key
        (schema 4) or its text id."""
        where = "key" if isinstance(ref, int) else "id"
        row = self._conn().execute(f"SELECT id, arms FROM arm_sets WHERE {where} = ?", (ref,)).fetchone()
        if row is None:
            raise NotFound(f"unknown arm set {ref!r}")
        return row["id"], row["arms"]

    @log_faults
    def user_decisions(self, user_key: str, since: float, limit: int) -> list[sqlite3.Row]:
        """One customer's newest ``limit`` decisions at or after ``since`` (by the user-key index), oldest
        first: what the per-user store loads for a customer it does not hold in memory."""
        rows = self._conn().execute(
            "SELECT * FROM decisions WHERE user_key = ? AND decided_at >= ? ORDER BY decided_at DESC, seq DESC "
            "LIMIT ?", (user_key, since, limit)).fetchall()
        rows.reverse()
        return rows

    @log_faults
    def due_for_learning(self, now: float, limit: int = 1000) -> list[int]:
        """Seqs of events whose reward window closed and that nobody claimed yet, oldest deadline first."""
        rows = self._conn().execute(
            "SELECT seq FROM decisions WHERE learned_at IS NULL AND learn_due_at IS NOT NULL "
            "AND learn_due_at <= ? ORDER BY learn_due_at LIMIT ?", (now, limit)).fetchall()
        return [row[0] for row in rows]

    def decisions(self, log_filter: LogFilter = LogFilter(), *, up_to_seq: int | None = None,
                  chunk: int = 5000) -> Iterator[sqlite3.Row]:
        """Whole decisions in log order."""
        return self._stream("*", log_filter, up_to_seq, chunk)

    def feedback_rows(self, log_filter: LogFilter, chunk: int = 5000) -> Iterator[sqlite3.Row]:
        """The columns offline evaluation keeps, in log order."""
        return self._stream(FEEDBACK_COLUMNS, log_filter, None, chunk)

    def exposure_rows(self, since: float | None, chunk: int = 5000) -> Iterator[sqlite3.Row]:
        """The columns of an exposure, for decisions at or after ``since``, in log order."""
        return self._stream(EXPOSURE_COLUMNS, LogFilter(since=since), None, chunk)

    def lift_rows(self, campaign: str, chunk: int = 5000) -> Iterator[sqlite3.Row]:
        """The columns `counting.lift_reward` reads, for every decision of ``campaign``, in log order."""
        return self._stream(LIFT_COLUMNS, LogFilter(campaign=campaign), None, chunk)

    @log_faults
    def _stream(self, columns: str, log_filter: LogFilter, up_to_seq: int | None,
                chunk: int) -> Iterator[sqlite3.Row]:
        """Keyset-paginated chunks (safe for logs larger than memory)."""
        clauses, params = _where(log_filter)
        if up_to_seq is not None:
            clauses.append("seq <= ?")
            params.append(up_to_seq)
        sql = f"SELECT {columns} FROM decisions WHERE {' AND '.join(['seq > ?', *clauses])} ORDER BY seq LIMIT ?"
        last = 0
        while True:
            rows = self._conn().execute(sql, (last, *params, chunk)).fetchall()
            if not rows:
                return
            yield from rows
            last = rows[-1]["seq"]

    @log_faults
    def decisions_by_seq(self, seqs: Sequence[int]) -> list[sqlite3.Row]:
        """The decisions with these seqs, in seq order (unknown seqs are skipped)."""
        condition, param = dialect_of(self._conn()).seqs_in("seq", seqs)
        return self._conn().execute(f"SELECT * FROM decisions WHERE {condition} ORDER BY seq", (param,)).fetchall()

    @log_faults
    def learned_after(self, campaign: str, when: float, chunk: int = 1000) -> Iterator[sqlite3.Row]:
        """Decisions of ``campaign`` claimed for learning after ``when``, in the order they were learned."""
        sql = ("SELECT * FROM decisions WHERE campaign = ? AND (learned_at > ? OR (learned_at = ? AND seq > ?)) "
               "ORDER BY learned_at, seq LIMIT ?")
        after, last = when, _NO_SEQ  # first page: strictly after ``when``
        while True:
            rows = self._conn().execute(sql, (campaign, after, after, last, chunk)).fetchall()
            if not rows:
                return
            yield from rows
            after, last = rows[-1]["learned_at"], rows[-1]["seq"]

    @log_faults
    def learned_of_campaign(self, campaign: str) -> list[sqlite3.Row]:
        """The learned decisions of ``campaign`` (few columns), in log order."""
        return self._conn().execute(
            "SELECT policy_version, decided_at, reward, format, time_slot, exploration FROM decisions "
            f"WHERE campaign = ? AND {LEARNED_SQL} ORDER BY seq", (campaign,)).fetchall()

    @log_faults
    def live_stats(self, campaign: str, version: str) -> LiveStats:
        row = self._conn().execute(
            "SELECT count(*), avg(reward), sum(CASE WHEN exploration = 'explore_outside_history' THEN 1 ELSE 0 END) "
            "FROM decisions "
            f"WHERE campaign = ? AND policy_version = ? AND {LEARNED_SQL}", (campaign, version)).fetchone()
        return LiveStats(events=int(row[0] or 0), reward_mean=float(row[1] or 0.0), outside_history=int(row[2] or 0))

    @log_faults
    def campaigns(self) -> tuple[str, ...]:
        rows = self._conn().execute("SELECT DISTINCT campaign FROM decisions ORDER BY campaign").fetchall()
        return tuple(row[0] for row in rows)

    @log_faults
    def last_seq(self) -> int | None:
        return self._conn().execute("SELECT max(seq) FROM decisions").fetchone()[0]

    @log_faults
    def count(self, table: str = "decisions") -> int:
        if table not in _TABLES:
            raise ValueError(f"unknown table {table}")
        return int(self._conn().execute(f"SELECT count(*) FROM {table}").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                try:
                    conn.close()
                except sqlite3.Error:
                    pass
            self._all.clear()
        self._local = threading.local()

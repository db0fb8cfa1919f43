"""`PostgresBackend`: the decision log in a PostgreSQL database shared by several processes.

The same guarantees as `decision_log.sqlite.backend.SqliteBackend`, across processes: a decision is
committed before its answer (group commit, `PgLogWriter`), idempotent on ``event_id`` (a unique index;
another replica's earlier commit comes back as a repeat), each reward joined once (the event's row is
locked ``FOR UPDATE`` by the reward's transaction; ``(event_id, reward_id)`` unique), caps exact (advisory
locks on the customers, counted inside the commit), the order of learning numbered under the learner's
advisory lock, alias moves under an advisory lock with an ``alias_moves`` row. The named queries are
SQLite's (`decision_log.sqlite.queries.LogReader`), run on pooled connections one statement at a time.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future
from contextlib import AbstractContextManager
from typing import Any

import psycopg

from decision_log.postgres.learner_lock import SessionLock, learner_lock
from decision_log.postgres.connection import PgConn, PoolReader, log_faults, mask_url, open_pool
from decision_log.postgres.schema import migrate
from decision_log.postgres.write_ops import insert_decisions, insert_shadow_scores
from decision_log.postgres.writer import PgLogWriter
from decision_log.sqlite.shared_ops import SharedOperations
from decision_log.records import AliasMove, DecisionRow, LogOptions, ShadowScore
from decision_log.write_outcomes import InsertOutcome
from decision_log.sqlite import alias_ops
from decision_log.sqlite.queries import LogReader

__all__ = ["PostgresBackend"]


class PostgresBackend(SharedOperations, LogReader):
    """The named queries of `LogReader` on a pool, plus the writes. ``writable``: a writer thread (the
    log's schema is created if the database is empty); else the database must already hold a log (an
    older one is upgraded). The first connection is retried for ``options.connect_timeout_s``."""

    shared = True  # several processes write this log

    def __init__(self, url: str, options: LogOptions = LogOptions(), *, writable: bool = True,
                 on_queue_depth: Callable[[int], None] | None = None) -> None:
        self.url = url
        self._connect_timeout_s = options.connect_timeout_s
        self._timeout = max(0.1, options.busy_timeout_ms / 1000)
        self._pool = open_pool(url, options)
        try:
            with self._pool.connection(timeout=max(self._timeout, options.connect_timeout_s)) as raw:
                migrate(raw, url, create=writable)
        except BaseException:
            self._pool.close()
            raise
        self._reader = PoolReader(self._pool, self._timeout)
        self.writer: PgLogWriter | None = None
        self._writer_pool = None
        if writable:  # the writer's own one-connection pool: readers never make a commit wait for a connection
            try:
                self._writer_pool = open_pool(url, options, name="offerbandit-log-writer", size=1)
            except BaseException:
                self._pool.close()
                raise
            self.writer = PgLogWriter(self._writer_pool, max_group=options.max_group, max_queue=options.max_queue,
                                      connection_timeout=self._timeout, on_queue_depth=on_queue_depth)

    # --- LogReader's connection: one pooled statement at a time ---------------------------------------
    def _conn(self) -> PoolReader:  # type: ignore[override]
        return self._reader

    @property
    def location(self) -> str:
        return mask_url(self.url)

    # --- writes ---------------------------------------------------------------------------------------
    def insert_decisions(self, rows: Sequence[DecisionRow]) -> Future[InsertOutcome]:
        return self._submit(insert_decisions(rows))

    def insert_shadow_scores(self, scores: Sequence[ShadowScore]) -> Future[int]:
        return self._submit(insert_shadow_scores(scores))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self._writer_pool is not None:
            self._writer_pool.close()
        self._pool.close()

    # --- the order of learning (learn_seq) and alias moves -------------------------------------------
    def alias_move(self, campaign: str, alias: str, kind: str, who: str, why: str,
                   move: alias_ops.Mover) -> AliasMove | None:
        """Always a transaction of its own (never inside the writer's group: ``move`` calls the registry and
        would hold every decision's commit meanwhile); the advisory lock serialises all movers on the log."""
        return self._own_transaction(alias_ops.alias_move(campaign, alias, kind, who, why, move))

    @log_faults
    def _own_transaction(self, op: Callable[[PgConn], Any]) -> Any:
        """Run one write operation in a transaction of its own on a pooled connection: all of it, or none."""
        with self._pool.connection(timeout=max(self._timeout, 30.0)) as raw:
            conn = PgConn(raw)
            conn.execute("BEGIN")
            try:
                result = op(conn)
            except BaseException:
                if not raw.broken:
                    try:
                        conn.execute("ROLLBACK")
                    except psycopg.Error:
                        pass
                raise
            conn.execute("COMMIT")
            return result

    def reclaim_space(self) -> bool:
        """PostgreSQL reuses deleted rows' space after (auto)VACUUM: the operator's, not the log's."""
        return False

    def alias_moves(self, campaign: str, alias: str, kinds: Sequence[str]) -> list[AliasMove]:
        return alias_ops.alias_moves(self._conn(), campaign, alias, kinds)

    def newest_alias_move_id(self) -> int:
        return alias_ops.newest_alias_move_id(self._conn())

    def learner_lock(self) -> AbstractContextManager[SessionLock]:
        return learner_lock(self.url, self._connect_timeout_s)

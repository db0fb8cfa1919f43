"""The group-committing writer of a PostgreSQL log (the same contract as `decision_log.sqlite.writer`).

One thread takes every operation queued at that moment and runs them in one transaction on one pooled
connection: first the advisory locks of the group's capped customers (sorted), then each operation in its
own SAVEPOINT (a failing one is rolled back alone), then one COMMIT. A future resolves only after COMMIT
returned (``synchronous_commit`` on by default: the commit is flushed to PostgreSQL's WAL). A caller's
``cancel()`` before the writer took its operation means it is never written.

Faults: a lost connection, PostgreSQL shutting down or unreachable fail the whole group with
`LogUnavailable` — also when COMMIT itself failed, so a commit whose connection dropped is never reported
as committed (its outcome is unknown; the caller retries, and event ids make the retry safe). The next
group takes a fresh connection from the pool (checked on every take), so the writer recovers by itself
when PostgreSQL is back. A deadlock or serialisation failure rolls the group back and runs it again.
"""
from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import psycopg
import psycopg_pool

from decision_log.caps import users_with_caps
from decision_log.group_writer import GroupCommitWriter, Item, Result, runs_of
from decision_log.postgres.connection import PgConn, as_log_fault
from decision_log.postgres.write_ops import InsertDecisions, insert_rows, lock_customers, outcomes_of

__all__ = ["PgLogWriter"]

_RETRIES = 3


class _GroupFailed(Exception):
    """The group's transaction cannot go on (connection lost, aborted): every operation of it fails."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


class PgLogWriter(GroupCommitWriter):
    """The writer thread of one process on a shared PostgreSQL log: a pooled connection per group."""

    thread_name = "decision-log-writer-pg"

    def __init__(self, pool: psycopg_pool.ConnectionPool, *, max_group: int = 512, max_queue: int = 20000,
                 connection_timeout: float = 5.0, on_queue_depth: Callable[[int], None] | None = None) -> None:
        self._pool = pool
        self._timeout = connection_timeout
        super().__init__(max_group=max_group, max_queue=max_queue, on_queue_depth=on_queue_depth)

    def _commit_group(self, batch: list[Item]) -> list[Result] | None:
        for attempt in range(_RETRIES):
            try:
                return self._transaction(batch)
            except psycopg.errors.TransactionRollback as exc:  # deadlock or serialisation: run it again
                if attempt + 1 < _RETRIES:
                    continue
                self.fail_all(batch, as_log_fault(exc))
            except BaseException as exc:  # noqa: BLE001 - the whole group failed: every caller learns it
                self.fail_all(batch, as_log_fault(exc.cause if isinstance(exc, _GroupFailed) else exc))
            return None
        return None

    def _fail(batch: list[Item], exc: BaseException) -> None:
        fault = as_log_fault(exc)
        for _, future in batch:
            if not future.done():
                future.set_exception(fault)

    def _transaction(self, batch: list[Item]) -> list[Result]:
        results: list[Result] = []
        with self._pool.connection(timeout=self._timeout) as raw:
            conn = PgConn(raw)
            conn.execute("BEGIN")
            try:
                lock_customers(conn, users_with_caps([row for op, _ in batch if isinstance(op, InsertDecisions)
                                                      for row in op.rows]))
                for run in runs_of(batch, InsertDecisions):
                    if len(run) > 1 and self._merged_insert(conn, run, results):
                        continue
                    for op, future in run:
                        results.append(self._one(conn, op, future))
            except BaseException:
                if not raw.broken:
                    try:
                        conn.execute("ROLLBACK")
                    except psycopg.Error:
                        pass  # the pool discards a connection it cannot reset
                raise
            conn.execute("COMMIT")  # raises if the connection dropped: then nothing is reported committed
        return results

    @staticmethod
    def _one(conn: PgConn, op: Callable[[PgConn], Any], future: Future) -> Result:
        conn.execute("SAVEPOINT op")
        try:
            value = op(conn)
        except psycopg.errors.TransactionRollback:
            raise  # the whole group is retried
        except BaseException as exc:  # noqa: BLE001 - handed to the caller through its future
            if conn.raw.broken:  # the connection is gone: so is the group's transaction
                raise _GroupFailed(exc) from exc
            conn.execute("ROLLBACK TO SAVEPOINT op")
            conn.execute("RELEASE SAVEPOINT op")
            return future, None, as_log_fault(exc)
        conn.execute("RELEASE SAVEPOINT op")
        return future, value, None

    @staticmethod
    def _merged_insert(conn: PgConn, run: list[Item], results: list[Result]) -> bool:
        """Insert a run of InsertDecisions as one batch; False (nothing written) if it fails."""
        ops = [op for op, _ in run]
        conn.execute("SAVEPOINT merged")
        try:
            inserted, capped = insert_rows(conn, [row for op in ops for row in op.rows])
        except psycopg.errors.TransactionRollback:
            raise
        except psycopg.Error as exc:
            if conn.raw.broken:
                raise _GroupFailed(exc) from exc
            conn.execute("ROLLBACK TO SAVEPOINT merged")
            conn.execute("RELEASE SAVEPOINT merged")
            return False
        conn.execute("RELEASE SAVEPOINT merged")
        results.extend((future, outcome, None)
                       for (_, future), outcome in zip(run, outcomes_of(ops, inserted, capped)))
        return True

    def close(self, timeout: float = 30.0) -> None:
        """Write everything queued, then stop the thread (the pool is the backend's to close)."""
        self._stop(timeout)

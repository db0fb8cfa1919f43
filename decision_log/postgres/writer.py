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

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import psycopg
import psycopg_pool

from decision_log.caps import users_with_caps
from decision_log.postgres.connection import PgConn, as_log_fault
from decision_log.postgres.write_ops import InsertDecisions, insert_rows, lock_customers, outcomes_of
from offerbandit.errors import LogClosed, Overloaded

__all__ = ["PgLogWriter"]

_Item = tuple[Callable[[PgConn], Any], Future]
_Result = tuple[Future, Any, BaseException | None]
_RETRIES = 3


class _GroupFailed(Exception):
    """The group's transaction cannot go on (connection lost, aborted): every operation of it fails."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


def _runs_of_inserts(batch: list[_Item]) -> list[list[_Item]]:
    runs: list[list[_Item]] = []
    for item in batch:
        if isinstance(item[0], InsertDecisions) and runs and isinstance(runs[-1][0][0], InsertDecisions):
            runs[-1].append(item)
        else:
            runs.append([item])
    return runs


class PgLogWriter:
    """The writer thread of one process on a shared PostgreSQL log. Thread-safe ``submit``."""

    def __init__(self, pool: psycopg_pool.ConnectionPool, *, max_group: int = 512, max_queue: int = 20000,
                 connection_timeout: float = 5.0, on_queue_depth: Callable[[int], None] | None = None) -> None:
        self._pool = pool
        self._timeout = connection_timeout
        self._max_group = max_group
        self._queue: queue.Queue[_Item | None] = queue.Queue(maxsize=max_queue)
        self._on_queue_depth = on_queue_depth
        self._closed = threading.Event()
        self.commits = 0
        self.ops_written = 0
        self._thread = threading.Thread(target=self._run, name="decision-log-writer-pg", daemon=True)
        self._thread.start()

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    def submit(self, op: Callable[[PgConn], Any]) -> Future:
        if self._closed.is_set():
            raise LogClosed("the decision log is closed")
        future: Future = Future()
        try:
            self._queue.put_nowait((op, future))
        except queue.Full:
            raise Overloaded("decision log queue is full; retry later") from None
        return future

    def write(self, op: Callable[[PgConn], Any], timeout: float | None = None) -> Any:
        return self.submit(op).result(timeout)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                break
            batch = [item]
            stop = False
            while len(batch) < self._max_group:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            self._commit(batch)
            if self._on_queue_depth is not None:
                self._on_queue_depth(self._queue.qsize())
            if stop:
                break
        leftovers = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                leftovers.append(item)
        if leftovers:
            self._commit(leftovers)

    def _commit(self, batch: list[_Item]) -> None:
        batch = [(op, future) for op, future in batch if future.set_running_or_notify_cancel()]
        if not batch:
            return
        for attempt in range(_RETRIES):
            try:
                results = self._transaction(batch)
            except psycopg.errors.TransactionRollback as exc:  # deadlock or serialisation: run it again
                if attempt + 1 < _RETRIES:
                    continue
                self._fail(batch, exc)
                return
            except BaseException as exc:  # noqa: BLE001 - the whole group failed: every caller learns it
                self._fail(batch, exc.cause if isinstance(exc, _GroupFailed) else exc)
                return
            break
        self.commits += 1
        self.ops_written += len(batch)
        for future, value, exc in results:
            if exc is not None:
                future.set_exception(exc)
            else:
                future.set_result(value)

    @staticmethod
    def _fail(batch: list[_Item], exc: BaseException) -> None:
        fault = as_log_fault(exc)
        for _, future in batch:
            if not future.done():
                future.set_exception(fault)

    def _transaction(self, batch: list[_Item]) -> list[_Result]:
        results: list[_Result] = []
        with self._pool.connection(timeout=self._timeout) as raw:
            conn = PgConn(raw)
            conn.execute("BEGIN")
            try:
                lock_customers(conn, users_with_caps([row for op, _ in batch if isinstance(op, InsertDecisions)
                                                      for row in op.rows]))
                for run in _runs_of_inserts(batch):
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
    def _one(conn: PgConn, op: Callable[[PgConn], Any], future: Future) -> _Result:
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
    def _merged_insert(conn: PgConn, run: list[_Item], results: list[_Result]) -> bool:
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
        if self._closed.is_set():
            return
        self._closed.set()
        self._queue.put(None)
        self._thread.join(timeout)

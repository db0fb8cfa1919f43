"""The one writer of a SQLite log: a thread that group-commits queued write operations.

The request path never opens a transaction: it hands a *write operation* to :class:`LogWriter` and
waits on the returned future. The writer thread takes every operation queued at that moment, runs
them in one ``BEGIN IMMEDIATE`` transaction (each inside its own SAVEPOINT, so one failing operation
does not undo its neighbours) and commits once, so many decisions share one fsync. A future resolves
only after COMMIT returned: an acknowledged decision or reward is on disk (``synchronous=FULL``).

A caller that gives up may ``cancel()`` its future: an operation the writer has not taken yet is then
never written (so "timed out" can mean "nothing committed"); once taken, cancel fails and the future
resolves with the commit. Expected SQLite faults (busy, locked, disk full, I/O) reach callers as
`LogUnavailable` (see :mod:`decision_log.sqlite.faults`).
"""
from __future__ import annotations

import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from decision_log.records import InsertOutcome
from decision_log.sqlite.connection import connect
from decision_log.sqlite.faults import as_log_fault
from decision_log.sqlite.schema import migrate
from decision_log.sqlite.write_ops import InsertDecisions, WriteOp, insert_rows
from offerbandit.errors import LogClosed, Overloaded

_Item = tuple[WriteOp, Future]
_Result = tuple[Future, Any, BaseException | None]


def _runs_of_inserts(batch: list[_Item]) -> list[list[_Item]]:
    """Split a group into runs: consecutive InsertDecisions together, every other op alone."""
    runs: list[list[_Item]] = []
    for item in batch:
        if isinstance(item[0], InsertDecisions) and runs and isinstance(runs[-1][0][0], InsertDecisions):
            runs[-1].append(item)
        else:
            runs.append([item])
    return runs


class LogWriter:
    """The only writer of the decision log. Thread-safe ``submit``; one thread does all writes."""

    def __init__(self, path: Path, *, synchronous: str = "FULL", max_group: int = 512, max_queue: int = 20000,
                 busy_timeout_ms: int = 5000, autocheckpoint_pages: int = 4000,
                 on_queue_depth: Callable[[int], None] | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = connect(self.path, synchronous=synchronous, busy_timeout_ms=busy_timeout_ms,
                             autocheckpoint=autocheckpoint_pages)
        try:
            migrate(self._conn, self.path, create=True)
        except BaseException:
            self._conn.close()
            raise
        self._max_group = max_group
        self._queue: queue.Queue[_Item | None] = queue.Queue(maxsize=max_queue)
        self._on_queue_depth = on_queue_depth
        self._closed = threading.Event()
        self.commits = 0
        self.ops_written = 0
        self._thread = threading.Thread(target=self._run, name="decision-log-writer", daemon=True)
        self._thread.start()

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    def submit(self, op: WriteOp) -> Future:
        """Queue ``op``; the future resolves with its result after the COMMIT that contains it."""
        if self._closed.is_set():
            raise LogClosed("the decision log is closed")
        future: Future = Future()
        try:
            self._queue.put_nowait((op, future))
        except queue.Full:
            raise Overloaded("decision log queue is full; retry later") from None
        return future

    def write(self, op: WriteOp, timeout: float | None = None) -> Any:
        """Submit and wait for the commit."""
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
        self._drain_after_close()

    def _drain_after_close(self) -> None:
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
        results: list[_Result] = []
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            for run in _runs_of_inserts(batch):
                if len(run) > 1 and self._merged_insert(conn, run, results):
                    continue
                for op, future in run:
                    results.append(self._one(conn, op, future))
            conn.execute("COMMIT")
        except BaseException as exc:  # noqa: BLE001 - the whole group failed: every caller learns it
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            exc = as_log_fault(exc)
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        self.commits += 1
        self.ops_written += len(batch)
        for future, value, exc in results:
            if exc is not None:
                future.set_exception(exc)
            else:
                future.set_result(value)

    @staticmethod
    def _one(conn: sqlite3.Connection, op: WriteOp, future: Future) -> _Result:
        conn.execute("SAVEPOINT op")
        try:
            value = op(conn)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller through its future
            if not conn.in_transaction:  # SQLite rolled the whole group back (disk full, I/O): it fails
                raise as_log_fault(exc) from exc
            conn.execute("ROLLBACK TO op")
            conn.execute("RELEASE op")
            return future, None, as_log_fault(exc)
        conn.execute("RELEASE op")
        return future, value, None

    @staticmethod
    def _merged_insert(conn: sqlite3.Connection, run: list[_Item], results: list[_Result]) -> bool:
        """Insert a run of InsertDecisions with one executemany; False (nothing written) if it fails."""
        conn.execute("SAVEPOINT merged")
        try:
            capped = set(insert_rows(conn, [row for op, _ in run for row in op.rows]))
        except sqlite3.Error as exc:
            if not conn.in_transaction:  # SQLite rolled the whole group back (disk full, I/O): it fails
                raise as_log_fault(exc) from exc
            conn.execute("ROLLBACK TO merged")
            conn.execute("RELEASE merged")
            return False
        conn.execute("RELEASE merged")
        results.extend((future, InsertOutcome(len(op.rows), (), tuple(r.event_id for r in op.rows
                                                                     if r.event_id in capped)), None)
                       for op, future in run)
        return True

    def close(self, timeout: float = 30.0) -> None:
        """Write everything queued, checkpoint the WAL into the main file, close."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._queue.put(None)
        self._thread.join(timeout)
        try:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            self._conn.close()

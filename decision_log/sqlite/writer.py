"""The one writer of a SQLite log: a thread that group-commits queued write operations.

The request path never opens a transaction: it hands a *write operation* to :class:`LogWriter` and
waits on the returned future. The writer thread takes every operation queued at that moment, runs
them in one ``BEGIN IMMEDIATE`` transaction (each inside its own SAVEPOINT, so one failing operation
does not undo its neighbours) and commits once, so many decisions share one fsync. A future resolves
only after COMMIT returned: an acknowledged decision or reward is on disk (``synchronous=FULL``).

Queue, thread and cancellation are `decision_log.group_writer`'s. Expected SQLite faults (busy, locked, disk full, I/O) reach callers as
`LogUnavailable` (see :mod:`decision_log.sqlite.faults`).
"""
from __future__ import annotations

import sqlite3
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

from decision_log.group_writer import GroupCommitWriter, Item, Result, runs_of
from decision_log.write_outcomes import InsertOutcome
from decision_log.sqlite.connection import connect
from decision_log.sqlite.faults import as_log_fault
from decision_log.sqlite.schema import migrate
from decision_log.sqlite.wal_checkpointer import WalCheckpointer
from decision_log.sqlite.write_ops import InsertDecisions, WriteOp, insert_rows

class LogWriter(GroupCommitWriter):
    """The only writer of a SQLite log: its connection, the group's ``BEGIN IMMEDIATE`` transaction."""

    def __init__(self, path: Path, *, synchronous: str = "FULL", max_group: int = 512, max_queue: int = 20000,
                 busy_timeout_ms: int = 5000, autocheckpoint_pages: int = 4000, wal_checkpoint_s: float = 0.2,
                 on_queue_depth: Callable[[int], None] | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # with a checkpointer thread, no commit checkpoints (see decision_log.sqlite.wal_checkpointer)
        self._conn = connect(self.path, synchronous=synchronous, busy_timeout_ms=busy_timeout_ms,
                             autocheckpoint=0 if wal_checkpoint_s > 0 else autocheckpoint_pages)
        self.checkpointer: WalCheckpointer | None = None
        try:
            migrate(self._conn, self.path, create=True)
            if wal_checkpoint_s > 0:
                self.checkpointer = WalCheckpointer(self.path, interval_s=wal_checkpoint_s,
                                                    busy_timeout_ms=busy_timeout_ms)
        except BaseException:
            self._conn.close()
            raise
        super().__init__(max_group=max_group, max_queue=max_queue, on_queue_depth=on_queue_depth)

    def _commit_group(self, batch: list[Item]) -> list[Result] | None:
        results: list[Result] = []
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            for run in runs_of(batch, InsertDecisions):
                if len(run) > 1 and self._merged_insert(conn, run, results):
                    continue
                for op, future in run:
                    results.append(self._one(conn, op, future))
            conn.execute("COMMIT")
            if self.checkpointer is not None:
                self.checkpointer.committed()
        except BaseException as exc:  # noqa: BLE001 - the whole group failed: every caller learns it
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            self.fail_all(batch, as_log_fault(exc))
            return None
        return results

    @staticmethod
    def _one(conn: sqlite3.Connection, op: WriteOp, future: Future) -> Result:
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
    def _merged_insert(conn: sqlite3.Connection, run: list[Item], results: list[Result]) -> bool:
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
        if not self._stop(timeout):
            return
        if self.checkpointer is not None:
            self.checkpointer.close()
        try:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            self._conn.close()

"""`WalCheckpointer`: copies the log's WAL into its main file from a thread of its own, never in a commit.

SQLite's automatic checkpoint runs inside the COMMIT that takes the WAL past ``wal_autocheckpoint``
pages: that commit copies the whole WAL (64 MB at 4,000 pages of 16 KB) into the main file and fsyncs it
-- ~200 ms on the bench's disk, and every decision queued behind that commit waited as long (the
slowest Decides of a learning server in `bench/bench_latency.py` (b): 185 and 209 ms commits, timed). Here the writer's connection never
checkpoints; this thread runs a PASSIVE checkpoint on its own connection every ``interval_s`` when
something was committed since the last one. PASSIVE takes no lock a writer or reader waits for: commits go
on appending to the WAL meanwhile, and SQLite starts the WAL over from its beginning at the first write
after a checkpoint that copied every frame while no reader was using the WAL. Each checkpoint copies what
one interval wrote (~2 MB at 0.2 s under the bench's load): its fsync of the main file delays a commit's
fsync of the WAL on the same disk by a few milliseconds, not by the whole WAL's copy.

Durability is unchanged: a commit is on disk once the WAL is synced (``synchronous``); a checkpoint only
moves committed pages. A failed checkpoint (an I/O error, a full disk) is logged and tried again at the
next interval; the writer then reports the fault itself on its next commit.
"""
from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

from decision_log.sqlite.connection import connect

__all__ = ["WalCheckpointer"]

log = logging.getLogger(__name__)


class WalCheckpointer:
    """The checkpointing thread of one SQLite log; :meth:`committed` is called after each commit (cheap:
    a counter), :meth:`close` stops the thread and closes its connection."""

    def __init__(self, path: Path, *, interval_s: float, busy_timeout_ms: int) -> None:
        self.path = Path(path)
        self.interval_s = float(interval_s)
        self._conn = connect(self.path, synchronous="FULL", busy_timeout_ms=busy_timeout_ms)
        self._commits = 0
        self._checkpointed_at = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()  # this thread and a caller of checkpoint_now share the connection
        self.checkpoints = 0  # checkpoints run (for tests and reports)
        self.failures = 0
        self._thread = threading.Thread(target=self._run, name="decision-log-wal-checkpointer", daemon=True)
        self._thread.start()

    def committed(self) -> None:
        self._commits += 1  # one writer thread calls this: a plain int is enough

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.checkpoint_now()

    def checkpoint_now(self) -> bool:
        """A PASSIVE checkpoint if anything was committed since the last one; True when it ran."""
        with self._lock:
            commits = self._commits
            if commits == self._checkpointed_at:
                return False
            try:
                self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error as exc:
                self.failures += 1
                log.warning("the decision log's WAL checkpoint failed (tried again in %.1f s): %s",
                            self.interval_s, exc)
                return False
            self._checkpointed_at = commits
            self.checkpoints += 1
            return True

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        with self._lock:
            self._conn.close()

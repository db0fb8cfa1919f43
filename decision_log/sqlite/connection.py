"""Opening SQLite connections with the log's PRAGMAs (WAL, synchronous, busy timeout, checkpoints)."""
from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: The page size of a log this code creates (an existing file keeps its own). A compact 128-arm row is ~900
#: bytes: SQLite stores whole rows in a page, and a 4 KB page holds four (~10% of it unused), a 16 KB one
#: seventeen (~3% unused): measured by bench/bench_log_size.py. It must be set before WAL mode creates the file,
#: like ``auto_vacuum=INCREMENTAL`` (a log created before it keeps ``NONE``: converting it needs a full VACUUM).
NEW_LOG_PAGE_SIZE = 16384


def connect(path: Path, *, synchronous: str, busy_timeout_ms: int, autocheckpoint: int = 1000,
            readonly: bool = False) -> sqlite3.Connection:
    """An autocommit connection (transactions are explicit); rows are addressable by column name."""
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False,
                           timeout=busy_timeout_ms / 1000)
    conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    if not readonly and conn.execute("PRAGMA page_count").fetchone()[0] == 0:
        conn.execute(f"PRAGMA page_size={NEW_LOG_PAGE_SIZE}")
        conn.execute("PRAGMA auto_vacuum=INCREMENTAL")  # retention can give space back (reclaim_space)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    if readonly:
        conn.execute("PRAGMA query_only=ON")
    else:
        conn.execute(f"PRAGMA wal_autocheckpoint={int(autocheckpoint)}")
    conn.row_factory = sqlite3.Row
    return conn


def run_in_own_transaction(path: Path, busy_timeout_ms: int, op: Callable[[sqlite3.Connection], Any]) -> Any:
    """Run one write operation in a ``BEGIN IMMEDIATE`` transaction of its own connection (a process without
    the log's writer, or an operation that must not wait in the writer's queue): all of it commits, or none."""
    conn = connect(path, synchronous="FULL", busy_timeout_ms=busy_timeout_ms)
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = op(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result
    finally:
        conn.close()


def reclaim_space(path: Path, busy_timeout_ms: int) -> bool:
    """Give the pages deleted rows freed back to the file system: ``PRAGMA incremental_vacuum`` and a WAL
    checkpoint that truncates the file. False (nothing done) for a log created without
    ``auto_vacuum=INCREMENTAL`` (a full ``VACUUM`` with the server stopped converts it)."""
    conn = connect(path, synchronous="FULL", busy_timeout_ms=busy_timeout_ms)
    try:
        if int(conn.execute("PRAGMA auto_vacuum").fetchone()[0]) != 2:
            return False
        # executescript steps the pragma to the end (execute() steps once: one page per call)
        conn.executescript("PRAGMA incremental_vacuum;")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        return True
    finally:
        conn.close()

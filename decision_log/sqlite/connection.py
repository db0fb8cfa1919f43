"""Opening SQLite connections with the log's PRAGMAs (WAL, synchronous, busy timeout, checkpoints)."""
from __future__ import annotations

import sqlite3
from pathlib import Path

#: The page size of a log this code creates (an existing file keeps its own). A compact 128-arm row is ~900
#: bytes: SQLite stores whole rows in a page, and a 4 KB page holds four (~10% of it unused), a 16 KB one
#: seventeen (~3% unused): measured by bench/bench_log_size.py. It must be set before WAL mode creates the file.
NEW_LOG_PAGE_SIZE = 16384


def connect(path: Path, *, synchronous: str, busy_timeout_ms: int, autocheckpoint: int = 1000,
            readonly: bool = False) -> sqlite3.Connection:
    """An autocommit connection (transactions are explicit); rows are addressable by column name."""
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False,
                           timeout=busy_timeout_ms / 1000)
    conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    if not readonly and conn.execute("PRAGMA page_count").fetchone()[0] == 0:
        conn.execute(f"PRAGMA page_size={NEW_LOG_PAGE_SIZE}")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    if readonly:
        conn.execute("PRAGMA query_only=ON")
    else:
        conn.execute(f"PRAGMA wal_autocheckpoint={int(autocheckpoint)}")
    conn.row_factory = sqlite3.Row
    return conn

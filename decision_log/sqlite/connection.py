"""Opening SQLite connections with the log's PRAGMAs (WAL, synchronous, busy timeout, checkpoints)."""
from __future__ import annotations

import sqlite3
from pathlib import Path


def connect(path: Path, *, synchronous: str, busy_timeout_ms: int, autocheckpoint: int = 1000,
            readonly: bool = False) -> sqlite3.Connection:
    """An autocommit connection (transactions are explicit); rows are addressable by column name."""
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False,
                           timeout=busy_timeout_ms / 1000)
    conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    if readonly:
        conn.execute("PRAGMA query_only=ON")
    else:
        conn.execute(f"PRAGMA wal_autocheckpoint={int(autocheckpoint)}")
    conn.row_factory = sqlite3.Row
    return conn

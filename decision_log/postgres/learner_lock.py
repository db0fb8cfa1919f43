"""The one learner of a PostgreSQL log: a session advisory lock on a connection of its own.

Session locks never go through the pool (a pooled connection would carry the lock to whoever takes it
next); this connection lives exactly as long as the learner. When it drops (PostgreSQL restarted, the
network cut) the lock is gone with it, and `SessionLock.held` turns False, so the learner stops
publishing before another learner can take over.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psycopg

from decision_log.dialect import ADVISORY_NAMESPACE, LEARNER_LOCK
from decision_log.postgres.connection import as_log_fault, mask_url
from offerbandit.errors import InvalidInput

__all__ = ["SessionLock", "learner_lock"]


class SessionLock:
    """Held while its connection is alive and still holds the advisory lock."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self._conn = conn

    def held(self) -> bool:
        if self._conn.closed:
            return False
        try:
            row = self._conn.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() "
                "AND classid = %s AND objid = %s AND granted", (ADVISORY_NAMESPACE, LEARNER_LOCK)).fetchone()
        except psycopg.Error:
            return False
        return bool(row and row[0])


@contextlib.contextmanager
def learner_lock(url: str, connect_timeout_s: float) -> Iterator[SessionLock]:
    """Take the log's learner lock for the block, or refuse at once (`InvalidInput` naming ``log-url``)
    when another learner holds it; `LogUnavailable` when PostgreSQL cannot be reached."""
    try:
        conn = psycopg.connect(url, autocommit=True, connect_timeout=max(1, int(connect_timeout_s)),
                               application_name="offerbandit-learner")
    except psycopg.Error as exc:
        raise as_log_fault(exc) from exc
    held = False
    try:
        taken = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (ADVISORY_NAMESPACE, LEARNER_LOCK)).fetchone()
        if not (taken and taken[0]):
            raise InvalidInput(f"another offerbandit learn is learning from {mask_url(url)}: one learner per log",
                               field="log-url")
        held = True
        yield SessionLock(conn)
    finally:
        # released before the close: PostgreSQL drops a closed session's locks only once its backend has
        # exited, so a learner started right after this one stopped could still find the lock taken
        if held and not conn.closed:
            with contextlib.suppress(psycopg.Error):
                conn.execute("SELECT pg_advisory_unlock(%s, %s)", (ADVISORY_NAMESPACE, LEARNER_LOCK))
        conn.close()

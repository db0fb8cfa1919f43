"""Expected SQLite faults as `LogUnavailable`: busy, locked, disk full, I/O errors, a file that cannot be
opened or written. They are the operator's weather, not bugs: the caller gets UNAVAILABLE (retryable) with
a plain sentence, never INTERNAL. Anything else (a constraint, a bug in SQL) passes through unchanged.
"""
from __future__ import annotations

import sqlite3

from decision_log.faults import translating_faults
from offerbandit.errors import LogUnavailable

__all__ = ["as_log_fault", "log_faults"]

# Primary result codes (the low byte of an extended code), with what the caller is told.
_PLAIN: dict[int, str] = {
    5: "the decision log is busy (another connection holds its lock); retry shortly",  # SQLITE_BUSY
    6: "the decision log is locked; retry shortly",  # SQLITE_LOCKED
    7: "the decision log ran out of memory; retry shortly",  # SQLITE_NOMEM
    8: "the decision log cannot be written (read-only file or directory)",  # SQLITE_READONLY
    10: "the decision log hit a disk I/O error; retry shortly",  # SQLITE_IOERR
    13: "the decision log is full (disk full or size limit reached); nothing was written",  # SQLITE_FULL
    14: "the decision log file cannot be opened",  # SQLITE_CANTOPEN
}
_BY_TEXT = (("locked", 5), ("busy", 5), ("disk is full", 13), ("disk i/o", 10), ("unable to open", 14),
            ("readonly", 8), ("out of memory", 7))

def _code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return int(code) & 0xFF
    text = str(exc).lower()
    return next((c for needle, c in _BY_TEXT if needle in text), None)


def as_log_fault(exc: BaseException) -> BaseException:
    """``exc`` as a `LogUnavailable` when it is an expected SQLite fault, else ``exc`` itself."""
    if isinstance(exc, sqlite3.OperationalError | sqlite3.DatabaseError) and not isinstance(
            exc, sqlite3.IntegrityError):
        code = _code(exc)
        if code in _PLAIN:
            fault = LogUnavailable(_PLAIN[code])
            fault.__cause__ = exc
            return fault
    return exc


#: Decorate a log method (plain or generator) so expected SQLite faults leave it as `LogUnavailable`.
log_faults = translating_faults((sqlite3.Error,), as_log_fault)

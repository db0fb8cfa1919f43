"""Expected SQLite faults leave the log as LogUnavailable (UNAVAILABLE), with a plain message; others pass."""
from __future__ import annotations

import sqlite3

import pytest

from decision_log import LogOptions, open_log
from decision_log.sqlite.faults import as_log_fault, log_faults
from offerbandit.errors import LogUnavailable, Unavailable


def _error(cls, message, code=None):
    exc = cls(message)
    if code is not None:
        exc.sqlite_errorcode = code
    return exc


@pytest.mark.parametrize(("exc", "words"), [
    (_error(sqlite3.OperationalError, "database is locked", 5), "busy"),
    (_error(sqlite3.OperationalError, "database table is locked", 6), "locked"),
    (_error(sqlite3.OperationalError, "database or disk is full", 13), "full"),
    (_error(sqlite3.OperationalError, "disk I/O error", 10 | (3 << 8)), "I/O"),  # an extended code
    (_error(sqlite3.OperationalError, "unable to open database file", 14), "opened"),
    (_error(sqlite3.OperationalError, "attempt to write a readonly database", 8), "read-only"),
    (_error(sqlite3.OperationalError, "database is locked"), "busy"),  # no code: matched by its text
])
def test_expected_faults_become_log_unavailable(exc, words):
    fault = as_log_fault(exc)
    assert isinstance(fault, LogUnavailable) and isinstance(fault, Unavailable)
    assert words in str(fault) and fault.__cause__ is exc


@pytest.mark.parametrize("exc", [
    _error(sqlite3.IntegrityError, "UNIQUE constraint failed: decisions.event_id", 19),
    _error(sqlite3.OperationalError, "no such column: nope", 1),
    ValueError("not sqlite"),
])
def test_other_errors_pass_unchanged(exc):
    assert as_log_fault(exc) is exc


def test_the_decorator_maps_plain_and_generator_methods():
    @log_faults
    def plain():
        raise _error(sqlite3.OperationalError, "database is locked", 5)

    @log_faults
    def stream():
        yield 1
        raise _error(sqlite3.OperationalError, "database or disk is full", 13)

    with pytest.raises(LogUnavailable):
        plain()
    with pytest.raises(LogUnavailable, match="full"):
        list(stream())


def test_a_write_against_a_locked_log_is_unavailable(tmp_path):
    log = open_log(tmp_path, writable=True, options=LogOptions(busy_timeout_ms=100))
    try:
        holder = sqlite3.connect(tmp_path / "decisions.db", isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.raises(LogUnavailable):
                log.backend.insert_decisions([]).result(10)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
    finally:
        log.close()

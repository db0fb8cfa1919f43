"""Connections to a PostgreSQL log: the pool, the ``?``-placeholder adapter the shared SQL runs through,
rows addressable by name and position (like ``sqlite3.Row``), masked URLs, and expected faults as
`LogUnavailable`.

Connections are only ever taken with ``with pool.connection()`` (psycopg_pool, checked on every take with
``ConnectionPool.check_connection``, so a connection that died while PostgreSQL restarted is replaced, not
handed out). Every connection is in autocommit mode; the writer opens its transactions explicitly.
"""
from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import psycopg_pool

from decision_log.dialect import POSTGRES, Dialect
from decision_log.faults import translating_faults
from decision_log.records import LogOptions
from offerbandit.errors import LogUnavailable

__all__ = ["PgConn", "PgRow", "PoolReader", "as_log_fault", "is_postgres_url", "log_faults", "mask_url",
           "open_pool", "qmark"]

SCHEMES = ("postgresql://", "postgres://")

# The pool logs each failed reconnection attempt as a warning; without logging configured, Python would
# print them all on stderr (a CLI's error is one line). A configured application still gets them.
logging.getLogger("psycopg.pool").addHandler(logging.NullHandler())


def is_postgres_url(text: str) -> bool:
    return text.startswith(SCHEMES)


def mask_url(url: str) -> str:
    """The URL with its password replaced by ``***`` (printed URLs never show it)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


@functools.lru_cache(maxsize=512)
def qmark(sql: str) -> str:
    """``?`` placeholders (the shared SQL's) as psycopg's ``%s`` (a literal ``%`` doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


class PgRow(tuple):
    """A row addressable by column name and by position, like ``sqlite3.Row``."""

    __slots__ = ()
    _index: dict[str, int] = {}

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._index)


@functools.lru_cache(maxsize=256)
def _row_class(names: tuple[str, ...]) -> type[PgRow]:
    return type("PgRow", (PgRow,), {"__slots__": (), "_index": {name: i for i, name in enumerate(names)}})


def named_row(cursor: psycopg.Cursor) -> Callable[[Sequence[Any]], PgRow]:
    """psycopg row factory making `PgRow` objects (one class per result shape, cached)."""
    return _row_class(tuple(column.name for column in cursor.description or ()))


# --- faults ------------------------------------------------------------------------------------------
def as_log_fault(exc: BaseException) -> BaseException:
    """``exc`` as a `LogUnavailable` when it is an expected fault (connection lost or refused, server
    shutting down, disk full, lock or statement timeout, pool exhausted), else ``exc`` itself."""
    if isinstance(exc, psycopg_pool.PoolTimeout):
        message = "the decision log (PostgreSQL) cannot be reached: no connection within the timeout; retry shortly"
    elif isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        message = f"the decision log (PostgreSQL) is unavailable ({first_line}); retry shortly"
    else:
        return exc
    fault = LogUnavailable(message)
    fault.__cause__ = exc
    return fault


#: Decorate a method (plain or generator) so expected PostgreSQL faults leave it as `LogUnavailable`.
log_faults = translating_faults((psycopg.Error, psycopg_pool.PoolTimeout), as_log_fault)


# --- adapters the shared SQL runs through -------------------------------------------------------------
class PgConn:
    """One psycopg connection (inside a transaction of the writer) seen as the shared SQL expects:
    ``execute(sql, params)`` with ``?`` placeholders, returning a cursor."""

    dialect: Dialect = POSTGRES

    def __init__(self, raw: psycopg.Connection) -> None:
        self.raw = raw

    def execute(self, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor:
        return self.raw.execute(qmark(sql), tuple(params) or None)

    def executemany(self, sql: str, rows: Any) -> psycopg.Cursor:
        cursor = self.raw.cursor()
        rows = list(rows)
        if rows:
            cursor.executemany(qmark(sql), rows)
        return cursor

    def executemany_returning(self, sql: str, rows: Sequence[Sequence[Any]]) -> list[bool]:
        """Run ``sql`` (with RETURNING) once per row; for each row, whether it returned one."""
        if not rows:
            return []
        cursor = self.raw.cursor()
        cursor.executemany(qmark(sql), rows, returning=True)
        returned = []
        while True:
            returned.append(cursor.fetchone() is not None)
            if not cursor.nextset():
                break
        return returned


class _Result:
    """A statement's rows, read eagerly so the connection went back to the pool at once."""

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def fetchone(self) -> Any:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[Any]:
        return self._rows

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)


class PoolReader:
    """A connection-like object for read queries: each ``execute`` takes a pooled connection, runs one
    statement, reads its rows and gives the connection back (readers never hold one between chunks)."""

    dialect: Dialect = POSTGRES

    def __init__(self, pool: psycopg_pool.ConnectionPool, timeout: float) -> None:
        self.pool = pool
        self.timeout = timeout

    @log_faults
    def execute(self, sql: str, params: Sequence[Any] = ()) -> _Result:
        with self.pool.connection(timeout=self.timeout) as raw:
            cursor = raw.execute(qmark(sql), tuple(params) or None)
            rows = cursor.fetchall() if cursor.description is not None else []
            return _Result(rows, cursor.rowcount)


def _configure(synchronous: str) -> Callable[[psycopg.Connection], None]:
    commit_mode = "off" if synchronous.upper() == "OFF" else "on"

    def configure(conn: psycopg.Connection) -> None:
        conn.execute(f"SET synchronous_commit = {commit_mode}")

    return configure


_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]")


def open_pool(url: str, options: LogOptions, *, name: str = "offerbandit-log",
              size: int | None = None) -> psycopg_pool.ConnectionPool:
    """An open pool on ``url`` (``size``: exactly that many connections; else 1 to ``options.pool_size``);
    the first connection is retried for ``options.connect_timeout_s`` (then `LogUnavailable` naming the
    masked URL). A connection lost later is replaced in the background, and on demand."""
    pool = psycopg_pool.ConnectionPool(
        conninfo=url, min_size=size or 1, max_size=size or max(2, int(options.pool_size)), open=False,
        name=_SAFE_NAME.sub("_", name), check=psycopg_pool.ConnectionPool.check_connection,
        configure=_configure(options.synchronous), timeout=max(0.1, options.busy_timeout_ms / 1000),
        reconnect_timeout=max(60.0, options.connect_timeout_s),
        kwargs={"autocommit": True, "row_factory": named_row, "connect_timeout": 5,
                "application_name": "offerbandit"})
    deadline = time.monotonic() + max(0.1, float(options.connect_timeout_s))
    try:
        pool.open(wait=True, timeout=max(0.1, deadline - time.monotonic()))
    except psycopg_pool.PoolTimeout as exc:
        pool.close()
        raise LogUnavailable(f"cannot connect to the decision log {mask_url(url)} within "
                             f"{options.connect_timeout_s:g}s{_why_not(url)}") from exc
    return pool


def _why_not(url: str) -> str:
    """libpq's reason a connection to ``url`` fails (its messages never hold the password), for the one line."""
    try:
        psycopg.connect(url, connect_timeout=2).close()
    except psycopg.Error as exc:
        reason = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
        return f": {reason}" if reason else ""
    return ""

"""The log-store tests run on both backends with the same assertions: ``log_where`` is a data directory
(SQLite) or the URL of a fresh PostgreSQL database; ``log_place`` adds raw access to what is stored there
(the tests' only way around the log's API: older or newer schemas, rows from older code)."""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


@dataclass
class LogPlace:
    kind: str  # "sqlite" or "postgres"
    where: Any  # a data directory (Path) or a postgresql:// URL

    @property
    def url(self) -> str:
        return f"sqlite:///{Path(self.where) / 'decisions.db'}" if self.kind == "sqlite" else self.where

    def sql(self, statement: str, params: tuple = ()) -> list[tuple]:
        """Run one statement on the log outside the log's API (``?`` placeholders); its rows."""
        if self.kind == "sqlite":
            conn = sqlite3.connect(Path(self.where) / "decisions.db", isolation_level=None)
            try:
                cursor = conn.execute(statement, params)
                return cursor.fetchall() if cursor.description else []
            finally:
                conn.close()
        import psycopg
        with psycopg.connect(self.where, autocommit=True) as conn:
            cursor = conn.execute(statement.replace("?", "%s"), params or None)
            return cursor.fetchall() if cursor.description else []

    def schema_version(self) -> int:
        if self.kind == "sqlite":
            return self.sql("PRAGMA user_version")[0][0]
        return self.sql("SELECT max(version) FROM offerbandit_schema")[0][0] or 0

    def set_schema_version(self, version: int) -> None:
        """What an older (or newer) offerbandit left behind: the recorded version only."""
        if self.kind == "sqlite":
            self.sql(f"PRAGMA user_version = {int(version)}")
        else:
            self.sql("DELETE FROM offerbandit_schema WHERE version > ?", (int(version),))
            if self.schema_version() < version:
                self.sql("INSERT INTO offerbandit_schema (version) VALUES (?)", (int(version),))


@pytest.fixture(params=["sqlite", "postgres"])
def log_place(request, tmp_path: Path) -> LogPlace:
    if request.param == "sqlite":
        return LogPlace("sqlite", tmp_path)
    return LogPlace("postgres", request.getfixturevalue("postgres_url"))


@pytest.fixture
def log_where(log_place: LogPlace) -> Any:
    return log_place.where

"""What differs between the SQL dialects the log's write operations run on, in one place.

The write operations (rewards, activations, claims, learn_seq, quarantine, caps) are written once, with
``?`` placeholders, and run on SQLite directly and on PostgreSQL through `decision_log.postgres.connection`'s
adapter. SQLite has one writer (``BEGIN IMMEDIATE`` serialises every writer of the file), so it needs no
row or advisory locks; PostgreSQL has many (replicas), so a read that decides a write locks its row
(``FOR UPDATE``) and the learner's numbering and alias moves take transaction-scoped advisory locks.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["ADVISORY_NAMESPACE", "ALIAS_LOCK", "CAP_LOCK_CLASS", "Dialect", "LEARN_LOCK", "LEARNER_LOCK", "MIGRATION_LOCK",
           "POSTGRES", "SQLITE", "dialect_of"]

#: Advisory lock keys (two-int form: namespace, key). User keys use their own class so they never collide
#: with the fixed keys below.
ADVISORY_NAMESPACE = 0x0FFB
MIGRATION_LOCK = 1
LEARN_LOCK = 2
ALIAS_LOCK = 3
LEARNER_LOCK = 4  # a session lock: held by the one `offerbandit learn` of the log
CAP_LOCK_CLASS = 0x0FFC
#: One statement takes every customer's lock, in the order of the lock keys (the hashes: two groups whose
#: customers' hashes collide still take them in one global order, so they never deadlock on them).
_LOCK_USERS = ("SELECT count(pg_advisory_xact_lock(?, h)) FROM (SELECT DISTINCT hashtext(k) AS h "
               "FROM unnest(?::text[]) AS k ORDER BY h) AS keys")


@dataclass(frozen=True)
class Dialect:
    name: str
    for_update: str  # appended to a SELECT whose row the same transaction then updates

    def seqs_in(self, column: str, seqs: Sequence[int]) -> tuple[str, Any]:
        """A condition ``column`` IN these seqs, and its one parameter."""
        values = [int(s) for s in seqs]
        if self.name == "postgres":
            return f"{column} = ANY(?::bigint[])", values
        return f"{column} IN (SELECT value FROM json_each(?))", json.dumps(values)

    def texts_in(self, column: str, texts: Sequence[str]) -> tuple[str, Any]:
        """A condition ``column`` IN these strings (user keys, event ids), and its one parameter."""
        values = [str(t) for t in texts]
        if self.name == "postgres":
            return f"{column} = ANY(?::text[])", values
        return f"{column} IN (SELECT value FROM json_each(?))", json.dumps(values)

    def lock(self, conn: Any, key: int) -> None:
        """Hold the log-wide lock ``key`` until the transaction ends (SQLite: its write lock already does)."""
        if self.name == "postgres":
            conn.execute("SELECT pg_advisory_xact_lock(?, ?)", (ADVISORY_NAMESPACE, int(key)))


    def lock_users(self, conn: Any, user_keys: Sequence[str]) -> None:
        """Hold each customer's cap lock until the transaction ends (SQLite: its write lock already does)."""
        if self.name == "postgres" and user_keys:
            conn.execute(_LOCK_USERS, (CAP_LOCK_CLASS, sorted(set(user_keys))))


SQLITE = Dialect("sqlite", "")
POSTGRES = Dialect("postgres", " FOR UPDATE")


def dialect_of(conn: Any) -> Dialect:
    """The dialect of a connection the write operations were handed (the PostgreSQL adapter names its own)."""
    return getattr(conn, "dialect", SQLITE)

"""The privacy operations' SQL, once for both backends (PostgreSQL runs it through its dialect adapter):
erase a customer, read everything held about one, the audit trail, the registered user-hash keys and
retention's bounded deletes.

Every write here is one operation run inside one transaction by the caller (`SharedOperations`), so an
erasure deletes every row of the customer and writes its audit row, or — if anything fails or the process
dies before COMMIT — nothing at all. A customer is matched by ``user_keys`` (one keyed hash per listed
user-hash key); rewards and shadow scores are found through the decisions' event ids.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from decision_log.dialect import dialect_of
from decision_log.privacy_records import ERASURE_ACTION as ERASE
from decision_log.privacy_records import AuditEntry, ErasureCounts, RetentionPass
from offerbandit.errors import InvalidInput
from policies.sampler import NO_CONTACT

__all__ = ["ERASE", "KEYS_LOCK", "audit_after", "erase_users", "held_rows", "last_audit_id", "register_keys",
           "registered_keys", "retention_batch"]

KEYS_LOCK = 5  # advisory lock key (in decision_log.dialect.ADVISORY_NAMESPACE) serialising key registration
_CONTACT = f"chosen_index IS NOT NULL AND exploration != '{NO_CONTACT}'"

WriteOp = Callable[[Any], Any]


def erase_users(user_keys: Sequence[str], who: str, at: float) -> WriteOp:
    """Delete every decision, reward and shadow score of the customer ``user_keys`` name and write one
    ``audit`` row (time, who, the keyed hashes and the counts; never the id). Returns `ErasureCounts`."""
    keys = sorted({str(k) for k in user_keys if k})
    if not keys:
        raise InvalidInput("an erasure needs at least one user key", field="user_id")

    def op(conn: Any) -> ErasureCounts:
        dialect_of(conn).lock_users(conn, keys)  # no replica commits a decision of theirs meanwhile
        cond, param = dialect_of(conn).texts_in("user_key", keys)
        events = f"SELECT event_id FROM decisions WHERE {cond}"
        contacts = int(conn.execute(f"SELECT count(*) FROM decisions WHERE {cond} AND {_CONTACT}",
                                    (param,)).fetchone()[0])
        rewards = conn.execute(f"DELETE FROM rewards WHERE event_id IN ({events})", (param,)).rowcount
        shadows = conn.execute(f"DELETE FROM shadow_scores WHERE event_id IN ({events})", (param,)).rowcount
        decisions = conn.execute(f"DELETE FROM decisions WHERE {cond}", (param,)).rowcount
        counts = ErasureCounts(int(decisions), int(rewards), int(shadows), contacts)
        detail = json.dumps({"user_keys": keys, "counts": {"decisions": counts.decisions, "rewards": counts.rewards,
                                                          "shadow_scores": counts.shadow_scores,
                                                          "contacts": counts.contacts}}, sort_keys=True)
        conn.execute("INSERT INTO audit (at, who, action, detail) VALUES (?,?,?,?)", (float(at), who, ERASE, detail))
        return counts

    return op


def held_rows(conn: Any, user_keys: Sequence[str]) -> tuple[list[Any], list[Any], list[Any]]:
    """The customer's decision rows (log order), reward rows and shadow-score rows: what `erase_users` deletes."""
    keys = sorted({str(k) for k in user_keys if k})
    if not keys:
        return [], [], []
    cond, param = dialect_of(conn).texts_in("user_key", keys)
    events = f"SELECT event_id FROM decisions WHERE {cond}"
    decisions = conn.execute(f"SELECT * FROM decisions WHERE {cond} ORDER BY seq", (param,)).fetchall()
    rewards = conn.execute("SELECT event_id, reward_id, value, received_at, status FROM rewards "
                           f"WHERE event_id IN ({events}) ORDER BY id", (param,)).fetchall()
    shadows = conn.execute("SELECT event_id, policy_version, chosen_probability, scored_at FROM shadow_scores "
                           f"WHERE event_id IN ({events}) ORDER BY event_id, policy_version", (param,)).fetchall()
    return list(decisions), list(rewards), list(shadows)


def _audit_entry(row: Any) -> AuditEntry:
    detail = row["detail"] or ""
    keys: tuple[str, ...] = ()
    counts = None
    if row["action"] == ERASE:
        parsed = json.loads(detail)
        keys = tuple(parsed.get("user_keys", ()))
        c = parsed.get("counts", {})
        counts = ErasureCounts(int(c.get("decisions", 0)), int(c.get("rewards", 0)), int(c.get("shadow_scores", 0)),
                               int(c.get("contacts", 0)))
    return AuditEntry(int(row["id"]), float(row["at"]), row["who"] or "", row["action"], keys, counts, detail)


def audit_after(conn: Any, after_id: int, limit: int = 1000) -> list[AuditEntry]:
    """Audit rows with an id above ``after_id``, oldest first."""
    rows = conn.execute("SELECT id, at, who, action, detail FROM audit WHERE id > ? ORDER BY id LIMIT ?",
                        (int(after_id), int(limit))).fetchall()
    return [_audit_entry(row) for row in rows]


def last_audit_id(conn: Any) -> int:
    """The newest audit row's id (0: none)."""
    return int(conn.execute("SELECT coalesce(max(id), 0) FROM audit").fetchone()[0])


def registered_keys(conn: Any) -> list[tuple[str, str]]:
    """``(key_id, key_check)`` of every registered user-hash key, oldest first."""
    rows = conn.execute("SELECT key_id, key_check FROM log_keys ORDER BY registered_at, key_id").fetchall()
    return [(row["key_id"], row["key_check"]) for row in rows]


def register_keys(checks: Sequence[tuple[str, str]], who: str, at: float) -> WriteOp:
    """A process's keys (``(key_id, key_check)``, current first) against the log's registered ones: an empty
    log registers them all; a current key not yet registered is registered when one of the process's other
    keys is (a rotation: the process proves it holds a key of this log); else InvalidInput (another key
    hashed this log's customers). Returns the registered ``(key_id, key_check)``, oldest first."""

    def op(conn: Any) -> list[tuple[str, str]]:
        dialect_of(conn).lock(conn, KEYS_LOCK)
        known = {check for _, check in registered_keys(conn)}
        mine = [check for _, check in checks]
        if known and not known.intersection(mine):
            raise InvalidInput("the user-hash key does not match the one this decision log was started with "
                               "(every process on one log needs the same key; a rotation lists the old key "
                               "after the new one)", field="privacy.user_hash_key")
        if not known:
            new = list(reversed(checks))  # oldest first: registered_at orders the log's keys
        else:
            new = [checks[0]] if checks[0][1] not in known else []
        for offset, (key_id, check) in enumerate(new):
            conn.execute("INSERT INTO log_keys (key_id, key_check, registered_at) VALUES (?,?,?) "
                         "ON CONFLICT (key_id) DO NOTHING", (key_id, check, float(at) + offset * 1e-6))
            conn.execute("INSERT INTO audit (at, who, action, detail) VALUES (?,?,?,?)",
                         (float(at), who, "register_key", json.dumps({"key_id": key_id})))
        return registered_keys(conn)

    return op


def retention_batch(cutoff: float, batch: int) -> WriteOp:
    """Delete up to ``batch`` of the oldest decisions decided before ``cutoff``, with their rewards and shadow
    scores (one short transaction). Returns ``RetentionPass`` for this batch (``batches`` 1, or 0 if none)."""

    def op(conn: Any) -> RetentionPass:
        seqs = [int(row[0]) for row in conn.execute("SELECT seq FROM decisions WHERE decided_at < ? ORDER BY seq "
                                                    "LIMIT ?", (float(cutoff), int(batch))).fetchall()]
        if not seqs:
            return RetentionPass(cutoff, 0, 0, 0, 0)
        cond, param = dialect_of(conn).seqs_in("seq", seqs)
        events = f"SELECT event_id FROM decisions WHERE {cond}"
        rewards = conn.execute(f"DELETE FROM rewards WHERE event_id IN ({events})", (param,)).rowcount
        shadows = conn.execute(f"DELETE FROM shadow_scores WHERE event_id IN ({events})", (param,)).rowcount
        decisions = conn.execute(f"DELETE FROM decisions WHERE {cond}", (param,)).rowcount
        return RetentionPass(cutoff, int(decisions), int(rewards), int(shadows), 1)

    return op

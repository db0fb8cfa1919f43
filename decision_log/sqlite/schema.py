"""The log's schema as an ordered list of migrations; ``PRAGMA user_version`` records how many ran.

A log older than the code is upgraded (each migration in its own ``BEGIN IMMEDIATE`` transaction, so
two processes opening one log cannot both run it); a log newer than the code is refused: this code
would misread it. Logs written before versioning have ``user_version`` 0 and the version-1 tables;
migration 1 creates only what is missing, so they upgrade in place.

Tables (version 1):
- ``decisions``: one row per decision, as it was decided (candidates, eligible arms, full pmf,
  the chosen arm and its exact probability as REAL, policy version, exploration kind,
  deferred/activation state, reward-window deadline, the joined reward). Rows written before issue 15
  keep float64 pmf blobs; since then rows are compact (`decision_log.codec`: float32 pmf, the chosen
  probability exact, the arm set by reference in ``arm_sets``), with no new migration: version 3 had the
  columns.
- ``rewards``: every reward call that named a known event, with its status (counted, duplicate, late).
- ``offer_sets``: content-addressed snapshots of the candidate offers with their features.
- ``shadow_scores``: the challenger's pmf on the same requests (off the request path).

Version 2 (hardening: exactness and races):
- ``decisions.fingerprint``: hash of the parsed, canonical request, so a repeated ``event_id`` with a
  different request is told apart, also after a restart;
- ``decisions.learn_seq``: the order of learning, given by the learner alone when it learns an event
  (unique); a checkpoint records the highest one it includes;
- ``decisions.quarantined_at``: set when learning the event made the model unusable; such an event
  is never learned or replayed again;
- ``alias_moves``: every move of a registry alias (who, why, from, to), written while the mover holds the
  alias lock (``BEGIN IMMEDIATE`` on ``<log>.alias-lock``; PostgreSQL: an advisory lock), so compare-and-set
  moves by several writers are serialised and auditable without blocking decisions.

Version 3 (the wave-2 schema, designed once, the same on SQLite and PostgreSQL — see
`decision_log.postgres.schema` for the PostgreSQL types and the plan for big logs); new columns are
nullable and unused until the issues that fill them:
- ``decisions.key_id``: which registered user-hash key made ``user_key`` (key rotation);
- ``decisions.features``: the per-customer features as the decision used them (JSON);
- ``decisions.arm_set_id`` and ``arm_sets(id, arms)``: the compact log stores each arm set once (filled since
  issue 15: ``arms`` is ``[offer_set_id, formats, time_slots]`` as JSON, ``id`` its content hash);
- ``log_keys(key_id, key_check, registered_at)``: ``HMAC(key, "offerbandit/key-check")`` of each registered
  user-hash key; a process starts only if its key is registered;
- ``audit(id, at, who, action, detail)``: operator actions (erase, promote, rollback, key registration).

Version 4 (issue 15, fewer bytes per compact row; `decision_log.codec`):
- ``arm_sets.key`` (unique, `codec.arm_set_key` of the id; filled for the arm sets already stored) and
  ``decisions.arm_set_key``: a compact row references its arm set by this integer (8 bytes, not 32 of text);
- ``decisions.request_hash``: the request fingerprint as bytes (19, not 35 of text).
Rows written before keep ``arm_set_id`` and ``fingerprint`` and read the same.
"""
from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import sqlite_utils

from decision_log.codec import arm_set_key
from offerbandit.errors import InvalidInput

Migration = Callable[[sqlite3.Connection], None]


def _v1_tables(conn: sqlite3.Connection) -> None:
    db = sqlite_utils.Database(conn)
    db["decisions"].create({
        "seq": int, "event_id": str, "campaign": str, "decided_at": float, "user_key": str,
        "context": str, "numeric": str, "offer_set": str, "formats": str, "time_slots": str,
        "eligible": bytes, "pmf": bytes, "policy_pmf": bytes, "chosen_index": int,
        "offer_id": str, "format": str, "time_slot": str, "probability": float,
        "policy_version": str, "exploration": str, "beta": float, "deferred": int,
        "activated_at": float, "learn_due_at": float, "learned_at": float,
        "reward": float, "reward_count": int, "baseline": str, "no_contact_reason": str, "removed": str,
    }, pk="seq", not_null={"event_id", "campaign", "decided_at", "user_key", "probability",
                           "policy_version", "exploration", "deferred"},
        defaults={"reward_count": 0}, if_not_exists=True)
    db["rewards"].create({
        "id": int, "event_id": str, "reward_id": str, "value": float, "received_at": float, "status": str,
    }, pk="id", not_null={"event_id", "value", "received_at", "status"}, if_not_exists=True)
    db["offer_sets"].create({"id": str, "offers": str}, pk="id", not_null={"offers"}, if_not_exists=True)
    db["shadow_scores"].create({
        "event_id": str, "policy_version": str, "pmf": bytes, "chosen_probability": float, "scored_at": float,
    }, pk=("event_id", "policy_version"), if_not_exists=True)
    db["decisions"].create_index(["event_id"], unique=True, if_not_exists=True)
    db["decisions"].create_index(["learned_at", "learn_due_at"], if_not_exists=True)
    db["decisions"].create_index(["user_key", "decided_at"], if_not_exists=True)
    db["decisions"].create_index(["campaign", "decided_at"], if_not_exists=True)
    db["rewards"].create_index(["event_id"], if_not_exists=True)


def _v2_exactness(conn: sqlite3.Connection) -> None:
    columns = {row[1] for row in conn.execute("PRAGMA table_info(decisions)")}
    for name, kind in (("fingerprint", "TEXT"), ("learn_seq", "INTEGER"), ("quarantined_at", "REAL")):
        if name not in columns:
            conn.execute(f"ALTER TABLE decisions ADD COLUMN {name} {kind}")
    conn.execute("CREATE UNIQUE INDEX IF NOT EXISTS idx_decisions_learn_seq ON decisions (learn_seq) "
                 "WHERE learn_seq IS NOT NULL")
    conn.execute("""CREATE TABLE IF NOT EXISTS alias_moves (
        id INTEGER PRIMARY KEY, campaign TEXT NOT NULL, alias TEXT NOT NULL, from_version TEXT,
        to_version TEXT NOT NULL, kind TEXT NOT NULL, who TEXT, why TEXT, moved_at REAL NOT NULL)""")
    conn.execute("CREATE INDEX IF NOT EXISTS idx_alias_moves_campaign ON alias_moves (campaign, alias, id)")


def _v3_shared_log(conn: sqlite3.Connection) -> None:
    columns = {row[1] for row in conn.execute("PRAGMA table_info(decisions)")}
    for name in ("key_id", "features", "arm_set_id"):
        if name not in columns:
            conn.execute(f"ALTER TABLE decisions ADD COLUMN {name} TEXT")
    conn.execute("CREATE TABLE IF NOT EXISTS arm_sets (id TEXT PRIMARY KEY, arms TEXT)")
    conn.execute("CREATE TABLE IF NOT EXISTS log_keys (key_id TEXT PRIMARY KEY, key_check TEXT NOT NULL, "
                 "registered_at REAL NOT NULL)")
    conn.execute("CREATE TABLE IF NOT EXISTS audit (id INTEGER PRIMARY KEY, at REAL NOT NULL, who TEXT, "
                 "action TEXT NOT NULL, detail TEXT)")
    conn.execute("CREATE INDEX IF NOT EXISTS idx_audit_at ON audit (at)")
    conn.execute("CREATE INDEX IF NOT EXISTS idx_decisions_campaign_learn_seq ON decisions (campaign, learn_seq) "
                 "WHERE learn_seq IS NOT NULL")


def _v4_compact_keys(conn: sqlite3.Connection) -> None:
    columns = {row[1] for row in conn.execute("PRAGMA table_info(decisions)")}
    for name, kind in (("arm_set_key", "INTEGER"), ("request_hash", "BLOB")):
        if name not in columns:
            conn.execute(f"ALTER TABLE decisions ADD COLUMN {name} {kind}")
    if "key" not in {row[1] for row in conn.execute("PRAGMA table_info(arm_sets)")}:
        conn.execute("ALTER TABLE arm_sets ADD COLUMN key INTEGER")
    taken: set[int] = set()
    for (arm_set_id,) in conn.execute("SELECT id FROM arm_sets WHERE key IS NULL ORDER BY id").fetchall():
        key = arm_set_key(arm_set_id)
        if key not in taken:  # two stored sets with one key (never seen): the second keeps its text id only
            taken.add(key)
            conn.execute("UPDATE arm_sets SET key = ? WHERE id = ?", (key, arm_set_id))
    conn.execute("CREATE UNIQUE INDEX IF NOT EXISTS idx_arm_sets_key ON arm_sets (key)")


#: Migration i + 1 brings a log from version i to i + 1. Append only; never edit a released one.
MIGRATIONS: tuple[Migration, ...] = (_v1_tables, _v2_exactness, _v3_shared_log, _v4_compact_keys)
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _has_decisions(conn: sqlite3.Connection) -> bool:
    found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'decisions'").fetchone()
    return found is not None


def check_version(conn: sqlite3.Connection, path: Path) -> int:
    """The log's version; InvalidInput when it is newer than this code."""
    version = schema_version(conn)
    if version > SCHEMA_VERSION:
        raise InvalidInput(f"the decision log {path} has schema version {version}, newer than this code "
                           f"understands ({SCHEMA_VERSION}); upgrade offerbandit to read it", field="data-dir")
    return version


def migrate(conn: sqlite3.Connection, path: Path, *, create: bool) -> int:
    """Bring the log on ``conn`` to `SCHEMA_VERSION`; ``create`` False: refuse a file that holds no log."""
    try:
        version = check_version(conn, path)
        if version == SCHEMA_VERSION:
            return version
        if version == 0 and not create and not _has_decisions(conn):
            raise InvalidInput(f"{path} is not a decision log: it has no decisions table", field="data-dir")
    except sqlite3.DatabaseError as exc:
        raise InvalidInput(f"{path} is not a decision log: {exc}", field="data-dir") from exc
    while version < SCHEMA_VERSION:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = check_version(conn, path)  # another process may have migrated meanwhile
            if version < SCHEMA_VERSION:
                MIGRATIONS[version](conn)
                version += 1
                conn.execute(f"PRAGMA user_version = {version}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return version

"""Write operations on the decisions and shadow scores (they run inside the writer's transaction)."""
from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from decision_log.caps import apply_caps
from decision_log.codec import fingerprint_to_blob
from decision_log.records import DecisionRow, ShadowScore
from decision_log.write_outcomes import InsertOutcome

WriteOp = Callable[[sqlite3.Connection], Any]

#: The decisions' columns a write fills, in the order of `decision_values`.
DECISION_COLUMNS = ("event_id, campaign, decided_at, user_key, context, numeric, offer_set, formats, time_slots, "
                    "eligible, pmf, policy_pmf, chosen_index, offer_id, format, time_slot, probability, "
                    "policy_version, exploration, beta, deferred, learn_due_at, baseline, no_contact_reason, removed, "
                    "fingerprint, key_id, features, arm_set_id, arm_set_key, request_hash")
_INSERT_DECISION = f"INSERT INTO decisions ({DECISION_COLUMNS}) VALUES ({','.join('?' * 31)})"


def decision_values(r: DecisionRow) -> tuple:
    # a compact row reaches its offer set through its arm set (NULL here); an old row names it. Since schema 4
    # the arm set by its integer key and the fingerprint as bytes (codec), where the row has a key
    request_hash = fingerprint_to_blob(r.fingerprint) if r.arm_set_key is not None else None
    return (r.event_id, r.campaign, r.decided_at, r.user_key, r.context_json, r.numeric_json,
            None if r.compact else r.offer_set_id,
            r.formats_json, r.time_slots_json, r.eligible, r.pmf, r.policy_pmf, r.chosen_index,
            r.offer_id or None, r.format or None, r.time_slot or None, r.probability, r.policy_version,
            r.exploration, r.beta, int(r.deferred), r.learn_due_at, r.baseline_json, r.no_contact_reason or None,
            r.removed or None, r.fingerprint if request_hash is None else None, r.key_id, r.features_json,
            r.arm_set_id if r.arm_set_key is None else None, r.arm_set_key, request_hash)


@dataclass(frozen=True)
class InsertDecisions:
    """A write operation inserting decisions (all or none of them); resolves to an `InsertOutcome`.

    The writer merges consecutive InsertDecisions of one group into a single ``executemany`` (one
    SAVEPOINT instead of one per call); if the merged insert fails, it retries them one by one so
    only the offending call fails. On SQLite a duplicate event id fails its call (IntegrityError).
    """

    rows: tuple[DecisionRow, ...]

    def __call__(self, conn: sqlite3.Connection) -> InsertOutcome:
        capped = insert_rows(conn, self.rows)
        return InsertOutcome(len(self.rows), (), capped)


def insert_decisions(rows: Sequence[DecisionRow]) -> InsertDecisions:
    return InsertDecisions(tuple(rows))


def insert_rows(conn: sqlite3.Connection, rows: Sequence[DecisionRow]) -> tuple[str, ...]:
    """Insert the rows (caps checked in this transaction); the event ids written as capped no_contacts."""
    written, capped = apply_caps(conn, rows)
    conn.executemany("INSERT OR IGNORE INTO offer_sets (id, offers) VALUES (?, ?)",
                     {(r.offer_set_id, r.offer_set_json) for r in written})
    sets = arm_sets_of(written)
    conn.executemany("INSERT OR IGNORE INTO arm_sets (id, arms) VALUES (?, ?)", [s[:2] for s in sets])
    key_arm_sets(conn, sets)
    conn.executemany(_INSERT_DECISION, [decision_values(r) for r in keyed_rows(conn, written)])
    return capped


def arm_sets_of(rows: Sequence[DecisionRow]) -> list[tuple[str, str, int | None]]:
    """The distinct arm sets the compact rows reference (stored once, by content id, with their key), sorted."""
    return sorted({(r.arm_set_id, r.arm_set_text or "", r.arm_set_key) for r in rows if r.arm_set_id is not None},
                  key=lambda item: item[0])


_KEY_ARM_SET = ("UPDATE arm_sets SET key = ? WHERE id = ? AND key IS NULL "
                "AND NOT EXISTS (SELECT 1 FROM arm_sets AS other WHERE other.key = ?)")


def key_arm_sets(conn: Any, sets: Sequence[tuple[str, str, int | None]]) -> None:
    """Give each just-stored arm set its key (`codec.arm_set_key`) unless another set holds it already."""
    conn.executemany(_KEY_ARM_SET, [(key, arm_set_id, key) for arm_set_id, _, key in sets if key is not None])


def keyed_rows(conn: Any, rows: Sequence[DecisionRow]) -> list[DecisionRow]:
    """The rows to insert, after their arm sets were: a row whose key the log gives another arm set (a 63-bit
    collision), or no set (an arm set stored before schema 4 whose key was taken), references its arm set's
    text id instead, as rows did before schema 4; one query per distinct key."""
    keys = {(r.arm_set_key, r.arm_set_id) for r in rows if r.arm_set_key is not None}
    wrong = set()
    for key, arm_set_id in keys:
        found = conn.execute("SELECT id FROM arm_sets WHERE key = ?", (key,)).fetchone()
        if found is None or found[0] != arm_set_id:
            wrong.add((key, arm_set_id))
    return [dataclasses.replace(r, arm_set_key=None) if (r.arm_set_key, r.arm_set_id) in wrong else r for r in rows]


def insert_shadow_scores(scores: Sequence[ShadowScore]) -> WriteOp:
    rows = [(s.event_id, s.policy_version, s.pmf, s.chosen_probability, s.scored_at, s.event_id) for s in scores]

    def op(conn: sqlite3.Connection) -> int:
        # only for a decision still logged: a score computed while its customer was erased is dropped
        conn.executemany("INSERT OR REPLACE INTO shadow_scores (event_id, policy_version, pmf, chosen_probability, "
                         "scored_at) SELECT ?,?,?,?,? WHERE EXISTS (SELECT 1 FROM decisions WHERE event_id = ?)", rows)
        return len(rows)

    return op

"""Write operations on the decisions and shadow scores (they run inside the writer's transaction)."""
from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from decision_log.records import DecisionRow, ShadowScore

WriteOp = Callable[[sqlite3.Connection], Any]

_INSERT_DECISION = """
INSERT INTO decisions (event_id, campaign, decided_at, user_key, context, numeric, offer_set, formats,
  time_slots, eligible, pmf, policy_pmf, chosen_index, offer_id, format, time_slot, probability,
  policy_version, exploration, beta, deferred, learn_due_at, baseline, no_contact_reason, removed, fingerprint)
VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
"""


@dataclass(frozen=True)
class InsertDecisions:
    """A write operation inserting decisions (all or none of them).

    The writer merges consecutive InsertDecisions of one group into a single ``executemany`` (one
    SAVEPOINT instead of one per call); if the merged insert fails, it retries them one by one so
    only the offending call fails.
    """

    rows: tuple[DecisionRow, ...]

    def __call__(self, conn: sqlite3.Connection) -> int:
        return insert_rows(conn, self.rows)


def insert_decisions(rows: Sequence[DecisionRow]) -> InsertDecisions:
    return InsertDecisions(tuple(rows))


def insert_rows(conn: sqlite3.Connection, rows: Sequence[DecisionRow]) -> int:
    conn.executemany("INSERT OR IGNORE INTO offer_sets (id, offers) VALUES (?, ?)",
                     {(r.offer_set_id, r.offer_set_json) for r in rows})
    conn.executemany(_INSERT_DECISION, [
        (r.event_id, r.campaign, r.decided_at, r.user_key, r.context_json, r.numeric_json, r.offer_set_id,
         r.formats_json, r.time_slots_json, r.eligible, r.pmf, r.policy_pmf, r.chosen_index,
         r.offer_id or None, r.format or None, r.time_slot or None, r.probability, r.policy_version,
         r.exploration, r.beta, int(r.deferred), r.learn_due_at, r.baseline_json, r.no_contact_reason or None,
         r.removed_json, r.fingerprint)
        for r in rows])
    return len(rows)


def insert_shadow_scores(scores: Sequence[ShadowScore]) -> WriteOp:
    rows = [(s.event_id, s.policy_version, s.pmf, s.chosen_probability, s.scored_at) for s in scores]

    def op(conn: sqlite3.Connection) -> int:
        conn.executemany("INSERT OR REPLACE INTO shadow_scores (event_id, policy_version, pmf, chosen_probability, "
                         "scored_at) VALUES (?,?,?,?,?)", rows)
        return len(rows)

    return op

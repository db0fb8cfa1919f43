"""Contact caps decided inside the commit that writes the decision: exact across replicas.

A row carries the campaign's caps that apply to its chosen arm's format (`records.CapLimit`). Inside the
writer's transaction, with the customer's key locked (PostgreSQL: ``pg_advisory_xact_lock`` taken by the
writer in sorted key order for the whole group; SQLite: the one writer's ``BEGIN IMMEDIATE``), each such row
counts the customer's committed contacts (under every listed user-hash key) in each cap window — the rule of `decision_log.counting` and
`policies.rules`: a chosen arm, not ``no_contact``, not deferred or activated, through the cap's format
(``'*'``: any), counted from its shown time, strictly after ``decided_at - window_s`` — plus the contacts
ahead of it in the same commit group (rows of earlier operations are already in the transaction; rows
ahead in its own operation are counted here). A row whose cap is reached is written as ``no_contact``
with reason ``cap`` instead, and reported in `records.InsertOutcome.capped`.
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

from decision_log.codec import blob_to_indices, removed_counts, removed_text
from decision_log.dialect import dialect_of
from decision_log.reasons import split_removed
from decision_log.records import DecisionRow
from policies.sampler import NO_CONTACT

__all__ = ["CAP_REASON", "apply_caps", "as_capped", "is_contact", "users_with_caps"]

CAP_REASON = "cap"

_COUNT = ("SELECT count(*) FROM decisions WHERE {users} AND chosen_index IS NOT NULL "
          "AND exploration <> 'no_contact' AND (deferred = 0 OR activated_at IS NOT NULL) "
          "AND (? = '*' OR format = ?) "
          "AND (CASE WHEN deferred <> 0 AND activated_at IS NOT NULL THEN activated_at ELSE decided_at END) > ?")


def is_contact(row: DecisionRow) -> bool:
    return row.chosen_index is not None and row.exploration != NO_CONTACT


def users_with_caps(rows: Sequence[DecisionRow]) -> list[str]:
    """The distinct user keys whose rows must be checked against caps, sorted (the order locks are taken in)."""
    return sorted({row.user_key for row in rows if row.caps and is_contact(row)})


def _removed_by_cap(row: DecisionRow) -> str:
    """The removal counts with the arms that were still eligible counted under ``cap``."""
    if row.compact:  # one float32 pmf entry per eligible arm; the engine's reasons per offer and pair stay
        counts = removed_counts(row.removed)
        _, reasons = split_removed(row.removed)
        text = removed_text(dataclasses.replace(counts, cap=counts.cap + len(row.pmf) // 4))
        return text + (f";{reasons}" if reasons else "")
    try:
        counts = json.loads(row.removed)
    except ValueError:
        return row.removed
    if not isinstance(counts, dict):
        return row.removed
    counts["cap"] = int(counts.get("cap", 0)) + len(blob_to_indices(row.eligible))
    return json.dumps(counts)


def as_capped(row: DecisionRow) -> DecisionRow:
    """The decision as it is logged when the customer's cap was reached: a ``no_contact`` (reason ``cap``),
    every arm that was eligible counted as removed by the cap."""
    return dataclasses.replace(row, chosen_index=None, offer_id="", format="", time_slot="", probability=1.0,
                               pmf=b"", eligible=b"", exploration=NO_CONTACT, no_contact_reason=CAP_REASON,
                               learn_due_at=None, removed=_removed_by_cap(row))


def _reached(conn: Any, row: DecisionRow, ahead: list[DecisionRow]) -> bool:
    for cap in row.caps:
        if not cap.applies_to(row.format):
            continue
        since = float(row.decided_at) - float(cap.window_s)
        users, keys = dialect_of(conn).texts_in("user_key", (row.user_key, *row.previous_user_keys))
        committed = int(conn.execute(_COUNT.format(users=users), (keys, cap.format, cap.format, since)).fetchone()[0])
        pending = sum(1 for other in ahead if other.user_key == row.user_key and cap.applies_to(other.format)
                      and float(other.decided_at) > since)
        if committed + pending >= int(cap.max_contacts):
            return True
    return False


def apply_caps(conn: Any, rows: Sequence[DecisionRow]) -> tuple[list[DecisionRow], tuple[str, ...]]:
    """The rows to write (capped ones turned into no_contact) and the event ids that were capped."""
    if not any(row.caps for row in rows):
        return list(rows), ()
    written: list[DecisionRow] = []
    capped: list[str] = []
    ahead: list[DecisionRow] = []  # contacts ahead in this operation (not deferred: they count at once)
    for row in rows:
        if row.caps and is_contact(row) and _reached(conn, row, ahead):
            written.append(as_capped(row))
            capped.append(row.event_id)
            continue
        written.append(row)
        if is_contact(row) and not row.deferred:
            ahead.append(row)
    return written, tuple(capped)

"""What the privacy operations of the log answer with: an erasure's counts, the audit trail, everything
held about one customer (an access request), what a retention pass removed.

A customer is named only by keyed hashes (``user_keys``: one per user-hash key still listed, so rows
hashed with an older key are found too); the clear id never reaches the log.
"""
from __future__ import annotations

import json

from dataclasses import dataclass
from typing import Any

from policies.history import HistoryRecord

__all__ = ["ERASURE_ACTION", "AuditEntry", "ErasureCounts", "HeldDecision", "HeldReward", "HeldShadowScore", "RetentionPass",
           "UserData"]

ERASURE_ACTION = "erase"  # ``audit.action`` of an erasure


@dataclass(frozen=True, slots=True)
class ErasureCounts:
    """How many rows of each kind one erasure deleted. ``contacts``: the decisions among them that were
    contacts (what caps and the per-user history counted); they are rows of ``decisions``, not extra rows."""

    decisions: int = 0
    rewards: int = 0
    shadow_scores: int = 0
    contacts: int = 0

    @property
    def total(self) -> int:
        """Rows deleted (contacts are decisions, so they are not added again)."""
        return self.decisions + self.rewards + self.shadow_scores


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One row of the log's audit trail: what an operator did, never a clear customer id.

    ``user_keys`` are the keyed hashes an erasure matched on (empty for other actions)."""

    id: int
    at: float
    who: str
    action: str
    user_keys: tuple[str, ...]
    counts: ErasureCounts | None
    detail: str  # the stored JSON, as written


@dataclass(frozen=True, slots=True)
class HeldDecision:
    """One logged decision of the customer, as stored (the clear id is not stored, only ``user_key``)."""

    event_id: str
    campaign: str
    decided_at: float
    user_key: str
    context_json: str
    numeric_json: str
    features_json: str | None
    offer_id: str | None
    format: str | None
    time_slot: str | None
    probability: float
    policy_version: str
    exploration: str
    deferred: bool
    activated_at: float | None
    reward: float | None
    reward_count: int
    no_contact_reason: str | None
    baseline_json: str | None
    learned_at: float | None

    @classmethod
    def of_row(cls, row: Any, context: dict, numeric: dict) -> "HeldDecision":
        """From a ``decisions`` row and its decoded context and numeric features (inside the log package only)."""
        return cls(row["event_id"], row["campaign"], float(row["decided_at"]), row["user_key"],
                   json.dumps(context, separators=(",", ":")), json.dumps(numeric, separators=(",", ":")), row["features"], row["offer_id"], row["format"], row["time_slot"],
                   float(row["probability"]), row["policy_version"], row["exploration"], bool(row["deferred"]),
                   row["activated_at"], row["reward"], int(row["reward_count"] or 0), row["no_contact_reason"],
                   row["baseline"], row["learned_at"])


@dataclass(frozen=True, slots=True)
class HeldReward:
    event_id: str
    reward_id: str | None
    value: float
    received_at: float
    status: str


@dataclass(frozen=True, slots=True)
class HeldShadowScore:
    event_id: str
    policy_version: str
    chosen_probability: float | None
    scored_at: float | None


@dataclass(frozen=True, slots=True)
class UserData:
    """Everything the log holds about one customer: exactly the rows an erasure of the same keys deletes.
    ``contacts`` are the decisions caps and the per-user history count (derived from ``decisions``)."""

    user_keys: tuple[str, ...]
    decisions: tuple[HeldDecision, ...]
    rewards: tuple[HeldReward, ...]
    shadow_scores: tuple[HeldShadowScore, ...]
    contacts: tuple[HistoryRecord, ...]

    @property
    def counts(self) -> ErasureCounts:
        """What an erasure of the same keys would report."""
        return ErasureCounts(len(self.decisions), len(self.rewards), len(self.shadow_scores), len(self.contacts))


@dataclass(frozen=True, slots=True)
class RetentionPass:
    """What one retention pass deleted: rows decided before ``cutoff`` (epoch seconds)."""

    cutoff: float
    decisions: int
    rewards: int
    shadow_scores: int
    batches: int

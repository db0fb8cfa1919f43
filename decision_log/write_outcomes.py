"""What the log's write operations answer: an insert of decisions, a reward, an activation."""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ActivationOutcome", "InsertOutcome", "RewardOutcome"]


@dataclass(frozen=True, slots=True)
class InsertOutcome:
    """What one `insert_decisions` committed: ``written`` rows (capped ones included, as no_contact);
    ``repeated``: event ids another writer had committed first (nothing written for them: answer them
    as repeats of the stored decision); ``capped``: event ids written as ``no_contact`` (reason ``cap``)
    because the customer's cap was reached by contacts committed meanwhile (answer them as logged)."""

    written: int
    repeated: tuple[str, ...] = ()
    capped: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RewardOutcome:
    """What one ``Reward`` call did. ``retried``: the call repeated a stored ``(event_id, reward_id)`` with the
    same value, so this is the stored call's answer and nothing was written (no history to update again)."""

    accepted: bool
    duplicate: bool
    late: bool
    learn_seq: int | None  # the decision to learn now (first reward under `first`)
    campaign: str
    user_key: str
    offer_id: str | None
    format: str | None
    time_slot: str | None
    retried: bool = False


@dataclass(frozen=True, slots=True)
class ActivationOutcome:
    """What one ``Activate`` call did (``learn_seq``: the decision to learn now, its reward already in)."""

    activated: bool
    already_active: bool
    learn_seq: int | None
    campaign: str
    user_key: str
    decided_at: float
    offer_id: str | None
    format: str | None
    time_slot: str | None
    exploration: str

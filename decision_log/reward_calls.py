"""The reward calls the log stored for one event (``rewards`` table), as ``show-decision`` lists them."""
from __future__ import annotations

from dataclasses import dataclass

from decision_log.counting import Row

__all__ = ["RewardCall", "reward_call"]


@dataclass(frozen=True, slots=True)
class RewardCall:
    """One ``Reward`` call for a known event: its ``reward_id`` ("" when none was sent), value, arrival time and
    ``status`` (``counted`` into the event's reward, ``duplicate``, or ``late``: after the window, stored only)."""

    reward_id: str
    value: float
    received_at: float
    status: str


def reward_call(row: Row) -> RewardCall:
    return RewardCall(row["reward_id"] or "", float(row["value"]), float(row["received_at"]), row["status"])

"""What the client returns: frozen dataclasses with the proto's field names (``offers.v1``).

Each ``from_proto`` reads the message's fields by name, so a server that adds fields to a message
does not break an older client.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ActivateAck", "Arm", "Decision", "DecisionRecord", "RemovedArm", "RewardAck"]


@dataclass(frozen=True, slots=True)
class Arm:
    """One joint arm ``(offer_id, format, time_slot)`` and its probability."""

    offer_id: str
    format: str
    time_slot: str
    probability: float = 0.0

    @classmethod
    def from_proto(cls, message: Any) -> Arm:
        return cls(message.offer_id, message.format, message.time_slot, float(message.probability))


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to ``decide``: the chosen arm, the probability it was drawn with, the ranking.

    ``exploration`` is ``exploit``, ``explore``, ``explore_outside_history``, ``no_contact`` (arm
    fields empty, ``probability`` 1, ``ranking`` empty) or ``holdout``.
    """

    event_id: str
    offer_id: str
    format: str
    time_slot: str
    probability: float
    ranking: tuple[Arm, ...]
    policy_version: str
    exploration: str
    campaign: str = ""
    no_contact_reason: str = ""

    @property
    def arm(self) -> Arm:
        """The chosen arm with its probability."""
        return Arm(self.offer_id, self.format, self.time_slot, self.probability)

    @classmethod
    def from_proto(cls, message: Any) -> Decision:
        return cls(event_id=message.event_id, offer_id=message.offer_id, format=message.format,
                   time_slot=message.time_slot, probability=float(message.probability),
                   ranking=tuple(Arm.from_proto(arm) for arm in message.ranking),
                   policy_version=message.policy_version, exploration=message.exploration,
                   campaign=message.campaign, no_contact_reason=message.no_contact_reason)


@dataclass(frozen=True, slots=True)
class RewardAck:
    """``accepted``: counted into the event's reward; ``duplicate``: not counted (a later reward under
    aggregation ``first``, or this very reward retried); ``late``: after the reward window, stored only."""

    accepted: bool
    duplicate: bool
    late: bool = False

    @classmethod
    def from_proto(cls, message: Any) -> RewardAck:
        return cls(bool(message.accepted), bool(message.duplicate), bool(message.late))


@dataclass(frozen=True, slots=True)
class ActivateAck:
    """``activated``: the deferred decision now counts; ``already_active``: nothing changed."""

    activated: bool
    already_active: bool = False

    @classmethod
    def from_proto(cls, message: Any) -> ActivateAck:
        return cls(bool(message.activated), bool(message.already_active))


@dataclass(frozen=True, slots=True)
class RemovedArm:
    """An arm a contact rule removed (probability 0) and the first rule that removed it."""

    arm: Arm
    rule: str

    @classmethod
    def from_proto(cls, message: Any) -> RemovedArm:
        return cls(Arm.from_proto(message.arm), message.rule)


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """What ``get_decision`` returns: the logged decision (ranking = the full pmf), the removed arms,
    and the counted reward (0 until rewarded)."""

    decision: Decision
    removed: tuple[RemovedArm, ...]
    rewarded: bool
    reward: float

    @classmethod
    def from_proto(cls, message: Any) -> DecisionRecord:
        return cls(Decision.from_proto(message.decision), tuple(RemovedArm.from_proto(r) for r in message.removed),
                   bool(message.rewarded), float(message.reward))

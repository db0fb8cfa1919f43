"""Domain records shared by policies, the service, the simulator and offline evaluation.

A *joint arm* is one (offer, format, time slot) triple: the unit a policy puts probability on.
Everything here is immutable; mappings are read-only views so a record can be shared across threads.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np


#: The reward range of a campaign that configures none: rewards in [0, 1].
UNIT_REWARD_RANGE: tuple[float, float] = (0.0, 1.0)


def _frozen_map(values: Mapping | None) -> Mapping:
    return MappingProxyType(dict(values or {}))


@dataclass(frozen=True, slots=True)
class Offer:
    """A candidate offer. ``features`` are categorical (e.g. ``category``, ``discount_type``)."""

    id: str
    features: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "features", _frozen_map(self.features))

    @property
    def category(self) -> str:
        return self.features.get("category", "")


@dataclass(frozen=True, slots=True, order=True)
class JointArm:
    """One action: which offer, through which format/channel, at which send time."""

    offer_id: str
    format: str
    time_slot: str


@dataclass(frozen=True, slots=True)
class DecisionContext:
    """What a policy may condition on for one decision.

    ``user_key`` is the keyed hash of the user id (never the clear id); ``context`` holds categorical
    features and ``numeric`` numeric ones, both already validated (no sensitive keys, finite numbers).
    """

    user_key: str
    context: Mapping[str, str] = field(default_factory=dict)
    numeric: Mapping[str, float] = field(default_factory=dict)
    campaign: str = "default"

    def __post_init__(self) -> None:
        object.__setattr__(self, "context", _frozen_map(self.context))
        object.__setattr__(self, "numeric", _frozen_map(self.numeric))


@dataclass(frozen=True, slots=True)
class ArmSet:
    """The eligible joint arms of one decision, with the offers they refer to.

    ``offers`` maps offer id to the offer as it was at decision time (its feature snapshot).
    """

    arms: tuple[JointArm, ...]
    offers: Mapping[str, Offer]

    def __post_init__(self) -> None:
        object.__setattr__(self, "arms", tuple(self.arms))
        object.__setattr__(self, "offers", _frozen_map(self.offers))

    def __len__(self) -> int:
        return len(self.arms)

    def offer_of(self, arm: JointArm) -> Offer:
        return self.offers[arm.offer_id]

    @classmethod
    def product(cls, offers: Sequence[Offer], formats: Sequence[str], time_slots: Sequence[str]) -> "ArmSet":
        """All offer x format x time-slot combinations, in a stable order (offer-major)."""
        arms = tuple(JointArm(o.id, f, t) for o in offers for f in formats for t in time_slots)
        return cls(arms=arms, offers={o.id: o for o in offers})


@dataclass(frozen=True, slots=True)
class LearningEvent:
    """One logged decision with its outcome, as a policy learns from it.

    ``pmf`` is the logged pmf over ``arm_set.arms`` (shape (n_arms,)); ``chosen`` indexes into it and
    ``probability`` is the logged probability of the chosen arm (``pmf[chosen]``). ``reward_range``
    is the campaign's ``(low, high)``: a learner scales ``reward`` by it (the VW adapter maps it onto
    costs in [-1, 0]), so every path that learns from the log maps rewards the same way.
    """

    context: DecisionContext
    arm_set: ArmSet
    chosen: int
    probability: float
    reward: float
    pmf: np.ndarray | None = None
    reward_range: tuple[float, float] = UNIT_REWARD_RANGE

    @property
    def chosen_arm(self) -> JointArm:
        return self.arm_set.arms[self.chosen]

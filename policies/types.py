"""Domain records shared by policies, the service, the simulator and offline evaluation.

A *joint arm* is one (offer, format, time slot) triple: the unit a policy puts probability on.
Everything here is immutable; mappings are read-only views so a record can be shared across threads.
"""
from __future__ import annotations

import json
import re
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


#: The history dimensions per-customer features aggregate, with their one-letter codes (JSON, VW). ``cell``
#: is the joint (category, format, time slot) of a contact, keyed by :func:`cell_key`: what a per-customer
#: model of the three needs (marginal counts cannot tell which format answered in which category).
CUSTOMER_FEATURE_DIMENSIONS: tuple[tuple[str, str], ...] = (("category", "c"), ("format", "f"), ("time_slot", "t"),
                                                            ("offer", "o"), ("cell", "j"))
_DIMENSION_OF_CODE = {code: name for name, code in CUSTOMER_FEATURE_DIMENSIONS}
#: joins a cell's three values; each value is escaped first (``%`` -> ``%25``, the separator -> ``%1f``), so
#: a key splits back into exactly the values it was made of, whatever a catalogue holds
CELL_SEPARATOR = "\x1f"


def _escape_cell_part(value: str) -> str:
    return value.replace("%", "%25").replace(CELL_SEPARATOR, "%1f")


_CELL_ESCAPE = re.compile("%(25|1f)")


def _unescape_cell_part(value: str) -> str:
    return _CELL_ESCAPE.sub(lambda match: "%" if match.group(1) == "25" else CELL_SEPARATOR, value)


def cell_key(category: str, fmt: str, time_slot: str) -> str:
    """The ``cell`` value of a contact with this category, format and time slot."""
    return CELL_SEPARATOR.join(map(_escape_cell_part, (category, fmt, time_slot)))


def split_cell_key(key: str) -> tuple[str, str, str]:
    """The (category, format, time slot) of a :func:`cell_key` (ValueError for anything else)."""
    parts = key.split(CELL_SEPARATOR)
    if len(parts) != 3:
        raise ValueError(f"not a cell key: {key!r}")
    category, fmt, time_slot = map(_unescape_cell_part, parts)
    return category, fmt, time_slot


@dataclass(frozen=True, slots=True)
class CustomerFeatures:
    """Aggregates of one customer's own history as a decision used them (DESIGN-NOTES "Per-customer
    features"): per dimension (``category``, ``format``, ``time_slot``, ``offer``, ``cell``) and value,
    ``(shown, responded)``:
    how many counted contacts within the history horizon showed it and how many of those got a positive
    response received before the decision. No user key: only counts per value of the catalogue."""

    counts: Mapping[str, Mapping[str, tuple[int, int]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        checked = {}
        for dimension, values in self.counts.items():
            if dimension not in _DIMENSION_OF_CODE.values():
                raise ValueError(f"unknown customer-feature dimension {dimension!r}")
            checked[dimension] = MappingProxyType({str(v): (int(s), int(r)) for v, (s, r) in values.items()})
        object.__setattr__(self, "counts", MappingProxyType(checked))

    def to_json(self) -> str:
        """Compact JSON, e.g. ``{"c":{"travel":[3,1]},"f":{"sms":[3,1]}}`` (what the log row stores)."""
        return json.dumps({code: {v: [s, r] for v, (s, r) in sorted(self.counts[name].items())}
                           for name, code in CUSTOMER_FEATURE_DIMENSIONS if self.counts.get(name)},
                          separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> "CustomerFeatures":
        raw = json.loads(text)
        return cls({_DIMENSION_OF_CODE[code]: {v: (pair[0], pair[1]) for v, pair in values.items()}
                    for code, values in raw.items()})


@dataclass(frozen=True, slots=True)
class DecisionContext:
    """What a policy may condition on for one decision.

    ``user_key`` is the keyed hash of the user id (never the clear id); ``context`` holds categorical
    features and ``numeric`` numeric ones, both already validated (no sensitive keys, finite numbers).
    ``customer`` carries per-customer features (``[campaigns.<c>] personal_features``), as logged.
    """

    user_key: str
    context: Mapping[str, str] = field(default_factory=dict)
    numeric: Mapping[str, float] = field(default_factory=dict)
    campaign: str = "default"
    #: the customer's own-history aggregates when the campaign uses them (None: context only)
    customer: CustomerFeatures | None = None

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

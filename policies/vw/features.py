"""How a decision becomes VW input: namespaces, escaping, and the reward <-> cost sign.

Namespaces (VW interacts namespaces by their first letter)::

    u   categorical context        "key=value"        (shared line)
    n   numeric context            "key:value"        (shared line)
    o   offer id                   "id=<offer id>"    (arm line)
    of  offer features (index o)   "key=value"        (arm line; a separate namespace name so a
                                                       feature called "id" cannot collide)
    f   format / channel           "format=<value>"   (arm line)
    t   send-time slot             "slot=<value>"     (arm line)
    p   per-customer features      "<d>r=<value>:x"   (shared line; only with ``personal_features``:
                                                       log1p of the customer's positive responses per
                                                       category (d = c), format (f) and slot (t), read
                                                       from the logged DecisionContext; interacted with
                                                       o, f and t; no user key. The logged shows are not
                                                       fed: with them the policy did worse on the
                                                       individual-habit world, tuning seeds)

User data is escaped so that ``|``, ``:``, ``=``, whitespace or control characters can never corrupt a
line. VW minimises cost; rewards become costs here and nowhere else, scaled by the campaign's
``reward_range`` [LOW, HIGH] into a fixed range: ``cost = -(reward - LOW) / (HIGH - LOW)`` in [-1, 0]
(with the default [0, 1], ``cost = -reward``), so no reward reaches VW unscaled. This module builds
text only and does not import ``vowpalwabbit``.
"""
from __future__ import annotations

import re
from functools import lru_cache
from math import isfinite as _isfinite
from math import log1p
from collections.abc import Sequence
from typing import Any

from offerbandit.checks import check_scalar
from offerbandit.errors import InvalidInput
from policies.types import (
    CUSTOMER_FEATURE_DIMENSIONS,
    UNIT_REWARD_RANGE,
    ArmSet,
    CustomerFeatures,
    DecisionContext,
    JointArm,
    Offer,
)

__all__ = [
    "CONTEXT_NAMESPACE",
    "DEFAULT_INTERACTIONS",
    "FORMAT_NAMESPACE",
    "NUMERIC_NAMESPACE",
    "OFFER_FEATURE_NAMESPACE",
    "OFFER_NAMESPACE",
    "PERSONAL_INTERACTIONS",
    "PERSONAL_NAMESPACE",
    "TIME_NAMESPACE",
    "arm_line",
    "arm_suffix",
    "check_context",
    "check_interactions",
    "context_features",
    "customer_part",
    "customer_tokens",
    "cost_from_reward",
    "escape_token",
    "offer_part",
    "offer_parts",
    "reward_from_cost",
    "shared_line",
]

CONTEXT_NAMESPACE = "u"
NUMERIC_NAMESPACE = "n"
OFFER_NAMESPACE = "o"
OFFER_FEATURE_NAMESPACE = "of"
FORMAT_NAMESPACE = "f"
TIME_NAMESPACE = "t"
PERSONAL_NAMESPACE = "p"

#: context x offer, context x format, context x time (categorical and numeric), format x time.
DEFAULT_INTERACTIONS: tuple[str, ...] = ("uo", "uf", "ut", "no", "nf", "nt", "ft")
#: what ``personal_features`` adds to a campaign's interactions: the customer's own history x the arm's
#: offer (id and features, so its category), format and slot.
PERSONAL_INTERACTIONS: tuple[str, ...] = ("po", "pf", "pt")
_NAMESPACE_LETTERS = frozenset("unoftp")

# Everything VW's text parser treats specially, plus what cannot cross into C++ as UTF-8.
_UNSAFE = re.compile(r"[%|:=\s\x00-\x1f\x7f\ud800-\udfff]")


def escape_token(text: str) -> str:
    """Make ``text`` safe as (part of) a VW feature name; injective, so distinct values stay distinct.

    Unsafe characters become ``%<hex>;`` (``%`` itself is escaped, so the mapping is reversible).
    """
    if _UNSAFE.search(text) is None:
        return text
    return _UNSAFE.sub(lambda match: f"%{ord(match.group()):x};", text)


# --- reward <-> cost: the only place the sign flips -------------------------------------------

def cost_from_reward(reward: float, reward_range: tuple[float, float] = UNIT_REWARD_RANGE) -> float:
    """VW minimises cost; we maximise reward. A reward in ``reward_range`` maps onto [-1, 0]."""
    low, high = reward_range
    return -(float(reward) - low) / (high - low)


def reward_from_cost(cost: float, reward_range: tuple[float, float] = UNIT_REWARD_RANGE) -> float:
    """The inverse of :func:`cost_from_reward`."""
    low, high = reward_range
    return low - float(cost) * (high - low)


# --- validation -------------------------------------------------------------------------------

def check_context(context: DecisionContext) -> None:
    if not isinstance(context, DecisionContext):
        raise InvalidInput("context must be a DecisionContext", field="context")


def check_interactions(interactions: Sequence[str]) -> tuple[str, ...]:
    checked = tuple(interactions)
    for item in checked:
        if not isinstance(item, str) or len(item) < 2 or not set(item) <= _NAMESPACE_LETTERS:
            raise InvalidInput(
                f"interaction {item!r} must be 2+ namespace letters from {''.join(sorted(_NAMESPACE_LETTERS))}",
                field="interactions",
            )
    return checked


# --- feature mapping --------------------------------------------------------------------------

def context_features(context: DecisionContext) -> tuple[list[str], list[tuple[str, float]]]:
    """The escaped categorical features (``key=value``) and (name, value) numeric ones, sorted by key."""
    categorical = [
        f"{escape_token(key)}={escape_token(value)}" for key, value in sorted(context.context.items())
    ]
    numeric = [
        (escape_token(key), value if type(value) is float and _isfinite(value) else check_scalar(value, f"numeric.{key}"))
        for key, value in sorted(context.numeric.items())
    ]
    return categorical, numeric


@lru_cache(maxsize=1 << 16)
def _categorical_token(key: str, value: str) -> str:
    """``key=value`` escaped (remembered: a campaign's contexts repeat a few thousand pairs)."""
    return f"{escape_token(key)}={escape_token(value)}"


@lru_cache(maxsize=1 << 12)
def _numeric_prefix(key: str) -> str:
    return f"{escape_token(key)}:"


def shared_line(context: DecisionContext) -> str:
    """The shared (context) line: what :func:`context_features` gives, with escaped tokens remembered."""
    categorical, numeric = context.context, context.numeric
    line = "shared"
    if categorical:
        line += f" |{CONTEXT_NAMESPACE} " + " ".join([_categorical_token(key, value)
                                                     for key, value in sorted(categorical.items())])
    if numeric:
        line += f" |{NUMERIC_NAMESPACE} " + " ".join([
            _numeric_prefix(key) + repr(value if type(value) is float and _isfinite(value)
                                        else check_scalar(value, f"numeric.{key}"))
            for key, value in sorted(numeric.items())])
    if not categorical and not numeric:
        # A bare "shared" line would be parsed as one more action: give it an empty namespace.
        line += f" |{CONTEXT_NAMESPACE}"
    if context.customer is not None:
        line += customer_part(context.customer)
    return line


def customer_tokens(features: CustomerFeatures) -> list[tuple[str, float]]:
    """The ``p`` namespace's (feature name, value) pairs: log1p of the positive responses per value."""
    tokens = []
    for dimension, code in CUSTOMER_FEATURE_DIMENSIONS:
        for value, (_, responded) in sorted(features.counts.get(dimension, {}).items()):
            name = escape_token(value)
            if responded:
                tokens.append((f"{code}r={name}", float(f"{log1p(responded):.6g}")))
    return tokens


def customer_part(features: CustomerFeatures) -> str:
    """The ``p`` namespace of the shared line (empty when the customer has no counts)."""
    tokens = customer_tokens(features)
    return f" |{PERSONAL_NAMESPACE} " + " ".join(f"{n}:{v!r}" for n, v in tokens) if tokens else ""


def offer_part(offer: Offer) -> str:
    """The offer's namespaces of an arm line (``|o id=...`` and its features)."""
    text = f"|{OFFER_NAMESPACE} id={escape_token(offer.id)}"
    if offer.features:
        text += f" |{OFFER_FEATURE_NAMESPACE} " + " ".join(
            f"{escape_token(key)}={escape_token(value)}" for key, value in sorted(offer.features.items())
        )
    return text


def arm_suffix(arm: JointArm) -> str:
    """The format and time-slot namespaces of an arm line."""
    return (
        f" |{FORMAT_NAMESPACE} format={escape_token(arm.format)}"
        f" |{TIME_NAMESPACE} slot={escape_token(arm.time_slot)}"
    )


def arm_line(arm: JointArm, offer: Offer) -> str:
    """The unlabelled VW text line of one joint arm (labels are prefixed by the learner)."""
    return offer_part(offer) + arm_suffix(arm)


def offer_parts(arm_set: ArmSet, known: dict[str, tuple[Any, str]] | None = None) -> dict[str, str]:
    """Validate ``arm_set`` and return each used offer's text part (built once per offer).

    ``known`` (offer id -> (features, part)) lets a caller keep parts between requests; an entry is
    reused only while the offer's features are equal to the ones it was built from.
    """
    if not isinstance(arm_set, ArmSet):
        raise InvalidInput("arm_set must be an ArmSet", field="arm_set")
    if len(arm_set.arms) == 0:
        raise InvalidInput("arm_set has no arms", field="arm_set.arms")
    parts: dict[str, str] = {}
    offers = arm_set.offers
    for index, arm in enumerate(arm_set.arms):
        offer_id = arm.offer_id
        if offer_id not in parts:
            offer = offers.get(offer_id)
            if offer is None:
                raise InvalidInput(
                    f"arm {index} refers to offer {offer_id!r}, which is not among the offers",
                    field=f"arm_set.arms[{index}].offer_id",
                )
            entry = known.get(offer_id) if known is not None else None
            if entry is not None and entry[0] == offer.features:
                parts[offer_id] = entry[1]
            else:
                parts[offer_id] = offer_part(offer)
                if known is not None:
                    known[offer_id] = (dict(offer.features), parts[offer_id])
    return parts

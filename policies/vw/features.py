"""How a decision becomes VW input: namespaces, escaping, and the reward <-> cost sign.

Namespaces (VW interacts namespaces by their first letter)::

    u   categorical context        "key=value"        (shared line)
    n   numeric context            "key:value"        (shared line)
    o   offer id                   "id=<offer id>"    (arm line)
    of  offer features (index o)   "key=value"        (arm line; a separate namespace name so a
                                                       feature called "id" cannot collide)
    f   format / channel           "format=<value>"   (arm line)
    t   send-time slot             "slot=<value>"     (arm line)
    m   this arm x this customer   "<d>r:x" "<d>n:x"  (arm line; only with ``personal_model = "match"``: log1p
                                                       of the customer's responses (r) and of the shows
                                                       left unanswered (n) for THIS arm's category
                                                       (d = c), format (f), slot (t) and offer (o), from
                                                       the logged DecisionContext; no user key. Eight
                                                       weights shared by every value, so what one
                                                       customer's answers teach carries over to every
                                                       category and customer; ``mm``/``mmm`` combine them)

An earlier design put the customer's response counts per value on the shared line (``p``, interacted with
o, f, t): one weight per (value, arm) pair, learned separately for every category. On the individual-habit
world (tuning seed 101, 100 customers, served) it reached 0.12x the oracle; the match features 0.39x (0.41x
with ``mmm``, 0.43x with the offer's own counts too; 0.35x with ``p`` kept beside them), so ``p`` is gone.

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
from collections.abc import Mapping, Sequence
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
    "MATCH_NAMESPACE",
    "PERSONAL_INTERACTIONS",
    "PERSONAL_LEARNING_RATE",
    "TIME_NAMESPACE",
    "arm_line",
    "arm_suffix",
    "match_parts",
    "match_tokens",
    "check_context",
    "check_interactions",
    "context_features",
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

#: context x offer, context x format, context x time (categorical and numeric), format x time.
DEFAULT_INTERACTIONS: tuple[str, ...] = ("uo", "uf", "ut", "no", "nf", "nt", "ft")
#: what ``personal_model = "match"`` adds to a campaign's interactions: the match features' pairs and triples
#: (answered the arm's category AND its format AND its slot is worth more than the sum: the world is
#: additive in log-odds, VW's regression is linear in the reward).
PERSONAL_INTERACTIONS: tuple[str, ...] = ("mm", "mmm")
#: the learning rate a campaign with ``personal_features`` gets unless it sets one (VW's default here is 0.5):
#: a customer's habit shows in a handful of their own answers, and the shared match weights must follow
#: them fast. Individual-habit world, tuning seed 101, served in lockstep: 0.36x -> 0.46x the oracle with
#: 100 customers, 0.35x -> 0.43x with 40 (0.30x at 0.25).
PERSONAL_LEARNING_RATE = 1.0
MATCH_NAMESPACE = "m"
#: the customer-feature dimensions the match features read (the joint cells are for `policies.personal`)
_MATCH_DIMENSIONS = frozenset({"category", "format", "time_slot", "offer"})
_NAMESPACE_LETTERS = frozenset("unoftm")

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
    return line


def _dimension_tokens(counts: Mapping[str, tuple[int, int]], code: str) -> dict[str, str]:
    """Per value of one dimension, its match tokens (``<code>r:x`` responses, ``<code>n:x`` unanswered)."""
    tokens = {}
    for value, (shown, responded) in counts.items():
        text = f" {code}r:{log1p(responded):.6g}" if responded else ""
        if shown > responded:
            text += f" {code}n:{log1p(shown - responded):.6g}"
        tokens[value] = text
    return tokens


def match_parts(arm_set: ArmSet, customer: CustomerFeatures | None) -> list[str] | None:
    """The ``m`` namespace of each arm line (``""`` where the customer has no count for any of the arm's
    category, format, slot and offer); None for a cold customer (every arm as cached)."""
    if customer is None:
        return None
    counts = customer.counts
    by_dimension = {dimension: _dimension_tokens(counts.get(dimension, {}), code)
                    for dimension, code in CUSTOMER_FEATURE_DIMENSIONS if dimension in _MATCH_DIMENSIONS}
    category, fmt, slot = by_dimension["category"], by_dimension["format"], by_dimension["time_slot"]
    offer_tokens = by_dimension["offer"]
    offers = arm_set.offers
    parts = []
    for arm in arm_set.arms:
        offer = offers.get(arm.offer_id)
        text = (category.get(offer.category, "") if offer is not None else "") + fmt.get(arm.format, "") \
            + slot.get(arm.time_slot, "") + offer_tokens.get(arm.offer_id, "")
        parts.append(f" |{MATCH_NAMESPACE}{text}" if text else "")
    return parts


def match_tokens(part: str) -> dict[str, float]:
    """A :func:`match_parts` entry as DSJSON's (feature name, value) pairs."""
    return {name: float(value) for name, _, value in (token.partition(":") for token in part.split()[1:])}


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

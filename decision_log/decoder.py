"""Rows back into records, written once: every reader of the log decodes through `RowDecoder`.

Decisions are read *as they were logged* (eligible arms, offer snapshot, full pmf), never against
today's catalogue. Rows that logged the same candidates and eligible arms share one decoded `ArmSet`
(building a 500-arm ArmSet per row made decoding ~10x slower); both caches are bounded in bytes.
"""
from __future__ import annotations

import json
from collections.abc import Callable

from decision_log import counting
from decision_log.codec import blob_to_indices, blob_to_pmf
from decision_log.counting import Row
from decision_log.records import FinalDecision, LoggedDecision, ServedOutcome, ShownDecision
from offerbandit.errors import InvalidInput
from policies.bounded import ByteLRU, text_bytes
from policies.history import HistoryRecord
from policies.sampler import HOLDOUT
from policies.types import UNIT_REWARD_RANGE, ArmSet, DecisionContext, JointArm, LearningEvent, Offer

OfferLoader = Callable[[str], tuple[Offer, ...]]


def _offers_bytes(offers: tuple[Offer, ...]) -> int:
    """Estimated bytes of a decoded offer snapshot (~450 B for an offer with two features)."""
    return 64 + sum(300 + text_bytes(o.id) + sum(100 + text_bytes(k, v) for k, v in o.features.items())
                    for o in offers)


def _arm_set_bytes(arm_set: ArmSet) -> int:
    """Estimated bytes of a decoded arm set beyond its (shared) offers: ~66 B per joint arm."""
    return 200 + 72 * len(arm_set.arms) + 64 * len(arm_set.offers)


#: Default budgets of the decoder's caches (few distinct candidate sets normally; a caller sending its
#: own 2,000-offer lists must not hold hundreds of megabytes of decoded snapshots).
OFFER_SET_CACHE_BYTES = 32 * 1024 * 1024
ARM_SET_CACHE_BYTES = 32 * 1024 * 1024


class OfferSetCache:
    """Offer snapshots by content id, least recently used dropped first, bounded in bytes."""

    def __init__(self, load: OfferLoader, max_bytes: int = OFFER_SET_CACHE_BYTES) -> None:
        self._load = load
        self._items: ByteLRU[str, tuple[Offer, ...]] = ByteLRU(max_bytes, lambda k, v: _offers_bytes(v))

    def get(self, offer_set_id: str) -> tuple[Offer, ...]:
        offers = self._items.get(offer_set_id)
        if offers is None:
            offers = self._load(offer_set_id)
            self._items.put(offer_set_id, offers)
        return offers


class RowDecoder:
    """Decodes decision rows; thread-safe. ``arm_set_bytes``: the budget of decoded arm sets (0: none)."""

    def __init__(self, offers: OfferSetCache, arm_set_bytes: int = ARM_SET_CACHE_BYTES) -> None:
        self.offers = offers
        self._arm_sets: ByteLRU[tuple, ArmSet] = ByteLRU(arm_set_bytes, lambda k, v: _arm_set_bytes(v) + len(k[3]))

    def _arm_set(self, row: Row) -> ArmSet:
        key = (row["offer_set"], row["formats"], row["time_slots"], bytes(row["eligible"] or b""))
        arm_set = self._arm_sets.get(key)
        if arm_set is not None:
            return arm_set
        offer_list = self.offers.get(row["offer_set"])
        product = ArmSet.product(offer_list, json.loads(row["formats"]), json.loads(row["time_slots"]))
        arms = tuple(product.arms[i] for i in blob_to_indices(row["eligible"]))
        used = {a.offer_id for a in arms}
        arm_set = ArmSet(arms=arms, offers={o.id: o for o in offer_list if o.id in used})
        self._arm_sets.put(key, arm_set)
        return arm_set

    def decision(self, row: Row) -> LoggedDecision:
        context = DecisionContext(user_key=row["user_key"], context=json.loads(row["context"]),
                                  numeric=json.loads(row["numeric"]), campaign=row["campaign"])
        baseline = JointArm(*json.loads(row["baseline"])) if row["baseline"] else None
        return LoggedDecision(
            seq=row["seq"], event_id=row["event_id"], campaign=row["campaign"], decided_at=row["decided_at"],
            context=context, arm_set=self._arm_set(row), pmf=blob_to_pmf(row["pmf"]), chosen=row["chosen_index"],
            probability=row["probability"], policy_version=row["policy_version"],
            exploration=row["exploration"], deferred=bool(row["deferred"]), activated_at=row["activated_at"],
            learned_at=row["learned_at"], reward=row["reward"], baseline=baseline,
            no_contact_reason=row["no_contact_reason"] or "", fingerprint=_column(row, "fingerprint"),
            quarantined=_column(row, "quarantined_at") is not None, rewarded=bool(_column(row, "reward_count") or 0))

    def history_record(self, row: Row) -> HistoryRecord | None:
        """What the per-user store needs from a logged decision (None for no_contact)."""
        if not counting.contacted(row):
            return None
        category = next((o.category for o in self.offers.get(row["offer_set"]) if o.id == row["offer_id"]), "")
        return HistoryRecord(user_key=row["user_key"], event_id=row["event_id"], when=counting.shown_at(row),
                             arm=JointArm(row["offer_id"], row["format"], row["time_slot"]), category=category,
                             counted=counting.shown(row), reward=counting.received_reward(row))


def _column(row: Row, name: str) -> object:
    """A column that logs older than its migration may lack (rows then read None)."""
    try:
        return row[name]
    except (IndexError, KeyError):
        return None


def learning_event(decision: LoggedDecision, default_reward: float,
                   reward_range: tuple[float, float] = UNIT_REWARD_RANGE) -> LearningEvent | None:
    """The event a policy learns from, or None for decisions that are never learned (no_contact, holdout).

    The reward is clipped to ``reward_range`` (the campaign's; a stored aggregate already is) and the
    range travels with the event, so every learner maps it onto the same scale."""
    if decision.chosen is None or decision.exploration == HOLDOUT:
        return None
    reward = decision.reward if decision.reward is not None else default_reward
    low, high = reward_range
    return LearningEvent(context=decision.context, arm_set=decision.arm_set, chosen=decision.chosen,
                         probability=decision.probability, reward=min(max(float(reward), low), high),
                         pmf=decision.pmf, reward_range=(float(low), float(high)))


def shown_decision(row: Row) -> ShownDecision:
    return ShownDecision(when=counting.shown_at(row), seq=int(row["seq"]), event_id=row["event_id"],
                         campaign=row["campaign"], policy_version=row["policy_version"], user_key=row["user_key"],
                         offer_set=row["offer_set"], offer_id=row["offer_id"], format=row["format"],
                         time_slot=row["time_slot"], exploration=row["exploration"],
                         reward=counting.known_reward(row))


def final_decision(row: Row, default_reward: float,
                   reward_range: tuple[float, float] | None = None) -> FinalDecision:
    """The numbers of a decision that counts (the reward clipped to ``reward_range`` when given);
    refuses a row whose pmf, arms and choice disagree."""
    pmf = blob_to_pmf(row["pmf"])
    n_arms = len(blob_to_indices(row["eligible"]))
    if len(pmf) != n_arms or not 0 <= row["chosen_index"] < n_arms:
        raise InvalidInput(f"log row {row['seq']} is inconsistent: {n_arms} eligible arms, "
                           f"pmf of {len(pmf)}, chosen {row['chosen_index']}", field="data-dir")
    return FinalDecision(seq=row["seq"], event_id=row["event_id"], decided_at=float(row["decided_at"]),
                         user_key=row["user_key"], policy_version=row["policy_version"],
                         chosen=row["chosen_index"], probability=float(row["probability"]),
                         reward=_clip(counting.final_reward(row, default_reward), reward_range), pmf=pmf)


def _clip(value: float, reward_range: tuple[float, float] | None) -> float:
    if reward_range is None:
        return value
    return min(max(value, reward_range[0]), reward_range[1])


def served_outcome(row: Row) -> ServedOutcome:
    return ServedOutcome(policy_version=row["policy_version"], decided_at=row["decided_at"], reward=row["reward"],
                         format=row["format"], time_slot=row["time_slot"], exploration=row["exploration"])

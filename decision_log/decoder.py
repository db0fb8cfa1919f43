"""Rows back into records, written once: every reader of the log decodes through `RowDecoder`.

Decisions are read *as they were logged* (eligible arms, offer snapshot, full pmf), never against
today's catalogue. Rows that logged the same candidates and eligible arms share one decoded `ArmSet`
(building a 500-arm ArmSet per row made decoding ~10x slower); both caches are bounded in bytes.
"""
from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np

from decision_log import counting
from decision_log.codec import (arm_set_feature_keys, blob_to_fingerprint, blob_to_indices, decode_arm_set,
                                features_of, is_compact, mask_to_indices, policy_pmf_of, removed_counts, served_pmf)
from decision_log.counting import Row
from decision_log.reasons import removed_arms
from decision_log.records import FinalDecision, LoggedDecision, ServedOutcome, ShownDecision, StoredDecision
from offerbandit.errors import InvalidInput
from policies.bounded import ByteLRU, text_bytes
from policies.history import HistoryRecord
from policies.novelty import category_codes
from policies.sampler import HOLDOUT
from policies.types import UNIT_REWARD_RANGE, ArmSet, CustomerFeatures, DecisionContext, JointArm, LearningEvent, Offer

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


#: loads a stored arm set by its reference (the integer key since schema 4, else the text id): (id, text)
ArmSetLoader = Callable[[int | str], tuple[str, str]]
#: a row's arm-set id, offer-set id, formats, time slots, context keys, numeric keys (`RowDecoder.layout`)
Layout = tuple[str | None, str, tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]]


class RowDecoder:
    """Decodes decision rows of both formats (`decision_log.codec`); thread-safe. ``arm_set_texts``: loads a
    stored arm set's id and text by reference (compact rows); ``arm_set_bytes``: the budget of decoded arm sets
    (0: none)."""

    def __init__(self, offers: OfferSetCache, arm_set_bytes: int = ARM_SET_CACHE_BYTES,
                 arm_set_texts: ArmSetLoader | None = None) -> None:
        self.offers = offers
        self._arm_sets: ByteLRU[tuple, ArmSet] = ByteLRU(arm_set_bytes, lambda k, v: _arm_set_bytes(v) + len(k[3]))
        self._load_arm_set = arm_set_texts
        self._layouts: ByteLRU[int | str, Layout] = ByteLRU(
            1024 * 1024, lambda k, v: 200 + text_bytes(v[0], v[1], *v[2], *v[3], *v[4], *v[5]))

    def _stored_layout(self, row: Row) -> Layout:
        """The arm set's id (None: an old row), offer-set id, formats, time slots, and context and numeric key
        names (schema 4; else none) of a row."""
        ref = arm_set_ref(row)
        if not is_compact(ref):
            return (None, row["offer_set"], tuple(json.loads(row["formats"])), tuple(json.loads(row["time_slots"])),
                    (), ())
        layout = self._layouts.get(ref)
        if layout is None:
            if self._load_arm_set is None:
                raise InvalidInput(f"log row {row['seq']} is compact but this decoder cannot load arm sets",
                                   field="data-dir")
            arm_set_id, text = self._load_arm_set(ref)
            layout = (arm_set_id, *decode_arm_set(text), *arm_set_feature_keys(text))
            self._layouts.put(ref, layout)
        return layout

    def layout(self, row: Row) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
        """The offer-set id, formats and time slots of a row's candidate product (either format)."""
        return self._stored_layout(row)[1:4]

    def features(self, row: Row) -> tuple[dict, dict]:
        """A row's context and numeric features as dicts (JSON objects before schema 4, else values named by
        the arm set's keys)."""
        *_, context_keys, numeric_keys = self._stored_layout(row)
        try:
            return features_of(row["context"], context_keys), features_of(row["numeric"], numeric_keys, float)
        except ValueError as exc:
            raise InvalidInput(f"log row {row['seq']} is inconsistent: {exc}", field="data-dir") from exc

    def offer_set_id(self, row: Row) -> str:
        """The id of the offer set a row decided over (either format)."""
        return self.layout(row)[0] if is_compact(arm_set_ref(row)) else row["offer_set"]

    def shown_decision(self, row: Row) -> ShownDecision:
        return ShownDecision(when=counting.shown_at(row), seq=int(row["seq"]), event_id=row["event_id"],
                             campaign=row["campaign"], policy_version=row["policy_version"],
                             user_key=row["user_key"], offer_set=self.offer_set_id(row), offer_id=row["offer_id"],
                             format=row["format"], time_slot=row["time_slot"], exploration=row["exploration"],
                             reward=counting.known_reward(row))

    def candidates(self, row: Row) -> tuple[ArmSet, np.ndarray]:
        """A row's candidate product and the indices of its eligible arms in it."""
        offer_set_id, formats, time_slots = self.layout(row)
        product = ArmSet.product(self.offers.get(offer_set_id), formats, time_slots)
        if is_compact(arm_set_ref(row)):
            return product, mask_to_indices(row["eligible"], len(product.arms))
        return product, blob_to_indices(row["eligible"])

    def _arm_set(self, row: Row) -> ArmSet:
        ref = arm_set_ref(row)
        eligible = row["eligible"]
        if is_compact(ref):
            key = ("", ref, eligible is None, bytes(eligible or b""))
        else:
            key = (row["offer_set"], row["formats"], row["time_slots"], bytes(eligible or b""))
        arm_set = self._arm_sets.get(key)
        if arm_set is not None:
            return arm_set
        product, indices = self.candidates(row)
        arms = tuple(product.arms[i] for i in indices)
        used = {a.offer_id for a in arms}
        arm_set = ArmSet(arms=arms, offers={oid: o for oid, o in product.offers.items() if oid in used})
        self._arm_sets.put(key, arm_set)
        return arm_set

    def decision(self, row: Row) -> LoggedDecision:
        features = _column(row, "features")  # per-customer features as the decision used them: read, never recomputed
        named, numeric = self.features(row)
        context = DecisionContext(user_key=row["user_key"], context=named, numeric=numeric, campaign=row["campaign"],
                                  customer=CustomerFeatures.from_json(features) if features else None)
        baseline = JointArm(*json.loads(row["baseline"])) if row["baseline"] else None
        pmf = served_pmf(row["pmf"], is_compact(arm_set_ref(row)), row["chosen_index"], row["probability"])
        return LoggedDecision(
            seq=row["seq"], event_id=row["event_id"], campaign=row["campaign"], decided_at=row["decided_at"],
            context=context, arm_set=self._arm_set(row), pmf=pmf, chosen=row["chosen_index"],
            probability=row["probability"], policy_version=row["policy_version"],
            exploration=row["exploration"], deferred=bool(row["deferred"]), activated_at=row["activated_at"],
            learned_at=row["learned_at"], reward=row["reward"], baseline=baseline,
            no_contact_reason=row["no_contact_reason"] or "", fingerprint=fingerprint_of(row),
            quarantined=_column(row, "quarantined_at") is not None, rewarded=bool(_column(row, "reward_count") or 0))

    def stored(self, row: Row) -> StoredDecision:
        """Every stored field of a decision row, decoded (what a compact row keeps, or an old one)."""
        decision = self.decision(row)
        compact = is_compact(arm_set_ref(row))
        arm_set_id, offer_set_id, formats, time_slots, *_ = self._stored_layout(row)
        product, eligible = self.candidates(row)
        counts = removed_counts(row["removed"])
        removed = removed_arms(product, eligible, decision.pmf, removed=row["removed"], counts=counts,
                               exploration=decision.exploration, no_contact_reason=decision.no_contact_reason,
                               n_formats=len(formats), n_slots=len(time_slots))
        policy = row["policy_pmf"]
        policy_pmf = policy_pmf_of(policy, decision.pmf, compact, float(row["beta"] or 0.0),
                                   lambda: category_codes(decision.arm_set))
        return StoredDecision(decision=decision, compact=compact, arm_set_id=arm_set_id,
                              offer_set_id=offer_set_id, formats=formats, time_slots=time_slots, eligible=eligible,
                              policy_pmf=policy_pmf, policy_pmf_stored=policy is not None,
                              removed=counts, beta=float(row["beta"]),
                              learn_due_at=row["learn_due_at"], key_id=_column(row, "key_id"),
                              features_json=_column(row, "features"), removed_arms=removed)

    def history_record(self, row: Row) -> HistoryRecord | None:
        """What the per-user store needs from a logged decision (None for no_contact)."""
        if not counting.contacted(row):
            return None
        category = next((o.category for o in self.offers.get(self.offer_set_id(row)) if o.id == row["offer_id"]), "")
        return HistoryRecord(user_key=row["user_key"], event_id=row["event_id"], when=counting.shown_at(row),
                             arm=JointArm(row["offer_id"], row["format"], row["time_slot"]), category=category,
                             counted=counting.shown(row), reward=counting.received_reward(row))


def _column(row: Row, name: str) -> object:
    """A column that logs older than its migration may lack (rows then read None)."""
    try:
        return row[name]
    except (IndexError, KeyError):
        return None


def arm_set_ref(row: Row) -> int | str | None:
    """How a row references its arm set: the integer key (schema 4), the text id (compact rows before), None (old)."""
    key = _column(row, "arm_set_key")
    return key if key is not None else _column(row, "arm_set_id")


def fingerprint_of(row: Row) -> str | None:
    """A row's request fingerprint: binary since schema 4, text before, None before fingerprints."""
    blob = _column(row, "request_hash")
    return blob_to_fingerprint(blob) if blob is not None else _column(row, "fingerprint")


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


def final_decision(row: Row, default_reward: float,
                   reward_range: tuple[float, float] | None = None) -> FinalDecision:
    """The numbers of a decision that counts (the reward clipped to ``reward_range`` when given);
    refuses a row whose pmf, arms and choice disagree."""
    compact = is_compact(arm_set_ref(row))
    pmf = served_pmf(row["pmf"], compact, row["chosen_index"], row["probability"])
    if compact:  # the bitmask's set bits (NULL: every candidate, one pmf entry each)
        mask = row["eligible"]
        n_arms = len(pmf) if mask is None else int(np.unpackbits(np.frombuffer(mask, dtype=np.uint8)).sum())
    else:
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

"""Rebuild domain records from decision-log rows: what learning, export, history and OPE read.

They read the decision *as it was logged* (eligible arms, offer snapshot, full pmf), never today's
catalogue.
"""
from __future__ import annotations

import json
import sqlite3
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from policies.history import HistoryRecord
from policies.types import ArmSet, DecisionContext, JointArm, LearningEvent, Offer
from decision_log.sqlite_log import LogReader, blob_to_indices, blob_to_pmf


class OfferSetCache:
    """Offer snapshots by content id; there are few distinct sets, so keep them in a small LRU."""

    def __init__(self, reader: LogReader, size: int = 256) -> None:
        self._reader = reader
        self._size = size
        self._items: OrderedDict[str, tuple[Offer, ...]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, offer_set_id: str) -> tuple[Offer, ...]:
        with self._lock:
            if offer_set_id in self._items:
                self._items.move_to_end(offer_set_id)
                return self._items[offer_set_id]
        offers = self._reader.offer_set(offer_set_id)
        with self._lock:
            self._items[offer_set_id] = offers
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return offers


@dataclass(frozen=True, slots=True)
class LoggedDecision:
    """One decision row decoded: the eligible arm set in logged order, with the served pmf."""

    seq: int
    event_id: str
    campaign: str
    decided_at: float
    context: DecisionContext
    arm_set: ArmSet
    pmf: np.ndarray
    chosen: int | None
    probability: float
    policy_version: str
    exploration: str
    deferred: bool
    activated_at: float | None
    learned_at: float | None
    reward: float | None
    baseline: JointArm | None = None

    @property
    def chosen_arm(self) -> JointArm | None:
        return None if self.chosen is None else self.arm_set.arms[self.chosen]


def decode_row(row: sqlite3.Row, offers: OfferSetCache) -> LoggedDecision:
    offer_list = offers.get(row["offer_set"])
    product = ArmSet.product(offer_list, json.loads(row["formats"]), json.loads(row["time_slots"]))
    eligible = blob_to_indices(row["eligible"])
    arms = tuple(product.arms[i] for i in eligible)
    used = {a.offer_id for a in arms}
    arm_set = ArmSet(arms=arms, offers={o.id: o for o in offer_list if o.id in used})
    context = DecisionContext(user_key=row["user_key"], context=json.loads(row["context"]),
                              numeric=json.loads(row["numeric"]), campaign=row["campaign"])
    return LoggedDecision(
        seq=row["seq"], event_id=row["event_id"], campaign=row["campaign"], decided_at=row["decided_at"],
        context=context, arm_set=arm_set, pmf=blob_to_pmf(row["pmf"]), chosen=row["chosen_index"],
        probability=row["probability"], policy_version=row["policy_version"], exploration=row["exploration"],
        deferred=bool(row["deferred"]), activated_at=row["activated_at"], learned_at=row["learned_at"],
        reward=row["reward"], baseline=JointArm(*json.loads(row["baseline"])) if row["baseline"] else None)


def learning_event(decision: LoggedDecision, default_reward: float) -> LearningEvent | None:
    """The event a policy learns from, or None for decisions that are never learned (no_contact)."""
    if decision.chosen is None:
        return None
    reward = decision.reward if decision.reward is not None else default_reward
    return LearningEvent(context=decision.context, arm_set=decision.arm_set, chosen=decision.chosen,
                         probability=decision.probability, reward=float(reward), pmf=decision.pmf)


def history_record(row: sqlite3.Row, offers: OfferSetCache) -> HistoryRecord | None:
    """What the per-user store needs from a logged decision (None for no_contact)."""
    if row["offer_id"] is None:
        return None
    category = next((o.category for o in offers.get(row["offer_set"]) if o.id == row["offer_id"]), "")
    counted = not row["deferred"] or row["activated_at"] is not None
    when = row["activated_at"] if row["deferred"] and row["activated_at"] is not None else row["decided_at"]
    return HistoryRecord(user_key=row["user_key"], event_id=row["event_id"], when=when,
                         arm=JointArm(row["offer_id"], row["format"], row["time_slot"]), category=category,
                         counted=counted, reward=row["reward"] if row["reward_count"] else None)

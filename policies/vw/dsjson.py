"""DSJSON decision records (as ``vw --dsjson --cb_adf`` reads them), built from the learner's own features,
so an export trains offline VW on exactly what online learning saw."""
from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from offerbandit.checks import check_scalar
from offerbandit.errors import InvalidInput
from policies.types import UNIT_REWARD_RANGE, ArmSet, DecisionContext
from policies.vw.features import (
    CONTEXT_NAMESPACE,
    FORMAT_NAMESPACE,
    MATCH_NAMESPACE,
    NUMERIC_NAMESPACE,
    OFFER_FEATURE_NAMESPACE,
    OFFER_NAMESPACE,
    TIME_NAMESPACE,
    check_context,
    context_features,
    cost_from_reward,
    escape_token,
    match_parts,
    match_tokens,
    offer_parts,
)

__all__ = ["dsjson_context", "dsjson_line", "dsjson_record"]


def _namespace(features: Iterable[str]) -> dict[str, float]:
    return {name: 1 for name in features}


def dsjson_context(context: DecisionContext, arm_set: ArmSet) -> dict[str, Any]:
    """The ``c`` object of a DSJSON record: shared namespaces plus ``_multi`` (one entry per arm, in
    arm order), with the same namespaces and feature names as the text lines the learner uses."""
    check_context(context)
    offer_parts(arm_set)  # validation
    categorical, numeric = context_features(context)
    record: dict[str, Any] = {}
    if categorical:
        record[CONTEXT_NAMESPACE] = _namespace(categorical)
    if numeric:
        record[NUMERIC_NAMESPACE] = {name: value for name, value in numeric}
    multi = []
    matches = match_parts(arm_set, context.customer) or [""] * len(arm_set.arms)
    for arm, match in zip(arm_set.arms, matches):
        offer = arm_set.offers[arm.offer_id]
        action: dict[str, Any] = {OFFER_NAMESPACE: {f"id={escape_token(offer.id)}": 1}}
        if offer.features:
            action[OFFER_FEATURE_NAMESPACE] = _namespace(
                f"{escape_token(key)}={escape_token(value)}" for key, value in sorted(offer.features.items())
            )
        action[FORMAT_NAMESPACE] = {f"format={escape_token(arm.format)}": 1}
        action[TIME_NAMESPACE] = {f"slot={escape_token(arm.time_slot)}": 1}
        if match:
            action[MATCH_NAMESPACE] = match_tokens(match)
        multi.append(action)
    record["_multi"] = multi
    return record


def dsjson_record(*, event_id: str, timestamp: str, context: DecisionContext, arm_set: ArmSet,
                  pmf: Sequence[float], chosen: int, reward: float, skip_learn: bool = False,
                  model_id: str = "", reward_range: tuple[float, float] = UNIT_REWARD_RANGE) -> dict[str, Any]:
    """One DSJSON decision record (as ``vw --dsjson --cb_adf`` reads it) with its joined reward.

    ``a`` lists 1-based action ids with the chosen one first, ``p`` their probabilities in that order;
    the cost is the reward scaled by ``reward_range`` (as online learning scales it).
    """
    n_arms = len(arm_set.arms)
    probabilities = [float(value) for value in pmf]
    if len(probabilities) != n_arms:
        raise InvalidInput(f"pmf has {len(probabilities)} entries for {n_arms} arms", field="pmf")
    if not 0 <= chosen < n_arms:
        raise InvalidInput(f"chosen must index one of {n_arms} arms", field="chosen")
    check_scalar(reward, "reward")
    order = [chosen, *(index for index in range(n_arms) if index != chosen)]
    record: dict[str, Any] = {
        "_label_cost": cost_from_reward(reward, reward_range),
        "_label_probability": probabilities[chosen],
        "_label_Action": chosen + 1,
        "_labelIndex": chosen,
        "o": [{"v": float(reward), "EventId": event_id}],
        "Timestamp": timestamp,
        "Version": "1",
        "EventId": event_id,
        "a": [index + 1 for index in order],
        "c": dsjson_context(context, arm_set),
        "p": [probabilities[index] for index in order],
    }
    if model_id:
        record["VWState"] = {"m": model_id}
    if skip_learn:
        record["_skipLearn"] = True
    return record


def dsjson_line(record: dict[str, Any]) -> str:
    """A DSJSON record as one line (non-ASCII escaped, so a line never contains a raw newline)."""
    return json.dumps(record, separators=(",", ":"), ensure_ascii=True, allow_nan=False)

"""A squared-loss VW reward model on the same joint-arm features as the learner (for DM/DR estimators)."""
from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from offerbandit.checks import check_scalar
from offerbandit.errors import InvalidInput
from policies.types import ArmSet, DecisionContext, LearningEvent
from policies.vw.features import (
    DEFAULT_INTERACTIONS,
    arm_line,
    arm_suffix,
    check_context,
    check_interactions,
    cost_from_reward,
    match_parts,
    offer_parts,
    reward_from_cost,
    shared_line,
)
from policies.vw.learner import check_event
from policies.vw.workspace import DEFAULT_ARM_CACHE_BYTES, ArmExampleCache, new_workspace, parse_example

__all__ = ["RewardRegressorConfig", "VWRewardRegressor"]


@dataclass(frozen=True, slots=True)
class RewardRegressorConfig:
    """Squared-loss regression of reward on (context, joint arm) features with shared x arm interactions."""

    interactions: tuple[str, ...] = DEFAULT_INTERACTIONS
    bits: int = 24
    learning_rate: float = 0.1
    epochs: int = 3
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "interactions", check_interactions(self.interactions))
        check_scalar(self.bits, "bits", int, low=18, high=30)
        check_scalar(self.learning_rate, "learning_rate", low=0.0, low_open=True)
        check_scalar(self.epochs, "epochs", int, low=1)

    def args(self) -> list[str]:
        # cb_adf with the direct method is exactly a squared-loss regressor of cost on shared+arm
        # features; learning on (shared, chosen arm) alone keeps it a plain regression.
        args = ["--cb_adf", "--cb_type", "dm", "-b", str(self.bits), "-l", repr(float(self.learning_rate)),
                "--quiet", "--random_seed", str(self.seed)]
        for interaction in self.interactions:
            args += ["--interactions", interaction]
        return args


class VWRewardRegressor:
    """Expected reward per joint arm, for the DM/DR family of offline estimators (unweighted fit)."""

    def __init__(self, config: RewardRegressorConfig = RewardRegressorConfig(), *,
                 arm_cache_bytes: int = DEFAULT_ARM_CACHE_BYTES) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._vw = new_workspace(config.args())
        self._cache = ArmExampleCache(lambda line: parse_example(self._vw, line), arm_cache_bytes)

    def fit(self, events: Sequence[LearningEvent]) -> "VWRewardRegressor":
        """Regress reward on (context, chosen arm), ``config.epochs`` passes in the given order."""
        checked = [check_event(event, index) for index, event in enumerate(events)]
        with self._lock:
            for _ in range(self.config.epochs):
                for event in checked:
                    check_context(event.context)
                    arm = event.chosen_arm
                    offer = event.arm_set.offers.get(arm.offer_id)
                    if offer is None:
                        raise InvalidInput("the chosen arm refers to an unknown offer", field="events.chosen")
                    label = f"0:{cost_from_reward(event.reward)!r}:1.0"
                    match = match_parts(event.arm_set, event.context.customer)
                    self._vw.learn([shared_line(event.context),
                                    f"{label} {arm_line(arm, offer)}{match[event.chosen] if match else ''}"])
        return self

    def _predict_locked(self, context: DecisionContext, arm_set: ArmSet) -> np.ndarray:
        check_context(context)
        parts = offer_parts(arm_set, self._cache.offer_parts)
        arms = self._cache.examples(arm_set, parts)
        if len({id(example) for example in arms}) != len(arms):
            raise InvalidInput("arm_set contains the same joint arm twice", field="arm_set.arms")
        matches = match_parts(arm_set, context.customer)
        if matches is not None:  # the arms this customer has counts for, parsed with them
            arms = [parse_example(self._vw, f"{parts[arm.offer_id]}{arm_suffix(arm)}{part}") if part else example
                    for arm, example, part in zip(arm_set.arms, arms, matches)]
        costs = self._vw.predict([parse_example(self._vw, shared_line(context)), *arms])
        return np.array([reward_from_cost(cost) for cost in costs], dtype=np.float64)

    def predict(self, context: DecisionContext, arm_set: ArmSet) -> np.ndarray:
        """Estimated expected reward of each arm of ``arm_set`` (shape ``(len(arm_set),)``)."""
        with self._lock:
            return self._predict_locked(context, arm_set)

    def predict_batch(self, items: Sequence[tuple[DecisionContext, ArmSet]]) -> list[np.ndarray]:
        with self._lock:
            return [self._predict_locked(context, arm_set) for context, arm_set in items]

    def close(self) -> None:
        with self._lock:
            self._cache.clear()
            self._vw.finish()

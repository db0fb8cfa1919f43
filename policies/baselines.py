"""Baseline policies under the same contract as ``VWPolicy``: what a learned policy must beat.

- :class:`UniformPolicy`: every eligible arm equally likely.
- :class:`BestSingleArmPolicy` ("mass marketing"): one global best (offer, format, time slot) learned
  from mean logged rewards (plain or self-normalised IPW means), served with epsilon exploration.
- :class:`PerSegmentGreedyPolicy`: the best arm per value of one context key (default ``segment``),
  falling back to the global best for unseen segments, with epsilon exploration.

The epsilon-greedy pmf is exact: ``epsilon / n`` on every arm plus ``1 - epsilon`` on the best arm
(ties go to the first in arm order); with no data for any eligible arm the pmf is uniform.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from offerbandit.checks import check_scalar
from offerbandit.errors import InvalidInput, ModelError
from policies.types import ArmSet, DecisionContext, JointArm, LearningEvent

WEIGHTINGS = ("plain", "ipw")


def check_arm_set(arm_set: ArmSet) -> None:
    """Our own validation of an arm set (the same rules the VW adapter applies)."""
    if not isinstance(arm_set, ArmSet):
        raise InvalidInput("arm_set must be an ArmSet", field="arm_set")
    if len(arm_set.arms) == 0:
        raise InvalidInput("arm_set has no arms", field="arm_set.arms")
    for index, arm in enumerate(arm_set.arms):
        if arm.offer_id not in arm_set.offers:
            raise InvalidInput(f"arm {index} refers to offer {arm.offer_id!r}, which is not among the offers",
                               field=f"arm_set.arms[{index}].offer_id")
    if len(set(arm_set.arms)) != len(arm_set.arms):
        raise InvalidInput("arm_set contains the same joint arm twice", field="arm_set.arms")


def check_context(context: DecisionContext) -> None:
    if not isinstance(context, DecisionContext):
        raise InvalidInput("context must be a DecisionContext", field="context")


def check_events(events: Sequence[LearningEvent]) -> list[LearningEvent]:
    checked = []
    for index, event in enumerate(events):
        if not isinstance(event, LearningEvent):
            raise InvalidInput(f"events[{index}] must be a LearningEvent", field=f"events[{index}]")
        check_context(event.context)
        check_arm_set(event.arm_set)
        check_scalar(event.chosen, f"events[{index}].chosen", int, low=0, high=len(event.arm_set.arms) - 1)
        check_scalar(event.probability, f"events[{index}].probability", low=0.0, high=1.0, low_open=True)
        check_scalar(event.reward, f"events[{index}].reward")
        checked.append(event)
    return checked


def epsilon_greedy_pmf(n_arms: int, best: int | None, epsilon: float) -> np.ndarray:
    """``epsilon`` spread uniformly, the rest on ``best`` (uniform when ``best`` is None)."""
    pmf = np.full(n_arms, 1.0 / n_arms)
    if best is None:
        return pmf
    pmf *= epsilon
    pmf[best] += 1.0 - epsilon
    return pmf / pmf.sum()


def _check_weighting(weighting: str) -> None:
    if weighting not in WEIGHTINGS:
        raise InvalidInput(f"weighting must be one of {', '.join(WEIGHTINGS)}, got {weighting!r}", field="weighting")


class _MeanRewardTable:
    """Weighted mean reward per (group, arm); weight 1 (plain) or 1/probability (ipw)."""

    def __init__(self) -> None:
        self.totals: dict[str, list[float]] = {}  # key -> [sum of weights, sum of weight * reward]

    @staticmethod
    def key(group: str, arm: JointArm) -> str:
        return json.dumps([group, arm.offer_id, arm.format, arm.time_slot])

    def add(self, group: str, arm: JointArm, reward: float, weight: float) -> None:
        total = self.totals.setdefault(self.key(group, arm), [0.0, 0.0])
        total[0] += weight
        total[1] += weight * reward

    def best(self, group: str, arms: Sequence[JointArm]) -> int | None:
        best_index, best_mean = None, -math.inf
        for index, arm in enumerate(arms):
            total = self.totals.get(self.key(group, arm))
            if total is not None and total[0] > 0 and total[1] / total[0] > best_mean:
                best_index, best_mean = index, total[1] / total[0]
        return best_index


class UniformPolicy:
    name = "uniform"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    @property
    def params(self) -> Mapping[str, object]:
        return {"policy": self.name}

    def pmf(self, context: DecisionContext, arm_set: ArmSet) -> np.ndarray:
        check_context(context)
        check_arm_set(arm_set)
        return np.full(len(arm_set.arms), 1.0 / len(arm_set.arms))

    def pmf_batch(self, items: Sequence[tuple[DecisionContext, ArmSet]]) -> list[np.ndarray]:
        return [self.pmf(context, arm_set) for context, arm_set in items]

    def learn(self, events: Sequence[LearningEvent]) -> None:
        check_events(events)

    def save(self) -> bytes:
        return json.dumps({"policy": self.name}).encode()

    @classmethod
    def load(cls, data: bytes) -> "UniformPolicy":
        _decode(data, cls.name)
        return cls()


@dataclass(frozen=True, slots=True)
class BestSingleArmConfig:
    epsilon: float = 0.05
    weighting: str = "plain"

    def __post_init__(self) -> None:
        check_scalar(self.epsilon, "epsilon", low=0.0, high=1.0)
        _check_weighting(self.weighting)


@dataclass(frozen=True, slots=True)
class PerSegmentGreedyConfig:
    segment_key: str = "segment"
    epsilon: float = 0.05
    weighting: str = "plain"

    def __post_init__(self) -> None:
        if not isinstance(self.segment_key, str) or not self.segment_key:
            raise InvalidInput("segment_key must be a non-empty string", field="segment_key")
        check_scalar(self.epsilon, "epsilon", low=0.0, high=1.0)
        _check_weighting(self.weighting)


_GLOBAL = ""


class _GreedyOnMeans:
    """Shared machinery: learn mean rewards per (group, arm), serve epsilon-greedy on them."""

    name = ""
    config: BestSingleArmConfig | PerSegmentGreedyConfig

    def __init__(self) -> None:
        self._table = _MeanRewardTable()

    def _group(self, context: DecisionContext) -> str:
        return _GLOBAL

    @property
    def params(self) -> Mapping[str, object]:
        return {"policy": self.name, **asdict(self.config)}

    def pmf(self, context: DecisionContext, arm_set: ArmSet) -> np.ndarray:
        check_context(context)
        check_arm_set(arm_set)
        best = self._table.best(self._group(context), arm_set.arms)
        if best is None and self._group(context) != _GLOBAL:
            best = self._table.best(_GLOBAL, arm_set.arms)
        return epsilon_greedy_pmf(len(arm_set.arms), best, self.config.epsilon)

    def pmf_batch(self, items: Sequence[tuple[DecisionContext, ArmSet]]) -> list[np.ndarray]:
        return [self.pmf(context, arm_set) for context, arm_set in items]

    def learn(self, events: Sequence[LearningEvent]) -> None:
        for event in check_events(events):
            weight = 1.0 / event.probability if self.config.weighting == "ipw" else 1.0
            arm = event.chosen_arm
            self._table.add(_GLOBAL, arm, event.reward, weight)
            group = self._group(event.context)
            if group != _GLOBAL:
                self._table.add(group, arm, event.reward, weight)

    def save(self) -> bytes:
        return json.dumps({"policy": self.name, "config": asdict(self.config), "totals": self._table.totals},
                          sort_keys=True).encode()

    def _restore(self, state: Mapping[str, object]) -> None:
        totals = state.get("totals")
        if not isinstance(totals, dict):
            raise ModelError(f"saved {self.name} policy has no totals")
        self._table.totals = {str(key): [float(value[0]), float(value[1])] for key, value in totals.items()}


class BestSingleArmPolicy(_GreedyOnMeans):
    name = "best_single_arm"

    def __init__(self, config: BestSingleArmConfig | None = None) -> None:
        super().__init__()
        self.config = config or BestSingleArmConfig()

    @classmethod
    def load(cls, data: bytes) -> "BestSingleArmPolicy":
        state = _decode(data, cls.name)
        policy = cls(_config(BestSingleArmConfig, state))
        policy._restore(state)
        return policy


class PerSegmentGreedyPolicy(_GreedyOnMeans):
    name = "per_segment_greedy"

    def __init__(self, config: PerSegmentGreedyConfig | None = None) -> None:
        super().__init__()
        self.config = config or PerSegmentGreedyConfig()

    def _group(self, context: DecisionContext) -> str:
        # "=" prefix keeps every segment group distinct from the global group ""
        return "=" + context.context.get(self.config.segment_key, "")

    @classmethod
    def load(cls, data: bytes) -> "PerSegmentGreedyPolicy":
        state = _decode(data, cls.name)
        policy = cls(_config(PerSegmentGreedyConfig, state))
        policy._restore(state)
        return policy


def _decode(data: bytes, name: str) -> dict:
    try:
        state = json.loads(bytes(data).decode())
    except (ValueError, TypeError) as exc:
        raise ModelError(f"not a saved {name} policy: {exc}") from exc
    if not isinstance(state, dict) or state.get("policy") != name:
        raise ModelError(f"not a saved {name} policy")
    return state


def _config(config_class, state: Mapping[str, object]):
    try:
        return config_class(**state["config"])  # type: ignore[arg-type]
    except (KeyError, TypeError, InvalidInput) as exc:
        raise ModelError(f"saved policy has a bad config: {exc}") from exc

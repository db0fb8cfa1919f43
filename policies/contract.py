"""The learner contract every policy implements (after coba's Learner): pmf in, learn with the
logged probability, save/load, and a ``params`` description.

A policy only *forms a pmf*; drawing an arm is the sampler's job (`policies/sampler.py`), and
contact rules / novelty mixing happen around it in the decision pipeline.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from policies.types import ArmSet, DecisionContext, LearningEvent


@runtime_checkable
class Policy(Protocol):
    """A stateful learner over joint arms.

    - ``pmf(context, arm_set)`` returns a float64 array of shape ``(len(arm_set),)``, non-negative,
      summing to 1, with every entry > 0 for the arms it may draw. It must not mutate its inputs.
    - ``pmf_batch`` does the same for many decisions at once (policies may do it faster).
    - ``learn(events)`` updates the policy from logged events, using each event's logged
      probability (importance weighting is the policy's business).
    - ``save()`` returns bytes from which ``load`` rebuilds a policy giving identical pmfs.
    - ``params`` describes the configuration (exploration, features, ...) for logging.
    """

    name: str

    @property
    def params(self) -> Mapping[str, object]: ...

    def pmf(self, context: DecisionContext, arm_set: ArmSet) -> np.ndarray: ...

    def pmf_batch(self, items: Sequence[tuple[DecisionContext, ArmSet]]) -> list[np.ndarray]: ...

    def learn(self, events: Sequence[LearningEvent]) -> None: ...

    def save(self) -> bytes: ...

    @classmethod
    def load(cls, data: bytes) -> "Policy": ...

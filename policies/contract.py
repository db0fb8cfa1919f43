"""The learner contract every policy implements (after coba's Learner): pmf in, learn with the
logged probability, save/load, and a ``params`` description.

A policy only *forms a pmf*; drawing an arm is the sampler's job (`policies/sampler.py`), and
contact rules / novelty mixing happen around it in the decision pipeline.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from offerbandit.checks import check_scalar
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


def learn_in_batches(policy: Policy, events: Iterable[LearningEvent], batch_size: int = 256) -> int:
    """Teach ``policy`` a stream of logged events in order, ``batch_size`` at a time (so a stream larger
    than memory can be learned); returns how many it learned. The one way logged events are trained on."""
    size = int(check_scalar(batch_size, "batch_size", int, low=1))
    learned = 0
    batch: list[LearningEvent] = []
    for event in events:
        batch.append(event)
        if len(batch) == size:
            policy.learn(batch)
            learned += len(batch)
            batch = []
    if batch:
        policy.learn(batch)
        learned += len(batch)
    return learned

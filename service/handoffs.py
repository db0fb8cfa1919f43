"""What the engine hands to the background roles after a commit, and the sinks it hands it to.

Built by ``service.bootstrap`` before the engine and passed in, so the engine never knows who listens.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from policies.types import ArmSet, DecisionContext

__all__ = ["DISCARD", "LearnableSink", "ShadowItem", "ShadowSink"]


@dataclass(frozen=True, slots=True)
class ShadowItem:
    """A committed decision for the challenger to score off the request path."""

    event_id: str
    campaign: str
    context: DecisionContext
    arm_set: ArmSet
    chosen: int


class LearnableSink(Protocol):
    """Where the engine hands the log sequence numbers of events a reward made learnable."""

    def enqueue(self, seqs: Sequence[int]) -> None: ...


class ShadowSink(Protocol):
    """Where the engine hands committed decisions for the challenger to score; must not block."""

    def offer(self, items: list[ShadowItem]) -> None: ...


class _Discard:
    """The sink of an engine running without a learner or shadow scorer (benchmarks)."""

    def enqueue(self, seqs: Sequence[int]) -> None:
        pass

    def offer(self, items: list[ShadowItem]) -> None:
        pass


DISCARD = _Discard()

"""One logged decision, inspected: what ``GetDecision`` and ``offerbandit show-decision`` answer.

Read from the log on the caller's thread (a reader connection; never the learner's or the writer's):
the decision as it was returned — built from the stored row the way a repeat is answered
(`service.log_records.record_of`), with the full logged pmf as its ranking — every candidate arm that was not
offered with the first rule that removed it (`decision_log.reasons`), and the counted received reward.
"""
from __future__ import annotations

from dataclasses import dataclass

from decision_log import DecisionLog, RemovedArm, StoredDecision
from offerbandit.errors import NotFound
from offers.v1 import decision_pb2 as pb
from service.answers import to_proto
from service.log_records import record_of
from service.outcomes import DecisionOutcome

__all__ = ["DecisionInspection", "inspect_decision", "record_message"]


@dataclass(frozen=True, slots=True)
class DecisionInspection:
    """``outcome``: the decision as returned (ranking: the full logged pmf); ``removed``: the candidates not
    offered and their rules; ``rewarded``: a reward was received; ``reward``: the counted received reward
    (0 if none: a default learned at window close is not a received reward); ``stored``: the decoded row."""

    outcome: DecisionOutcome
    removed: tuple[RemovedArm, ...]
    rewarded: bool
    reward: float
    stored: StoredDecision


def inspect_decision(log: DecisionLog, event_id: str) -> DecisionInspection:
    """The logged decision of ``event_id`` (NotFound when the log has none; LogUnavailable on a fault)."""
    stored = log.stored_decision(event_id)
    if stored is None:
        raise NotFound(f"no decision with event_id {event_id!r} in the log")
    decision = stored.decision
    rewarded = bool(decision.rewarded) and decision.reward is not None
    return DecisionInspection(outcome=record_of(decision).outcome(0), removed=stored.removed_arms,
                              rewarded=rewarded, reward=float(decision.reward) if rewarded else 0.0,
                              stored=stored)


def record_message(found: DecisionInspection) -> pb.DecisionRecord:
    """The ``DecisionRecord`` message of an inspected decision (GetDecision's answer; ``show-decision --json``)."""
    removed = [pb.RemovedArm(arm=pb.Arm(offer_id=r.arm.offer_id, format=r.arm.format, time_slot=r.arm.time_slot),
                             rule=r.rule) for r in found.removed]
    return pb.DecisionRecord(decision=to_proto(found.outcome), removed=removed, rewarded=found.rewarded,
                             reward=found.reward)

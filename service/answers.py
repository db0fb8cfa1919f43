"""The wire bytes of ``Decision`` and ``DecideBatchResponse``, built from per-arm-set templates.

Building a ``Decision`` message with a full 128-arm ranking costs ~150 µs in protobuf's Python API (one
``Arm`` object per entry); the same bytes built here cost a few tens of µs: every candidate arm's ranking
entry (tag, length, ``offer_id``, ``format``, ``time_slot``, the probability's tag) is encoded once per
candidate set and cached, and an answer joins the entries of its ranking in order with their 8-byte
probabilities. The output is byte for byte what ``SerializeToString`` gives (proto3: empty strings and
zero numbers omitted, fields in number order); ``tests/service/test_answers.py`` checks it.

The servicer returns these bytes and ``wire_guard`` sends them as they are.
"""
from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np

from offers.v1 import decision_pb2 as pb
from offerbandit.checks import check_scalar
from policies.bounded import IdentityLRU
from policies.types import ArmSet, JointArm
from service.outcomes import DecisionOutcome, Ranking

__all__ = ["AnswerEncoder", "encode_varint", "to_proto"]

_PACK_DOUBLE = struct.Struct("<d").pack
# Decision's field tags (offers/v1/decision.proto): (number << 3) | wire type
_EVENT_ID, _OFFER_ID, _FORMAT, _TIME_SLOT = b"\x0a", b"\x12", b"\x1a", b"\x22"
_PROBABILITY, _RANKING, _POLICY_VERSION, _EXPLORATION = b"\x29", b"\x32", b"\x3a", b"\x42"
_CAMPAIGN, _NO_CONTACT_REASON = b"\x4a", b"\x52"
_ARM_PROBABILITY = b"\x21"  # Arm.probability (field 4, fixed64)
_BATCH_DECISIONS = b"\x0a"  # DecideBatchResponse.decisions (field 1)
_ENTRY_OVERHEAD = 160  # Python bytes object and list slot per cached entry


def to_proto(outcome: DecisionOutcome) -> pb.Decision:
    """The ``Decision`` message of ``outcome`` (the servicer sends `AnswerEncoder` bytes; equal to these)."""
    arm = outcome.arm
    return pb.Decision(
        event_id=outcome.event_id,
        offer_id=arm.offer_id if arm else "",
        format=arm.format if arm else "",
        time_slot=arm.time_slot if arm else "",
        probability=outcome.probability,
        ranking=[pb.Arm(offer_id=a.offer_id, format=a.format, time_slot=a.time_slot, probability=p)
                 for a, p in outcome.ranking],
        policy_version=outcome.policy_version,
        exploration=outcome.exploration,
        campaign=outcome.campaign,
        no_contact_reason=outcome.no_contact_reason,
    )


def encode_varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _text(tag: bytes, value: str) -> bytes:
    if not value:
        return b""
    data = value.encode("utf-8")
    return tag + encode_varint(len(data)) + data


def _arm_fields(arm: JointArm) -> bytes:
    return _text(b"\x0a", arm.offer_id) + _text(b"\x12", arm.format) + _text(b"\x1a", arm.time_slot)


def _entry_heads(arm_set: ArmSet) -> list[bytes]:
    """Per arm: the ranking entry up to its probability's 8 bytes (the probability is never 0 in a ranking)."""
    heads = []
    for arm in arm_set.arms:
        fields = _arm_fields(arm)
        heads.append(_RANKING + encode_varint(len(fields) + 9) + fields + _ARM_PROBABILITY)
    return heads


class AnswerEncoder:
    """Encodes answers; keeps the entry templates of recently used candidate sets (by identity: they are
    shared, immutable objects) within ``max_bytes``."""

    def __init__(self, max_bytes: int) -> None:
        check_scalar(max_bytes, "server.candidate_cache_bytes", int, low=0)
        self._templates: IdentityLRU[ArmSet, list[bytes]] = IdentityLRU(
            max_bytes, _entry_heads, lambda heads: sum(len(h) for h in heads) + _ENTRY_OVERHEAD * len(heads))

    @property
    def nbytes(self) -> int:
        return self._templates.nbytes

    def _ranking(self, ranking: Ranking) -> bytes:
        if not len(ranking):
            return b""
        heads = self._templates.get(ranking.arms)
        parts: list[bytes | None] = [None] * (2 * len(ranking))
        parts[0::2] = map(heads.__getitem__, ranking.positions.tolist())
        parts[1::2] = map(_PACK_DOUBLE, np.asarray(ranking.probabilities, dtype=np.float64).tolist())
        return b"".join(parts)  # type: ignore[arg-type]

    def decision(self, outcome: DecisionOutcome) -> bytes:
        """The serialized ``Decision`` of ``outcome``."""
        arm = outcome.arm
        head = _text(_EVENT_ID, outcome.event_id)
        if arm is not None:
            head += _text(_OFFER_ID, arm.offer_id) + _text(_FORMAT, arm.format) + _text(_TIME_SLOT, arm.time_slot)
        if outcome.probability != 0.0:
            head += _PROBABILITY + _PACK_DOUBLE(outcome.probability)
        tail = (_text(_POLICY_VERSION, outcome.policy_version) + _text(_EXPLORATION, outcome.exploration)
                + _text(_CAMPAIGN, outcome.campaign) + _text(_NO_CONTACT_REASON, outcome.no_contact_reason))
        return head + self._ranking(outcome.ranking) + tail

    def batch(self, outcomes: Sequence[DecisionOutcome]) -> bytes:
        """The serialized ``DecideBatchResponse`` of ``outcomes``, in order."""
        parts = []
        for outcome in outcomes:
            body = self.decision(outcome)
            parts.append(_BATCH_DECISIONS + encode_varint(len(body)))
            parts.append(body)
        return b"".join(parts)

"""The servicer's hand-built answer bytes are exactly protobuf's, and the ranking carries what the log keeps."""
from __future__ import annotations

import numpy as np
import pytest

from offers.v1 import decision_pb2 as pb
from policies.types import ArmSet, Offer
from service.answers import AnswerEncoder, encode_varint
from service.outcomes import NO_RANKING, DecisionOutcome, ranking_of
from service.servicer import to_proto
from tests.conftest import make_request

OFFERS = (Offer("o1", {"category": "food"}), Offer("offre-é", {"category": "travel"}), Offer("o3"))
ARMS = ArmSet.product(OFFERS, ("sms", "email"), ("morning", "evening", "nuit-ünicode"))


def _outcome(pmf: np.ndarray, limit: int = 0, chosen: int = 2, **fields: object) -> DecisionOutcome:
    values = {"event_id": "ev-1", "campaign": "default", "policy_version": "7", "exploration": "exploit",
              "no_contact_reason": ""}
    values.update(fields)
    ranking = ranking_of(ARMS, pmf, limit, chosen=chosen, probability=float(pmf[chosen]))
    return DecisionOutcome(values["event_id"], values["campaign"], ARMS.arms[chosen], float(pmf[chosen]), ranking,
                           values["policy_version"], values["exploration"], values["no_contact_reason"])


def _pmf(seed: int, zeros: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pmf = rng.random(len(ARMS))
    pmf[rng.choice(len(ARMS), zeros, replace=False)] = 0.0
    return pmf / pmf.sum()


@pytest.mark.parametrize("limit", [0, 1, 5])
@pytest.mark.parametrize("zeros", [0, 4])
def test_a_decision_is_encoded_byte_for_byte_as_protobuf_does(limit, zeros):
    pmf = _pmf(limit * 10 + zeros, zeros)
    chosen = int(np.flatnonzero(pmf)[0])
    outcome = _outcome(pmf, limit, chosen=chosen)
    assert AnswerEncoder(1 << 20).decision(outcome) == to_proto(outcome).SerializeToString()


def test_empty_fields_and_no_contact_are_left_out_like_protobuf():
    outcome = DecisionOutcome("", "", None, 1.0, NO_RANKING, "", "no_contact", "cap")
    encoded = AnswerEncoder(1 << 20).decision(outcome)
    assert encoded == to_proto(outcome).SerializeToString()
    message = pb.Decision.FromString(encoded)
    assert (message.probability, len(message.ranking), message.no_contact_reason) == (1.0, 0, "cap")


def test_a_batch_is_encoded_like_decide_batch_response():
    outcomes = [_outcome(_pmf(seed), limit=seed % 3, event_id=f"ev-{seed}") for seed in range(5)]
    outcomes.append(DecisionOutcome("ev-x", "default", None, 1.0, NO_RANKING, "7", "no_contact", "quiet_hours"))
    encoded = AnswerEncoder(1 << 20).batch(outcomes)
    expected = pb.DecideBatchResponse(decisions=[to_proto(o) for o in outcomes]).SerializeToString()
    assert encoded == expected


def test_long_rankings_use_multi_byte_lengths():
    offers = tuple(Offer(f"offer-{i:03d}-" + "x" * 40) for i in range(60))
    arms = ArmSet.product(offers, ("sms", "email"), ("morning", "noon", "evening"))
    pmf = np.full(len(arms), 1.0 / len(arms))
    ranking = ranking_of(arms, pmf, chosen=7, probability=pmf[7])
    outcome = DecisionOutcome("e" * 200, "c", arms.arms[7], float(pmf[7]), ranking, "v", "explore")
    assert AnswerEncoder(1 << 20).decision(outcome) == to_proto(outcome).SerializeToString()
    assert encode_varint(300) == b"\xac\x02" and encode_varint(0) == b"\x00"


def test_ranking_entries_are_float32_and_the_chosen_one_exact_and_sorted():
    pmf = _pmf(3)
    chosen = 4
    ranking = ranking_of(ARMS, pmf, chosen=chosen, probability=float(pmf[chosen]))
    by_arm = dict(ranking)
    assert by_arm[ARMS.arms[chosen]] == float(pmf[chosen])
    others = [i for i in range(len(ARMS)) if i != chosen]
    assert all(by_arm[ARMS.arms[i]] == float(np.float32(pmf[i])) for i in others)
    assert any(by_arm[ARMS.arms[i]] != pmf[i] for i in others)  # rounded, not the float64 values
    values = [p for _, p in ranking]
    assert values == sorted(values, reverse=True)


def test_the_template_cache_is_bounded_in_bytes():
    encoder = AnswerEncoder(6_000)
    sets = [ArmSet.product((Offer(f"o{i}"), Offer(f"p{i}")), ("sms", "email"), ("morning", "evening"))
            for i in range(40)]
    for arms in sets:
        pmf = np.full(len(arms), 1.0 / len(arms))
        outcome = DecisionOutcome("e", "c", arms.arms[0], float(pmf[0]), ranking_of(arms, pmf), "v", "explore")
        assert encoder.decision(outcome) == to_proto(outcome).SerializeToString()
        assert encoder.nbytes <= 6_000
    assert 0 < encoder.nbytes
    tiny = AnswerEncoder(0)  # nothing cached, answers still right
    outcome = _outcome(_pmf(1))
    assert tiny.decision(outcome) == to_proto(outcome).SerializeToString() and tiny.nbytes == 0


def test_the_server_answers_parse_to_the_logged_decision(served):
    decision = served.stub.Decide(make_request(event_id="ans-1"), timeout=10)
    again = served.stub.Decide(make_request(event_id="ans-1"), timeout=10)
    assert again == decision  # a repeat answers the same bytes' worth
    assert decision.probability == dict(((a.offer_id, a.format, a.time_slot), a.probability)
                                        for a in decision.ranking)[(decision.offer_id, decision.format,
                                                                    decision.time_slot)]
    batch = served.stub.DecideBatch(pb.DecideBatchRequest(requests=[make_request(event_id=f"ans-b{i}")
                                                                    for i in range(3)]), timeout=10)
    assert [d.event_id for d in batch.decisions] == ["ans-b0", "ans-b1", "ans-b2"]
    assert all(len(d.ranking) > 0 and d.policy_version for d in batch.decisions)

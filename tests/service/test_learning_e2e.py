"""Online learning through the real server on a simulated world with a context-dependent best arm."""
from __future__ import annotations

import time

import numpy as np
import pytest

from offers.v1 import decision_pb2 as pb
from tests.conftest import make_request

OFFERS = [("o1", {"category": "travel"}), ("o2", {"category": "food"}), ("o3", {"category": "tech"})]
FORMATS = ["sms", "email"]
SLOTS = ["morning", "evening"]
# Each segment has its own best (offer, format, time slot); no single arm is best for everyone.
BEST = {"commuter": ("o1", "sms", "morning"), "family": ("o2", "email", "evening"),
        "student": ("o3", "sms", "evening"), "retiree": ("o1", "email", "morning")}
P_BEST, P_OTHER = 0.6, 0.1


def response_probability(segment: str, arm: tuple[str, str, str]) -> float:
    return P_BEST if BEST[segment] == arm else P_OTHER


@pytest.mark.slow
def test_online_learning_beats_uniform_and_mass_marketing(start_server):
    served = start_server("[privacy]\nuser_hash_key = \"fixed-test-key-learning\"\n")
    rng = np.random.default_rng(7)
    segments = sorted(BEST)
    arms = [(o, f, t) for o, _ in OFFERS for f in FORMATS for t in SLOTS]
    mass_value = max(np.mean([response_probability(s, a) for s in segments]) for a in arms)
    uniform_value = np.mean([response_probability(s, a) for s in segments for a in arms])
    learned: list[float] = []
    for batch in range(40):
        users = [(f"user{rng.integers(1000)}", segments[rng.integers(4)]) for _ in range(50)]
        response = served.stub.DecideBatch(pb.DecideBatchRequest(requests=[
            make_request(user=u, context={"segment": s}, offers=OFFERS, formats=FORMATS, slots=SLOTS,
                         event_id=f"e{batch}-{i}")
            for i, (u, s) in enumerate(users)]), timeout=30)
        for (user, segment), decision in zip(users, response.decisions):
            p = response_probability(segment, (decision.offer_id, decision.format, decision.time_slot))
            learned.append(p)
            served.stub.Reward(pb.RewardRequest(event_id=decision.event_id, value=float(rng.random() < p)),
                               timeout=10)
        # learned before the next batch, so the run is deterministic (fixed key and event ids seed the draws)
        assert served.server.learner.wait_idle(60)
    assert served.server.learner.learned == 2000  # every rewarded event learned exactly once
    late = np.array(learned[1000:])  # true response probabilities of the arms served
    stderr = late.std(ddof=1) / np.sqrt(len(late))
    for name, value in (("mass marketing", mass_value), ("uniform", uniform_value)):
        assert late.mean() - value > 6 * stderr, f"vs {name}: {late.mean():.3f} vs {value:.3f} +- {stderr:.3f}"
        assert late.mean() > value + 0.1, f"vs {name}: {late.mean():.3f} vs {value:.3f}"
    print(f"learned {late.mean():.3f} vs mass {mass_value:.3f} vs uniform {uniform_value:.3f}")


def test_a_reward_changes_later_decisions_within_seconds(served):
    context = {"segment": "learner-probe"}
    request = make_request(user="probe", context=context)
    before = {(a.offer_id, a.format, a.time_slot): a.probability
              for a in served.stub.Decide(request, timeout=10).ranking}
    for i in range(30):
        decision = served.stub.Decide(make_request(user=f"probe{i}", context=context), timeout=10)
        value = 1.0 if decision.offer_id == "o2" else 0.0
        served.stub.Reward(pb.RewardRequest(event_id=decision.event_id, value=value), timeout=10)
    deadline = time.time() + 30
    while served.server.learner.learned < 30 and time.time() < deadline:
        time.sleep(0.05)
    assert served.server.learner.learned == 30
    after = {(a.offer_id, a.format, a.time_slot): a.probability
             for a in served.stub.Decide(make_request(user="probe", context=context), timeout=10).ranking}
    mass = lambda pmf: sum(p for (offer, _, _), p in pmf.items() if offer == "o2")  # noqa: E731
    assert mass(after) > mass(before) + 0.2, (mass(before), mass(after))

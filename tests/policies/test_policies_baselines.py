"""Baselines: exact epsilon-greedy pmfs, what they learn, validation, registry."""
import numpy as np
import pytest

from policies.baselines import (
    BestSingleArmConfig,
    BestSingleArmPolicy,
    PerSegmentGreedyConfig,
    PerSegmentGreedyPolicy,
    UniformPolicy,
    epsilon_greedy_pmf,
)
from offerbandit.errors import InvalidInput, ModelError
from policies.factory import load_policy, make_policy, policy_names
from policies.types import ArmSet, DecisionContext, LearningEvent, Offer

OFFERS = [Offer(f"o{i}") for i in range(3)]
ARMS = ArmSet.product(OFFERS, ["sms", "email"], ["am"])  # 6 arms


def event(segment: str, chosen: int, reward: float, probability: float = 0.5) -> LearningEvent:
    return LearningEvent(DecisionContext("u", {"segment": segment}), ARMS, chosen, probability, reward)


def test_uniform_is_uniform():
    pmf = UniformPolicy().pmf(DecisionContext("u"), ARMS)
    np.testing.assert_array_equal(pmf, np.full(6, 1 / 6))


def test_epsilon_greedy_pmf_is_exact():
    pmf = epsilon_greedy_pmf(4, 2, 0.2)
    np.testing.assert_allclose(pmf, [0.05, 0.05, 0.85, 0.05], rtol=0, atol=1e-15)
    np.testing.assert_array_equal(epsilon_greedy_pmf(4, None, 0.2), np.full(4, 0.25))


def test_best_single_arm_learns_the_global_best_plain_mean():
    policy = BestSingleArmPolicy(BestSingleArmConfig(epsilon=0.1))
    policy.learn([event("a", 1, 1.0), event("a", 1, 0.0), event("b", 4, 1.0), event("b", 4, 1.0), event("b", 0, 0.2)])
    pmf = policy.pmf(DecisionContext("u", {"segment": "a"}), ARMS)
    assert int(np.argmax(pmf)) == 4 and pmf[4] == pytest.approx(0.9 + 0.1 / 6)
    assert policy.pmf(DecisionContext("u", {"segment": "zzz"}), ARMS)[4] == pmf[4]  # no context used


def test_ipw_weighting_uses_the_logged_probability():
    # arm 1: rewards 1 (p=0.9) and 0 (p=0.1): plain mean 0.5, SN-IPW mean (1/0.9) / (1/0.9 + 10) = 0.1
    # arm 2: reward 0.3 (p=0.5)
    events = [event("a", 1, 1.0, 0.9), event("a", 1, 0.0, 0.1), event("a", 2, 0.3, 0.5)]
    plain, ipw = BestSingleArmPolicy(BestSingleArmConfig(weighting="plain")), BestSingleArmPolicy(
        BestSingleArmConfig(weighting="ipw"))
    plain.learn(events)
    ipw.learn(events)
    context = DecisionContext("u")
    assert int(np.argmax(plain.pmf(context, ARMS))) == 1
    assert int(np.argmax(ipw.pmf(context, ARMS))) == 2


def test_per_segment_greedy_learns_each_segment_and_falls_back_to_global():
    policy = PerSegmentGreedyPolicy(PerSegmentGreedyConfig(epsilon=0.0))
    policy.learn([event("a", 0, 1.0), event("a", 3, 0.2), event("b", 3, 0.9), event("b", 0, 0.0)])
    assert int(np.argmax(policy.pmf(DecisionContext("u", {"segment": "a"}), ARMS))) == 0
    assert int(np.argmax(policy.pmf(DecisionContext("u", {"segment": "b"}), ARMS))) == 3
    # unseen segment: global means are arm 3 -> 0.55, arm 0 -> 0.5
    assert int(np.argmax(policy.pmf(DecisionContext("u", {"segment": "new"}), ARMS))) == 3


def test_custom_segment_key():
    policy = PerSegmentGreedyPolicy(PerSegmentGreedyConfig(segment_key="device", epsilon=0.0))
    policy.learn([LearningEvent(DecisionContext("u", {"device": "ios"}), ARMS, 2, 0.5, 1.0),
                  LearningEvent(DecisionContext("u", {"device": "web"}), ARMS, 5, 0.5, 1.0)])
    assert int(np.argmax(policy.pmf(DecisionContext("u", {"device": "web"}), ARMS))) == 5


def test_best_arm_among_the_eligible_ones_only():
    policy = BestSingleArmPolicy(BestSingleArmConfig(epsilon=0.0))
    policy.learn([event("a", 0, 1.0), event("a", 5, 0.5)])
    subset = ArmSet(ARMS.arms[3:], ARMS.offers)
    assert int(np.argmax(policy.pmf(DecisionContext("u"), subset))) == 2


@pytest.mark.parametrize("build, field", [
    (lambda: BestSingleArmConfig(epsilon=-0.1), "epsilon"), (lambda: BestSingleArmConfig(epsilon=True), "epsilon"),
    (lambda: BestSingleArmConfig(weighting="snips"), "weighting"),
    (lambda: PerSegmentGreedyConfig(segment_key=""), "segment_key"),
    (lambda: PerSegmentGreedyConfig(epsilon=2), "epsilon"),
    (lambda: make_policy("nope"), "policy"), (lambda: make_policy("vw", epsilonn=0.1), "epsilonn"),
    (lambda: make_policy("uniform", epsilon=0.1), "epsilon"),
    (lambda: make_policy("best_single_arm", segment_key="x"), "segment_key"),
])
def test_invalid_configs_name_the_field(build, field):
    with pytest.raises(InvalidInput) as caught:
        build()
    assert caught.value.field == field


def test_registry_round_trips_every_policy_by_name():
    assert set(policy_names()) == {"vw", "uniform", "best_single_arm", "per_segment_greedy"}
    for name in policy_names():
        policy = make_policy(name, **({"bits": 18} if name == "vw" else {}))
        policy.learn([event("a", 1, 1.0)])
        restored = load_policy(name, policy.save())
        assert type(restored) is type(policy) and restored.name == name
        np.testing.assert_array_equal(restored.pmf(DecisionContext("u", {"segment": "a"}), ARMS),
                                      policy.pmf(DecisionContext("u", {"segment": "a"}), ARMS))
    with pytest.raises(ModelError):
        load_policy("best_single_arm", UniformPolicy().save())

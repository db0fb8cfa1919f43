"""VWPolicy: config validation, exact pmf from VW, sampling statistics and learning in a synthetic world."""
import numpy as np
import pytest

from policies.baselines import BestSingleArmPolicy, BestSingleArmConfig, UniformPolicy
from policies.conformance import check_draws_follow_mixture, served_mixture
from policies.contract import Policy
from policies.novelty import novelty_mixture
from policies.sampler import two_stage_draw
from offerbandit.errors import InvalidInput, ModelError
from policies.types import ArmSet, DecisionContext, LearningEvent, Offer
from policies.vw.policy import VWPolicy, VWPolicyConfig, finalise_pmf

SEGMENTS = 4
OFFERS = [Offer(f"offer-{i}", {"category": f"cat-{i % 3}"}) for i in range(8)]
FORMATS = ["sms", "email", "push"]
SLOTS = ["morning", "lunch", "evening"]
ARMS = ArmSet.product(OFFERS, FORMATS, SLOTS)  # 72 joint arms


def expected_reward(segment: int, arm) -> float:
    """Each segment has its own best (offer, format, slot); the effect is additive in the features."""
    return (0.05 + 0.25 * (arm.offer_id == f"offer-{2 * segment}")
            + 0.25 * (arm.format == FORMATS[segment % 3]) + 0.25 * (arm.time_slot == SLOTS[(segment + 1) % 3]))


def run_world(policy: Policy, rounds: int, seed: int, batch: int = 20) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rewards, pending = np.empty(rounds), []
    for step in range(rounds):
        segment = int(rng.integers(SEGMENTS))
        context = DecisionContext(f"user-{rng.integers(10_000)}", {"segment": f"s{segment}",
                                  "device": ("ios", "android")[int(rng.integers(2))]}, {"tenure": float(rng.random())})
        pmf = policy.pmf(context, ARMS)
        chosen = int(rng.choice(len(pmf), p=pmf))
        rewards[step] = float(rng.random() < expected_reward(segment, ARMS.arms[chosen]))
        pending.append(LearningEvent(context, ARMS, chosen, float(pmf[chosen]), rewards[step], pmf))
        if len(pending) == batch:
            policy.learn(pending)
            pending = []
    return rewards


def test_online_vw_clearly_beats_uniform_and_best_single_arm():
    rounds, tail = 4000, 2000
    vw = run_world(VWPolicy(VWPolicyConfig(bits=18, seed=1)), rounds, seed=7)[-tail:]
    uniform = run_world(UniformPolicy(), rounds, seed=7)[-tail:]
    single = run_world(BestSingleArmPolicy(BestSingleArmConfig(epsilon=0.05)), rounds, seed=7)[-tail:]
    for name, baseline in (("uniform", uniform), ("best_single_arm", single)):
        difference = vw.mean() - baseline.mean()
        standard_error = np.sqrt(vw.var(ddof=1) / tail + baseline.var(ddof=1) / tail)
        assert difference > 6 * standard_error, (name, vw.mean(), baseline.mean(), standard_error)
    best_possible = 0.8
    assert vw.mean() > 0.5 * best_possible


def test_draws_from_a_frozen_pmf_match_it():
    policy = VWPolicy(VWPolicyConfig(exploration="squarecb", bits=18, seed=2))
    run_world(policy, 600, seed=3)
    context = DecisionContext("u", {"segment": "s1", "device": "ios"}, {"tenure": 0.5})
    pmf = policy.pmf(context, ARMS)
    for _ in range(5):  # frozen: no hidden randomness in prediction
        np.testing.assert_array_equal(policy.pmf(context, ARMS), pmf)
    assert pmf.max() < 0.99 and (pmf > 0).sum() > 10, "want a pmf with real spread"
    # drawn by the project's sampler (seeded two-stage draw), as the server draws, not by numpy's choice;
    # with and without a novelty component over the arms of one offer in three
    check_draws_follow_mixture(two_stage_draw, served_mixture(pmf), n_draws=50_000, seed=4)
    outside = np.array([ARMS.offer_of(arm).id in ("offer-0", "offer-3", "offer-6") for arm in ARMS.arms])
    check_draws_follow_mixture(two_stage_draw, novelty_mixture(pmf, outside, 0.2, 0.1), n_draws=50_000, seed=5)


def test_epsilon_pmf_has_vw_shape():
    policy = VWPolicy(VWPolicyConfig(exploration="epsilon", epsilon=0.2, bits=18))
    run_world(policy, 400, seed=5)
    pmf = policy.pmf(DecisionContext("u", {"segment": "s0"}), ARMS)
    best = int(np.argmax(pmf))
    np.testing.assert_allclose(np.delete(pmf, best), 0.2 / len(ARMS), rtol=1e-6)
    assert pmf[best] == pytest.approx(0.8 + 0.2 / len(ARMS), rel=1e-6)
    assert pmf.sum() == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("exploration", ["epsilon", "softmax", "squarecb", "bag", "cover"])
def test_every_exploration_serves_512_arms(exploration):
    offers = [Offer(f"o{i}", {"category": f"c{i % 5}"}) for i in range(64)]
    arm_set = ArmSet.product(offers, ["sms", "email", "push", "in_app"], ["morning", "evening"])
    policy = VWPolicy(VWPolicyConfig(exploration=exploration, bits=18, bag_size=3, cover_size=3))
    context = DecisionContext("u", {"segment": "s0"})
    policy.learn([LearningEvent(context, arm_set, 100, 1 / 512, 1.0)] * 5)
    pmfs = policy.pmf_batch([(context, arm_set)] * 3)
    for pmf in pmfs:
        assert pmf.shape == (512,) and abs(pmf.sum() - 1) <= 1e-9 and (pmf >= 0).all()
        np.testing.assert_array_equal(pmf, pmfs[0])


def test_finalise_only_rescales():
    raw = np.array([0.5, 0.0, 0.49999997], dtype=np.float32)
    pmf = finalise_pmf(raw)
    assert pmf[1] == 0.0 and pmf.sum() == pytest.approx(1.0, abs=1e-15)
    np.testing.assert_allclose(pmf, raw.astype(np.float64), rtol=1e-6)
    for broken in ([0.0, 0.0], [np.nan, 1.0], [-0.1, 1.1]):
        with pytest.raises(ModelError):
            finalise_pmf(np.array(broken))


@pytest.mark.parametrize("changes, field", [
    (dict(exploration="thompson"), "exploration"), (dict(epsilon=1.01), "epsilon"), (dict(epsilon="0.1"), "epsilon"),
    (dict(softmax_lambda=-1.0), "softmax_lambda"), (dict(squarecb_gamma_scale=float("nan")), "squarecb_gamma_scale"),
    (dict(bag_size=0), "bag_size"), (dict(cover_size=101), "cover_size"), (dict(bits=17), "bits"),
    (dict(bits=31), "bits"), (dict(learning_rate=-0.5), "learning_rate"), (dict(seed=1.5), "seed"),
    (dict(interactions="uo"), "interactions"), (dict(interactions=("u1",)), "interactions"),
    (dict(cb_type="dm"), "cb_type"),
])
def test_config_rejects_bad_values_naming_the_field(changes, field):
    with pytest.raises(InvalidInput) as caught:
        VWPolicyConfig(**changes)
    assert caught.value.field == field


def test_config_from_dict_rejects_unknown_fields_and_round_trips():
    config = VWPolicyConfig(exploration="softmax", softmax_lambda=3.0, interactions=("uo", "ft"))
    assert VWPolicyConfig.from_dict(config.to_dict()) == config
    with pytest.raises(InvalidInput) as caught:
        VWPolicyConfig.from_dict({"epsilonn": 0.1})
    assert caught.value.field == "epsilonn"


def test_params_report_the_config_and_survive_save_load():
    policy = VWPolicy(VWPolicyConfig(exploration="squarecb", squarecb_gamma_scale=20.0, bits=18))
    assert policy.params["exploration"] == "squarecb" and policy.params["squarecb_gamma_scale"] == 20.0
    restored = VWPolicy.load(policy.save())
    assert restored.config == policy.config
    truncated = policy.save()[:30]
    with pytest.raises(ModelError):
        VWPolicy.load(truncated)

"""Learning modes: exact logging-only pmfs and the apprentice gate."""
import numpy as np
import pytest

from offerbandit.errors import InvalidInput
from policies.modes import ApprenticeGate, ModeConfig, logging_only_pmf, served_pmf
from policies.types import ArmSet, DecisionContext, LearningEvent, Offer

ARMS = ArmSet.product([Offer("a"), Offer("b")], ["sms", "email"], ["am"])  # 4 arms


def test_logging_only_pmf_is_exact():
    np.testing.assert_allclose(logging_only_pmf(4, epsilon=0.05, baseline_index=2),
                               [0.0125, 0.0125, 0.9625, 0.0125], rtol=0, atol=1e-15)
    fixed = np.array([0.5, 0.5, 0.0, 0.0])
    np.testing.assert_allclose(logging_only_pmf(4, epsilon=0.2, fixed_pmf=fixed), [0.45, 0.45, 0.05, 0.05])
    np.testing.assert_array_equal(logging_only_pmf(4, epsilon=0.05), np.full(4, 0.25))


@pytest.mark.parametrize("kwargs, field", [
    (dict(n_arms=0, epsilon=0.05), "n_arms"), (dict(n_arms=4, epsilon=1.5), "epsilon"),
    (dict(n_arms=4, epsilon=0.05, baseline_index=4), "baseline_index"),
    (dict(n_arms=4, epsilon=0.05, fixed_pmf=np.array([1.0, 1.0, 0.0, 0.0])), "fixed_pmf"),
    (dict(n_arms=4, epsilon=0.05, fixed_pmf=np.array([1.0, 0.0])), "fixed_pmf"),
])
def test_logging_only_rejects_bad_input(kwargs, field):
    with pytest.raises(InvalidInput) as caught:
        logging_only_pmf(**kwargs)
    assert caught.value.field == field


@pytest.mark.parametrize("changes, field", [
    (dict(mode="shadow"), "mode"), (dict(epsilon=-0.01), "epsilon"), (dict(margin=float("nan")), "margin"),
    (dict(min_events=0), "min_events"), (dict(confidence_z=-1.0), "confidence_z"),
])
def test_mode_config_validation(changes, field):
    with pytest.raises(InvalidInput) as caught:
        ModeConfig(**changes)
    assert caught.value.field == field


def _simulate_gate(learned_arm: int, rewards: list[float], config: ModeConfig, rounds: int, seed: int) -> ApprenticeGate:
    """Log with the apprentice pmf (baseline arm 0 + epsilon slice); learned policy is greedy on learned_arm."""
    rng = np.random.default_rng(seed)
    gate = ApprenticeGate(config)
    learned_pmf = np.zeros(4)
    learned_pmf[learned_arm] = 1.0
    for _ in range(rounds):
        pmf = served_pmf(config, learned_pmf, baseline_index=0, gate=None)
        chosen = int(rng.choice(4, p=pmf))
        reward = float(rng.random() < rewards[chosen])
        gate.update(LearningEvent(DecisionContext("u"), ARMS, chosen, float(pmf[chosen]), reward, pmf), 0, learned_pmf)
    return gate


def test_gate_opens_when_the_learned_policy_is_better():
    config = ModeConfig(mode="apprentice", epsilon=0.2, min_events=500)
    gate = _simulate_gate(learned_arm=3, rewards=[0.1, 0.1, 0.1, 0.9], config=config, rounds=4000, seed=1)
    assert gate.learned_is_better()
    assert gate.estimated_gain() == pytest.approx(0.8, abs=0.2)
    learned = np.array([0.0, 0.0, 0.0, 1.0])
    np.testing.assert_array_equal(served_pmf(config, learned, baseline_index=0, gate=gate), learned)


def test_gate_stays_closed_when_the_learned_policy_is_worse_or_margin_not_met():
    config = ModeConfig(mode="apprentice", epsilon=0.2, min_events=500)
    worse = _simulate_gate(learned_arm=3, rewards=[0.9, 0.1, 0.1, 0.1], config=config, rounds=4000, seed=2)
    assert not worse.learned_is_better() and worse.estimated_gain() < 0
    big_margin = ModeConfig(mode="apprentice", epsilon=0.2, margin=2.0, min_events=500)
    assert not _simulate_gate(3, [0.1, 0.1, 0.1, 0.9], big_margin, 4000, seed=1).learned_is_better()
    served = served_pmf(config, np.array([0.0, 0.0, 0.0, 1.0]), baseline_index=0, gate=worse)
    np.testing.assert_allclose(served, [0.85, 0.05, 0.05, 0.05])


def test_gate_waits_for_min_events_and_resets():
    config = ModeConfig(mode="apprentice", epsilon=0.2, min_events=10_000)
    gate = _simulate_gate(3, [0.1, 0.1, 0.1, 0.9], config, 2000, seed=3)
    assert not gate.learned_is_better() and gate.events_seen == 2000
    gate.reset()
    assert gate.events_seen == 0 and gate.estimated_gain() == 0.0


def test_online_mode_serves_the_learned_pmf_untouched():
    learned = np.array([0.1, 0.2, 0.3, 0.4])
    assert served_pmf(ModeConfig(), learned, baseline_index=None) is not None
    np.testing.assert_array_equal(served_pmf(ModeConfig(), learned, baseline_index=1), learned)
    np.testing.assert_allclose(served_pmf(ModeConfig(mode="logging_only"), learned, baseline_index=1),
                               [0.0125, 0.9625, 0.0125, 0.0125])


def test_gate_rejects_bad_updates():
    gate = ApprenticeGate(ModeConfig(mode="apprentice"))
    event = LearningEvent(DecisionContext("u"), ARMS, 0, 0.5, 1.0)
    with pytest.raises(InvalidInput):
        gate.update(event, 4, np.full(4, 0.25))
    with pytest.raises(InvalidInput):
        gate.update(event, 0, np.full(3, 1 / 3))

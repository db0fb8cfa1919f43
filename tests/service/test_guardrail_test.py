"""The guardrail's sequential test on paired IPW differences, in a simulated logging world with known values:
valid at every look (false alarms at most alpha though checked after every reward, and not absurdly
conservative either), and it does catch a champion that is clearly worse, soon."""
from __future__ import annotations

import numpy as np
import pytest

from offerbandit.errors import InvalidInput
from service.guardrail import GuardrailConfig, PairedTest, difference

ALPHA = 0.05
BETA = 0.1  # novelty weight: the served pmf is (1 - β)·π_new + β·uniform here
UPPER = 1.0 / (1 - BETA)  # the bound of D for rewards in [0, 1]
MEANS = np.array([0.5, 0.4, 0.3, 0.1])  # known expected reward of each of four arms


def _pmf(best: int, epsilon: float = 0.2) -> np.ndarray:
    pmf = np.full(len(MEANS), epsilon / len(MEANS))
    pmf[best] += 1 - epsilon
    return pmf


def _run(rng, new: np.ndarray, previous: np.ndarray, margin: float, n: int, min_rewards: int = 1) -> PairedTest:
    """``n`` decisions served by the mixture of ``new``; the test checked after every reward."""
    test = PairedTest(margin=margin, alpha=ALPHA, upper=UPPER, min_rewards=min_rewards)
    served = (1 - BETA) * new + BETA / len(MEANS)
    arms = rng.choice(len(MEANS), size=n, p=served)
    rewards = (rng.random(n) < MEANS[arms]).astype(float)
    test.add_many(difference(rewards, 0.0, new[arms], previous[arms], served[arms]))  # checked after each
    return test


def _value(pmf: np.ndarray) -> float:
    return float(pmf @ MEANS)


def test_the_paired_difference_is_unbiased_for_the_value_gap():
    rng = np.random.default_rng(0)
    new, previous = _pmf(1), _pmf(0)
    served = (1 - BETA) * new + BETA / len(MEANS)
    arms = rng.choice(len(MEANS), size=200_000, p=served)
    rewards = (rng.random(arms.size) < MEANS[arms]).astype(float)
    d = rewards * (new[arms] - previous[arms]) / served[arms]
    assert d.max() <= UPPER
    gap = _value(new) - _value(previous)
    assert abs(d.mean() - gap) < 4 * d.std() / np.sqrt(d.size)


def test_an_equally_good_champion_at_the_margin_is_rarely_rolled_back_though_checked_at_every_reward():
    """The null's boundary: the new champion is exactly `margin` worse. Checked after each of 3000 rewards,
    it trips in at most alpha of the runs (binomial bound). The other side -- that it is not vacuous -- is
    its power on a clearly worse champion (next test) and the bound's width (the better-champion test)."""
    margin = _value(_pmf(0)) - _value(_pmf(1))  # arm 1 as the new best: 0.08 worse
    alarms = 0
    runs = 300
    for seed in range(runs):
        test = _run(np.random.default_rng(seed), _pmf(1), _pmf(0), margin, 3000)
        alarms += test.tripped_at is not None
    # alpha = 0.05 of 300 runs: 15 expected at worst; 25 is beyond 2.5 sd of Binomial(300, 0.05)
    assert alarms <= 25


def test_a_clearly_worse_champion_is_rolled_back_soon_and_not_at_once():
    trips = []
    for seed in range(60):
        test = _run(np.random.default_rng(1000 + seed), _pmf(3), _pmf(0), 0.02, 3000)  # 0.5 -> 0.1
        trips.append(test.tripped_at)
    assert all(t is not None for t in trips)
    assert 20 < np.median(trips) < 400 and max(trips) < 1500


def test_min_rewards_holds_the_verdict_back_and_a_batch_is_checked_after_every_reward():
    test = _run(np.random.default_rng(7), _pmf(3), _pmf(0), 0.02, 3000, min_rewards=800)
    assert test.tripped_at == 800 and test.n == 800  # it would have tripped sooner; nothing after the trip is in
    batch = _run(np.random.default_rng(9), _pmf(3), _pmf(0), 0.02, 3000)
    one_by_one = PairedTest(margin=0.02, alpha=ALPHA, upper=UPPER)
    for value in batch.verdict_values():
        if one_by_one.add(value):
            break
    assert batch.tripped_at is not None and one_by_one.tripped_at == batch.tripped_at
    assert one_by_one.e_value() == pytest.approx(batch.e_value())


def test_a_better_champion_is_never_rolled_back_and_the_bound_covers_the_gap():
    """A better champion gives no alarm in any of 100 runs; the reported upper bound lies above the true
    gap in at least 1 - alpha of runs (coverage), and is informative (below U after 3000 rewards)."""
    gap = _value(_pmf(0)) - _value(_pmf(2))
    covered, informative = 0, 0
    for seed in range(100):
        test = _run(np.random.default_rng(2000 + seed), _pmf(0), _pmf(2), 0.0, 3000)
        assert test.tripped_at is None
        bound = test.upper_bound()
        covered += bound >= gap
        informative += bound < UPPER / 2
    assert covered >= 95 - 5  # 1 - alpha, with binomial slack
    assert informative == 100


def test_the_fixed_sample_test_rerun_at_every_look_would_raise_false_alarms():
    """Why a sequential test: a one-sided 95% normal interval on the same differences, re-checked after
    every reward from the 20th on, trips at the null's boundary far more often than alpha."""
    margin = _value(_pmf(0)) - _value(_pmf(1))
    alarms = 0
    for seed in range(200):
        rng = np.random.default_rng(5000 + seed)
        new, previous = _pmf(1), _pmf(0)
        served = (1 - BETA) * new + BETA / len(MEANS)
        arms = rng.choice(len(MEANS), size=3000, p=served)
        rewards = (rng.random(arms.size) < MEANS[arms]).astype(float)
        d = rewards * (new[arms] - previous[arms]) / served[arms]
        n = np.arange(1, d.size + 1)
        mean = np.cumsum(d) / n
        sd = np.sqrt(np.maximum(np.cumsum(d * d) / n - mean**2, 1e-12))
        alarms += bool(np.any((mean + 1.645 * sd / np.sqrt(n))[20:] < -margin))
    assert alarms / 200 > 0.15


def test_verdict_numbers_and_refusals():
    test = PairedTest(margin=0.02, alpha=ALPHA, upper=UPPER)
    assert test.e_value() == 1.0 and test.upper_bound() == UPPER and not test.verdict().tripped
    with pytest.raises(ValueError):
        test.add(UPPER * 2)
    assert not test.add(UPPER * (1 + 1e-7)) and test.verdict_values() == (UPPER,)  # float32 rounding: taken as U
    test = PairedTest(margin=0.02, alpha=ALPHA, upper=UPPER)
    with pytest.raises(ValueError):
        test.add(float("nan"))
    for value in (-1.0, -2.0, -0.5):
        test.add(value)
    verdict = test.verdict()
    assert verdict.rewards == 3 and verdict.estimate == pytest.approx(-7 / 6)
    assert set(verdict.as_metrics()) >= {"guardrail_estimate", "guardrail_upper_bound", "guardrail_e_value"}
    for bad in ({"alpha": 0.0}, {"alpha": 1.0}, {"margin": -0.1}, {"min_rewards": 0}, {"check_every_seconds": 0},
                {"enabled": 1}):
        with pytest.raises(InvalidInput):
            GuardrailConfig(**bad)

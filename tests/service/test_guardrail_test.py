"""The guardrail's sequential test: valid at every look (false alarms at most alpha however often it is
checked), and it does catch a champion that is clearly worse."""
from __future__ import annotations

import numpy as np

from service.guardrail import ConfidenceSequence, RunningReward, guardrail_trips

SEQUENCE = ConfidenceSequence(alpha=0.05, n_tight=500)


def _previous(rng, mean: float, n: int = 2000) -> RunningReward:
    previous = RunningReward()
    for reward in rng.random(n) < mean:
        previous.add(float(reward))
    return previous


def _first_trip(rng, new_mean: float, previous: RunningReward, margin: float, n: int) -> int | None:
    new = RunningReward()
    for i, reward in enumerate(rng.random(n) < new_mean):
        new.add(float(reward))
        if guardrail_trips(new, previous, margin, SEQUENCE):  # checked after every reward
            return i + 1
    return None


def test_a_champion_as_good_as_the_last_is_almost_never_rolled_back_though_checked_at_every_reward():
    alarms = 0
    for seed in range(200):
        rng = np.random.default_rng(seed)
        previous = _previous(rng, 0.3)
        alarms += _first_trip(rng, 0.3 - 0.02, previous, 0.02, 3000) is not None  # exactly at the margin
    assert alarms / 200 <= 0.05  # the promise, at the boundary of the null


def test_a_clearly_worse_champion_is_rolled_back_and_soon():
    trips = []
    for seed in range(50):
        rng = np.random.default_rng(100 + seed)
        previous = _previous(rng, 0.3)
        trips.append(_first_trip(rng, 0.15, previous, 0.02, 3000))
    assert all(t is not None for t in trips)
    assert 50 < np.median(trips) < 1500  # not on the first few rewards, not after thousands


def test_a_fixed_sample_test_rerun_at_every_look_would_raise_false_alarms():
    """Why a confidence sequence: a 95% normal interval checked after every reward trips far more often."""
    alarms = 0
    for seed in range(200):
        rng = np.random.default_rng(500 + seed)
        previous = _previous(rng, 0.3)
        low_prev = previous.mean - 1.96 * np.sqrt(0.21 / previous.n)
        new = np.cumsum(rng.random(3000) < 0.28) / np.arange(1, 3001)
        high_new = new + 1.96 * np.sqrt(np.maximum(new * (1 - new), 1e-9) / np.arange(1, 3001))
        alarms += bool(np.any(high_new[20:] < low_prev - 0.02))
    assert alarms / 200 > 0.1


def test_the_radius_shrinks_and_no_data_means_no_verdict():
    assert SEQUENCE.radius(100) > SEQUENCE.radius(1000) > SEQUENCE.radius(10000) > 0
    assert not guardrail_trips(RunningReward(), RunningReward(5, 5.0), 0.0, SEQUENCE)

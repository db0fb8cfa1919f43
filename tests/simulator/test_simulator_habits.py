"""The individual-habit world (WorldConfig.habits = "individual"): seeded, the segment only weakly
informative, the segment world untouched, and per-segment rules in hindsight as a reference value."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from offerbandit.errors import InvalidInput
from simulator import CustomerWorld, WorldConfig
from simulator.habits import SEGMENT_HINT, draw_individual_habits
from simulator.population import build_population

SEGMENT = WorldConfig(seed=5, n_customers=1500, fatigue=False, drift=False)
INDIVIDUAL = dataclasses.replace(SEGMENT, habits="individual")


def test_unknown_habits_is_invalid_input() -> None:
    with pytest.raises(InvalidInput) as caught:
        WorldConfig(habits="tribal")
    assert caught.value.field == "habits"


def test_same_seed_same_individual_world_and_different_seeds_differ() -> None:
    a, b = CustomerWorld(INDIVIDUAL), CustomerWorld(INDIVIDUAL)
    c = CustomerWorld(dataclasses.replace(INDIVIDUAL, seed=6))
    for _ in range(200):
        ra, rb, rc = a.next_request(), b.next_request(), c.next_request()
        assert (ra.user_id, dict(ra.context), ra.time) == (rb.user_id, dict(rb.context), rb.time)
        np.testing.assert_array_equal(a.expected_rewards(ra, a.arm_set), b.expected_rewards(rb, b.arm_set))
    assert a.reference_values(800) == b.reference_values(800)
    assert c.reference_values(800).oracle != a.reference_values(800).oracle


def test_individual_habits_leave_the_request_stream_and_other_draws_alone() -> None:
    """Only preferences change: the same customers, contexts and times in both worlds."""
    seg, ind = CustomerWorld(SEGMENT), CustomerWorld(INDIVIDUAL)
    for _ in range(300):
        rs, ri = seg.next_request(), ind.next_request()
        assert (rs.user_id, dict(rs.context), rs.time) == (ri.user_id, dict(ri.context), ri.time)
    seg_pop = build_population(SEGMENT, np.random.default_rng(1))
    ind_pop = build_population(INDIVIDUAL, np.random.default_rng(1))
    np.testing.assert_array_equal(seg_pop.segment, ind_pop.segment)
    np.testing.assert_array_equal(seg_pop.discount, ind_pop.discount)
    np.testing.assert_array_equal(seg_pop.offer_quality, ind_pop.offer_quality)
    assert not np.array_equal(seg_pop.category, ind_pop.category)


def test_the_segment_is_only_weakly_informative_of_a_favourite() -> None:
    rng = np.random.default_rng(0)
    n, n_cat = 20_000, SEGMENT.n_categories
    hint = rng.integers(0, n_cat, size=n)
    segment_category = np.zeros((n, n_cat))
    segment_category[np.arange(n), hint] = 1.0
    habits = draw_individual_habits(SEGMENT, rng, rng.normal(size=(n, 4, 3)), segment_category)
    share = float((habits.favourite_category == hint).mean())
    expected = SEGMENT_HINT + (1 - SEGMENT_HINT) / n_cat
    assert abs(share - expected) < 0.015          # binomial sd ~0.003
    assert share < 0.5                            # most customers do not like what their segment likes
    # The favourite is each customer's best category by a wide margin.
    best = habits.category[:, :n_cat].argmax(axis=1)
    assert (best == habits.favourite_category).mean() > 0.98


def test_per_segment_rules_are_between_mass_marketing_and_the_oracle_and_weak_on_individual_habits() -> None:
    seg = CustomerWorld(SEGMENT).reference_values(3000)
    ind = CustomerWorld(INDIVIDUAL).reference_values(3000)
    for ref in (seg, ind):
        assert ref.best_single_arm <= ref.per_segment_rules <= ref.oracle
    # Segment world: a segment table gets most of the way; individual world: far from the oracle.
    assert 0.5 < seg.per_segment_rules / seg.oracle < 0.8
    assert 0.15 < ind.per_segment_rules / ind.oracle < 0.45
    # Hand check of the definition on the same requests.
    world = CustomerWorld(SEGMENT)
    requests = [world.next_request() for _ in range(3000)]
    matrix = np.stack([world.expected_rewards(r, world.arm_set) for r in requests])
    segments = np.array([r.context["segment"] for r in requests])
    by_hand = np.mean([matrix[segments == s].mean(axis=0).max() for s in segments])
    assert seg.per_segment_rules == pytest.approx(by_hand, rel=1e-9)

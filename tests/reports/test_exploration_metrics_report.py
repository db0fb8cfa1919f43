"""Exploration metrics against small hand-computed cases."""
from __future__ import annotations

import math

import numpy as np
import pytest

from offerbandit.errors import InvalidInput
from offerbandit.reports.exposures import ExposureRecord, exploration_report, gini
from policies.sampler import EXPLOIT, EXPLORE, EXPLORE_OUTSIDE_HISTORY


def _record(user, when, offer, category, label, reward, new=False):
    return ExposureRecord(user_key=user, when=when, offer_id=offer, category=category, format="sms",
                          time_slot="morning", exploration=label, reward=reward, new_category=new)


# Two customers, catalogue of 4 offers (o4 never shown).
RECORDS = [
    _record("a", 1.0, "o1", "food", EXPLOIT, 1.0),
    _record("a", 2.0, "o1", "food", EXPLOIT, 0.0),
    _record("a", 3.0, "o2", "travel", EXPLORE_OUTSIDE_HISTORY, 1.0, new=True),
    _record("a", 4.0, "o3", "books", EXPLORE, None, new=True),
    _record("b", 1.0, "o3", "books", EXPLORE_OUTSIDE_HISTORY, 0.0, new=True),
    _record("b", 2.0, "o1", "food", EXPLOIT, 1.0, new=True),
]
CATALOGUE = ["o1", "o2", "o3", "o4"]


def test_hand_computed_report():
    report = exploration_report(RECORDS, catalogue=CATALOGUE, last_n=2)
    assert report.n_decisions == 6 and report.n_customers == 2
    assert report.share_outside_history == pytest.approx(2 / 6)
    assert report.share_exploit == pytest.approx(3 / 6)
    assert report.share_explore == pytest.approx(1 / 6)
    # a saw o1, o2, o3 (3/4); b saw o3, o1 (2/4).
    assert report.catalogue_coverage == pytest.approx((3 / 4 + 2 / 4) / 2)
    # Last 2 of a: travel, books (2); last 2 of b: books, food (2).
    assert report.distinct_categories_last_n == pytest.approx(2.0)
    # Discoveries: a's travel (novelty, reward 1) and b's food (exploit, reward 1, new to b).
    assert report.discoveries == 2
    assert report.discovery_rate_per_decision == pytest.approx(2 / 6)
    assert report.discovery_rate_per_novel_draw == pytest.approx(1 / 2)
    assert report.mean_reward_outside_history == pytest.approx(0.5)
    assert report.mean_reward_exploit == pytest.approx(2 / 3)
    assert math.isnan(report.mean_reward_explore)  # its only reward is unknown
    assert report.exploration_cost == pytest.approx(2 / 3 - 0.5)
    # Exposure counts over the catalogue: o1 3, o2 1, o3 2, o4 0.
    assert report.exposure_gini == pytest.approx(gini(np.array([3, 1, 2, 0])))


def test_last_n_window_follows_time_not_input_order():
    shuffled = [RECORDS[i] for i in (3, 0, 5, 2, 4, 1)]
    assert exploration_report(shuffled, last_n=1).distinct_categories_last_n == pytest.approx(1.0)
    assert exploration_report(shuffled, last_n=3).distinct_categories_last_n == pytest.approx((3 + 2) / 2)
    assert exploration_report(shuffled, last_n=10).distinct_categories_last_n == pytest.approx((3 + 2) / 2)


def test_coverage_without_catalogue_uses_the_offers_seen():
    report = exploration_report(RECORDS)
    assert report.catalogue_coverage == pytest.approx((3 / 3 + 2 / 3) / 2)
    assert report.exposure_gini == pytest.approx(gini(np.array([3, 1, 2])))


@pytest.mark.parametrize(
    "counts, expected",
    [([5, 5, 5, 5], 0.0), ([0, 0, 0, 4], 0.75), ([1, 0], 0.5), ([7], 0.0), ([1, 2, 3], 2 / 9)],
)
def test_gini_hand_computed(counts, expected):
    assert gini(np.array(counts)) == pytest.approx(expected, abs=1e-12)


def test_gini_of_nothing_is_nan():
    assert math.isnan(gini(np.array([0, 0])))
    assert math.isnan(gini(np.array([])))


def test_empty_records_give_nan_rates_and_no_metrics_for_them():
    report = exploration_report([])
    assert report.n_decisions == 0 and report.discoveries == 0
    assert math.isnan(report.share_outside_history)
    metrics = report.as_metrics()
    assert metrics == {"exploration.n_decisions": 0.0, "exploration.n_customers": 0.0,
                       "exploration.last_n": 10.0, "exploration.discoveries": 0.0}


def test_as_metrics_is_flat_floats_without_nan():
    metrics = exploration_report(RECORDS, catalogue=CATALOGUE).as_metrics()
    assert all(isinstance(v, float) and math.isfinite(v) for v in metrics.values())
    assert metrics["exploration.share_outside_history"] == pytest.approx(1 / 3)
    assert "exploration.mean_reward_explore" not in metrics


def test_no_novel_draws_leaves_per_novel_rate_undefined():
    report = exploration_report([r for r in RECORDS if r.exploration != EXPLORE_OUTSIDE_HISTORY])
    assert math.isnan(report.discovery_rate_per_novel_draw)
    assert report.share_outside_history == 0.0


def test_matches_a_plain_python_computation_on_random_data():
    rng = np.random.default_rng(4)
    labels = [EXPLOIT, EXPLORE, EXPLORE_OUTSIDE_HISTORY]
    records = [
        _record(f"u{rng.integers(20)}", float(rng.random()), f"o{rng.integers(30)}", f"c{rng.integers(6)}",
                labels[rng.integers(3)], None if rng.random() < 0.2 else float(rng.integers(2)),
                bool(rng.random() < 0.3))
        for _ in range(2_000)
    ]
    report = exploration_report(records, last_n=5)
    by_user: dict[str, list[ExposureRecord]] = {}
    for r in records:
        by_user.setdefault(r.user_key, []).append(r)
    n_offers = len({r.offer_id for r in records})
    coverage = np.mean([len({r.offer_id for r in rs}) / n_offers for rs in by_user.values()])
    recent = np.mean([len({r.category for r in sorted(rs, key=lambda r: r.when)[-5:]}) for rs in by_user.values()])
    assert report.catalogue_coverage == pytest.approx(coverage)
    assert report.distinct_categories_last_n == pytest.approx(recent)
    assert report.discoveries == sum(r.new_category and (r.reward or 0) > 0 for r in records)


@pytest.mark.parametrize(
    "records, kwargs, field",
    [
        (RECORDS, {"last_n": 0}, "last_n"),
        (RECORDS, {"last_n": 2.5}, "last_n"),
        ([_record("a", 1.0, "o1", "food", "no_contact", None)], {}, "exploration"),
        ([_record("a", 1.0, "o1", "food", "random", None)], {}, "exploration"),
    ],
)
def test_invalid_input_names_the_field(records, kwargs, field):
    with pytest.raises(InvalidInput) as info:
        exploration_report(records, **kwargs)
    assert info.value.field == field

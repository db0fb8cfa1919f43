"""simulator.world: seeded streams, response probabilities, habits, fatigue, latent interests."""
from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import pytest

from offerbandit.errors import InvalidInput
from policies.types import ArmSet, JointArm, Offer
from simulator import CustomerWorld, SimRequest, WorldConfig
from simulator.config import CATEGORIES

STATIC = WorldConfig(seed=3, fatigue=False, drift=False)


def _stream(world: CustomerWorld, n: int) -> list[SimRequest]:
    return [world.next_request() for _ in range(n)]


def _visible(request: SimRequest) -> tuple:
    return (request.index, request.user_id, dict(request.context), dict(request.numeric), request.time)


@pytest.fixture(scope="module")
def static_world() -> CustomerWorld:
    return CustomerWorld(STATIC)


@pytest.fixture(scope="module")
def static_sample(static_world: CustomerWorld) -> tuple[list[SimRequest], np.ndarray]:
    requests = _stream(CustomerWorld(STATIC), 3000)
    matrix = np.stack([static_world.expected_rewards(r, static_world.arm_set) for r in requests])
    return requests, matrix


# ------------------------------------------------------------------ determinism


def test_same_seed_same_requests_and_rewards() -> None:
    first, second = CustomerWorld(WorldConfig(seed=11)), CustomerWorld(WorldConfig(seed=11))
    arms = first.arm_set.arms
    for i in range(400):
        a, b = first.next_request(), second.next_request()
        assert _visible(a) == _visible(b)
        np.testing.assert_array_equal(
            first.expected_rewards(a, first.arm_set), second.expected_rewards(b, second.arm_set)
        )
        arm = arms[(i * 7) % len(arms)]
        assert first.respond(a, arm) == second.respond(b, arm)


def test_different_seeds_differ() -> None:
    a = [_visible(r)[1:] for r in _stream(CustomerWorld(WorldConfig(seed=1)), 50)]
    b = [_visible(r)[1:] for r in _stream(CustomerWorld(WorldConfig(seed=2)), 50)]
    assert sum(x != y for x, y in zip(a, b)) >= 45


def test_request_stream_does_not_depend_on_the_policy() -> None:
    """Same traffic whatever was played, even with fatigue on: policies compare on equal terms."""
    config = WorldConfig(seed=5, n_customers=100, fatigue=True)
    busy, idle = CustomerWorld(config), CustomerWorld(config)
    arms = busy.arm_set.arms
    for i in range(300):
        a, b = busy.next_request(), idle.next_request()
        assert _visible(a) == _visible(b)
        busy.respond(a, arms[i % len(arms)])
        idle.respond(b, None)


def test_reset_replays_and_clone_continues_identically() -> None:
    world = CustomerWorld(WorldConfig(seed=9, n_customers=50))
    first = _stream(world, 100)
    for r in first:
        world.respond(r, world.arm_set.arms[0])
    twin = world.clone()
    np.testing.assert_array_equal(
        [world.respond(r, world.arm_set.arms[3]) for r in _stream(world, 100)],
        [twin.respond(r, twin.arm_set.arms[3]) for r in _stream(twin, 100)],
    )
    world.reset()
    assert [_visible(r) for r in _stream(world, 100)] == [_visible(r) for r in first]


# --------------------------------------------------------- response probabilities


def test_expected_rewards_are_probabilities_in_arm_order(static_world, static_sample) -> None:
    requests, matrix = static_sample
    assert matrix.shape == (len(requests), len(static_world.arm_set))
    assert matrix.dtype == np.float64
    assert np.all(np.isfinite(matrix)) and np.all(matrix > 0) and np.all(matrix < 1)
    # Arm order is the arm set's: a reversed arm set gives the reversed vector, a subset the same values.
    arm_set = static_world.arm_set
    reversed_set = ArmSet(arms=arm_set.arms[::-1], offers=arm_set.offers)
    subset = ArmSet(arms=arm_set.arms[5:9], offers=arm_set.offers)
    for request, row in zip(requests[:20], matrix[:20]):
        np.testing.assert_array_equal(static_world.expected_rewards(request, reversed_set), row[::-1])
        np.testing.assert_array_equal(static_world.expected_rewards(request, subset), row[5:9])


def test_oracle_is_at_least_every_arm(static_world, static_sample) -> None:
    requests, matrix = static_sample
    for request, row in zip(requests[:500], matrix[:500]):
        best = static_world.oracle_index(request, static_world.arm_set)
        assert row[best] == row.max()
        assert np.all(row[best] >= row)


def test_sampled_responses_match_expected_rewards() -> None:
    """Sum of 0/1 responses vs sum of their probabilities: a z-score far inside |z| < 5."""
    world = CustomerWorld(WorldConfig(seed=4, fatigue=False))
    arms = world.arm_set.arms
    rng = np.random.default_rng(0)
    rewards, probabilities = [], []
    for _ in range(6000):
        request = world.next_request()
        k = int(rng.integers(len(arms)))
        probabilities.append(world.expected_rewards(request, world.arm_set)[k])
        rewards.append(world.respond(request, arms[k]))
    p = np.asarray(probabilities)
    assert set(rewards) <= {0.0, 1.0}
    z = (np.sum(rewards) - p.sum()) / np.sqrt(np.sum(p * (1 - p)))
    assert abs(z) < 5


def test_no_contact_yields_no_response() -> None:
    world = CustomerWorld(WorldConfig(seed=2))
    assert all(world.respond(world.next_request(), None) == 0.0 for _ in range(50))


def test_offers_outside_the_catalogue_get_neutral_effects(static_world, static_sample) -> None:
    requests, _ = static_sample
    strange = Offer("brand_new", {"category": "pets", "discount_type": "bogo"})
    arm_set = ArmSet(arms=(JointArm("brand_new", "email", "morning"),), offers={"brand_new": strange})
    values = [static_world.expected_rewards(r, arm_set)[0] for r in requests[:50]]
    assert all(0 < v < 1 for v in values)


# ------------------------------------------------------------------ habits


def test_reference_values_order_oracle_mass_uniform(static_world) -> None:
    reference = static_world.reference_values(3000)
    assert reference.oracle > 2.5 * reference.best_single_arm
    assert reference.best_single_arm > 1.8 * reference.uniform
    assert 0.10 <= reference.oracle <= 0.40
    assert 0.03 <= reference.best_single_arm <= 0.10
    assert static_world.best_single_arm() == static_world.reference_values().best_arm
    assert reference.best_arm in static_world.arm_set.arms
    assert abs(sum(reference.segment_shares.values()) - 1.0) < 1e-9
    assert reference is static_world.reference_values(3000)  # computed once


def test_context_decides_the_best_arm(static_world, static_sample) -> None:
    """Several distinct oracle arms, a different best arm per segment, and knowing the segment alone
    beats mass marketing by a wide margin."""
    requests, matrix = static_sample
    oracle_arms = Counter(int(row.argmax()) for row in matrix)
    assert len(oracle_arms) >= 20
    assert max(oracle_arms.values()) < 0.25 * len(requests)

    segments = np.array([r.context["segment"] for r in requests])
    per_segment_best = {s: int(matrix[segments == s].mean(axis=0).argmax()) for s in set(segments)}
    assert len(set(per_segment_best.values())) >= 4
    by_segment = sum(matrix[segments == s, k].sum() for s, k in per_segment_best.items()) / len(requests)
    mass = matrix.mean(axis=0).max()
    assert by_segment > 2.0 * mass


def test_send_time_habits_follow_the_weekday(static_world, static_sample) -> None:
    """Professionals answer lunch-time offers better on Mondays and Fridays than mid-week."""
    requests, matrix = static_sample
    lunch = np.array([arm.time_slot == "lunch" for arm in static_world.arm_set.arms])
    pro = [i for i, r in enumerate(requests) if r.context["segment"] == "professional"]
    mon_fri = [i for i in pro if requests[i].context["weekday"] in ("mon", "fri")]
    midweek = [i for i in pro if requests[i].context["weekday"] in ("tue", "wed", "thu")]
    assert len(mon_fri) > 30 and len(midweek) > 30
    # Same customers' lunch-vs-other ratio, switched by the weekday alone.
    for i in pro[:50]:
        request = requests[i]
        values = {}
        for day in ("mon", "wed"):
            moved = dataclasses.replace(request, context={**request.context, "weekday": day})
            row = static_world.expected_rewards(moved, static_world.arm_set)
            values[day] = row[lunch].mean() / row[~lunch].mean()
        assert values["mon"] > values["wed"]


def test_hour_band_reveals_the_customer(static_sample) -> None:
    requests, _ = static_sample
    night_share = {
        s: np.mean([r.context["hour_band"] == "night" for r in requests if r.context["segment"] == s])
        for s in ("night_owl", "retiree")
    }
    assert night_share["night_owl"] > 0.2 > 0.05 > night_share["retiree"]


def test_open_service_problem_hurts_selling_and_helps_retention(static_world, static_sample) -> None:
    requests, _ = static_sample
    arm_set = static_world.arm_set
    kind = np.array([arm_set.offer_of(a).features["offer_type"] for a in arm_set.arms])
    for request in requests[:100]:
        calm = dataclasses.replace(request, context={**request.context, "open_service_problem": "false"})
        upset = dataclasses.replace(request, context={**request.context, "open_service_problem": "true"})
        before, after = static_world.expected_rewards(calm, arm_set), static_world.expected_rewards(upset, arm_set)
        selling = (kind == "cross_sell") | (kind == "upsell")
        assert np.all(after[selling] < before[selling])
        assert np.all(after[kind == "retention"] > before[kind == "retention"])
    share = np.mean([r.context["open_service_problem"] == "true" for r in requests])
    assert 0.03 < share < 0.15


# ------------------------------------------------------------ fatigue and drift


def _two_visits(config: WorldConfig) -> tuple[CustomerWorld, SimRequest, SimRequest]:
    world = CustomerWorld(config)
    seen: dict[str, SimRequest] = {}
    while True:
        request = world.next_request()
        if request.user_id in seen and request.time - seen[request.user_id].time > 3600:
            return world, seen[request.user_id], request
        seen.setdefault(request.user_id, request)


@pytest.mark.parametrize("fatigue", [True, False])
def test_fatigue_lowers_response_only_when_enabled(fatigue: bool) -> None:
    world, first, later = _two_visits(WorldConfig(seed=8, n_customers=30, fatigue=fatigue))
    rested = world.clone()
    for _ in range(3):
        world.respond(first, world.arm_set.arms[0])
    tired_values = world.expected_rewards(later, world.arm_set)
    rested_values = rested.expected_rewards(later, rested.arm_set)
    if fatigue:
        assert np.all(tired_values < 0.8 * rested_values)
    else:
        np.testing.assert_array_equal(tired_values, rested_values)


def test_without_fatigue_and_drift_history_and_clock_do_not_matter(static_sample) -> None:
    """Single-step OPE assumes it: the response probabilities are a function of the request alone."""
    requests, matrix = static_sample
    world = CustomerWorld(STATIC)
    for i, request in enumerate(requests[:500]):
        world.respond(request, world.arm_set.arms[i % 10])
    for request, row in zip(requests[:200], matrix[:200]):
        np.testing.assert_array_equal(world.expected_rewards(request, world.arm_set), row)
        later = dataclasses.replace(request, time=request.time + 20 * 86_400.0)
        np.testing.assert_array_equal(world.expected_rewards(later, world.arm_set), row)


def test_drift_moves_preferences_slowly() -> None:
    world = CustomerWorld(WorldConfig(seed=3, fatigue=False, drift=True))
    request = world.next_request()
    now = world.expected_rewards(request, world.arm_set)
    minute = world.expected_rewards(dataclasses.replace(request, time=request.time + 60.0), world.arm_set)
    weeks = world.expected_rewards(dataclasses.replace(request, time=request.time + 10 * 86_400.0), world.arm_set)
    assert np.max(np.abs(minute / now - 1)) < 1e-3
    assert np.max(np.abs(weeks / now - 1)) > 0.2


# ------------------------------------------------------------ latent interests


def test_latent_interests_exist_and_is_latent_is_consistent() -> None:
    with_latent = CustomerWorld(WorldConfig(seed=6, fatigue=False))
    without = CustomerWorld(WorldConfig(seed=6, fatigue=False, latent_interests=False))
    arm_set = with_latent.arm_set
    category = np.array([arm_set.offer_of(a).category for a in arm_set.arms])
    # One featureless offer per category: only the category interest differs between them.
    plain_offers = {f"plain_{c}": Offer(f"plain_{c}", {"category": c}) for c in CATEGORIES}
    probes = ArmSet(arms=tuple(JointArm(o, "email", "morning") for o in plain_offers), offers=plain_offers)
    n, latent_users = 400, set()
    for _ in range(n):
        a, b = with_latent.next_request(), without.next_request()
        assert _visible(a) == _visible(b)
        on, off = with_latent.expected_rewards(a, arm_set), without.expected_rewards(b, arm_set)
        latent = [c for c in CATEGORIES if with_latent.is_latent(a.user_id, c)]
        assert len(latent) <= 1
        assert not any(without.is_latent(a.user_id, c) for c in CATEGORIES)
        if latent:
            latent_users.add(a.user_id)
            hidden = category == latent[0]
            odds_ratio = (on[hidden] / (1 - on[hidden])) / (off[hidden] / (1 - off[hidden]))
            assert np.all(odds_ratio > np.exp(2.0))  # strong once discovered
            np.testing.assert_array_equal(on[~hidden], off[~hidden])
            # Nothing in the customer's past points to it: without the latent boost, a plain offer of
            # that category does no better than the customer's median category.
            plain = without.expected_rewards(b, probes)
            assert plain[CATEGORIES.index(latent[0])] <= np.median(plain)
        else:
            np.testing.assert_array_equal(on, off)
    users = with_latent.user_ids
    share = sum(with_latent.is_latent(u, c) for u in users for c in CATEGORIES) / len(users)
    assert abs(share - with_latent.config.latent_share) < 5 * np.sqrt(0.35 * 0.65 / len(users))
    assert len(latent_users) > 50


# --------------------------------------------------------------- bad input


def test_bad_input_is_refused_with_the_field(static_world, static_sample) -> None:
    requests, _ = static_sample
    request = requests[0]
    foreign = SimRequest(index=0, user_id=request.user_id, context=request.context, numeric=request.numeric, time=0.0)
    unknown_format = ArmSet(arms=(JointArm("offer_00", "fax", "morning"),), offers=static_world.arm_set.offers)
    unknown_slot = ArmSet(arms=(JointArm("offer_00", "sms", "midnight"),), offers=static_world.arm_set.offers)
    missing_offer = ArmSet(arms=(JointArm("ghost", "sms", "morning"),), offers={})
    cases = [
        (lambda: static_world.expected_rewards(foreign, static_world.arm_set), "request"),
        (lambda: static_world.expected_rewards("u00001", static_world.arm_set), "request"),
        (lambda: static_world.expected_rewards(request, unknown_format), "arm_set"),
        (lambda: static_world.expected_rewards(request, unknown_slot), "arm_set"),
        (lambda: static_world.expected_rewards(request, missing_offer), "arm_set"),
        (lambda: static_world.expected_rewards(request, ArmSet(arms=(), offers={})), "arm_set"),
        (lambda: static_world.expected_rewards(request, list(static_world.arm_set.arms)), "arm_set"),
        (lambda: static_world.oracle_index(request, unknown_format), "arm_set"),
        (lambda: static_world.respond(request, JointArm("ghost", "sms", "morning")), "arm"),
        (lambda: static_world.respond(request, ("offer_00", "sms", "morning")), "arm"),
        (lambda: static_world.respond(foreign, None), "request"),
        (lambda: static_world.is_latent("nobody", "travel"), "user_id"),
        (lambda: static_world.reference_values(0), "n"),
        (lambda: static_world.reference_values(2.5), "n"),
    ]
    for call, field in cases:
        with pytest.raises(InvalidInput) as excinfo:
            call()
        assert excinfo.value.field == field

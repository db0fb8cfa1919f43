"""The novelty mixture: exact formula, β = 0 is the plain policy bit for bit, outside-history masks."""
from __future__ import annotations

import math

import numpy as np
import pytest

from offerbandit.errors import InvalidInput
from policies.history import HistoryConfig, UserHistory, UserHistoryStore
from policies.novelty import NoveltyConfig, mix_for_history, novelty_mixture, outside_history_mask
from policies.types import ArmSet, JointArm, Offer

OFFERS = [Offer(f"o{i}", {"category": c}) for i, c in enumerate(["food", "food", "travel", "books", "games"])]
ARMS = ArmSet.product(OFFERS, ["sms", "email"], ["morning"])  # 10 arms, offer-major
CATEGORIES = [ARMS.offer_of(a).category for a in ARMS.arms]


def _random_pmf(n: int, seed: int) -> np.ndarray:
    w = np.random.default_rng(seed).gamma(0.5, size=n)
    return w / w.sum()


def _history_with(shown: list[JointArm], categories: list[str], now: float = 100.0) -> UserHistory:
    store = UserHistoryStore(HistoryConfig())
    for i, (arm, category) in enumerate(zip(shown, categories)):
        store.record_contact("u", event_id=f"e{i}", when=float(i), arm=arm, category=category, counts=True)
    return store.snapshot("u", now)


@pytest.mark.parametrize("seed", range(5))
def test_beta_zero_reproduces_the_policy_bit_for_bit(seed):
    p_policy = _random_pmf(10, seed)
    outside = np.random.default_rng(seed).random(10) < 0.5
    mixture = novelty_mixture(p_policy, outside, beta_eff=0.0, floor=0.7)
    assert mixture.p.tobytes() == p_policy.tobytes()
    assert mixture.beta == 0.0
    assert not mixture.q_novel.any()


def test_no_arm_outside_history_means_beta_zero_and_the_policy_exactly():
    p_policy = _random_pmf(10, 3)
    mixture = novelty_mixture(p_policy, np.zeros(10, dtype=bool), beta_eff=0.4, floor=0.5)
    assert mixture.beta == 0.0
    assert mixture.p.tobytes() == p_policy.tobytes()


@pytest.mark.parametrize("beta, floor", [(0.1, 0.0), (0.3, 0.5), (0.5, 1.0), (1.0, 0.25)])
def test_mixture_follows_the_formula(beta, floor):
    p_policy = _random_pmf(10, 11)
    outside = np.array([True, False, False, True, True, False, False, False, True, False])
    mixture = novelty_mixture(p_policy, outside, beta_eff=beta, floor=floor)

    restricted = np.where(outside, p_policy, 0.0)
    expected_q = (1 - floor) * restricted / restricted.sum() + floor * outside / outside.sum()
    np.testing.assert_allclose(mixture.q_novel, expected_q, rtol=1e-12, atol=0)
    np.testing.assert_allclose(mixture.p, (1 - beta) * p_policy + beta * expected_q, rtol=1e-12, atol=0)
    assert math.isclose(mixture.p.sum(), 1.0, abs_tol=1e-12)
    assert math.isclose(mixture.q_novel.sum(), 1.0, abs_tol=1e-12)
    assert np.all(mixture.q_novel[~outside] == 0)
    # The floor keeps every novel arm drawable from the novelty component.
    assert np.all(mixture.q_novel[outside] >= floor / outside.sum() - 1e-15)
    assert mixture.beta == beta


def test_novel_arms_the_policy_ignores_still_get_the_floor():
    p_policy = np.array([0.7, 0.3, 0.0, 0.0])
    mixture = novelty_mixture(p_policy, np.array([False, True, True, True]), beta_eff=0.2, floor=0.3)
    assert np.all(mixture.p[2:] > 0)
    np.testing.assert_allclose(mixture.p[2:], 0.2 * 0.3 / 3)


def test_policy_with_no_mass_on_novel_arms_spreads_novelty_uniformly():
    p_policy = np.array([0.6, 0.4, 0.0, 0.0])
    mixture = novelty_mixture(p_policy, np.array([False, False, True, True]), beta_eff=0.2, floor=0.0)
    np.testing.assert_allclose(mixture.q_novel, [0, 0, 0.5, 0.5])
    np.testing.assert_allclose(mixture.p, [0.48, 0.32, 0.1, 0.1])


def test_inputs_are_left_untouched_and_outputs_are_read_only():
    p_policy = _random_pmf(10, 5)
    outside = np.arange(10) % 2 == 0
    before = (p_policy.copy(), outside.copy())
    mixture = novelty_mixture(p_policy, outside, 0.3, 0.5)
    assert np.array_equal(p_policy, before[0]) and np.array_equal(outside, before[1])
    for array in (mixture.p, mixture.p_policy, mixture.q_novel):
        with pytest.raises(ValueError):
            array[0] = 1.0


def test_outside_history_mask_by_category():
    history = _history_with([JointArm("o0", "sms", "morning")], ["food"])
    mask = outside_history_mask(ARMS, history, ("category",))
    categories = [ARMS.offer_of(a).category for a in ARMS.arms]
    assert mask.tolist() == [c != "food" for c in categories]


def test_outside_history_mask_over_several_dimensions_means_any_value_is_new():
    history = _history_with([JointArm("o0", "sms", "morning"), JointArm("o2", "email", "morning")],
                            ["food", "travel"])
    by_format = outside_history_mask(ARMS, history, ("format",))
    assert not by_format.any()
    narrow = _history_with([JointArm("o0", "sms", "morning")], ["food"])
    both = outside_history_mask(ARMS, narrow, ("category", "format"))
    expected = [ARMS.offer_of(a).category != "food" or a.format != "sms" for a in ARMS.arms]
    assert both.tolist() == expected
    by_offer = outside_history_mask(ARMS, narrow, ("offer",))
    assert by_offer.tolist() == [a.offer_id != "o0" for a in ARMS.arms]


def test_new_customer_has_the_whole_catalogue_outside_and_gets_a_uniform_floor():
    mask = outside_history_mask(ARMS, UserHistory.empty(), ("category",))
    assert mask.all()
    p_policy = _random_pmf(10, 2)
    config = NoveltyConfig(beta=0.2, floor=0.5, floor_spread="arm")
    mixture = mix_for_history(p_policy, ARMS, UserHistory.empty(), config)
    np.testing.assert_allclose(mixture.p, (1 - 0.2 * 0.5) * p_policy + 0.2 * 0.5 / 10, rtol=1e-12)
    # Per category (the default): food has 4 arms, travel, books and games 2 each; a quarter of the floor
    # goes to each category.
    per_category = mix_for_history(p_policy, ARMS, UserHistory.empty(), NoveltyConfig(beta=0.2, floor=0.5))
    floor = np.array([0.25 / CATEGORIES.count(c) for c in CATEGORIES])
    np.testing.assert_allclose(per_category.p, (1 - 0.2 * 0.5) * p_policy + 0.2 * 0.5 * floor, rtol=1e-12)


def test_history_outside_the_horizon_is_novel_again():
    store = UserHistoryStore(HistoryConfig(horizon_s=50.0))
    store.record_contact("u", event_id="e", when=0.0, arm=JointArm("o0", "sms", "morning"), category="food",
                         counts=True)
    assert not outside_history_mask(ARMS, store.snapshot("u", 10.0), ("category",))[0]
    assert outside_history_mask(ARMS, store.snapshot("u", 60.0), ("category",))[0]


def test_beta_shrinks_with_history_down_to_beta_min():
    config = NoveltyConfig(beta=0.4, shrink_half_life=10.0, beta_min=0.05)
    assert config.beta_for(0) == 0.4
    assert math.isclose(config.beta_for(10), 0.2)
    assert math.isclose(config.beta_for(30), 0.1)
    assert config.beta_for(10_000) == 0.05
    assert NoveltyConfig(beta=0.4).beta_for(10_000) == 0.4


def test_mix_for_history_uses_the_shrunk_beta():
    history = _history_with([JointArm("o0", "sms", "morning")] * 1, ["food"])
    config = NoveltyConfig(beta=0.3, shrink_half_life=1.0)
    mixture = mix_for_history(_random_pmf(10, 1), ARMS, history, config)
    assert math.isclose(mixture.beta, 0.15)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"beta": -0.1}, "beta"),
        ({"beta": 1.5}, "beta"),
        ({"beta": float("nan")}, "beta"),
        ({"beta": "0.1"}, "beta"),
        ({"floor": -0.01}, "floor"),
        ({"floor": 2.0}, "floor"),
        ({"beta": 0.1, "beta_min": 0.2}, "beta_min"),
        ({"beta_min": -1.0}, "beta_min"),
        ({"dimensions": ("colour",)}, "dimensions"),
        ({"dimensions": ()}, "dimensions"),
        ({"dimensions": "category"}, "dimensions"),
        ({"dimensions": ("category", "category")}, "dimensions"),
        ({"shrink_half_life": 0.0}, "shrink_half_life"),
        ({"shrink_half_life": -3.0}, "shrink_half_life"),
        ({"shrink_half_life": float("inf")}, "shrink_half_life"),
    ],
)
def test_invalid_novelty_config_names_the_field(kwargs, field):
    with pytest.raises(InvalidInput) as info:
        NoveltyConfig(**kwargs)
    assert info.value.field == field
    assert field in str(info.value)


@pytest.mark.parametrize(
    "p_policy, outside, beta, floor, field",
    [
        (np.array([0.5, 0.6]), np.array([True, False]), 0.1, 0.5, "p_policy"),
        (np.array([1.2, -0.2]), np.array([True, False]), 0.1, 0.5, "p_policy"),
        (np.array([np.nan, 1.0]), np.array([True, False]), 0.1, 0.5, "p_policy"),
        (np.array([[0.5, 0.5]]), np.array([[True, False]]), 0.1, 0.5, "p_policy"),
        (np.array([]), np.array([], dtype=bool), 0.1, 0.5, "p_policy"),
        (np.array([0.5, 0.5]), np.array([1, 0]), 0.1, 0.5, "outside"),
        (np.array([0.5, 0.5]), np.array([True]), 0.1, 0.5, "outside"),
        (np.array([0.5, 0.5]), np.array([True, False]), 1.1, 0.5, "beta_eff"),
        (np.array([0.5, 0.5]), np.array([True, False]), 0.1, -0.5, "floor"),
    ],
)
def test_invalid_mixture_input_names_the_field(p_policy, outside, beta, floor, field):
    with pytest.raises(InvalidInput) as info:
        novelty_mixture(p_policy, outside, beta, floor)
    assert info.value.field == field


# --- what counts as history, and the floor spread per category -------------------------------------------

FOOD_SMS = JointArm("o0", "sms", "morning")
TRAVEL_SMS = JointArm("o2", "sms", "morning")


def _store_with(contacts: list[tuple[JointArm, str, float | None]]) -> UserHistory:
    """A history from (arm, category, reward or None) contacts, one second apart."""
    store = UserHistoryStore(HistoryConfig())
    for i, (arm, category, reward) in enumerate(contacts):
        store.record_contact("u", event_id=f"e{i}", when=float(i), arm=arm, category=category, counts=True)
        if reward is not None:
            store.record_response("u", event_id=f"e{i}", when=float(i), arm=arm, category=category, reward=reward)
    return store.snapshot("u", 100.0)


def test_history_basis_decides_which_categories_are_familiar():
    # food shown twice, answered once; travel shown once, never answered.
    history = _store_with([(FOOD_SMS, "food", 1.0), (FOOD_SMS, "food", 0.0), (TRAVEL_SMS, "travel", 0.0)])

    def novel(basis: str, k: int = 1) -> set[str]:
        mask = outside_history_mask(ARMS, history, ("category",), basis=basis, min_shown=k)
        return {c for c, m in zip(CATEGORIES, mask) if m}

    assert novel("shown") == {"books", "games"}
    assert novel("responded") == {"travel", "books", "games"}
    assert novel("shown_min_k", 1) == {"books", "games"}
    assert novel("shown_min_k", 2) == {"travel", "books", "games"}
    assert novel("shown_min_k", 3) == {"travel", "books", "games"}  # food was answered: familiar anyway
    unanswered = _store_with([(FOOD_SMS, "food", 0.0), (FOOD_SMS, "food", None)])
    assert outside_history_mask(ARMS, unanswered, ("category",), basis="responded").all()
    assert outside_history_mask(ARMS, unanswered, ("category",), basis="shown_min_k", min_shown=3).all()
    assert not outside_history_mask(ARMS, unanswered, ("category",), basis="shown_min_k", min_shown=2)[0]


def test_mix_for_history_uses_the_configured_basis():
    history = _store_with([(FOOD_SMS, "food", 0.0)])
    p_policy = _random_pmf(10, 4)
    shown = mix_for_history(p_policy, ARMS, history, NoveltyConfig(beta=0.2, floor=0.5, history_basis="shown"))
    responded = mix_for_history(p_policy, ARMS, history, NoveltyConfig(beta=0.2, floor=0.5, history_basis="responded",
                                                                       floor_spread="arm"))
    food = np.array([c == "food" for c in CATEGORIES])
    assert np.all(shown.q_novel[food] == 0) and np.all(responded.q_novel[food] > 0)
    np.testing.assert_allclose(responded.p, (1 - 0.2 * 0.5) * p_policy + 0.2 * 0.5 / 10, rtol=1e-12)


@pytest.mark.parametrize("beta, floor", [(0.1, 1.0), (0.3, 0.5), (0.7, 0.2)])
def test_floor_spread_per_category_splits_the_floor_evenly_over_novel_categories(beta, floor):
    p_policy = _random_pmf(10, 8)
    outside = np.array([c != "travel" for c in CATEGORIES])  # food (4 arms), books (2), games (2)
    groups = np.array([{"food": 0, "travel": 1, "books": 2, "games": 3}[c] for c in CATEGORIES])
    mixture = novelty_mixture(p_policy, outside, beta, floor, groups=groups)

    restricted = np.where(outside, p_policy, 0.0)
    per_arm_floor = np.array([0.0 if c == "travel" else 1 / 3 / CATEGORIES.count(c) for c in CATEGORIES])
    expected_q = (1 - floor) * restricted / restricted.sum() + floor * per_arm_floor
    np.testing.assert_allclose(mixture.q_novel, expected_q, rtol=1e-12, atol=0)
    np.testing.assert_allclose(mixture.p, (1 - beta) * p_policy + beta * expected_q, rtol=1e-12, atol=0)
    assert math.isclose(mixture.p.sum(), 1.0, abs_tol=1e-12)
    floor_mass = {c: floor * sum(w for w, cc in zip(per_arm_floor, CATEGORIES) if cc == c) for c in ("food", "books")}
    assert math.isclose(floor_mass["food"], floor_mass["books"])  # four food arms do not take more floor


def test_mix_for_history_spreads_the_floor_per_category_when_configured():
    history = _store_with([(TRAVEL_SMS, "travel", None)])
    p_policy = np.full(10, 0.1)
    mixture = mix_for_history(p_policy, ARMS, history, NoveltyConfig(beta=0.5, floor=1.0, floor_spread="category"))
    by_category = {c: sum(q for q, cc in zip(mixture.q_novel, CATEGORIES) if cc == c) for c in set(CATEGORIES)}
    assert by_category["travel"] == 0.0
    for category in ("food", "books", "games"):
        assert math.isclose(by_category[category], 1 / 3)
    plain = mix_for_history(p_policy, ARMS, history, NoveltyConfig(beta=0.5, floor=1.0, floor_spread="arm"))
    assert math.isclose(sum(q for q, c in zip(plain.q_novel, CATEGORIES) if c == "food"), 0.5)  # 4 of 8 arms


def test_beta_zero_is_the_policy_bit_for_bit_whatever_the_basis_and_spread():
    history = _store_with([(FOOD_SMS, "food", 1.0)])
    p_policy = _random_pmf(10, 9)
    for basis in ("shown", "responded", "shown_min_k"):
        for spread in ("arm", "category"):
            config = NoveltyConfig(beta=0.0, history_basis=basis, min_shown=2, floor_spread=spread)
            mixture = mix_for_history(p_policy, ARMS, history, config)
            assert mixture.p.tobytes() == p_policy.tobytes() and mixture.beta == 0.0


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"history_basis": "clicked"}, "history_basis"),
        ({"history_basis": None}, "history_basis"),
        ({"floor_spread": "offer"}, "floor_spread"),
        ({"floor_spread": ""}, "floor_spread"),
        ({"min_shown": 0}, "min_shown"),
        ({"min_shown": 1.5}, "min_shown"),
        ({"min_shown": True}, "min_shown"),
        ({"min_shown": 10**6}, "min_shown"),
    ],
)
def test_invalid_history_basis_and_spread_name_the_field(kwargs, field):
    with pytest.raises(InvalidInput) as info:
        NoveltyConfig(**kwargs)
    assert info.value.field == field


@pytest.mark.parametrize(
    "groups",
    [np.array([0, 1]), np.array([0.0, 1.0, 1.0]), np.array(["a", "b", "c"])],
)
def test_invalid_groups_name_the_field(groups):
    with pytest.raises(InvalidInput) as info:
        novelty_mixture(np.array([0.2, 0.3, 0.5]), np.array([True, True, False]), 0.1, 0.5, groups=groups)
    assert info.value.field == "groups"


def test_invalid_basis_for_the_mask_names_the_field():
    with pytest.raises(InvalidInput) as info:
        outside_history_mask(ARMS, UserHistory.empty(), ("category",), basis="seen")
    assert info.value.field == "basis"

"""The seeded two-stage draw: seeds, reproducibility, draw frequencies, component frequencies, labels."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from offerbandit.errors import InvalidInput
from policies.history import HistoryConfig, UserHistoryStore
from policies.novelty import NoveltyConfig, mix_for_history, novelty_mixture, outside_history_mask
from policies.sampler import (
    EXPLOIT,
    EXPLORE,
    EXPLORE_OUTSIDE_HISTORY,
    Draw,
    event_seed,
    exploration_label,
    two_stage_draw,
)
from policies.types import ArmSet, JointArm, Offer

SECRET = b"0123456789abcdef0123456789abcdef"
P_POLICY = np.array([0.05, 0.4, 0.1, 0.15, 0.0, 0.2, 0.1])
OUTSIDE = np.array([True, False, False, True, True, False, True])
N_DRAWS = 40_000


def _seeds(n: int, campaign: str = "c") -> list[int]:
    return [event_seed(SECRET, campaign, f"event-{i}") for i in range(n)]


def test_event_seed_is_deterministic_and_keyed():
    seed = event_seed(SECRET, "sms_winback", "ev-1")
    assert seed == event_seed(SECRET, "sms_winback", "ev-1")
    assert 0 <= seed < 2**64
    assert seed != event_seed(SECRET, "sms_winback", "ev-2")
    assert seed != event_seed(SECRET, "homepage", "ev-1")
    assert seed != event_seed(b"another-secret-of-enough-length!", "sms_winback", "ev-1")
    # Fields are length-prefixed: moving characters between campaign and event id changes the seed.
    assert event_seed(SECRET, "ab", "c") != event_seed(SECRET, "a", "bc")


@pytest.mark.parametrize(
    "secret, campaign, event_id, field",
    [(b"", "c", "e", "secret"), ("text-secret", "c", "e", "secret"), (None, "c", "e", "secret"),
     (SECRET, None, "e", "campaign"), (SECRET, "c", 42, "event_id")],
)
def test_event_seed_rejects_bad_input(secret, campaign, event_id, field):
    with pytest.raises(InvalidInput) as info:
        event_seed(secret, campaign, event_id)
    assert info.value.field == field


def test_same_seed_same_draw():
    mixture = novelty_mixture(P_POLICY, OUTSIDE, 0.3, 0.5)
    for seed in _seeds(200):
        assert two_stage_draw(mixture, seed) == two_stage_draw(mixture, seed)
    draws = {two_stage_draw(mixture, s).index for s in _seeds(200)}
    assert len(draws) > 3  # different seeds do move the draw


def test_probability_is_the_mixture_probability_and_zero_arms_are_never_drawn():
    mixture = novelty_mixture(P_POLICY, OUTSIDE, 0.3, 0.0)
    assert mixture.p[4] == 0.0  # policy gives it nothing, and no floor in the novelty component
    for seed in _seeds(5_000):
        draw = two_stage_draw(mixture, seed)
        assert draw.probability == mixture.p[draw.index]
        assert draw.index != 4


GROUPS = np.array([0, 0, 1, 1, 1, 2, 2])


@pytest.mark.parametrize("beta, floor, groups", [(0.0, 0.5, None), (0.3, 0.5, None), (0.8, 0.2, None),
                                                  (0.6, 0.7, GROUPS)])
def test_draw_frequencies_match_the_mixture(beta, floor, groups):
    mixture = novelty_mixture(P_POLICY, OUTSIDE, beta, floor, groups=groups)
    indices = np.array([two_stage_draw(mixture, s).index for s in _seeds(N_DRAWS)])
    observed = np.bincount(indices, minlength=len(P_POLICY))
    drawable = mixture.p > 0
    assert observed[~drawable].sum() == 0
    result = stats.chisquare(observed[drawable], N_DRAWS * mixture.p[drawable])
    assert result.pvalue > 1e-6, (observed, N_DRAWS * mixture.p)


def test_component_frequencies_match_beta():
    beta = 0.25
    mixture = novelty_mixture(P_POLICY, OUTSIDE, beta, 0.5)
    draws = [two_stage_draw(mixture, s) for s in _seeds(N_DRAWS)]
    novelty = sum(d.component == "novelty" for d in draws)
    assert stats.binomtest(novelty, N_DRAWS, beta).pvalue > 1e-6
    # Within each component the arms follow that component's pmf.
    novel_idx = np.array([d.index for d in draws if d.component == "novelty"])
    observed = np.bincount(novel_idx, minlength=len(P_POLICY))[OUTSIDE]
    assert stats.chisquare(observed, novelty * mixture.q_novel[OUTSIDE]).pvalue > 1e-6


def test_narrow_history_gets_novelty_draws_only_outside_it():
    offers = [Offer(f"o{i}", {"category": c}) for i, c in enumerate(["food", "food", "travel", "books"])]
    arms = ArmSet.product(offers, ["sms", "email"], ["morning", "evening"])
    store = UserHistoryStore(HistoryConfig())
    store.record_contact("u", event_id="e0", when=0.0, arm=JointArm("o0", "sms", "morning"), category="food",
                         counts=True)
    history = store.snapshot("u", 10.0)
    p_policy = np.full(len(arms), 1.0 / len(arms))
    mixture = mix_for_history(p_policy, arms, history, NoveltyConfig(beta=0.5, floor=0.5))
    outside = outside_history_mask(arms, history, ("category",))

    labels = {EXPLOIT: 0, EXPLORE: 0, EXPLORE_OUTSIDE_HISTORY: 0}
    for seed in _seeds(3_000):
        draw = two_stage_draw(mixture, seed)
        label = exploration_label(draw, mixture.p_policy)
        labels[label] += 1
        if label == EXPLORE_OUTSIDE_HISTORY:
            assert outside[draw.index]
            assert arms.offer_of(arms.arms[draw.index]).category != "food"
    assert all(count > 0 for count in labels.values())


def test_label_exploit_is_the_policy_argmax_with_ties_to_the_lowest_index():
    p_policy = np.array([0.1, 0.4, 0.4, 0.1])
    assert exploration_label(Draw(1, 0.4, "policy"), p_policy) == EXPLOIT
    assert exploration_label(Draw(2, 0.4, "policy"), p_policy) == EXPLORE
    assert exploration_label(Draw(0, 0.1, "policy"), p_policy) == EXPLORE
    assert exploration_label(Draw(1, 0.4, "novelty"), p_policy) == EXPLORE_OUTSIDE_HISTORY


def test_beta_zero_never_draws_from_novelty():
    mixture = novelty_mixture(P_POLICY, OUTSIDE, 0.0, 0.5)
    assert all(two_stage_draw(mixture, s).component == "policy" for s in _seeds(2_000))


@pytest.mark.parametrize("seed", [1.5, "7", None, True])
def test_seed_must_be_an_integer(seed):
    mixture = novelty_mixture(P_POLICY, OUTSIDE, 0.3, 0.5)
    with pytest.raises(InvalidInput) as info:
        two_stage_draw(mixture, seed)
    assert info.value.field == "seed"

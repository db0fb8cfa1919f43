"""The conformance battery fails for the bug each check names: deliberately broken policies and samplers
that the battery must catch, each beside a copy of the check as it was before (which let it pass)."""
from __future__ import annotations

import numpy as np
import pytest

from policies.baselines import UniformPolicy
from policies.conformance import (
    check_draws_follow_mixture,
    check_pmf_batch_matches_pmf,
    check_sampled_arm_has_positive_probability,
    check_served_draws_follow_the_pmf,
)
from policies.conformance import _probe, _trained, reward_of, sample_arm_set, sample_context
from policies.novelty import Mixture, novelty_mixture
from policies.sampler import Draw, two_stage_draw
from policies.types import LearningEvent
from policies.vw import VWPolicy, VWPolicyConfig
from policies.vw.learner import CbAdfLearner


# --- the checks as they were (copies, to show the broken policies got through them) ----------------

def _old_play(policy, rng, rounds):
    events = []
    for _ in range(rounds):
        context, arm_set = sample_context(rng), sample_arm_set(rng)
        pmf = policy.pmf(context, arm_set)
        chosen = int(rng.choice(len(pmf), p=pmf))
        events.append(LearningEvent(context, arm_set, chosen, float(pmf[chosen]),
                                    reward_of(context, arm_set.arms[chosen], rng), pmf.copy()))
    return events


def _old_check_sampled_arm_has_positive_probability(factory):
    policy = _trained(factory)
    events = _old_play(policy, np.random.default_rng(5), 40)
    assert all(event.probability > 0 for event in events)
    assert all(event.pmf is not None and event.pmf[event.chosen] == event.probability for event in events)


def _old_check_pmf_batch_matches_pmf(factory):
    policy = _trained(factory)
    items = _probe()
    batch = policy.pmf_batch(items)
    assert len(batch) == len(items)
    for (context, arm_set), pmf in zip(items, batch):
        np.testing.assert_array_equal(pmf, policy.pmf(context, arm_set))


# --- a policy that draws a fresh "posterior sample" per pmf call ---------------------------------

class _FreshSamplePerCall(UniformPolicy):
    """The Thompson-sampling logging bug: every pmf call puts all the mass on a newly sampled arm, so the
    probability logged with a decision is not the policy's probability of that arm."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__(seed)
        self._rng = np.random.default_rng(seed)

    def pmf(self, context, arm_set):
        super().pmf(context, arm_set)  # the inputs are validated as ever
        pmf = np.zeros(len(arm_set.arms))
        pmf[self._rng.integers(len(pmf))] = 1.0
        return pmf


def test_a_pmf_resampled_per_call_fails_the_sampled_arm_check_and_passed_the_old_one():
    factory = lambda seed: _FreshSamplePerCall(seed)  # noqa: E731
    _old_check_sampled_arm_has_positive_probability(factory)  # read back the probability it had just set
    with pytest.raises(AssertionError, match="probability"):
        check_sampled_arm_has_positive_probability(factory)


# --- VW whose parsed-example cache is keyed by the arm set's offers -------------------------------

def _offers_key(arm_set):
    return tuple(sorted(arm_set.offers)), len(arm_set.arms)


class _CacheKeyedByOffers(CbAdfLearner):
    """A fast-path cache bug: the parsed examples of an arm set are looked up by its offers and its size
    only, so another eligible subset of the same offers and size (other formats or slots dropped) is
    scored with the arms of the first one seen (in training, here)."""

    def _known_arm_set(self, arm_set):
        by_offers = self.__dict__.setdefault("_by_offers", {})
        key = _offers_key(arm_set)
        if key not in by_offers:
            by_offers[key] = super()._known_arm_set(arm_set)
        return by_offers[key]


def _vw_with_offer_keyed_cache(seed):
    config = VWPolicyConfig(seed=seed, bits=18)
    return VWPolicy(config, _learner=_CacheKeyedByOffers(config.options()))


def test_a_cache_bug_shared_by_pmf_and_pmf_batch_fails_the_batch_check_and_passed_the_old_one():
    _old_check_pmf_batch_matches_pmf(_vw_with_offer_keyed_cache)  # both fast paths read the same bad cache
    with pytest.raises(AssertionError):
        check_pmf_batch_matches_pmf(_vw_with_offer_keyed_cache)


class _BatchReversed(UniformPolicy):
    """Scores a batch in reverse order but hands the pmfs back unreversed (tells only when pmfs differ)."""

    def pmf(self, context, arm_set):
        base = super().pmf(context, arm_set)
        weights = np.arange(1, len(base) + 1, dtype=np.float64)
        return weights / weights.sum()

    def pmf_batch(self, items):
        return [self.pmf(context, arm_set) for context, arm_set in items[::-1]]


def test_a_batch_returned_out_of_order_fails_the_batch_check():
    with pytest.raises(AssertionError):
        check_pmf_batch_matches_pmf(lambda seed: _BatchReversed(seed))


def test_vw_reference_pmf_is_the_uncached_path_and_equals_pmf():
    policy = _trained(lambda seed: VWPolicy(VWPolicyConfig(seed=seed, bits=18)))
    broken = _vw_with_offer_keyed_cache(1)
    broken_trained = type(broken).load(policy.save())
    for context, arm_set in _probe():
        np.testing.assert_array_equal(policy.reference_pmf(context, arm_set), policy.pmf(context, arm_set))
        np.testing.assert_array_equal(broken_trained.reference_pmf(context, arm_set), policy.pmf(context, arm_set))


# --- samplers ------------------------------------------------------------------------------------

P_POLICY = np.array([0.05, 0.4, 0.1, 0.15, 0.0, 0.2, 0.1])
OUTSIDE = np.array([True, False, False, True, True, False, True])


def _forgets_the_novelty_stage(mixture: Mixture, seed: int) -> Draw:
    """Draws from the policy component only but logs the mixture's probability (β ignored)."""
    policy_only = Mixture(p=mixture.p, p_policy=mixture.p_policy, q_novel=mixture.q_novel, beta=0.0)
    return two_stage_draw(policy_only, seed)


def _quota_sampler():
    """Deals arms out by exact quotas (a low-discrepancy sequence, not a random draw): frequencies fit
    the pmf far better than chance allows."""
    calls = [0]

    def draw(mixture: Mixture, seed: int) -> Draw:
        u = ((calls[0] * 0.6180339887498949) % 1.0)
        calls[0] += 1
        index = int(np.searchsorted(np.cumsum(mixture.p), u * mixture.p.sum(), side="right"))
        return Draw(index=index, probability=float(mixture.p[index]), component="policy")

    return draw


def test_the_project_sampler_follows_the_mixture():
    for beta in (0.0, 0.3, 0.8):
        check_draws_follow_mixture(two_stage_draw, novelty_mixture(P_POLICY, OUTSIDE, beta, 0.5), seed=int(10 * beta))


def test_a_sampler_that_skips_the_novelty_stage_fails():
    with pytest.raises(AssertionError, match="chi-square"):
        check_draws_follow_mixture(_forgets_the_novelty_stage, novelty_mixture(P_POLICY, OUTSIDE, 0.3, 0.5))


def test_a_sampler_dealing_exact_quotas_fails_the_upper_bound():
    with pytest.raises(AssertionError, match="chi-square"):
        check_draws_follow_mixture(_quota_sampler(), novelty_mixture(P_POLICY, OUTSIDE, 0.3, 0.5))


def test_a_sampler_logging_the_policy_probability_fails():
    def logs_policy_probability(mixture: Mixture, seed: int) -> Draw:
        drawn = two_stage_draw(mixture, seed)
        return Draw(drawn.index, float(mixture.p_policy[drawn.index]), drawn.component)

    with pytest.raises(AssertionError, match="logged"):
        check_draws_follow_mixture(logs_policy_probability, novelty_mixture(P_POLICY, OUTSIDE, 0.3, 0.5))


def test_the_battery_draws_vw_pmfs_with_the_project_sampler():
    check_served_draws_follow_the_pmf(lambda seed: VWPolicy(VWPolicyConfig(seed=seed, bits=18)))

"""The per-customer posterior (`policies/personal.py`, issue 16): SquareCB's formula, the MAP fit, what a
customer's own cells do to their pmf, and VW's posterior mode (VW sees the context only; the pmf is the
posterior over VW's predicted rewards, exactly)."""
from __future__ import annotations

import numpy as np
import pytest

from offerbandit.errors import InvalidInput
from policies.personal import PersonalPosterior, _fit, personal_pmf, squarecb_pmf
from policies.types import (ArmSet, CustomerFeatures, DecisionContext, LearningEvent, Offer, cell_key,
                            split_cell_key)
from policies.vw import VWPolicy, VWPolicyConfig

OFFERS = (Offer("t1", {"category": "travel"}), Offer("t2", {"category": "travel"}),
          Offer("f1", {"category": "food"}), Offer("b1", {"category": "books"}))
ARMS = ArmSet.product(OFFERS, ("sms", "email", "push"), ("morning", "evening"))
K = len(ARMS)


def _cells(**counts: tuple[int, int]) -> CustomerFeatures:
    """Customer features with only cell counts: ``travel__sms__morning=(shown, responded)``."""
    return CustomerFeatures({"cell": {cell_key(*name.split("__")): value for name, value in counts.items()}})


def _index(offer: str, fmt: str, slot: str) -> int:
    return next(i for i, a in enumerate(ARMS.arms) if (a.offer_id, a.format, a.time_slot) == (offer, fmt, slot))


def test_squarecb_pmf_is_the_formula_and_shares_the_best_mass_between_ties():
    pmf = squarecb_pmf(np.array([0.0, -1.0, -2.0]), gamma=10.0)
    np.testing.assert_allclose(pmf, [1 - 1 / 13 - 1 / 23, 1 / 13, 1 / 23], rtol=1e-12)
    tied = squarecb_pmf(np.array([1.0, 1.0, 0.0, -3.0]), gamma=4.0)
    assert tied[0] == tied[1] == pytest.approx((1 - 1 / 8 - 1 / 20) / 2, rel=1e-12)
    assert tied[2] == pytest.approx(1 / 8) and tied[3] == pytest.approx(1 / 20)


def test_the_fit_reaches_the_posterior_mode():
    """At the returned weights the log-posterior's gradient vanishes (a wrong Newton step would not)."""
    rng = np.random.default_rng(7)
    x = np.c_[np.ones(12), rng.integers(0, 2, size=(12, 4))].astype(float)
    offset = rng.normal(-3.0, 0.5, size=12)
    shown = rng.integers(1, 6, size=12).astype(float)
    responded = np.minimum(shown, rng.integers(0, 3, size=12)).astype(float)
    precision = np.array([1.0, 0.5, 0.5, 0.5, 0.5])
    w, hessian = _fit(x, offset, shown, responded, precision, steps=25)
    p = 1 / (1 + np.exp(-(offset + x @ w)))
    gradient = x.T @ (shown * p - responded) + precision * w
    assert np.abs(gradient).max() < 1e-9
    np.testing.assert_allclose(hessian, (x.T * (shown * p * (1 - p))) @ x + np.diag(precision), rtol=1e-12)
    assert np.abs(w).max() > 0.05  # the data moved it off the prior mean


def test_a_cold_customer_gets_the_population_ranking():
    rates = np.linspace(0.03, 0.2, K)
    pmf = personal_pmf(PersonalPosterior(), ARMS, rates, CustomerFeatures())
    assert pmf.argmax() == K - 1 and np.all(np.diff(pmf[:-1]) > 0)  # every arm's width is the same
    assert pmf.sum() == pytest.approx(1.0, abs=1e-12) and (pmf > 0).all()


def test_population_rates_are_clipped_to_the_floor_and_shrunk_toward_their_mean():
    """The offsets: logit of the rates clipped to [floor, 1 - floor], shrunk by population_weight (cold customer,
    ucb 0: the scores are the offsets, so SquareCB's pmf gives them back); arms under the floor tie there and
    share the best mass when nothing beats them."""
    rates = np.linspace(-0.02, 0.3, K)
    config = PersonalPosterior(ucb=0.0, gamma=50.0, rate_floor=0.02, population_weight=0.3)
    clipped = np.clip(rates, 0.02, 0.98)
    logits = np.log(clipped / (1 - clipped))
    offsets = logits.mean() + 0.3 * (logits - logits.mean())
    pmf = personal_pmf(config, ARMS, rates, CustomerFeatures())
    np.testing.assert_allclose(pmf, squarecb_pmf(offsets, 50.0), rtol=1e-12)
    assert pmf[0] == pmf[1] and rates[1] < 0.02
    # at full weight the gaps are the raw log-odds' (a wider pmf gap)
    full = personal_pmf(PersonalPosterior(ucb=0.0, gamma=50.0, population_weight=1.0), ARMS, rates,
                        CustomerFeatures())
    assert full[-1] > pmf[-1]
    low = personal_pmf(config, ARMS, np.full(K, 0.001), CustomerFeatures())
    np.testing.assert_allclose(low, np.full(K, 1 / K), rtol=1e-12)


def test_a_customers_answers_beat_the_population_favourite():
    rates = np.full(K, 0.02)
    rates[_index("b1", "push", "evening")] = 0.08  # what the population likes best
    customer = _cells(travel__sms__morning=(4, 3), books__push__evening=(3, 0))
    pmf = personal_pmf(PersonalPosterior(ucb=0.0), ARMS, rates, customer)  # the means (optimism aside)
    best = ARMS.arms[pmf.argmax()]
    assert (ARMS.offer_of(best).category, best.format, best.time_slot) == ("travel", "sms", "morning")
    cold = personal_pmf(PersonalPosterior(), ARMS, rates, CustomerFeatures())
    assert cold.argmax() == _index("b1", "push", "evening")


def test_optimism_tries_an_unseen_format_or_slot_in_the_answered_category():
    """Answered travel by SMS in the morning once in four: greedy (ucb 0) stays on that arm; with the
    optimism bonus a travel arm in a format or slot never tried wins, and push in the morning outweighs it."""
    rates = np.full(K, 0.03)
    customer = _cells(travel__sms__morning=(4, 1))
    sms, push = _index("t1", "sms", "morning"), _index("t1", "push", "morning")
    greedy = personal_pmf(PersonalPosterior(ucb=0.0), ARMS, rates, customer)
    assert greedy.argmax() in (sms, _index("t2", "sms", "morning")) and greedy[sms] > greedy[push]
    optimistic = personal_pmf(PersonalPosterior(ucb=1.0), ARMS, rates, customer)
    best = ARMS.arms[optimistic.argmax()]
    assert ARMS.offer_of(best).category == "travel" and (best.format, best.time_slot) != ("sms", "morning")
    assert optimistic[push] > optimistic[sms]


def test_cells_this_version_cannot_read_are_ignored_and_values_outside_the_arms_still_fit():
    rates = np.full(K, 0.03)
    odd = CustomerFeatures({"cell": {"not-a-cell": (5, 5), cell_key("garden", "fax", "night"): (3, 3)}})
    pmf = personal_pmf(PersonalPosterior(), ARMS, rates, odd)
    assert pmf.sum() == pytest.approx(1.0, abs=1e-12) and (pmf > 0).all()
    # three answers elsewhere raise this customer's intercept: every arm alike, so the ranking stays flat
    assert np.ptp(pmf) < 1e-12


@pytest.mark.parametrize("values", [("a", "b", "c"), ("a%1f", "\x1f", "%25%"), ("", "", ""), ("x\x1fy", "%", "1f")])
def test_cell_keys_split_back_into_their_values(values):
    assert split_cell_key(cell_key(*values)) == values


def test_settings_are_checked_with_the_field_named():
    with pytest.raises(InvalidInput, match="personal_ucb"):
        VWPolicyConfig(personal_ucb=-1.0)
    with pytest.raises(InvalidInput, match="personal_model"):
        VWPolicyConfig(personal_model="magic")
    with pytest.raises(InvalidInput, match="personal_gamma"):
        PersonalPosterior(gamma=0.0)


def _context(customer: CustomerFeatures | None, segment: str = "a") -> DecisionContext:
    return DecisionContext(user_key="u", context={"segment": segment}, customer=customer)


def _events(customer: CustomerFeatures | None, n: int = 40) -> list[LearningEvent]:
    rng = np.random.default_rng(3)
    events = []
    for i in range(n):
        chosen = int(rng.integers(K))
        events.append(LearningEvent(_context(customer, "ab"[i % 2]), ARMS, chosen, 1 / K,
                                    float(ARMS.arms[chosen].format == "sms")))
    return events


def test_posterior_mode_keeps_customer_features_out_of_vw():
    """Learning the same events with or without customer features leaves the same model bytes; in match mode
    the features change what VW learns."""
    customer = CustomerFeatures({"category": {"travel": (3, 2)}, "format": {"sms": (3, 2)},
                                 "cell": {cell_key("travel", "sms", "morning"): (3, 2)}})
    saved = []
    for mode in ("posterior", "match"):
        with_features, without = (VWPolicy(VWPolicyConfig(seed=1, bits=18, personal_model=mode)) for _ in range(2))
        with_features.learn(_events(customer))
        without.learn(_events(None))
        saved.append(with_features.save() == without.save())
    assert saved == [True, False]


def test_posterior_mode_pmf_is_the_posterior_over_vws_predicted_rewards():
    policy = VWPolicy(VWPolicyConfig(seed=1, bits=18, personal_model="posterior", personal_ucb=0.5))
    policy.learn(_events(None))
    customer = _cells(food__push__evening=(3, 3))
    context = _context(customer)
    costs = policy._learner.predict_costs_uncached(_context(None), ARMS)
    expected = personal_pmf(policy.config.posterior(), ARMS, -costs, customer)
    np.testing.assert_allclose(policy.pmf(context, ARMS), expected, rtol=1e-12, atol=0)
    np.testing.assert_allclose(policy.pmf_batch([(context, ARMS)])[0], expected, rtol=1e-12, atol=0)
    assert ARMS.arms[int(expected.argmax())].offer_id == "f1"
    # VW learned sms from these events: its predicted rewards rank sms first for a cold customer
    cold = policy.pmf(_context(None), ARMS)
    assert ARMS.arms[int(cold.argmax())].format == "sms"
    # the bytes carry the mode and the settings
    loaded = VWPolicy.load(policy.save())
    assert loaded.config == policy.config
    np.testing.assert_allclose(loaded.pmf(context, ARMS), expected, rtol=1e-12, atol=0)


def test_the_layout_cache_is_bounded_in_bytes_and_gives_the_same_pmf():
    from policies.personal import PersonalModel, _Layout

    layout_bytes = _Layout.of(ARMS).nbytes
    model = PersonalModel(PersonalPosterior(), cache_bytes=3 * layout_bytes)
    rates = np.linspace(0.03, 0.2, K)
    customer = _cells(travel__sms__morning=(3, 1))
    sets = [ArmSet(ARMS.arms, ARMS.offers) for _ in range(6)]  # equal, distinct objects: one layout each
    for arm_set in sets:
        np.testing.assert_array_equal(model.pmf(arm_set, rates, customer),
                                      personal_pmf(PersonalPosterior(), arm_set, rates, customer))
    assert len(model._layouts) == 3 and model._layouts.nbytes <= 3 * layout_bytes
    kept = [arm_set for arm_set, _ in (entry for entry, _ in model._layouts._lru._items.values())]
    assert len(kept) == 3 and all(a is b for a, b in zip(kept, sets[3:]))  # the most recent kept (by identity)
    assert PersonalModel(PersonalPosterior(), cache_bytes=0).pmf(ARMS, rates, customer).sum() == pytest.approx(1.0)

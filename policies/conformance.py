"""The conformance battery every policy must pass (after River's ``checks`` package).

``check_policy(factory)`` runs every check on policies built by ``factory`` (``seed -> Policy``) and
raises ``AssertionError`` naming the first check that fails; ``yield_checks(factory)`` yields the
checks one by one (each takes the factory), so ``tests/policies/test_policies_conformance.py`` runs
every check for every registered policy as its own test. A new policy passes when
``check_policy(lambda seed: MyPolicy(seed=seed))`` returns.

The data is a small seeded world; arms are drawn from the policy's own pmf with the project's sampler
(`policies.sampler.two_stage_draw`, seeds from a numpy Generator), so learning always sees what the
server would log: the probability of an event is the one the sampler returns, never one the battery sets.

Each check compares the policy against something it cannot share a bug with: the sampled arm's
probability against a fresh load of the saved policy; ``pmf_batch`` and ``pmf`` against a fresh load per
decision, through the policy's slow reference path (``reference_pmf``) when it has one; the sampler's
draw frequencies against the mixture (chi-square, bounded on both sides). ``check_draws_follow_mixture``
is the sampler's frequency test on its own, for any draw function.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import numpy as np

from offerbandit.errors import InvalidInput, ModelError
from policies.contract import Policy
from policies.factory import make_policy, policy_names
from policies.novelty import Mixture, novelty_mixture
from policies.sampler import Draw, two_stage_draw
from policies.types import (CUSTOMER_FEATURE_DIMENSIONS, ArmSet, CustomerFeatures, DecisionContext, JointArm,
                            LearningEvent, Offer, cell_key)

__all__ = ["DrawFunction", "PolicyFactory", "check_draws_follow_mixture", "check_policy", "registered_factories",
           "served_mixture", "yield_checks"]

PolicyFactory = Callable[[int], Policy]
#: what draws one arm from a mixture with a seed (the project's is `two_stage_draw`)
DrawFunction = Callable[[Mixture, int], Draw]

#: how the battery builds each registered policy for a seed (small hash tables keep it fast)
TEST_PARAMS: dict[str, Callable[[int], dict]] = {
    "vw": lambda seed: {"seed": seed, "bits": 18},
    "uniform": lambda seed: {},
    "best_single_arm": lambda seed: {"epsilon": 0.1},
    "per_segment_greedy": lambda seed: {"epsilon": 0.1},
}


def registered_factories() -> dict[str, PolicyFactory]:
    """A factory for every policy name the policy factory knows, built from its `TEST_PARAMS`."""
    missing = set(policy_names()) - set(TEST_PARAMS)
    assert not missing, f"registered policies without test parameters: {sorted(missing)}"
    return {name: (lambda seed, name=name: make_policy(name, **TEST_PARAMS[name](seed))) for name in policy_names()}


# --- a tiny world ------------------------------------------------------------------------------

OFFERS = tuple(Offer(f"offer-{i}", {"category": f"cat-{i % 3}", "discount": f"{5 * i}%"}) for i in range(5))
FORMATS = ("sms", "email", "push")
SLOTS = ("morning", "evening")


def sample_arm_set(rng: np.random.Generator) -> ArmSet:
    """A random eligible subset (>= 1 arm) of the 30-arm catalogue, in catalogue order."""
    full = ArmSet.product(OFFERS, FORMATS, SLOTS)
    keep = rng.random(len(full.arms)) < 0.7
    keep[rng.integers(len(full.arms))] = True
    return ArmSet(tuple(arm for arm, kept in zip(full.arms, keep) if kept), full.offers)


def sample_customer(rng: np.random.Generator) -> CustomerFeatures | None:
    """Per-customer counts as a decision logs them (None, a cold customer, half the time): a few contacts
    of the catalogue, some answered, counted per value and per (category, format, slot) cell."""
    if rng.random() < 0.5:
        return None
    counts: dict[str, dict[str, list[int]]] = {name: {} for name, _ in CUSTOMER_FEATURE_DIMENSIONS}
    for _ in range(int(rng.integers(1, 6))):
        offer = OFFERS[rng.integers(len(OFFERS))]
        fmt, slot = FORMATS[rng.integers(len(FORMATS))], SLOTS[rng.integers(len(SLOTS))]
        answered = int(rng.random() < 0.4)
        for name, value in (("category", offer.category), ("format", fmt), ("time_slot", slot),
                            ("offer", offer.id), ("cell", cell_key(offer.category, fmt, slot))):
            pair = counts[name].setdefault(value, [0, 0])
            pair[0] += 1
            pair[1] += answered
    return CustomerFeatures({name: {v: (s, r) for v, (s, r) in values.items()} for name, values in counts.items()})


def sample_context(rng: np.random.Generator) -> DecisionContext:
    return DecisionContext(
        user_key=f"user-{rng.integers(1000)}",
        context={"segment": f"seg-{rng.integers(3)}", "device": ("ios", "android")[rng.integers(2)]},
        numeric={"tenure": float(rng.integers(0, 60))},
        customer=sample_customer(rng),
    )


def reward_of(context: DecisionContext, arm: JointArm, rng: np.random.Generator) -> float:
    segment = int(context.context["segment"][-1])
    best = arm.offer_id == f"offer-{segment}" and arm.format == FORMATS[segment]
    return float(rng.random() < (0.8 if best else 0.1))


def served_mixture(pmf: np.ndarray) -> Mixture:
    """The mixture the server draws from when no arm is outside the history (β = 0: p is the pmf)."""
    return novelty_mixture(pmf, np.zeros(len(pmf), dtype=bool), 0.0, 0.0)


def play(policy: Policy, rng: np.random.Generator, rounds: int, *,
         draw: DrawFunction = two_stage_draw) -> list[LearningEvent]:
    """Decide ``rounds`` times with ``policy`` and return the logged events: the arm and its probability
    come from ``draw`` (the project's sampler) on the policy's pmf, with a seed from ``rng``."""
    events = []
    for _ in range(rounds):
        context, arm_set = sample_context(rng), sample_arm_set(rng)
        pmf = policy.pmf(context, arm_set)
        drawn = draw(served_mixture(pmf), int(rng.integers(0, 2**63)))
        events.append(LearningEvent(context, arm_set, drawn.index, drawn.probability,
                                    reward_of(context, arm_set.arms[drawn.index], rng), pmf.copy()))
    return events


def _probe(seed: int = 99, count: int = 8) -> list[tuple[DecisionContext, ArmSet]]:
    rng = np.random.default_rng(seed)
    return [(sample_context(rng), sample_arm_set(rng)) for _ in range(count)]


def _trained(factory: PolicyFactory, seed: int = 1, rounds: int = 60) -> Policy:
    policy = factory(seed)
    rng = np.random.default_rng(seed)
    for _ in range(3):
        policy.learn(play(policy, rng, rounds // 3))
    return policy


# --- checks ------------------------------------------------------------------------------------

def check_pmf_is_a_distribution(factory: PolicyFactory) -> None:
    for policy in (factory(0), _trained(factory)):
        for context, arm_set in _probe():
            pmf = policy.pmf(context, arm_set)
            assert isinstance(pmf, np.ndarray) and pmf.dtype == np.float64, "pmf must be a float64 array"
            assert pmf.shape == (len(arm_set.arms),), f"pmf shape {pmf.shape} != ({len(arm_set.arms)},)"
            assert np.isfinite(pmf).all() and (pmf >= 0).all(), "pmf entries must be finite and >= 0"
            assert abs(pmf.sum() - 1.0) <= 1e-9, f"pmf sums to {pmf.sum()!r}"


def check_single_arm_gets_probability_one(factory: PolicyFactory) -> None:
    arm_set = ArmSet((JointArm(OFFERS[0].id, "sms", "morning"),), {OFFERS[0].id: OFFERS[0]})
    pmf = _trained(factory).pmf(sample_context(np.random.default_rng(0)), arm_set)
    assert pmf.shape == (1,) and abs(pmf[0] - 1.0) <= 1e-9


def _independent_pmf(saved: bytes, policy_class: type, context: DecisionContext, arm_set: ArmSet) -> np.ndarray:
    """One decision's pmf from a fresh load of the saved policy (no cache, order or state shared with any
    other decision), through its slow reference path (``reference_pmf``) when it has one."""
    fresh = policy_class.load(saved)
    reference = getattr(fresh, "reference_pmf", None)
    return reference(context, arm_set) if reference is not None else fresh.pmf(context, arm_set)


def check_pmf_batch_matches_pmf(factory: PolicyFactory) -> None:
    """``pmf_batch`` (in order and reversed) and ``pmf`` both equal each decision's pmf computed on its own
    by a fresh load (a cache or batching bug the two fast paths share cannot hide behind each other)."""
    policy = _trained(factory)
    saved = policy.save()
    items = _probe()
    expected = [_independent_pmf(saved, type(policy), context, arm_set) for context, arm_set in items]
    batch = policy.pmf_batch(items)
    assert len(batch) == len(items)
    backwards = policy.pmf_batch(items[::-1])[::-1]
    for index, ((context, arm_set), reference) in enumerate(zip(items, expected)):
        for what, pmf in (("pmf_batch", batch[index]), ("pmf_batch reversed", backwards[index]),
                          ("pmf", policy.pmf(context, arm_set))):
            np.testing.assert_array_equal(pmf, reference, err_msg=f"{what} of decision {index}")


def check_sampled_arm_has_positive_probability(factory: PolicyFactory) -> None:
    """The arm the sampler drew has probability > 0 under the policy, and the logged probability is that
    probability: checked against a fresh load of the policy as it was when it decided (play does not
    learn), not against the pmf the decision itself returned."""
    policy = _trained(factory)
    saved = policy.save()
    events = play(policy, np.random.default_rng(5), 40)
    again = type(policy).load(saved)
    for index, event in enumerate(events):
        pmf = again.pmf(event.context, event.arm_set)
        assert pmf[event.chosen] > 0, f"decision {index}: drew arm {event.chosen}, of probability 0"
        assert event.probability == pmf[event.chosen], (
            f"decision {index}: logged probability {event.probability!r}, the policy's is {pmf[event.chosen]!r}")


def _pooled_chi_square(counts: np.ndarray, expected: np.ndarray) -> float:
    """Chi-square p-value with the cells expecting fewer than 5 draws pooled into one."""
    from scipy import stats

    big = expected >= 5
    observed_cells, expected_cells = counts[big], expected[big]
    if (~big).any():
        observed_cells = np.append(observed_cells, counts[~big].sum())
        expected_cells = np.append(expected_cells, expected[~big].sum())
        if expected_cells[-1] < 5:  # too little to pool: merge it into the largest cell
            largest = int(np.argmax(expected_cells[:-1]))
            observed_cells[largest] += observed_cells[-1]
            expected_cells[largest] += expected_cells[-1]
            observed_cells, expected_cells = observed_cells[:-1], expected_cells[:-1]
    if len(expected_cells) < 2:
        return 0.5  # one cell: every draw is in it by construction, nothing to test
    return float(stats.chisquare(observed_cells, expected_cells * observed_cells.sum() / expected_cells.sum()).pvalue)


def check_draws_follow_mixture(draw: DrawFunction, mixture: Mixture, n_draws: int = 20_000, seed: int = 0,
                               alpha: float = 1e-6) -> None:
    """``n_draws`` draws of ``draw`` (seeds from ``seed``) hit each arm as often as ``mixture.p`` says:
    never an arm of probability 0, a pooled chi-square p-value above ``alpha`` (not too far) and below
    ``1 - alpha`` (not too close: a sampler that deals out exact quotas is no random draw), and each
    logged probability is the mixture's for that arm."""
    seeds = np.random.default_rng(seed).integers(0, 2**63, size=n_draws)
    counts = np.zeros(len(mixture.p), dtype=np.int64)
    for value in seeds:
        drawn = draw(mixture, int(value))
        assert drawn.probability == mixture.p[drawn.index], (
            f"draw logged {drawn.probability!r} for arm {drawn.index}, whose probability is {mixture.p[drawn.index]!r}")
        counts[drawn.index] += 1
    zero = mixture.p == 0
    assert counts[zero].sum() == 0, f"{counts[zero].sum()} draws of arms with probability 0"
    pvalue = _pooled_chi_square(counts[~zero], n_draws * mixture.p[~zero])
    assert alpha < pvalue < 1 - alpha, f"draw frequencies vs the mixture: chi-square p = {pvalue:.3g}"


def check_served_draws_follow_the_pmf(factory: PolicyFactory) -> None:
    """The project's sampler on the trained policy's pmf, mixed with a novelty component over a third of
    the arms (both stages exercised), draws each arm at its mixture probability."""
    policy = _trained(factory)
    context, arm_set = _probe(count=1)[0]
    pmf = policy.pmf(context, arm_set)
    outside = np.arange(len(pmf)) % 3 == 0
    check_draws_follow_mixture(two_stage_draw, novelty_mixture(pmf, outside, 0.3, 0.5))


def check_save_load_round_trip(factory: PolicyFactory) -> None:
    for policy in (factory(0), _trained(factory)):
        restored = type(policy).load(policy.save())
        assert dict(restored.params) == dict(policy.params)
        for context, arm_set in _probe():
            np.testing.assert_array_equal(restored.pmf(context, arm_set), policy.pmf(context, arm_set))


def check_learning_continues_identically_after_load(factory: PolicyFactory) -> None:
    policy = _trained(factory)
    restored = type(policy).load(policy.save())
    more = play(policy, np.random.default_rng(7), 30)
    policy.learn(more)
    restored.learn(more)
    for context, arm_set in _probe():
        np.testing.assert_array_equal(restored.pmf(context, arm_set), policy.pmf(context, arm_set))


def check_same_seed_same_pmfs_and_decisions(factory: PolicyFactory) -> None:
    first, second = _trained(factory, seed=3), _trained(factory, seed=3)
    for context, arm_set in _probe():
        np.testing.assert_array_equal(first.pmf(context, arm_set), second.pmf(context, arm_set))
    draws_first = [(e.chosen, e.probability) for e in play(first, np.random.default_rng(11), 20)]
    draws_second = [(e.chosen, e.probability) for e in play(second, np.random.default_rng(11), 20)]
    assert draws_first == draws_second


def _snapshot(context: DecisionContext, arm_set: ArmSet) -> tuple:
    offers = {key: (offer.id, dict(offer.features)) for key, offer in arm_set.offers.items()}
    return (context.user_key, dict(context.context), dict(context.numeric), context.campaign, arm_set.arms, offers)


def check_inputs_untouched(factory: PolicyFactory) -> None:
    policy = _trained(factory)
    items = _probe()
    snapshot = [_snapshot(context, arm_set) for context, arm_set in items]
    policy.pmf_batch(items)
    for context, arm_set in items:
        policy.pmf(context, arm_set)
    assert [_snapshot(context, arm_set) for context, arm_set in items] == snapshot, "pmf changed its inputs"
    events = play(policy, np.random.default_rng(13), 10)
    pmfs = [event.pmf.copy() for event in events]
    kept = [(e.context, e.arm_set, e.chosen, e.probability, e.reward) for e in events]
    policy.learn(events)
    assert [(e.context, e.arm_set, e.chosen, e.probability, e.reward) for e in events] == kept
    assert all(np.array_equal(event.pmf, pmf) for event, pmf in zip(events, pmfs)), "learn changed a logged pmf"


def _bad_decisions() -> list[tuple[str, object, object]]:
    context = sample_context(np.random.default_rng(0))
    offer = OFFERS[0]
    return [
        ("empty arm set", context, ArmSet((), {offer.id: offer})),
        ("arm of an unknown offer", context, ArmSet((JointArm("nope", "sms", "morning"),), {offer.id: offer})),
        ("duplicate arm", context, ArmSet((JointArm(offer.id, "sms", "morning"),) * 2, {offer.id: offer})),
        ("context is not a DecisionContext", {"segment": "x"}, ArmSet.product(OFFERS[:1], FORMATS, SLOTS)),
    ]


def _bad_events() -> list[tuple[str, LearningEvent]]:
    rng = np.random.default_rng(0)
    context, arm_set = sample_context(rng), ArmSet.product(OFFERS[:2], FORMATS, SLOTS)
    return [
        ("chosen out of range", LearningEvent(context, arm_set, len(arm_set.arms), 0.5, 1.0)),
        ("negative chosen", LearningEvent(context, arm_set, -1, 0.5, 1.0)),
        ("zero probability", LearningEvent(context, arm_set, 0, 0.0, 1.0)),
        ("probability above one", LearningEvent(context, arm_set, 0, 1.5, 1.0)),
        ("nan reward", LearningEvent(context, arm_set, 0, 0.5, float("nan"))),
        ("infinite reward", LearningEvent(context, arm_set, 0, 0.5, float("inf"))),
        ("empty arm set", LearningEvent(context, ArmSet((), arm_set.offers), 0, 0.5, 1.0)),
    ]


def check_bad_input_raises_invalid_input(factory: PolicyFactory) -> None:
    policy = factory(0)
    for what, context, arm_set in _bad_decisions():
        for call in (lambda: policy.pmf(context, arm_set), lambda: policy.pmf_batch([(context, arm_set)])):
            try:
                call()
            except InvalidInput:
                continue
            except Exception as exc:  # noqa: BLE001 - the point is to name the wrong type
                raise AssertionError(f"{what}: raised {type(exc).__name__}, not InvalidInput") from exc
            raise AssertionError(f"{what}: accepted")
    for what, event in _bad_events():
        try:
            policy.learn([event])
        except InvalidInput:
            continue
        except Exception as exc:  # noqa: BLE001
            raise AssertionError(f"learn with {what}: raised {type(exc).__name__}, not InvalidInput") from exc
        raise AssertionError(f"learn with {what}: accepted")


def check_load_rejects_garbage(factory: PolicyFactory) -> None:
    policy_class = type(factory(0))
    for garbage in (b"", b"not a model", b"\x00\xff" * 10):
        try:
            policy_class.load(garbage)
        except ModelError:
            continue
        raise AssertionError(f"load accepted {garbage!r}")


def check_params_are_json(factory: PolicyFactory) -> None:
    params = factory(0).params
    assert params["policy"] == factory(0).name
    json.dumps(dict(params))


def yield_checks(policy_factory: PolicyFactory) -> Iterator[Callable[[PolicyFactory], None]]:
    """Every check a policy built by ``policy_factory`` must pass."""
    yield check_pmf_is_a_distribution
    yield check_single_arm_gets_probability_one
    yield check_pmf_batch_matches_pmf
    yield check_sampled_arm_has_positive_probability
    yield check_served_draws_follow_the_pmf
    yield check_save_load_round_trip
    yield check_learning_continues_identically_after_load
    yield check_same_seed_same_pmfs_and_decisions
    yield check_inputs_untouched
    yield check_bad_input_raises_invalid_input
    yield check_load_rejects_garbage
    yield check_params_are_json


def check_policy(policy_factory: PolicyFactory) -> None:
    """Run every check of the battery; ``AssertionError`` names the check that failed (a policy that
    raises inside a check fails it too)."""
    for check in yield_checks(policy_factory):
        try:
            check(policy_factory)
        except Exception as exc:  # noqa: BLE001 - any failure of the policy fails the check
            raise AssertionError(f"{check.__name__}: {type(exc).__name__}: {exc}") from exc

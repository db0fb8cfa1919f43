"""The conformance battery every policy must pass (after River's ``checks`` package).

``check_policy(factory)`` runs every check on policies built by ``factory`` (``seed -> Policy``) and
raises ``AssertionError`` naming the first check that fails; ``yield_checks(factory)`` yields the
checks one by one (each takes the factory), so ``tests/policies/test_policies_conformance.py`` runs
every check for every registered policy as its own test. A new policy passes when
``check_policy(lambda seed: MyPolicy(seed=seed))`` returns.

The data is a small seeded world; arms are drawn from the policy's own pmf with numpy's Generator,
so learning always sees what the policy would log.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import numpy as np

from offerbandit.errors import InvalidInput, ModelError
from policies.contract import Policy
from policies.factory import make_policy, policy_names
from policies.types import ArmSet, DecisionContext, JointArm, LearningEvent, Offer

__all__ = ["PolicyFactory", "check_policy", "registered_factories", "yield_checks"]

PolicyFactory = Callable[[int], Policy]

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


def sample_context(rng: np.random.Generator) -> DecisionContext:
    return DecisionContext(
        user_key=f"user-{rng.integers(1000)}",
        context={"segment": f"seg-{rng.integers(3)}", "device": ("ios", "android")[rng.integers(2)]},
        numeric={"tenure": float(rng.integers(0, 60))},
    )


def reward_of(context: DecisionContext, arm: JointArm, rng: np.random.Generator) -> float:
    segment = int(context.context["segment"][-1])
    best = arm.offer_id == f"offer-{segment}" and arm.format == FORMATS[segment]
    return float(rng.random() < (0.8 if best else 0.1))


def play(policy: Policy, rng: np.random.Generator, rounds: int) -> list[LearningEvent]:
    """Decide ``rounds`` times with ``policy`` (drawing from its pmf) and return the logged events."""
    events = []
    for _ in range(rounds):
        context, arm_set = sample_context(rng), sample_arm_set(rng)
        pmf = policy.pmf(context, arm_set)
        chosen = int(rng.choice(len(pmf), p=pmf))
        events.append(LearningEvent(context, arm_set, chosen, float(pmf[chosen]),
                                    reward_of(context, arm_set.arms[chosen], rng), pmf.copy()))
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


def check_pmf_batch_matches_pmf(factory: PolicyFactory) -> None:
    policy = _trained(factory)
    items = _probe()
    batch = policy.pmf_batch(items)
    assert len(batch) == len(items)
    for (context, arm_set), pmf in zip(items, batch):
        np.testing.assert_array_equal(pmf, policy.pmf(context, arm_set))


def check_sampled_arm_has_positive_probability(factory: PolicyFactory) -> None:
    policy = _trained(factory)
    events = play(policy, np.random.default_rng(5), 40)
    assert all(event.probability > 0 for event in events)
    assert all(event.pmf is not None and event.pmf[event.chosen] == event.probability for event in events)


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

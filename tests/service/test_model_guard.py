"""The learner's guard on real VW models: probe verdicts, rollback to snapshot + replay, quarantine
of exactly the offending event, and what snapshots cost."""
from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pytest

from policies.factory import make_policy
from policies.vw.policy import VWPolicy, VWPolicyConfig
from policies.vw.workspace import learn_multi
from policies.types import ArmSet, DecisionContext, LearningEvent, Offer
from service.campaigns import LivePolicy
from service.config import DEFAULT_POLICY_PARAMS
from service.model_guard import ModelGuard, verdict

OFFERS = [Offer(f"o{i}", {"category": f"c{i % 3}"}) for i in range(6)]
ARMS = ArmSet.product(OFFERS, ["sms", "email"], ["morning", "evening"])


_PARAMS = {k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in DEFAULT_POLICY_PARAMS.items()}


def _vw():
    return make_policy("vw", **dict(DEFAULT_POLICY_PARAMS))


def _events(n: int, seed: int, *, numeric: float | None = None) -> list[LearningEvent]:
    rng = np.random.default_rng(seed)
    events = []
    for _ in range(n):
        segment = int(rng.integers(4))
        context = DecisionContext("u", {"segment": f"s{segment}"},
                                  {"x": float(rng.random()) if numeric is None else numeric})
        chosen = int(rng.integers(len(ARMS)))
        reward = float(rng.random() < (0.8 if chosen % 6 == segment else 0.1))
        events.append(LearningEvent(context, ARMS, chosen, 1 / len(ARMS), reward))
    return events


U = np.full(4, 0.25)
P = np.array([0.7, 0.1, 0.1, 0.1])


@pytest.mark.parametrize("before, after, problem", [
    ([P], [P[::-1]], None),                                   # a changed but proper pmf is fine
    ([U], [np.array([1.0, 0.0, 0.0, 0.0])], None),            # from uniform anything goes (bootstrap)
    ([U], [U], None),
    (None, [U], None),
    ([P], [np.array([np.nan, 0.2, 0.2, 0.2])], "not a distribution"),
    ([P], [np.array([np.inf, 0.0, 0.0, 0.0])], "not a distribution"),
    ([P], [np.array([1.2, -0.2, 0.0, 0.0])], "not a distribution"),
    ([P], [np.array([0.5, 0.1, 0.1, 0.1])], "not a distribution"),
    ([P], [U], "flattened to uniform"),
    ([P], [np.array([0.0, 1.0, 0.0, 0.0])], "collapsed onto one arm"),
    ([np.array([1.0])], [np.array([1.0])], None),             # one arm: nothing to degenerate
])
def test_verdict_table(before, after, problem):
    found = verdict(before, after)
    assert (found is None) if problem is None else (problem in found)


def _guard():
    quarantined: list[int] = []
    counted: list[tuple[str, int]] = []
    rollbacks: list[str] = []
    guard = ModelGuard(quarantined.extend, on_quarantine=lambda c, n: counted.append((c, n)),
                       on_rollback=rollbacks.append, snapshot_every_events=100)
    return guard, quarantined, counted, rollbacks


def test_a_good_batch_is_learned_as_if_unguarded():
    guard, quarantined, _, rollbacks = _guard()
    live, reference = LivePolicy(_vw(), "bootstrap"), _vw()
    for start, batch in enumerate([_events(64, s) for s in range(5)]):
        outcome = guard.learn("c", live, batch, list(range(start * 64, start * 64 + 64)))
        reference.learn(batch)
        assert outcome.learned == 64 and not outcome.rolled_back
    context = DecisionContext("u", {"segment": "s1"}, {"x": 0.5})
    np.testing.assert_array_equal(live.current()[0].pmf(context, ARMS), reference.pmf(context, ARMS))
    assert quarantined == [] and rollbacks == []
    assert guard.snapshots_taken == 3  # at first sight, then once 100+ events were learned since (128, 256)


class PoisonableVW(VWPolicy):
    """Real VW, except that an event whose context says ``poison`` is learned with cost -1e300 -- what
    ``Reward(value=1e300)`` did before rewards were bounded -- behind the range check's back."""

    name = "poisonable_vw"

    def learn(self, events):
        for event in events:
            if event.context.context.get("poison") != "yes":
                super().learn([event])
                continue
            learner = self._learner
            with learner._lock:
                examples = learner._examples(event.context, event.arm_set, event.chosen, "0:-1e300:0.5")
                learn_multi(learner._vw, examples)


def _poisoned(seed: int) -> LearningEvent:
    event = _events(1, seed)[0]
    return replace(event, context=DecisionContext("u", {"segment": "s1", "poison": "yes"}, {"x": 0.5}))


def test_an_update_that_breaks_vw_is_rolled_back_and_only_its_event_quarantined():
    guard, quarantined, counted, rollbacks = _guard()
    live, reference = LivePolicy(PoisonableVW(VWPolicyConfig(**_PARAMS)), "7"), _vw()
    warm = _events(150, 1)
    guard.learn("c", live, warm, list(range(150)))  # 150 > 100: a fresh snapshot, and a replay tail
    reference.learn(warm)
    guard.learn("c", live, _events(30, 4), list(range(150, 180)))
    reference.learn(_events(30, 4))
    batch = _events(20, 2)
    batch.insert(7, _poisoned(3))
    outcome = guard.learn("c", live, batch, list(range(1000, 1021)))
    assert outcome.rolled_back and outcome.quarantined == (1007,) and outcome.learned == 20
    assert quarantined == [1007] and counted == [("c", 1)] and rollbacks == ["c"]
    policy, version = live.current()
    assert version == "7"  # the rollback keeps the lineage; only the model object changes
    reference.learn([e for i, e in enumerate(batch) if i != 7])
    for event in batch:  # the poisoned context included: the model serves it again
        np.testing.assert_allclose(policy.pmf(event.context, ARMS), reference.pmf(event.context, ARMS), atol=1e-6)


@pytest.mark.parametrize("poison", [1e39, 1e300, -1e300])
@pytest.mark.parametrize("position", [3, 1])  # 3 is among the 8 probed before the update, 1 is not
def test_an_event_the_model_cannot_predict_on_is_quarantined(poison, position):
    """A numeric value beyond float32: VW's pmf on it is NaN already (the service bounds numerics;
    the guard is the last line). A sampled one is refused unlearned; an unsampled one fails the
    probe after the update and is found by the rollback. Either way the rest is learned."""
    guard, quarantined, counted, rollbacks = _guard()
    live, reference = LivePolicy(_vw(), "7"), _vw()
    guard.learn("c", live, _events(50, 1), list(range(50)))
    reference.learn(_events(50, 1))
    batch = _events(20, 2)
    batch.insert(position, _events(1, 3, numeric=poison)[0])
    outcome = guard.learn("c", live, batch, list(range(1000, 1021)))
    assert outcome.quarantined == (1000 + position,) and outcome.learned == 20
    assert outcome.rolled_back == (position == 1) and rollbacks == (["c"] if position == 1 else [])
    assert quarantined == [1000 + position] and counted == [("c", 1)]
    reference.learn([e for i, e in enumerate(batch) if i != position])
    for event in batch[:4]:
        if abs(event.context.numeric["x"]) < 2:
            np.testing.assert_allclose(live.current()[0].pmf(event.context, ARMS),
                                       reference.pmf(event.context, ARMS), atol=1e-6)


def test_a_rollback_never_overwrites_a_model_swapped_in_meanwhile():
    class SwapsWhileLearning:
        """A live pair whose model is replaced (a promote) the moment the guard tries to restore."""

        def __init__(self, policy):
            self.inner = LivePolicy(policy, "1")

        def current(self):
            return self.inner.current()

        def swap_if(self, expected, policy):
            self.inner.swap(_vw(), "2")
            return self.inner.swap_if(expected, policy)

    guard, quarantined, _, _ = _guard()
    live = SwapsWhileLearning(PoisonableVW(VWPolicyConfig(**_PARAMS)))
    guard.learn("c", live, _events(50, 1), list(range(50)))
    outcome = guard.learn("c", live, [_poisoned(3)], [99])
    assert outcome.rolled_back and outcome.learned == 0
    assert live.current()[1] == "2"


def test_snapshot_cost_is_paid_rarely():
    """Measured, printed for the report: one save per ``snapshot_every_events`` learned events."""
    guard, _, _, _ = _guard()
    guard.snapshot_every_events = 4096
    live = LivePolicy(_vw(), "bootstrap")
    events = _events(64 * 40, 5)
    started = time.perf_counter()
    for start in range(0, len(events), 64):
        guard.learn("c", live, events[start:start + 64], list(range(start, start + 64)))
    guarded = time.perf_counter() - started
    plain = _vw()
    started = time.perf_counter()
    for start in range(0, len(events), 64):
        plain.learn(events[start:start + 64])
    unguarded = time.perf_counter() - started
    print(f"\n{len(events)} events: guarded {guarded:.2f}s, unguarded {unguarded:.2f}s, "
          f"{guard.snapshots_taken} snapshot(s) {guard.snapshot_seconds:.2f}s")
    assert guard.snapshots_taken == 1
    assert guarded < 5 * unguarded + 1.0


def test_a_checkpoint_probe_refuses_a_model_with_non_finite_pmfs():
    from offerbandit.errors import ModelError
    from service.campaigns import build_runtimes
    from service.config import ServiceConfig
    from service.model_guard import probe_usable

    runtime = build_runtimes(ServiceConfig())["default"]
    policy = PoisonableVW(VWPolicyConfig(**_PARAMS))
    probe_usable(policy, runtime)  # a fresh model is fine
    poisoned = _poisoned(1)
    policy.learn([replace(poisoned, arm_set=runtime.catalog_arms, chosen=0)])
    with pytest.raises(ModelError, match="not published"):
        probe_usable(policy, runtime)

"""A serve that learns scores decisions on a double-buffered VW model: learning and checkpoints never hold a
decision, and decisions see only updates the model guard checked."""
from __future__ import annotations

import threading
import time

import numpy as np

from offers.v1 import decision_pb2 as pb
from policies.types import DecisionContext
from policies.vw.double_buffer import DoubleBuffer
from policies.vw.policy import VWPolicyConfig
from service.campaigns import LivePolicy
from tests.conftest import make_request
from service.model_guard import ModelGuard
from tests.service.test_model_guard import _PARAMS, ARMS, PoisonableVW, _events, _poisoned

PROBE = DecisionContext("u", {"segment": "s1"}, {"x": 0.5})


def test_a_server_that_learns_decides_while_its_learning_model_is_locked(start_server):
    served = start_server()
    policy, _ = served.engine.campaigns["default"].live.current()
    assert policy.double_buffer is not None and policy.double_buffer.publish_every_seconds == 1.0
    learning = policy._buffers.learning
    with learning._lock:  # what a learn or a checkpoint's save holds, ~200 ms for a -b 24 save
        decision = served.stub.Decide(make_request(event_id="while-locked"), timeout=5)
        batch = served.stub.DecideBatch(pb.DecideBatchRequest(requests=[make_request(event_id=f"b{i}")
                                                                        for i in range(4)]), timeout=5)
    assert decision.offer_id and len(batch.decisions) == 4


def test_learned_updates_reach_decisions_once_the_learner_caught_up(start_server):
    served = start_server()
    request = make_request(user="probe", context={"segment": "buffer-probe"})
    mass = lambda: sum(a.probability for a in served.stub.Decide(request, timeout=10).ranking  # noqa: E731
                       if a.offer_id == "o2")
    before = mass()
    for i in range(30):
        decision = served.stub.Decide(make_request(user=f"p{i}", context={"segment": "buffer-probe"}), timeout=10)
        served.stub.Reward(pb.RewardRequest(event_id=decision.event_id, value=float(decision.offer_id == "o2")),
                           timeout=10)
    assert served.server.learner.wait_idle(30)
    assert served.server.learner.learned == 30
    assert mass() > before + 0.2  # served right away: the learner published when it ran out of work
    assert served.server.learner.guard.publishes >= 1


def test_steady_learning_spends_at_most_a_twentieth_of_its_time_publishing(start_server):
    """Each publish loads a fresh serving workspace (~5 ms of the GIL); a learner that keeps catching up with
    rewards coming one by one must not publish after every batch: the next publish waits 20 times as long
    as the last one took (and at most publish_every_seconds)."""
    served = start_server("[learning]\npublish_every_seconds = 0.5\n")
    guard = served.server.learner.guard
    assert guard.publish_gap_factor == 20.0
    started = time.monotonic()
    for i in range(60):
        decision = served.stub.Decide(make_request(user=f"steady{i}"), timeout=10)
        served.stub.Reward(pb.RewardRequest(event_id=decision.event_id, value=float(i % 2)), timeout=10)
    assert served.server.learner.wait_idle(30)
    elapsed = time.monotonic() - started
    assert served.server.learner.learned == 60
    assert guard.publishes >= 1
    assert guard.publish_seconds <= elapsed / 20 + 2 * guard.longest_publish_seconds, (guard.publish_seconds, elapsed)
    policy, _ = served.engine.campaigns["default"].live.current()
    arm_set = served.engine.campaigns["default"].catalog_arms
    # learned means served: once idle, decisions score on everything learned
    np.testing.assert_allclose(policy.pmf_batch([(PROBE, arm_set)])[0], policy.learned_pmf_batch([(PROBE, arm_set)])[0])


def test_zero_publish_seconds_serves_from_the_learning_model(start_server):
    served = start_server("[learning]\npublish_every_seconds = 0\n")
    policy, _ = served.engine.campaigns["default"].live.current()
    assert policy.double_buffer is None
    holder = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with policy._learner._lock:
            holder.set()
            release.wait(5)

    thread = threading.Thread(target=hold)
    thread.start()
    holder.wait(5)
    future = served.stub.Decide.future(make_request(event_id="one-workspace"), timeout=10)
    time.sleep(0.5)
    assert not future.done()  # one workspace: the decision waits for whoever holds the model
    release.set()
    thread.join()
    assert future.result().offer_id


def test_the_guard_publishes_only_checked_updates_and_a_rollback_keeps_the_buffer():
    quarantined: list[int] = []
    rollbacks: list[str] = []
    clock = [1000.0]
    # no snapshot after the first: a snapshot saves, and a double-buffered save publishes (checked updates)
    # a huge gap factor: publish_every_seconds alone spaces the publishes
    guard = ModelGuard(quarantined.extend, on_rollback=rollbacks.append, snapshot_every_events=100_000,
                       publish_gap_factor=1e12, clock=lambda: clock[0])
    buffer = DoubleBuffer(publish_every_seconds=3600.0, publish_on_learn=False)
    live = LivePolicy(PoisonableVW(VWPolicyConfig(**_PARAMS), double_buffer=buffer), "7")
    policy = live.current()[0]
    fresh = policy.pmf(PROBE, ARMS)
    assert guard.publish_due_in() is None  # nothing learned
    guard.learn("c", live, _events(150, 1), list(range(150)))
    np.testing.assert_array_equal(policy.pmf(PROBE, ARMS), fresh)  # learned, checked, not published yet
    assert guard.publish_due_in() == 0.0
    assert guard.publish_checked("c", policy)  # never published: due
    first = policy.pmf(PROBE, ARMS)
    assert not np.array_equal(first, fresh)
    np.testing.assert_allclose(first, policy.learned_pmf_batch([(PROBE, ARMS)])[0])
    clock[0] += 7200
    assert not guard.publish_checked("c", policy) and guard.publish_due_in() is None  # nothing unpublished
    guard.learn("c", live, _events(30, 4), list(range(150, 180)))
    assert guard.publish_checked("c", policy)  # due: the last publish is more than 3600 s old
    second = policy.pmf(PROBE, ARMS)
    assert not np.array_equal(second, first)
    guard.learn("c", live, _events(30, 5), list(range(180, 210)))
    clock[0] += 3599
    assert not guard.publish_checked("c", policy)  # published < 3600 s ago: not due, however caught up
    assert guard.publish_due_in() == 1.0
    np.testing.assert_array_equal(policy.pmf(PROBE, ARMS), second)
    clock[0] += 1
    assert guard.publish_checked("c", policy)
    assert not np.array_equal(policy.pmf(PROBE, ARMS), second)

    batch = _events(20, 2)
    batch.insert(7, _poisoned(3))
    outcome = guard.learn("c", live, batch, list(range(1000, 1021)))
    assert outcome.rolled_back and quarantined == [1007] and rollbacks == ["c"]
    restored = live.current()[0]
    assert restored is not policy and restored.double_buffer == buffer  # rolled back, still double-buffered
    served_pmf = restored.pmf(PROBE, ARMS)
    assert np.isfinite(served_pmf).all() and abs(served_pmf.sum() - 1.0) < 1e-6
    clock[0] += 3600
    assert guard.publish_checked("c", restored)  # the replayed and the 20 good events
    np.testing.assert_allclose(restored.pmf(PROBE, ARMS), restored.learned_pmf_batch([(PROBE, ARMS)])[0])


"""The VW fast path: remembered per-arm-set examples give what plain text gives, and a double-buffered
policy serves without waiting for serialisations and catches up at each publish."""
import threading

import numpy as np
import pytest
from vowpalwabbit import pyvw

from offerbandit.errors import InvalidInput, ModelError
from policies.types import ArmSet, DecisionContext, LearningEvent, Offer
from policies.vw import EXPLORATIONS, CbAdfLearner, CbAdfOptions, DoubleBuffer, VWPolicy, VWPolicyConfig, arm_line, \
    shared_line
from policies.vw.learner import RetiredLearner
from policies.vw.workspace import learn_multi

OFFERS = [Offer(f"offer-{i}", {"category": f"cat-{i % 3}", "discount": f"{i % 4}0%"}) for i in range(8)]
CATALOGUE = ArmSet.product(OFFERS, ["sms", "email", "push"], ["morning", "evening"])  # 48 arms


def random_arm_set(rng) -> ArmSet:
    keep = rng.random(len(CATALOGUE.arms)) < 0.6
    keep[rng.integers(len(keep))] = True
    order = rng.permutation(len(CATALOGUE.arms))
    return ArmSet(tuple(CATALOGUE.arms[i] for i in order if keep[i]), CATALOGUE.offers)


def random_context(rng) -> DecisionContext:
    return DecisionContext(f"u{rng.integers(100)}", {"segment": f"s{rng.integers(4)}", "device": ("ios", "web")[rng.integers(2)]},
                           {"tenure": float(rng.integers(50)), "spend": float(rng.random() * 10)})


def text_lines(context: DecisionContext, arm_set: ArmSet, chosen=None, label=""):
    lines = [arm_line(arm, arm_set.offers[arm.offer_id]) for arm in arm_set.arms]
    if chosen is not None:
        lines[chosen] = f"{label} {lines[chosen]}"
    return [shared_line(context), *lines]


@pytest.mark.parametrize("exploration", EXPLORATIONS)
def test_remembered_arm_sets_predict_and_learn_exactly_like_text(exploration):
    """Random contexts and arm sets (some ArmSet objects seen again, some new objects of the same arms),
    learning in between: the learner's pmfs equal those of a workspace fed text lines, bit for bit."""
    options = CbAdfOptions(exploration=exploration, bits=18, bag_size=3, cover_size=3, seed=5)
    learner = CbAdfLearner(options)
    reference = pyvw.Workspace(arg_list=[*options.args(), "--save_resume"])
    rng = np.random.default_rng(7)
    pool = [random_arm_set(rng) for _ in range(6)]
    for step in range(120):
        arm_set = pool[rng.integers(len(pool))] if step % 3 else random_arm_set(rng)
        context = random_context(rng)
        expected = np.asarray(reference.predict(text_lines(context, arm_set)), dtype=np.float64)
        np.testing.assert_array_equal(learner.predict_pmf(context, arm_set), expected)
        np.testing.assert_array_equal(learner.predict_pmf_uncached(context, arm_set), expected)
        chosen = int(rng.integers(len(arm_set)))
        probability = float(expected[chosen]) or 0.01
        reward = float(rng.random() < 0.3)
        learner.learn([LearningEvent(context, arm_set, chosen, probability, reward)])
        reference.learn(text_lines(context, arm_set, chosen, f"0:{-reward!r}:{probability!r}"))
    context = random_context(rng)
    for arm_set in pool:
        np.testing.assert_array_equal(learner.predict_pmf(context, arm_set),
                                      np.asarray(reference.predict(text_lines(context, arm_set)), dtype=np.float64))


def test_an_evicted_arm_example_is_never_served_from_a_remembered_arm_set():
    """A per-arm cache too small for the catalogue evicts examples; remembered sets are rebuilt then."""
    options = CbAdfOptions(bits=18, seed=1)
    small = CbAdfLearner(options, arm_cache_bytes=40 * 34_000)
    reference = CbAdfLearner(options)
    rng = np.random.default_rng(3)
    pool = [random_arm_set(rng) for _ in range(4)]
    for step in range(60):
        arm_set, context = pool[step % len(pool)], random_context(rng)
        np.testing.assert_array_equal(small.predict_pmf(context, arm_set), reference.predict_pmf_uncached(context, arm_set))
        event = LearningEvent(context, arm_set, step % len(arm_set), 0.5, float(step % 2))
        small.learn([event])
        reference.learn([event])
    assert small.cached_arms < len(CATALOGUE.arms) and small._cache.epoch > 0  # it did evict


def test_a_remembered_arm_set_still_checks_every_event_number():
    learner = CbAdfLearner(CbAdfOptions(bits=18))
    context = DecisionContext("u", {"segment": "s1"})
    learner.learn([LearningEvent(context, CATALOGUE, 3, 0.5, 1.0)])  # now remembered
    before = learner.save()
    bad = [
        (LearningEvent(context, CATALOGUE, len(CATALOGUE), 0.5, 1.0), "events[1].chosen"),
        (LearningEvent(context, CATALOGUE, True, 0.5, 1.0), "events[1].chosen"),
        (LearningEvent(context, CATALOGUE, 0, 0.0, 1.0), "events[1].probability"),
        (LearningEvent(context, CATALOGUE, 0, 0.5, float("nan")), "events[1].reward"),
        (LearningEvent(context, CATALOGUE, 0, 0.5, 2.0), "events[1].reward"),
        (LearningEvent(context, CATALOGUE, 0, 0.5, 1.0, reward_range=(1.0, 0.0)), "events[1].reward_range"),
    ]
    good = LearningEvent(context, CATALOGUE, 1, 0.5, 0.0)
    for event, field in bad:
        with pytest.raises(InvalidInput) as caught:
            learner.learn([good, event])
        assert caught.value.field == field
    assert learner.save() == before
    # numpy numbers are fine (checked the slow way)
    learner.learn([LearningEvent(context, CATALOGUE, np.int64(2), np.float64(0.25), np.float64(1.0))])


def test_a_closed_learner_refuses_calls():
    learner = CbAdfLearner(CbAdfOptions(bits=18))
    learner.close()
    with pytest.raises(RetiredLearner):
        learner.predict_pmf(DecisionContext("u"), CATALOGUE)
    assert issubclass(RetiredLearner, ModelError)


# --- double buffering ------------------------------------------------------------------------------

def _events(rng, count, arm_set=CATALOGUE):
    return [LearningEvent(random_context(rng), arm_set, int(rng.integers(len(arm_set))), 1.0 / len(arm_set),
                          float(rng.random() < 0.3)) for _ in range(count)]


NEVER = 1e9  # publish_every_seconds that never comes due in a test


def test_served_pmf_lags_learning_until_a_publish_then_equals_the_single_workspace_policy():
    config = VWPolicyConfig(seed=3, bits=18)
    double = VWPolicy(config, double_buffer=DoubleBuffer(publish_every_events=100, publish_every_seconds=NEVER))
    single = VWPolicy(config)
    untrained = VWPolicy(config)
    rng = np.random.default_rng(1)
    probes = [(random_context(rng), random_arm_set(rng)) for _ in range(5)]
    events = _events(rng, 60)
    double.learn(events)
    single.learn(events)
    for context, arm_set in probes:  # 60 < 100 events: still the untrained model
        np.testing.assert_array_equal(double.pmf(context, arm_set), untrained.pmf(context, arm_set))
    np.testing.assert_array_equal(np.concatenate(double.learned_pmf_batch(probes)), np.concatenate(single.pmf_batch(probes)))
    assert not np.array_equal(np.concatenate(single.pmf_batch(probes)), np.concatenate(untrained.pmf_batch(probes)))
    more = _events(rng, 40)
    double.learn(more)  # 100 events: published
    single.learn(more)
    for context, arm_set in probes:
        np.testing.assert_array_equal(double.pmf(context, arm_set), single.pmf(context, arm_set))
    extra = _events(rng, 10)
    double.learn(extra)
    single.learn(extra)
    double.publish()
    np.testing.assert_array_equal(np.concatenate(double.pmf_batch(probes)), np.concatenate(single.pmf_batch(probes)))


def test_save_publishes_and_load_of_the_bytes_scores_the_same():
    double = VWPolicy(VWPolicyConfig(seed=2, bits=18),
                      double_buffer=DoubleBuffer(publish_every_events=10_000, publish_every_seconds=NEVER))
    rng = np.random.default_rng(4)
    double.learn(_events(rng, 50))
    data = double.save()
    restored = VWPolicy.load(data, double_buffer=double.double_buffer)
    assert restored.double_buffer == double.double_buffer
    for context, arm_set in [(random_context(rng), random_arm_set(rng)) for _ in range(5)]:
        np.testing.assert_array_equal(double.pmf(context, arm_set), VWPolicy.load(data).pmf(context, arm_set))
        np.testing.assert_array_equal(restored.pmf(context, arm_set), double.pmf(context, arm_set))


def _pmf_in_thread(policy, context, arm_set):
    done, result = threading.Event(), []
    thread = threading.Thread(target=lambda: (result.append(policy.pmf(context, arm_set)), done.set()), daemon=True)
    thread.start()
    return done, result, thread


def test_scoring_never_waits_for_a_serialisation_of_the_learning_workspace():
    """``CbAdfLearner.save`` serialises while holding the learning workspace's lock. With that lock held
    (a serialisation in progress, as long as we like), a double-buffered pmf still returns; a
    single-workspace pmf waits for it."""
    rng = np.random.default_rng(5)
    context, arm_set = random_context(rng), random_arm_set(rng)
    double = VWPolicy(VWPolicyConfig(bits=18), double_buffer=DoubleBuffer(publish_every_events=1))
    double.learn(_events(rng, 5))
    with double._learner._lock:  # the serialisation's lock, held until we let go
        done, result, thread = _pmf_in_thread(double, context, arm_set)
        assert done.wait(timeout=60), "a double-buffered pmf waited for the learning workspace's lock"
    np.testing.assert_array_equal(result[0], double.pmf(context, arm_set))

    single = VWPolicy(VWPolicyConfig(bits=18))
    single.pmf(context, arm_set)
    with single._learner._lock:
        done, result, thread = _pmf_in_thread(single, context, arm_set)
        assert not done.wait(timeout=0.2)  # the single workspace must wait (what double buffering removes)
    thread.join(timeout=60)
    assert done.is_set()


def test_decisions_during_a_publish_see_a_model_learned_on_a_prefix_of_the_events_and_then_the_new():
    """A publish replays the unpublished events on the serving workspace a slice at a time: a decision
    in between scores the model learned on the events before some slice boundary (never a half-learned
    event, never anything else), and after the publish the new one."""
    from policies.vw.double_buffer import REPLAY_SLICE

    config = VWPolicyConfig(seed=1, bits=18)
    policy = VWPolicy(config, double_buffer=DoubleBuffer(publish_every_events=10_000, publish_every_seconds=NEVER))
    rng = np.random.default_rng(6)
    items = [(random_context(rng), random_arm_set(rng)) for _ in range(4)]
    events = _events(rng, 5 * REPLAY_SLICE)
    reference = VWPolicy(config)  # learns slice by slice: the states a replay passes through
    states = [reference.pmf_batch(items)]
    for start in range(0, len(events), REPLAY_SLICE):
        reference.learn(events[start:start + REPLAY_SLICE])
        states.append(reference.pmf_batch(items))
    policy.learn(events)
    stop, seen, errors = threading.Event(), [], []

    def score():
        try:
            while not stop.is_set():
                seen.append(policy.pmf_batch(items))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    scorers = [threading.Thread(target=score) for _ in range(2)]
    for scorer in scorers:
        scorer.start()
    policy.publish()
    policy.publish()  # nothing new: the served model stays the last state
    stop.set()
    for scorer in scorers:
        scorer.join(timeout=60)
    assert not errors and seen

    def state_of(batch):
        return next((k for k, state in enumerate(states)
                     if all(np.array_equal(a, b) for a, b in zip(batch, state))), None)

    assert all(state_of(batch) is not None for batch in seen)
    assert state_of(policy.pmf_batch(items)) == len(states) - 1
    assert policy._buffers.publishes == 2 and policy._buffers.reloads == 0
    policy.close()
    with pytest.raises(ModelError):
        policy.pmf(*items[0])


def test_double_buffer_settings_are_checked():
    with pytest.raises(InvalidInput):
        DoubleBuffer(publish_every_events=0)
    with pytest.raises(InvalidInput):
        DoubleBuffer(publish_every_seconds=-1.0)


def test_a_broken_update_is_never_published_to_decisions():
    """An update VW cannot survive (cost -1e300, behind the range check's back, as in the service's
    poisoning tests) breaks the learning workspace; publishing it refuses, decisions keep the old model."""
    policy = VWPolicy(VWPolicyConfig(seed=1, bits=18),
                      double_buffer=DoubleBuffer(publish_every_events=10_000, publish_every_seconds=NEVER))
    rng = np.random.default_rng(9)
    events = _events(rng, 20)
    policy.learn(events)
    policy.publish()
    context, arm_set = events[-1].context, events[-1].arm_set
    served = policy.pmf(context, arm_set)
    learner = policy._learner
    with learner._lock:
        learn_multi(learner._vw, learner._examples(context, arm_set, 0, "0:-1e300:0.5"))
    with pytest.raises(ModelError):
        policy.learned_pmf_batch([(context, arm_set)])
    with pytest.raises(ModelError):
        policy.publish()
    np.testing.assert_array_equal(policy.pmf(context, arm_set), served)


def test_sparse_learning_saves_a_model_that_scores_dense_exactly_like_dense_learning():
    """The double buffer learns with sparse weights (fast saves); a model it saves must be the dense one."""
    rng = np.random.default_rng(8)
    options = CbAdfOptions(seed=4)
    sparse, dense = CbAdfLearner(options, sparse=True), CbAdfLearner(options)
    events = _events(rng, 80)
    sparse.learn(events)
    dense.learn(events)
    loaded = CbAdfLearner.from_bytes(options, sparse.save())
    assert not loaded.sparse and sparse.sparse
    probes = [(random_context(rng), random_arm_set(rng)) for _ in range(6)]
    for context, arm_set in probes:
        np.testing.assert_array_equal(loaded.predict_pmf(context, arm_set), dense.predict_pmf(context, arm_set))
        np.testing.assert_array_equal(sparse.predict_pmf(context, arm_set), dense.predict_pmf(context, arm_set))
    assert VWPolicy(VWPolicyConfig(seed=4), double_buffer=DoubleBuffer())._buffers.learning.sparse

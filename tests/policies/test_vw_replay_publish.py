"""A double-buffered policy publishes by replaying the learned events on its serving workspace (no VW load
holding the GIL): the served model must then be bit for bit the learned one, and whenever it could not be
(a drifted serving workspace, too many waiting events) the publish reloads instead."""
import numpy as np
import pytest

from policies.vw import EXPLORATIONS, DoubleBuffer, VWPolicy, VWPolicyConfig
from tests.policies.test_vw_fast_path import _events, random_arm_set, random_context

NEVER = 1e9


def _double(config: VWPolicyConfig, **settings) -> VWPolicy:
    return VWPolicy(config, double_buffer=DoubleBuffer(publish_every_events=10_000, publish_every_seconds=NEVER,
                                                       **settings))


def _batch(policy: VWPolicy, items) -> np.ndarray:
    return np.concatenate(policy.pmf_batch(items))


@pytest.mark.parametrize("exploration", EXPLORATIONS)
def test_a_replayed_publish_serves_exactly_what_a_reload_of_the_saved_bytes_serves(exploration):
    config = VWPolicyConfig(seed=5, bits=18, exploration=exploration)
    double, single = _double(config), VWPolicy(config)
    rng = np.random.default_rng(11)
    items = [(random_context(rng), random_arm_set(rng)) for _ in range(5)]
    for round_ in range(3):
        events = _events(rng, 40)
        double.pmf_batch(items)  # decisions score the serving workspace between publishes
        double.learn(events)
        single.learn(events)
        data = double.save()  # a save publishes
        np.testing.assert_array_equal(_batch(double, items), _batch(VWPolicy.load(data), items))
        np.testing.assert_array_equal(_batch(double, items), _batch(single, items))
    assert double._buffers.publishes == 3
    assert double._buffers.reloads == 0  # every publish replayed (a replay that differed would have reloaded)


def test_a_serving_workspace_that_drifted_is_reloaded_and_then_serves_the_learned_model():
    double = _double(VWPolicyConfig(seed=2, bits=18))
    rng = np.random.default_rng(12)
    items = [(random_context(rng), random_arm_set(rng)) for _ in range(4)]
    double.learn(_events(rng, 30))
    double._buffers.serving.learn(_events(rng, 5))  # behind the buffer's back: serving no longer replays to learning
    double.publish()
    assert double._buffers.reloads == 1
    np.testing.assert_array_equal(_batch(double, items), np.concatenate(double.learned_pmf_batch(items)))
    double.learn(_events(rng, 10))
    double.publish()
    assert double._buffers.reloads == 1  # back in step: replays again
    np.testing.assert_array_equal(_batch(double, items), np.concatenate(double.learned_pmf_batch(items)))


def test_past_the_replay_limit_the_events_are_dropped_and_the_next_publish_reloads():
    double = _double(VWPolicyConfig(seed=3, bits=18), replay_limit=25)
    rng = np.random.default_rng(13)
    items = [(random_context(rng), random_arm_set(rng)) for _ in range(4)]
    double.learn(_events(rng, 20))
    assert len(double._buffers._unpublished) == 20
    double.learn(_events(rng, 20))
    assert double._buffers._unpublished is None  # 40 > 25: nothing kept to replay
    double.publish()
    assert double._buffers.reloads == 1
    np.testing.assert_array_equal(_batch(double, items), np.concatenate(double.learned_pmf_batch(items)))


def test_the_replay_limit_is_checked():
    from offerbandit.errors import InvalidInput

    with pytest.raises(InvalidInput):
        DoubleBuffer(replay_limit=-1)
    assert DoubleBuffer(replay_limit=0).replay_limit == 0

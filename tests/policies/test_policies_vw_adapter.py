"""The VW mediator: feature mapping, escaping, cached arm examples, save/load, DSJSON, regressor."""
import json
import math
import os
import threading

import numpy as np
import pytest
from vowpalwabbit import pyvw

from offerbandit.errors import InvalidInput, ModelError
from policies.types import ArmSet, DecisionContext, JointArm, LearningEvent, Offer
from policies.vw import (
    EXPLORATIONS,
    CbAdfLearner,
    CbAdfOptions,
    RewardRegressorConfig,
    VWRewardRegressor,
    arm_line,
    cost_from_reward,
    dsjson_context,
    dsjson_line,
    dsjson_record,
    escape_token,
    reward_from_cost,
    shared_line,
)

NASTY = ["a|b", "x:1", "two words", "tab\there", "new\nline", "cr\rret", "k=v", "50%", "|u", " ", "",
         "shared", "\x00nul", "é€😀", "\u2028sep", "\ud800", "a\x0bb"]

OFFERS = [Offer(f"offer-{i}", {"category": f"cat-{i % 2}"}) for i in range(3)]
ARMS = ArmSet.product(OFFERS, ["sms", "email"], ["morning", "evening"])


def small(**changes) -> CbAdfOptions:
    return CbAdfOptions(**{"bits": 18, "exploration": "epsilon", **changes})


BEST = {0: ("offer-0", "email", "morning"), 1: ("offer-1", "sms", "evening")}  # arm indices 2 and 5


def expected_reward(segment, arm):
    """Additive in (segment x offer, segment x format, segment x slot): representable by the features."""
    offer, fmt, slot = BEST[segment]
    return 0.05 + 0.3 * (arm.offer_id == offer) + 0.3 * (arm.format == fmt) + 0.3 * (arm.time_slot == slot)


def world_event(rng, learner, arm_set=ARMS):
    segment = int(rng.integers(2))
    context = DecisionContext("u", {"segment": f"s{segment}"}, {"tenure": float(rng.integers(10))})
    pmf = learner.predict_pmf(context, arm_set)
    pmf = pmf / pmf.sum()
    chosen = int(rng.choice(len(pmf), p=pmf))
    reward = float(rng.random() < expected_reward(segment, arm_set.arms[chosen]))
    return LearningEvent(context, arm_set, chosen, float(pmf[chosen]), reward, pmf)


def test_escape_leaves_no_character_vw_treats_specially():
    for text in NASTY:
        escaped = escape_token(text)
        assert not set(escaped) & set("|: \t\n\r\x00\x0b=\u2028"), repr(escaped)
        escaped.encode("utf-8")  # crosses into C++ as UTF-8


def test_escape_is_injective_on_tricky_pairs():
    values = NASTY + ["a%7c;b", "%", "%25;", "a b", "a_b", "a%20;b"]
    assert len({escape_token(value) for value in values}) == len(set(values))


def _namespaces(workspace, line):
    example = workspace.parse([line])[0]
    return {ns: example[ns].num_features_in() for ns in "unoft"}


def test_nasty_context_and_offer_strings_parse_into_exactly_the_intended_features():
    workspace = pyvw.Workspace("--cb_explore_adf --quiet -b 18")
    context = DecisionContext("u", {value + str(i): value for i, value in enumerate(NASTY)},
                              {value + "n": float(i) for i, value in enumerate(NASTY) if i})
    counts = _namespaces(workspace, shared_line(context))
    assert counts["u"] == len(NASTY)
    assert counts["n"] == len(NASTY) - 1
    assert counts["o"] == counts["f"] == counts["t"] == 0
    for value in NASTY:
        offer = Offer(value or "empty", {value + "k": value, "id": value})
        line = arm_line(JointArm(offer.id, value, value), offer)
        counts = _namespaces(workspace, line)
        assert counts == {"u": 0, "n": 0, "o": 3, "f": 1, "t": 1}, (value, line)


def test_pmf_is_in_arm_order_and_learns_the_rewarded_arm():
    learner = CbAdfLearner(small())
    context = DecisionContext("u", {"segment": "s1"})
    for _ in range(30):
        learner.learn([LearningEvent(context, ARMS, 7, 0.5, 1.0)] + [LearningEvent(context, ARMS, 3, 0.5, 0.0)])
    pmf = learner.predict_pmf(context, ARMS)
    assert pmf.dtype == np.float64 and pmf.shape == (len(ARMS),)
    assert int(np.argmax(pmf)) == 7
    assert pmf[7] == pytest.approx(1 - 0.05 + 0.05 / len(ARMS), abs=1e-6)


def test_negative_reward_is_a_cost():
    # A negative reward needs a campaign range that holds it (issue 14: rewards outside it are refused).
    assert cost_from_reward(2.5) == -2.5
    learner = CbAdfLearner(small())
    context = DecisionContext("u", {"segment": "s1"})
    span = (-1.0, 1.0)
    for _ in range(30):
        learner.learn([LearningEvent(context, ARMS, 0, 0.5, -1.0, reward_range=span),
                       LearningEvent(context, ARMS, 1, 0.5, 0.0, reward_range=span)])
    assert int(np.argmax(learner.predict_pmf(context, ARMS))) != 0


@pytest.mark.parametrize("reward_range, reward, cost", [
    ((0.0, 1.0), 0.0, 0.0), ((0.0, 1.0), 1.0, -1.0), ((0.0, 1.0), 0.25, -0.25),  # [0, 1]: today's cost
    ((-5.0, 5.0), -5.0, 0.0), ((-5.0, 5.0), 5.0, -1.0), ((-5.0, 5.0), 0.0, -0.5),
    ((10.0, 110.0), 35.0, -0.25),
])
def test_rewards_map_onto_costs_in_minus_one_to_zero(reward_range, reward, cost):
    assert cost_from_reward(reward, reward_range) == pytest.approx(cost)
    assert reward_from_cost(cost_from_reward(reward, reward_range), reward_range) == pytest.approx(reward)


@pytest.mark.parametrize("reward, reward_range", [(1.5, (0.0, 1.0)), (-0.1, (0.0, 1.0)), (1e300, (0.0, 1.0)),
                                                  (0.5, (1.0, 0.0)), (0.5, (0.0, math.inf))])
def test_a_reward_outside_its_range_never_reaches_vw(reward, reward_range):
    learner = CbAdfLearner(small())
    context = DecisionContext("u", {"segment": "s1"})
    before = learner.save()
    with pytest.raises(InvalidInput, match="reward"):
        learner.learn([LearningEvent(context, ARMS, 0, 0.5, 1.0),
                       LearningEvent(context, ARMS, 0, 0.5, reward, reward_range=reward_range)])
    assert learner.save() == before  # the whole batch was refused before VW saw any of it


def test_scaled_rewards_learn_like_unit_rewards():
    """A campaign in [0, 100] learns exactly as one in [0, 1] with rewards divided by 100."""
    context = DecisionContext("u", {"segment": "s1"})
    unit, wide = CbAdfLearner(small()), CbAdfLearner(small())
    for step in range(20):
        chosen, value = step % len(ARMS), float(step % 3 == 0)
        unit.learn([LearningEvent(context, ARMS, chosen, 0.5, value)])
        wide.learn([LearningEvent(context, ARMS, chosen, 0.5, 100.0 * value, reward_range=(0.0, 100.0))])
    np.testing.assert_array_equal(unit.predict_pmf(context, ARMS), wide.predict_pmf(context, ARMS))


@pytest.mark.parametrize("exploration", EXPLORATIONS)
def test_cached_arm_examples_give_the_same_pmfs_and_learning_as_fresh_text(exploration):
    """The cache is an optimisation only: compare against VW fed plain text lines."""
    options = small(exploration=exploration, bag_size=3, cover_size=3, seed=4)
    learner = CbAdfLearner(options)
    reference = pyvw.Workspace(arg_list=[*options.args(), "--save_resume"])
    rng = np.random.default_rng(0)
    lines = [arm_line(arm, ARMS.offers[arm.offer_id]) for arm in ARMS.arms]
    for _ in range(150):
        event = world_event(rng, learner)
        text = [shared_line(event.context), *lines]
        expected = np.asarray(reference.predict(text), dtype=np.float64)
        np.testing.assert_array_equal(learner.predict_pmf(event.context, ARMS), expected)
        label = f"0:{-event.reward!r}:{event.probability!r} "
        reference.learn([text[0], *[(label if i == event.chosen else "") + line for i, line in enumerate(lines)]])
        learner.learn([event])
    assert learner.cached_arms == len(ARMS)


def _continue_together(first, second, rng, rounds=100):
    for _ in range(rounds):
        event = world_event(rng, first)
        np.testing.assert_array_equal(second.predict_pmf(event.context, ARMS), first.predict_pmf(event.context, ARMS))
        first.learn([event])
        second.learn([event])


@pytest.mark.parametrize("exploration", ["epsilon", "softmax", "squarecb"])
def test_save_load_continues_learning_identically(exploration):
    learner = CbAdfLearner(small(exploration=exploration))
    rng = np.random.default_rng(1)
    learner.learn([world_event(rng, learner) for _ in range(100)])
    _continue_together(learner, CbAdfLearner.from_bytes(learner.options, learner.save()), rng)


@pytest.mark.parametrize("exploration", ["bag", "cover"])
def test_save_load_of_bag_and_cover_is_identical_at_load_and_deterministic_after(exploration):
    """VW 9.11 does not restore bag's bootstrap random state / cover's internal state exactly, so a
    loaded bag/cover model gives identical pmfs at load time but its later learning drifts from the
    original's. Two loads of the same bytes still learn identically."""
    learner = CbAdfLearner(small(exploration=exploration, bag_size=3, cover_size=3))
    rng = np.random.default_rng(1)
    learner.learn([world_event(rng, learner) for _ in range(100)])
    data = learner.save()
    first, second = CbAdfLearner.from_bytes(learner.options, data), CbAdfLearner.from_bytes(learner.options, data)
    for segment in ("s0", "s1"):
        context = DecisionContext("u", {"segment": segment}, {"tenure": 1.0})
        np.testing.assert_array_equal(first.predict_pmf(context, ARMS), learner.predict_pmf(context, ARMS))
    _continue_together(first, second, rng)


def test_load_replaces_the_model_in_place_and_rejects_garbage():
    trained = CbAdfLearner(small())
    rng = np.random.default_rng(2)
    trained.learn([world_event(rng, trained) for _ in range(200)])
    fresh = CbAdfLearner(small())
    context = DecisionContext("u", {"segment": "s1"})
    fresh.predict_pmf(context, ARMS)
    fresh.load(trained.save())
    np.testing.assert_array_equal(fresh.predict_pmf(context, ARMS), trained.predict_pmf(context, ARMS))
    for garbage in (b"", b"junk" * 100):
        with pytest.raises(ModelError):
            fresh.load(garbage)


def _resident_mib() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc")
def test_predicting_and_learning_do_not_leak_native_examples():
    """Unfinished parsed examples once leaked ~30 KB each: 4000 decisions would leak > 100 MiB."""
    learner = CbAdfLearner(small())
    rng = np.random.default_rng(8)
    events = [world_event(rng, learner) for _ in range(200)]
    regressor = VWRewardRegressor(RewardRegressorConfig(bits=18, epochs=1))
    regressor.fit(events)
    before = _resident_mib()
    for _ in range(10):
        for event in events:
            learner.predict_pmf(event.context, ARMS)
            regressor.predict(event.context, ARMS)
        learner.learn(events)
    assert _resident_mib() - before < 25


def test_more_than_500_joint_arms():
    offers = [Offer(f"o{i}", {"category": f"c{i % 7}"}) for i in range(64)]
    arm_set = ArmSet.product(offers, ["sms", "email", "push", "in_app"], ["morning", "lunch"])
    assert len(arm_set) == 512
    learner = CbAdfLearner(small(exploration="squarecb"))
    context = DecisionContext("u", {"segment": "s0"})
    for _ in range(20):
        learner.learn([LearningEvent(context, arm_set, 300, 1 / 512, 1.0)])
    pmf = learner.predict_pmf(context, arm_set)
    assert pmf.shape == (512,) and abs(pmf.sum() - 1) < 1e-5 and int(np.argmax(pmf)) == 300


@pytest.mark.parametrize("options, field", [
    (dict(exploration="greedy"), "exploration"), (dict(epsilon=-0.1), "epsilon"), (dict(epsilon=1.5), "epsilon"),
    (dict(epsilon=float("nan")), "epsilon"), (dict(softmax_lambda=0.0), "softmax_lambda"),
    (dict(squarecb_gamma_scale=-1.0), "squarecb_gamma_scale"), (dict(bag_size=0), "bag_size"),
    (dict(cover_size=1.5), "cover_size"), (dict(bits=12), "bits"), (dict(bits=True), "bits"),
    (dict(learning_rate=0.0), "learning_rate"), (dict(learning_rate=float("inf")), "learning_rate"),
    (dict(seed=-1), "seed"), (dict(interactions=("ux",)), "interactions"), (dict(interactions=("u",)), "interactions"),
    (dict(cb_type="xyz"), "cb_type"),
])
def test_invalid_options_name_the_field(options, field):
    with pytest.raises(InvalidInput) as caught:
        CbAdfOptions(**options)
    assert caught.value.field == field


@pytest.mark.parametrize("context, arm_set, field", [
    (DecisionContext("u"), ArmSet((), {}), "arm_set.arms"),
    (DecisionContext("u"), ArmSet((JointArm("missing", "sms", "m"),), {}), "arm_set.arms[0].offer_id"),
    (DecisionContext("u"), ArmSet((ARMS.arms[0], ARMS.arms[0]), ARMS.offers), "arm_set.arms"),
    (DecisionContext("u", numeric={"x": float("nan")}), ARMS, "numeric.x"),
    (DecisionContext("u", numeric={"x": float("inf")}), ARMS, "numeric.x"),
    ("not a context", ARMS, "context"),
    (DecisionContext("u"), list(ARMS.arms), "arm_set"),
])
def test_bad_decisions_raise_invalid_input(context, arm_set, field):
    learner = CbAdfLearner(small())
    with pytest.raises(InvalidInput) as caught:
        learner.predict_pmf(context, arm_set)
    assert caught.value.field == field


def test_a_bad_event_in_a_batch_changes_nothing():
    learner = CbAdfLearner(small())
    context = DecisionContext("u", {"segment": "s1"})
    before = learner.save()
    good = [LearningEvent(context, ARMS, 7, 0.5, 1.0)] * 5
    bad = LearningEvent(context, ArmSet((JointArm("ghost", "sms", "m"),), ARMS.offers), 0, 0.5, 1.0)
    with pytest.raises(InvalidInput) as caught:
        learner.learn([*good, bad])
    assert caught.value.field == "events[5].arm_set.arms[0].offer_id"
    assert learner.save() == before


def test_concurrent_predictions_match_serial_ones():
    learner = CbAdfLearner(small())
    rng = np.random.default_rng(3)
    learner.learn([world_event(rng, learner) for _ in range(100)])
    contexts = [DecisionContext("u", {"segment": f"s{i % 2}"}, {"tenure": float(i)}) for i in range(40)]
    expected = [learner.predict_pmf(context, ARMS) for context in contexts]
    results: dict[int, list] = {}

    def worker(index):
        results[index] = [learner.predict_pmf(context, ARMS) for context in contexts for _ in range(5)]

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for got in results.values():
        for i, pmf in enumerate(got):
            np.testing.assert_array_equal(pmf, expected[i // 5])


# --- DSJSON -----------------------------------------------------------------------------------

def _events(count, seed):
    learner = CbAdfLearner(small(epsilon=0.3))  # the logger: explores a lot, learns nothing
    rng = np.random.default_rng(seed)
    return [world_event(rng, learner) for _ in range(count)]


def test_dsjson_record_shape():
    event = _events(1, 0)[0]
    record = dsjson_record(event_id="e-1", timestamp="2026-01-01T00:00:00Z", context=event.context,
                           arm_set=event.arm_set, pmf=event.pmf, chosen=event.chosen, reward=event.reward)
    assert record["_label_cost"] == -event.reward
    assert record["_labelIndex"] == event.chosen and record["_label_Action"] == event.chosen + 1
    assert record["a"][0] == event.chosen + 1 and sorted(record["a"]) == list(range(1, len(ARMS) + 1))
    assert record["p"][0] == record["_label_probability"] == pytest.approx(event.probability)
    assert len(record["c"]["_multi"]) == len(ARMS)
    line = dsjson_line(record)
    assert "\n" not in line and json.loads(line) == record
    assert dsjson_record(event_id="e", timestamp="t", context=event.context, arm_set=ARMS, pmf=event.pmf,
                         chosen=0, reward=0.0, skip_learn=True)["_skipLearn"] is True


def test_dsjson_uses_the_same_features_as_online_learning(tmp_path):
    """Train VW from an exported DSJSON file and, separately, online through the adapter: same model."""
    events = _events(300, 1)
    path = tmp_path / "log.dsjson"
    with path.open("w") as handle:
        for i, event in enumerate(events):
            handle.write(dsjson_line(dsjson_record(
                event_id=f"e{i}", timestamp="2026-01-01T00:00:00Z", context=event.context, arm_set=event.arm_set,
                pmf=event.pmf, chosen=event.chosen, reward=event.reward)) + "\n")
    options = small()
    model = tmp_path / "model.vw"
    offline = pyvw.Workspace(arg_list=[*options.args(), "--save_resume", "--dsjson", "-d", str(path), "-f", str(model)])
    offline.finish()
    from_file = CbAdfLearner.from_bytes(options, model.read_bytes())
    online = CbAdfLearner(options)
    online.learn(events)
    for segment, best in (("s0", 2), ("s1", 5)):
        context = DecisionContext("u", {"segment": segment}, {"tenure": 3.0})
        pmf_file, pmf_online = from_file.predict_pmf(context, ARMS), online.predict_pmf(context, ARMS)
        assert int(np.argmax(pmf_file)) == best, "the DSJSON-trained model learned the wrong direction"
        np.testing.assert_allclose(pmf_file, pmf_online, atol=1e-6)


def test_dsjson_context_escapes_like_the_text_lines():
    context = DecisionContext("u", {"seg ment": "a|b"})
    arm_set = ArmSet.product([Offer("o 1", {"k:": "v\n"})], ["sms"], ["m"])
    c = dsjson_context(context, arm_set)
    assert c["u"] == {f"{escape_token('seg ment')}={escape_token('a|b')}": 1}
    assert c["_multi"][0]["o"] == {f"id={escape_token('o 1')}": 1}
    assert c["_multi"][0]["of"] == {f"{escape_token('k:')}={escape_token('v' + chr(10))}": 1}


# --- reward regressor -------------------------------------------------------------------------

def test_regressor_learns_expected_rewards_per_context_and_arm():
    events = _events(2000, 4)
    regressor = VWRewardRegressor(RewardRegressorConfig(bits=18)).fit(events)
    for segment in (0, 1):
        context = DecisionContext("u", {"segment": f"s{segment}"}, {"tenure": 3.0})
        predicted = regressor.predict(context, ARMS)
        assert predicted.shape == (len(ARMS),) and predicted.dtype == np.float64
        truth = np.array([expected_reward(segment, arm) for arm in ARMS.arms])
        assert int(np.argmax(predicted)) == int(np.argmax(truth))
        np.testing.assert_allclose(predicted, truth, atol=0.12)
    batch = regressor.predict_batch([(DecisionContext("u", {"segment": "s0"}), ARMS)])
    np.testing.assert_array_equal(batch[0], regressor.predict(DecisionContext("u", {"segment": "s0"}), ARMS))


@pytest.mark.parametrize("changes, field", [
    (dict(bits=8), "bits"), (dict(epochs=0), "epochs"), (dict(learning_rate=-1.0), "learning_rate"),
    (dict(interactions=("zz",)), "interactions"),
])
def test_regressor_config_validation(changes, field):
    with pytest.raises(InvalidInput) as caught:
        RewardRegressorConfig(**changes)
    assert caught.value.field == field


def _write_dsjson(path, events, skip_learn=False):
    with path.open("w") as handle:
        for i, event in enumerate(events):
            handle.write(dsjson_line(dsjson_record(
                event_id=f"e{i}", timestamp="2026-01-01T00:00:00Z", context=event.context, arm_set=event.arm_set,
                pmf=event.pmf, chosen=event.chosen, reward=event.reward, skip_learn=skip_learn)) + "\n")


def test_export_is_readable_by_plain_cb_adf_and_learns_lower_cost_for_the_best_arm(tmp_path):
    path = tmp_path / "log.dsjson"
    _write_dsjson(path, _events(600, 2))
    model = tmp_path / "cb_adf.vw"
    workspace = pyvw.Workspace(arg_list=["--cb_adf", "--dsjson", "--quiet", "-b", "18", "--interactions", "uo",
                                         "--interactions", "uf", "--interactions", "ut", "-d", str(path),
                                         "-f", str(model)])
    workspace.finish()
    scorer = pyvw.Workspace(arg_list=["--quiet", "-i", str(model)])
    lines = [arm_line(arm, ARMS.offers[arm.offer_id]) for arm in ARMS.arms]
    for segment, best in ((0, 2), (1, 5)):
        costs = scorer.predict([shared_line(DecisionContext("u", {"segment": f"s{segment}"})), *lines])
        assert int(np.argmin(costs)) == best  # cost = -reward: the best arm has the lowest cost


def test_skip_learn_records_are_not_learned(tmp_path):
    path = tmp_path / "skipped.dsjson"
    _write_dsjson(path, _events(100, 3), skip_learn=True)
    options = small()
    model = tmp_path / "model.vw"
    pyvw.Workspace(arg_list=[*options.args(), "--save_resume", "--dsjson", "-d", str(path), "-f", str(model)]).finish()
    from_file, fresh = CbAdfLearner.from_bytes(options, model.read_bytes()), CbAdfLearner(options)
    context = DecisionContext("u", {"segment": "s1"})
    np.testing.assert_array_equal(from_file.predict_pmf(context, ARMS), fresh.predict_pmf(context, ARMS))

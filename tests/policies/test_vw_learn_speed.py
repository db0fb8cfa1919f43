"""The learner's speed-ups change how fast it learns, never what: ``--no_predict`` (cb_adf's prediction
pass before an mtr update skipped) and featureless stand-ins for the unchosen arms (where the update
reads only the chosen one). A learner using them and a plain VW workspace fed full text lines, without
them, learn the same events: their saved models are the same bytes and their pmfs on held-out contexts
are equal (float for float), for every exploration and cb_type VW accepts, before and after a save/load round trip.
(VW's own epsilon-greedy and bag reductions already add ``--no_predict`` for the same reason.)"""
import numpy as np
import pytest
from vowpalwabbit import pyvw

from offerbandit.errors import InvalidInput
from policies.types import ArmSet, DecisionContext, LearningEvent, Offer
from policies.vw import EXPLORATIONS, CbAdfLearner, CbAdfOptions, arm_line, shared_line
from policies.vw.features import context_features
from policies.vw.learner import LEARN_ARGS, PAD_ARMS
from policies.vw.workspace import learn_multi, save_workspace
from tests.policies.test_vw_fast_path import random_context

OFFERS = [Offer(f"offer-{i}", {"category": f"cat-{i % 3}", "discount": f"{i % 4}0%"}) for i in range(10)]
CATALOGUE = ArmSet.product(OFFERS, ["sms", "email", "push"], ["morning", "lunch", "evening", "night"])  # 120 arms


def random_arm_set(rng) -> ArmSet:
    keep = rng.random(len(CATALOGUE.arms)) < rng.uniform(0.2, 1.0)
    keep[rng.integers(len(keep))] = True
    order = rng.permutation(len(CATALOGUE.arms))
    return ArmSet(tuple(CATALOGUE.arms[i] for i in order if keep[i]), CATALOGUE.offers)




def text_lines(context, arm_set, chosen=None, label=""):
    lines = [arm_line(arm, arm_set.offers[arm.offer_id]) for arm in arm_set.arms]
    if chosen is not None:
        lines[chosen] = f"{label} {lines[chosen]}"
    return [shared_line(context), *lines]


def random_events(rng, count: int, pool: list[ArmSet]) -> list[LearningEvent]:
    events = []
    for step in range(count):
        arm_set = pool[rng.integers(len(pool))] if step % 4 else random_arm_set(rng)
        chosen = int(rng.integers(len(arm_set)))
        events.append(LearningEvent(random_context(rng), arm_set, chosen, float(rng.uniform(0.01, 1.0)),
                                    float(rng.random() < 0.3)))
    return events


def learn_text(workspace, events) -> None:
    """Every arm's full text line parsed and learned as the learner did before the speed-ups (no
    ``finish_example``, whose loss statistics would make the saved bytes differ for other reasons)."""
    label_type = workspace.get_label_type()
    for event in events:
        label = f"0:{-event.reward!r}:{event.probability!r}"
        lines = text_lines(event.context, event.arm_set, event.chosen, label)
        learn_multi(workspace, [pyvw.Example(workspace, line, label_type) for line in lines])


def assert_same_model(learner: CbAdfLearner, reference, held_out) -> None:
    assert learner.save() == save_workspace(reference)
    for context, arm_set in held_out:
        np.testing.assert_array_equal(learner.predict_pmf(context, arm_set),
                                      np.asarray(reference.predict(text_lines(context, arm_set)), dtype=np.float64))


def combinations():
    for exploration in EXPLORATIONS:
        for cb_type in (("mtr",) if exploration == "squarecb" else ("mtr", "ips", "dr")):  # squarecb: mtr only
            yield exploration, cb_type


@pytest.mark.parametrize(("exploration", "cb_type"), list(combinations()))
def test_the_fast_learner_learns_exactly_what_plain_vw_learns(tmp_path, exploration, cb_type):
    options = CbAdfOptions(exploration=exploration, cb_type=cb_type, bits=18, bag_size=3, cover_size=3, seed=4)
    rng = np.random.default_rng(11)
    pool = [random_arm_set(rng) for _ in range(5)]
    held_out = [(random_context(rng), arm_set) for arm_set in pool]
    learner = CbAdfLearner(options)
    reference = pyvw.Workspace(arg_list=[*options.args(), "--save_resume"])
    # VW itself turns --no_predict on for epsilon-greedy and bag; elsewhere the reference really runs without
    assert ("--no_predict" in reference.get_arguments().split()) == (exploration in ("epsilon", "bag"))
    assert set(LEARN_ARGS) <= set(learner._vw.get_arguments().split())
    events = random_events(rng, 90, pool)
    learner.learn(events[:40])
    learn_text(reference, events[:40])
    assert_same_model(learner, reference, held_out)
    # the stand-ins are used exactly where the update reads only the chosen arm
    assert bool(learner._pads) == (cb_type == "mtr" and exploration != "cover")

    # a saved model loads into a fast learner and goes on learning the same
    data = learner.save()
    learner.load(data)
    path = tmp_path / "model.vw"
    path.write_bytes(data)
    reloaded = pyvw.Workspace(arg_list=[*options.args(with_seed=False), "--save_resume", "-i", str(path)])
    learner.learn(events[40:])
    learn_text(reloaded, events[40:])
    assert_same_model(learner, reloaded, held_out)


def test_an_arm_set_longer_than_the_stand_ins_learns_the_same_from_its_full_examples():
    offers = [Offer(f"o{i}", {"category": f"c{i % 5}"}) for i in range(PAD_ARMS // 4 + 3)]
    long_set = ArmSet.product(offers, ["sms", "email"], ["am", "pm"])
    assert len(long_set) > PAD_ARMS
    options = CbAdfOptions(bits=18, seed=2)
    rng = np.random.default_rng(5)
    short_set = random_arm_set(rng)
    learner = CbAdfLearner(options)
    reference = pyvw.Workspace(arg_list=[*options.args(), "--save_resume"])
    events = []
    for step in range(30):
        arm_set = long_set if step % 2 else short_set
        events.append(LearningEvent(random_context(rng), arm_set, int(rng.integers(len(arm_set))), 0.25,
                                    float(step % 3 == 0)))
    learner.learn(events)
    learn_text(reference, events)
    assert len(learner._pads) == len(short_set)  # the short set padded, the long one did not
    assert_same_model(learner, reference, [(random_context(rng), long_set), (random_context(rng), short_set)])


def test_the_shared_line_is_what_context_features_say():
    """shared_line remembers escaped tokens; its text stays the one built from context_features."""
    def built(context):
        categorical, numeric = context_features(context)
        parts = ["shared"]
        if categorical:
            parts.append("|u " + " ".join(categorical))
        if numeric:
            parts.append("|n " + " ".join(f"{name}:{value!r}" for name, value in numeric))
        return " ".join(parts if len(parts) > 1 else [*parts, "|u"])

    rng = np.random.default_rng(3)
    contexts = [random_context(rng) for _ in range(50)] + [
        DecisionContext("u", {}, {}), DecisionContext("u", {"a b": "c|d:e=f", "%": "\t"}, {}),
        DecisionContext("u", {}, {"z:1": 3.0, "n": 1e-300, "i": 7}), DecisionContext("u", {"k": "v"}, {"x": -0.0})]
    for context in contexts * 2:  # the second time from the remembered tokens
        assert shared_line(context) == built(context)
    with pytest.raises(InvalidInput):
        shared_line(DecisionContext("u", {}, {"bad": float("nan")}))

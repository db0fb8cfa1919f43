"""The per-arm match features (namespace ``m``): what each arm line carries for one customer, the cached and
the freshly built paths agreeing, and learning from them generalising across values and customers."""
from __future__ import annotations

import numpy as np
import pytest

from policies.types import ArmSet, CustomerFeatures, DecisionContext, JointArm, LearningEvent, Offer
from policies.vw.dsjson import dsjson_context
from policies.vw.features import MATCH_NAMESPACE, match_parts, match_tokens
from policies.vw.learner import CbAdfLearner, CbAdfOptions

OFFERS = [Offer(f"o{i}", {"category": cat}) for i, cat in enumerate(["travel", "dining", "fashion", "sport"])]
ARMS = ArmSet.product(OFFERS, ["sms", "email"], ["morning", "evening"])


def _customer(category: dict, fmt: dict | None = None, slot: dict | None = None,
              offer: dict | None = None) -> CustomerFeatures:
    return CustomerFeatures({"category": category, "format": fmt or {}, "time_slot": slot or {}, "offer": offer or {}})


def test_each_arm_line_carries_this_customers_counts_for_its_own_values():
    customer = _customer({"travel": (3, 1), "dining": (2, 0)}, {"sms": (5, 1)})
    parts = match_parts(ARMS, customer)
    by_arm = dict(zip(ARMS.arms, parts))
    assert by_arm[JointArm("o0", "sms", "morning")] == f" |{MATCH_NAMESPACE} cr:0.693147 cn:1.09861 fr:0.693147 fn:1.60944"
    assert by_arm[JointArm("o1", "email", "evening")] == f" |{MATCH_NAMESPACE} cn:1.09861"
    assert by_arm[JointArm("o2", "email", "morning")] == ""  # nothing known about fashion, e-mail or mornings
    assert match_tokens(by_arm[JointArm("o1", "sms", "evening")]) == pytest.approx(
        {"cn": np.log1p(2), "fr": np.log1p(1), "fn": np.log1p(4)}, abs=1e-5)
    assert match_parts(ARMS, None) is None  # a cold customer: every arm as cached
    (offered,) = [part for arm, part in zip(ARMS.arms, match_parts(ARMS, _customer({}, offer={"o3": (4, 1)})))
                  if arm == JointArm("o3", "email", "evening")]
    assert offered == f" |{MATCH_NAMESPACE} or:0.693147 on:1.38629"  # this very offer: answered once in four


def test_a_response_whose_show_left_the_horizon_counts_and_never_gives_negative_unanswered():
    (part,) = match_parts(ArmSet.product(OFFERS[:1], ["sms"], ["morning"]), _customer({"travel": (0, 2)}))
    assert part == f" |{MATCH_NAMESPACE} cr:1.09861"


def test_dsjson_carries_the_same_match_features_as_the_text_lines():
    customer = _customer({"travel": (3, 1)}, slot={"evening": (1, 1)})
    record = dsjson_context(DecisionContext("u", {"segment": "a"}, customer=customer), ARMS)
    for action, arm, part in zip(record["_multi"], ARMS.arms, match_parts(ARMS, customer)):
        assert action.get(MATCH_NAMESPACE, {}) == match_tokens(part)
    assert record["_multi"][ARMS.arms.index(JointArm("o0", "sms", "evening"))][MATCH_NAMESPACE] == pytest.approx(
        {"cr": np.log1p(1), "cn": np.log1p(2), "tr": np.log1p(1)}, abs=1e-5)


@pytest.mark.parametrize("exploration", ["squarecb", "epsilon", "cover"])
def test_cached_pmf_equals_the_pmf_from_fresh_text_lines_with_customer_features(exploration):
    learner = CbAdfLearner(CbAdfOptions(exploration=exploration, bits=18, interactions=("uo", "mm")))
    rng = np.random.default_rng(5)
    customers = [None, _customer({"travel": (3, 1)}), _customer({"dining": (4, 2)}, {"email": (2, 2)})]
    events = []
    for i in range(200):
        customer = customers[i % 3]
        chosen = int(rng.integers(len(ARMS)))
        events.append(LearningEvent(DecisionContext(f"u{i % 7}", {"segment": "a"}, customer=customer), ARMS, chosen,
                                    1.0 / len(ARMS), float(rng.random() < 0.3)))
    learner.learn(events)
    for customer in customers:
        context = DecisionContext("u", {"segment": "a"}, customer=customer)
        np.testing.assert_allclose(learner.predict_pmf(context, ARMS), learner.predict_pmf_uncached(context, ARMS),
                                   rtol=0, atol=1e-6)
    learner.close()


def test_what_one_customer_taught_about_a_category_carries_to_another_customer_and_category():
    """Customers answer only arms of the category they answered before; the learner, shown that, ranks first
    the arms of whatever category a NEW customer answered -- a category no training customer answered."""
    learner = CbAdfLearner(CbAdfOptions(exploration="epsilon", epsilon=0.0, bits=18, interactions=("mm",)))
    rng = np.random.default_rng(11)
    categories = ["travel", "dining", "fashion"]
    events = []
    for i in range(3000):
        favourite = categories[i % 3]
        customer = _customer({favourite: (2, 1)})
        chosen = int(rng.integers(len(ARMS)))
        answered = ARMS.offers[ARMS.arms[chosen].offer_id].category == favourite
        events.append(LearningEvent(DecisionContext(f"u{i}", customer=customer), ARMS, chosen, 1.0 / len(ARMS),
                                    float(answered and rng.random() < 0.6)))
    learner.learn(events)
    pmf = learner.predict_pmf(DecisionContext("new", customer=_customer({"sport": (2, 1)})), ARMS)
    best = ARMS.arms[int(np.argmax(pmf))]
    assert ARMS.offers[best.offer_id].category == "sport"
    # without the customer's counts nothing singles sport out
    cold = learner.predict_pmf(DecisionContext("new"), ARMS)
    assert ARMS.offers[ARMS.arms[int(np.argmax(cold))].offer_id].category != "sport"
    learner.close()

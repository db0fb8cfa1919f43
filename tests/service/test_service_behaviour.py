"""Behaviour through the real server: reward windows, late rewards, exact draw frequencies, contact
rules from config, learning modes and the Prometheus endpoint."""
from __future__ import annotations

import sqlite3
import time
import urllib.request

import numpy as np
import pytest
from scipy import stats

from offers.v1 import decision_pb2 as pb
from tests.conftest import OFFERS, make_request


def _row(data_dir, event_id):
    con = sqlite3.connect(data_dir / "decisions.db")
    con.row_factory = sqlite3.Row
    try:
        return con.execute("SELECT * FROM decisions WHERE event_id = ?", (event_id,)).fetchone()
    finally:
        con.close()


def _wait(predicate, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


SHORT_WINDOW = """
[learning]
poll_seconds = 0.1
[campaigns.default]
reward_window_seconds = 0.5
reward_windows = {}
reward_range = [-1.0, 10.0]
default_reward = -0.25
"""


def test_window_close_learns_the_default_reward_and_later_rewards_are_late(start_server):
    served = start_server(SHORT_WINDOW)
    decision = served.stub.Decide(make_request(), timeout=10)
    assert _wait(lambda: _row(served.data_dir, decision.event_id)["learned_at"] is not None)
    row = _row(served.data_dir, decision.event_id)
    assert row["reward"] == -0.25 and row["reward_count"] == 0
    assert _wait(lambda: served.server.learner.learned == 1)
    late = served.stub.Reward(pb.RewardRequest(event_id=decision.event_id, value=1.0), timeout=10)
    assert (late.accepted, late.duplicate, late.late) == (False, False, True)
    assert _row(served.data_dir, decision.event_id)["reward"] == -0.25  # never re-learned or changed
    time.sleep(0.3)
    assert served.server.learner.learned == 1


def test_sum_aggregation_is_learned_once_at_window_close(start_server):
    served = start_server(SHORT_WINDOW.replace("default_reward = -0.25", "aggregation = \"sum\""))
    decision = served.stub.Decide(make_request(), timeout=10)
    for reward_id in ("a", "b"):
        served.stub.Reward(pb.RewardRequest(event_id=decision.event_id, value=2.0, reward_id=reward_id), timeout=10)
    assert _wait(lambda: served.server.learner.learned == 1)
    row = _row(served.data_dir, decision.event_id)
    assert row["reward"] == 4.0 and row["learned_at"] is not None


def test_draw_frequencies_match_the_returned_pmf(start_server):
    """Learning frozen (no rewards) and new customers (no history): every request has one pmf."""
    served = start_server("[privacy]\nuser_hash_key = \"chi-square-test-key\"\n")
    first = served.stub.Decide(make_request(user="first"), timeout=10)
    pmf = {(a.offer_id, a.format, a.time_slot): a.probability for a in first.ranking}
    counts = dict.fromkeys(pmf, 0)
    n = 0
    for batch in range(40):
        response = served.stub.DecideBatch(pb.DecideBatchRequest(
            requests=[make_request(user=f"user-{batch}-{i}") for i in range(100)]), timeout=30)
        for decision in response.decisions:
            arm = (decision.offer_id, decision.format, decision.time_slot)
            # ranking entries are float32 (what the compact log keeps); the chosen one is exact
            assert decision.probability == pytest.approx(pmf[arm], rel=2 ** -23, abs=0)
            own = {(a.offer_id, a.format, a.time_slot): a.probability for a in decision.ranking}
            assert own[arm] == decision.probability
            counts[arm] += 1
            n += 1
    arms = sorted(pmf)
    observed = np.array([counts[a] for a in arms])
    values = np.array([pmf[a] for a in arms])
    expected = values / values.sum() * n  # float32 ranking entries sum to 1 only within ~1e-7
    keep = expected >= 5  # chi-square validity; pool the rare arms into one cell
    observed = np.append(observed[keep], observed[~keep].sum())
    expected = np.append(expected[keep], expected[~keep].sum())
    if expected[-1] == 0:
        observed, expected = observed[:-1], expected[:-1]
    p_value = stats.chisquare(observed, expected).pvalue
    assert p_value > 1e-6, (p_value, observed, expected)


NOVELTY_HALF = """
[privacy]
user_hash_key = "novelty-e2e-test-key"
[campaigns.default.novelty]
beta = 0.5
"""


def test_narrow_history_is_explored_outside_it_at_rate_beta(start_server):
    """Customers shown only travel: half their next draws (β = 0.5) come from the novelty component,
    and every one of those is food or tech; the returned pmf puts at least β outside the history."""
    served = start_server(NOVELTY_HALF)
    travel_only = [offer for offer in OFFERS if offer[1]["category"] == "travel"]
    users = [f"narrow-{i}" for i in range(400)]
    for start in range(0, len(users), 100):
        served.stub.DecideBatch(pb.DecideBatchRequest(
            requests=[make_request(user=u, offers=travel_only) for u in users[start:start + 100]]), timeout=30)
    category = {oid: features["category"] for oid, features in OFFERS}
    novelty_draws = 0
    for start in range(0, len(users), 100):
        response = served.stub.DecideBatch(pb.DecideBatchRequest(
            requests=[make_request(user=u) for u in users[start:start + 100]]), timeout=30)
        for decision in response.decisions:
            outside_mass = sum(a.probability for a in decision.ranking if category[a.offer_id] != "travel")
            # float32 entries (what the compact log keeps): each within 2^-24 relative of the pmf
            assert sum(a.probability for a in decision.ranking) == pytest.approx(1.0, abs=1e-6)
            assert outside_mass >= 0.5 - 1e-6
            if decision.exploration == "explore_outside_history":
                novelty_draws += 1
                assert category[decision.offer_id] != "travel", decision
    assert stats.binomtest(novelty_draws, len(users), 0.5).pvalue > 1e-6, novelty_draws


RULES = """
[campaigns.default]
formats = ["sms", "email"]
time_slots = ["morning", "evening"]
[[campaigns.default.offers]]
id = "retain"
features = { category = "finance", offer_type = "retention" }
[[campaigns.default.offers]]
id = "crosssell"
features = { category = "travel", offer_type = "cross_sell" }
[campaigns.default.rules]
slot_hours = { morning = 8, evening = 22 }
[[campaigns.default.rules.caps]]
format = "sms"
max_contacts = 1
window_s = 3600
[[campaigns.default.rules.quiet_hours]]
format = "email"
start_hour = 21
end_hour = 7
[[campaigns.default.rules.suppressions]]
context_key = "open_service_problem"
context_value = "true"
offer_feature = "offer_type"
feature_values = ["cross_sell", "upsell"]
"""


def _catalog_request(user: str, **context) -> pb.DecideRequest:
    request = pb.DecideRequest(user_id=user)
    request.context.update(context or {"segment": "x"})
    return request


def test_contact_rules_from_config(start_server):
    served = start_server(RULES)
    decide = lambda r: served.stub.Decide(r, timeout=10)  # noqa: E731
    for i in range(15):  # quiet hours: no email in the evening slot (22h), ever
        d = decide(_catalog_request(f"quiet{i}"))
        assert (d.format, d.time_slot) != ("email", "evening")
        assert all((a.format, a.time_slot) != ("email", "evening") for a in d.ranking)
    for i in range(15):  # suppression: no cross-sell while a service problem is open
        d = decide(_catalog_request(f"problem{i}", open_service_problem="true"))
        assert d.offer_id == "retain" and all(a.offer_id == "retain" for a in d.ranking)
    # frequency cap: once one sms went out, the next decisions for that customer use email only
    user = "capped"
    while decide(_catalog_request(user)).format != "sms":
        pass
    for _ in range(5):
        d = decide(_catalog_request(user))
        assert d.format == "email" and all(a.format == "email" for a in d.ranking)
    # all arms removed -> a logged no_contact decision
    blocked = make_request(user=user, context={"open_service_problem": "true"}, offers=[
        ("crosssell", {"offer_type": "cross_sell", "category": "travel"})], formats=["sms"], slots=["morning"])
    d = decide(blocked)
    assert d.exploration == "no_contact" and d.offer_id == "" and d.probability == 1.0
    assert _row(served.data_dir, d.event_id)["exploration"] == "no_contact"


def test_deferred_decisions_do_not_count_for_caps_until_activated(start_server):
    served = start_server(RULES)
    user = "deferred-user"
    decision = None
    for _ in range(50):
        decision = served.stub.Decide(pb.DecideRequest(user_id=user, deferred=True), timeout=10)
        if decision.format == "sms":
            break
    assert decision.format == "sms"
    free = served.stub.Decide(pb.DecideRequest(user_id=user, deferred=True), timeout=10)
    assert any(a.format == "sms" for a in free.ranking)  # not activated: the cap is not used up
    served.stub.Activate(pb.ActivateRequest(event_id=decision.event_id), timeout=10)
    capped = served.stub.Decide(pb.DecideRequest(user_id=user), timeout=10)
    assert all(a.format == "email" for a in capped.ranking)


LOGGING_ONLY = """
[campaigns.default]
mode = "logging_only"
exploration_slice = 0.2
[campaigns.default.novelty]
beta = 0.0
"""


def test_logging_only_serves_the_baseline_with_an_exact_exploration_slice(start_server):
    served = start_server(LOGGING_ONLY)
    baseline = pb.Arm(offer_id="o2", format="email", time_slot="evening")
    d = served.stub.Decide(make_request(baseline=baseline), timeout=10)
    pmf = {(a.offer_id, a.format, a.time_slot): a.probability for a in d.ranking}
    n = len(pmf)
    assert n == 12
    assert pmf[("o2", "email", "evening")] == pytest.approx(0.8 + 0.2 / n)
    assert all(p == pytest.approx(0.2 / n) for arm, p in pmf.items() if arm != ("o2", "email", "evening"))


def test_prometheus_metrics_endpoint(start_server):
    served = start_server(metrics_port=0)
    for i in range(3):
        d = served.stub.Decide(make_request(user=f"m{i}"), timeout=10)
        served.stub.Reward(pb.RewardRequest(event_id=d.event_id, value=1.0), timeout=10)
    served.stub.Reward(pb.RewardRequest(event_id=d.event_id, value=1.0), timeout=10)  # duplicate
    text = urllib.request.urlopen(served.server.metrics_http.url, timeout=10).read().decode()
    decided = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                  if line.startswith("offerbandit_decisions_total{") and 'outcome="ok"' in line)
    assert decided == 3
    assert any(line.startswith("offerbandit_rewards_total{") and 'outcome="duplicate"' in line
               and line.endswith(" 1.0") for line in text.splitlines())
    assert 'offerbandit_policy_version_info{campaign="default",version="bootstrap"} 1.0' in text

"""GetDecision through a real server on both backends: every rule kind with the exact removed arms and rules,
the first rule winning, the holdout, the writer's commit-time cap (two replicas on one PostgreSQL log), the
counted reward, errors and the bearer token; ``offerbandit show-decision`` prints the same from the log."""
from __future__ import annotations

import json
import subprocess

import grpc
import pytest
from google.protobuf.json_format import MessageToDict

from offers.v1 import decision_pb2 as pb
from service.holdout import in_holdout
from tests.conftest import OFFERBANDIT, make_request
from tests.decision_log.conftest import log_place  # noqa: F401 - the sqlite/postgres fixture
from tests.waiting import wait_for

TOKEN = "get-decision-token"
AUTH = (("authorization", f"Bearer {TOKEN}"),)
OFFERS = [("o1", {"category": "travel", "offer_type": "cross_sell"}), ("o2", {"category": "food", "offer_type": "loyalty"}),
          ("o3", {"category": "tech", "offer_type": "loyalty"})]
FORMATS = ["sms", "email", "push"]
SLOTS = ["morning", "evening"]  # 8 h and 19 h
CONFIG = """
[log]
url = "{url}"
{log_extra}
[privacy]
user_hash_key = "get-decision-tests-user-hash-key"
[campaigns.default.rules]
slot_hours = {{ morning = 8, evening = 19 }}
[[campaigns.default.rules.caps]]
format = "sms"
max_contacts = 1
window_s = 3600
[[campaigns.default.rules.quiet_hours]]
format = "email"
start_hour = 18
end_hour = 23
[[campaigns.default.rules.suppressions]]
context_key = "open_service_problem"
context_value = "true"
offer_feature = "offer_type"
feature_values = ["cross_sell"]
[campaigns.held]
holdout = 0.5
[campaigns.held_baseline]
holdout = 0.5
holdout_treatment = "baseline"
"""


@pytest.fixture
def serve(start_server, log_place, request, monkeypatch):  # noqa: F811
    """Real servers (with a bearer token) on ``log_place``; on PostgreSQL replicas (they need MLflow's address)."""
    if log_place.kind == "postgres":
        monkeypatch.setenv("MLFLOW_TRACKING_URI", request.getfixturevalue("mlflow_store").tracking_uri)
    return lambda log_extra="": start_server(CONFIG.format(url=log_place.url, log_extra=log_extra), auth_token=TOKEN)


def _decide(served, user: str, **fields) -> pb.Decision:
    fields.setdefault("offers", OFFERS)
    fields.setdefault("formats", FORMATS)
    fields.setdefault("slots", SLOTS)
    context = fields.pop("context", {"segment": "young"})
    return served.stub.Decide(make_request(user=user, context=context, **fields), timeout=10, metadata=AUTH)


def _get(served, event_id: str, metadata=AUTH) -> pb.DecisionRecord:
    return served.stub.GetDecision(pb.GetDecisionRequest(event_id=event_id), timeout=10, metadata=metadata)


def _removed(record: pb.DecisionRecord) -> list[tuple[str, str, str, str]]:
    return [(r.arm.offer_id, r.arm.format, r.arm.time_slot, r.rule) for r in record.removed]


def _arms(offers=("o1", "o2", "o3"), formats=FORMATS, slots=SLOTS) -> list[tuple[str, str, str]]:
    return [(o, f, s) for o in offers for f in formats for s in slots]


def _expected_rules(offer: str, fmt: str, slot: str) -> str:
    """The first rule for ``_every_rule``'s request: o3 excluded; push without consent; sms capped (one sms
    contact already); email at 19 h in quiet hours; o1 (cross-sell) suppressed by the open service problem."""
    if offer == "o3":
        return "excluded"
    if fmt == "push":
        return "consent"
    if fmt == "sms":
        return "cap"
    if fmt == "email" and slot == "evening":
        return "quiet_hours"
    if offer == "o1":
        return "suppression"
    return ""


def _every_rule(served, user: str) -> pb.Decision:
    first = _decide(served, user, formats=["sms"], slots=["morning"])  # the customer's one sms contact
    assert first.format == "sms" and first.exploration != "no_contact"
    return _decide(served, user, context={"segment": "young", "open_service_problem": "true"},
                   excluded_offers=["o3"], consented_formats=["sms", "email"])


def _held_user(served, campaign: str, share: float = 0.5, held: bool = True) -> str:
    keys = served.engine.keys
    return next(user for user in (f"user-{i}" for i in range(1000))
                if in_holdout(keys.seed_key, campaign, keys.user_key(user), share) == held)


def test_every_rule_kind_with_the_exact_arms_and_the_first_rule_winning(serve):
    served = serve()
    answer = _every_rule(served, "ana")
    # only o2 by email in the morning survives every rule: chosen with probability 1
    assert (answer.offer_id, answer.format, answer.time_slot, answer.probability) == ("o2", "email", "morning", 1.0)
    record = _get(served, answer.event_id)
    assert record.decision == answer  # the decision as it was returned (ranking_limit 0: the full pmf)
    expected = [(*arm, _expected_rules(*arm)) for arm in _arms() if _expected_rules(*arm)]
    assert _removed(record) == expected
    # several rules apply to these arms; the first in the contract's order is named
    rules = {(o, f, s): rule for o, f, s, rule in _removed(record)}
    assert rules[("o3", "push", "morning")] == "excluded"  # also no consent, and o3 ... excluded first
    assert rules[("o3", "sms", "evening")] == "excluded"  # also capped
    assert rules[("o1", "push", "evening")] == "consent"  # also suppressed
    assert rules[("o1", "sms", "morning")] == "cap"  # also suppressed
    assert rules[("o1", "email", "evening")] == "quiet_hours"  # also suppressed
    assert {r.rule for r in record.removed} == {"excluded", "consent", "cap", "quiet_hours", "suppression"}
    assert len(record.removed) + len(record.decision.ranking) == len(_arms())
    assert (record.rewarded, record.reward) == (False, 0.0)


def test_a_rewarded_decision_and_an_unrewarded_one(serve):
    served = serve()
    open_arms = dict(formats=["sms", "push"])  # no rule removes any of these for a first contact
    rewarded = _decide(served, "bo", **open_arms)
    unrewarded = _decide(served, "cy", **open_arms)
    ack = served.stub.Reward(pb.RewardRequest(event_id=rewarded.event_id, value=0.75, reward_id="r1"), timeout=10,
                             metadata=AUTH)
    assert ack.accepted
    got = _get(served, rewarded.event_id)
    assert (got.rewarded, got.reward) == (True, 0.75) and got.decision == rewarded and not got.removed
    assert len(got.decision.ranking) == len(_arms(formats=["sms", "push"]))  # the full pmf over every arm
    assert sum(a.probability for a in got.decision.ranking) == pytest.approx(1.0, abs=1e-6)
    other = _get(served, unrewarded.event_id)
    assert (other.rewarded, other.reward) == (False, 0.0) and other.decision == unrewarded


def test_holdout_arms_are_named_holdout(serve):
    served = serve()
    user = _held_user(served, "held")
    held = _decide(served, user, campaign="held", excluded_offers=["o3"])
    assert (held.exploration, held.no_contact_reason, held.offer_id) == ("holdout", "holdout", "")
    record = _get(served, held.event_id)
    assert record.decision == held and not record.decision.ranking
    assert _removed(record) == [(*arm, "excluded" if arm[0] == "o3" else "holdout") for arm in _arms()]
    # with the baseline treatment the baseline is served; every other eligible arm was held out
    user = _held_user(served, "held_baseline")
    request = dict(campaign="held_baseline", excluded_offers=["o3"])
    request["baseline"] = pb.Arm(offer_id="o1", format="sms", time_slot="morning")
    baseline = _decide(served, user, **request)
    assert (baseline.exploration, baseline.offer_id, baseline.probability) == ("holdout", "o1", 1.0)
    record = _get(served, baseline.event_id)
    assert record.decision == baseline
    assert [(a.offer_id, a.format, a.time_slot, a.probability) for a in record.decision.ranking] == [
        ("o1", "sms", "morning", 1.0)]
    assert _removed(record) == [(*arm, "excluded" if arm[0] == "o3" else "holdout") for arm in _arms()
                                if arm != ("o1", "sms", "morning")]


def test_unknown_bad_and_unauthenticated_calls(serve):
    served = serve()
    decision = _decide(served, "dee", formats=["sms"])
    with pytest.raises(grpc.RpcError) as err:
        _get(served, "no-such-event")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND and "no-such-event" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        _get(served, "")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "event_id" in err.value.details()
    for metadata in ((), (("authorization", "Bearer wrong"),)):
        with pytest.raises(grpc.RpcError) as err:
            _get(served, decision.event_id, metadata=metadata)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("log_place", ["postgres"], indirect=True)
def test_a_log_that_cannot_be_read_is_unavailable(serve, log_place, postgres_cluster):  # noqa: F811
    served = serve("busy_timeout_ms = 300\nconnect_timeout_seconds = 5")
    decision = _decide(served, "fay", formats=["sms"])
    postgres_cluster.stop("fast")
    try:
        with pytest.raises(grpc.RpcError) as err:
            _get(served, decision.event_id)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        postgres_cluster.start()
    record = wait_for(lambda: _try_get(served, decision.event_id), 30, "GetDecision after PostgreSQL is back")
    assert record.decision == decision


def _try_get(served, event_id: str) -> pb.DecisionRecord | None:
    try:
        return _get(served, event_id)
    except grpc.RpcError as exc:
        if exc.code() != grpc.StatusCode.UNAVAILABLE:
            raise
        return None


@pytest.mark.parametrize("log_place", ["postgres"], indirect=True)
def test_the_writers_commit_time_cap_names_cap(serve, log_place):  # noqa: F811
    """Two replicas on one log: B holds ana's (empty) history, A commits her sms contact, B's stale view lets
    the engine choose an sms arm and the writer's cap check inside the commit writes a no_contact 'cap'.
    (One SQLite server sees every contact it commits; tests/decision_log/test_compact_log.py decodes a
    writer-capped row on both backends.)"""
    a, b = serve(), serve()
    _decide(b, "ana", offers=OFFERS[:1], formats=["sms"], slots=["morning"], excluded_offers=["o1"])  # B loads ana
    assert _decide(a, "ana", formats=["sms"], slots=["morning"]).format == "sms"
    capped = _decide(b, "ana", formats=["sms"], slots=["morning"], excluded_offers=["o3"])
    assert (capped.exploration, capped.no_contact_reason) == ("no_contact", "cap")
    # the engine's rules removed only o3 (no pair verdict): the cap came from the writer
    [(removed,)] = log_place.sql("SELECT removed FROM decisions WHERE event_id = ?", (capped.event_id,))
    assert removed == "1,0,2,0,0;2x;"  # counts, then o3 (offer 2) excluded, sparse; no pair verdict
    for served in (a, b):
        record = _get(served, capped.event_id)
        assert record.decision == capped
        assert _removed(record) == [("o1", "sms", "morning", "cap"), ("o2", "sms", "morning", "cap"),
                                    ("o3", "sms", "morning", "excluded")]


def test_show_decision_prints_what_get_decision_answers(serve, log_place):  # noqa: F811
    served = serve()
    answer = _every_rule(served, "eve")
    served.stub.Reward(pb.RewardRequest(event_id=answer.event_id, value=0.5, reward_id="r-1"), timeout=10,
                       metadata=AUTH)
    served.stub.Reward(pb.RewardRequest(event_id=answer.event_id, value=0.9, reward_id="r-2"), timeout=10,
                       metadata=AUTH)  # a second one under `first`: stored, not counted
    record = _get(served, answer.event_id)
    args = [OFFERBANDIT, "show-decision", answer.event_id, "--log-url", log_place.url]
    shown = subprocess.run([*args, "--json"], capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    printed = json.loads(shown.stdout)
    rewards = printed.pop("rewards")
    assert printed == MessageToDict(record, preserving_proto_field_name=True,
                                    always_print_fields_with_no_presence=True)
    assert printed["rewarded"] is True and printed["reward"] == 0.5
    assert [(r["reward_id"], r["value"], r["status"]) for r in rewards] == [("r-1", 0.5, "counted"),
                                                                           ("r-2", 0.9, "duplicate")]
    text = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert f"event_id        {answer.event_id}" in lines and "chosen          o2 / email / morning  probability 1" in lines
    for r in record.removed:
        assert any(line.split() == [r.arm.offer_id, "/", r.arm.format, "/", r.arm.time_slot, r.rule] for line in lines)
    assert "reward          0.5 (rewarded)" in lines
    missing = subprocess.run([OFFERBANDIT, "show-decision", "nope", "--log-url", log_place.url], capture_output=True,
                             text=True, timeout=120)
    assert missing.returncode != 0 and "nope" in missing.stderr and "Traceback" not in missing.stderr

"""Every Client method against a real in-process server (real SQLite log, real VW policy)."""
from __future__ import annotations

import dataclasses
import sqlite3
import uuid

import pytest

from offerbandit import Client, RpcInvalidArgument, RpcNotFound
from offerbandit.client import ActivateAck, Arm, Decision, DecisionRecord, RemovedArm, RewardAck, new_id
from tests.repeats import assert_repeat_of

OFFERS = [("o1", {"category": "travel"}), {"id": "o2", "features": {"category": "food"}}, "o3"]


def _rows(data_dir, sql: str, *args) -> list[tuple]:
    con = sqlite3.connect(data_dir / "decisions.db")
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


@pytest.fixture
def client(served):
    with Client(served.address) as c:
        yield c


def test_decide_returns_a_frozen_decision_with_the_protos_field_names(client, served):
    decision = client.decide("alice", context={"segment": "young"}, numeric={"tenure": 3.0}, offers=OFFERS,
                             formats=["sms", "email"], time_slots=["morning"])
    assert isinstance(decision, Decision)
    assert {f.name for f in dataclasses.fields(Decision)} >= {
        "event_id", "offer_id", "format", "time_slot", "probability", "ranking", "policy_version", "exploration"}
    assert decision.offer_id in {"o1", "o2", "o3"} and decision.format in {"sms", "email"}
    assert decision.time_slot == "morning" and decision.policy_version == "bootstrap"
    assert isinstance(decision.ranking, tuple) and all(isinstance(a, Arm) for a in decision.ranking)
    assert sum(a.probability for a in decision.ranking) == pytest.approx(1.0, abs=1e-6)
    assert decision.arm in decision.ranking
    with pytest.raises(dataclasses.FrozenInstanceError):
        decision.offer_id = "o9"  # type: ignore[misc]
    # the client made the event id: time-ordered (UUIDv7) and logged with exactly that id
    assert uuid.UUID(decision.event_id).version == 7
    assert _rows(served.data_dir, "SELECT probability FROM decisions WHERE event_id = ?",
                 decision.event_id) == [(decision.probability,)]


def test_decide_sends_the_callers_event_id_and_a_repeat_logs_nothing(client, served):
    kwargs = dict(context={"segment": "young"}, offers=OFFERS, formats=["sms"], time_slots=["morning", "evening"])
    first = client.decide("bob", event_id="evt-bob-1", **kwargs)
    again = client.decide("bob", event_id="evt-bob-1", **kwargs)
    assert first.event_id == "evt-bob-1"
    assert_repeat_of(again, first)
    assert _rows(served.data_dir, "SELECT COUNT(*) FROM decisions") == [(1,)]


def test_decide_passes_every_keyword(client, served):
    decision = client.decide("carol", offers=OFFERS, formats=["sms", "email"], time_slots=["morning", "evening"],
                             campaign="default", ranking_limit=2, baseline=Arm("o1", "sms", "morning"),
                             excluded_offers=["o3"], consented_formats=["sms"], deferred=True)
    assert len(decision.ranking) == 2
    assert decision.offer_id != "o3" and decision.format == "sms" and decision.campaign == "default"
    assert client.activate(decision.event_id) == ActivateAck(activated=True, already_active=False)
    assert client.activate(decision.event_id) == ActivateAck(activated=False, already_active=True)
    # a baseline given as a triple or a dict is the same arm
    for baseline in (("o1", "sms", "morning"), {"offer_id": "o1", "format": "sms", "time_slot": "morning"}):
        assert client.decide("carol", offers=OFFERS, baseline=baseline).event_id


def test_reward_makes_one_reward_id_per_call_and_honours_the_callers(client, served):
    decision = client.decide("dave", offers=OFFERS)
    assert client.reward(decision.event_id, 1.0) == RewardAck(accepted=True, duplicate=False, late=False)
    assert client.reward(decision.event_id, 1.0).duplicate  # aggregation "first"
    client.reward(decision.event_id, 0.5, reward_id="crm-42")
    ids = [r[0] for r in _rows(served.data_dir, "SELECT reward_id FROM rewards WHERE event_id = ? ORDER BY id",
                               decision.event_id)]
    assert len(ids) == 3 and ids[2] == "crm-42"
    assert all(ids) and len(set(ids)) == 3 and uuid.UUID(ids[0]).version == 7


def test_decide_batch_keeps_order_and_fills_every_missing_event_id(client, served):
    items = [{"user_id": f"u{i}", "offers": OFFERS, "context": {"segment": "young"}} for i in range(4)]
    items[2]["event_id"] = "mine-2"
    decisions = client.decide_batch(items)
    assert [d.event_id for d in decisions][2] == "mine-2"
    assert all(d.event_id for d in decisions) and len({d.event_id for d in decisions}) == 4
    assert "event_id" not in items[0]  # the caller's dicts are left alone
    logged = {r[0] for r in _rows(served.data_dir, "SELECT event_id FROM decisions")}
    assert logged == {d.event_id for d in decisions}


def test_get_decision_returns_the_logged_decision_with_the_protos_field_names(client):
    decision = client.decide("erin", offers=OFFERS, formats=["sms"], time_slots=["morning"], excluded_offers=["o2"])
    record = client.get_decision(decision.event_id)
    assert isinstance(record, DecisionRecord)
    assert [f.name for f in dataclasses.fields(DecisionRecord)] == ["decision", "removed", "rewarded", "reward"]
    assert [f.name for f in dataclasses.fields(RemovedArm)] == ["arm", "rule"]
    assert record.decision == decision  # as it was returned: the full pmf as its ranking
    assert record.removed == (RemovedArm(Arm("o2", "sms", "morning"), "excluded"),)
    assert (record.rewarded, record.reward) == (False, 0.0)
    client.reward(decision.event_id, 0.25)
    rewarded = client.get_decision(decision.event_id)
    assert (rewarded.rewarded, rewarded.reward) == (True, 0.25)
    with pytest.raises(RpcNotFound):
        client.get_decision("no-such-event")
    with pytest.raises(RpcInvalidArgument, match="event_id"):
        client.get_decision("")


def test_per_call_timeout_and_closed_client(served):
    client = Client(served.address, timeout=0.001)
    assert client.decide("frank", offers=OFFERS, timeout=10).event_id  # the call's own timeout wins
    client.close()
    with pytest.raises(ValueError):
        client.decide("frank", offers=OFFERS)


def test_constructor_refuses_bad_settings():
    for kwargs in ({"timeout": 0}, {"timeout": -1.0}, {"max_batch": 0}, {"token": ""}, {"token": "a\nb"}):
        with pytest.raises(ValueError):
            Client("127.0.0.1:1", **kwargs)
    with pytest.raises(ValueError, match="target"):
        Client("")


def test_client_side_shapes_are_refused_before_sending_naming_the_field():
    with Client("127.0.0.1:1", timeout=0.2) as client:  # nothing listens: these never reach the wire
        cases = [
            (dict(offers=[("o1", {"category": "a"}, "extra")]), "offers[0]"),
            (dict(offers=[{"name": "o1"}]), "offers[0]"),
            (dict(context={"segment": 3}), "context"),
            (dict(numeric={"age": "old"}), "numeric"),
            (dict(formats="sms"), "formats"),
            (dict(baseline="o1"), "baseline"),
        ]
        for kwargs, field in cases:
            with pytest.raises(RpcInvalidArgument, match=field.replace("[", r"\[")):
                client.decide("gina", **kwargs)
        with pytest.raises(RpcInvalidArgument, match=r"requests\[1\] has unknown keys \['user'\]"):
            client.decide_batch([{"user_id": "a"}, {"user": "b"}])
        with pytest.raises(RpcInvalidArgument, match=r"requests\[0\]\.context"):
            client.decide_batch([{"user_id": "a", "context": {"k": 1}}])


def test_new_ids_are_time_ordered_unique_uuid7():
    ids = [new_id() for _ in range(5000)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert {uuid.UUID(i).version for i in ids} == {7}


def test_unknown_event_is_not_found(client):
    with pytest.raises(RpcNotFound, match="unknown event_id"):
        client.reward("no-such-event", 1.0)
    with pytest.raises(RpcNotFound):
        client.activate("no-such-event")

"""The decision service over real gRPC on a loopback port, with its real SQLite log."""
from __future__ import annotations

import math
import re
import sqlite3
import threading

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from offers.v1 import decision_pb2 as pb
from tests.conftest import FORMATS, OFFERS, SLOTS, make_request
from tests.repeats import assert_repeat_of


def log_rows(data_dir, sql, params=()):
    con = sqlite3.connect(data_dir / "decisions.db")
    con.row_factory = sqlite3.Row
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def test_decide_then_reward_joins_on_disk(served):
    decision = served.stub.Decide(make_request(event_id="ev-1"), timeout=10)
    assert decision.event_id == "ev-1"
    assert (decision.offer_id, decision.format, decision.time_slot) in {
        (o, f, t) for o, _ in OFFERS for f in FORMATS for t in SLOTS}
    assert decision.exploration in ("exploit", "explore", "explore_outside_history")
    assert decision.policy_version == "bootstrap"
    ack = served.stub.Reward(pb.RewardRequest(event_id="ev-1", value=1.0), timeout=10)
    assert (ack.accepted, ack.duplicate, ack.late) == (True, False, False)
    (row,) = log_rows(served.data_dir, "SELECT * FROM decisions WHERE event_id = 'ev-1'")
    assert row["probability"] == decision.probability
    assert (row["offer_id"], row["format"], row["time_slot"]) == (decision.offer_id, decision.format,
                                                                   decision.time_slot)
    assert row["reward"] == 1.0 and row["reward_count"] == 1
    assert row["learned_at"] is not None  # aggregation 'first': learned at once
    pmf = np.frombuffer(row["pmf"], dtype="<f4")  # the compact log: float32, the probability exact in its column
    assert pmf.sum() == pytest.approx(1.0, abs=1e-6)
    assert pmf[row["chosen_index"]] == np.float32(decision.probability)
    (reward,) = log_rows(served.data_dir, "SELECT * FROM rewards WHERE event_id = 'ev-1'")
    assert (reward["value"], reward["status"]) == (1.0, "counted")


def test_ranking_is_sorted_sums_to_one_and_honours_limit(served):
    decision = served.stub.Decide(make_request(), timeout=10)
    probs = [a.probability for a in decision.ranking]
    assert probs == sorted(probs, reverse=True)
    assert math.isclose(sum(probs), 1.0, abs_tol=1e-6)
    assert len(decision.ranking) == len(OFFERS) * len(FORMATS) * len(SLOTS)
    limited = served.stub.Decide(make_request(ranking_limit=3), timeout=10)
    assert len(limited.ranking) == 3
    (row,) = log_rows(served.data_dir, "SELECT pmf FROM decisions WHERE event_id = ?", (limited.event_id,))
    assert len(np.frombuffer(row["pmf"], dtype="<f4")) == 12  # the log keeps the full pmf


def test_repeated_event_id_returns_the_original_and_logs_once(served):
    first = served.stub.Decide(make_request(event_id="same"), timeout=10)
    again = served.stub.Decide(make_request(event_id="same"), timeout=10)
    assert_repeat_of(again, first)
    # issue 14 changed this: another user reusing the id is refused, not handed the original decision
    with pytest.raises(grpc.RpcError) as err:
        served.stub.Decide(make_request(user="someone-else", event_id="same"), timeout=10)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert len(log_rows(served.data_dir, "SELECT 1 FROM decisions WHERE event_id = 'same'")) == 1


def test_repeated_event_id_after_restart_comes_from_the_log(start_server, tmp_path):
    data = tmp_path / "persist"
    running = start_server(data_dir=data)
    first = running.stub.Decide(make_request(event_id="durable"), timeout=10)
    running.server.stop(grace=1)
    again = start_server(data_dir=data).stub.Decide(make_request(event_id="durable"), timeout=10)
    assert_repeat_of(again, first)


def test_duplicate_reward_and_unknown_event(served):
    decision = served.stub.Decide(make_request(), timeout=10)
    served.stub.Reward(pb.RewardRequest(event_id=decision.event_id, value=1.0), timeout=10)
    dup = served.stub.Reward(pb.RewardRequest(event_id=decision.event_id, value=0.5), timeout=10)
    assert (dup.accepted, dup.duplicate) == (False, True)
    (row,) = log_rows(served.data_dir, "SELECT reward, reward_count FROM decisions WHERE event_id = ?",
                      (decision.event_id,))
    assert (row["reward"], row["reward_count"]) == (1.0, 1)  # never counted twice
    statuses = [r["status"] for r in log_rows(served.data_dir, "SELECT status FROM rewards WHERE event_id = ?",
                                              (decision.event_id,))]
    assert statuses == ["counted", "duplicate"]  # stored, not lost
    with pytest.raises(grpc.RpcError) as err:
        served.stub.Reward(pb.RewardRequest(event_id="never-decided", value=1.0), timeout=10)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


SUM_CONFIG = """
[campaigns.default]
aggregation = "sum"
reward_window_seconds = 3600
reward_range = [0.0, 10.0]
"""


def test_sum_aggregation_adds_distinct_reward_ids_once_each(start_server):
    served = start_server(SUM_CONFIG)
    decision = served.stub.Decide(make_request(), timeout=10)
    for reward_id, value in (("a", 1.0), ("b", 2.5), ("a", 1.0)):  # the last: a retry whose answer was lost
        ack = served.stub.Reward(pb.RewardRequest(event_id=decision.event_id, value=value, reward_id=reward_id),
                                 timeout=10)
        assert (ack.accepted, ack.duplicate, ack.late) == (True, False, False)  # the retry: the stored answer
    with pytest.raises(grpc.RpcError) as err:  # the same reward_id with another value is not a retry
        served.stub.Reward(pb.RewardRequest(event_id=decision.event_id, value=2.0, reward_id="a"), timeout=10)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS and "reward_id 'a'" in err.value.details()
    (row,) = log_rows(served.data_dir, "SELECT reward, reward_count, learned_at FROM decisions WHERE event_id = ?",
                      (decision.event_id,))
    assert (row["reward"], row["reward_count"]) == (3.5, 2)
    assert row["learned_at"] is None  # under `sum` the event is learned at window close


def test_health_and_reflection(served):
    status = health_pb2_grpc.HealthStub(served.channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    assert status.status == health_pb2.HealthCheckResponse.SERVING
    service = health_pb2_grpc.HealthStub(served.channel).Check(
        health_pb2.HealthCheckRequest(service="offers.v1.DecisionService"), timeout=5)
    assert service.status == health_pb2.HealthCheckResponse.SERVING
    stub = reflection_pb2_grpc.ServerReflectionStub(served.channel)
    response = next(iter(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                                   timeout=5)))
    names = {s.name for s in response.list_services_response.service}
    assert {"offers.v1.DecisionService", "grpc.health.v1.Health"} <= names


def test_user_ids_are_stored_only_as_keyed_hash(served):
    clear_id = "customer-4711-clear-text"
    served.stub.Decide(make_request(user=clear_id), timeout=10)
    served.server.stop(grace=1)  # checkpoint the WAL into the main file
    blob = b"".join(p.read_bytes() for p in served.data_dir.iterdir() if p.name.startswith("decisions.db"))
    assert clear_id.encode() not in blob
    assert len(log_rows(served.data_dir, "SELECT user_key FROM decisions")[0]["user_key"]) == 32


def test_deferred_decision_is_learned_only_after_activate(served):
    decision = served.stub.Decide(make_request(deferred=True), timeout=10)
    served.stub.Reward(pb.RewardRequest(event_id=decision.event_id, value=1.0), timeout=10)
    (row,) = log_rows(served.data_dir, "SELECT * FROM decisions WHERE event_id = ?", (decision.event_id,))
    assert row["deferred"] == 1 and row["activated_at"] is None and row["learned_at"] is None
    ack = served.stub.Activate(pb.ActivateRequest(event_id=decision.event_id), timeout=10)
    assert (ack.activated, ack.already_active) == (True, False)
    again = served.stub.Activate(pb.ActivateRequest(event_id=decision.event_id), timeout=10)
    assert (again.activated, again.already_active) == (False, True)
    (row,) = log_rows(served.data_dir, "SELECT * FROM decisions WHERE event_id = ?", (decision.event_id,))
    assert row["activated_at"] is not None and row["learned_at"] is not None
    with pytest.raises(grpc.RpcError) as err:
        served.stub.Activate(pb.ActivateRequest(event_id="nope"), timeout=10)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_no_contact_when_rules_leave_nothing_is_logged_and_never_learned(served):
    decision = served.stub.Decide(make_request(excluded_offers=[o for o, _ in OFFERS]), timeout=10)
    assert decision.exploration == "no_contact"
    assert (decision.offer_id, decision.format, decision.time_slot) == ("", "", "")
    assert decision.probability == 1.0 and len(decision.ranking) == 0
    assert decision.no_contact_reason == "excluded"  # the RemovedArm rule name (DESIGN-NOTES: not "exclusion")
    ack = served.stub.Reward(pb.RewardRequest(event_id=decision.event_id, value=1.0), timeout=10)
    assert ack.accepted
    (row,) = log_rows(served.data_dir, "SELECT * FROM decisions WHERE event_id = ?", (decision.event_id,))
    assert row["exploration"] == "no_contact" and row["learned_at"] is None and row["learn_due_at"] is None


def test_consent_removes_formats(served):
    for _ in range(20):
        decision = served.stub.Decide(make_request(consented_formats=["email"]), timeout=10)
        assert decision.format == "email"
        assert {a.format for a in decision.ranking} == {"email"}


def test_catalog_is_used_when_no_candidates_are_sent(served):
    request = pb.DecideRequest(user_id="bob")
    decision = served.stub.Decide(request, timeout=10)
    catalog = served.engine.config.campaigns["default"].catalog
    assert decision.offer_id in {o.id for o in catalog.offers}
    assert len(decision.ranking) == len(catalog.offers) * len(catalog.formats) * len(catalog.time_slots)


def test_batch_answers_in_order_and_users_see_each_other(served):
    batch = pb.DecideBatchRequest(requests=[make_request(user=f"u{i}", event_id=f"b{i}") for i in range(6)])
    response = served.stub.DecideBatch(batch, timeout=10)
    assert [d.event_id for d in response.decisions] == [f"b{i}" for i in range(6)]
    assert len(log_rows(served.data_dir, "SELECT 1 FROM decisions WHERE event_id LIKE 'b%'")) == 6


# --- bad input: every class gets INVALID_ARGUMENT naming its field, and nothing is logged ------

def _nan_numeric():
    r = make_request()
    r.numeric["age"] = math.nan
    return r


def _inf_numeric():
    r = make_request()
    r.numeric["score"] = math.inf
    return r


BAD_DECIDES = [
    ("empty user", lambda: make_request(user=""), "user_id"),
    ("empty offer id", lambda: make_request(offers=[("", {})]), r"offers\[0\]\.id"),
    ("duplicate offer ids", lambda: make_request(offers=OFFERS + [OFFERS[0]]), "offers"),
    ("duplicate formats", lambda: make_request(formats=["sms", "sms"]), "formats"),
    ("duplicate time slots", lambda: make_request(slots=["lunch", "lunch"]), "time_slots"),
    ("empty format", lambda: make_request(formats=[""]), r"formats\[0\]"),
    ("NaN numeric", _nan_numeric, "age"),
    ("infinite numeric", _inf_numeric, "score"),
    ("sensitive context key", lambda: make_request(context={"health": "diabetic"}), "health"),
    ("sensitive key any case", lambda: make_request(context={"Religion": "x"}), "Religion"),
    ("over-long string", lambda: make_request(user="x" * 300), "user_id"),
    ("too many joint arms", lambda: make_request(offers=[(f"o{i}", {}) for i in range(400)],
                                                 formats=[f"f{i}" for i in range(4)],
                                                 slots=[f"s{i}" for i in range(4)]), "joint arms"),
    ("incomplete baseline", lambda: make_request(baseline=pb.Arm(offer_id="o1")), "baseline"),
]


@pytest.mark.parametrize("name,build,pattern", BAD_DECIDES, ids=[b[0] for b in BAD_DECIDES])
def test_bad_decide_is_invalid_argument_naming_the_field(served, name, build, pattern):
    with pytest.raises(grpc.RpcError) as err:
        served.stub.Decide(build(), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert re.search(pattern, err.value.details()), err.value.details()
    assert log_rows(served.data_dir, "SELECT count(*) AS n FROM decisions")[0]["n"] == 0


def test_batch_with_one_bad_item_fails_whole_and_logs_nothing(served):
    items = [make_request(user=f"u{i}") for i in range(4)]
    items[2].numeric["x"] = math.nan
    with pytest.raises(grpc.RpcError) as err:
        served.stub.DecideBatch(pb.DecideBatchRequest(requests=items), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "requests[2]" in err.value.details()
    assert log_rows(served.data_dir, "SELECT count(*) AS n FROM decisions")[0]["n"] == 0
    with pytest.raises(grpc.RpcError) as err:
        served.stub.DecideBatch(pb.DecideBatchRequest(), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("request_, code", [
    (pb.RewardRequest(event_id="", value=1.0), grpc.StatusCode.INVALID_ARGUMENT),
    (pb.RewardRequest(event_id="x", value=math.nan), grpc.StatusCode.INVALID_ARGUMENT),
    (pb.RewardRequest(event_id="x", value=-math.inf), grpc.StatusCode.INVALID_ARGUMENT),
    (pb.RewardRequest(event_id="x" * 1000, value=1.0), grpc.StatusCode.INVALID_ARGUMENT),
    (pb.RewardRequest(event_id="unknown", value=1.0), grpc.StatusCode.NOT_FOUND),
])
def test_bad_rewards(served, request_, code):
    with pytest.raises(grpc.RpcError) as err:
        served.stub.Reward(request_, timeout=10)
    assert err.value.code() == code


def test_unknown_campaign_is_not_found(served):
    with pytest.raises(grpc.RpcError) as err:
        served.stub.Decide(make_request(campaign="no_such_campaign"), timeout=10)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert "no_such_campaign" in err.value.details()


def test_message_over_transport_limit_is_resource_exhausted(start_server):
    served = start_server("[server]\nmax_message_bytes = 4096\n")
    big = make_request(offers=[(f"offer-{i:05d}", {"category": "c" * 50}) for i in range(200)])
    with pytest.raises(grpc.RpcError) as err:
        served.stub.Decide(big, timeout=10)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert served.stub.Decide(make_request(), timeout=10).event_id  # still serving


def _pause_writer(engine) -> threading.Event:
    """Block the log writer inside an operation until the returned event is set."""
    release = threading.Event()
    engine.log.backend.writer.submit(lambda conn: release.wait(30))
    return release


def test_deadline_is_honoured_and_concurrency_bound_rejects_excess(start_server):
    served = start_server("[server]\nmax_concurrent_rpcs = 1\n")
    release = _pause_writer(served.engine)
    try:
        with pytest.raises(grpc.RpcError) as err:
            served.stub.Decide(make_request(), timeout=0.5)
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert served.engine.log.queue_depth == 1  # the timed-out call's row waits in the queue
        # the timed-out call's handler may still hold the only slot for a moment: retry until admitted
        for _ in range(200):
            blocked = served.stub.Decide.future(make_request(event_id="waits"), timeout=20)
            while not blocked.done() and served.engine.log.queue_depth < 2:
                threading.Event().wait(0.01)
            if served.engine.log.queue_depth >= 2:
                break
            assert blocked.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            threading.Event().wait(0.05)
        assert served.engine.log.queue_depth == 2
        with pytest.raises(grpc.RpcError) as err:
            served.stub.Decide(make_request(), timeout=5)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        release.set()
    assert blocked.result().event_id == "waits"


def test_server_survives_garbage_bytes(served):
    raw = served.channel.unary_unary("/offers.v1.DecisionService/Decide")
    with pytest.raises(grpc.RpcError) as err:
        raw(b"\xff\xfe\x00garbage", timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # issue 14: never INTERNAL for bad input
    assert served.stub.Decide(make_request(), timeout=10).event_id

"""What the client puts on its channel, and the converters for replies the server does not send yet."""
from __future__ import annotations

import json
from types import SimpleNamespace

import grpc
from offers.v1 import decision_pb2 as pb

from offerbandit.client import Arm, DecisionRecord, RemovedArm
from offerbandit.client.transport import ChannelSettings, encode_get_decision, error_from_rpc

DEFAULTS = dict(token=None, root_certificates=None, tls=False, private_key=None, certificate_chain=None,
                keepalive_seconds=300.0, max_message_bytes=4 * 1024 * 1024, options=())


def test_the_channel_waits_for_ready_and_retries_unavailable_with_backoff():
    settings = ChannelSettings.make("h:1", **DEFAULTS)
    options = dict(settings.options)
    assert options["grpc.enable_retries"] == 1
    (method,) = json.loads(options["grpc.service_config"])["methodConfig"]
    assert method["name"] == [{"service": "offers.v1.DecisionService"}] and method["waitForReady"] is True
    policy = method["retryPolicy"]
    assert policy["retryableStatusCodes"] == ["UNAVAILABLE"] and policy["maxAttempts"] == 5
    assert policy["backoffMultiplier"] > 1
    assert options["grpc.keepalive_time_ms"] == 300_000 and options["grpc.keepalive_permit_without_calls"] == 0
    assert settings.credentials is None and settings.metadata == ()


def test_token_tls_and_caller_options():
    settings = ChannelSettings.make("h:1", **{**DEFAULTS, "token": " tok ", "tls": True, "keepalive_seconds": 0,
                                              "options": [("grpc.max_reconnect_backoff_ms", 100)]})
    assert settings.metadata == (("authorization", "Bearer tok"),)
    assert isinstance(settings.credentials, grpc.ChannelCredentials)
    options = dict(settings.options)
    assert "grpc.keepalive_time_ms" not in options and options["grpc.max_reconnect_backoff_ms"] == 100
    assert [key for key, _ in settings.options].count("grpc.max_reconnect_backoff_ms") == 1


def test_get_decision_request_is_the_contracts_field_one():
    for event_id in ("e1", "é" * 200):
        encoded = encode_get_decision(event_id)
        # field 1 of a string is wire-compatible with ActivateRequest's event_id = 1
        assert pb.ActivateRequest.FromString(encoded).event_id == event_id


def test_decision_record_is_read_by_field_name():
    decision = pb.Decision(event_id="e1", offer_id="o1", format="sms", time_slot="morning", probability=0.7,
                           policy_version="3", exploration="exploit")
    decision.ranking.add(offer_id="o1", format="sms", time_slot="morning", probability=0.7)
    decision.ranking.add(offer_id="o2", format="sms", time_slot="morning", probability=0.3)
    removed = SimpleNamespace(arm=pb.Arm(offer_id="o3", format="sms", time_slot="morning"), rule="cap")
    record = DecisionRecord.from_proto(SimpleNamespace(decision=decision, removed=[removed], rewarded=True, reward=1.0))
    assert record.decision.event_id == "e1" and len(record.decision.ranking) == 2
    assert record.removed == (RemovedArm(Arm("o3", "sms", "morning", 0.0), "cap"),)
    assert record.rewarded is True and record.reward == 1.0


def test_a_status_without_a_code_is_internal():
    class Bare(grpc.RpcError):
        pass

    error = error_from_rpc(Bare())
    assert error.code is grpc.StatusCode.UNKNOWN and type(error).__name__ == "RpcInternal"

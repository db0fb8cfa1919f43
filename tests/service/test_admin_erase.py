"""Erase over gRPC (issue 18): `offers.v1.AdminService/EraseCustomer` needs a token with the admin scope,
erases like the CLI and the serving server forgets the customer at once; a server without tokens has no
admin service at all."""
from __future__ import annotations

import grpc
import pytest

from offers.v1 import admin_pb2 as admin_pb
from offers.v1 import admin_pb2_grpc as admin_grpc
from offers.v1 import decision_pb2 as pb
from service.security import TokenTable
from tests.conftest import make_request

CONFIG = """
[privacy]
user_hash_key = "admin-erase-test-key-01"
[[campaigns.default.rules.caps]]
format = "*"
max_contacts = 1
window_s = 3600
"""
ADMIN, DECIDER = "admin-token-0123456789", "decider-token-0123456789"


def _auth(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


def test_erase_customer_needs_the_admin_scope_and_forgets_at_once(start_server):
    served = start_server(CONFIG, auth_token=TokenTable({ADMIN: ["admin"], DECIDER: ["decide", "reward"]}))
    first = served.stub.Decide(make_request(user="alice", event_id="a1"), metadata=_auth(DECIDER), timeout=10)
    assert first.exploration != "no_contact"
    assert served.stub.Decide(make_request(user="alice"), metadata=_auth(DECIDER), timeout=10).exploration \
        == "no_contact"
    admin = admin_grpc.AdminServiceStub(served.channel)
    for metadata, code in (((), grpc.StatusCode.UNAUTHENTICATED), (_auth(DECIDER), grpc.StatusCode.PERMISSION_DENIED)):
        with pytest.raises(grpc.RpcError) as refused:
            admin.EraseCustomer(admin_pb.EraseCustomerRequest(user_id="alice"), metadata=metadata, timeout=10)
        assert refused.value.code() == code
    with pytest.raises(grpc.RpcError) as bad:
        admin.EraseCustomer(admin_pb.EraseCustomerRequest(user_id=""), metadata=_auth(ADMIN), timeout=10)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    counts = admin.EraseCustomer(admin_pb.EraseCustomerRequest(user_id="alice"), metadata=_auth(ADMIN), timeout=30)
    assert (counts.decisions, counts.rewards, counts.shadow_scores, counts.history_entries) == (2, 0, 0, 1)
    # this server forgot alice before answering: her cap is lifted at once
    assert served.stub.Decide(make_request(user="alice"), metadata=_auth(DECIDER), timeout=10).exploration \
        != "no_contact"
    with pytest.raises(grpc.RpcError) as missing:
        served.stub.Reward(pb.RewardRequest(event_id="a1", value=1.0), metadata=_auth(DECIDER), timeout=10)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    again = admin.EraseCustomer(admin_pb.EraseCustomerRequest(user_id="nobody"), metadata=_auth(ADMIN), timeout=30)
    assert again.decisions == 0


def test_without_tokens_there_is_no_admin_service(start_server):
    served = start_server(CONFIG)
    with pytest.raises(grpc.RpcError) as absent:
        admin_grpc.AdminServiceStub(served.channel).EraseCustomer(admin_pb.EraseCustomerRequest(user_id="alice"),
                                                                   timeout=10)
    assert absent.value.code() == grpc.StatusCode.UNIMPLEMENTED

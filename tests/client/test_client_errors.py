"""Bad input, unknown ids and limits map to the right client exception; batches split at max_batch."""
from __future__ import annotations

import pickle
import sqlite3

import grpc
import pytest

import offerbandit
from offerbandit import (
    Client,
    ClientError,
    OfferBanditError,
    RpcAlreadyExists,
    RpcDeadlineExceeded,
    RpcInternal,
    RpcInvalidArgument,
    RpcNotFound,
    RpcPermissionDenied,
    RpcResourceExhausted,
    RpcUnauthenticated,
    RpcUnavailable,
    RpcUnimplemented,
)
from offerbandit.client.transport import error_from_rpc

OFFERS = [("o1", {"category": "travel"}), ("o2", {"category": "food"})]


def _count(data_dir) -> int:
    con = sqlite3.connect(data_dir / "decisions.db")
    try:
        return con.execute("SELECT COUNT(*) FROM decisions").fetchone()[0]
    finally:
        con.close()


BAD_DECIDES = [
    (dict(user_id=""), RpcInvalidArgument, "user_id"),
    (dict(user_id="a", numeric={"x": float("nan")}), RpcInvalidArgument, "numeric"),
    (dict(user_id="a", numeric={"x": float("inf")}), RpcInvalidArgument, "numeric"),
    (dict(user_id="a", context={"health": "poor"}), RpcInvalidArgument, "health"),
    (dict(user_id="a", offers=[("o1", {}), ("o1", {})]), RpcInvalidArgument, "offers"),
    (dict(user_id="a", formats=["sms", "sms"]), RpcInvalidArgument, "formats"),
    (dict(user_id="a", event_id="x" * 300), RpcInvalidArgument, "event_id"),
    (dict(user_id="a", campaign="no_such_campaign"), RpcNotFound, "campaign"),
]


@pytest.mark.parametrize("kwargs, error, field", BAD_DECIDES, ids=[c[2] + "-" + c[1].__name__ for c in BAD_DECIDES])
def test_bad_input_maps_to_the_right_exception_and_logs_nothing(served, kwargs, error, field):
    with Client(served.address) as client:
        with pytest.raises(error, match=field) as err:
            client.decide(kwargs.pop("user_id"), **kwargs)
    assert err.value.code.name == error.status and field in err.value.details
    assert isinstance(err.value, ClientError) and isinstance(err.value, OfferBanditError)
    assert _count(served.data_dir) == 0


def test_a_message_over_the_servers_limit_is_resource_exhausted(start_server):
    served = start_server("[server]\nmax_message_bytes = 1024\n")
    with Client(served.address) as client:
        with pytest.raises(RpcResourceExhausted):
            client.decide("a", context={f"k{i}": "v" * 40 for i in range(40)})
    assert _count(served.data_dir) == 0


def test_a_batch_larger_than_max_batch_is_split(start_server):
    served = start_server("[limits]\nmax_batch = 3\n")
    items = [{"user_id": f"u{i}", "offers": OFFERS} for i in range(8)]
    with Client(served.address, max_batch=1000) as unsplit:  # the server refuses 8 in one call
        with pytest.raises(RpcInvalidArgument, match="more than the limit of 3"):
            unsplit.decide_batch(items)
    assert _count(served.data_dir) == 0
    with Client(served.address, max_batch=3) as client:
        decisions = client.decide_batch(items)
    assert len(decisions) == 8 and len({d.event_id for d in decisions}) == 8
    assert _count(served.data_dir) == 8


def test_a_bad_item_in_a_later_batch_is_named_by_its_index_in_the_callers_list(start_server):
    served = start_server("[limits]\nmax_batch = 3\n")
    items = [{"user_id": f"u{i}", "offers": OFFERS, "event_id": f"e{i}"} for i in range(7)]
    items[4]["numeric"] = {"x": float("nan")}
    with Client(served.address, max_batch=3) as client:
        with pytest.raises(RpcInvalidArgument, match=r"requests\[4\]") as err:
            client.decide_batch(items)
    assert [d.event_id for d in err.value.partial] == ["e0", "e1", "e2"]  # the first call was committed
    assert _count(served.data_dir) == 3  # nothing of the failing call


class _Status(grpc.RpcError):
    """A finished call's status, as grpc hands it to the client."""

    def __init__(self, code: grpc.StatusCode, details: str = "why") -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


@pytest.mark.parametrize("code, cls", [
    (grpc.StatusCode.INVALID_ARGUMENT, RpcInvalidArgument), (grpc.StatusCode.NOT_FOUND, RpcNotFound),
    (grpc.StatusCode.ALREADY_EXISTS, RpcAlreadyExists), (grpc.StatusCode.UNAUTHENTICATED, RpcUnauthenticated),
    (grpc.StatusCode.PERMISSION_DENIED, RpcPermissionDenied),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, RpcResourceExhausted),
    (grpc.StatusCode.DEADLINE_EXCEEDED, RpcDeadlineExceeded), (grpc.StatusCode.UNAVAILABLE, RpcUnavailable),
    (grpc.StatusCode.UNIMPLEMENTED, RpcUnimplemented), (grpc.StatusCode.INTERNAL, RpcInternal),
    (grpc.StatusCode.UNKNOWN, RpcInternal), (grpc.StatusCode.DATA_LOSS, RpcInternal),
    (grpc.StatusCode.CANCELLED, ClientError), (grpc.StatusCode.ABORTED, ClientError),
])
def test_every_status_has_its_class(code, cls):
    error = error_from_rpc(_Status(code))
    assert type(error) is cls and error.code is code and error.details == "why"
    assert str(error) == f"{code.name}: why"
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is cls and copy.code is code and copy.details == "why"


def test_the_client_classes_are_exported_and_never_clash_with_the_servers():
    names = [n for n in offerbandit.__all__ if n.startswith("Rpc")]
    assert len(names) == 10
    for name in names:
        cls = getattr(offerbandit, name)
        assert issubclass(cls, ClientError) and cls.status
        assert not issubclass(cls, (offerbandit.NotFound, offerbandit.Unavailable, offerbandit.InvalidInput))

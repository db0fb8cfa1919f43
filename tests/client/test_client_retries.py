"""Retries of UNAVAILABLE within one deadline, resending the same ids; deadlines bounded on both sides.

A real gRPC server on a loopback port whose servicer answers UNAVAILABLE a given number of times (as
a server does while its log closes or its policy is not loaded) and records every attempt it saw.
"""
from __future__ import annotations

import asyncio
import socket
import threading
import time
from concurrent import futures

import grpc
import pytest
from offers.v1 import decision_pb2 as pb
from offers.v1 import decision_pb2_grpc as pb_grpc

from offerbandit import AsyncClient, Client, RpcDeadlineExceeded, RpcResourceExhausted, RpcUnavailable


class Flaky(pb_grpc.DecisionServiceServicer):
    def __init__(self, failures: int, code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE) -> None:
        self.failures, self.code = failures, code
        self.seen: list[pb.DecideRequest | pb.RewardRequest] = []
        self.lock = threading.Lock()

    def _attempt(self, request, context) -> None:
        with self.lock:
            self.seen.append(request)
            failing = len(self.seen) <= self.failures
        if failing:
            context.abort(self.code, "not ready yet")

    def Decide(self, request, context):  # noqa: N802 - the proto's name
        self._attempt(request, context)
        return pb.Decision(event_id=request.event_id, offer_id="o1", probability=1.0)

    def Reward(self, request, context):  # noqa: N802
        self._attempt(request, context)
        return pb.RewardAck(accepted=True)


@pytest.fixture
def flaky():
    servers = []

    def start(failures: int, code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE) -> tuple[str, Flaky]:
        servicer = Flaky(failures, code)
        server = grpc.server(futures.ThreadPoolExecutor(4))
        pb_grpc.add_DecisionServiceServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        servers.append(server)
        return f"127.0.0.1:{port}", servicer

    yield start
    for server in servers:
        server.stop(0)


def test_unavailable_is_retried_past_grpcs_five_attempts_with_the_same_event_id(flaky):
    address, servicer = flaky(failures=8)
    with Client(address, timeout=10) as client:
        decision = client.decide("alice")
    assert len(servicer.seen) == 9  # more than the service config's 5: the client's own loop went on
    assert {r.event_id for r in servicer.seen} == {decision.event_id}


def test_a_reward_retried_carries_one_reward_id(flaky):
    address, servicer = flaky(failures=3)
    with Client(address, timeout=10) as client:
        assert client.reward("evt", 1.0).accepted
    assert len(servicer.seen) == 4 and len({r.reward_id for r in servicer.seen}) == 1
    assert servicer.seen[0].reward_id


def test_unavailable_until_the_timeout_raises_unavailable_at_the_timeout(flaky):
    address, servicer = flaky(failures=10**9)
    with Client(address, timeout=1.0) as client:
        started = time.monotonic()
        with pytest.raises((RpcUnavailable, RpcDeadlineExceeded)):
            client.decide("alice")
        elapsed = time.monotonic() - started
    assert 0.7 <= elapsed <= 2.0
    assert len(servicer.seen) >= 3 and len({r.event_id for r in servicer.seen}) == 1


def test_other_statuses_are_not_retried(flaky):
    address, servicer = flaky(failures=1, code=grpc.StatusCode.RESOURCE_EXHAUSTED)
    with Client(address) as client:
        with pytest.raises(RpcResourceExhausted):
            client.decide("alice")
    assert len(servicer.seen) == 1


def test_async_client_retries_the_same_way(flaky):
    address, servicer = flaky(failures=6)

    async def main() -> str:
        async with AsyncClient(address, timeout=10) as client:
            return (await client.decide("alice")).event_id

    event_id = asyncio.run(main())
    assert len(servicer.seen) == 7 and {r.event_id for r in servicer.seen} == {event_id}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_no_server_waits_for_ready_until_the_timeout():
    with Client(f"127.0.0.1:{_free_port()}", timeout=0.8) as client:
        started = time.monotonic()
        with pytest.raises(RpcDeadlineExceeded):
            client.decide("alice")
        assert 0.7 <= time.monotonic() - started <= 2.0

"""The bearer token and TLS paths, against real in-process servers."""
from __future__ import annotations

import asyncio
import time

import pytest

from offerbandit import AsyncClient, Client, RpcDeadlineExceeded, RpcUnauthenticated, RpcUnavailable
from service.server import TlsFiles
from tests.service.test_service_security import _self_signed

OFFERS = [("o1", {"category": "travel"}), ("o2", {"category": "food"})]


def test_token_is_sent_as_bearer_metadata_on_every_call(start_server):
    served = start_server(auth_token="s3cret-token")
    for token in (None, "wrong"):
        with Client(served.address, token=token) as client:
            with pytest.raises(RpcUnauthenticated, match="bearer token"):
                client.decide("alice", offers=OFFERS)
            with pytest.raises(RpcUnauthenticated):
                client.reward("any", 1.0)
    with Client(served.address, token="s3cret-token") as client:
        decision = client.decide("alice", offers=OFFERS)
        assert client.reward(decision.event_id, 1.0).accepted
        assert client.activate(decision.event_id).already_active
        assert len(client.decide_batch([{"user_id": "bob", "offers": OFFERS}])) == 1


def test_tls_with_the_servers_certificate_as_bytes_text_or_path(start_server, tmp_path):
    cert, key, cert_pem = _self_signed(tmp_path)
    served = start_server(tls=TlsFiles(cert, key), auth_token="tok")
    for roots in (cert_pem, cert_pem.decode("ascii"), cert, str(cert)):
        with Client(served.address, root_certificates=roots, token="tok") as client:
            assert client.decide("alice", offers=OFFERS).event_id


def test_plaintext_against_a_tls_server_fails_within_the_timeout(start_server, tmp_path):
    cert, key, _ = _self_signed(tmp_path)
    served = start_server(tls=TlsFiles(cert, key))
    with Client(served.address, timeout=1.0) as client:
        started = time.monotonic()
        with pytest.raises((RpcDeadlineExceeded, RpcUnavailable)):
            client.decide("alice", offers=OFFERS)
        assert 0.5 <= time.monotonic() - started <= 4.0


def test_tls_against_an_unknown_certificate_fails(start_server, tmp_path):
    cert, key, _ = _self_signed(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    _, _, other_pem = _self_signed(other)
    served = start_server(tls=TlsFiles(cert, key))
    with Client(served.address, root_certificates=other_pem, timeout=1.0) as client:
        with pytest.raises((RpcDeadlineExceeded, RpcUnavailable)):
            client.decide("alice", offers=OFFERS)


def test_async_client_over_tls_with_a_token(start_server, tmp_path):
    cert, key, cert_pem = _self_signed(tmp_path)
    served = start_server(tls=TlsFiles(cert, key), auth_token="tok")

    async def main() -> None:
        async with AsyncClient(served.address, root_certificates=cert_pem, token="tok") as client:
            assert (await client.decide("alice", offers=OFFERS)).event_id
        async with AsyncClient(served.address, root_certificates=cert_pem) as anonymous:
            with pytest.raises(RpcUnauthenticated):
                await anonymous.decide("alice", offers=OFFERS)

    asyncio.run(main())

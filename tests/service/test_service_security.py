"""TLS-only serving and bearer-token authentication, through `offerbandit serve` itself."""
from __future__ import annotations

import datetime
import ipaddress

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from offers.v1 import decision_pb2_grpc as pb_grpc
from tests.conftest import make_request


def _self_signed(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    (tmp_path / "cert.pem").write_bytes(cert_pem)
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                         serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    return tmp_path / "cert.pem", tmp_path / "key.pem", cert_pem


def test_tls_only(server_process, tmp_path):
    cert, key, cert_pem = _self_signed(tmp_path)
    server = server_process("--tls-cert", str(cert), "--tls-key", str(key))
    secure = grpc.secure_channel(f"127.0.0.1:{server.port}", grpc.ssl_channel_credentials(root_certificates=cert_pem))
    decision = pb_grpc.DecisionServiceStub(secure).Decide(make_request(), timeout=10)
    assert decision.event_id
    plain = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    with pytest.raises(grpc.RpcError) as err:
        pb_grpc.DecisionServiceStub(plain).Decide(make_request(), timeout=3)
    assert err.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    secure.close()
    plain.close()
    assert server.stop() == 0


def test_bearer_token_required_except_health(server_process, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token\n")
    server = server_process("--auth-token-file", str(token_file))
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    stub = pb_grpc.DecisionServiceStub(channel)
    for metadata in (None, (("authorization", "Bearer wrong"),), (("authorization", "s3cret-token"),)):
        with pytest.raises(grpc.RpcError) as err:
            stub.Decide(make_request(), timeout=10, metadata=metadata)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    decision = stub.Decide(make_request(), timeout=10, metadata=(("authorization", "Bearer s3cret-token"),))
    assert decision.event_id
    health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    channel.close()
    assert server.stop() == 0

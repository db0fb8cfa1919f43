"""TLS-only serving, mutual TLS, scoped bearer tokens, reflection behind the token and the metrics
endpoint's interface, through `offerbandit serve` itself where the flags matter."""
from __future__ import annotations

import datetime
import ipaddress
import subprocess
import time
import urllib.request

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from offerbandit.errors import InvalidInput
from offers.v1 import decision_pb2 as pb
from offers.v1 import decision_pb2_grpc as pb_grpc
from service.config import ServiceConfig
from service.security import read_tokens
from service.server import DecisionServer
from tests.conftest import OFFERBANDIT, make_request


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


# --- issue 14 item 7: reflection behind the token, scoped tokens, mutual TLS, metrics on loopback ---

def _reflect(channel, metadata=None):
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                          timeout=10, metadata=metadata)
    return {s.name for s in next(iter(responses)).list_services_response.service}


def _health(channel):
    return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5).status


def test_reflection_needs_the_token_unless_public(server_process, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("reflection-test-token\n")
    closed = server_process("--auth-token-file", str(token_file), data_dir=tmp_path / "closed")
    with grpc.insecure_channel(f"127.0.0.1:{closed.port}") as channel:
        with pytest.raises(grpc.RpcError) as err:
            _reflect(channel)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "offers.v1.DecisionService" in _reflect(channel, (("authorization", "Bearer reflection-test-token"),))
        assert _health(channel) == health_pb2.HealthCheckResponse.SERVING
    opened = server_process("--auth-token-file", str(token_file), "--public-reflection", data_dir=tmp_path / "open")
    with grpc.insecure_channel(f"127.0.0.1:{opened.port}") as channel:
        assert "offers.v1.DecisionService" in _reflect(channel)
        with pytest.raises(grpc.RpcError) as err:
            pb_grpc.DecisionServiceStub(channel).Decide(make_request(), timeout=10)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert _health(channel) == health_pb2.HealthCheckResponse.SERVING
    assert closed.stop() == 0 and opened.stop() == 0


TOKENS = """# token scopes
decide-only-token-1 decide
reward-only-token-1 reward
both-scopes-token-1 decide,reward

admin-scope-token-1 admin
"""
OK, DENIED, UNAUTH = grpc.StatusCode.OK, grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED
SCOPE_MATRIX = [  # token, Decide, DecideBatch, Reward, Activate
    ("decide-only-token-1", OK, OK, DENIED, DENIED),
    ("reward-only-token-1", DENIED, DENIED, OK, OK),
    ("both-scopes-token-1", OK, OK, OK, OK),
    ("admin-scope-token-1", OK, OK, OK, OK),
    ("not-a-known-token", UNAUTH, UNAUTH, UNAUTH, UNAUTH),
    (None, UNAUTH, UNAUTH, UNAUTH, UNAUTH),
]


def _code(call) -> grpc.StatusCode:
    try:
        call()
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


@pytest.mark.parametrize("token,decide,batch,reward,activate", SCOPE_MATRIX, ids=[str(t) for t, *_ in SCOPE_MATRIX])
def test_scoped_tokens(start_server, tmp_path, token, decide, batch, reward, activate):
    token_file = tmp_path / "tokens"
    token_file.write_text(TOKENS)
    served = start_server(auth_token=read_tokens(token_file))
    admin = (("authorization", "Bearer admin-scope-token-1"),)
    # events to reward and activate, made with the admin token
    rewarded = served.stub.Decide(make_request(), timeout=10, metadata=admin)
    deferred = served.stub.Decide(make_request(deferred=True), timeout=10, metadata=admin)
    metadata = (("authorization", f"Bearer {token}"),) if token else None
    stub = served.stub
    assert _code(lambda: stub.Decide(make_request(), timeout=10, metadata=metadata)) == decide
    assert _code(lambda: stub.DecideBatch(pb.DecideBatchRequest(requests=[make_request()]), timeout=10,
                                          metadata=metadata)) == batch
    assert _code(lambda: stub.Reward(pb.RewardRequest(event_id=rewarded.event_id, value=1.0), timeout=10,
                                     metadata=metadata)) == reward
    assert _code(lambda: stub.Activate(pb.ActivateRequest(event_id=deferred.event_id), timeout=10,
                                       metadata=metadata)) == activate
    with grpc.insecure_channel(served.address) as channel:
        assert _health(channel) == health_pb2.HealthCheckResponse.SERVING


def test_permission_denied_names_the_missing_scope(start_server, tmp_path):
    token_file = tmp_path / "tokens"
    token_file.write_text(TOKENS)
    served = start_server(auth_token=read_tokens(token_file))
    with pytest.raises(grpc.RpcError) as err:
        served.stub.Reward(pb.RewardRequest(event_id="x", value=1.0), timeout=10,
                           metadata=(("authorization", "Bearer decide-only-token-1"),))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "'reward' scope" in err.value.details()


def test_a_bare_token_grants_every_scope(start_server, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("  one-bare-token-everything \n")
    served = start_server(auth_token=read_tokens(token_file))
    metadata = (("authorization", "Bearer one-bare-token-everything"),)
    decision = served.stub.Decide(make_request(deferred=True), timeout=10, metadata=metadata)
    assert served.stub.Activate(pb.ActivateRequest(event_id=decision.event_id), timeout=10, metadata=metadata)
    assert served.stub.Reward(pb.RewardRequest(event_id=decision.event_id, value=1.0), timeout=10,
                              metadata=metadata).accepted


@pytest.mark.parametrize("content,message", [
    ("", "is empty"),
    ("# only a comment\n\n", "is empty"),
    ("tok-a decide\ntok-b rewards\n", "line 2: unknown scope(s) rewards"),
    ("tok-a decide\ntok-a reward\n", "line 2: the token appears twice"),
    ("tok-a decide reward\n", "line 1: expected"),
    ("tok-a ,\n", "line 1: unknown scope(s) (none)"),
])
def test_bad_token_files_are_refused_with_one_line(tmp_path, content, message):
    token_file = tmp_path / "tokens"
    token_file.write_text(content)
    with pytest.raises(InvalidInput) as err:
        read_tokens(token_file)
    assert message in str(err.value) and "\n" not in str(err.value)
    done = subprocess.run([OFFERBANDIT, "serve", "--port", "0", "--data-dir", str(tmp_path / "d"),
                           "--auth-token-file", str(token_file)], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert message in done.stderr


def _ca(name):
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


def _issued(ca_key, ca_cert, name, *, server):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
               .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server
                                                     else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False))
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return (key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()),
            cert.public_bytes(serialization.Encoding.PEM))


def test_mutual_tls_requires_a_client_certificate_from_the_ca(server_process, tmp_path):
    ca_key, ca_cert = _ca("offerbandit test CA")
    other_key, other_cert = _ca("some other CA")
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    server_key, server_cert = _issued(ca_key, ca_cert, "localhost", server=True)
    client_key, client_cert = _issued(ca_key, ca_cert, "client-1", server=False)
    stranger_key, stranger_cert = _issued(other_key, other_cert, "stranger", server=False)
    for name, data in (("ca.pem", ca_pem), ("server.pem", server_cert), ("server.key", server_key)):
        (tmp_path / name).write_bytes(data)
    server = server_process("--tls-cert", str(tmp_path / "server.pem"), "--tls-key", str(tmp_path / "server.key"),
                            "--tls-client-ca", str(tmp_path / "ca.pem"))
    address = f"127.0.0.1:{server.port}"

    def decide(credentials):
        with grpc.secure_channel(address, credentials) as channel:
            return pb_grpc.DecisionServiceStub(channel).Decide(make_request(), timeout=5)

    assert decide(grpc.ssl_channel_credentials(ca_pem, client_key, client_cert)).event_id
    for credentials in (grpc.ssl_channel_credentials(ca_pem),  # no client certificate
                        grpc.ssl_channel_credentials(ca_pem, stranger_key, stranger_cert)):  # another CA's
        with pytest.raises(grpc.RpcError) as err:
            decide(credentials)
        assert err.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    assert server.stop() == 0


def test_tls_client_ca_needs_a_server_certificate(tmp_path):
    (tmp_path / "ca.pem").write_text("x")
    done = subprocess.run([OFFERBANDIT, "serve", "--port", "0", "--data-dir", str(tmp_path / "d"),
                           "--tls-client-ca", str(tmp_path / "ca.pem")], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "--tls-client-ca needs --tls-cert" in done.stderr


def test_metrics_bind_loopback_whatever_host_serves_grpc(tmp_path):
    server = DecisionServer(ServiceConfig(), tmp_path / "m", host="0.0.0.0", port=0, metrics_port=0,
                            start_registry=False)
    server.start()
    try:
        assert server.metrics_http.host == "127.0.0.1"
        assert server.metrics_http._httpd.server_address[0] == "127.0.0.1"
        with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_http.port}/metrics", timeout=5) as response:
            assert b"offerbandit_decisions" in response.read() or response.status == 200
    finally:
        server.stop(grace=1)


def test_serve_metrics_host_flag(server_process, tmp_path):
    server = server_process("--host", "0.0.0.0", "--metrics-port", "0", data_dir=tmp_path / "d")
    deadline = time.time() + 10
    while time.time() < deadline and not any("metrics on" in line for line in server.output):
        time.sleep(0.1)
    line = next(line for line in server.output if "metrics on" in line)
    assert line.startswith("metrics on http://127.0.0.1:"), line
    assert server.stop() == 0

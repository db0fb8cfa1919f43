"""Wiring: the engine, the online learner, metrics, health, reflection, TLS and auth into one
gRPC server, with a graceful stop (health NOT_SERVING -> drain calls -> flush the log -> close).
"""
from __future__ import annotations

import hmac
import logging
import threading
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from offers.v1 import decision_pb2 as pb
from offers.v1 import decision_pb2_grpc as pb_grpc
from offerbandit.errors import InvalidInput
from service.config import ServiceConfig
from service.engine import DecisionEngine
from service.learner import OnlineLearner
from service.metrics import Metrics
from service.servicer import DecisionServicer
from service.shadow import ShadowScorer

log = logging.getLogger("offerbandit.server")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["DecisionService"].full_name
_OPEN_METHODS = ("/grpc.health.v1.Health/", "/grpc.reflection.")


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path

    def credentials(self) -> grpc.ServerCredentials:
        try:
            cert, key = self.cert.read_bytes(), self.key.read_bytes()
        except OSError as exc:
            raise InvalidInput(f"cannot read TLS file: {exc}", field="tls") from exc
        return grpc.ssl_server_credentials([(key, cert)])


def read_token(path: Path) -> str:
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise InvalidInput(f"cannot read auth token file {path}: {exc.strerror}", field="auth-token-file") from exc
    if not token:
        raise InvalidInput(f"auth token file {path} is empty", field="auth-token-file")
    return token


class BearerTokenInterceptor(grpc.ServerInterceptor):
    """Every call except health and reflection must carry ``authorization: Bearer <token>``."""

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode("utf-8")

        def deny(request, context):  # noqa: ANN001 - grpc handler signature
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid bearer token")

        self._deny = grpc.unary_unary_rpc_method_handler(deny)

    def intercept_service(self, continuation, handler_call_details):  # noqa: ANN001
        if handler_call_details.method.startswith(_OPEN_METHODS):
            return continuation(handler_call_details)
        for key, value in handler_call_details.invocation_metadata or ():
            if key == "authorization" and hmac.compare_digest(str(value).encode("utf-8"), self._expected):
                return continuation(handler_call_details)
        return self._deny


class DecisionServer:
    """A running service: ``start()`` binds and serves, ``stop()`` shuts down gracefully."""

    def __init__(self, config: ServiceConfig, data_dir: Path, *, host: str = "127.0.0.1", port: int = 0,
                 tls: TlsFiles | None = None, auth_token: str | None = None, metrics_port: int | None = None,
                 start_registry: bool | None = None) -> None:
        self.config = config
        self.data_dir = Path(data_dir)
        self.host = host
        self.metrics = Metrics()
        self.engine = DecisionEngine(config, self.data_dir, on_queue_depth=self.metrics.set_queue_depth)
        self.learner = OnlineLearner(self.engine, batch_size=config.learning.batch_size,
                                     poll_seconds=config.learning.poll_seconds)
        self.health = health.HealthServicer(experimental_non_blocking=True,
                                            experimental_thread_pool=futures.ThreadPoolExecutor(max_workers=1))
        interceptors = [BearerTokenInterceptor(auth_token)] if auth_token else []
        limit = config.server.max_message_bytes
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=config.server.max_workers, thread_name_prefix="rpc"),
            interceptors=interceptors,
            maximum_concurrent_rpcs=config.server.max_concurrent_rpcs,
            options=[("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit),
                     ("grpc.so_reuseport", 0)],
        )
        pb_grpc.add_DecisionServiceServicer_to_server(DecisionServicer(self.engine, self.metrics), self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME),
                                            self.server)
        address = f"{host}:{port}"
        self.port = (self.server.add_secure_port(address, tls.credentials()) if tls
                     else self.server.add_insecure_port(address))
        if self.port == 0:
            raise InvalidInput(f"cannot bind {address}", field="port")
        self._metrics_port = metrics_port
        self.metrics_http = None
        self.registry = None
        self._start_registry = config.mlflow.enabled if start_registry is None else start_registry
        self.shadow = ShadowScorer(self.engine)
        self._stopped = threading.Event()

    def start(self) -> None:
        for name, runtime in self.engine.campaigns.items():
            self.metrics.set_policy_version(name, runtime.live.version)
        self.learner.start()
        self.shadow.start()
        if self._start_registry:
            from service.live_models import RegistryLink

            self.registry = RegistryLink(self)
            self.registry.start()
            self._wait_for_registry()
        if self._metrics_port is not None:
            self.metrics_http = self.metrics.serve_http(self.host, self._metrics_port)
        self.server.start()
        self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        self.health.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)

    def _wait_for_registry(self) -> None:
        """Optionally hold start-up until the champion was looked up (mlflow.start_timeout_seconds)."""
        timeout = self.config.mlflow.start_timeout_seconds
        if timeout > 0 and not self.registry.watcher.wait_for_first_poll(timeout):
            log.warning("registry not reached within %.0fs; serving %s until it is", timeout, "the bootstrap policy")

    def stop(self, grace: float | None = None) -> None:
        """Stop accepting calls, let in-flight ones finish, learn what is queued, flush the log."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self.health.enter_graceful_shutdown()
        self.server.stop(self.config.server.grace_seconds if grace is None else grace).wait()
        if self.registry is not None:
            self.registry.stop()
        self.learner.stop()
        self.shadow.stop()
        if self.metrics_http is not None:
            self.metrics_http.stop()
        self.engine.close()

    def wait(self) -> None:
        self.server.wait_for_termination()

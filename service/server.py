"""A running decision server: starts what ``bootstrap`` built and stops it gracefully
(health NOT_SERVING -> drain calls -> registry -> learner -> shadow -> metrics -> flush the log).
"""
from __future__ import annotations

import gc
import logging
import sys
import threading
from pathlib import Path

from grpc_health.v1 import health_pb2

from service.bootstrap import SERVICE_NAME, Endpoint, build_server
from service.config import ServiceConfig
from service.security import TlsFiles, TokenTable, read_tokens

__all__ = ["SERVING_SWITCH_INTERVAL_S", "DecisionServer", "TlsFiles", "TokenTable", "freeze_startup_heap",
           "read_tokens", "shorten_gil_turns"]

log = logging.getLogger("offerbandit.server")


def freeze_startup_heap() -> None:
    """Move everything allocated so far (MLflow, SQLAlchemy, VW, grpc: ~1M objects) out of the garbage
    collector's reach. A full collection otherwise walks all of them, stopping every thread for 100-400 ms
    (measured: the slowest Decide of 1,500 went from ~350 ms to ~120 ms); they live as long as the process.
    For a process that is the server (``offerbandit serve`` / ``learn``), called once it started: frozen
    objects that later become garbage are never freed, which a long test session must not do to itself."""
    gc.collect()
    gc.freeze()


#: How long a thread may hold the GIL while others wait for it, in a serving process (CPython's default is
#: 5 ms). A Decide crosses several threads (gRPC, handler, log writer, back), and at each crossing it can
#: wait a whole turn behind every busy thread (the learner, a checkpoint's MLflow calls). bench_latency (b)
#: with learning, checkpoints and a swap, three alternated pairs of 12 s runs: the slowest Decide was
#: 58-84 ms over the median at 5 ms and 30-35 ms at 1 ms; bench_service --quick throughput was unchanged
#: (served_vs_naive 1.26 vs 1.18 in one pair, within its run-to-run spread).
SERVING_SWITCH_INTERVAL_S = 0.001


def shorten_gil_turns() -> None:
    """Set :data:`SERVING_SWITCH_INTERVAL_S` for this process (``offerbandit serve`` calls it once started;
    process-wide, so not for a process that merely embeds a server, like a test session)."""
    sys.setswitchinterval(SERVING_SWITCH_INTERVAL_S)


class DecisionServer:
    """A running service: ``start()`` binds and serves, ``stop()`` shuts down gracefully."""

    def __init__(self, config: ServiceConfig, data_dir: Path, *, host: str = "127.0.0.1", port: int = 0,
                 tls: TlsFiles | None = None, auth_token: TokenTable | str | None = None,
                 metrics_port: int | None = None, metrics_host: str = "127.0.0.1", public_reflection: bool = False,
                 start_registry: bool | None = None, reuse_port: bool = False) -> None:
        self.config = config
        self.data_dir = Path(data_dir)
        self.host = host
        parts = build_server(config, self.data_dir, Endpoint(host, port, tls, auth_token, public_reflection, reuse_port),
                             with_registry=start_registry)
        self.role = parts.role
        self.metrics = parts.metrics
        self.engine = parts.engine
        self.learner = parts.learner
        self.shadow = parts.shadow
        self.registry = parts.registry
        self.health = parts.health
        self.server = parts.grpc_server
        self.port = parts.port
        self.erasures = parts.erasures
        self.retention = parts.retention
        self._metrics_port = metrics_port
        self._metrics_host = metrics_host  # loopback by default, whatever host serves gRPC
        self.metrics_http = None
        self._stopped = threading.Event()

    def start(self) -> None:
        for name, runtime in self.engine.campaigns.items():
            self.metrics.set_policy_version(name, runtime.live.version)
        if self.learner is not None:  # a replica never writes learn_seqs: the learner numbers events
            self.learner.prepare()
        if self.registry is not None:  # the champion (or its cached copy) serves from the first decision
            self.registry.start()
            self._wait_for_registry()
        if self.learner is not None:
            self.learner.start()
        self.shadow.start()
        self.erasures.start()
        self.retention.start()
        if self._metrics_port is not None:
            self.metrics_http = self.metrics.serve_http(self._metrics_host, self._metrics_port)
        self.server.start()
        self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        self.health.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)

    def _wait_for_registry(self) -> None:
        """Hold start-up until the champion was looked up and loaded, at most mlflow.start_timeout_seconds.

        Also when the store does not exist yet: the first poll imports MLflow and SQLAlchemy, builds the
        engine and creates and migrates the store (seconds of CPU holding the GIL); beside serving, that
        was the tail of Decide (bench_service (e): 4x the server CPU per decision while it ran)."""
        timeout = self.config.mlflow.start_timeout_seconds
        if timeout <= 0:
            return
        if self.registry.wait_for_first_poll(timeout) and self.registry.watcher.status().healthy:
            return
        serving = ", ".join(f"{campaign}: {version}" for campaign, version in self.registry.serving().items())
        log.warning("registry not reached within %.0fs; serving %s until it is", timeout, serving)

    def stop(self, grace: float | None = None) -> None:
        """Stop accepting calls, let in-flight ones finish, learn what is queued, flush the log."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self.health.enter_graceful_shutdown()
        self.server.stop(self.config.server.grace_seconds if grace is None else grace).wait()
        if self.registry is not None:
            self.registry.stop()
        if self.learner is not None:
            self.learner.stop()
        self.shadow.stop()
        self.erasures.stop()
        self.retention.stop()
        if self.metrics_http is not None:
            self.metrics_http.stop()
        self.engine.close()

    def wait(self) -> None:
        self.server.wait_for_termination()

"""The composition root: every component of a decision server is built here and wired here.

The hand-offs between components are built first and passed to both sides (the engine puts
learnable events into a :class:`LearnQueue` the learner takes from, committed decisions into a
:class:`ShadowQueue` the shadow scorer takes from; the learner counts into a
:class:`LearnedCounter` the registry's checkpointer reads), so no component assigns a callback onto
another or holds the whole server. ``DecisionServer`` only starts and stops what this returns.

Roles (`service.roles`): a ``serve`` that learns (the embedded SQLite log) gets the learner thread and a
registry link that publishes; a replica (a shared log, or ``[learning] role = "decider"``) gets neither
learner nor checkpoints, only a registry link that follows ``champion``. :func:`build_learner` is the root
of ``offerbandit learn``: the same learner, guard and registry link, around the log and the campaigns
instead of an engine.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from offers.v1 import decision_pb2 as pb
from offerbandit.errors import InvalidInput
from decision_log import DecisionLog, open_log
from policy_registry.registry import RegistryConfig
from service.campaigns import build_runtimes, serving_buffer
from service.config import ServiceConfig
from service.datadir import prepare_data_dir
from service.admin import ADMIN_SERVICE, AdminServicer, add_admin_to_server
from service.engine import DecisionEngine
from service.erasure import ErasureFollower
from service.retention import RetentionJob, RetentionSettings
from service.log_records import log_options
from service.learner import LearnedCounter, LearnerState, LearningState, LearnLag, LearnQueue, OnlineLearner
from service.lift_runs import LiftRecorder, lift_settings
from service.live_models import RegistryLink
from service.metrics import Metrics
from service.model_guard import ModelGuard
from service.roles import ServeRole, check_learner, is_shared, log_url, serve_role, sqlite_file
from service.security import BearerTokenInterceptor, TlsFiles, TokenTable
from service.servicer import DecisionServicer, add_to_server
from service.wire_guard import MalformedRequestInterceptor
from service.shadow import ShadowQueue, ShadowScorer

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["DecisionService"].full_name
SHADOW_QUEUE_ITEMS = 10000


@dataclass(frozen=True)
class Endpoint:
    """Where and how the server listens. ``auth_token``: a token table (or one token with every scope);
    ``public_reflection`` opens server reflection to callers without a token."""

    host: str = "127.0.0.1"
    port: int = 0
    tls: TlsFiles | None = None
    auth_token: TokenTable | str | None = None
    public_reflection: bool = False
    reuse_port: bool = False  # SO_REUSEPORT: several serve processes on one port (the kernel balances connections)


@dataclass(frozen=True)
class ServerComponents:
    """Everything a running server is made of, wired; nothing started yet (the port is bound)."""

    config: ServiceConfig
    role: ServeRole
    metrics: Metrics
    engine: DecisionEngine
    learner: OnlineLearner | None  # None on a replica
    shadow: ShadowScorer
    registry: RegistryLink | None
    health: health.HealthServicer
    grpc_server: grpc.Server
    port: int
    erasures: ErasureFollower  # forgets customers erased from the log (every registry poll interval)
    retention: RetentionJob  # [log] retention_days on the embedded log (on a shared log: offerbandit learn's)


def build_server(config: ServiceConfig, data_dir: Path, endpoint: Endpoint, *,
                 with_registry: bool | None = None) -> ServerComponents:
    """Build and wire a server's components; ``with_registry`` defaults to ``[mlflow] enabled``.

    The log is ``[log] url`` (else the data dir's); the role follows from it (`service.roles.serve_role`:
    InvalidInput for a replica without a shared registry)."""
    url = log_url(config, data_dir)
    role = serve_role(config, url)
    data_dir = prepare_data_dir(Path(data_dir), log_file=sqlite_file(url))
    metrics = Metrics(versions_kept=config.server.metrics_versions_kept)
    learnable = LearnQueue() if role.learns else None
    shadow_items = ShadowQueue(SHADOW_QUEUE_ITEMS)
    engine = DecisionEngine(config, data_dir, log_url=url, on_queue_depth=metrics.set_queue_depth,
                            learnable=learnable, shadow=shadow_items,
                            double_buffer=serving_buffer(config) if role.learns else None)
    learned = LearnedCounter(config.learning.checkpoint_every_events)
    learner = None
    if learnable is not None:
        learner = _learner(config, engine, learnable, learned, metrics)
    shadow = ShadowScorer(engine, shadow_items)
    health_servicer = health.HealthServicer(experimental_non_blocking=True,
                                            experimental_thread_pool=futures.ThreadPoolExecutor(max_workers=1))
    grpc_server = _grpc_server(config, endpoint)
    add_to_server(DecisionServicer(engine, metrics), grpc_server)
    erasures = ErasureFollower(engine.log, engine.history, engine.claims, config.learning.registry_poll_seconds)
    services = (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME)
    if endpoint.auth_token:  # the admin service exists only behind tokens (it needs the admin scope)
        add_admin_to_server(AdminServicer(engine, erasures), grpc_server)
        services = (SERVICE_NAME, ADMIN_SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, grpc_server)
    reflection.enable_server_reflection(services, grpc_server)
    port = _bind(grpc_server, endpoint)
    registry = None
    if config.mlflow.enabled if with_registry is None else with_registry:
        registry = _registry_link(config, data_dir, engine, learned, metrics, health_servicer, publish=role.learns,
                                  shared=role.shared)
    return ServerComponents(config=config, role=role, metrics=metrics, engine=engine, learner=learner,
                            shadow=shadow, registry=registry, health=health_servicer, grpc_server=grpc_server,
                            port=port, erasures=erasures, retention=_retention(config, engine.log, not role.shared))


@dataclass(frozen=True)
class LearnerComponents:
    """Everything ``offerbandit learn`` is made of, wired; nothing started yet."""

    config: ServiceConfig
    url: str
    metrics: Metrics
    log: DecisionLog
    learner: OnlineLearner
    registry: RegistryLink
    health: health.HealthServicer
    retention: RetentionJob


def _retention(config: ServiceConfig, log: DecisionLog, runs_here: bool) -> RetentionJob:
    """The log's retention job; it deletes only where ``runs_here`` (one process per log does)."""
    settings = RetentionSettings.of(config) if runs_here else RetentionSettings(days=0.0)
    return RetentionJob(log, settings, config.reward_defaults())


def build_learner(config: ServiceConfig, data_dir: Path, *, may_publish: Callable[[], bool]) -> LearnerComponents:
    """The single learner of ``[log] url``: the log (it must exist), the campaigns' live models, the online
    learner following the log (``follow_log``) and a registry link that publishes while ``may_publish()``.

    The data dir holds only the model cache and, without ``MLFLOW_TRACKING_URI``, MLflow's local store:
    ``learn`` never creates a ``secret.key`` (it never hashes a user) nor a log."""
    url = log_url(config, data_dir)
    check_learner(config, url)
    options = log_options(config)
    open_log(url, options=options).close()  # LogNotFound / InvalidInput: a log must exist, of a known schema
    data_dir = prepare_data_dir(Path(data_dir), log_file=None)
    metrics = Metrics(versions_kept=config.server.metrics_versions_kept)
    log = open_log(url, writable=True, options=options, on_queue_depth=metrics.set_queue_depth)
    state = LearnerState(log=log, campaigns=build_runtimes(config), reward_defaults=config.reward_defaults())
    learned = LearnedCounter(config.learning.checkpoint_every_events)
    learner = _learner(config, state, LearnQueue(), learned, metrics, follow_log=True,
                       on_lag=lambda lag: metrics.set_learn_lag(lag.events, lag.seconds))
    health_servicer = health.HealthServicer(experimental_non_blocking=True,
                                            experimental_thread_pool=futures.ThreadPoolExecutor(max_workers=1))
    registry = _registry_link(config, data_dir, state, learned, metrics, health_servicer, publish=True,
                              shared=is_shared(url), may_publish=may_publish)
    return LearnerComponents(config=config, url=url, metrics=metrics, log=log, learner=learner, registry=registry,
                             health=health_servicer, retention=_retention(config, log, is_shared(url)))


def _learner(config: ServiceConfig, state: LearningState, handed: LearnQueue, learned: LearnedCounter,
             metrics: Metrics, *, follow_log: bool = False,
             on_lag: Callable[[LearnLag], None] | None = None) -> OnlineLearner:
    """The online learner, every update guarded (probe, roll back, quarantine in the log)."""
    guard = ModelGuard(lambda seqs: state.log.quarantine(seqs, time.time()).result(30),
                       on_quarantine=metrics.observe_quarantine, on_rollback=metrics.observe_rollback)
    return OnlineLearner(state, handed, learned, batch_size=config.learning.batch_size,
                         poll_seconds=config.learning.poll_seconds, guard=guard, follow_log=follow_log, on_lag=on_lag)


def _registry_link(config: ServiceConfig, data_dir: Path, state: LearningState, learned: LearnedCounter,
                   metrics: Metrics, health_servicer: health.HealthServicer, *, publish: bool, shared: bool,
                   may_publish: Callable[[], bool] | None = None) -> RegistryLink:
    return RegistryLink(
        state, learned, metrics=metrics, health_servicer=health_servicer,
        registry_config=RegistryConfig.for_data_dir(data_dir, experiment_name=config.mlflow.experiment_name,
                                                    model_name_template=config.mlflow.model_name_template),
        poll_seconds=config.learning.registry_poll_seconds,
        full_poll_seconds=config.learning.registry_full_poll_seconds,
        checkpoint_every_seconds=config.learning.checkpoint_seconds(shared), data_dir=data_dir, publish=publish,
        may_publish=may_publish, guardrail=config.guardrail,
        lift=LiftRecorder(lift_settings(config), data_dir / "reports",
                          min_interval_s=config.learning.checkpoint_seconds(shared)))


def _grpc_server(config: ServiceConfig, endpoint: Endpoint) -> grpc.Server:
    interceptors: list[grpc.ServerInterceptor] = []
    if endpoint.auth_token:
        interceptors.append(BearerTokenInterceptor(endpoint.auth_token, public_reflection=endpoint.public_reflection))
    interceptors.append(MalformedRequestInterceptor())  # innermost: it caches the servicer's handlers
    limit = config.server.max_message_bytes
    return grpc.server(
        futures.ThreadPoolExecutor(max_workers=config.server.max_workers, thread_name_prefix="rpc"),
        interceptors=interceptors,
        maximum_concurrent_rpcs=config.server.max_concurrent_rpcs,
        options=[("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit),
                 ("grpc.so_reuseport", int(endpoint.reuse_port))],
    )


def _bind(grpc_server: grpc.Server, endpoint: Endpoint) -> int:
    address = f"{endpoint.host}:{endpoint.port}"
    try:
        port = (grpc_server.add_secure_port(address, endpoint.tls.credentials()) if endpoint.tls
                else grpc_server.add_insecure_port(address))
    except RuntimeError:  # grpcio raises it when the port is taken (or the address is not local)
        port = 0
    if port == 0:
        hint = "" if endpoint.reuse_port else " (in use? several serve processes share a port with --reuse-port)"
        raise InvalidInput(f"cannot bind {address}{hint}", field="port")
    return port

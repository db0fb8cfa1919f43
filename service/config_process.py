"""The process-level sections of the service configuration: ``[server]``, ``[log]``, ``[learning]``,
``[mlflow]`` (how this process serves, logs, learns and reaches the registry), each a frozen dataclass
validated on construction; `service.config` parses the file and re-exports them."""
from __future__ import annotations

from dataclasses import dataclass

from offerbandit.checks import check_scalar
from offerbandit.errors import InvalidInput

__all__ = ["CHECKPOINT_SECONDS_EMBEDDED", "CHECKPOINT_SECONDS_SHARED", "ROLES", "LearningConfig", "LogConfig",
           "MlflowConfig", "ServerConfig", "require"]


def require(condition: bool, message: str, field_name: str) -> None:
    """InvalidInput naming ``field_name`` unless ``condition`` holds."""
    if not condition:
        raise InvalidInput(message, field=field_name)


@dataclass(frozen=True)
class ServerConfig:
    max_workers: int = 32
    max_concurrent_rpcs: int = 256
    max_message_bytes: int = 4 * 1024 * 1024
    grace_seconds: float = 10.0
    # Memory bounds (issue 14): the answers kept for repeated event ids, each campaign's candidate
    # caches (joint arms, offer snapshots, categories), the policy versions kept in metric series.
    idempotency_cache_bytes: int = 16 * 1024 * 1024
    candidate_cache_bytes: int = 64 * 1024 * 1024
    metrics_versions_kept: int = 5
    # Decide calls waiting while one is decided are decided together, up to this many (1: each alone)
    max_combined_decides: int = 64

    def __post_init__(self) -> None:
        check_scalar(self.max_combined_decides, "server.max_combined_decides", int, low=1)
        check_scalar(self.idempotency_cache_bytes, "server.idempotency_cache_bytes", int, low=0)
        check_scalar(self.candidate_cache_bytes, "server.candidate_cache_bytes", int, low=0)
        check_scalar(self.metrics_versions_kept, "server.metrics_versions_kept", int, low=1)
        check_scalar(self.max_workers, "server.max_workers", int, low=1)
        check_scalar(self.max_concurrent_rpcs, "server.max_concurrent_rpcs", int, low=1)
        check_scalar(self.max_message_bytes, "server.max_message_bytes", int, low=1024)
        check_scalar(self.grace_seconds, "server.grace_seconds", low=0.0)



@dataclass(frozen=True)
class LogConfig:
    """Where the decision log lives (``url``: empty for the data dir's ``sqlite:///D/decisions.db``; a
    ``postgresql://`` URL is a log shared by several processes) and how it is written."""

    url: str = ""
    connect_timeout_seconds: float = 30.0
    synchronous: str = "FULL"
    max_group: int = 512
    max_queue: int = 20000
    wal_autocheckpoint_pages: int = 4000
    wal_checkpoint_seconds: float = 0.2
    busy_timeout_ms: int = 5000
    retention_days: float = 0.0  # 0: keep every decision; else a background job deletes older ones
    retention_export_dir: str = ""  # non-empty: rows are exported there as Parquet before they are deleted
    retention_interval_seconds: float = 3600.0
    retention_batch: int = 1000  # decisions per delete transaction (the writer is never held longer)

    def __post_init__(self) -> None:
        require(isinstance(self.url, str), "log.url must be a string", "log.url")
        check_scalar(self.retention_days, "log.retention_days", low=0.0)
        check_scalar(self.retention_interval_seconds, "log.retention_interval_seconds", low=0.0, low_open=True)
        check_scalar(self.retention_batch, "log.retention_batch", int, low=1)
        require(isinstance(self.retention_export_dir, str), "log.retention_export_dir must be a string",
                 "log.retention_export_dir")
        check_scalar(self.connect_timeout_seconds, "log.connect_timeout_seconds", low=0.0)
        require(self.synchronous.upper() in ("OFF", "NORMAL", "FULL", "EXTRA"),
                 "log.synchronous must be OFF, NORMAL, FULL or EXTRA", "log.synchronous")
        object.__setattr__(self, "synchronous", self.synchronous.upper())
        check_scalar(self.max_group, "log.max_group", int, low=1)
        check_scalar(self.max_queue, "log.max_queue", int, low=1)
        check_scalar(self.wal_autocheckpoint_pages, "log.wal_autocheckpoint_pages", int, low=0)
        check_scalar(self.wal_checkpoint_seconds, "log.wal_checkpoint_seconds", low=0.0)


#: ``[learning] role``: ``auto`` -- a ``serve`` on the embedded SQLite log decides, learns and publishes, one
#: on a shared log only decides (a replica); ``decider`` -- ``serve`` only decides and logs, whatever the log
#: (``offerbandit learn`` learns), and follows the registry's champion.
ROLES = ("auto", "decider")
#: ``checkpoint_every_seconds`` when the file does not set it: a ``serve`` that learns, and ``learn`` on a
#: shared log (replicas are fresh within this plus ``registry_poll_seconds``; DESIGN-NOTES "Freshness").
CHECKPOINT_SECONDS_EMBEDDED = 600.0
CHECKPOINT_SECONDS_SHARED = 10.0


@dataclass(frozen=True)
class LearningConfig:
    batch_size: int = 64
    poll_seconds: float = 1.0
    checkpoint_every_events: int = 5000
    checkpoint_every_seconds: float | None = None  # None: CHECKPOINT_SECONDS_EMBEDDED / _SHARED
    role: str = "auto"
    registry_poll_seconds: float = 5.0
    #: between these, MLflow is asked only when the log records an alias move (offerbandit's own movers all
    #: record theirs); this often whatever the log says, for moves made elsewhere (the MLflow UI)
    registry_full_poll_seconds: float = 60.0
    history_horizon_seconds: float = 90 * 86400.0
    history_max_users: int = 50_000  # ~3.7 KB each held; a customer not held is read from the log
    #: in a process that serves and learns, decisions score on a copy of the VW model refreshed after checked
    #: updates at most this often, so learning and checkpoints never hold a decision (0: one workspace)
    publish_every_seconds: float = 1.0

    def __post_init__(self) -> None:
        check_scalar(self.batch_size, "learning.batch_size", int, low=1)
        check_scalar(self.publish_every_seconds, "learning.publish_every_seconds", low=0.0)
        check_scalar(self.poll_seconds, "learning.poll_seconds", low=0.0, low_open=True)
        check_scalar(self.registry_poll_seconds, "learning.registry_poll_seconds", low=0.0, low_open=True)
        check_scalar(self.registry_full_poll_seconds, "learning.registry_full_poll_seconds", low=0.0, low_open=True)
        if self.checkpoint_every_seconds is not None:
            check_scalar(self.checkpoint_every_seconds, "learning.checkpoint_every_seconds", low=0.0, low_open=True)
        require(self.role in ROLES, f"learning.role must be one of {', '.join(ROLES)}", "learning.role")

    def checkpoint_seconds(self, shared_log: bool) -> float:
        """``checkpoint_every_seconds`` as set, else the default of the topology."""
        if self.checkpoint_every_seconds is not None:
            return float(self.checkpoint_every_seconds)
        return CHECKPOINT_SECONDS_SHARED if shared_log else CHECKPOINT_SECONDS_EMBEDDED


@dataclass(frozen=True)
class MlflowConfig:
    """Where policy versions live. The tracking URI is $MLFLOW_TRACKING_URI, else the data dir's
    ``sqlite:///<data-dir>/mlflow.db``; artifacts go under ``<data-dir>/mlflow-artifacts``."""

    enabled: bool = True
    experiment_name: str = "offerbandit"
    model_name_template: str = "offerbandit-{campaign}"
    start_timeout_seconds: float = 30.0

    def __post_init__(self) -> None:
        require("{campaign}" in self.model_name_template, "mlflow.model_name_template must contain {campaign}",
                 "mlflow.model_name_template")

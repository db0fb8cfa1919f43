"""``offerbandit learn``, running: the single learner of a log (DESIGN-NOTES "Wave 2: roles").

It holds the log's learner lock for as long as it runs (``DecisionLog.learner_lock()``: a PostgreSQL
session advisory lock on a connection of its own, or a ``flock`` beside a SQLite file, released by the
kernel even on SIGKILL). A second learner on the log refuses to start. It serves each campaign's champion caught up from the champion's ``learn_seq``
(resuming exactly where the last checkpoint stopped), learns every event that became final (claiming
the events whose reward window closed, and learning the ones replicas made final), publishes
checkpoints and moves ``champion`` by compare-and-set -- only while it holds the lock: the moment the
lock drops it stops publishing and :attr:`LearnerProcess.lost` is set (the command then exits 1).

Start order: lock -> champion loaded (within ``[mlflow]
start_timeout_seconds``) -> learning -> ``/metrics`` and ``/healthz``. Stop: registry, learner, lock, log.
"""
from __future__ import annotations

import contextlib
import logging
import threading
from pathlib import Path

from decision_log import LearnerLock
from service.bootstrap import build_learner
from service.config import ServiceConfig
from service.health_http import serve_metrics_and_health
from service.metrics import MetricsHTTPServer
from service.roles import masked

__all__ = ["LOCK_CHECK_SECONDS", "LearnerProcess"]

log = logging.getLogger("offerbandit.learn")
LOCK_CHECK_SECONDS = 1.0


class LearnerProcess:
    """``start()`` takes the lock and learns in the background; ``stop()`` ends it; ``lost`` is set when
    the learner lock dropped (nothing is published after that)."""

    def __init__(self, config: ServiceConfig, data_dir: Path, *, metrics_port: int | None = None,
                 metrics_host: str = "127.0.0.1") -> None:
        self.config = config
        self.lost = threading.Event()
        self._holding = threading.Event()
        parts = build_learner(config, Path(data_dir), may_publish=self.holds_lock)
        self.url = parts.url
        self.metrics = parts.metrics
        self.log = parts.log
        self.learner = parts.learner
        self.registry = parts.registry
        self.retention = parts.retention
        self._metrics_port = metrics_port
        self._metrics_host = metrics_host
        self.metrics_http: MetricsHTTPServer | None = None
        self._exit = contextlib.ExitStack()
        self._lock: LearnerLock | None = None
        self._stop = threading.Event()
        self._watch = threading.Thread(target=self._watch_lock, name="learner-lock", daemon=True)

    @property
    def location(self) -> str:
        """The log, as printed (``learning from <location>``): its URL with the password masked."""
        return masked(self.url)

    def holds_lock(self) -> bool:
        """True while this process is the log's learner (checked before every publish)."""
        return self._holding.is_set() and not self.lost.is_set()

    def start(self) -> None:
        # InvalidInput: another learner holds the lock; LogUnavailable: the log cannot be reached
        self._lock = self._exit.enter_context(self.log.learner_lock())
        self._holding.set()
        self._watch.start()
        # No learner.prepare(): its backfill numbers final events as learned when no event has a learn_seq
        # yet (a log from before learn_seq), but on a shared log replicas make events final before the first
        # learner runs, and those must be learned, not numbered. A log from before learn_seq is numbered
        # by one start of the embedded ``serve`` (or its migration).
        self.registry.start()
        timeout = self.config.mlflow.start_timeout_seconds
        # also when the store is missing: the watcher's first poll creates and migrates it, and that must not
        # run beside learning (MLflow's import and SQLAlchemy hold the GIL), as in `serve`
        if timeout > 0:
            if not (self.registry.wait_for_first_poll(timeout) and self.registry.watcher.status().healthy):
                log.warning("registry not reached within %.0fs; learning into %s until it is", timeout,
                            ", ".join(f"{c}: {v}" for c, v in self.registry.serving().items()))
        self.learner.start()
        self.retention.start()
        if self._metrics_port is not None:
            self.metrics_http = serve_metrics_and_health(self.metrics, self.health, self._metrics_host,
                                                         self._metrics_port)

    def health(self) -> tuple[bool, dict[str, object]]:
        """``/healthz``: healthy while it holds the lock and the registry is usable; its lag."""
        lag = self.learner.lag
        registry_ok = self.registry.watcher.status().healthy
        holds = self.holds_lock()
        return holds and registry_ok, {
            "role": "learner", "log": self.location, "holds_lock": holds, "registry_healthy": registry_ok,
            "lag_events": lag.events, "lag_seconds": round(lag.seconds, 3), "learned": self.learner.learned,
            "serving": self.registry.serving(),
        }

    def _watch_lock(self) -> None:
        while not self._stop.wait(LOCK_CHECK_SECONDS):
            try:
                ok = self._lock is not None and self._lock.held()
            except Exception:  # noqa: BLE001 - a lock we cannot check is a lock we do not hold
                ok = False
            if not ok:
                log.error("lost the learner lock on %s: no more checkpoints from this process", self.location)
                self.lost.set()
                return

    def stop(self) -> None:
        """Stop publishing and learning, release the lock, flush and close the log."""
        if self._stop.is_set():
            return
        self._stop.set()
        self.retention.stop()
        self.registry.stop()
        self.learner.stop()
        if self.metrics_http is not None:
            self.metrics_http.stop()
        self._holding.clear()
        try:
            self._exit.close()
        finally:
            self.log.close()
